"""Cleaning of raw article text: web boilerplate out, title / dateline / date metadata out.

The cleaned text is the article's canonical text: quotes and offsets refer to it. Cleaning only
removes whole lines (boilerplate), normalises whitespace, and joins hard-wrapped lines; it never
rewrites the words of a sentence.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Optional

from .dates import article_date

# Whole lines that are web boilerplate (matched case-insensitively against the stripped line).
BOILERPLATE_LINES = [
    r"[•·*\-]?\s*(bagikan|share|share this|tweet|print|cetak)\s*:?",
    r"cetak\s*e-?mail",
    r"(bagikan|share)\s*(ke|to|on)?\s*:?\s*(facebook|twitter|whatsapp|telegram|line|email|e-mail|\s|,)*",
    r"(facebook|twitter|whatsapp|telegram|linkedin|pinterest|email|e-mail|copy link|salin tautan)(\s*[|,/]?\s*(facebook|twitter|whatsapp|telegram|linkedin|pinterest|email|e-mail|copy link|salin tautan))*",
    r"video berita terkait\s*:?",
    r"berita terkait\s*:?",
    r"baca (juga|pula)\s*:?",
    r"tags?\s*:?",
    r"\d{1,2}",
    r"[•·*\-–—_=|]+",
    r"please enter your (comment|name here|name|email address here)!?",
    r"you have entered an incorrect email address!?",
    r"save my name, email, and website in this browser for the next time i comment\.?",
    r"alamat email anda tidak akan dipublikasikan\.?.*",
    r"ruas yang wajib ditandai \*",
    r"this site uses akismet to reduce spam\..*",
    r"(advertisement|iklan|scroll to continue with content|lanjut baca)",
]
# A line matching one of these starts the comment form / footer: it and everything after go.
TAIL_MARKERS = [
    r"tinggalkan (balasan|komentar)",
    r"leave a (reply|comment)",
    r"(tulis|kirim) komentar",
    r"komentar\s*\(\d+\)",
    r"\d+\s+komentar",
]
_BOILER_RE = re.compile("|".join(f"(?:{p})" for p in BOILERPLATE_LINES), re.IGNORECASE)
_TAIL_RE = re.compile("|".join(f"(?:{p})" for p in TAIL_MARKERS), re.IGNORECASE)
_SENT_END = tuple('.!?:;"”’)]')

_DASH = r"[-–—]"
_DATELINES = [
    # "Amuntai (ANTARA) -"
    re.compile(rf"^(?P<place>[A-Z][\w.'’ ]{{1,40}}?)\s*\((?P<source>[^()\n]{{2,40}})\)\s*{_DASH}"),
    # "Serang, Darah Juang Online –"
    re.compile(rf"^(?P<place>[A-Z][\w.'’ ]{{1,30}}?),\s*(?P<source>[A-Z][^,\n–—]{{1,40}}?)\s*{_DASH}\s"),
    # "BantenTribun.id-", "detik.com -"
    re.compile(rf"^(?P<source>[A-Za-z][\w-]*\.(?:co\.id|id|com|net|org|news))\s*{_DASH}"),
    # "Padang -", "JAKARTA, KOMPAS.com -" handled above; plain place
    re.compile(rf"^(?P<place>[A-Z][A-Za-z.'’ ]{{1,30}}?)\s+{_DASH}\s"),
]
# A short line "Pemprov Jatim, Bhirawa" standing alone before the body.
_PLACE_SOURCE_LINE = re.compile(r"^(?P<place>[A-Z][\w.' ]{1,30}),\s*(?P<source>[A-Z][\w.' ]{1,30})$")


@dataclass
class Cleaned:
    """Result of :func:`clean_article`."""

    text: str
    title: Optional[str]
    source: Optional[str]
    place: Optional[str]
    date: Optional[str]
    date_text: Optional[str] = None


def normalize_whitespace(raw: str) -> str:
    """Unify newlines, drop control characters, collapse runs of spaces within lines."""
    raw = raw.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    raw = raw.replace("\u00a0", " ").replace("\u200b", "").replace("\t", " ")
    raw = "".join(ch for ch in raw if ch == "\n" or ch.isprintable() or ch == " ")
    lines = [re.sub(r" {2,}", " ", line).strip() for line in raw.split("\n")]
    return "\n".join(lines)


def is_boilerplate(line: str) -> bool:
    """True for a whole line that is web boilerplate (share buttons, comment form, labels)."""
    return bool(_BOILER_RE.fullmatch(line.strip()))


def _is_tail_marker(line: str) -> bool:
    return bool(_TAIL_RE.fullmatch(line.strip()))


def _is_short_label(line: str) -> bool:
    """Short line without sentence punctuation (menu item, keyword, caption tag)."""
    return len(line.split()) <= 6 and not line.endswith(_SENT_END)


def clean_lines(raw: str) -> list[str]:
    """Non-boilerplate lines of ``raw`` (empty lines kept as paragraph breaks)."""
    lines = normalize_whitespace(raw).split("\n")
    counts = Counter(line.lower() for line in lines if line)
    out: list[str] = []
    for line in lines:
        if not line:
            out.append("")
            continue
        if _is_tail_marker(line):
            break
        if is_boilerplate(line):
            continue
        # The same short label repeated ("Alaku" x3, an image alt text twice) is page furniture.
        if counts[line.lower()] >= 2 and _is_short_label(line):
            continue
        out.append(line)
    return out


def _paragraphs(lines: list[str]) -> list[str]:
    """Join lines into paragraphs: every line is one, except hard-wrapped continuations."""
    paras: list[str] = []
    prev_blank = True
    for line in lines:
        if not line:
            prev_blank = True
            continue
        if (
            paras
            and not prev_blank
            and not paras[-1].endswith(_SENT_END)
            and line[:1].islower()
        ):
            paras[-1] = paras[-1] + " " + line
        else:
            paras.append(line)
        prev_blank = False
    return paras


def _looks_like_title(line: str) -> bool:
    return 3 <= len(line) <= 250 and not line.endswith((".", "!", ",", ";", ":")) and not _DATELINES[0].match(line)


def parse_date(text: str) -> Optional[str]:
    """The date of ``text`` as ISO ``YYYY-MM-DD`` ("Selasa 15 September 2020", "September 15, 2020",
    "2020-09-15", "15/09/2020"; see :func:`qa.ingest.dates.article_date`); ``None`` when it has no
    full date."""
    found = article_date(text)
    return found.iso if found else None


def parse_dateline(paragraphs: list[str]) -> tuple[Optional[str], Optional[str], int]:
    """(place, source, index of a paragraph that is only a dateline, else -1) from the first paragraphs."""
    for i, para in enumerate(paragraphs[:4]):
        m = _PLACE_SOURCE_LINE.match(para)
        if m and len(para.split()) <= 6:
            return m.group("place").strip(), m.group("source").strip(), i
        for rx in _DATELINES:
            m = rx.match(para)
            if m:
                gd = m.groupdict()
                place = (gd.get("place") or "").strip() or None
                source = (gd.get("source") or "").strip() or None
                if place and len(place.split()) > 4:
                    continue
                return place, source, -1
    return None, None, -1


def clean_article(raw: str, *, title: Optional[str] = None, find_title: bool = True,
                  metadata_date: Optional[str] = None) -> Cleaned:
    """Clean raw article text and pull out title, dateline (place, outlet) and date.

    ``title`` given by the caller (HTML ``<h1>``, a JSON field) wins; otherwise, when
    ``find_title`` is set, a first short line without final punctuation is taken as the title
    and removed from the body. The date is ``metadata_date`` (a JSON/HTML ``date`` field) normalised
    to ISO when it parses, else the dateline's or the first full date of the text
    (:func:`qa.ingest.dates.article_date`); ``date_text`` is the string it was read from.
    """
    paras = _paragraphs(clean_lines(raw))
    if title is None and find_title and len(paras) > 1 and _looks_like_title(paras[0]):
        title = paras.pop(0)
    if title is not None and paras and paras[0].strip() == title.strip():
        paras.pop(0)
    place, source, _ = parse_dateline(paras)
    text = "\n\n".join(paras)
    found = article_date(text, metadata_date=metadata_date)
    return Cleaned(text=text, title=title.strip() if title else None, source=source, place=place,
                   date=found.iso if found else None,
                   date_text=(metadata_date if found.from_metadata else found.text) if found else None)
