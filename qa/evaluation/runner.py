"""``evaluate``: retrieval metrics per retriever, answer checks (retrieved and reader-only), stage
latencies, per-question report (the report's types and tables: :mod:`.report`)."""
from __future__ import annotations

import logging
import time
from typing import Any, Optional, Sequence

from ..assistant import Assistant
from ..config import Config
from ..errors import ConfigError
from ..lexicon import widen
from ..retrieval import Candidates
from ..types import Answer, Article, Chunk, Hit
from .metrics import (contains_answer, exact_match, first_gold_rank, lead_prediction, metric_names, ranx_scores,
                      summarize_latency, token_f1)
from .pipeline import describe, gold_ids, ms_since, retrieval_settings
from .questions import Question
from .report import AnswerScores, EvalReport, QuestionResult, ReaderOnlyScores, RetrieverScores, answer_scores

log = logging.getLogger("qa")

RETRIEVERS = ("bm25", "dense", "hybrid")
STAGES = ("embed_query", "dense_search", "bm25", "fusion", "answer")


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
        text, lang = q.question, detect_lang(q.question)
        if cfg.translate_questions:  # as ask() searches: an English question over Indonesian articles gains their words
            text = widen(text, text, lang, assistant.corpus_lang)
        query = pipe.query(text, expand_abbreviations=cfg.expand_abbreviations)
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
            ans = answerer.answer(q.question, hits, lang=lang, query=text)
            lat["answer"] = ms_since(t0)
            res.answer = _answer_record(ans, q.answers)
        lat["total"] = sum(lat.values())
        if answerer is not None and reader_only and q.answerable and q.answers and q.context.strip():
            t0 = time.perf_counter()  # not part of the pipeline's total
            ans = answerer.answer(q.question, [gold_hit(q)], lang=lang, query=q.question)
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
                        answers=answer_scores(questions, results, reader_only) if answerer is not None else None,
                        latency={s: summarize_latency(v) for s, v in samples.items() if v},
                        results=results, notes=notes, seconds=round(time.perf_counter() - t_start, 2))
    return report


__all__ = ["AnswerScores", "EvalReport", "QuestionResult", "ReaderOnlyScores", "RetrieverScores", "evaluate",
           "gold_hit"]
