"""Re-ranking the head of the fused list by each passage's best sentence.

The index stores a vector for every sentence of every passage (for the answerer), so how well a
passage's *best sentence* matches the question costs a matrix product at query time; a passage's
own vector averages the whole chunk and misses a question that one sentence answers. A logistic
regression over :data:`FEATURES` of each of the fused list's first ``depth`` passages (its fused
score and rank, its dense cosine and BM25 score, the cosines of its best and second sentence)
re-orders that head (``[retrieval] rerank = "sentences"``, the default). numpy only; the model is a
small JSON file (the shipped one: ``qa/fusion_models/rerank.json``, card ``rerank.md``; fitted by
``benchmarks/fit_rerank.py``). A store without sentence vectors (Milvus, or an index built with
``sentence_vectors = false``) keeps the fused order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .errors import ConfigError
from .linear import linear_dict, logistic, read_model, save_json

FEATURES = ("fused", "fused_gap", "dense_gap", "bm25_share", "sentence_gap", "sentence", "second_minus_best",
            "inverse_rank", "dense", "best_sentence")
FORMAT = "qa-rerank/1"
SHIPPED = Path(__file__).parent / "fusion_models" / "rerank.json"


def features(fused: Sequence[float], dense: Sequence[float], bm25: Sequence[float], best: Sequence[float],
             second: Sequence[float]) -> np.ndarray:
    """(n, len(FEATURES)) rows for a head of ``n`` passages in fused order: their fused scores, dense
    cosines, BM25 scores, and their best and second-best sentence cosines with the question."""
    f = np.column_stack([fused, dense, bm25, best, second]).astype(np.float64)
    top_sentence = f[:, 3].max()
    return np.column_stack([f[:, 0], f[:, 0] - f[:, 0].max(), f[:, 1] - f[:, 1].max(),
                            f[:, 2] / max(f[:, 2].max(), 1e-9), f[:, 3] - top_sentence, f[:, 3], f[:, 4] - f[:, 3],
                            1.0 / np.arange(1, len(f) + 1), f[:, 1], (f[:, 3] >= top_sentence).astype(np.float64)])


def sentence_cosines(store, vector: np.ndarray, ids: Sequence[int],
                     cache: Optional[dict] = None) -> Optional[tuple[list[float], list[float]]]:
    """The best and second-best sentence cosine of each passage (a passage of one sentence: the
    best twice; of none: 0); None when the store keeps no sentence vectors. ``cache`` (a dict kept
    per query vector) holds the pairs already computed, by passage id: ``qa tune`` fuses the same
    question under many settings."""
    best, second = [], []
    for d in ids:
        pair = cache.get(d) if cache is not None else None
        if pair is None:
            stored = store.sentence_vectors(d)
            if stored is None:
                return None
            cos = np.sort(np.asarray(stored[1], dtype=np.float32) @ vector)[::-1] if len(stored[1]) else np.zeros(1)
            pair = (float(cos[0]), float(cos[1] if len(cos) > 1 else cos[0]))
            if cache is not None:
                cache[d] = pair
        best.append(pair[0])
        second.append(pair[1])
    return best, second


@dataclass
class Reranker:
    """Logistic regression over :data:`FEATURES` (standardised); re-orders the first ``depth`` passages."""

    weights: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray
    depth: int = 20
    meta: dict = field(default_factory=dict)

    def probability(self, x: np.ndarray) -> np.ndarray:
        return logistic(np.atleast_2d(x), self.weights, self.bias, self.mean, self.scale)

    def rerank(self, ranked: Sequence[tuple[int, float]], x: np.ndarray) -> list[tuple[int, float]]:
        """``ranked`` with its first ``len(x)`` passages ordered by the model's probability (their new
        score; ties keep the fused order); the rest follow in their order, scaled below the head."""
        n = len(x)
        head = list(ranked[:n])
        p = self.probability(x)
        order = np.argsort(-p, kind="stable")
        out = [(head[i][0], float(p[i])) for i in order]
        tail = list(ranked[n:])
        if tail:
            low, top = float(p.min()), max(float(tail[0][1]), 1e-12)
            out += [(d, low * max(s, 0.0) / top * 0.999) for d, s in tail]
        return out

    def to_dict(self) -> dict:
        return {"format": FORMAT, "features": list(FEATURES), "depth": self.depth,
                **linear_dict(self.weights, self.bias, self.mean, self.scale), "meta": self.meta}

    def save(self, path: str | Path) -> Path:
        """The model as JSON at ``path`` (written to a temporary file and renamed into place)."""
        return save_json(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Reranker":
        """The model in ``path`` (default: the shipped one); ConfigError naming the file and field."""
        p = Path(path) if path else SHIPPED
        d, _, weights, bias, mean, scale, _ = read_model(p, "re-rank model", FORMAT, "benchmarks/fit_rerank.py",
                                                        FEATURES)
        depth = d.get("depth")
        if not isinstance(depth, int) or isinstance(depth, bool) or not 2 <= depth <= 1000:
            raise ConfigError(f"{p}: field 'depth' must be an integer in 2..1000; got {depth!r}")
        return cls(weights, bias, mean, scale, depth, d.get("meta") or {})


_shipped: dict[str, Reranker] = {}


def shipped_reranker(path: str | Path | None = None) -> Reranker:
    """The model at ``path`` (default: the shipped one), loaded once per process."""
    key = str(Path(path or SHIPPED).resolve())
    if key not in _shipped:
        _shipped[key] = Reranker.load(key)
    return _shipped[key]


__all__ = ["FEATURES", "FORMAT", "Reranker", "SHIPPED", "features", "sentence_cosines", "shipped_reranker"]
