"""The article metadata a filter needs, as arrays: :class:`ArticleTable` turns a
:class:`~qa.filters.Filter` into a boolean mask over the chunks (BM25 and FAISS then search only
those). Built on the first filtered search from the loaded articles and chunks (a large index reads
its JSONL rows once, without building objects); masks of recent filters are kept."""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Iterable, Optional

import numpy as np

from ...filters import Filter, normalize_source

log = logging.getLogger("qa")

MASKS = 32  # masks of the most recent filters kept (one bool per chunk each)


class ArticleTable:
    """Per-article id, normalised source and ISO date ("" when unknown), and each chunk's article row."""

    def __init__(self, rows: Iterable[tuple[str, Optional[str], Optional[str]]], chunk_articles: Iterable[str]):
        ids, sources, dates = [], [], []
        for aid, source, date in rows:
            ids.append(aid)
            sources.append(normalize_source(source))
            dates.append(date or "")
        self.ids = np.array(ids, dtype=object)
        self.sources = np.array(sources, dtype=object)
        self.dates = np.array(dates, dtype="U10")
        row = {a: i for i, a in enumerate(ids)}
        self.chunk_article = np.fromiter((row[a] for a in chunk_articles), dtype=np.int64)
        self._masks: OrderedDict[Filter, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def of(cls, articles: Any, chunks: Any) -> "ArticleTable":
        """From a store's articles (a mapping id -> Article, or a lazy one with ``metadata()``) and
        chunks (a list of Chunk, or a lazy one with ``article_id_list()``)."""
        t0 = time.perf_counter()
        rows = articles.metadata() if hasattr(articles, "metadata") else \
            ((a.id, a.source, a.date) for a in articles.values())
        owners = chunks.article_id_list() if hasattr(chunks, "article_id_list") else (c.article_id for c in chunks)
        table = cls(rows, owners)
        log.debug("filter table: %d articles, %d chunks in %.2fs", len(table.ids), len(table.chunk_article),
                  time.perf_counter() - t0)
        return table

    def article_mask(self, f: Filter) -> np.ndarray:
        """One bool per article: does it pass ``f``."""
        keep = np.ones(len(self.ids), dtype=bool)
        if f.article_ids:
            keep &= np.isin(self.ids, np.array(f.article_ids, dtype=object))
        if f.sources:
            keep &= np.isin(self.sources, np.array(sorted(f.sources), dtype=object))
        if f.date_from or f.date_to:
            keep &= self.dates != ""
            if f.date_from:
                keep &= self.dates >= f.date_from
            if f.date_to:
                keep &= self.dates <= f.date_to
        return keep

    def mask(self, f: Filter) -> np.ndarray:
        """One bool per chunk (read-only; cached for the last ``MASKS`` filters)."""
        with self._lock:
            got = self._masks.get(f)
            if got is not None:
                self._masks.move_to_end(f)
                return got
        out = self.article_mask(f)[self.chunk_article]
        out.flags.writeable = False
        with self._lock:
            self._masks[f] = out
            while len(self._masks) > MASKS:
                self._masks.popitem(last=False)
        return out


__all__ = ["ArticleTable"]
