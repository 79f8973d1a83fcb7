"""``evaluate``: retrieval metrics per retriever, answer checks (retrieved and reader-only), stage
latencies, per-question report."""
from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from ..assistant import Assistant
from ..config import Config
from ..errors import ConfigError
from ..retrieval import Candidates
from ..types import Answer, Article, Chunk, Hit
from .metrics import (contains_answer, exact_match, first_gold_rank, lead_prediction, metric_headers, metric_names,
                      ranx_scores, ratio, summarize_latency, token_f1)
from .pipeline import describe, gold_ids, ms_since, retrieval_settings
from .questions import Question

log = logging.getLogger("qa")

RETRIEVERS = ("bm25", "dense", "hybrid")
STAGES = ("embed_query", "dense_search", "bm25", "fusion", "answer")


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
    """The result of :func:`evaluate` (``to_dict`` / ``write_json`` give the JSON report)."""

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


def gold_hit(question: Question) -> Hit:
    """The question's gold passage as the one retrieved hit: an article ``gold:<first gold id>``
    (``gold:<question id>`` without one) whose text is ``question.context``, one passage covering
    all of it (chunk id -1: no chunk of any index), rank 1."""
    text = question.context
    art = Article(id=f"gold:{question.articles[0] if question.articles else question.id}", title="", text=text)
    chunk = Chunk(id=-1, article_id=art.id, start=0, end=len(text), text=text)
    return Hit(chunk=chunk, article=art, score=1.0, rank=1)


def _answer_record(ans: Answer, gold: Sequence[str]) -> dict[str, Any]:
    """The per-question JSON of one answer: text, lead, the scored span and its EM / F1, quotes."""
    quotes = [{"article_id": c.article.id, "quote": c.quote, "start": c.start, "end": c.end,
               "verbatim": c.article.text[c.start:c.end] == c.quote} for c in ans.citations]
    pred = lead_prediction(ans)
    return {"text": ans.text, "found": ans.found, "confidence": ans.confidence, "lead": ans.lead,
            "prediction": pred,
            "contains_gold": (ans.found and contains_answer([ans.text] + [c.quote for c in ans.citations], gold))
            if gold else None,
            "em": exact_match(pred, gold) if gold else None, "f1": token_f1(pred, gold) if gold else None,
            "quotes": quotes}


def evaluate(assistant: Assistant, questions: Sequence[Question], *, k: int = 10, answers: bool = True,
             config: Optional[Config] = None, n_chunks: Optional[int] = None,
             reader_only: bool = True) -> EvalReport:
    """Evaluate ``assistant`` on ``questions`` (see :mod:`qa.evaluation.questions`).

    Retrieval: the passages of each retriever (``bm25``, ``dense`` and ``hybrid`` with the
    configured fusion) are reduced to their articles and the top ``k`` are scored with ranx against
    the gold articles (questions without a gold article in the index are reported but not scored;
    for ranking only answerable questions count). With ``fold_duplicates`` (the default, as
    ``retrieve`` shows hits) near-duplicate articles count once, as one story
    (:meth:`~qa.retrieval.Pipeline.story`), and the answers read folded hits too. Answers
    (``answers=True``): the configured mode's top ``answer_k`` passages go to
    ``assistant.answerer``; with ``reader_only`` (the default) each answerable question with gold
    answers and a gold passage (``Question.context``) is also answered from that passage alone
    (:func:`gold_hit`), which tells reader errors from retriever errors. ``config`` overrides the
    retrieval settings (default: the assistant's). ``n_chunks`` passages (default ``max(50, 5 k)``)
    are read to find the top ``k`` articles.
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"k must be a positive integer; got {k!r}")
    if not questions:
        raise ConfigError("no questions to evaluate")
    t_start = time.perf_counter()
    cfg = config or assistant.config
    n_chunks = n_chunks or max(50, 5 * k)
    depth = max(cfg.candidates, n_chunks)
    metrics = metric_names(k)
    notes: list[str] = []
    pipe = assistant.pipeline
    assistant.embedder.encode_queries(["warm-up"])  # load the model before timing anything
    answerer = assistant.answerer if answers else None
    from ..answer import detect_lang

    runs: dict[str, dict[str, list[str]]] = {r: {} for r in RETRIEVERS}
    qrels: dict[str, list[str]] = {}
    runs_by_id: dict[str, dict[str, list[str]]] = {r: {} for r in RETRIEVERS}  # unfolded, when folding
    qrels_by_id: dict[str, list[str]] = {}
    samples: dict[str, list[float]] = {s: [] for s in STAGES}
    samples["total"] = []
    samples["reader_only_answer"] = []
    results: list[QuestionResult] = []
    missing = folded = 0
    for i, q in enumerate(questions, start=1):
        lat: dict[str, float] = {}
        t0 = time.perf_counter()
        query = pipe.query(q.question, expand_abbreviations=cfg.expand_abbreviations)
        lex = pipe.lexical(query, depth)
        lat["bm25"] = ms_since(t0)
        t0 = time.perf_counter()
        vec = pipe.embed(query)
        lat["embed_query"] = ms_since(t0)
        t0 = time.perf_counter()
        den = pipe.dense(vec, depth)
        lat["dense_search"] = ms_since(t0)
        t0 = time.perf_counter()
        cands = Candidates(lex, den, vec, assistant.store.hybrid_search(query.tokens, query.lexical, vec, cfg, depth),
                           query.tokens)
        hybrid = pipe.fuse(cands, "hybrid", cfg, n_chunks)
        lat["fusion"] = ms_since(t0)
        ranked = {"bm25": lex, "dense": den, "hybrid": hybrid}
        gold = gold_ids(assistant, q.articles, cfg.fold_duplicates)
        folded += cfg.fold_duplicates and any(assistant.store.duplicates(a) is not None for a in q.articles)
        scored = bool(gold) and q.answerable
        note = ""
        if q.articles and not gold:
            missing += 1
            note = "gold article not in the index"
        elif not q.articles:
            note = "no gold article"
        elif not q.answerable:
            note = "unanswerable: not in the retrieval metrics"
        res = QuestionResult(id=q.id, question=q.question, gold_articles=list(q.articles), answers=list(q.answers),
                             answerable=q.answerable, scored=scored, note=note)
        for name in RETRIEVERS:
            arts = pipe.article_ranking(ranked[name], n_chunks, k, fold=cfg.fold_duplicates)
            res.top_articles[name] = arts[:5]
            res.gold_rank[name] = first_gold_rank(arts, gold) if gold else None
            if scored:
                runs[name][q.id] = arts
                if cfg.fold_duplicates:
                    runs_by_id[name][q.id] = pipe.article_ranking(ranked[name], n_chunks, k)
        if scored:
            qrels[q.id] = gold
            qrels_by_id[q.id] = gold_ids(assistant, q.articles, False)
        if answerer is not None:
            final = ranked["hybrid"] if cfg.mode == "hybrid" else ranked[cfg.mode]
            hits = pipe.hits(final, cands, cfg.answer_k, fold=cfg.fold_duplicates)
            t0 = time.perf_counter()
            ans = answerer.answer(q.question, hits, lang=detect_lang(q.question), query=q.question)
            lat["answer"] = ms_since(t0)
            res.answer = _answer_record(ans, q.answers)
        lat["total"] = sum(lat.values())
        if answerer is not None and reader_only and q.answerable and q.answers and q.context.strip():
            t0 = time.perf_counter()  # not part of the pipeline's total
            ans = answerer.answer(q.question, [gold_hit(q)], lang=detect_lang(q.question), query=q.question)
            lat["reader_only_answer"] = ms_since(t0)
            res.reader_only = _answer_record(ans, q.answers)
        res.latency_ms = {s: round(v, 3) for s, v in lat.items()}
        for s, v in lat.items():
            samples[s].append(v)
        results.append(res)
        if i % 100 == 0:
            log.info("evaluated %d/%d questions", i, len(questions))
    if missing:
        notes.append(f"{missing} question(s) name a gold article that is not in the index (not scored)")
    if folded:
        notes.append(f"{folded} question(s) have a gold article with near-duplicates in the index: with "
                     "fold_duplicates they are one story, and any of them counts as the gold (the "
                     "retrieval figures by article id alone: RetrieverScores.by_article_id)")
    settings = retrieval_settings(cfg)
    labels = {"bm25": describe({**settings, "mode": "bm25"}), "dense": "dense",
              "hybrid": describe({**settings, "mode": "hybrid"})}
    retrieval = {}
    for name in RETRIEVERS:
        values = ranx_scores(qrels, runs[name], metrics) if qrels else {m: float("nan") for m in metrics}
        by_id = ranx_scores(qrels_by_id, runs_by_id[name], metrics) if qrels and folded else None
        retrieval[name] = RetrieverScores(name=name, settings=labels[name], n=len(qrels), metrics=values,
                                          by_article_id=by_id,
                                          configured=name == cfg.mode)
    if not qrels:
        notes.append("no question has a gold article in the index: retrieval metrics are empty")
    if answerer is not None and reader_only and not any(r.reader_only for r in results):
        notes.append("reader-only figures not measured: no answerable question with gold answers carries its "
                     "gold passage ('context')")
    report = EvalReport(index=str(assistant.index_dir), k=k, settings=settings, questions=len(questions),
                        scored=len(qrels), retrieval=retrieval,
                        answers=_answer_scores(questions, results, reader_only) if answerer is not None else None,
                        latency={s: summarize_latency(v) for s, v in samples.items() if v},
                        results=results, notes=notes, seconds=round(time.perf_counter() - t_start, 2))
    return report


def _mean(values: Sequence[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None


def _answer_scores(questions: Sequence[Question], results: Sequence[QuestionResult],
                   reader_only: bool = True) -> AnswerScores:
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


__all__ = ["AnswerScores", "EvalReport", "QuestionResult", "ReaderOnlyScores", "RetrieverScores", "evaluate",
           "gold_hit"]
