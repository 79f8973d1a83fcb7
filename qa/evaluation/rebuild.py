"""Chunk-size tuning: scratch indexes of the same corpus with other chunk sizes, and the rebuild.

Chunk size is a build setting: trying another one means chunking and embedding the corpus again.
``tune(..., chunk_sizes=...)`` builds one scratch index per size in a temporary folder, searches
the retrieval settings on each, and when a size wins it rebuilds the real index with it. Embeddings
are shared through :class:`SeededEmbedder`, keyed by the text embedded: a chunk that is the same
under two sizes (a short article is one chunk under both) is embedded once, and the final rebuild
embeds nothing new.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..assistant import Assistant
from ..config import Config
from ..errors import QAError
from ..ingest import Corpus, load_corpus
from ..stores import BuildReport, build_index
from ..stores.embedded_index.build import load_cache, load_sentence_cache
from ..stores.passages import text_hash

log = logging.getLogger("qa")


class CorpusNeededError(QAError, ValueError):
    """Tuning the chunk size needs the articles, and they were not given nor found."""


class SeededEmbedder:
    """An embedder with a text-keyed cache, seeded with an index's stored vectors.

    Behaves as the wrapped :class:`~qa.encoders.sentence_transformers.Embedder` (same ``name``, ``dimension`` and
    vectors) but never encodes the same text twice.
    """

    def __init__(self, inner, cache: Optional[dict[str, np.ndarray]] = None):
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.fingerprint = getattr(inner, "fingerprint", None)
        self.cache: dict[str, np.ndarray] = dict(cache or {})
        self.encoded = 0

    def seed(self, index_dir: str | os.PathLike) -> None:
        """Add the stored vectors (chunks and sentences) of an index built with the same model."""
        self.cache.update(load_cache(Path(index_dir), self.name, self.fingerprint))
        self.cache.update(load_sentence_cache(Path(index_dir), self.name, self.fingerprint))

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        keys = [text_hash(t) for t in texts]
        todo: dict[str, str] = {}
        for key, t in zip(keys, texts):
            if key not in self.cache:
                todo.setdefault(key, t)
        if todo:
            vecs = self.inner.encode(list(todo.values()), progress=progress)
            self.cache.update(zip(todo.keys(), vecs))
            self.encoded += len(todo)
        if not keys:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.ascontiguousarray(np.stack([self.cache[key] for key in keys]), dtype=np.float32)

    def encode_passages(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        return self.encode(texts, progress=progress)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.encode_queries(texts)


def corpus_for(assistant: Assistant, corpus: "Optional[Corpus | str | os.PathLike]") -> tuple[Corpus, str]:
    """The corpus to re-chunk (and the folder name recorded for it): ``corpus`` as given (a
    :class:`Corpus` or a folder), else the folder recorded in the index's manifest."""
    folder = str(assistant.manifest.get("corpus", {}).get("folder", ""))
    if isinstance(corpus, Corpus):
        return corpus, folder
    if corpus is not None:
        return load_corpus(corpus), str(corpus)
    if folder and Path(folder).is_dir():
        return load_corpus(folder), folder
    raise CorpusNeededError(f"tuning the chunk size re-chunks the articles, but the corpus of {assistant.index_dir} "
                     f"({folder or 'unknown'}) is not a folder here: give it (--corpus DIR or --pool FILE)")


def scratch_index(assistant: Assistant, chunk_size: int, corpus: Corpus, folder: str, root: Path,
                  embedder: SeededEmbedder) -> Assistant:
    """An index of ``corpus`` with ``chunk_size`` (other settings as the assistant's index) in ``root``."""
    cfg = Config.from_dict(assistant.manifest.get("config", {})).replace(chunk_size=chunk_size)
    d = root / f"chunk{chunk_size}"
    before = embedder.encoded
    report = build_index(folder or "corpus", d, cfg, corpus=corpus, embedder=embedder, progress=False, force=True)
    log.info("scratch index with chunk_size=%d: %d chunks, %d newly embedded", chunk_size, report.chunks,
             embedder.encoded - before)
    return Assistant.load(d, cfg, verify=False, embedder=embedder)  # type: ignore[arg-type]


def rebuild(assistant: Assistant, chunk_size: int, settings: dict, corpus: Corpus, folder: str,
            embedder: SeededEmbedder) -> BuildReport:
    """Rebuild the assistant's index in place (atomically) with ``chunk_size`` and ``settings``."""
    cfg = Config.from_dict(assistant.manifest.get("config", {})).replace(chunk_size=chunk_size, **settings)
    return build_index(folder or "corpus", assistant.index_dir, cfg, corpus=corpus, embedder=embedder,
                       progress=False, force=True)
