"""The learned sentence selector: how likely each candidate sentence is to hold the answer.

A logistic regression over features of (question, sentence) pairs, trained on labelled
Indonesian questions (``qa train-selector``, :mod:`qa.adaptation.selector`): the label of a candidate
is whether it contains a gold answer. Its probability decides which sentences are quoted and,
below the calibrated threshold, that the answerer declines. The weights ship as JSON next to this
file (``models/selector.json``, with its card ``models/SELECTOR.md``); a user's own training
writes a file of the same form, named by ``[answer] selector`` in the config.

Features (all computed from vectors the index stored and BM25 statistics, no model call):
the question-sentence cosine (query vs passage convention of the index's encoder), its gap to
the best candidate's and whether it is the best; the IDF-weighted share of the question's words
found in the sentence (title words count half), its gap to the best, and, for a rewritten
follow-up, that of the earlier turns' words; the question's kind (number, date, person, place,
reason, other) crossed with whether the sentence holds a span of that kind; numbers and names
present; the share of the question's weight on words the index never saw; sentence length,
first in its paragraph, and whether the candidate is a pair of neighbouring sentences.

A second, question-level logistic regression (``question``, over :data:`Q_FEATURES`) gives the
probability that the candidates answer the question at all; the answerer declines below its
threshold (``[answer] abstain_threshold``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import ConfigError
from ..linear import fit_logistic, linear_dict, logistic, read_model, save_json

KINDS = ("number", "date", "person", "place", "reason")
FEATURES = ("cos", "cos_gap", "cos_best", "lex", "lex_gap", "lex_best", "ctx_lex", *(f"kind_{k}" for k in KINDS),
            *(f"match_{k}" for k in KINDS), "has_number", "has_name", "unknown", "log_len", "first", "pair",
            "cos_x_lex")
# the answerability model: over the candidates of one question, from the sentence model's output
Q_FEATURES = ("best_p", "second_p", "best_lex", "max_lex", "best_cos", "cos_margin", "unknown", "kind_none",
              "best_match", "best_pair")
PACKAGED = Path(__file__).with_name("models") / "selector.json"
FORMAT = "qa-selector/1"


@dataclass
class Selector:
    """Logistic regression over :data:`FEATURES`; ``threshold``: the probability below which the
    best candidate is not taken as an answer (calibrated for abstention F1 on IDK-MRC valid)."""

    weights: np.ndarray  # one per feature, on standardised features
    bias: float
    mean: np.ndarray
    scale: np.ndarray
    threshold: float = 0.5
    encoder: str = ""  # the encoder the cosines came from (fingerprint or name), for the card
    meta: Optional[dict] = None
    question: Optional["Selector"] = None  # the answerability model over Q_FEATURES (None: the best P(answer))

    def probability(self, x: np.ndarray) -> np.ndarray:
        """P(answer) of each row of ``x`` (n, len(FEATURES))."""
        return logistic(x, self.weights, self.bias, self.mean, self.scale)

    def answerable(self, x: np.ndarray, p: np.ndarray) -> float:
        """P(the candidates answer the question), from their feature rows ``x`` and probabilities ``p``;
        the decline decision compares it with the threshold."""
        if len(p) == 0:
            return 0.0
        if self.question is None:
            return float(np.max(p))
        return float(self.question.probability(question_features(x, p)[None, :])[0])

    # -- persistence (JSON, no pickle) -----------------------------------------------------------
    def _linear(self) -> dict:
        return linear_dict(self.weights, self.bias, self.mean, self.scale)

    def to_dict(self) -> dict:
        out = {"format": FORMAT, "features": list(FEATURES), **self._linear(),
               "threshold": round(float(self.threshold), 4), "encoder": self.encoder}
        if self.question is not None:
            out["question"] = {"features": list(Q_FEATURES), **self.question._linear()}
        return {**out, "meta": self.meta or {}}

    def save(self, path: str | Path) -> Path:
        return save_json(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Selector":
        """The selector in ``path`` (default: the packaged one); ConfigError naming the problem."""
        p = Path(path) if path else PACKAGED
        d, _, weights, bias, mean, scale, threshold = read_model(p, "selector", FORMAT, "`qa train-selector`",
                                                                FEATURES)
        question = None
        q = d.get("question")
        if q is not None:
            try:
                if q["features"] != list(Q_FEATURES):
                    raise ValueError("features")
                qa_ = [np.asarray(q[k], dtype=np.float64) for k in ("weights", "mean", "scale")]
                if any(a.shape != (len(Q_FEATURES),) for a in qa_) or not np.all(qa_[2] > 0):
                    raise ValueError("shape")
                question = cls(qa_[0], float(q["bias"]), qa_[1], qa_[2])
            except (KeyError, TypeError, ValueError) as e:
                raise ConfigError(f"{p}: field 'question' must hold features {list(Q_FEATURES)} and "
                                  f"{len(Q_FEATURES)} weights, means and scales ({e})") from None
        return cls(weights, bias, mean, scale, threshold, str(d.get("encoder", "")), d.get("meta") or {}, question)


# the linear model's arithmetic and JSON form live in qa/linear.py (shared with the other learned parts)


def pair_cosines(vectors, *, pairs: int = 2000, seed: int = 0) -> np.ndarray:
    """Cosines of ``pairs`` random pairs of distinct rows of ``vectors`` (unit rows; a memmap is fine)."""
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, len(vectors), pairs), rng.integers(0, len(vectors), pairs)
    keep = i != j
    return (np.asarray(vectors[i[keep]], dtype=np.float32) * np.asarray(vectors[j[keep]], dtype=np.float32)).sum(axis=1)


def cosine_map(vectors, reference: Optional[dict], *, pairs: int = 2000, seed: int = 0) -> tuple[float, float]:
    """(scale, shift) that maps another encoder's cosines onto the range of the encoder the selector
    was trained with, matching the mean and spread of :func:`pair_cosines` of ``vectors`` (rows of
    an index built with that other encoder) to ``reference`` (the same figures for the training
    encoder, stored with the selector). (1, 0) when there is nothing to match."""
    if not reference or vectors is None or len(vectors) < 2:
        return 1.0, 0.0
    c = pair_cosines(vectors, pairs=pairs, seed=seed)
    if len(c) < 2 or c.std() < 1e-6:
        return 1.0, 0.0
    scale = float(reference["std"]) / float(c.std())
    return scale, float(reference["mean"]) - scale * float(c.mean())


def question_features(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    """:data:`Q_FEATURES` of one question from its candidates' feature rows and probabilities."""
    col = {f: i for i, f in enumerate(FEATURES)}
    order = np.argsort(-p, kind="stable")
    b = order[0]
    cos = np.sort(x[:, col["cos"]])[::-1]
    kinds = [col[f"kind_{k}"] for k in KINDS]
    matches = [col[f"match_{k}"] for k in KINDS]
    return np.array([p[b], p[order[1]] if len(p) > 1 else 0.0, x[b, col["lex"]], x[:, col["lex"]].max(),
                     x[b, col["cos"]], cos[0] - (cos[1] if len(cos) > 1 else cos[0]), x[b, col["unknown"]],
                     1.0 - x[b, kinds].sum(), x[b, matches].sum(), x[b, col["pair"]]])


def fit(x: np.ndarray, y: np.ndarray, *, l2: float = 1.0, iterations: int = 50) -> Selector:
    """Logistic regression by Newton's method on standardised features, L2 penalty ``l2``
    (deterministic: the same data gives the same weights; :func:`qa.linear.fit_logistic`)."""
    return Selector(*fit_logistic(x, y, l2=l2, iterations=iterations))


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def abstention(best_p: Sequence[float], answerable: Sequence[bool], threshold: float) -> dict:
    """Declining below ``threshold``: precision (declined-and-unanswerable over declined), recall
    (over unanswerable), F1, and the share of answerable questions declined."""
    bp = np.asarray(best_p, dtype=np.float64)
    ans = np.asarray(answerable, dtype=bool)
    declined = bp < threshold
    tp = float(np.sum(declined & ~ans))
    prec = tp / max(1, declined.sum())
    rec = tp / max(1, (~ans).sum())
    return {"threshold": float(threshold), "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
            "precision": prec, "recall": rec, "declined_answerable": float(np.sum(declined & ans)) / max(1, ans.sum())}


def best_threshold(best_p: Sequence[float], answerable: Sequence[bool], *, max_declined: float = 0.15,
                   others: Sequence[Sequence[float]] = ()) -> dict:
    """The decline threshold with the best :func:`abstention` F1 among those declining at most
    ``max_declined`` of the answerable questions, and of each of ``others`` (probabilities of the
    answerable questions of other sets, asked the same way)."""
    best = {"threshold": 0.0, "f1": 0.0, "precision": 0.0, "recall": 0.0, "declined_answerable": 0.0}
    rest = [np.asarray(o, dtype=np.float64) for o in others if len(o)]
    for t in np.unique(np.round(np.asarray(best_p, dtype=np.float64), 4)):
        m = abstention(best_p, answerable, float(t))
        if m["declined_answerable"] <= max_declined and m["f1"] > best["f1"] and \
                all(float(np.mean(o < t)) <= max_declined for o in rest):
            best = m
    return best


def log_len(chars: int) -> float:
    return math.log1p(max(0, chars)) / 6.0
