"""The :class:`Store` protocol: where an index's passages, articles, vectors and BM25 live.

A store answers the questions the retrieval pipeline (:mod:`qa.retrieval`) asks of an index:
lexical candidates, dense candidates, exact dense scores of given passages, the passages and
articles behind chunk ids, and a few statistics. Everything else (query analysis, fusion, hits,
answers) is the same code for every store.

To add a store: implement this protocol in ``qa/stores/<name>.py`` (reading and writing through
helpers of its own, as ``embedded_index/`` and ``milvus_io/`` do), give it a ``build`` function
and an ``open`` class method, and name it in :func:`qa.stores.open_store` and
:func:`qa.stores.build_index` and in the config's ``store`` choices.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Protocol, Sequence

import numpy as np

from ..filters import Filter
from ..types import Article, Chunk, DuplicateGroup

Ranked = list[tuple[int, float]]


@dataclass
class BuildReport:
    """What :func:`build_index` did."""

    index_dir: Path
    articles: int
    chunks: int
    problems: list
    duplicates: int
    skipped: bool  # True when the index was already up to date
    seconds: float
    embedded: int = 0  # chunks embedded now (the rest came from the cache)
    device: Optional[str] = None  # where chunks were embedded: "cpu", "cuda", ...
    stages: Optional[dict] = None  # seconds per build stage (read+clean, chunk, embed, dense, lexical, write)


@dataclass(frozen=True)
class StoreStats:
    """What a store holds: counts, the engines serving it, and where it is."""

    kind: str  # "embedded" or "milvus"
    location: str  # index folder, or Milvus URI and collection prefix
    articles: int
    chunks: int
    model: str
    dimension: int
    lexical_engine: str
    dense_index: str


class Store(Protocol):
    """Read side of an index (see the module docstring). Chunk ids are ints: row numbers in the
    embedded store, stable hashes in Milvus."""

    kind: str
    manifest: dict[str, Any]  # the build record: model, analyzer and chunking settings, config, counts
    articles: Mapping[str, Article]  # may fetch on access (Milvus) or parse lazily (large indexes)

    def __len__(self) -> int:
        """Number of chunks."""
        ...

    def idf(self, token: str) -> float:
        """BM25 IDF of an analyzed token over the chunks (0 for an unknown one)."""
        ...

    @property
    def max_idf(self) -> float:
        """IDF of the rarest word."""
        ...

    def lexical_search(self, tokens: Sequence[str], query: str, depth: int, where: Optional[Filter] = None) -> Ranked:
        """BM25 candidates: up to ``depth`` (chunk id, score), best first. ``tokens`` are the analyzed
        query, ``query`` its text (for a store that analyzes on its own). ``where``: only chunks of
        articles that pass this filter, searched inside the store (so ``depth`` of them come back
        when that many match)."""
        ...

    def dense_search(self, vector: np.ndarray, depth: int, where: Optional[Filter] = None) -> Ranked:
        """Nearest chunks by inner product of normalised vectors (cosine), best first (``where`` as
        in :meth:`lexical_search`)."""
        ...

    def lexical_scores(self, tokens: Sequence[str], ids: Sequence[int]) -> Optional[list[float]]:
        """BM25 scores of the given chunks (None when the store cannot score chosen chunks)."""
        ...

    def dense_scores(self, vector: np.ndarray, ids: Sequence[int]) -> Optional[list[float]]:
        """Exact cosine of each given chunk's stored vector with ``vector`` (None when the store
        keeps no vectors it can read back)."""
        ...

    def hybrid_search(self, tokens: Sequence[str], query: str, vector: np.ndarray, config: Any,
                      depth: int, where: Optional[Filter] = None) -> Optional[Ranked]:
        """Fused candidates when the store fuses on its own side (Milvus ``milvus_hybrid = "server"``);
        None means the pipeline fuses."""
        ...

    def lexical_variant(self, k1: float, b: float) -> Optional[Any]:
        """A :class:`~qa.lexical.LexicalIndex` over the same chunks with other BM25 parameters, for
        tuning; None when the store cannot score under other parameters without a rebuild."""
        ...

    def passages(self, ids: Sequence[int]) -> dict[int, tuple[Chunk, Article]]:
        """The chunk and its article for each id; ids whose article is being rewritten are left out."""
        ...

    def article_ids(self, ids: Sequence[int]) -> list[str]:
        """The article id of each chunk id, in order."""
        ...

    def duplicates(self, article_id: str) -> Optional[DuplicateGroup]:
        """The near-duplicate group holding the article (the same story from other outlets), found at
        build time; None when it has none or the index kept no groups."""
        ...

    def sentence_vectors(self, chunk_id: int) -> "Optional[tuple[np.ndarray, np.ndarray]]":
        """The chunk's sentences embedded at build time: rows (chunk, start, end, paragraph) and
        float32 vectors; None when the store keeps none (the answerer then embeds them itself)."""
        ...

    def sample_texts(self, n: int) -> list[str]:
        """About ``n`` passage texts spread over the index (to tell its main language)."""
        ...

    def stats(self) -> StoreStats:
        ...

    def close(self) -> None:
        ...
