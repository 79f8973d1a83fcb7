"""What ``qa eval`` and ``qa tune`` share: the retrieval settings they report and search, and the
candidate lists of many questions computed once through the retrieval pipeline
(:mod:`qa.retrieval`: the same stages as :meth:`qa.Assistant.retrieve`, on any store).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from ..assistant import Assistant
from ..config import Config
from ..retrieval import Query, describe
from ..stores.base import Ranked

log = logging.getLogger("qa")

#: the settings that ``qa tune`` may change without rebuilding the index
RETRIEVAL_KEYS = ("mode", "fusion", "fusion_pool", "dense_weight", "rrf_k", "candidates", "bm25_k1", "bm25_b", "rerank")


def retrieval_settings(cfg: Config) -> dict[str, Any]:
    """The retrieval part of a config (what ``qa tune`` searches and writes)."""
    return {k: getattr(cfg, k) for k in RETRIEVAL_KEYS}


def gold_ids(assistant: Assistant, articles: Sequence[str], fold: bool) -> list[str]:
    """The gold articles that are in the index, as the rankings name them: with ``fold`` (the
    ``fold_duplicates`` setting) each as its story (:meth:`qa.retrieval.Pipeline.story`: a
    near-duplicate of the gold is the same story, shown as one hit), else by id."""
    ids = [a for a in articles if a in assistant.articles]
    return list(dict.fromkeys(assistant.pipeline.story(a) for a in ids)) if fold else ids


def ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


@dataclass
class CandidateLists:
    """BM25 lists per (k1, b) and dense lists for a set of questions, to ``depth`` passages."""

    depth: int
    dense: list[Ranked]
    bm25: dict[tuple[float, float], list[Ranked]]
    vectors: list[np.ndarray]  # query vectors, one per question
    tokens: list[tuple[str, ...]] = field(default_factory=list)  # analyzed queries, one per question
    indexes: dict[tuple[float, float], Any] = field(default_factory=dict)  # BM25 variants (None: the store's)
    sentences: list[dict] = field(default_factory=list)  # sentence cosines by passage, per question (the re-rank)


def bm25_params_available(assistant: Assistant, params: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The ``(k1, b)`` pairs the store can score under (Milvus: only its own)."""
    own = (float(assistant.config.bm25_k1), float(assistant.config.bm25_b))
    out = []
    for k1, b in dict.fromkeys(params):
        if (float(k1), float(b)) == own or assistant.store.lexical_variant(k1, b) is not None:
            out.append((k1, b))
    return out


def candidate_lists(assistant: Assistant, questions: Sequence[str], depth: int,
                    bm25_params: Sequence[tuple[float, float]], cfg: Optional[Config] = None) -> CandidateLists:
    """Every question's dense list once, and its BM25 list for each ``(k1, b)`` the store supports."""
    cfg = cfg or assistant.config
    pipe = assistant.pipeline
    own = (float(assistant.config.bm25_k1), float(assistant.config.bm25_b))
    queries: list[Query] = [pipe.query(q, expand_abbreviations=cfg.expand_abbreviations) for q in questions]
    t0 = time.perf_counter()
    vectors = [pipe.embed(q) for q in queries]  # one at a time, as ``retrieve`` encodes them
    dense = [pipe.dense(v, depth) for v in vectors]
    log.info("dense candidates for %d questions in %.1fs", len(questions), time.perf_counter() - t0)
    t0 = time.perf_counter()
    lists: dict[tuple[float, float], list[Ranked]] = {}
    indexes: dict[tuple[float, float], Any] = {}
    for k1, b in bm25_params_available(assistant, bm25_params):
        index = None if (float(k1), float(b)) == own else assistant.store.lexical_variant(k1, b)
        lists[(k1, b)] = [pipe.lexical(q, depth, index=index) for q in queries]
        indexes[(k1, b)] = index
    log.info("BM25 candidates for %d settings in %.1fs", len(lists), time.perf_counter() - t0)
    return CandidateLists(depth, dense, lists, vectors, [q.tokens for q in queries], indexes, [{} for _ in queries])


__all__ = ["CandidateLists", "RETRIEVAL_KEYS", "bm25_params_available", "candidate_lists", "describe", "ms_since",
           "retrieval_settings"]
