"""Which articles a search may return: :class:`Filter` (by outlet, date range, article ids).

``assistant.retrieve(q, filter=Filter(source="ANTARA", date_from="2021-07"))`` — or a plain dict with
the same keys. Every condition given must hold; an empty filter allows everything. Stores push the
filter down into their searches (a chunk mask for BM25 and an id selector for FAISS in the embedded
store, a ``filter`` expression in Milvus), so a filtered search still returns ``k`` passages when
``k`` match, and the pipeline checks every hit against :meth:`Filter.matches` before returning it.
"""
from __future__ import annotations

import calendar
import datetime
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional, Union

FIELDS = ("source", "date_from", "date_to", "article_ids")
_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{1,2}))?(?:-(\d{1,2}))?$")

DateLike = Union[str, datetime.date, None]
FilterLike = Union["Filter", Mapping[str, Any], None]


def normalize_source(name: Optional[str]) -> str:
    """The form sources are compared in: case-folded, inner whitespace collapsed ("" for none)."""
    return " ".join(name.split()).casefold() if name else ""


def date_bound(value: DateLike, *, end: bool, name: str = "date") -> Optional[str]:
    """An inclusive ISO bound from ``"2021"``, ``"2021-07"``, ``"2021-07-15"`` or a ``datetime.date``:
    a year or month means its first day (``end=False``) or its last day (``end=True``)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime.datetime):
        value = value.date()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an ISO date string (YYYY, YYYY-MM or YYYY-MM-DD) or a date, "
                         f"got {type(value).__name__}")
    m = _PARTIAL.match(value.strip())
    if not m:
        raise ValueError(f"{name} must be YYYY, YYYY-MM or YYYY-MM-DD, got {value!r}")
    y, mo, d = int(m.group(1)), m.group(2), m.group(3)
    try:
        if mo is None:
            return datetime.date(y, 12 if end else 1, 31 if end else 1).isoformat()
        mo = int(mo)
        if d is None:
            return datetime.date(y, mo, calendar.monthrange(y, mo)[1] if end else 1).isoformat()
        return datetime.date(y, mo, int(d)).isoformat()
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a valid date") from None


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a string or a list of strings, got {type(value).__name__}")
    out = []
    for v in value:
        if not isinstance(v, str) or not v.strip():
            raise ValueError(f"{name} must hold non-empty strings, got {v!r}")
        out.append(v.strip())
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class Filter:
    """Conditions on the articles a search may return (all given ones must hold).

    ``source``: outlet name or names (``Article.source``, compared case-insensitively; one of them
    must match). ``date_from`` / ``date_to``: inclusive bounds on ``Article.date``, as ``YYYY-MM-DD``,
    ``YYYY-MM`` or ``YYYY`` (a month or year bound covers the whole month or year) or a
    ``datetime.date``; an article without a date never matches a date bound. ``article_ids``: only
    these articles. Values are normalised when the filter is made (bad ones raise ``ValueError``).
    """

    source: tuple[str, ...] = ()
    date_from: Optional[str] = None
    date_to: Optional[str] = None
    article_ids: tuple[str, ...] = ()
    _sources: frozenset = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        sources = _strings(self.source, "source")
        object.__setattr__(self, "source", sources)
        object.__setattr__(self, "_sources", frozenset(normalize_source(s) for s in sources))
        object.__setattr__(self, "article_ids", _strings(self.article_ids, "article_ids"))
        lo = date_bound(self.date_from, end=False, name="date_from")
        hi = date_bound(self.date_to, end=True, name="date_to")
        if lo and hi and lo > hi:
            raise ValueError(f"date_from ({lo}) is after date_to ({hi})")
        object.__setattr__(self, "date_from", lo)
        object.__setattr__(self, "date_to", hi)

    @classmethod
    def of(cls, value: "Filter | Mapping[str, Any] | None") -> Optional["Filter"]:
        """``value`` as a Filter: None (or an empty filter) -> None; a dict's keys must be in :data:`FIELDS`."""
        if value is None:
            return None
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(FIELDS))
            if unknown:
                raise ValueError(f"unknown filter field(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(FIELDS)}")
            value = cls(**value)
        if not isinstance(value, Filter):
            raise ValueError(f"filter must be a qa.Filter or a dict with keys {', '.join(FIELDS)}, "
                             f"got {type(value).__name__}")
        return None if value.empty else value

    @property
    def empty(self) -> bool:
        return not (self.source or self.date_from or self.date_to or self.article_ids)

    @property
    def sources(self) -> frozenset:
        """The normalised source names (see :func:`normalize_source`)."""
        return self._sources

    def matches_values(self, article_id: str, source: Optional[str], date: Optional[str]) -> bool:
        if self.article_ids and article_id not in self.article_ids:
            return False
        if self._sources and normalize_source(source) not in self._sources:
            return False
        if self.date_from or self.date_to:
            if not date:
                return False
            if self.date_from and date < self.date_from or self.date_to and date > self.date_to:
                return False
        return True

    def matches(self, article: Any) -> bool:
        """Whether ``article`` (an :class:`~qa.types.Article`) passes every condition."""
        return self.matches_values(article.id, article.source, article.date)

    def to_dict(self) -> dict[str, Any]:
        return {"source": list(self.source), "date_from": self.date_from, "date_to": self.date_to,
                "article_ids": list(self.article_ids)}

    def describe(self, lang: str = "en") -> str:
        """A short human description: ``source ANTARA · 2021-07-01..2021-07-31`` (``lang="id"``:
        ``sumber ANTARA · ...``)."""
        w = _WORDS["id" if lang == "id" else "en"]
        parts = []
        if self.source:
            parts.append(w["source"] + " " + f" {w['or']} ".join(self.source))
        if self.date_from or self.date_to:
            parts.append(f"{self.date_from or '…'}..{self.date_to or '…'}")
        if self.article_ids:
            parts.append(f"{len(self.article_ids)} {w['articles']}")
        return " · ".join(parts) or w["all"]


_WORDS = {"en": {"source": "source", "or": "or", "articles": "article(s)", "all": "everything"},
          "id": {"source": "sumber", "or": "atau", "articles": "artikel", "all": "semua"}}


__all__ = ["FIELDS", "Filter", "FilterLike", "date_bound", "normalize_source"]
