"""Gradient-boosted trees: the prediction and the JSON form of a small learned part that is not linear.

A model is a sum of regression trees over raw (not standardised) features plus a bias, read as
log-odds: ``P = logistic(bias + sum of each tree's leaf value)``. Each tree is stored as flat lists
(``feature``, ``threshold``, ``left``, ``right``, ``value``; a leaf has ``left = right = -1``; a row
goes left when its feature is at most the threshold), so a file can be read and checked by eye and
is loaded without pickle. Fitting is a training-time job (``scikit-learn``'s
``GradientBoostingClassifier``: :meth:`TreeEnsemble.from_sklearn`); predicting needs numpy only:
all trees are walked at once, one step per level. The base layer, next to :mod:`qa.linear`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError

FIELDS = ("feature", "threshold", "left", "right", "value")


@dataclass
class TreeEnsemble:
    """Trees padded to one node count: arrays of shape (trees, nodes); ``bias``: the log-odds before any tree."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    bias: float
    depth: int

    def decision(self, x: np.ndarray) -> np.ndarray:
        """The log-odds of each row of ``x`` (rows, features)."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        t = np.arange(self.feature.shape[0])[None, :]
        node = np.zeros((len(x), self.feature.shape[0]), dtype=np.int64)
        rows = np.arange(len(x))[:, None]
        for _ in range(self.depth):
            f = self.feature[t, node]
            leaf = self.left[t, node] < 0
            go_left = x[rows, np.maximum(f, 0)] <= self.threshold[t, node]
            node = np.where(leaf, node, np.where(go_left, self.left[t, node], self.right[t, node]))
        return self.bias + self.value[t, node].sum(axis=1)

    def probability(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.clip(self.decision(x), -40, 40)))

    def to_dict(self) -> dict[str, Any]:
        trees = []
        for i in range(self.feature.shape[0]):
            n = int(np.max(np.nonzero(self.feature[i] != -2)[0])) + 1  # padding is feature -2
            trees.append({"feature": [int(v) for v in self.feature[i, :n]],
                          "threshold": [round(float(v), 6) for v in self.threshold[i, :n]],
                          "left": [int(v) for v in self.left[i, :n]], "right": [int(v) for v in self.right[i, :n]],
                          "value": [round(float(v), 6) for v in self.value[i, :n]]})
        return {"bias": round(float(self.bias), 6), "trees": trees}

    @classmethod
    def from_dict(cls, d: Any, n_features: int, where: str | Path) -> "TreeEnsemble":
        """From :meth:`to_dict`'s form; ConfigError naming ``where`` and the tree and field that is wrong."""
        if not isinstance(d, dict) or not isinstance(d.get("trees"), list) or not d["trees"]:
            raise ConfigError(f"{where}: field 'trees' must be a non-empty list of trees")
        try:
            bias = float(d.get("bias"))
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: field 'bias' must be a number") from None
        parsed = []
        for i, tree in enumerate(d["trees"]):
            if not isinstance(tree, dict) or any(not isinstance(tree.get(k), list) for k in FIELDS):
                raise ConfigError(f"{where}: tree {i} must hold the lists {', '.join(FIELDS)}")
            n = len(tree["feature"])
            try:
                arrs = {k: np.asarray(tree[k], dtype=np.float64) for k in FIELDS}
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: tree {i} holds a value that is not a number") from None
            if n == 0 or any(a.shape != (n,) or not np.all(np.isfinite(a)) for a in arrs.values()):
                raise ConfigError(f"{where}: tree {i}: {', '.join(FIELDS)} must be lists of one length of "
                                  "finite numbers")
            leaf = arrs["left"] < 0
            inner = np.nonzero(~leaf)[0]
            kids = np.concatenate([arrs["left"][inner], arrs["right"][inner]])  # each after its parent
            used = arrs["feature"][inner]
            if (np.any((arrs["right"] < 0) != leaf) or np.any(kids <= np.concatenate([inner, inner]))
                    or np.any(kids >= n) or np.any((used < 0) | (used >= n_features))):
                raise ConfigError(f"{where}: tree {i}: child or feature index out of range (features: {n_features})")
            parsed.append(arrs)
        size = max(len(a["feature"]) for a in parsed)

        def pad(k: str, fill: float) -> np.ndarray:
            return np.stack([np.concatenate([a[k], np.full(size - len(a[k]), fill)]) for a in parsed])

        left, right = pad("left", -1).astype(np.int64), pad("right", -1).astype(np.int64)
        feature = pad("feature", -2).astype(np.int64)
        feature[(left < 0) & (feature != -2)] = -1
        return cls(feature=feature, threshold=pad("threshold", 0.0), left=left, right=right, value=pad("value", 0.0),
                   bias=bias, depth=_depth(left, right))

    @classmethod
    def from_sklearn(cls, model: Any, x_example: np.ndarray) -> "TreeEnsemble":
        """From a fitted binary ``sklearn.ensemble.GradientBoostingClassifier`` (its public ``estimators_``
        and ``learning_rate``; the bias read back from its ``decision_function`` on ``x_example``)."""
        lr = float(model.learning_rate)
        trees = []
        for est in model.estimators_[:, 0]:
            t = est.tree_
            leaf = t.children_left < 0
            trees.append({"feature": np.where(leaf, -1, t.feature).tolist(),
                          "threshold": np.where(leaf, 0.0, t.threshold).tolist(),
                          "left": t.children_left.tolist(), "right": t.children_right.tolist(),
                          "value": (lr * t.value[:, 0, 0] * leaf).tolist()})
        x0 = np.atleast_2d(np.asarray(x_example, dtype=np.float64))[:1]
        no_bias = cls.from_dict({"bias": 0.0, "trees": trees}, x0.shape[1], "the fitted model")
        return replace(no_bias, bias=float(model.decision_function(x0)[0] - no_bias.decision(x0)[0]))


def _depth(left: np.ndarray, right: np.ndarray) -> int:
    """The most steps from a root to a leaf over all trees (children come after their parents)."""
    depth = np.zeros(left.shape, dtype=np.int64)
    for j in range(left.shape[1]):
        for kids in (left[:, j], right[:, j]):
            has = kids >= 0
            rows = np.nonzero(has)[0]
            depth[rows, kids[has]] = depth[rows, j] + 1
    return int(depth.max())


__all__ = ["TreeEnsemble"]
