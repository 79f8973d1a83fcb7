"""The ``rank_bm25`` engine (small indexes): rank-bm25's ``BM25Okapi`` over the chunks' tokens.

Persisted as ``tokens.jsonl`` only (readable, and all BM25 needs): statistics are recomputed on
load, so they always match the chunks that are actually in the index.
"""
from __future__ import annotations

from collections import Counter
from typing import Optional, Sequence

import numpy as np

from .base import Ranked, masked, okapi_idf, top_k


class RankBM25:
    """:class:`~qa.lexical.LexicalIndex` over rank-bm25."""

    engine = "rank_bm25"

    def __init__(self, tokens: Sequence[list[str]], *, k1: float, b: float):
        from rank_bm25 import BM25Okapi

        self.k1, self.b = float(k1), float(b)
        self.size = len(tokens)
        # rank-bm25 divides by the corpus size; an empty token list still counts as a document.
        self._okapi = BM25Okapi([list(t) for t in tokens], k1=k1, b=b) if tokens else None
        if self._okapi is not None and self._okapi.idf:  # :func:`okapi_idf`'s floor, not rank-bm25's own
            df = Counter(w for doc in self._okapi.doc_freqs for w in doc)
            idf, _ = okapi_idf(np.fromiter(df.values(), dtype=np.float64, count=len(df)), self._okapi.corpus_size)
            self._okapi.idf = dict(zip(df, idf.tolist()))
        idf = self._okapi.idf if self._okapi is not None else {}
        self.max_idf = float(max(idf.values())) if idf else 1.0

    def idf(self, token: str) -> float:
        if self._okapi is None:
            return 0.0
        return float(self._okapi.idf.get(token, 0.0))

    def search(self, tokens: Sequence[str], k: int, allow: Optional[np.ndarray] = None) -> Ranked:
        if not tokens or self._okapi is None:
            return []
        return top_k(masked(self._okapi.get_scores(list(tokens)), allow), k)

    def scores(self, tokens: Sequence[str], ids: Sequence[int]) -> list[float]:
        if self._okapi is None or not tokens or not ids:
            return [0.0] * len(ids)
        return [float(x) for x in self._okapi.get_batch_scores(list(tokens), list(ids))]
