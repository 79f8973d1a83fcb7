"""Logistic regression: the arithmetic, the fit and the JSON form shared by the small learned parts.

The sentence selector, the paragraph chooser, the answerability model (``qa.answer``) and the
retrieval re-rank (:mod:`qa.rerank`) are each a logistic regression on standardised features,
stored as readable JSON (weights, bias, mean, scale, and for some a threshold). This module holds
what they share: :func:`logistic` (the probability), :func:`fit_logistic` (Newton's method with an
L2 penalty, deterministic), :func:`linear_dict` / :func:`read_linear` (the JSON fields, with a
``ConfigError`` naming the file and field that is wrong; :func:`read_model` checks a whole model
file's format and features too), :func:`read_json` and :func:`save_json`
(written to a temporary file and renamed into place). numpy only; the base layer.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import ConfigError


def logistic(x: np.ndarray, weights: np.ndarray, bias: float, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Logistic regression on standardised rows of ``x``."""
    z = ((np.asarray(x, dtype=np.float64) - mean) / scale) @ weights + bias
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def fit_logistic(x: np.ndarray, y: np.ndarray, *, l2: float = 1.0,
                 iterations: int = 50) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """(weights, bias, mean, scale) of a logistic regression fitted by Newton's method on
    standardised features with L2 penalty ``l2`` (deterministic: the same data gives the same
    weights). ValueError when ``y`` holds one label only."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) == 0 or y.min() == y.max():
        raise ValueError("fit needs rows of both labels (some positive, some not)")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    reg = np.full(z.shape[1], l2)
    reg[-1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -40, 40)))
        grad = z.T @ (p - y) + reg * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-7:
            break
    return w[:-1], float(w[-1]), mean, scale


def linear_dict(weights: np.ndarray, bias: float, mean: np.ndarray, scale: np.ndarray) -> dict:
    """The JSON fields of a linear model (rounded to 6 decimals)."""
    def r(a):
        return [round(float(v), 6) for v in a]

    return {"weights": r(weights), "bias": round(float(bias), 6), "mean": r(mean), "scale": r(scale)}


def read_json(p: Path, what: str):
    """The JSON in file ``p`` (a ``what`` model file); ConfigError when missing or unreadable."""
    try:
        return json.loads(Path(p).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found: {p}") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"{p}: not a readable {what} JSON file ({str(e)[:120]})") from None


def read_linear(p: Path, d: dict, n: int) -> tuple[np.ndarray, float, np.ndarray, np.ndarray, float]:
    """(weights, bias, mean, scale, threshold) of a linear model of ``n`` features read from ``d``
    (the JSON of file ``p``; threshold 0.5 when absent); ConfigError naming the field that is
    missing or wrong."""
    def num(k: str, default=None):
        if k not in d and default is None:
            raise ConfigError(f"{p}: field '{k}' is missing")
        try:
            a = np.asarray(d.get(k, default), dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"{p}: field '{k}' is not numeric") from None
        if not np.all(np.isfinite(a)):
            raise ConfigError(f"{p}: field '{k}' must hold finite numbers")
        return a

    arrs = [num(k) for k in ("weights", "mean", "scale")]
    bias, threshold = num("bias"), num("threshold", 0.5)
    if bias.shape or threshold.shape:
        raise ConfigError(f"{p}: fields 'bias' and 'threshold' must be single numbers")
    bias, threshold = float(bias), float(threshold)
    if any(a.shape != (n,) for a in arrs) or not np.all(arrs[2] > 0):
        raise ConfigError(f"{p}: 'weights', 'mean' and 'scale' must hold {n} numbers (scale positive)")
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"{p}: field 'threshold' must be in 0..1; got {threshold}")
    return arrs[0], bias, arrs[1], arrs[2], threshold


def model_features(p: Path, d, fmt: str, writer: str, *feature_sets: Sequence[str]) -> tuple[str, ...]:
    """The feature names of model JSON ``d`` (of file ``p``), after checking that its ``format`` is
    ``fmt`` and its ``features`` one of ``feature_sets``; ConfigError naming the file, the field and
    ``writer`` (what writes such files) otherwise. Any model file's header: linear or trees."""
    if not isinstance(d, dict) or d.get("format") != fmt:
        raise ConfigError(f"{p}: field 'format' must be {fmt!r} (written by {writer})")
    names = next((tuple(n) for n in feature_sets if d.get("features") == list(n)), None)
    if names is None:
        allowed = " or ".join(str(list(n)) for n in feature_sets)
        raise ConfigError(f"{p}: field 'features' must be {allowed}; got {d.get('features')} "
                          f"(write it again with {writer})")
    return names


def read_model(p: Path, what: str, fmt: str, writer: str, *feature_sets: Sequence[str]):
    """The JSON of the ``what`` model file ``p`` checked as a linear model: (the JSON, its feature
    names, weights, bias, mean, scale, threshold). Its header as :func:`model_features` checks it;
    the errors are ConfigErrors naming the file and field."""
    d = read_json(p, what)
    names = model_features(p, d, fmt, writer, *feature_sets)
    return (d, names, *read_linear(p, d, len(names)))


def save_json(obj: dict, path: str | Path) -> Path:
    """``obj`` as indented UTF-8 JSON at ``path``, written to a temporary file and renamed into place."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    tmp.replace(p)
    return p


__all__ = ["fit_logistic", "linear_dict", "logistic", "model_features", "read_json", "read_linear", "read_model",
           "save_json"]
