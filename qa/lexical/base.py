"""The lexical (BM25) protocol, and what every engine shares.

An engine scores chunks for analyzed query tokens with Okapi BM25 as rank-bm25's ``BM25Okapi``
computes it (the bm25s engine is rescaled to the same scores, see :mod:`.bm25s_engine`), except
that a word in half the chunks or more never gets an IDF below ``EPSILON`` (:func:`okapi_idf`, the
IDF of both engines). To add an engine: implement :class:`LexicalIndex` in a file of this package
and name it in :data:`ENGINES` and :func:`qa.lexical.make_lexical`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Optional, Protocol, Sequence

import numpy as np

Ranked = list[tuple[int, float]]

ENGINES = ("rank_bm25", "bm25s")


class LexicalIndex(Protocol):
    """BM25 over the chunks of one index; chunk ids are row numbers ``0..size-1``."""

    engine: str
    k1: float
    b: float
    size: int
    max_idf: float  # the IDF of the rarest word (the answerer's weight for a word the index never saw)

    def idf(self, token: str) -> float:
        """Inverse document frequency of an analyzed token (0 for an unknown one)."""
        ...

    def search(self, tokens: Sequence[str], k: int, allow: "Optional[np.ndarray]" = None) -> Ranked:
        """The ``k`` best chunks with a positive score, best first (ties by chunk id); only chunks
        whose entry in the boolean mask ``allow`` is true, when given (a filtered search)."""
        ...

    def scores(self, tokens: Sequence[str], ids: Sequence[int]) -> list[float]:
        """BM25 scores of the given chunks (0 for a chunk the tokens do not match)."""
        ...


#: rank-bm25's floor for the IDF of a word in half the chunks or more, as a fraction of the mean IDF
EPSILON = 0.25


def idf_floor(mean_idf: float) -> float:
    """The IDF given to a word whose Okapi IDF is not positive (in half the chunks or more):
    rank-bm25's ``epsilon`` × the mean IDF, but never below ``epsilon``. In a tiny index (one or two
    articles) the mean is 0 or negative and rank-bm25's own floor would make every such word score
    nothing or less, so that a word of the only article found no passage."""
    return EPSILON * max(float(mean_idf), 1.0)


def okapi_idf(df: np.ndarray, n: float) -> tuple[np.ndarray, np.ndarray]:
    """rank-bm25's BM25Okapi IDF of words with document frequencies ``df`` among ``n`` chunks, with
    :func:`idf_floor` for those not positive (0 for a word in no chunk, such as bm25s's empty
    token), and which words occur. Both engines take their IDF from here."""
    df = np.asarray(df, dtype=np.float64)
    present = df > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.log((n - df + 0.5) / (df + 0.5))
    mean = float(raw[present].mean()) if present.any() else 0.0
    idf = np.where(raw <= 0, idf_floor(mean), raw)
    idf[~present] = 0.0
    return idf, present


def top_k(scores: "Sequence[float] | np.ndarray", k: int) -> Ranked:
    """Indices and values of the ``k`` largest positive scores, best first (ties by index)."""
    arr = np.asarray(scores)
    if arr.size == 0 or k <= 0:
        return []
    k = min(k, arr.size)
    if k < arr.size:  # the k largest, plus every score tied with the k-th (ties go to the lower index)
        kth = arr[np.argpartition(-arr, k - 1)[k - 1]]
        idx = np.flatnonzero(arr >= kth)
    else:
        idx = np.arange(arr.size)
    idx = idx[np.lexsort((idx, -arr[idx]))][:k]
    return [(int(i), float(arr[i])) for i in idx if arr[i] > 0]


def masked(scores: np.ndarray, allow: Optional[np.ndarray]) -> np.ndarray:
    """``scores`` with the chunks outside ``allow`` (a boolean mask) set to 0 (a copy; the input may be shared)."""
    return scores if allow is None else np.where(allow, scores, 0)


def save_tokens(tokens: Iterable[list[str]], path: Path) -> None:
    """``tokens.jsonl``: one JSON list of analyzed tokens per chunk, in chunk order."""
    with open(path, "w", encoding="utf-8") as f:
        for t in tokens:
            f.write(json.dumps(t, ensure_ascii=False))
            f.write("\n")


def read_tokens(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]
