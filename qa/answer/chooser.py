"""Which paragraph to answer from: the selector's best one, or one the reader found a better answer in.

The selector rates sentences from the outside (cosine, shared words, answer type); on news, where
several articles tell nearly the same story, its best sentence is often in a paragraph without the
answer while the paragraph of its second or third best holds it (FacQA valid: the best candidate's
paragraph holds a gold answer for 76 % of answerable questions, one of the best four paragraphs for
92 %). The span reader also reads the best candidate of each of the next paragraphs (the candidate alone:
as good for the choice as its whole paragraph, at a fraction of the cost), and a logistic
regression over the selector's and the reader's outputs for each (:data:`FEATURES`) gives the
probability that the paragraph holds the answer; the answer comes from the most probable one.

The reader alone is no judge between paragraphs (its span probability is normalised within the
text read: the most probable span over four paragraphs holds the answer less often than the
selector's choice), which is why the model weighs both. Weights are fitted on labelled valid
questions asked through the whole assistant (``benchmarks/fit_chooser.py --fit``) and ship as
JSON (``models/chooser.json``, card ``models/CHOOSER.md``). The model is a logistic regression or
(``--model trees``, shipped) gradient-boosted trees over the same features (:mod:`qa.trees`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .leads import Reading
from ..linear import fit_logistic, linear_dict, logistic, model_features, read_json, read_linear, save_json
from ..trees import TreeEnsemble

FEATURES = ("selector_logp", "selector_gap", "span_logp", "null_logp", "span_gap", "null_gap", "is_first",
            "hit_rank")
PACKAGED = Path(__file__).with_name("models") / "chooser.json"
FORMAT = "qa-paragraph-chooser/1"
EPS = 1e-6


def _logp(p: float) -> float:
    return math.log(min(max(float(p), EPS), 1.0))


def features(scores: Sequence[float], spans: Sequence[Optional[object]], hit_ranks: Sequence[int]) -> np.ndarray:
    """(len(scores), len(FEATURES)): for each paragraph read, best first, the selector's probability
    of its best candidate (``scores``), the reader's span there (None: nothing read) and the rank of
    the retrieved passage it is in; gaps are against the best of all paragraphs."""
    sel = np.array([_logp(s) for s in scores])
    span = np.array([_logp(s.probability) if s is not None else _logp(0.0) for s in spans])
    null = np.array([_logp(s.null) if s is not None else 0.0 for s in spans])
    x = np.zeros((len(scores), len(FEATURES)))
    if not len(scores):
        return x
    x[:, 0], x[:, 1] = sel, sel - sel.max()
    x[:, 2], x[:, 3] = span, null
    x[:, 4], x[:, 5] = span - span.max(), null - null.min()
    x[0, 6] = 1.0
    x[:, 7] = [1.0 / max(int(r), 1) for r in hit_ranks]
    return x


@dataclass
class Chooser:
    """P(the paragraph holds the answer) from :data:`FEATURES`: a logistic regression, or boosted
    ``trees`` when given (then the linear fields are unused)."""

    weights: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray
    meta: dict = field(default_factory=dict)
    trees: Optional[TreeEnsemble] = None

    def probability(self, x: np.ndarray) -> np.ndarray:
        if self.trees is not None:
            return np.atleast_1d(self.trees.probability(x))
        return np.atleast_1d(logistic(x, self.weights, self.bias, self.mean, self.scale))

    def choose(self, x: np.ndarray) -> int:
        """The row of ``x`` (paragraphs, best-by-selector first) to answer from; 0 on ties."""
        if len(x) <= 1:
            return 0
        p = self.probability(x)
        return int(np.argmax(p))

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, *, l2: float = 1.0) -> "Chooser":
        """Fitted on paragraph rows ``x`` and labels ``y`` (1: holds a gold answer), deterministically."""
        w, b, mean, scale = fit_logistic(x, y, l2=l2)
        return cls(w, b, mean, scale)

    @classmethod
    def fit_trees(cls, x: np.ndarray, y: np.ndarray, *, trees: int = 200, depth: int = 2,
                  learning_rate: float = 0.05) -> "Chooser":
        """Gradient-boosted trees fitted on the same rows (needs scikit-learn, a training-time tool;
        deterministic: ``random_state`` 0, no subsampling)."""
        try:
            from sklearn.ensemble import GradientBoostingClassifier
        except ImportError as e:
            raise ImportError(f"fitting trees needs scikit-learn: pip install scikit-learn ({e})") from e
        model = GradientBoostingClassifier(n_estimators=trees, max_depth=depth, learning_rate=learning_rate,
                                           random_state=0).fit(x, y)
        n = len(FEATURES)
        return cls(np.zeros(n), 0.0, np.zeros(n), np.ones(n), trees=TreeEnsemble.from_sklearn(model, x))

    def to_dict(self) -> dict:
        if self.trees is not None:
            return {"format": FORMAT, "features": list(FEATURES), "model": "trees", **self.trees.to_dict(),
                    "meta": self.meta}
        return {"format": FORMAT, "features": list(FEATURES),
                **linear_dict(self.weights, self.bias, self.mean, self.scale), "threshold": 0.5, "meta": self.meta}

    def save(self, path: str | Path) -> Path:
        return save_json(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Chooser":
        """The model in ``path`` (default: the packaged one); ConfigError naming the problem."""
        p = Path(path) if path else PACKAGED
        d = read_json(p, "paragraph chooser")
        n = len(model_features(p, d, FORMAT, "benchmarks/fit_chooser.py --fit", FEATURES))
        if d.get("model") == "trees":
            return cls(np.zeros(n), 0.0, np.zeros(n), np.ones(n), d.get("meta") or {},
                       trees=TreeEnsemble.from_dict(d, n, p))
        weights, bias, mean, scale, _ = read_linear(p, d, n)
        return cls(weights, bias, mean, scale, d.get("meta") or {})


def row_zero_span(own: Sequence) -> Optional[object]:
    """The reading that stands for the best candidate's paragraph among the paragraphs compared: of the
    best candidate alone (``own[1]``), as the others are read, not of its whole paragraph (``own[0]``),
    whose longer text spreads the span probability thinner; the paragraph's when there is no other."""
    return own[1].span if len(own) > 1 else own[0].span


def choice(chooser: Optional[Chooser], cands: Sequence, readings: Sequence) -> int:
    """Which paragraph ``chooser`` answers from: 0 for the best candidate's, ``i`` for the ``i``-th other
    candidate read (:func:`~.leads.pick_others`; ``Reading.cand`` set); 0 without a chooser or other readings."""
    own = [r for r in readings if r.cand is None]
    others = [r for r in readings if r.cand is not None]
    if chooser is None or not cands or not own or not others:
        return 0
    chosen = [cands[0]] + [r.cand for r in others]
    return int(chooser.choose(features([c.score for c in chosen], [row_zero_span(own)] + [r.span for r in others],
                                       [c.hit_rank for c in chosen])))


def chosen_reading(readings: Sequence, i: int) -> Optional[object]:
    """The span of the reading that paragraph ``i`` (:func:`choice`) is compared and answered by: the
    ``i``-th other candidate's, or for 0 the best candidate's own (:func:`row_zero_span`)."""
    own = [r for r in readings if r.cand is None]
    others = [r for r in readings if r.cand is not None]
    if i > 0:
        return others[i - 1].span
    return row_zero_span(own) if own else None


def choose_paragraph(chooser: Chooser, cands: list, readings: list) -> tuple[list, list]:
    """The candidates (best first) and readings to answer from. ``readings``: :func:`~.leads.read_best`'s,
    with the other candidates it read (:func:`~.leads.pick_others`). As they are, without those
    readings, or, when ``chooser`` prefers the paragraph of another candidate (:func:`choice`), that
    candidate first with its reading."""
    own = [r for r in readings if r.cand is None]
    others = [r for r in readings if r.cand is not None]
    i = choice(chooser, cands, readings)
    if i == 0:
        return cands, own
    c = others[i - 1].cand
    return [c] + [d for d in cands if d is not c], [Reading(others[i - 1].span, others[i - 1].offset)]


__all__ = ["Chooser", "choice", "choose_paragraph", "chosen_reading", "FEATURES", "FORMAT", "PACKAGED", "features", "row_zero_span"]
