"""The embedded store: FAISS + BM25 files in an index folder on this machine (the default).

Passages, articles, vectors and BM25 statistics are read from the folder written by
:func:`qa.stores.embedded_index.build.build_index` (layout in :mod:`.embedded_index.files`);
large indexes are memory-mapped and parsed on demand.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..config import Config
from ..filters import Filter
from ..lexical import make_lexical
from ..types import Article, Chunk, DuplicateGroup
from .base import Ranked, StoreStats
from .embedded_index import dense as faiss_files
from .embedded_index.meta import ArticleTable
from .embedded_index.load import LoadedIndex, load_index, load_tokens

log = logging.getLogger("qa")


class EmbeddedStore:
    """:class:`~qa.stores.base.Store` over an index folder."""

    kind = "embedded"

    def __init__(self, index_dir: str | os.PathLike, loaded: LoadedIndex, config: Config):
        self.index_dir = Path(index_dir)
        self.manifest = loaded.manifest
        self.articles = loaded.articles
        self.chunks = loaded.chunks
        self.vectors = loaded.vectors
        self.sentences = loaded.sentences
        self.groups = loaded.duplicates or {}  # article id -> DuplicateGroup
        if self.sentences is None and self.manifest.get("config", {}).get("sentence_vectors") is None:
            log.warning("%s was built before indexes stored sentence vectors: answers embed sentences per question "
                        "and use the abstain_threshold recorded then; rebuild it with `qa index` (only the "
                        "sentences are embedded)", index_dir)
        self.faiss_index = loaded.faiss_index
        faiss_files.set_ef_search(self.faiss_index, config.hnsw_ef_search)
        self._tokens = loaded.tokens
        self._variants: dict[tuple[float, float], Any] = {}
        self._lock = threading.Lock()
        self._table: Optional[ArticleTable] = None  # filters' metadata arrays, built on first use
        engine = self.manifest.get("scale", {}).get("lexical_engine", "rank_bm25")
        k1, b = float(config.bm25_k1), float(config.bm25_b)
        if loaded.sparse is not None and (loaded.sparse.k1, loaded.sparse.b) == (k1, b):
            self.lexical = loaded.sparse
        else:
            if loaded.sparse is not None:
                log.info("BM25 k1=%s b=%s differ from the stored bm25s index; rebuilding it in memory", k1, b)
            self.lexical = make_lexical(self.tokens(), engine=engine, k1=k1, b=b)

    @classmethod
    def open(cls, index_dir: str | os.PathLike, config: Config, *, verify: bool = True,
             lazy: Optional[bool] = None) -> "EmbeddedStore":
        return cls(index_dir, load_index(index_dir, verify=verify, lazy=lazy), config)

    def tokens(self) -> list[list[str]]:
        """BM25 tokens of every chunk (read from ``tokens.jsonl`` when not in memory)."""
        if self._tokens is None:
            self._tokens = load_tokens(self.index_dir / self.manifest["data_dir"] / "tokens.jsonl")
        return self._tokens

    def __len__(self) -> int:
        return len(self.chunks)

    # -- search -------------------------------------------------------------------------------
    def idf(self, token: str) -> float:
        return self.lexical.idf(token)

    @property
    def max_idf(self) -> float:
        return self.lexical.max_idf

    def _mask(self, where: Optional[Filter]) -> Optional[np.ndarray]:
        """The chunks ``where`` lets through, as a boolean mask (None: no filter)."""
        if where is None:
            return None
        if self._table is None:
            with self._lock:
                if self._table is None:
                    self._table = ArticleTable.of(self.articles, self.chunks)
        return self._table.mask(where)

    def lexical_search(self, tokens: Sequence[str], query: str, depth: int, where: Optional[Filter] = None) -> Ranked:
        return self.lexical.search(tokens, depth, self._mask(where))

    def dense_search(self, vector: np.ndarray, depth: int, where: Optional[Filter] = None) -> Ranked:
        return faiss_files.search(self.faiss_index, vector, depth, self._mask(where))

    def lexical_scores(self, tokens: Sequence[str], ids: Sequence[int]) -> Optional[list[float]]:
        return self.lexical.scores(tokens, ids)

    def dense_scores(self, vector: np.ndarray, ids: Sequence[int]) -> Optional[list[float]]:
        if self.vectors is None:
            return None
        return [float(x) for x in np.asarray(self.vectors[list(ids)], dtype=np.float32) @ vector]

    def hybrid_search(self, tokens, query, vector, config, depth, where=None) -> Optional[Ranked]:
        return None  # the pipeline fuses

    def lexical_variant(self, k1: float, b: float):
        """BM25 with other parameters over the same tokens (bm25s: fast to build and to query)."""
        key = (float(k1), float(b))
        if key == (self.lexical.k1, self.lexical.b):
            return self.lexical
        with self._lock:
            if key not in self._variants:
                self._variants[key] = make_lexical(self.tokens(), engine="bm25s", k1=k1, b=b)
            return self._variants[key]

    # -- records ------------------------------------------------------------------------------
    def passages(self, ids: Sequence[int]) -> dict[int, tuple[Chunk, Article]]:
        out = {}
        for i in ids:
            chunk = self.chunks[i]
            out[i] = (chunk, self.articles[chunk.article_id])
        return out

    def sentence_vectors(self, chunk_id: int) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """The chunk's stored sentences: rows (chunk, start, end, paragraph) and vectors; None when the
        index has none (built with ``sentence_vectors = false`` or before 0.3)."""
        return None if self.sentences is None else self.sentences.of_chunk(chunk_id)

    def article_ids(self, ids: Sequence[int]) -> list[str]:
        return [self.chunks[i].article_id for i in ids]

    def duplicates(self, article_id: str) -> Optional[DuplicateGroup]:
        """The near-duplicate group of an article (None: it has none, or the index kept no groups)."""
        return self.groups.get(article_id)

    def sample_texts(self, n: int) -> list[str]:
        step = max(1, len(self.chunks) // n)
        return [c.text for c in self.chunks[::step]]

    def stats(self) -> StoreStats:
        scale = self.manifest.get("scale", {})
        return StoreStats(kind=self.kind, location=str(self.index_dir), articles=len(self.articles),
                          chunks=len(self.chunks), model=self.manifest["model"]["name"],
                          dimension=self.manifest["model"]["dimension"],
                          lexical_engine=scale.get("lexical_engine", "rank_bm25"),
                          dense_index=scale.get("dense_index", "flat"))

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.index_dir)!r}, articles={len(self.articles)}, chunks={len(self.chunks)})"
