"""Train the answerer's sentence selector (:mod:`qa.answer.selector`) on labelled questions: ``qa train-selector``.

Input: JSONL rows ``{question, context, answers: [{text, start}], is_impossible}`` (the SQuAD
form of TyDi QA, FacQA and IDK-MRC; unanswerable questions have no answers). Each question is
answered the way the assistant answers it: its gold passage and ``distractors`` other passages
that retrieval ranks highest for it (from the same files; ``retrieval="hybrid"``: BM25 and the
encoder's passage vectors fused by reciprocal rank, as the assistant retrieves; ``"bm25"``: BM25
alone, as the shipped selector was first trained) are split into sentences, every sentence is
embedded with the encoder (the passage form, as the index stores them) and the question with its
query form; each candidate gets the answerer's features and the label "contains a gold answer".
A logistic regression is fitted on the training rows; validation rows give the figures of the
card and, on files with unanswerable questions, the decline threshold with the best abstention F1.
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..analyzer import Analyzer
from ..chunking import split_sentences
from ..fusion import rrf
from ..evaluation.questions import QuestionFileError, json_object, jsonl_rows
from ..lexical import make_lexical
from ..types import Article, Chunk, Hit
from ..answer.extractive import ExtractiveAnswerer
from ..answer.selector import (FEATURES, Selector, abstention, best_threshold, fit, log_loss, pair_cosines,
                               question_features)
from ..answer.spans import strip_clitic

log = logging.getLogger("qa")


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass
class Labelled:
    """One labelled question: its gold passage and answers (none when unanswerable)."""

    question: str
    context: str
    answers: list[tuple[str, int]]
    source: str  # file name, for per-set figures

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


def read_labelled(path: str | Path, *, limit: Optional[int] = None, seed: int = 0) -> list[Labelled]:
    """The rows of a labelled file (a seeded sample of ``limit``); errors name file and line."""
    return _sample(read_all(path), limit, seed)


def _sample(rows: list[Labelled], limit: Optional[int], seed: int) -> list[Labelled]:
    return random.Random(seed).sample(rows, limit) if limit is not None and len(rows) > limit else rows


def read_all(path: str | Path) -> list[Labelled]:
    out: list[Labelled] = []
    name = Path(path).name
    for _, where, row in jsonl_rows(path, "labelled questions"):
        row = json_object(row, where)
        q, ctx = row.get("question"), row.get("context")
        if not isinstance(q, str) or not q.strip():
            raise QuestionFileError(f"{where}: field 'question' must be a non-empty string")
        if not isinstance(ctx, str) or not ctx.strip():
            raise QuestionFileError(f"{where}: field 'context' must be a non-empty string (the gold passage)")
        answers = []
        for a in row.get("answers") or []:
            if not isinstance(a, dict) or not isinstance(a.get("text"), str):
                raise QuestionFileError(f"{where}: field 'answers' must be a list of {{text, start}} objects")
            start = a.get("start")
            answers.append((a["text"], start if isinstance(start, int) else -1))
        if row.get("is_impossible"):
            answers = []
        out.append(Labelled(q.strip(), ctx, [a for a in answers if a[0].strip()], name))
    return out


def _contains(text: str, start: int, end: int, context: Optional[str], answers: list[tuple[str, int]]) -> bool:
    span = text[start:end].lower()
    for a, pos in answers:
        if context is not None and pos >= 0 and start <= pos and pos + len(a) <= end:
            return True
        if a.lower() in span:
            return True
    return False


RETRIEVALS = ("bm25", "hybrid")


def _check_retrieval(retrieval: str) -> None:
    if retrieval not in RETRIEVALS:
        raise ValueError(f"retrieval must be one of {', '.join(RETRIEVALS)}; got {retrieval!r}")


def _ranked_others(rows: Sequence[Labelled], lexical, analyzer: Analyzer, ids: list[str], contexts: dict[str, str],
                   encoder, qvecs: Optional[np.ndarray], distractors: int, retrieval: str,
                   progress: bool) -> list[list[str]]:
    """Per question, the ids of the ``distractors`` passages ranked highest that are not its gold one
    (hybrid: fused from each list's top 20, deeper than the few kept, so that fusion can reorder)."""
    depth = distractors + 1
    dense = None
    if retrieval == "hybrid":
        depth = max(20, depth)
        log.info("embedding %d passages for dense retrieval", len(ids))
        dense = encoder.encode_passages([contexts[i] for i in ids], progress=progress)
    out = []
    for n, r in enumerate(rows):
        gold = _key(r.context)
        ranked = lexical.search(analyzer.tokens(r.question), depth)
        if dense is not None:
            sims = dense @ qvecs[n]
            top = np.argsort(-sims)[:depth]
            ranked = rrf([ranked, [(int(j), float(sims[j])) for j in top]], k=60)
        out.append([ids[j] for j, _ in ranked if ids[j] != gold][:distractors])
    return out


def featurize(rows: Sequence[Labelled], encoder, *, pool: Sequence[str] = (), distractors: int = 2, seed: int = 0,
              retrieval: str = "bm25", progress: bool = True) -> dict[str, Any]:
    """Feature rows, labels and per-question groups for ``rows`` (see the module docstring);
    distractors come from the rows' passages and ``pool``, ranked by ``retrieval`` (one of
    :data:`RETRIEVALS`)."""
    _check_retrieval(retrieval)
    analyzer = Analyzer()
    contexts: dict[str, str] = {}
    for t in [r.context for r in rows] + list(pool):
        contexts.setdefault(_key(t), t)
    ids = list(contexts)
    lexical = make_lexical([analyzer.tokens(contexts[i]) for i in ids], engine="bm25s", k1=1.5, b=0.75)
    placeholder = Selector(np.zeros(len(FEATURES)), 0.0, np.zeros(len(FEATURES)), np.ones(len(FEATURES)))
    x = ExtractiveAnswerer(analyzer, lexical.idf, encoder, selector=placeholder, max_idf=lexical.max_idf)
    rng = random.Random(seed)
    articles = {i: Article(id=i, title="", text=t) for i, t in contexts.items()}
    qvecs = encoder.encode_queries([r.question for r in rows])
    per_q = []
    ranked_others = _ranked_others(rows, lexical, analyzer, ids, contexts, encoder, qvecs, distractors, retrieval,
                                   progress)
    for r, others in zip(rows, ranked_others):
        gold = _key(r.context)
        order = [gold] + others
        rng.shuffle(order)
        hits = [Hit(chunk=Chunk(id=-1, article_id=a, start=0, end=len(contexts[a]), text=contexts[a]),
                    article=articles[a], score=0.0, rank=n) for n, a in enumerate(order, start=1)]
        per_q.append((r, gold, hits, x.candidates(hits)))
    texts = sorted({c.text for *_, cands in per_q for c in cands if not c.pair})
    t0 = time.perf_counter()
    log.info("embedding %d sentences and %d questions", len(texts), len(rows))
    matrix = encoder.encode_passages(texts, progress=progress)
    vec = dict(zip(texts, matrix))
    reference = cosine_reference(matrix, seed=seed)
    log.info("embedded in %.0f s", time.perf_counter() - t0)

    def embedded(hit: Hit) -> tuple[np.ndarray, np.ndarray]:
        """The vectors just computed, as an index would hand them to the answerer."""
        text = hit.article.text
        sents = [s for s in split_sentences(text, hit.start, hit.end) if text[s.start:s.end] in vec]
        rows = np.asarray([(-1, s.start, s.end, s.para) for s in sents], dtype=np.int64).reshape(-1, 4)
        return rows, np.asarray([vec[text[s.start:s.end]] for s in sents]).reshape(-1, encoder.dimension)

    x.sentences = embedded
    feats, labels, groups = [], [], []
    for n, ((r, gold, hits, cands), qv) in enumerate(zip(per_q, qvecs)):
        x.attach_vectors(hits, cands)
        own = " ".join(strip_clitic(w) for w in r.question.split())
        feats.append(x.features(own, cands, query=r.question, qvec=qv))
        labels += [_contains(c.article.text, c.start, c.end, r.context if c.article.id == gold else None, r.answers)
                   for c in cands]
        groups += [n] * len(cands)
    return {"x": np.vstack(feats) if feats else np.zeros((0, len(FEATURES))), "y": np.asarray(labels, dtype=float),
            "group": np.asarray(groups), "answerable": np.asarray([r.answerable for r in rows]),
            "source": [r.source for r in rows], "reference": reference}


def fit_answerability(selector: Selector, data: dict[str, Any], *, l2: float = 1.0) -> Optional[Selector]:
    """The question-level model: P(answerable) from :data:`Q_FEATURES` of each question's
    candidates as the sentence model rates them (None when the data has one kind of question only)."""
    p = selector.probability(data["x"])
    rows = _rows_by_question(data)
    keep = [i for i, r in enumerate(rows) if len(r)]
    qx = np.stack([question_features(data["x"][rows[i]], p[rows[i]]) for i in keep]) if keep else np.zeros((0, 1))
    qy = data["answerable"][keep].astype(float)
    if len(qy) == 0 or qy.min() == qy.max():
        return None
    return fit(qx, qy, l2=l2)


def cosine_reference(vectors: np.ndarray, *, pairs: int = 2000, seed: int = 0) -> dict[str, float]:
    """Mean and spread of cosines between random pairs of sentence vectors (what
    :func:`qa.answer.selector.cosine_map` matches another encoder's cosines to)."""
    if len(vectors) < 2:
        return {}
    c = pair_cosines(vectors, pairs=pairs, seed=seed)
    return {"mean": round(float(c.mean()), 4), "std": round(float(c.std()), 4),
            "how": f"cosines of {len(c)} random pairs of the training sentences' vectors"}


def _cached(path: str | Path, key: str) -> Optional[dict[str, Any]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                log.info("%s holds other training questions; featurizing again", path)
                return None
            return {"x": z["x"], "y": z["y"], "group": z["group"], "answerable": z["answerable"],
                    "source": [str(v) for v in z["source"]],
                    "reference": json.loads(str(z["reference"])) if "reference" in z else {}}
    except (OSError, KeyError, ValueError):
        return None


def _rows_by_question(data: dict[str, Any]) -> list[np.ndarray]:
    """Row indices of each question's candidates (rows are stored question by question, in order)."""
    g = data["group"]
    return np.split(np.arange(len(g)), np.searchsorted(g, np.arange(1, len(data["answerable"]))))


def _subset(data: dict[str, Any], keep: np.ndarray) -> dict[str, Any]:
    """The questions ``keep`` (a mask over questions) of featurized ``data``, renumbered."""
    new_id = np.cumsum(keep) - 1
    rows = keep[data["group"]]
    return {"x": data["x"][rows], "y": data["y"][rows], "group": new_id[data["group"][rows]],
            "answerable": data["answerable"][keep], "source": [s for s, k in zip(data["source"], keep) if k]}


def evaluate(selector: Selector, data: dict[str, Any], threshold: Optional[float] = None) -> dict[str, Any]:
    """Per question: does the top candidate hold the answer; the best probability; log loss."""
    p = selector.probability(data["x"])
    y = data["y"]
    n = len(data["answerable"])
    best_p = np.zeros(n)
    top_ok = np.zeros(n, dtype=bool)
    for q, rows in enumerate(_rows_by_question(data)):
        if len(rows):
            i = rows[np.argmax(p[rows])]
            best_p[q], top_ok[q] = selector.answerable(data["x"][rows], p[rows]), y[i] > 0
    ans = data["answerable"]
    out = {"questions": int(n), "answerable": int(ans.sum()), "log_loss": round(log_loss(p, y), 4),
           "top_sentence_holds_answer": round(float(top_ok[ans].mean()), 4) if ans.any() else None}
    t = selector.threshold if threshold is None else threshold
    out["answered_with_answer"] = round(float((top_ok & (best_p >= t))[ans].mean()), 4) if ans.any() else None
    if (~ans).any():
        out["abstention"] = {k: round(v, 4) for k, v in best_threshold(best_p, ans, max_declined=1.0).items()}
        out["at_threshold"] = {k: round(v, 4) for k, v in abstention(best_p, ans, t).items()}
    out["_best_p"] = best_p
    return out


def train(train_files: Sequence[str | Path], encoder, *, valid_files: Sequence[str | Path] = (),
          calibrate: Optional[str | Path] = None, limit: Optional[int] = None, distractors: int = 2,
          retrieval: str = "bm25", l2: float = 1.0, max_declined: float = 0.15, holdout: float = 0.15, seed: int = 0,
          cache: Optional[str | Path] = None, progress: bool = True) -> tuple[Selector, dict]:
    """Fit a selector on ``train_files`` (``limit`` questions sampled from each), report on
    ``valid_files``, and set its threshold for abstention F1 on ``calibrate`` (declining at most
    ``max_declined`` of its answerable questions). ``holdout`` of the sampled questions are kept out
    of the fit and reported as validation. ``retrieval``: how distractors are ranked (:func:`featurize`).
    ``cache``: an ``.npz`` of the featurized training questions,
    reused when it matches these files and settings (embedding them is most of the time)."""
    _check_retrieval(retrieval)
    full = {str(f): read_all(f) for f in train_files}
    rows = [r for f in train_files for r in _sample(full[str(f)], limit, seed)]
    if not rows:
        raise ValueError("no training questions")
    pool = [r.context for f in train_files for r in full[str(f)]]
    key = _key(repr((sorted(str(f) for f in train_files), limit, distractors, seed, len(rows),
                     getattr(encoder, "fingerprint", ""), FEATURES) + ((retrieval,) if retrieval != "bm25" else ())))
    data = _cached(cache, key) if cache is not None else None
    if data is None:
        data = featurize(rows, encoder, pool=pool, distractors=distractors, seed=seed, retrieval=retrieval,
                         progress=progress)
        if cache is not None:
            Path(cache).parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(cache, key=key, x=data["x"], y=data["y"], group=data["group"],
                                answerable=data["answerable"], source=np.asarray(data["source"]),
                                reference=np.asarray(json.dumps(data["reference"])))
    held = np.asarray([random.Random(seed + n).random() < holdout for n in range(len(rows))])
    fit_rows = ~held[data["group"]]
    selector = fit(data["x"][fit_rows], data["y"][fit_rows], l2=l2)
    selector.question = fit_answerability(selector, _subset(data, ~held), l2=l2)
    selector.encoder = getattr(encoder, "fingerprint", "") or getattr(encoder, "name", "")
    report: dict[str, Any] = {"train": {"files": [str(Path(f).name) for f in train_files],
                                        "questions": int((~held).sum()),
                                        "candidates": int(len(data["y"])), "positives": int(data["y"].sum()),
                                        "limit_per_file": limit, "distractors": distractors,
                                        "retrieval": retrieval, "l2": l2, "seed": seed,
                                        "holdout": holdout}}
    report["train"]["figures"] = {k: v for k, v in evaluate(selector, _subset(data, ~held)).items() if k != "_best_p"}
    valid: dict[str, Any] = {}
    for src in dict.fromkeys(data["source"]):  # per file: the held-out questions
        mask = held & np.asarray([s == src for s in data["source"]])
        if mask.any():
            valid[f"{src} (held out)"] = (_subset(data, mask), None)
    for f in valid_files:
        vd = featurize(read_labelled(f), encoder, distractors=distractors, seed=seed, retrieval=retrieval,
                       progress=progress)
        valid[Path(f).name] = (vd, evaluate(selector, vd))
    if calibrate is not None:
        name = Path(calibrate).name
        if name not in valid or valid[name][1] is None:
            vd = featurize(read_labelled(calibrate), encoder, distractors=distractors, seed=seed,
                          retrieval=retrieval, progress=progress)
            valid[name] = (vd, evaluate(selector, vd))
        vd, ev = valid[name]
        best = best_threshold(ev["_best_p"], vd["answerable"], max_declined=max_declined)
        selector.threshold = best["threshold"]
        report["calibration"] = {"file": name, "max_declined_answerable": max_declined,
                                 **{k: round(v, 4) for k, v in best.items()}}
    valid = {k: (d, evaluate(selector, d)) for k, (d, _) in valid.items()}
    report["valid"] = {k: {kk: vv for kk, vv in ev.items() if kk != "_best_p"} for k, (_, ev) in valid.items()}
    selector.meta = {**report, "cosine_reference": data.get("reference") or {}}
    return selector, report


def card(selector: Selector, report: dict[str, Any], command: str) -> str:
    """The model card (markdown) of a trained selector."""
    t = report["train"]
    ranked_by = {"bm25": "BM25", "hybrid": "BM25 and dense vectors (RRF)"}[t.get("retrieval", "bm25")]
    lines = ["# Sentence selector", "",
             "Logistic regression that rates how likely each candidate sentence of the retrieved passages is to",
             "hold the answer (`qa/answer/selector.py`); the answerer quotes the best ones and declines below the",
             "threshold.", "", f"Trained with: `{command}`", "",
             f"- data: {', '.join(t['files'])}; {t['questions']} questions ({t['limit_per_file'] or 'all'} per file, "
             f"seed {t['seed']}), each with its gold passage and {t['distractors']} other passages ranked by "
             f"{ranked_by}: "
             f"{t['candidates']} candidate sentences and pairs, {t['positives']} holding a gold answer",
             f"- encoder (cosine features): `{selector.encoder}`", f"- features: {', '.join(FEATURES)}",
             f"- L2 penalty {t['l2']}, Newton's method on standardised features; threshold "
             f"{selector.threshold:.4f}", ""]
    if "calibration" in report:
        c = report["calibration"]
        lines += [f"Threshold: best abstention F1 on {c['file']} declining at most "
                  f"{c['max_declined_answerable']:.0%} of its answerable questions: F1 {c['f1']:.3f} "
                  f"(precision {c['precision']:.3f}, recall {c['recall']:.3f}, answerable declined "
                  f"{c['declined_answerable']:.3f}).", ""]
    lines += ["| set | questions | top sentence holds the answer | answered with the answer | log loss | "
              "abstention F1 |", "|---|---:|---:|---:|---:|---:|"]
    for name, ev in [("train", t["figures"])] + list(report.get("valid", {}).items()):
        ab = ev.get("at_threshold", {}).get("f1")
        lines.append(f"| {name} | {ev['questions']} | {ev['top_sentence_holds_answer']} | "
                     f"{ev['answered_with_answer']} | {ev['log_loss']} | {'-' if ab is None else ab} |")
    lines += ["", "Figures are over each question's gold passage and its distractors (the reader's view); the",
              "assistant's figures over a retrieved pool are in docs/answers.md."]
    return "\n".join(lines) + "\n"
