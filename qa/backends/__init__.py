"""Retrieval backends. Each implements :class:`Retriever`: ``search(query, k)`` returns
``(chunk_index, score)`` pairs, best first."""
from __future__ import annotations

from typing import Protocol, Sequence


class Retriever(Protocol):
    """A searchable index over the chunks of one built index."""

    name: str

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Up to ``k`` (chunk index, score) pairs, highest score first."""
        ...


def top_k(scores: "Sequence[float]", k: int) -> list[tuple[int, float]]:
    """Indices and values of the ``k`` largest positive scores, best first (ties by index)."""
    import numpy as np

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
