"""Cleaning of raw article text: web boilerplate out, title / dateline / date metadata out.

The cleaned text is the article's canonical text: quotes and offsets refer to it. Cleaning only
removes whole lines (boilerplate), normalises whitespace, and joins hard-wrapped lines; it never
rewrites the words of a sentence.
"""
from __future__ import annotations

import datetime
import re
from collections import Counter
from dataclasses import dataclass
from typing import Optional

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

MONTHS = {
    "januari": 1, "january": 1, "jan": 1,
    "februari": 2, "february": 2, "feb": 2, "pebruari": 2,
    "maret": 3, "march": 3, "mar": 3,
    "april": 4, "apr": 4,
    "mei": 5, "may": 5,
    "juni": 6, "june": 6, "jun": 6,
    "juli": 7, "july": 7, "jul": 7,
    "agustus": 8, "august": 8, "agu": 8, "agt": 8, "aug": 8,
    "september": 9, "sep": 9, "sept": 9,
    "oktober": 10, "october": 10, "okt": 10, "oct": 10,
    "november": 11, "nov": 11, "nopember": 11,
    "desember": 12, "december": 12, "des": 12, "dec": 12,
}
_MONTH_ALT = "|".join(sorted(MONTHS, key=len, reverse=True))
_DAYS = r"(?:senin|selasa|rabu|kamis|jumat|jum'at|sabtu|minggu|ahad|monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_DATE_DMY = re.compile(rf"\b(?:{_DAYS},?\s*(?:\(|,)?\s*)?(\d{{1,2}})\s+({_MONTH_ALT})\.?\s+(\d{{4}})\b", re.IGNORECASE)
_DATE_MDY = re.compile(rf"\b({_MONTH_ALT})\.?\s+(\d{{1,2}}),\s*(\d{{4}})\b", re.IGNORECASE)
_DATE_ISO = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")

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


def _valid_date(y: int, mon: int, d: int) -> bool:
    try:
        datetime.date(y, mon, d)
    except ValueError:
        return False
    return 1900 <= y <= 2100


def parse_date(text: str) -> Optional[str]:
    """Earliest full date in ``text`` as ISO ``YYYY-MM-DD`` ("Selasa 15 September 2020",
    "September 15, 2020", "2020-09-15"); ``None`` when there is none."""
    found: list[tuple[int, str]] = []
    for rx, order in ((_DATE_DMY, "dmy"), (_DATE_MDY, "mdy"), (_DATE_ISO, "ymd")):
        for m in rx.finditer(text):
            a, b, c = m.group(1), m.group(2), m.group(3)
            if order == "dmy":
                d, mon, y = int(a), MONTHS[b.lower()], int(c)
            elif order == "mdy":
                mon, d, y = MONTHS[a.lower()], int(b), int(c)
            else:
                y, mon, d = int(a), int(b), int(c)
            if _valid_date(y, mon, d):
                found.append((m.start(), f"{y:04d}-{mon:02d}-{d:02d}"))
                break
    return min(found)[1] if found else None


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


def clean_article(raw: str, *, title: Optional[str] = None, find_title: bool = True) -> Cleaned:
    """Clean raw article text and pull out title, dateline (place, outlet) and date.

    ``title`` given by the caller (HTML ``<h1>``, a JSON field) wins; otherwise, when
    ``find_title`` is set, a first short line without final punctuation is taken as the title
    and removed from the body.
    """
    paras = _paragraphs(clean_lines(raw))
    if title is None and find_title and len(paras) > 1 and _looks_like_title(paras[0]):
        title = paras.pop(0)
    if title is not None and paras and paras[0].strip() == title.strip():
        paras.pop(0)
    place, source, _ = parse_dateline(paras)
    text = "\n\n".join(paras)
    date = parse_date(text)
    return Cleaned(text=text, title=title.strip() if title else None, source=source, place=place, date=date)
