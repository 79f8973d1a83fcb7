"""Ingestion: read a folder of articles, clean them, drop exact duplicates, report bad files."""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional

from ..errors import IngestError
from ..types import Article
from .clean import clean_article
from .dates import parse_metadata_date
from .readers import SUPPORTED_EXTS, RawArticle, reader_for

log = logging.getLogger("qa")

__all__ = ["Problem", "Corpus", "load_corpus", "iter_files", "article_from_raw", "SUPPORTED_EXTS"]


@dataclass(frozen=True)
class Problem:
    """A file (or line of a file) that was skipped, with the reason."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Corpus:
    """Articles read from a folder, with the files that were skipped and why."""

    articles: list[Article]
    problems: list[Problem] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (dropped id, kept id)
    files: int = 0


def safe_str(s: Optional[str]) -> Optional[str]:
    """``s`` as text that can be written as UTF-8: a file name's undecodable bytes (kept by Python
    as lone surrogates) and lone surrogates from JSON ``\\ud800`` escapes become U+FFFD."""
    if s is None:
        return None
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        pass
    try:
        data = s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        data = s.encode("utf-8", "surrogatepass")
    return data.decode("utf-8", "replace")


def _problem(path: object, reason: str) -> Problem:
    return Problem(safe_str(str(path)) or "", safe_str(reason) or "")


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def iter_files(root: Path, problems: Optional[list[Problem]] = None) -> Iterator[Path]:
    """Supported files under ``root`` in sorted order; hidden files skipped; symlinks that
    point outside ``root`` are not followed (reported)."""
    root_real = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for d in dirnames:
            if not d.startswith(".") and problems is not None and Path(dirpath, d).is_symlink():
                problems.append(_problem(Path(dirpath, d), "symbolic link to a folder; not followed"))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not Path(dirpath, d).is_symlink())
        for name in sorted(filenames):
            if name.startswith(".") or name.lower() in {"readme.md", "readme.txt"}:
                continue
            p = Path(dirpath) / name
            if p.is_symlink():
                target = p.resolve()
                if not target.is_relative_to(root_real) or not target.is_file():
                    if problems is not None:
                        where = "outside the corpus folder" if not target.is_relative_to(root_real) else "no file"
                        problems.append(_problem(p, f"symbolic link to {where}; not followed"))
                    continue
            if p.suffix.lower() not in SUPPORTED_EXTS:
                if problems is not None:
                    problems.append(_problem(p, f"unsupported file type {p.suffix or '(none)'}; "
                                                f"supported: {', '.join(sorted(SUPPORTED_EXTS))}"))
                continue
            if not p.is_file():  # a named pipe would block the read forever; a device never ends
                if problems is not None:
                    problems.append(_problem(p, "not a regular file; skipped"))
                continue
            yield p


def article_from_raw(raw: RawArticle) -> Article:
    """Clean one raw article into an :class:`Article` (raises IngestError when nothing is left)."""
    cleaned = clean_article(raw.text, title=raw.title, find_title=raw.find_title, metadata_date=raw.date)
    if not cleaned.text.strip():
        raise IngestError(raw.location, "no article text left after removing boilerplate")
    if raw.date and parse_metadata_date(raw.date) is None:
        log.warning("%s: date %r not understood; the date is taken from the article text", raw.location,
                    raw.date[:80])
    text = safe_str(cleaned.text) or ""
    return Article(
        id=safe_str(raw.id) or "",
        title=safe_str(cleaned.title),
        text=text,
        source=safe_str(raw.source or cleaned.source),
        date=safe_str(cleaned.date),
        date_text=safe_str(cleaned.date_text),
        place=safe_str(cleaned.place),
        url=safe_str(raw.url),
        path=safe_str(raw.path),
        content_hash=content_hash(text),
    )


def _article_id(root: Path, path: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    return safe_str(rel.as_posix()) or ""


def load_corpus(folder: str | os.PathLike, *, progress: bool = False) -> Corpus:
    """Read every supported file under ``folder``.

    Bad files are reported in ``Corpus.problems`` (path and reason) and skipped; exact duplicates
    (same clean text) are kept once. Raises ``FileNotFoundError`` when the folder does not exist.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"corpus folder not found: {root}")
    problems: list[Problem] = []
    files = list(iter_files(root, problems))
    articles: list[Article] = []
    seen_hash: dict[str, str] = {}
    seen_id: dict[str, str] = {}  # article id -> where it was read first
    duplicates: list[tuple[str, str]] = []
    it: Iterable[Path] = files
    if progress and len(files) > 50:
        from tqdm.auto import tqdm

        it = tqdm(files, desc="Reading articles", unit="file")
    for path in it:
        reader = reader_for(path)
        try:
            for item in reader(path, _article_id(root, path)):
                if isinstance(item, IngestError):
                    problems.append(_problem(item.path, item.reason))
                    continue
                try:
                    art = article_from_raw(item)
                except IngestError as e:
                    problems.append(_problem(e.path, e.reason))
                    continue
                if art.content_hash in seen_hash:
                    duplicates.append((art.id, seen_hash[art.content_hash]))
                    continue
                if art.id in seen_id:
                    problems.append(_problem(item.location, f"duplicate article id {art.id!r} (first read from "
                                                            f"{seen_id[art.id]}); skipped"))
                    continue
                seen_hash[art.content_hash] = art.id
                seen_id[art.id] = item.location
                articles.append(art)
        except IngestError as e:
            problems.append(_problem(e.path, e.reason))
        except (OSError, ValueError, RecursionError) as e:
            problems.append(_problem(path, f"cannot read: {type(e).__name__}: {e}"))
    for p in problems:
        log.warning("skipped %s", p)
    for dropped, kept in duplicates:
        log.info("duplicate of %s, indexed once: %s", kept, dropped)
    return Corpus(articles=articles, problems=problems, duplicates=duplicates, files=len(files))
