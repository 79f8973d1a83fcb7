"""Whether the retrieved passages answer the question at all: the selector and the span reader together.

The selector's question-level probability (:meth:`~qa.answer.selector.Selector.answerable`) judges
the candidate sentences from the outside (cosine, shared words, answer type); the span reader has
read the question and the best sentences together and says how probable its best span is and how
probable "no answer here" is (and, when the paragraph chooser read the best candidates of other
paragraphs, how probable "no answer" is there: :data:`OTHER_FEATURES`; and how probable the span and
"no answer" are in the reading of the paragraph that the chooser picks to answer from:
:data:`CHOSEN_FEATURES`). A logistic regression over
both (:data:`FEATURES`, :data:`OTHER_FEATURES` or :data:`CHOSEN_FEATURES`, standardised) gives
``P(answerable)``, the answer's ``confidence``; the answerer declines below ``[answer]
abstain_threshold``, and also whenever the selector's own probability is below ``selector_floor``:
the reader has only learnt "no answer" from questions written against the passage it reads
(IDK-MRC), and on a passage about something else it still finds a confident span, so a question
about what the articles never mention must not pass on the reader's word alone, unless one of
its readings (of any paragraph read) is very confident: ``span_floor``. The weights are calibrated on labelled valid questions asked through the whole
assistant (``benchmarks/calibrate_abstention.py --fit``; IDK-MRC valid with TyDi and FacQA valid
for answerable questions of other styles), and ship as JSON (``models/answerability.json``), card
in ``models/ANSWERABILITY.md``. Without the reader the selector's own probability is the confidence,
compared with the selector file's calibrated threshold.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import ConfigError
from ..linear import fit_logistic, linear_dict, logistic, read_model, save_json

FEATURES = ("selector_logit", "span_logp", "null_logp", "best_span_logp", "best_null_logp")
#: a model may add this one: the lowest "no answer" over the other paragraphs' readings (the paragraph
#: chooser's, ``[answer] reader_paragraphs`` > 1), the own readings' when there are none
OTHER_FEATURES = FEATURES + ("other_null_logp",)
#: ... and these: the span and "no answer" log probabilities of the reading that the paragraph chooser
#: answers from (:func:`~qa.answer.chooser.chosen_reading`; the best candidate read alone when it keeps
#: the first paragraph, or when there is no chooser)
CHOSEN_FEATURES = OTHER_FEATURES + ("chosen_span_logp", "chosen_null_logp")
NAMES = (FEATURES, OTHER_FEATURES, CHOSEN_FEATURES)
PACKAGED = Path(__file__).with_name("models") / "answerability.json"
FORMAT = "qa-answerability/1"
EPS = 1e-6


def _logit(p: float) -> float:
    p = min(max(float(p), EPS), 1 - EPS)
    return math.log(p / (1 - p))


def _logp(p: float) -> float:
    return math.log(min(max(float(p), EPS), 1.0))


def features(selector_p: float, spans: Sequence[Optional[object]],
             others: Optional[Sequence[Optional[object]]] = None, chosen: Optional[object] = None, *,
             names: Optional[tuple] = None) -> np.ndarray:
    """The ``names`` columns (:data:`FEATURES`, :data:`OTHER_FEATURES` or :data:`CHOSEN_FEATURES`; default:
    :data:`OTHER_FEATURES` when ``others`` is given, else :data:`FEATURES`) from the selector's probability
    and the reader's spans of the candidates it read, best candidate first (None: a candidate with nothing
    to read). ``span_logp`` / ``null_logp``: the most probable span over all of them, and the least "no
    answer"; ``best_*``: the best candidate's. ``others``: the spans of the other paragraphs' candidates
    (possibly none). ``chosen``: the span of the reading the paragraph chooser answers from (None: the
    best candidate's own, as :func:`~qa.answer.chooser.row_zero_span` takes it)."""
    names = names or (OTHER_FEATURES if others is not None else FEATURES)
    if names not in NAMES:
        raise ValueError(f"unknown answerability features {names}; allowed: {', '.join(str(n) for n in NAMES)}")
    read = [s for s in spans if s is not None]
    first = spans[0] if spans else None
    null = min((s.null for s in read), default=1.0)
    row = [_logit(selector_p),
           _logp(max((s.probability for s in read), default=0.0)),
           _logp(null),
           _logp(first.probability if first is not None else 0.0),
           _logp(first.null if first is not None else 1.0)]
    if len(names) > len(FEATURES):
        row.append(_logp(min((s.null for s in (others or ()) if s is not None), default=null)))
    if len(names) > len(OTHER_FEATURES):
        if chosen is None:
            chosen = spans[1] if len(spans) > 1 and spans[1] is not None else first
        row += [_logp(chosen.probability if chosen is not None else 0.0),
                _logp(chosen.null if chosen is not None else 1.0)]
    return np.array(row)


@dataclass
class Answerability:
    """Logistic regression over :data:`FEATURES` (or :data:`OTHER_FEATURES`, :data:`CHOSEN_FEATURES`:
    ``names``); ``threshold``:
    the calibrated decline threshold."""

    weights: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray
    threshold: float = 0.5
    meta: dict = field(default_factory=dict)
    selector_floor: float = 0.0  # below this selector probability the answerer declines, whatever the model says
    names: tuple = FEATURES  # the features it reads
    span_floor: Optional[float] = None  # ... unless a reading's span is at least this probable (None: never)

    def passes_floor(self, selector_p: float, spans: Sequence[Optional[object]]) -> bool:
        """Whether the question may be answered at all: the selector's probability reaches
        ``selector_floor``, or one of the reader's ``spans`` (any paragraph read) is at least
        ``span_floor`` probable (a confident reading of another article's paragraph where the
        selector's own best sentence is elsewhere, common on news)."""
        if selector_p >= self.selector_floor:
            return True
        return self.span_floor is not None and any(
            s is not None and s.probability >= self.span_floor for s in spans)

    def probability(self, x: np.ndarray) -> np.ndarray:
        """P(answerable) of each row of ``x`` (n, len(FEATURES)), or of the one row ``x``."""
        return logistic(x, self.weights, self.bias, self.mean, self.scale)

    def __call__(self, selector_p: float, spans: Sequence[Optional[object]],
                 others: Sequence[Optional[object]] = (), chosen: Optional[object] = None) -> float:
        """P(answerable) from the selector's probability, the best candidate's readings (``spans``),
        the other paragraphs' (``others``, read by a model with :data:`OTHER_FEATURES` or more) and the
        one the paragraph chooser answers from (``chosen``, :data:`CHOSEN_FEATURES` only; None: the best
        candidate's own)."""
        return float(self.probability(features(selector_p, spans, others, chosen, names=self.names)))

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, *, l2: float = 1.0) -> "Answerability":
        """Fitted on feature rows ``x`` (the columns of one of :data:`NAMES`, told by their number) and
        labels ``y`` (1: answerable), deterministically."""
        by_width = {len(n): n for n in NAMES}
        if x.shape[1] not in by_width:
            raise ValueError(f"answerability rows have {x.shape[1]} columns; allowed: {sorted(by_width)}")
        w, b, mean, scale = fit_logistic(x, y, l2=l2)
        names = by_width[x.shape[1]]
        return cls(w, b, mean, scale, names=names)

    # -- persistence (JSON, no pickle) -----------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT, "features": list(self.names),
                **linear_dict(self.weights, self.bias, self.mean, self.scale),
                "threshold": round(float(self.threshold), 4), "selector_floor": round(float(self.selector_floor), 4),
                "span_floor": None if self.span_floor is None else round(float(self.span_floor), 4), "meta": self.meta}

    def save(self, path: str | Path) -> Path:
        return save_json(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Answerability":
        """The model in ``path`` (default: the packaged one); ConfigError naming the problem."""
        p = Path(path) if path else PACKAGED
        d, names, weights, bias, mean, scale, threshold = read_model(
            p, "answerability", FORMAT, "benchmarks/calibrate_abstention.py --fit", *NAMES)
        floors = []
        for name, default in (("selector_floor", 0.0), ("span_floor", None)):
            v = d.get(name, default)
            if v is None:
                floors.append(None)
                continue
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise ConfigError(f"{p}: field '{name}' is not numeric") from None
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{p}: field '{name}' must be in 0..1; got {v}")
            floors.append(v)
        return cls(weights, bias, mean, scale, threshold, d.get("meta") or {}, floors[0], names, floors[1])


__all__ = ["Answerability", "CHOSEN_FEATURES", "FEATURES", "FORMAT", "NAMES", "OTHER_FEATURES", "PACKAGED", "features"]
