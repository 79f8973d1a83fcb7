"""Lexical retrieval: Okapi BM25 (rank-bm25) over analyzer tokens.

Persisted as ``tokens.jsonl`` (one JSON list of tokens per chunk, in chunk order), which is
readable and is all BM25 needs: statistics are recomputed on load, so they always match the
chunks that are actually in the index.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

from ..analyzer import Analyzer
from . import top_k


class BM25Retriever:
    """BM25 over pre-tokenised chunks."""

    name = "bm25"

    def __init__(self, tokens: Sequence[list[str]], analyzer: Analyzer, *, k1: float = 1.5, b: float = 0.75):
        from rank_bm25 import BM25Okapi

        self.analyzer = analyzer
        self.k1, self.b = k1, b
        self.size = len(tokens)
        # rank-bm25 divides by the corpus size; an empty token list still counts as a document.
        self._bm25 = BM25Okapi([list(t) for t in tokens], k1=k1, b=b) if tokens else None

    @property
    def max_idf(self) -> float:
        """The largest IDF in the index (the weight of the rarest word)."""
        if self._bm25 is None or not self._bm25.idf:
            return 1.0
        return float(max(self._bm25.idf.values()))

    def idf(self, token: str) -> float:
        """Inverse document frequency of an analyzed token (0 for an unknown token)."""
        if self._bm25 is None:
            return 0.0
        return float(self._bm25.idf.get(token, 0.0))

    def scores_for(self, tokens: list[str], ids: list[int]) -> list[float]:
        """BM25 scores of the given chunks for already analyzed query ``tokens``."""
        if self._bm25 is None or not tokens or not ids:
            return [0.0] * len(ids)
        return [float(x) for x in self._bm25.get_batch_scores(tokens, list(ids))]

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        q = self.analyzer.tokens(query)
        if not q or self._bm25 is None:
            return []
        return top_k(self._bm25.get_scores(q), k)

    @staticmethod
    def save_tokens(tokens: Iterable[list[str]], path: Path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            for t in tokens:
                f.write(json.dumps(t, ensure_ascii=False))
                f.write("\n")

    @staticmethod
    def load_tokens(path: Path) -> list[list[str]]:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f]
