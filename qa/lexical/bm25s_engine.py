"""BM25 for large corpora: bm25s's precomputed sparse score matrix, memory-mapped from disk.

bm25s (core dependency) stores, for every word of the vocabulary, the BM25 contribution of that
word to each chunk containing it (a CSC matrix: ``data``, ``indices``, ``indptr``), so a query
costs one vector addition per query word instead of a Python loop over every chunk.

Parity with rank-bm25's ``BM25Okapi`` (the engine of small indexes): bm25s is built with the
Robertson term-frequency part ``tf / (tf + k1 (1 - b + b dl / avgdl))`` and the Lucene IDF
``log(1 + (N - n + 0.5) / (n + 0.5))`` (always positive, so no entry is zeroed), then each word's
column is rescaled by ``idf_okapi / idf_lucene``, where ``idf_okapi`` is BM25Okapi's IDF
``log((N - n + 0.5) / (n + 0.5))`` with its floor (an IDF not above 0, a word in half of the
chunks or more, becomes ``0.25 x`` the mean IDF, at least 0.25; :func:`~.base.okapi_idf`, which the
rank_bm25 engine uses too). bm25s's own ``method="robertson"`` would clip that
IDF to 0 instead, which reorders results on small corpora where a word is in most chunks. The
constant ``(k1 + 1)`` of Okapi's numerator is multiplied back at query time. Scores therefore
equal rank-bm25's up to float32 rounding, and rankings agree except for float32 near-ties
(tests/test_scale.py; docs/benchmarks.md has the dev-pool figures).
"""
from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .base import masked, okapi_idf, top_k

log = logging.getLogger("qa")

FILES = ("data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy", "vocab.index.json",
         "params.index.json")


def _bm25s():
    try:
        import bm25s
    except ImportError:
        raise ImportError("the bm25s lexical engine needs bm25s: pip install bm25s") from None
    logger = logging.getLogger("bm25s")
    if logger.level == logging.DEBUG:  # bm25s sets DEBUG on import; its messages are not ours to show
        logger.setLevel(logging.WARNING)
    return bm25s


class SparseBM25:
    """BM25 scores from a bm25s index (built here from analyzer tokens, or loaded memory-mapped); a
    :class:`~qa.lexical.LexicalIndex`."""

    engine = "bm25s"

    def __init__(self, model, *, k1: float, b: float):
        self.model = model
        self.k1, self.b = float(k1), float(b)
        sc = model.scores
        self.data = sc["data"]
        self.indices = sc["indices"]
        self.indptr = np.asarray(sc["indptr"])
        self.size = int(sc["num_docs"])
        self.vocab: dict[str, int] = model.vocab_dict
        self._idf, present = okapi_idf(np.diff(self.indptr).astype(np.float64), float(self.size))
        self.max_idf = float(self._idf.max()) if present.any() else 1.0
        self._lock = threading.Lock()
        self._last: tuple[tuple[int, ...], Optional[np.ndarray]] = ((), None)

    @classmethod
    def build(cls, tokens: Sequence[list[str]], *, k1: float, b: float) -> "SparseBM25":
        bm25s = _bm25s()
        model = bm25s.BM25(method="robertson", idf_method="lucene", k1=k1, b=b, backend="numpy")
        model.index([list(t) for t in tokens], show_progress=False)
        sc = model.scores
        indptr = np.asarray(sc["indptr"])
        df = np.diff(indptr).astype(np.float64)
        n = float(sc["num_docs"])
        okapi, present = okapi_idf(df, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            lucene = np.log1p((n - df + 0.5) / (df + 0.5))
            factor = np.where(present, okapi / lucene, 0.0)
        sc["data"] = (sc["data"] * np.repeat(factor, df.astype(np.int64))).astype(sc["data"].dtype)
        return cls(model, k1=k1, b=b)

    def save(self, folder: Path) -> list[str]:
        """Write the index into ``folder``; returns the file names written."""
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save(str(folder))
        return [n for n in FILES if (folder / n).is_file()]

    @classmethod
    def load(cls, folder: Path, *, mmap: bool = True) -> "SparseBM25":
        bm25s = _bm25s()
        params = json.loads((folder / "params.index.json").read_text(encoding="utf-8"))
        model = bm25s.BM25.load(str(folder), mmap=mmap, load_corpus=False)
        return cls(model, k1=params["k1"], b=params["b"])

    def idf(self, token: str) -> float:
        i = self.vocab.get(token)
        return 0.0 if i is None else float(self._idf[i])

    def _ids(self, tokens: Sequence[str]) -> tuple[int, ...]:
        return tuple(self.vocab[t] for t in tokens if t in self.vocab)

    def scores(self, tokens: Sequence[str], ids: Sequence[int]) -> list[float]:
        """BM25 scores of the given chunks."""
        if not tokens or not len(ids):
            return [0.0] * len(ids)
        return [float(x) for x in self.all_scores(tokens)[list(ids)]]

    def all_scores(self, tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every chunk for analyzed query ``tokens`` (repeated words count again,
        as in rank-bm25). The last query's scores are kept, since hybrid search asks twice; the
        array is read-only, as it may be handed to another thread too."""
        ids = self._ids(tokens)
        with self._lock:
            last_ids, last = self._last
            if last is not None and last_ids == ids:
                return last
        out = np.zeros(self.size, dtype=np.float32)
        for t in ids:
            s, e = int(self.indptr[t]), int(self.indptr[t + 1])
            out[self.indices[s:e]] += self.data[s:e]  # indices are unique within a word's column
        out *= self.k1 + 1.0
        out.flags.writeable = False  # shared with the other threads that ask the same words
        with self._lock:
            self._last = (ids, out)
        return out

    def search(self, tokens: Sequence[str], k: int, allow: Optional[np.ndarray] = None) -> list[tuple[int, float]]:
        """The ``k`` best chunks with a positive score, best first (ties by chunk index); only those
        ``allow`` (a boolean mask) lets through, when given."""
        if not tokens:
            return []
        scores = masked(self.all_scores(tokens), allow)
        nz = np.flatnonzero(scores > 0)
        if nz.size == 0:
            return []
        return [(int(nz[i]), s) for i, s in top_k(scores[nz], k)]
