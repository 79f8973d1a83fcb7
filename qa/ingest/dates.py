"""Dates in Indonesian and English news text, normalised to ISO ``YYYY-MM-DD``.

Candidate spans are found with our own regular expressions (datelines such as "Jakarta, Kamis
(8/7/2021)", "Selasa 15 September 2020", "Dec 2, 2026", "15/09/2020", "Rabu (13/4)"); each span
with a month name is then parsed by ``dateparser`` (languages ``id`` and ``en``, strict, fixed
relative base), so results are deterministic and dateparser never sees long text. The news-specific
glue lives here: day-first numeric dates (the Indonesian convention), the "(13/4)" day/month form
whose year comes from context, and month abbreviations dateparser lacks ("Ags", "Pebr").
An impossible date (31 February, month 13) is never returned.
"""
from __future__ import annotations

import dataclasses
import datetime
import functools
import logging
import re
from dataclasses import dataclass
from typing import Optional

log = logging.getLogger("qa")

MIN_YEAR, MAX_YEAR = 1800, 2100
DATELINE_CHARS = 200  # a date starting this close to the start of the text is the dateline's

# Month tokens the candidate regexes accept. Abbreviations are accepted only with a year ("3 Des"
# alone may be "Desa"); full names also without one ("15 September" takes its year from context).
_FULL_MONTHS = ["januari", "january", "februari", "february", "pebruari", "maret", "march", "april",
                "mei", "may", "juni", "june", "juli", "july", "agustus", "august", "september",
                "oktober", "october", "november", "nopember", "desember", "december"]
_ABBR_MONTHS = ["jan", "feb", "peb", "pebr", "febr", "mar", "mrt", "apr", "jun", "jul", "agu", "agt",
                "ags", "agst", "agus", "aug", "sep", "sept", "okt", "oct", "nov", "nop", "des", "dec"]
# Abbreviations dateparser 1.x does not know, mapped to a name it does.
_FOR_DATEPARSER = {"ags": "agustus", "agst": "agustus", "agus": "agustus", "pebr": "februari",
                   "febr": "februari"}
_WEEKDAYS = {"senin": 0, "monday": 0, "selasa": 1, "tuesday": 1, "rabu": 2, "wednesday": 2,
             "kamis": 3, "thursday": 3, "jum": 4, "friday": 4, "sabtu": 5, "saturday": 5,
             "ming": 6, "ahad": 6, "sunday": 6}


def _alt(words: list[str]) -> str:
    return "|".join(sorted(words, key=len, reverse=True))


_MON_FULL = _alt(_FULL_MONTHS)
_MON_ANY = _alt(_FULL_MONTHS + _ABBR_MONTHS)
_WD = (r"senin|selasa|rabu|kamis|jum['’\"`]?at|sabtu|ming+u|ahad|monday|tuesday|wednesday|thursday"
       r"|friday|saturday|sunday")
# "Senin pagi (12/7)", "Selasa malam, (7/11)", "Jumat silam (19/5)"
_TOD = r"pagi|siang|sore|petang|malam|dini\s+hari|kemarin|lalu|silam|ini|esok|besok|mendatang"
_PRE = rf"(?:\b(?P<wd>{_WD})\b(?:\s+(?:{_TOD})\b)?\s*,?\s*)?"
_NOT_BEFORE = r"(?<!\d[.,])(?<![\w./-])(?<!\d\s[-–])(?<!\d[-–]\s)(?<!\d\s[-–]\s)"  # a day number not glued to another number, a version, a word
_ORD = r"(?:st|nd|rd|th)?"

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    # "Selasa 15 September 2020", "2nd December 2026", "12 Okt 2021", "15 September" (year from context)
    ("named", re.compile(
        rf"{_PRE}(?P<po>\(\s*)?{_NOT_BEFORE}(?P<d>\d{{1,2}}){_ORD}(?:\s+of)?\s+"
        rf"(?:(?P<mon>{_MON_ANY})\b\.?,?\s+(?P<y>\d{{4}})(?!\d)|(?P<mon2>{_MON_FULL})\b)(?(po)\s*\))",
        re.IGNORECASE)),
    # "07-Des-2020", "7-Dec-2020"
    ("named", re.compile(rf"{_NOT_BEFORE}(?P<d>\d{{1,2}})-(?P<mon>{_MON_ANY})-(?P<y>\d{{4}})(?!\d)", re.IGNORECASE)),
    # "Dec 2, 2026", "September 15, 2020", "December 2nd 2026"
    ("named_mdy", re.compile(
        rf"{_PRE}\b(?P<mon>{_MON_ANY})\b\.?\s+(?P<d>\d{{1,2}}){_ORD}(?:,\s*|\s+)(?P<y>\d{{4}})(?!\d)",
        re.IGNORECASE)),
    # "15/09/2020", "Senin, 7/12/2020", "Kamis (8/7/2021)", "( 18 / 11 / 2017 )", "15-09-2020", "15.09.2020"
    ("numeric", re.compile(
        rf"{_PRE}(?P<po>\(\s*)?{_NOT_BEFORE}(?<!versi )(?<!version )(?P<d>\d{{1,2}})(?:\s*/\s*(?P<m>\d{{1,2}})\s*/\s*"
        rf"|(?P<s>[.-])(?P<m2>\d{{1,2}})(?P=s))(?P<y>\d{{4}})(?![\w]|[./-]\d)(?(po)\s*\))",
        re.IGNORECASE)),
    # "2020-09-15", "2020-09-15T10:00:00+07:00", "2020/09/15"
    ("iso", re.compile(r"(?<![\w.,/-])(?P<y>\d{4})(?P<s>[-/])(?P<m>\d{1,2})(?P=s)(?P<d>\d{1,2})(?![\d/-])")),
    # "Rabu (13/4)", "( 27 / 3 )": day/month in parentheses, year from context; "Selasa (4/1/22)"
    ("paren_dm", re.compile(
        rf"{_PRE}\(\s*(?P<d>\d{{1,2}})\s*/\s*(?P<m>\d{{1,2}})(?:\s*/\s*(?P<yy>\d{{2}}))?\s*\)", re.IGNORECASE)),
    # "Senin, 7/12" (a weekday is required: a bare "24/7" is not a date)
    ("weekday_dm", re.compile(
        rf"\b(?P<wd>{_WD})\b(?:\s+(?:{_TOD})\b)?\s*,?\s*(?P<d>\d{{1,2}})/(?P<m>\d{{1,2}})(?![\d/.])",
        re.IGNORECASE)),
]


@dataclass(frozen=True)
class DateMention:
    """A date found in text.

    ``iso``: ``YYYY-MM-DD``, or ``None`` when the text gives day and month but no year and the
    context gives none either. ``text`` is the original string, ``text == source[start:end]``
    (``source``: the article text, or the metadata string when ``from_metadata``).
    ``year_inferred``: the year came from context, not from the mention itself.
    """

    iso: Optional[str]
    text: str
    start: int
    end: int
    day: int
    month: int
    year: Optional[int]
    year_inferred: bool = False
    weekday: Optional[int] = None  # 0 = Monday, as written in the mention
    from_metadata: bool = False

    @property
    def date(self) -> Optional[datetime.date]:
        return datetime.date.fromisoformat(self.iso) if self.iso else None


@functools.lru_cache(maxsize=1)
def _parser():
    from dateparser.date import DateDataParser

    settings = {"DATE_ORDER": "DMY", "PREFER_DAY_OF_MONTH": "first",
                "REQUIRE_PARTS": ["day", "month", "year"], "STRICT_PARSING": True,
                "RELATIVE_BASE": datetime.datetime(2000, 1, 1), "PARSERS": ["absolute-time"]}
    return DateDataParser(languages=["id", "en"], settings=settings)


@functools.lru_cache(maxsize=4096)
def _dateparser_date(day: int, month_token: str, year: int) -> Optional[datetime.date]:
    """Parse "<day> <month name> <year>" with dateparser (None when it is not a real date)."""
    token = month_token.lower().rstrip(".")
    result = _parser().get_date_data(f"{day} {_FOR_DATEPARSER.get(token, token)} {year}")
    if result.date_obj is None:
        return None
    got = result.date_obj.date()
    return got if got.day == day and got.year == year else None  # dateparser must not repair input


def _make_date(y: int, m: int, d: int) -> Optional[datetime.date]:
    if not MIN_YEAR <= y <= MAX_YEAR:
        return None
    try:
        return datetime.date(y, m, d)
    except ValueError:
        return None


def _weekday(token: Optional[str]) -> Optional[int]:
    if not token:
        return None
    t = token.lower()
    return next((v for k, v in _WEEKDAYS.items() if t.startswith(k)), None)


def _month_number(token: str) -> Optional[int]:
    # Resolve the name through dateparser with a fixed day/year (2000 is a leap year).
    got = _dateparser_date(1, token, 2000)
    return got.month if got else None


def _infer_year(d: int, m: int, wd: Optional[int], refs: list[tuple[datetime.date, bool]]) -> Optional[int]:
    """The year of a day/month mention. Each reference (a full date, or a bare year: ``exact``
    False) proposes its year and the ones either side (a full date: nearest first; a bare year: its
    own first); the first proposal whose weekday matches the written one wins, else the first."""
    cands: list[datetime.date] = []
    for ref, exact in refs:
        near = [dt for y in (ref.year, ref.year - 1, ref.year + 1) if (dt := _make_date(y, m, d))]
        if exact:
            near.sort(key=lambda dt: abs((dt - ref).days))
        cands += [dt for dt in near if dt not in cands]
    if not cands:
        return None
    return next((dt.year for dt in cands if wd is not None and dt.weekday() == wd), cands[0].year)


def _candidates(text: str) -> list[tuple[str, re.Match[str]]]:
    """Non-overlapping candidate matches, leftmost first (the longer one on a tie)."""
    found = [(kind, m) for kind, rx in _PATTERNS for m in rx.finditer(text)]
    found.sort(key=lambda km: (km[1].start(), -(km[1].end() - km[1].start())))
    out: list[tuple[str, re.Match[str]]] = []
    end = -1
    for kind, m in found:
        if m.start() >= end:
            out.append((kind, m))
            end = m.end()
    return out


def _mention(kind: str, m: re.Match[str]) -> Optional[tuple[int, int, Optional[int], Optional[int]]]:
    """(day, month, year or None, weekday) of one candidate; None when it is no real date."""
    g = m.groupdict()
    wd = _weekday(g.get("wd"))
    d = int(g["d"])
    if kind in ("named", "named_mdy"):
        token = g.get("mon") or g.get("mon2")
        if g.get("y") is None:  # full month name, no year
            mon = _month_number(token)
            return (d, mon, None, wd) if mon and _make_date(2000, mon, d) else None
        y = int(g["y"])
        if not MIN_YEAR <= y <= MAX_YEAR:
            return None
        got = _dateparser_date(d, token, y)
        return (got.day, got.month, got.year, wd) if got else None
    mon = int(g.get("m") or g.get("m2"))
    y = int(g["y"]) if g.get("y") else None
    if g.get("yy"):  # a two-digit year, as Python's %y reads it
        y = int(g["yy"]) + (2000 if int(g["yy"]) < 69 else 1900)
    if y is not None:
        return (d, mon, y, wd) if _make_date(y, mon, d) else None
    return (d, mon, None, wd) if _make_date(2000, mon, d) else None


def _check_year(base_year: Optional[int]) -> None:
    if base_year is not None and (isinstance(base_year, bool) or not isinstance(base_year, int)
                                  or not MIN_YEAR <= base_year <= MAX_YEAR):
        raise ValueError(f"base_year must be an int in {MIN_YEAR}..{MAX_YEAR} or None, got {base_year!r}")


def parse_dates(text: str, *, base_year: Optional[int] = None,
                reference: Optional[datetime.date] = None) -> list[DateMention]:
    """Every date mentioned in ``text``, in order.

    A mention without a year ("Rabu (13/4)", "15 September") takes it from context, in this order:
    ``reference`` (a full date, e.g. the article's metadata date: the year placing the mention
    nearest to it), the first full date in ``text`` from 1970 on (likewise), ``base_year``; a
    weekday written with it ("Rabu") picks the first of these years (or the ones either side)
    that fits; without any context its ``iso`` is ``None``.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    _check_year(base_year)
    if reference is not None and not isinstance(reference, datetime.date):
        raise ValueError(f"reference must be a datetime.date or None, got {reference!r}")
    raw: list[tuple[re.Match[str], int, int, Optional[int], Optional[int]]] = []
    for kind, m in _candidates(text):
        parsed = _mention(kind, m)
        if parsed is not None:
            raw.append((m, *parsed))
    in_text = next((_make_date(y, mon, d) for _, d, mon, y, _ in raw if y and y >= 1970), None)
    refs = [(r, True) for r in (reference, in_text) if r is not None]
    if base_year is not None:
        refs.append((datetime.date(base_year, 1, 1), False))
    out: list[DateMention] = []
    for m, d, mon, y, wd in raw:
        inferred = y is None
        if inferred:
            y = _infer_year(d, mon, wd, refs)
        iso = f"{y:04d}-{mon:02d}-{d:02d}" if y is not None else None
        out.append(DateMention(iso=iso, text=m.group(0), start=m.start(), end=m.end(), day=d, month=mon,
                               year=y, year_inferred=inferred and y is not None, weekday=wd))
    return out


def parse_metadata_date(value: str) -> Optional[DateMention]:
    """A metadata date ("2020-09-15T10:00:00+07:00", "15 September 2020", "Selasa, 15/09/2020 10:00
    WIB"): the first full date in it (offsets refer to ``value``); None when it has none."""
    if not isinstance(value, str):
        raise ValueError(f"metadata date must be a str, got {type(value).__name__}")
    for mention in parse_dates(value[:200]):
        if mention.iso and not mention.year_inferred:
            return dataclasses.replace(mention, from_metadata=True)
    return None


def article_date(text: str, *, metadata_date: Optional[str] = None,
                 base_year: Optional[int] = None) -> Optional[DateMention]:
    """The article's date: a ``metadata_date`` (a JSON/JSONL/HTML ``date`` field) when it parses;
    else a dated mention starting in the first ``DATELINE_CHARS`` characters (the dateline); else the
    first dated mention written with its weekday (the reporting form "Senin (27/3)", "Selasa,
    15 September 2020": on IndoSum it agrees with the crawl time more often than a bare full date
    deep in the text, which is often a past or future event); else the first full date; else the
    first mention whose year came from context."""
    _check_year(base_year)
    if metadata_date:
        meta = parse_metadata_date(metadata_date)
        if meta is not None:
            return meta
        log.debug("metadata date %r not understood; using the text's", metadata_date[:80])
    mentions = [x for x in parse_dates(text, base_year=base_year) if x.iso]
    for pick in ((x for x in mentions if x.start < DATELINE_CHARS), (x for x in mentions if x.weekday is not None),
                 (x for x in mentions if not x.year_inferred), iter(mentions)):
        found = next(pick, None)
        if found is not None:
            return found
    return None
