"""Readers for article files: .txt, .md, .html/.htm, .json and .jsonl.

Each reader yields ``RawArticle`` records or raises :class:`~qa.errors.IngestError`
naming the file (and line) and the reason.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from ..errors import IngestError

log = logging.getLogger("qa")

TEXT_EXTS = {".txt", ".md", ".markdown"}
HTML_EXTS = {".html", ".htm", ".xhtml"}
JSON_EXTS = {".json", ".jsonl", ".ndjson"}
SUPPORTED_EXTS = TEXT_EXTS | HTML_EXTS | JSON_EXTS
# Larger files are reported and skipped: no news article is that long, and cleaning, chunking and
# embedding one would take minutes to hours. JSON and JSONL files may hold many articles.
MAX_FILE_BYTES = 8 * 2**20  # one .txt/.md/.html article
MAX_JSON_FILE_BYTES = 256 * 2**20  # a .json/.jsonl file of articles
MAX_ARTICLE_CHARS = 8 * 2**20  # the text of one JSON record


@dataclass
class RawArticle:
    """An article as read from a file, before cleaning."""

    id: str
    text: str
    path: str
    title: Optional[str] = None
    source: Optional[str] = None
    date: Optional[str] = None
    url: Optional[str] = None
    is_html: bool = False
    find_title: bool = True
    where: str = ""  # the record inside the file, for messages: "a.json[3]", "a.jsonl:12" ("": the file)

    @property
    def location(self) -> str:
        return self.where or self.path


def decode_bytes(data: bytes, path: str) -> str:
    """Decode file bytes: UTF-8 (with or without BOM), UTF-16 with BOM, else Windows-1252.

    Raises IngestError for empty, binary or undecodable content.
    """
    if not data.strip():
        raise IngestError(path, "empty file")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as e:
            raise IngestError(path, f"undecodable UTF-16 text ({e.reason} at byte {e.start})") from None
        if len(text) >= 20 and not any(ch.isspace() for ch in text):
            # bytes of 8-bit text read in pairs: ideographs without one space or line break
            raise IngestError(path, "starts with a UTF-16 byte-order mark (FF FE or FE FF) but is not UTF-16 text "
                                    "(no space or line break in it); save it as UTF-8")
        return text
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    head = data[:8192]
    if b"\x00" in head:
        raise IngestError(path, "binary file (contains NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        utf8_error = f"{e.reason} at byte {e.start}"
    text = data.decode("cp1252", errors="replace")
    bad = sum(1 for ch in text if ch == "\ufffd" or (not ch.isprintable() and ch not in "\n\r\t"))
    if bad > max(3, len(text) // 100):
        raise IngestError(path, f"undecodable or binary content (not UTF-8: {utf8_error})")
    log.warning("%s: not valid UTF-8 (%s); read as Windows-1252", path, utf8_error)
    return text.replace("\ufffd", "")


def _read_bytes(path: Path, limit: int, what: str) -> bytes:
    size = path.stat().st_size
    if size > limit:
        raise IngestError(str(path), f"file too large: {size / 2**20:.1f} MiB (the limit for {what} is "
                                     f"{limit / 2**20:.0f} MiB)")
    return path.read_bytes()


#: front-matter keys read into the article's fields (others are ignored)
FRONT_MATTER_KEYS = {"title": "title", "date": "date", "published": "date", "source": "source",
                     "publisher": "source", "url": "url", "link": "url"}
_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


def front_matter(text: str) -> tuple[dict[str, str], str]:
    """The ``key: value`` fields of a Markdown file's front matter (between ``---`` lines at its
    start, as static-site generators and news exports write it) that :data:`FRONT_MATTER_KEYS`
    knows, and the text after it; ``({}, text)`` without one."""
    m = _FRONT_MATTER.match(text)
    if not m:
        return {}, text
    fields: dict[str, str] = {}
    for line in m.group(1).splitlines():
        key, sep, value = line.partition(":")
        name = FRONT_MATTER_KEYS.get(key.strip().lower())
        value = value.strip().strip("\"'").strip()
        if sep and name and value and name not in fields:
            fields[name] = value
    return fields, text[m.end():]


def read_text_file(path: Path, article_id: str) -> Iterator[RawArticle]:
    text = decode_bytes(_read_bytes(path, MAX_FILE_BYTES, "one article"), str(path))
    meta: dict[str, str] = {}
    if path.suffix.lower() in {".md", ".markdown"}:
        meta, text = front_matter(text)
        m = re.match(r"\s*#\s+(.+)\n", text)
        if m:
            meta.setdefault("title", m.group(1).strip())
            text = text[m.end():]
        text = _strip_markdown(text)
    if not text.strip():
        raise IngestError(str(path), "empty file")
    yield RawArticle(id=article_id, text=text, path=str(path), title=meta.get("title"), source=meta.get("source"),
                     date=meta.get("date"), url=meta.get("url"))


def _strip_markdown(text: str) -> str:
    text = re.sub(r"^#{1,6}\s+", "", text, flags=re.MULTILINE)
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"(\*\*|__)(.+?)\1", r"\2", text)
    return text


_DROP_TAGS = ["script", "style", "noscript", "nav", "header", "footer", "aside", "form", "iframe",
              "button", "svg", "template", "select", "input", "textarea", "menu", "figure"]
_BLOCK_TAGS = ["p", "div", "section", "article", "main", "h1", "h2", "h3", "h4", "h5", "h6", "li",
               "ul", "ol", "blockquote", "pre", "tr", "table", "dd", "dt", "figcaption", "address"]


def read_html_file(path: Path, article_id: str) -> Iterator[RawArticle]:
    from bs4 import BeautifulSoup
    from bs4.element import Tag

    html = decode_bytes(_read_bytes(path, MAX_FILE_BYTES, "one article"), str(path))
    try:
        soup = BeautifulSoup(html, "html.parser")
    except Exception as e:  # html.parser is lenient; this is a last resort
        raise IngestError(str(path), f"malformed HTML ({e})") from None

    # One pass over the page (each soup.find walks the whole tree: slow on huge or deep pages).
    first: dict[str, Any] = {}
    metas, links = [], []
    for el in soup.descendants:
        if isinstance(el, Tag):
            if el.name == "meta":
                metas.append(el)
            elif el.name == "link":
                links.append(el)
            first.setdefault(el.name, el)

    def meta(*names: str) -> Optional[str]:
        for name in names:
            tag = (next((m for m in metas if m.get("property") == name), None)
                   or next((m for m in metas if m.get("name") == name), None))
            if tag and tag.get("content"):
                return str(tag["content"]).strip()
        return None

    title = meta("og:title", "twitter:title")
    h1 = first.get("h1")
    if h1 and h1.get_text(strip=True):
        title = h1.get_text(" ", strip=True)
    elif not title and first.get("title") and first["title"].get_text(strip=True):
        title = first["title"].get_text(" ", strip=True)
    source = meta("og:site_name", "application-name")
    date = meta("article:published_time", "date", "pubdate", "publishdate", "dc.date")
    if not date:
        t = first.get("time")
        date = (t.get("datetime") or t.get_text(strip=True)) if t else None
    url = meta("og:url")
    link = next((x for x in links if "canonical" in (x.get("rel") or [])), None)
    if link and link.get("href"):
        url = str(link["href"])

    root = first.get("article") or first.get("main") or first.get("body") or soup
    text = _html_text(root, skip=h1)
    if not text.strip():
        raise IngestError(str(path), "HTML page has no text content")
    yield RawArticle(id=article_id, text=text, path=str(path), title=title, source=source,
                     date=date, url=url, is_html=True, find_title=title is None)


def _html_text(root, skip=None) -> str:
    """The text of ``root`` without the dropped tags (and ``skip``), a newline around each block
    and for each ``<br>``. Iterative, linear in the page size: deeply nested pages neither hit
    the recursion limit nor take quadratic time (``insert_before``/``insert_after`` in bs4 walk
    to the last descendant each time)."""
    from bs4.element import CData, NavigableString, Tag

    drop, block, end = set(_DROP_TAGS), set(_BLOCK_TAGS), object()
    out: list[str] = []
    stack: list = list(reversed(root.contents))  # root's own tag adds no newline
    while stack:
        node = stack.pop()
        if node is end:
            out.append("\n")
        elif isinstance(node, Tag):
            if node is skip or node.name in drop:
                continue
            if node.name == "br":
                out.append("\n")
                continue
            if node.name in block:
                out.append("\n")
                stack.append(end)
            stack.extend(reversed(node.contents))
        elif type(node) in (NavigableString, CData):
            out.append(str(node))
    return "".join(out)


def _record(obj: object, path: Path, where: str, default_id: str) -> RawArticle:
    if not isinstance(obj, dict):
        raise IngestError(where, f"expected a JSON object, got {type(obj).__name__}")
    text = obj.get("text", obj.get("content", obj.get("body")))
    if text is not None and not isinstance(text, str):
        raise IngestError(where, f"field 'text' must be a string; got {type(text).__name__} ({str(text)[:40]!r})")
    if not isinstance(text, str) or not text.strip():
        raise IngestError(where, "missing or empty field 'text'")
    if len(text) > MAX_ARTICLE_CHARS:
        raise IngestError(where, f"article text too long: {len(text)} characters (limit {MAX_ARTICLE_CHARS})")

    def opt(name: str) -> Optional[str]:
        v = obj.get(name)
        return str(v).strip() if v not in (None, "") else None

    rid = opt("id") or opt("doc_id") or default_id
    return RawArticle(id=rid, text=text, path=str(path), where=where, title=opt("title"), source=opt("source"),
                      date=opt("date"), url=opt("url"), find_title=opt("title") is None)


def read_json_file(path: Path, article_id: str) -> Iterator[RawArticle]:
    """Yield records; a bad line is reported (file:line and reason) and skipped, not fatal."""
    text = decode_bytes(_read_bytes(path, MAX_JSON_FILE_BYTES, "a JSON file"), str(path))
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise IngestError(str(path), f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
        except (ValueError, RecursionError) as e:  # nested too deeply, a 5000-digit number...
            raise IngestError(str(path), f"invalid JSON ({type(e).__name__}: {str(e)[:120]})") from None
        items = data if isinstance(data, list) else [data]
        if not items:
            raise IngestError(str(path), "no articles in the file (an empty JSON list)")
        for i, obj in enumerate(items):
            where = f"{path}[{i}]" if isinstance(data, list) else str(path)
            default_id = f"{article_id}#{i}" if isinstance(data, list) else article_id
            try:
                yield _record(obj, path, where, default_id)
            except IngestError as e:
                yield e  # type: ignore[misc]  # reported by the caller
        return
    lines = 0
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        lines += 1
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            yield IngestError(where, f"invalid JSON ({e.msg} at column {e.colno})")  # type: ignore[misc]
            continue
        except (ValueError, RecursionError) as e:  # nested too deeply, a 5000-digit number...
            yield IngestError(where, f"invalid JSON ({type(e).__name__}: {str(e)[:120]})")  # type: ignore[misc]
            continue
        try:
            yield _record(obj, path, where, f"{article_id}#{lineno}")
        except IngestError as e:
            yield e  # type: ignore[misc]
    if not lines:
        raise IngestError(str(path), "no articles in the file (only blank lines)")


def reader_for(path: Path):
    ext = path.suffix.lower()
    if ext in TEXT_EXTS:
        return read_text_file
    if ext in HTML_EXTS:
        return read_html_file
    if ext in JSON_EXTS:
        return read_json_file
    return None
