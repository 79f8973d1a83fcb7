"""Lexical retrieval: Okapi BM25 over analyzer tokens, behind one protocol (:class:`LexicalIndex`).

``rank_bm25`` serves small indexes (scores computed on the fly from the tokens); ``bm25s`` serves
large ones (a precomputed sparse score matrix, memory-mapped). Both give rank-bm25's scores.
"""
from __future__ import annotations

from typing import Sequence

from .base import ENGINES, LexicalIndex, Ranked, read_tokens, save_tokens, top_k


def make_lexical(tokens: Sequence[list[str]], *, engine: str = "rank_bm25", k1: float, b: float) -> LexicalIndex:
    """A BM25 index of ``engine`` over ``tokens`` (one list of analyzed tokens per chunk)."""
    if engine not in ENGINES:
        raise ValueError(f"lexical engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    if engine == "bm25s":
        from .bm25s_engine import SparseBM25

        return SparseBM25.build(tokens, k1=k1, b=b)
    from .rank_bm25_engine import RankBM25

    return RankBM25(tokens, k1=k1, b=b)


__all__ = ["ENGINES", "LexicalIndex", "Ranked", "make_lexical", "read_tokens", "save_tokens", "top_k"]
