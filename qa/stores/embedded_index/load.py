"""Load an embedded index: read and check every file, lazily for large indexes."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ...errors import IndexCorruptError
from ...lexical import read_tokens
from ...types import Article, Chunk
from . import dense as faiss_files
from .duplicates import load_groups
from .files import SPARSE_DIR, check_files
from .sentences import SentenceVectors
from .manifest import read_manifest

LAZY_CHUNKS = 50000  # from this many chunks, articles and chunks are read on demand (.lazy)


@dataclass
class LoadedIndex:
    """Everything read from an index folder."""

    manifest: dict[str, Any]
    articles: "Mapping[str, Article]"  # a dict, or qa.stores.embedded_index.lazy.LazyArticles for large indexes
    chunks: "Sequence[Chunk]"  # a list, or qa.stores.embedded_index.lazy.LazyChunks
    tokens: Optional[list[list[str]]]  # None when the bm25s engine serves BM25 (``sparse``)
    faiss_index: Any
    vectors: Any = None  # float32 or float16 (chunks x dimension), memory-mapped from vectors.npy
    sparse: Any = None  # qa.lexical.bm25s_engine.SparseBM25, memory-mapped, for the bm25s engine
    sentences: Any = None  # .sentences.SentenceVectors, or None (built with sentence_vectors = false, or older)
    duplicates: Optional[dict] = None  # article id -> its DuplicateGroup (.duplicates); {} without the files


def load_index(index_dir: str | os.PathLike, *, verify: bool = True, lazy: Optional[bool] = None) -> LoadedIndex:
    """Read and check an index folder; errors name the bad file and say to rebuild.

    ``lazy`` (default: from ``LAZY_CHUNKS`` chunks on) maps articles and chunks from disk and parses
    each one when used (:mod:`.lazy`), instead of reading them all: a million chunks load in
    seconds, in a fraction of the memory."""
    d = Path(index_dir)
    manifest = read_manifest(d)
    data = check_files(d, manifest, verify=verify)
    if lazy is None:
        lazy = manifest["counts"]["chunks"] >= LAZY_CHUNKS

    def rows(name: str) -> list[dict]:
        out = []
        try:
            with open(data / name, encoding="utf-8") as f:
                for n, line in enumerate(f, start=1):
                    try:
                        out.append(json.loads(line))
                    except (ValueError, RecursionError) as e:
                        raise IndexCorruptError(f"{data / name}:{n}: invalid JSON ({str(e)[:120]}); "
                                                "rebuild with `qa index`") from None
        except UnicodeDecodeError as e:  # a damaged byte (only reachable with verify=False)
            raise IndexCorruptError(f"{data / name} is not valid UTF-8 ({e.reason} at byte {e.start}); "
                                    "rebuild with `qa index`") from None
        return out

    try:
        if lazy:
            from .lazy import LazyArticles, LazyChunks

            articles = LazyArticles(data / "articles.jsonl")
            chunks = LazyChunks(data / "chunks.jsonl", articles)
        else:
            articles = {r["id"]: Article.from_dict(r) for r in rows("articles.jsonl")}
            chunks = [Chunk(id=r["id"], article_id=r["article_id"], start=r["start"], end=r["end"], text=r["text"])
                      for r in rows("chunks.jsonl")]
    except (KeyError, TypeError, AttributeError) as e:
        raise IndexCorruptError(f"{data}: a record of articles.jsonl or chunks.jsonl lacks field {e}; "
                                "rebuild with `qa index`") from None
    sparse = None
    tokens: Optional[list[list[str]]] = None
    if manifest.get("scale", {}).get("lexical_engine") == "bm25s":
        from ...lexical.bm25s_engine import SparseBM25

        try:
            sparse = SparseBM25.load(data / SPARSE_DIR)
        except (OSError, ValueError, KeyError) as e:
            raise IndexCorruptError(f"{data / SPARSE_DIR} cannot be read ({str(e)[:120]}); "
                                    "rebuild with `qa index`") from None
        n_lex = sparse.size
    else:
        tokens = load_tokens(data / "tokens.jsonl")
        n_lex = len(tokens)
    try:
        faiss_index = faiss_files.load(data / "dense.faiss")
    except RuntimeError as e:
        raise IndexCorruptError(f"{data / 'dense.faiss'} cannot be read by FAISS ({str(e).splitlines()[0]}); "
                                "rebuild with `qa index`") from None
    n = manifest["counts"]["chunks"]
    if not (len(chunks) == n_lex == faiss_index.ntotal == n):
        raise IndexCorruptError(
            f"{data}: chunks.jsonl has {len(chunks)} rows, the BM25 index {n_lex}, dense.faiss "
            f"{faiss_index.ntotal} vectors; the manifest says {n}; rebuild with `qa index`"
        )
    if faiss_index.d != manifest["model"]["dimension"]:
        raise IndexCorruptError(f"{data / 'dense.faiss'}: dimension {faiss_index.d} != manifest "
                                f"{manifest['model']['dimension']}; rebuild with `qa index`")
    for c in ([] if lazy else chunks):  # a lazy chunk is checked when it is read
        art = articles.get(c.article_id)
        try:
            ok = art is not None and art.text[c.start:c.end] == c.text
        except (TypeError, AttributeError):  # a field of the wrong type
            ok = False
        if not ok:
            raise IndexCorruptError(f"{data / 'chunks.jsonl'}: chunk {c.id} does not match its article "
                                    f"{c.article_id!r} in articles.jsonl; rebuild with `qa index`")
    try:
        vectors = np.load(data / "vectors.npy", mmap_mode="r")
    except ValueError as e:
        raise IndexCorruptError(f"{data / 'vectors.npy'} cannot be read ({e}); rebuild with `qa index`") from None
    if vectors.shape != (n, faiss_index.d):
        raise IndexCorruptError(f"{data / 'vectors.npy'}: shape {vectors.shape} != ({n}, {faiss_index.d}); "
                                "rebuild with `qa index`")
    sentences = SentenceVectors.load(data, n, faiss_index.d)
    return LoadedIndex(manifest, articles, chunks, tokens, faiss_index, vectors, sparse, sentences, load_groups(data))


def load_tokens(path: Path) -> list[list[str]]:
    """BM25 tokens of every chunk, from ``tokens.jsonl``; IndexCorruptError when damaged."""
    try:
        tokens = read_tokens(path)
        if not all(isinstance(t, list) and all(isinstance(w, str) for w in t) for t in tokens):
            raise ValueError("a row is not a list of words")
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise IndexCorruptError(f"{path} is damaged ({str(e)[:120]}); rebuild with `qa index`") from None
    return tokens

