"""Metrics: article-level IR metrics (computed with ranx), answer checks, latency summaries.

Retrieval is scored per article: the retrieved passages are reduced to their articles (first
occurrence kept, so an article's rank is that of its best passage) and the top ``k`` articles are
scored against the question's gold articles. Recall@n is the share of gold articles in the top n
(with one gold article per question: 1 when it is there); MRR@k is the mean reciprocal rank of the
first gold article; nDCG@k uses binary relevance.

Answers are also scored SQuAD-style on their lead span (:func:`lead_prediction`): exact match and
token F1 against the gold answers (:func:`exact_match`, :func:`token_f1`, after
:func:`squad_normalize`).
"""
from __future__ import annotations

import math
import re
import string
import unicodedata
import warnings
from collections import Counter
from typing import TYPE_CHECKING, Iterable, Mapping, Optional, Sequence

import numpy as np

if TYPE_CHECKING:
    from ..types import Answer

NO_RESULT = "__no_result__"


def metric_names(k: int = 10) -> list[str]:
    """``recall@1``, ``recall@5``, ``recall@k``, ``mrr@k``, ``ndcg@k`` (cut-offs above ``k`` dropped)."""
    cuts = sorted({c for c in (1, 5, k) if c <= k})
    return [f"recall@{c}" for c in cuts] + [f"mrr@{k}", f"ndcg@{k}"]


def metric_headers(k: int = 10) -> list[str]:
    """Short column names of :func:`metric_names`: ``R@1 ... MRR@k nDCG@k``."""
    return [n.replace("recall@", "R@").replace("mrr@", "MRR@").replace("ndcg@", "nDCG@") for n in metric_names(k)]


def ranx_scores(qrels: Mapping[str, Sequence[str]], runs: Mapping[str, Sequence[str]],
                metrics: Sequence[str]) -> dict[str, float]:
    """Mean ``metrics`` over the questions of ``qrels`` (gold article ids per question id), for
    ranked article lists ``runs`` (question id -> article ids, best first), computed with ranx."""
    try:
        from ranx import Qrels, Run, evaluate
    except ImportError:
        raise ImportError("evaluation needs ranx: pip install 'article-qa[eval]'") from None
    if not qrels:
        return {m: float("nan") for m in metrics}
    q = {qid: {a: 1 for a in gold} for qid, gold in qrels.items()}
    r = {}
    for qid in qrels:
        arts = list(runs.get(qid) or [])
        # strictly decreasing scores keep our order; ranx needs at least one document per query
        r[qid] = {a: float(len(arts) - i) for i, a in enumerate(arts)} or {NO_RESULT: 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba type-safety chatter from ranx
        res = evaluate(Qrels(q), Run(r), list(metrics), make_comparable=True)
    if len(metrics) == 1:
        return {metrics[0]: float(res)}
    return {m: float(res[m]) for m in metrics}


def fast_scores(qrels: Mapping[str, Sequence[str]], runs: Mapping[str, Sequence[str]],
                metrics: Sequence[str]) -> dict[str, float]:
    """The same means as :func:`ranx_scores` by their plain definitions (binary relevance), without
    ranx's set-up cost: used inside the tuning search, checked against ranx in the tests."""
    sums = dict.fromkeys(metrics, 0.0)
    parsed = [(m, m.split("@")[0], int(m.split("@")[1])) for m in metrics]
    for qid, gold in qrels.items():
        gold_set = set(gold)
        arts = list(runs.get(qid) or [])
        for m, name, cut in parsed:
            top = arts[:cut]
            if name == "recall":
                sums[m] += sum(a in gold_set for a in top) / len(gold_set)
            elif name == "mrr":
                sums[m] += next((1.0 / i for i, a in enumerate(top, start=1) if a in gold_set), 0.0)
            elif name == "ndcg":
                dcg = sum(1.0 / math.log2(i + 1) for i, a in enumerate(top, start=1) if a in gold_set)
                ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(gold_set), cut) + 1))
                sums[m] += dcg / ideal
            else:
                raise ValueError(f"unsupported metric {m!r}")
    n = len(qrels)
    return {m: (s / n if n else float("nan")) for m, s in sums.items()}


def first_gold_rank(articles: Sequence[str], gold: Sequence[str]) -> Optional[int]:
    """1-based rank of the first gold article in ``articles``, or None."""
    g = set(gold)
    return next((i for i, a in enumerate(articles, start=1) if a in g), None)


_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Lower case, NFKC, whitespace collapsed, spaces before punctuation removed (the IndoNLU
    sets re-join tokens as ``"Jakarta , Senin"``)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"\s+([,.;:!?%)\]])", r"\1", text)
    text = re.sub(r"([(\[])\s+", r"\1", text)
    return _SPACE.sub(" ", text).strip()


def contains_answer(texts: Iterable[str], answers: Sequence[str]) -> bool:
    """Whether any of ``texts`` contains any gold answer string (after :func:`normalize`)."""
    gold = [normalize(a) for a in answers if normalize(a)]
    return any(g in normalize(t) for t in texts for g in gold)


_ASCII_PUNCT = frozenset(string.punctuation)


def squad_normalize(text: str) -> str:
    """SQuAD's answer normalisation for Indonesian: NFKC, lower case, punctuation replaced by a space,
    whitespace collapsed. (SQuAD also drops English articles; Indonesian has none.) Punctuation is
    every Unicode ``P*`` character and ASCII ``string.punctuation``; it becomes a space rather than
    vanishing, so the IndoNLU sets' re-joined tokens (``"GA - 181"``) match running text (``"GA-181"``).
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if ch in _ASCII_PUNCT or unicodedata.category(ch).startswith("P") else ch for ch in text)
    return _SPACE.sub(" ", text).strip()


def _golds(golds: Sequence[str]) -> list[str]:
    if isinstance(golds, str):
        raise TypeError("golds must be a sequence of gold answer strings, not one string")
    if not golds:
        raise ValueError("no gold answers to score against")
    return list(golds)


def exact_match(pred: str, golds: Sequence[str]) -> float:
    """1.0 when ``pred`` equals one of ``golds`` after :func:`squad_normalize`, else 0.0."""
    p = squad_normalize(pred)
    return float(any(p == squad_normalize(g) for g in _golds(golds)))


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    if not pred_tokens or not gold_tokens:  # SQuAD: an empty side scores 1 only against an empty side
        return float(pred_tokens == gold_tokens)
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if not common:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(pred: str, golds: Sequence[str]) -> float:
    """SQuAD token F1 of ``pred``, the best over ``golds``: tokens are the whitespace-separated words
    after :func:`squad_normalize`; precision = shared tokens / predicted tokens, recall = shared
    tokens / gold tokens (shared counted with multiplicity), F1 = 2PR / (P + R)."""
    p = squad_normalize(pred).split()
    return max(_f1(p, squad_normalize(g).split()) for g in _golds(golds))


def lead_prediction(answer: "Answer") -> str:
    """The span an answer is scored on: ``answer.lead`` when set (the count, name or date it leads
    with), else its first citation's quote, else "" (it abstained, or cites nothing)."""
    if not answer.found:
        return ""
    if answer.lead:
        return answer.lead
    return answer.citations[0].quote if answer.citations else ""


def summarize_latency(samples_ms: Sequence[float]) -> dict[str, float]:
    """Median, 95th percentile and mean in milliseconds (empty: NaNs) and the sample count."""
    if not samples_ms:
        return {"median_ms": float("nan"), "p95_ms": float("nan"), "mean_ms": float("nan"), "n": 0}
    arr = np.asarray(samples_ms, dtype=float)
    return {"median_ms": round(float(np.median(arr)), 3), "p95_ms": round(float(np.percentile(arr, 95)), 3),
            "mean_ms": round(float(arr.mean()), 3), "n": int(arr.size)}


def ratio(num: int, den: int) -> Optional[float]:
    """``num / den``, or None when ``den`` is 0 (nothing to measure)."""
    return num / den if den else None
