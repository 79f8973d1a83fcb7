"""The report of ``evaluate`` (:mod:`.runner`): per-retriever metrics, answer checks (retrieved and
reader-only), stage latencies and the per-question records; its markdown tables and JSON form."""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from .metrics import metric_headers, metric_names, ratio
from .questions import Question


@dataclass
class RetrieverScores:
    """Article-level metrics of one retriever over the questions with a gold article in the index."""

    name: str
    settings: str
    n: int
    metrics: dict[str, float]
    configured: bool = False  # the mode the index is configured with (what ask() uses)
    # the same metrics scoring article ids alone, when folding near-duplicates changed what counts as gold
    by_article_id: Optional[dict[str, float]] = None


@dataclass
class AnswerScores:
    """Answer checks.

    ``contains_gold``: share of answerable questions with gold answer strings whose answer text
    or quotes contain one (abstaining counts as a miss). ``quotes_verbatim``: share of quotes equal
    to ``article.text[start:end]``. Abstention on unanswerable questions: ``abstention_precision``
    = abstained-and-unanswerable / abstained, ``abstention_recall`` = abstained-and-unanswerable /
    unanswerable (None when there is nothing to measure). ``lead_em`` / ``lead_f1``: SQuAD exact
    match and token F1 of the lead span (:func:`~qa.evaluation.metrics.lead_prediction`: the
    answer's lead, else its first quote, else "" when it abstained) against the gold answers, mean
    over the same ``n_with_gold`` questions.
    """

    n_with_gold: int = 0
    contains_gold: Optional[float] = None
    n_quotes: int = 0
    quotes_verbatim: Optional[float] = None
    n_unanswerable: int = 0
    n_abstained: int = 0
    abstention_precision: Optional[float] = None
    abstention_recall: Optional[float] = None
    answered_share: Optional[float] = None  # answerable questions the answerer did not abstain on
    lead_em: Optional[float] = None
    lead_f1: Optional[float] = None
    reader_only: Optional["ReaderOnlyScores"] = None


@dataclass
class ReaderOnlyScores:
    """The answerer given only the gold passage (``Question.context``) as its one hit: reader errors
    without retriever errors. Over the ``n`` answerable questions with gold answers and a context:
    ``contains_gold``, ``lead_em`` and ``lead_f1`` as in :class:`AnswerScores`, and
    ``answered_share`` (share it did not abstain on); ``lead_f1_answered``: the lead F1 over the
    questions it answered (span errors apart from declines). ``skipped``: answerable questions with
    gold answers but no context (not measured). ``retrieved_*``: the retrieved setting's figures on
    the same ``n`` questions, for a like-for-like comparison.
    """

    n: int = 0
    skipped: int = 0
    contains_gold: Optional[float] = None
    lead_em: Optional[float] = None
    lead_f1: Optional[float] = None
    answered_share: Optional[float] = None
    lead_f1_answered: Optional[float] = None
    retrieved_contains_gold: Optional[float] = None
    retrieved_lead_em: Optional[float] = None
    retrieved_lead_f1: Optional[float] = None
    retrieved_answered_share: Optional[float] = None
    retrieved_lead_f1_answered: Optional[float] = None


@dataclass
class QuestionResult:
    """Everything measured for one question (the per-question JSON report)."""

    id: str
    question: str
    gold_articles: list[str]
    answers: list[str]
    answerable: bool
    scored: bool  # counted in the retrieval metrics
    note: str = ""
    gold_rank: dict[str, Optional[int]] = field(default_factory=dict)
    top_articles: dict[str, list[str]] = field(default_factory=dict)
    answer: Optional[dict[str, Any]] = None
    reader_only: Optional[dict[str, Any]] = None  # the answer given the gold passage alone
    latency_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class EvalReport:
    """The result of :func:`~qa.evaluation.evaluate` (``to_dict`` / ``write_json`` give the JSON report)."""

    index: str
    k: int
    settings: dict[str, Any]
    questions: int
    scored: int
    retrieval: dict[str, RetrieverScores]
    answers: Optional[AnswerScores]
    latency: dict[str, dict[str, float]]
    results: list[QuestionResult]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return _clean(asdict(self))

    def write_json(self, path: str | os.PathLike) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return p

    def tables(self) -> str:
        """Markdown tables of the summary (retrieval, answers, latency)."""
        names = metric_names(self.k)
        heads = metric_headers(self.k)
        lines = [f"Retrieval ({self.scored} of {self.questions} questions have a gold article in the index; "
                 f"top {self.k} articles)", "",
                 "| retriever | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
        for r in self.retrieval.values():
            mark = " (configured)" if r.configured else ""
            lines.append(f"| {r.name}{mark}: {r.settings} | " + " | ".join(_f(r.metrics.get(m)) for m in names) + " |")
        if any(r.by_article_id for r in self.retrieval.values()):
            lines += ["", "Near-duplicates fold into one story above; scoring article ids alone:", "",
                      "| retriever, by article id | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
            lines += [f"| {r.name} | " + " | ".join(_f(r.by_article_id.get(m)) for m in names) + " |"
                      for r in self.retrieval.values() if r.by_article_id]
        a = self.answers
        if a is not None:
            lines += ["", "| answers | value | of |", "|---|---:|---:|",
                      f"| answer or quotes contain a gold answer | {_f(a.contains_gold)} | {a.n_with_gold} |",
                      f"| lead span exact match (SQuAD EM) | {_f(a.lead_em)} | {a.n_with_gold} |",
                      f"| lead span token F1 (SQuAD F1) | {_f(a.lead_f1)} | {a.n_with_gold} |",
                      f"| quotes verbatim at their offsets | {_f(a.quotes_verbatim)} | {a.n_quotes} |",
                      f"| abstention precision | {_f(a.abstention_precision)} | {a.n_abstained} abstained |",
                      f"| abstention recall | {_f(a.abstention_recall)} | {a.n_unanswerable} unanswerable |"]
            r = a.reader_only
            if r is not None:
                skipped = f"; {r.skipped} without one skipped" if r.skipped else ""
                lines += ["", f"Reader only: the answerer given the gold passage alone ({r.n} answerable questions "
                              f"with gold answers and a gold passage{skipped})", "",
                          "| reader only | gold passage only | retrieved (same questions) |", "|---|---:|---:|",
                          f"| answer or quotes contain a gold answer | {_f(r.contains_gold)} | "
                          f"{_f(r.retrieved_contains_gold)} |",
                          f"| lead span exact match (SQuAD EM) | {_f(r.lead_em)} | {_f(r.retrieved_lead_em)} |",
                          f"| lead span token F1 (SQuAD F1) | {_f(r.lead_f1)} | {_f(r.retrieved_lead_f1)} |",
                          f"| answered (did not abstain) | {_f(r.answered_share)} | {_f(r.retrieved_answered_share)} |",
                          f"| lead span token F1 where answered | {_f(r.lead_f1_answered)} | "
                          f"{_f(r.retrieved_lead_f1_answered)} |"]
            lines += ["", "Lead span: the answer's lead (a count, a name, a date) when it has one, else its first "
                          "quote, else \"\" when it abstained."]
        lines += ["", "| stage | median ms | p95 ms |", "|---|---:|---:|"]
        for stage, v in self.latency.items():
            lines.append(f"| {stage} | {_f(v['median_ms'], 1)} | {_f(v['p95_ms'], 1)} |")
        return "\n".join(lines)


def _f(v: Optional[float], digits: int = 3) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _clean(obj: Any) -> Any:
    """NaN -> None so that the JSON report is strict JSON."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _mean(values: Sequence[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None


def answer_scores(questions: Sequence[Question], results: Sequence[QuestionResult],
                  reader_only: bool = True) -> AnswerScores:
    """The answer checks of :class:`AnswerScores` over the per-question records (and the reader-only
    figures, with ``reader_only``)."""
    s = AnswerScores()
    with_gold = ok = quotes = verbatim = unans = abstained = abstained_unans = answerable = answered = 0
    ems: list[float] = []
    f1s: list[float] = []
    for q, r in zip(questions, results):
        a = r.answer or {}
        found = bool(a.get("found"))
        if q.answerable:
            answerable += 1
            answered += found
            if q.answers:
                with_gold += 1
                ok += bool(a.get("contains_gold"))
                ems.append(a["em"])
                f1s.append(a["f1"])
        else:
            unans += 1
            abstained_unans += not found
        abstained += not found
        for c in a.get("quotes", []):
            quotes += 1
            verbatim += c["verbatim"]
    s.n_with_gold, s.contains_gold = with_gold, ratio(ok, with_gold)
    s.n_quotes, s.quotes_verbatim = quotes, ratio(verbatim, quotes)
    s.n_unanswerable, s.n_abstained = unans, abstained
    if unans:
        s.abstention_recall = ratio(abstained_unans, unans)
        s.abstention_precision = ratio(abstained_unans, abstained)
    s.answered_share = ratio(answered, answerable)
    s.lead_em, s.lead_f1 = _mean(ems), _mean(f1s)
    if reader_only:
        s.reader_only = _reader_only_scores(questions, results)
    return s


def _reader_only_scores(questions: Sequence[Question], results: Sequence[QuestionResult]) -> Optional[ReaderOnlyScores]:
    """Reader-only figures, and the retrieved ones on the same questions; None when no question
    with gold answers has a gold passage (nothing to measure)."""
    pairs = [(r.reader_only, r.answer or {}) for q, r in zip(questions, results) if q.answerable and q.answers]
    measured = [(ro, ret) for ro, ret in pairs if ro is not None]
    if not measured:
        return None
    return ReaderOnlyScores(
        n=len(measured), skipped=len(pairs) - len(measured),
        contains_gold=_mean([float(bool(ro["contains_gold"])) for ro, _ in measured]),
        lead_em=_mean([ro["em"] for ro, _ in measured]), lead_f1=_mean([ro["f1"] for ro, _ in measured]),
        answered_share=_mean([float(ro["found"]) for ro, _ in measured]),
        lead_f1_answered=_mean([ro["f1"] for ro, _ in measured if ro["found"]]),
        retrieved_contains_gold=_mean([float(bool(ret.get("contains_gold"))) for _, ret in measured]),
        retrieved_lead_em=_mean([ret["em"] for _, ret in measured]),
        retrieved_lead_f1=_mean([ret["f1"] for _, ret in measured]),
        retrieved_answered_share=_mean([float(bool(ret.get("found"))) for _, ret in measured]),
        retrieved_lead_f1_answered=_mean([ret["f1"] for _, ret in measured if ret.get("found")]))


__all__ = ["AnswerScores", "EvalReport", "QuestionResult", "ReaderOnlyScores", "RetrieverScores", "answer_scores"]
