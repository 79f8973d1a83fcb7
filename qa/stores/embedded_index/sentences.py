"""Sentence vectors, embedded once when the index is built, so that answering costs a matrix product.

Files (in the index's ``data-*`` folder, listed with checksums in the manifest)::

    sentences.npy          # int64 (n, 4): chunk id, start, end (offsets in the article's text), paragraph
    sentence_vectors.npy   # float32 or float16 (n, dimension), row i = sentence i, the encoder's passage form

Rows are grouped by chunk in chunk order: the sentences of chunk ``c`` are the rows whose first
column is ``c`` (those of ``split_sentences(article.text, chunk.start, chunk.end)``). A sentence
shared by two overlapping chunks is stored for each, but embedded once. A rebuild reuses the
vectors of sentences whose text it embedded before with the same model.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from ...chunking import split_sentences
from ...errors import IndexCorruptError
from ...types import Article, Chunk
from ..passages import text_hash

log = logging.getLogger("qa")

SPANS_FILE = "sentences.npy"
VECTORS_FILE = "sentence_vectors.npy"
FILES = (SPANS_FILE, VECTORS_FILE)


def chunk_sentences(chunks: Sequence[Chunk], articles: Mapping[str, Article]) -> np.ndarray:
    """(n, 4) int64 rows (chunk, start, end, paragraph) of every chunk's sentences, in chunk order."""
    rows: list[tuple[int, int, int, int]] = []
    for c in chunks:
        text = articles[c.article_id].text
        rows += [(c.id, s.start, s.end, s.para) for s in split_sentences(text, c.start, c.end)]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 4)


def sentence_texts(spans: np.ndarray, chunks: Sequence[Chunk], articles: Mapping[str, Article]) -> list[str]:
    return [articles[chunks[int(c)].article_id].text[int(s):int(e)] for c, s, e, _ in spans]


def embed_sentences(texts: Sequence[str], encoder, cache: Mapping[str, np.ndarray], *,
                    progress: bool = False) -> tuple[np.ndarray, int]:
    """Vectors of ``texts`` (each distinct text embedded once; ``cache``: text hash -> vector from
    the previous build) and how many texts were embedded."""
    hashes = [text_hash(t) for t in texts]
    first: dict[str, int] = {}
    for i, h in enumerate(hashes):
        first.setdefault(h, i)
    todo = [i for h, i in first.items() if h not in cache]
    vectors = np.zeros((len(texts), encoder.dimension), dtype=np.float32)
    fresh: dict[str, np.ndarray] = {}
    if todo:
        log.info("embedding %d of %d distinct sentences (%d from cache)", len(todo), len(first), len(first) - len(todo))
        got = encoder.encode_passages([texts[i] for i in todo], progress=progress and len(todo) > 64)
        fresh = {hashes[i]: v for i, v in zip(todo, got)}
    for i, h in enumerate(hashes):
        vectors[i] = fresh[h] if h in fresh else cache[h]
    return vectors, len(todo)


def load_cache(data: Path, chunks: Sequence[Chunk], articles: Mapping[str, Article]) -> dict[str, np.ndarray]:
    """Text hash -> vector of the sentences stored in an index's data folder ({} when it has none)."""
    try:
        spans = np.load(data / SPANS_FILE)
        vecs = np.load(data / VECTORS_FILE, mmap_mode="r")
        texts = sentence_texts(spans, chunks, articles)
        return {text_hash(t): vecs[i] for i, t in enumerate(texts)}
    except Exception:  # noqa: BLE001 - no usable previous sentences: embed them all
        return {}


class SentenceVectors:
    """The stored sentences of an index: ``of_chunks(ids)`` gives their rows and vectors."""

    def __init__(self, spans: np.ndarray, vectors: np.ndarray):
        self.spans = spans
        self.vectors = vectors
        self._bounds = np.searchsorted(spans[:, 0], np.arange(int(spans[:, 0].max(initial=-1)) + 2))

    @classmethod
    def load(cls, data: Path, n_chunks: int, dimension: int) -> Optional["SentenceVectors"]:
        """The folder's sentences, or None when it has none (an index built before they existed)."""
        if not (data / SPANS_FILE).is_file():
            return None
        try:
            spans = np.load(data / SPANS_FILE)
            vectors = np.load(data / VECTORS_FILE, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise IndexCorruptError(f"{data / SPANS_FILE} or {VECTORS_FILE} cannot be read ({str(e)[:120]}); "
                                    "rebuild with `qa index`") from None
        if spans.ndim != 2 or spans.shape[1] != 4 or vectors.shape != (len(spans), dimension):
            raise IndexCorruptError(f"{data}: sentences.npy {spans.shape} and sentence_vectors.npy {vectors.shape} "
                                    f"do not match (expected (n, 4) and (n, {dimension})); rebuild with `qa index`")
        if len(spans) and (spans[:, 0].min() < 0 or spans[:, 0].max() >= n_chunks or np.any(np.diff(spans[:, 0]) < 0)):
            raise IndexCorruptError(f"{data / SPANS_FILE}: chunk ids out of range or out of order; "
                                    "rebuild with `qa index`")
        return cls(spans, vectors)

    def __len__(self) -> int:
        return len(self.spans)

    def of_chunk(self, chunk_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows (k, 4), vectors (k, dimension) float32) of one chunk's sentences."""
        if chunk_id + 1 >= len(self._bounds):
            return self.spans[:0], np.zeros((0, self.vectors.shape[1]), dtype=np.float32)
        a, b = int(self._bounds[chunk_id]), int(self._bounds[chunk_id + 1])
        return self.spans[a:b], np.asarray(self.vectors[a:b], dtype=np.float32)
