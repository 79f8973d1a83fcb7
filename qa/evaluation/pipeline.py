"""The retrieval pipeline of :meth:`qa.Assistant.retrieve`, one stage at a time.

Evaluation times each stage (BM25, query embedding, dense search, fusion) and tuning fuses the
same candidate lists under many settings, so both call the retrievers directly instead of going
through ``retrieve``. The stages are the library's own (``assistant.bm25.search``,
``assistant.embedder.encode``, ``assistant.dense.search_vector``, :mod:`qa.fusion`), with the same
query handling, depths and tie-breaking; ``tests/test_evaluation.py`` checks that the result is
``Assistant.retrieve``'s.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..assistant import MAX_QUERY_CHARS, Assistant
from ..backends.lexical import BM25Retriever
from ..config import Config
from ..errors import ConfigError
from ..fusion import convex, convex_candidates, rrf
from ..synonyms import expand
from ..types import Hit
from .metrics import dedupe_articles

log = logging.getLogger("qa")

Ranked = list[tuple[int, float]]

#: the settings that ``qa tune`` may change without rebuilding the index
RETRIEVAL_KEYS = ("mode", "fusion", "dense_weight", "rrf_k", "candidates", "bm25_k1", "bm25_b")


def retrieval_settings(cfg: Config) -> dict[str, Any]:
    """The retrieval part of a config (what ``qa tune`` searches and writes)."""
    return {k: getattr(cfg, k) for k in RETRIEVAL_KEYS}


def describe(settings: dict[str, Any]) -> str:
    """A short human description: ``hybrid convex w=0.3 cand=100 k1=1.5 b=0.75``."""
    s = settings
    bm25 = f"k1={s['bm25_k1']} b={s['bm25_b']}"
    chunk = f" chunk={s['chunk_size']}" if "chunk_size" in s else ""
    if s["mode"] == "bm25":
        return f"bm25 {bm25}{chunk}"
    if s["mode"] == "dense":
        return f"dense{chunk}"
    fusion = f"convex w={s['dense_weight']}" if s["fusion"] == "convex" else f"rrf k={s['rrf_k']}"
    return f"hybrid {fusion} cand={s['candidates']} {bm25}{chunk}"


def query_text(question: str) -> str:
    """The question as ``retrieve`` uses it (stripped, truncated)."""
    return question.strip()[:MAX_QUERY_CHARS]


def ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


def bm25_list(assistant: Assistant, question: str, depth: int, *, bm25: Optional[BM25Retriever] = None,
              cfg: Optional[Config] = None) -> Ranked:
    """BM25 candidates as ``retrieve`` computes them (abbreviation expansion when configured)."""
    cfg = cfg or assistant.config
    q = query_text(question)
    lex_query = expand(q) if cfg.expand_abbreviations else q
    return (bm25 or assistant.bm25).search(lex_query, depth)


def query_vector(assistant: Assistant, question: str) -> np.ndarray:
    return assistant.embedder.encode([query_text(question)])[0]


def dense_list(assistant: Assistant, vector: np.ndarray, depth: int) -> Ranked:
    return assistant.dense.search_vector(vector, depth)


def fuse(lex: Ranked, den: Ranked, mode: str, cfg: Config, depth: int, *, k: int,
         qvec: Optional[np.ndarray] = None, vectors: Any = None) -> Ranked:
    """The ranked list ``retrieve(question, k)`` returns for ``mode``, from candidate lists of at
    least ``depth = max(cfg.candidates, k)`` passages (as in ``retrieve``).

    Convex fusion scores BM25's candidates with both retrievers' real scores: the BM25 score from
    the list and the cosine of the stored chunk vector (``vectors``, e.g. ``assistant.vectors``) with
    the query vector ``qvec``; dense candidates join only when BM25 found fewer than ``k`` passages
    (their BM25 score is then 0). Without stored vectors, the dense list's scores are used (0 for a
    passage missing from it). This mirrors ``Assistant.retrieve``; the tests check it does.
    """
    lex, den = lex[:depth], den[:depth]
    if mode == "bm25":
        return list(lex)
    if mode == "dense":
        return list(den)
    if cfg.fusion == "rrf":
        return rrf([lex, den], k=cfg.rrf_k)
    ids = convex_candidates(lex, den, k)
    if not ids:
        return convex(lex, den, dense_weight=cfg.dense_weight)
    lex_scores = dict(lex)
    bm = [lex_scores.get(d, 0.0) for d in ids]
    if vectors is not None and qvec is not None:
        dn = (np.asarray(vectors[ids], dtype=np.float32) @ qvec).tolist()
    else:
        known = dict(den)
        dn = [known.get(d, 0.0) for d in ids]
    return convex(list(zip(ids, map(float, bm))), list(zip(ids, map(float, dn))), dense_weight=cfg.dense_weight)


def article_ranking(assistant: Assistant, ranked: Ranked, n_chunks: int, k: int) -> list[str]:
    """The top ``k`` distinct articles of the first ``n_chunks`` passages of ``ranked`` (an article
    ranks where its best passage does)."""
    return dedupe_articles((assistant.chunks[doc].article_id for doc, _ in ranked[:n_chunks]), k)


def make_hits(assistant: Assistant, ranked: Ranked, lex: Ranked, den: Ranked, k: int) -> list[Hit]:
    """``Hit`` objects for the first ``k`` entries of ``ranked`` (as ``retrieve`` builds them)."""
    lex_rank = {d: (r, s) for r, (d, s) in enumerate(lex, start=1)}
    den_rank = {d: (r, s) for r, (d, s) in enumerate(den, start=1)}
    hits = []
    for rank, (doc, score) in enumerate(ranked[:k], start=1):
        chunk = assistant.chunks[doc]
        lr, dr = lex_rank.get(doc), den_rank.get(doc)
        hits.append(Hit(chunk=chunk, article=assistant.articles[chunk.article_id], score=float(score), rank=rank,
                        bm25_rank=lr[0] if lr else None, dense_rank=dr[0] if dr else None,
                        bm25_score=lr[1] if lr else None, dense_score=dr[1] if dr else None))
    return hits


def bm25_variant(assistant: Assistant, k1: float, b: float) -> BM25Retriever:
    """A BM25 retriever over the assistant's chunks with other ``k1`` and ``b``."""
    if (k1, b) == (assistant.bm25.k1, assistant.bm25.b):
        return assistant.bm25
    tokens = _tokens(assistant)
    return BM25Retriever(tokens, assistant.analyzer, k1=k1, b=b)


def _tokens(assistant: Assistant) -> list[list[str]]:
    cached = getattr(assistant, "_eval_tokens", None)
    if cached is not None:
        return cached
    path = Path(assistant.index_dir) / assistant.manifest.get("data_dir", "") / "tokens.jsonl"
    if path.is_file():
        tokens = BM25Retriever.load_tokens(path)
    else:  # an index built in memory: analyze the chunks again, as build_index does
        from ..store import index_text

        tokens = [assistant.analyzer.tokens(index_text(c.text, assistant.articles[c.article_id], assistant.config))
                  for c in assistant.chunks]
    if len(tokens) != len(assistant.chunks):
        raise ValueError(f"{path}: {len(tokens)} token rows for {len(assistant.chunks)} chunks; rebuild the index")
    assistant._eval_tokens = tokens  # type: ignore[attr-defined]
    return tokens


class BM25Variants:
    """BM25 scores of the assistant's chunks for any ``(k1, b)``, fast: the term frequencies of a query
    are looked up once in an inverted index and rescored per setting with the formula of rank-bm25's
    ``BM25Okapi`` (same IDF, same arithmetic, so the same scores and ranking as a
    :class:`~qa.backends.lexical.BM25Retriever` built with that ``k1`` and ``b``; checked in the tests).
    Tuning tries many BM25 settings on every question; this keeps that to one lookup per question.
    """

    def __init__(self, assistant: Assistant):
        okapi = getattr(assistant.bm25, "_bm25", None)
        if okapi is None and getattr(assistant.bm25, "engine", None) == "bm25s" and len(assistant.chunks):
            from rank_bm25 import BM25Okapi  # the bm25s engine keeps no per-chunk statistics: recount

            okapi = BM25Okapi(_tokens(assistant), k1=assistant.bm25.k1, b=assistant.bm25.b)
        if okapi is None or not hasattr(okapi, "doc_freqs"):
            raise ValueError("no BM25 statistics to rescore")
        self.analyzer = assistant.analyzer
        self.idf = okapi.idf
        self.doc_len = np.array(okapi.doc_len)
        self.avgdl = okapi.avgdl
        self.size = len(okapi.doc_freqs)
        postings: dict[str, tuple[list[int], list[int]]] = {}
        for i, freqs in enumerate(okapi.doc_freqs):
            for tok, n in freqs.items():
                ids, tfs = postings.setdefault(tok, ([], []))
                ids.append(i)
                tfs.append(n)
        self.postings = {t: (np.array(ids, dtype=np.int64), np.array(tfs)) for t, (ids, tfs) in postings.items()}

    def term_freqs(self, query: str) -> list[tuple[str, np.ndarray]]:
        """(token, term frequency in every chunk) for each analyzed query token, in query order."""
        out, cache = [], {}
        for q in self.analyzer.tokens(query):
            if q not in cache:
                tf = np.zeros(self.size, dtype=np.int64)
                if q in self.postings:
                    ids, tfs = self.postings[q]
                    tf[ids] = tfs
                cache[q] = tf
            out.append((q, cache[q]))
        return out

    def search(self, term_freqs: list[tuple[str, np.ndarray]], k: int, k1: float, b: float) -> Ranked:
        """What ``BM25Retriever(k1=k1, b=b).search`` returns for the query of ``term_freqs``."""
        from ..backends import top_k

        if not term_freqs:
            return []
        score = np.zeros(self.size)
        norm = k1 * (1 - b + b * self.doc_len / self.avgdl)
        for q, q_freq in term_freqs:
            score += (self.idf.get(q) or 0) * (q_freq * (k1 + 1) / (q_freq + norm))
        return top_k(score, k)


@dataclass
class CandidateLists:
    """BM25 lists per (k1, b) and dense lists for a set of questions, to ``depth`` passages."""

    depth: int
    dense: list[Ranked]
    bm25: dict[tuple[float, float], list[Ranked]]
    vectors: Any = None  # query vectors, one row per question


def candidate_lists(assistant: Assistant, questions: Sequence[str], depth: int,
                    bm25_params: Sequence[tuple[float, float]], cfg: Optional[Config] = None) -> CandidateLists:
    """Compute every question's dense list once and its BM25 list for each ``(k1, b)``."""
    cfg = cfg or assistant.config
    t0 = time.perf_counter()
    # one question at a time, as ``retrieve`` encodes it (a batch pads and may differ in the last bits)
    vectors = [query_vector(assistant, q) for q in questions]
    dense = [dense_list(assistant, v, depth) for v in vectors]
    log.info("dense candidates for %d questions in %.1fs", len(questions), time.perf_counter() - t0)
    lists: dict[tuple[float, float], list[Ranked]] = {}
    t0 = time.perf_counter()
    try:
        fast: Optional[BM25Variants] = BM25Variants(assistant)
    except ValueError:
        fast = None
    if fast is None:  # pragma: no cover - a BM25 backend without rank-bm25's statistics
        for k1, b in dict.fromkeys(bm25_params):
            bm25 = bm25_variant(assistant, k1, b)
            lists[(k1, b)] = [bm25_list(assistant, q, depth, bm25=bm25, cfg=cfg) for q in questions]
    else:
        for q in questions:
            tq = query_text(q)
            tfs = fast.term_freqs(expand(tq) if cfg.expand_abbreviations else tq)
            for k1, b in dict.fromkeys(bm25_params):
                lists.setdefault((k1, b), []).append(fast.search(tfs, depth, k1, b))
    log.info("BM25 candidates for %d settings in %.1fs", len(set(bm25_params)), time.perf_counter() - t0)
    return CandidateLists(depth, dense, lists, vectors)


def require_embedded(assistant: Assistant, command: str) -> None:
    """``qa eval`` and ``qa tune`` time and fuse the embedded store's retrievers one by one; a Milvus
    store (``store = "milvus"``) is refused with a clear message instead of failing midway."""
    if getattr(assistant.config, "store", "embedded") != "embedded":
        raise ConfigError(f"{command} works on the embedded index (store = \"embedded\"), not on "
                          f"store = {assistant.config.store!r}: build the same corpus into an embedded index "
                          "(qa index with store = \"embedded\") and evaluate or tune that; Milvus's retrieval "
                          "matches it (docs/scale-out.md, \"Parity and quality\")")
