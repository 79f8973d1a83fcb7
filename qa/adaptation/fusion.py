"""Training the query-adaptive fusion model (:mod:`qa.fusion_adaptive`) on labelled questions.

For each training question with a gold passage in the index, the candidate lists are gathered once
through the retrieval pipeline (as ``qa eval`` gathers them) and scored as ``Pipeline.fuse`` scores
a union: every candidate of either list gets its BM25 and dense score, each min-max normalised.
The model's weight ``w(q)`` fuses them as ``(1 - w) * bm25 + w * dense``. Per question the best
weight is noisy (a per-question regression or a learned candidate score did not beat a fixed weight
on held-out training questions), but the best weight per *kind* of question is not: news questions
(FacQA) peak near 0.5, Wikipedia ones near 0.8. So each training file is a class with its best
fixed weight, and a softmax classifier on the list features gives each question the expected
weight. Deterministic: a seeded sample, zero start, full batch.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..assistant import Assistant
from ..fusion import minmax
from ..fusion_adaptive import FEATURES, AdaptiveModel, query_features
from ..evaluation.pipeline import candidate_lists
from ..evaluation.questions import Question
from ..retrieval import Candidates

log = logging.getLogger("qa")


@dataclass
class FusionData:
    """Per question: features ``X``, and over its union candidates (padded to one width) the
    normalised BM25 ``A`` and dense ``B`` scores, chunk ids, article ids and a gold mask."""

    qids: list[str]
    sets: list[str]
    X: np.ndarray
    A: np.ndarray
    B: np.ndarray
    ids: np.ndarray  # chunk ids, -1 for padding
    gold: np.ndarray  # bool
    articles: list[list[str]] = field(default_factory=list)
    gold_articles: list[tuple[str, ...]] = field(default_factory=list)

    def subset(self, rows: Sequence[int]) -> "FusionData":
        r = list(rows)
        return FusionData([self.qids[i] for i in r], [self.sets[i] for i in r], self.X[r], self.A[r], self.B[r],
                          self.ids[r], self.gold[r], [self.articles[i] for i in r],
                          [self.gold_articles[i] for i in r])


def collect(assistant: Assistant, questions: Sequence[Question], set_names: Sequence[str], *,
            depth: int = 100) -> FusionData:
    """The candidate lists of ``questions`` (with the index's BM25 parameters) as :class:`FusionData`."""
    cfg = assistant.config
    pipe = assistant.pipeline
    lists = candidate_lists(assistant, [q.question for q in questions], depth, [(cfg.bm25_k1, cfg.bm25_b)], cfg=cfg)
    lex_all = lists.bm25[(cfg.bm25_k1, cfg.bm25_b)]
    rows = []
    for i, q in enumerate(questions):
        lex, den = lex_all[i][:depth], lists.dense[i][:depth]
        x = query_features(lex, den, len(lists.tokens[i]), depth)
        c = Candidates(lex, den, lists.vectors[i], None, lists.tokens[i], None)
        ids = [d for d, _ in lex] + [d for d, _ in den if d not in dict(lex)]
        bm = pipe._lexical_scores(c, ids, union=True) if ids else []
        dn = assistant.store.dense_scores(lists.vectors[i], ids) if ids else []
        if dn is None:
            known = dict(den)
            dn = [known.get(d, 0.0) for d in ids]
        a, b = minmax(list(zip(ids, bm))), minmax(list(zip(ids, dn)))
        arts = assistant.store.article_ids(ids) if ids else []
        rows.append((x, ids, [a[d] for d in ids], [b[d] for d in ids], arts))
    width = max([len(r[1]) for r in rows] + [1])
    n = len(rows)
    A, B = np.zeros((n, width)), np.zeros((n, width))
    I, G = np.full((n, width), -1, dtype=np.int64), np.zeros((n, width), dtype=bool)
    for j, (x, ids, a, b, arts) in enumerate(rows):
        m = len(ids)
        A[j, :m], B[j, :m], I[j, :m] = a, b, ids
        gold = set(questions[j].articles)
        G[j, :m] = [art in gold for art in arts]
    return FusionData([q.id for q in questions], list(set_names), np.stack([r[0] for r in rows]), A, B, I, G,
                      [list(r[4]) for r in rows], [tuple(q.articles) for q in questions])


def ranks(data: FusionData, w: np.ndarray, n_chunks: int = 50) -> np.ndarray:
    """The rank (1-based) of each question's first gold article when fused with weights ``w`` (one
    per question), among the distinct articles of the first ``n_chunks`` passages; 0 when missing."""
    out = np.zeros(len(data.qids), dtype=np.int64)
    for j in range(len(data.qids)):
        m = int((data.ids[j] >= 0).sum())
        s = (1.0 - w[j]) * data.A[j, :m] + w[j] * data.B[j, :m]
        order = sorted(range(m), key=lambda i: (-s[i], data.ids[j, i]))[:n_chunks]
        seen: list[str] = []
        for i in order:
            art = data.articles[j][i]
            if art not in seen:
                seen.append(art)
                if art in data.gold_articles[j]:
                    out[j] = len(seen)
                    break
    return out


def metrics(r: np.ndarray) -> dict[str, float]:
    """R@1, R@5, MRR@10 from gold ranks (0: not found)."""
    return {"r@1": float(np.mean(r == 1)), "r@5": float(np.mean((r >= 1) & (r <= 5))),
            "mrr@10": float(np.mean(np.where((r >= 1) & (r <= 10), 1.0 / np.maximum(r, 1), 0.0)))}


GRID = tuple(round(0.05 * i, 2) for i in range(21))


def best_weight(data: FusionData, n_chunks: int = 50) -> float:
    """The fixed dense weight of :data:`GRID` with the best R@1 on ``data`` (then MRR@10; then the
    one nearest 0.5)."""
    scored = []
    for w in GRID:
        m = metrics(ranks(data, np.full(len(data.qids), w), n_chunks))
        scored.append((m["r@1"], m["mrr@10"], -abs(w - 0.5), w))
    return max(scored)[-1]


def fit(data: FusionData, *, l2: float = 0.1, steps: int = 2000, lr: float = 0.05,
        meta: Optional[dict] = None) -> AdaptiveModel:
    """Fit an :class:`AdaptiveModel` on ``data``: the classes are its set names, each with its best
    fixed weight (:func:`best_weight`); a softmax classifier (class-balanced, L2, full-batch Adam
    from zero: deterministic) tells the sets apart from the features."""
    classes = sorted(set(data.sets))
    cw = np.array([best_weight(data.subset([i for i, s in enumerate(data.sets) if s == c])) for c in classes])
    y = np.array([classes.index(s) for s in data.sets])
    Y = np.eye(len(classes))[y]
    balance = (len(y) / (len(classes) * np.bincount(y, minlength=len(classes))))[y]
    mean, scale = data.X.mean(axis=0), data.X.std(axis=0)
    scale[scale < 1e-9] = 1.0
    Z = np.hstack([(data.X - mean) / scale, np.ones((len(y), 1))])
    T = np.zeros((Z.shape[1], len(classes)))
    m1, m2 = np.zeros_like(T), np.zeros_like(T)
    for t in range(1, steps + 1):
        L = Z @ T
        P = np.exp(L - L.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        G = Z.T @ ((P - Y) * balance[:, None]) / len(y)
        G[:-1] += l2 * T[:-1]
        m1 = 0.9 * m1 + 0.1 * G
        m2 = 0.999 * m2 + 0.001 * G ** 2
        T -= lr * (m1 / (1 - 0.9 ** t)) / (np.sqrt(m2 / (1 - 0.999 ** t)) + 1e-8)
    return AdaptiveModel(FEATURES, mean, scale, T[:-1].copy(), T[-1].copy(), cw, tuple(classes), meta)


def split(qids: Sequence[str], share: float = 0.2, salt: str = "fusion") -> tuple[list[int], list[int]]:
    """Rows for fitting and for checking, by a hash of the question id (the same every run)."""
    fit_rows, check_rows = [], []
    for i, q in enumerate(qids):
        h = int(hashlib.sha1(f"{salt}:{q}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        (check_rows if h < share else fit_rows).append(i)
    return fit_rows, check_rows


def per_set(data: FusionData, w: np.ndarray, n_chunks: int = 50) -> dict[str, dict[str, Any]]:
    """Metrics per set name (and ``all``) for weights ``w``."""
    r = ranks(data, w, n_chunks)
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(set(data.sets)):
        idx = [i for i, s in enumerate(data.sets) if s == name]
        out[name] = {"n": len(idx), **metrics(r[idx])}
    out["all"] = {"n": len(r), **metrics(r)}
    return out


__all__ = ["FusionData", "GRID", "best_weight", "collect", "fit", "metrics", "per_set", "ranks", "split"]


@dataclass
class FusionReport:
    """What :func:`train_fusion` used and measured (``fixed``: the constant weight it compares with)."""

    files: list[str]
    questions: dict[str, int]  # per file: usable questions sampled
    fit_questions: int
    check_questions: int
    settings: dict[str, Any]
    fixed: float
    check_fixed: dict[str, dict[str, Any]]
    check_adaptive: dict[str, dict[str, Any]]
    valid_fixed: dict[str, dict[str, Any]] = field(default_factory=dict)
    valid_adaptive: dict[str, dict[str, Any]] = field(default_factory=dict)


def _usable(assistant: Assistant, path: str, duplicates: Sequence[tuple[str, str]], exclude: set[str],
            limit: Optional[int], seed: int) -> list[Question]:
    import random

    from ..evaluation.pool import remap_gold
    from ..evaluation.questions import read_questions

    qs = remap_gold(read_questions(path), duplicates)
    ok = [q for q in qs if q.answerable and any(a in assistant.articles for a in q.articles)
          and q.question.strip().lower() not in exclude]
    random.Random(seed).shuffle(ok)
    return ok[:limit] if limit else ok


def train_fusion(assistant: Assistant, train_files: Sequence[str], *, valid_files: Sequence[str] = (),
                 duplicates: Sequence[tuple[str, str]] = (), limit: Optional[int] = 1300, seed: int = 15,
                 l2: float = 0.1, steps: int = 2000, check_share: float = 0.2,
                 fixed: float = 0.7) -> tuple[AdaptiveModel, FusionReport]:
    """Fit the adaptive fusion model on ``train_files`` over ``assistant``'s index (questions whose
    text is also in a ``valid_files`` question are left out of the training set); report on a
    hashed ``check_share`` of the training questions and on ``valid_files``, against ``fixed``."""
    from ..evaluation.pool import remap_gold
    from ..evaluation.questions import read_questions

    valid = {str(f): [q for q in remap_gold(read_questions(f), duplicates)
                      if q.answerable and any(a in assistant.articles for a in q.articles)] for f in valid_files}
    exclude = {q.question.strip().lower() for qs in valid.values() for q in qs}
    train = {str(f): _usable(assistant, str(f), duplicates, exclude, limit, seed) for f in train_files}
    names = [Path(f).stem for f, qs in train.items() for _ in qs]
    data = collect(assistant, [q for qs in train.values() for q in qs], names)
    fit_rows, check_rows = split(data.qids, check_share)
    settings = {"l2": l2, "steps": steps, "seed": seed, "limit": limit, "check_share": check_share}
    model = fit(data.subset(fit_rows), l2=l2, steps=steps,
                meta={"trained_on": [Path(f).name for f in train_files], "questions": len(fit_rows), **settings})
    check = data.subset(check_rows)
    report = FusionReport([str(f) for f in train_files], {f: len(qs) for f, qs in train.items()}, len(fit_rows),
                          len(check_rows), settings, fixed, per_set(check, np.full(len(check.qids), fixed)),
                          per_set(check, model.weights(check.X)))
    if valid:
        vnames = [Path(f).stem for f, qs in valid.items() for _ in qs]
        vd = collect(assistant, [q for qs in valid.values() for q in qs], vnames)
        report.valid_fixed = per_set(vd, np.full(len(vd.qids), fixed))
        report.valid_adaptive = per_set(vd, model.weights(vd.X))
    return model, report


def card(model: AdaptiveModel, report: FusionReport, command: str) -> str:
    """A short Markdown card: data, settings, figures."""
    lines = ["# Adaptive fusion model", "", "A dense weight per question for convex fusion (`[retrieval] fusion = "
             "\"adaptive\"`): `w = softmax(theta . (x - mean) / scale + bias) . class_weights` over the "
             "features of the two candidate lists (`qa/fusion_adaptive.py`, `qa/adaptation/fusion.py`).", "",
             "Classes and their dense weights (best fixed weight of each training file's fitted questions): " +
             ", ".join(f"{c} {w:.2f}" for c, w in zip(model.classes, model.weights_)) + ".", "",
             f"Command: `{command}`", "",
             "Training questions (answerable, gold passage in the index, not also a --valid question): " +
             ", ".join(f"{Path(f).name} {n}" for f, n in report.questions.items()) +
             f"; fitted on {report.fit_questions}, checked on {report.check_questions} (hashed split).", "",
             "Settings: " + ", ".join(f"{k}={v}" for k, v in report.settings.items()), "",
             "| data | set | n | fixed w=%.1f R@1 / R@5 / MRR@10 | adaptive R@1 / R@5 / MRR@10 |" % report.fixed,
             "|---|---|---:|---|---|"]
    for label, a, b in (("train check", report.check_fixed, report.check_adaptive),
                        ("valid", report.valid_fixed, report.valid_adaptive)):
        for name in a:
            f = " / ".join(f"{a[name][m]:.3f}" for m in ("r@1", "r@5", "mrr@10"))
            g = " / ".join(f"{b[name][m]:.3f}" for m in ("r@1", "r@5", "mrr@10"))
            lines.append(f"| {label} | {name} | {a[name]['n']} | {f} | {g} |")
    lines += ["", "Classifier weights (standardised features; columns: " + ", ".join(model.classes) + "):", ""]
    lines += [f"- {n}: " + " ".join(f"{t:+.3f}" for t in row) for n, row in zip(model.features, model.theta)]
    lines += ["- bias: " + " ".join(f"{b:+.3f}" for b in model.bias)]
    return "\n".join(lines) + "\n"


__all__ += ["FusionReport", "card", "train_fusion"]
