"""Query-adaptive fusion: a per-question dense weight for convex fusion, from the two candidate lists.

:func:`query_features` describes how the two retrievers' lists look for one question (how sure
each one is, whether they agree); an :class:`AdaptiveModel` maps those features to a dense weight
``w = softmax(theta . standardised features + bias) . class_weights`` (a classifier over kinds of
question, each with its best weight), and fusion is then
:func:`~qa.fusion.convex` with that weight. numpy only; the model is a small JSON file (the shipped
one: ``qa/fusion_models/adaptive.json``, its card ``adaptive.md``; train another with
``qa train-fusion``, :mod:`qa.adaptation.fusion`).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import ConfigError
from .fusion import Ranked
from .linear import save_json

#: the features, in the model's order (the JSON file names them; a mismatch is an error)
FEATURES = ("bm25_top", "bm25_gap", "bm25_entropy", "bm25_hits", "dense_top", "dense_gap", "dense_spread",
            "dense_entropy", "overlap10", "bm25_top_in_dense", "dense_top_in_bm25", "query_tokens")
FORMAT = "qa-adaptive-fusion/1"
SHIPPED = Path(__file__).parent / "fusion_models" / "adaptive.json"
TOP = 10


def _entropy(scores: np.ndarray, temperature: float) -> float:
    """Normalised entropy (0: one clear winner, 1: all alike) of softmax(scores / temperature)."""
    if len(scores) < 2:
        return 0.0
    z = (scores - scores.max()) / temperature
    p = np.exp(z)
    p /= p.sum()
    return float(-(p * np.log(p + 1e-12)).sum() / math.log(len(scores)))


def _inverse_rank(doc: Optional[int], ranked: Ranked, depth: int = 100) -> float:
    if doc is None:
        return 0.0
    for r, (d, _) in enumerate(ranked[:depth], start=1):
        if d == doc:
            return 1.0 / r
    return 0.0


def query_features(lexical: Ranked, dense: Ranked, n_tokens: int, depth: int = 100) -> np.ndarray:
    """The :data:`FEATURES` of one question's candidate lists (BM25 and dense, best first, as the
    retrievers returned them). An empty list gives zeros for its features."""
    bm = np.array([s for _, s in lexical[:TOP]], dtype=np.float64)
    dn = np.array([s for _, s in dense[:TOP]], dtype=np.float64)
    f = dict.fromkeys(FEATURES, 0.0)
    if len(bm):
        top = max(bm[0], 1e-9)
        f["bm25_top"] = math.log1p(max(bm[0], 0.0))
        f["bm25_gap"] = (bm[0] - bm[1]) / top if len(bm) > 1 else 1.0
        f["bm25_entropy"] = _entropy(bm / top, 0.1)
    f["bm25_hits"] = min(len(lexical), depth) / depth
    if len(dn):
        f["dense_top"] = dn[0]
        f["dense_gap"] = dn[0] - dn[1] if len(dn) > 1 else 0.0
        f["dense_spread"] = dn[0] - dn.mean()
        f["dense_entropy"] = _entropy(dn, 0.01)
    a = {d for d, _ in lexical[:TOP]}
    b = {d for d, _ in dense[:TOP]}
    f["overlap10"] = len(a & b) / TOP
    f["bm25_top_in_dense"] = _inverse_rank(lexical[0][0] if lexical else None, dense, depth)
    f["dense_top_in_bm25"] = _inverse_rank(dense[0][0] if dense else None, lexical, depth)
    f["query_tokens"] = math.log1p(n_tokens)
    return np.array([f[k] for k in FEATURES], dtype=np.float64)


@dataclass(frozen=True)
class AdaptiveModel:
    """A softmax classifier over kinds of question (``classes``: in the shipped model, the training
    sets), each with the dense weight that is best for it; a question's weight is the expected one,
    ``softmax(((x - mean) / scale) @ theta + bias) @ weights``."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    theta: np.ndarray  # (features, classes)
    bias: np.ndarray  # (classes,)
    weights_: np.ndarray  # (classes,) dense weight of each class, in 0..1
    classes: tuple[str, ...] = ()
    meta: Optional[dict] = None

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        z = ((np.atleast_2d(X) - self.mean) / self.scale) @ self.theta + self.bias
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def weights(self, X: np.ndarray) -> np.ndarray:
        """The dense weight of each row of features."""
        return self.probabilities(X) @ self.weights_

    def weight(self, x: np.ndarray) -> float:
        """The dense weight for one question's features."""
        return float(self.weights(x)[0])

    def to_dict(self) -> dict:
        return {"format": FORMAT, "features": list(self.features), "classes": list(self.classes),
                "class_weights": self.weights_.tolist(), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "theta": self.theta.tolist(), "bias": self.bias.tolist(), "meta": self.meta or {}}

    def save(self, path: str | os.PathLike) -> Path:
        """The model as JSON at ``path`` (written to a temporary file and renamed into place)."""
        return save_json(self.to_dict(), path)

    @classmethod
    def from_dict(cls, d: object, where: str = "adaptive fusion model") -> "AdaptiveModel":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ConfigError(f"{where}: not an adaptive fusion model (needs \"format\": \"{FORMAT}\")")
        names = tuple(d.get("features") or ())
        if names != FEATURES:
            raise ConfigError(f"{where}: its features {list(names)} are not this version's {list(FEATURES)}; "
                              "retrain it with `qa train-fusion`")
        try:
            mean, scale, theta, bias, cw = (np.asarray(d[k], dtype=np.float64)
                                            for k in ("mean", "scale", "theta", "bias", "class_weights"))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"{where}: missing or bad field ({e})") from None
        n, k = len(FEATURES), cw.shape[0] if cw.ndim == 1 else 0
        if mean.shape != (n,) or scale.shape != (n,) or theta.shape != (n, k) or bias.shape != (k,) or k < 1 or \
                not all(np.isfinite(a).all() for a in (mean, scale, theta, bias, cw)) or not (scale > 0).all() or \
                not ((cw >= 0) & (cw <= 1)).all():
            raise ConfigError(f"{where}: needs mean and scale ({n} finite numbers, scale > 0), theta ({n} x classes), "
                              "bias and class_weights (one per class, weights in 0..1)")
        classes = tuple(str(c) for c in d.get("classes") or ())
        meta = d.get("meta") if isinstance(d.get("meta"), dict) else None
        return cls(names, mean, scale, theta, bias, cw, classes, meta)

    @classmethod
    def load(cls, path: str | os.PathLike = SHIPPED) -> "AdaptiveModel":
        p = Path(path)
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"cannot read the adaptive fusion model {p}: {e.strerror or e}") from None
        except ValueError as e:
            raise ConfigError(f"the adaptive fusion model {p} is not valid JSON: {e}") from None
        return cls.from_dict(d, str(p))


_CACHE: dict[str, AdaptiveModel] = {}


def shipped_model(path: str | os.PathLike = SHIPPED) -> AdaptiveModel:
    """The model at ``path`` (default: the shipped one), loaded once per process."""
    key = str(path)
    if key not in _CACHE:
        _CACHE[key] = AdaptiveModel.load(path)
    return _CACHE[key]


def adaptive_weight(lexical: Ranked, dense: Ranked, n_tokens: int, model: Optional[AdaptiveModel] = None) -> float:
    """The dense weight ``model`` (default: the shipped one) gives this question."""
    model = model or shipped_model()
    return model.weight(query_features(lexical, dense, n_tokens))


__all__ = ["AdaptiveModel", "FEATURES", "SHIPPED", "adaptive_weight", "query_features", "shipped_model"]

