"""Lexical retrieval: Okapi BM25 over analyzer tokens, with two engines.

``rank_bm25`` (small indexes): persisted as ``tokens.jsonl`` (one JSON list of tokens per chunk,
in chunk order), which is readable and is all BM25 needs: statistics are recomputed on load, so
they always match the chunks that are actually in the index. ``bm25s`` (large indexes, see
:mod:`qa.backends.sparse`): the same tokens, plus a precomputed sparse score matrix loaded
memory-mapped; both are rebuilt from all chunks on every build, so statistics stay right.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

from ..analyzer import Analyzer
from . import top_k

ENGINES = ("rank_bm25", "bm25s")


class BM25Retriever:
    """BM25 over pre-tokenised chunks."""

    name = "bm25"

    def __init__(self, tokens: Sequence[list[str]], analyzer: Analyzer, *, k1: float = 1.5, b: float = 0.75,
                 engine: str = "rank_bm25", sparse=None):
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
        self.analyzer = analyzer
        self.k1, self.b = k1, b
        self.engine = engine
        self._bm25 = None
        self._sparse = None
        if engine == "bm25s":
            from .sparse import SparseBM25

            self._sparse = sparse if sparse is not None else SparseBM25.build(tokens, k1=k1, b=b)
            self.size = self._sparse.size
        else:
            from rank_bm25 import BM25Okapi

            self.size = len(tokens)
            # rank-bm25 divides by the corpus size; an empty token list still counts as a document.
            self._bm25 = BM25Okapi([list(t) for t in tokens], k1=k1, b=b) if tokens else None

    @classmethod
    def from_sparse(cls, sparse, analyzer: Analyzer) -> "BM25Retriever":
        """A bm25s-engine retriever over an already built or loaded :class:`~qa.backends.sparse.SparseBM25`."""
        return cls([], analyzer, k1=sparse.k1, b=sparse.b, engine="bm25s", sparse=sparse)

    @property
    def max_idf(self) -> float:
        """The largest IDF in the index (the weight of the rarest word)."""
        if self._sparse is not None:
            return self._sparse.max_idf
        if self._bm25 is None or not self._bm25.idf:
            return 1.0
        return float(max(self._bm25.idf.values()))

    def idf(self, token: str) -> float:
        """Inverse document frequency of an analyzed token (0 for an unknown token)."""
        if self._sparse is not None:
            return self._sparse.idf(token)
        if self._bm25 is None:
            return 0.0
        return float(self._bm25.idf.get(token, 0.0))

    def scores_for(self, tokens: list[str], ids: list[int]) -> list[float]:
        """BM25 scores of the given chunks for already analyzed query ``tokens``."""
        if self._sparse is not None:
            if not tokens or not ids:
                return [0.0] * len(ids)
            return [float(x) for x in self._sparse.scores(tokens)[list(ids)]]
        if self._bm25 is None or not tokens or not ids:
            return [0.0] * len(ids)
        return [float(x) for x in self._bm25.get_batch_scores(tokens, list(ids))]

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        return self.search_tokens(self.analyzer.tokens(query), k)

    def search_tokens(self, q: list[str], k: int) -> list[tuple[int, float]]:
        """:meth:`search` for already analyzed query tokens."""
        if self._sparse is not None:
            return self._sparse.top(q, k) if q else []
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
