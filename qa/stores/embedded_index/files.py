"""The embedded index on disk: layout, file names, atomic writes and checksums.

Layout of an index folder::

    index/
      manifest.json          # written last, atomically: format, model, settings, counts, files
      data-<build id>/
        articles.jsonl       # one Article per line
        chunks.jsonl         # one Chunk per line (article id, offsets, text, content hash)
        tokens.jsonl         # BM25 tokens per chunk
        vectors.npy          # float32 (or float16) embeddings, row i = chunk i (also the embedding cache)
        sentences.npy        # each chunk's sentences (chunk, start, end, paragraph), see .sentences
        sentence_vectors.npy # their embeddings, for the answerer
        dense.faiss          # FAISS index over the vectors (exact flat, or HNSW for large indexes)
        bm25s/               # large indexes only: bm25s sparse BM25 matrix, memory-mapped on load
        neardup.json, neardup_*.npy, duplicates.json  # near-duplicate articles and their groups (.duplicates)

A build writes a new ``data-*`` folder, then replaces ``manifest.json`` in one atomic rename;
until then the previous index stays whole and loadable. A crash leaves at most an orphan
``data-*`` folder, which the next build removes.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from ...errors import IndexCorruptError
from ...lexical.bm25s_engine import FILES as SPARSE_FILES
from ...hashing import file_sha256
from ..passages import FORMAT_VERSION

MANIFEST = "manifest.json"
DATA_FILES = ("articles.jsonl", "chunks.jsonl", "tokens.jsonl", "vectors.npy", "dense.faiss")
SPARSE_DIR = "bm25s"
# bm25s files: written by the bm25s engine only; sentence files: unless [index] sentence_vectors = false;
# near-duplicate files (.duplicates): unless [index] near_duplicates = false
OPTIONAL_FILES = tuple(f"{SPARSE_DIR}/{n}" for n in SPARSE_FILES) + ("sentences.npy", "sentence_vectors.npy") + (
    "neardup.json", "neardup_sketches.npy", "neardup_shingles.npy", "duplicates.json")


sha256 = file_sha256



def lists_all_files(files: Mapping[str, Any]) -> bool:
    """Whether a manifest's ``files`` names every data file and nothing but those (bm25s files optional)."""
    return set(DATA_FILES) <= set(files) <= set(DATA_FILES + OPTIONAL_FILES)



def check_files(index_dir: Path, manifest: dict[str, Any], *, verify: bool = True) -> Path:
    """Check that every data file exists with the recorded size (and hash when ``verify``)."""
    data = index_dir / manifest["data_dir"]
    for name, meta in manifest.get("files", {}).items():
        p = data / name
        if not p.is_file():
            raise IndexCorruptError(f"index file missing: {p}; rebuild with `qa index`")
        size = p.stat().st_size
        if size != meta["bytes"]:
            raise IndexCorruptError(
                f"index file {p} has {size} bytes, manifest says {meta['bytes']} (truncated or changed); "
                "rebuild with `qa index`"
            )
        if verify and sha256(p) != meta["sha256"]:
            raise IndexCorruptError(f"index file {p} does not match its checksum (corrupted); rebuild with `qa index`")
    if not lists_all_files(manifest.get("files", {})):
        raise IndexCorruptError(f"{index_dir / MANIFEST} does not list all index files; rebuild with `qa index`")
    return data


def write_jsonl(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False))
            f.write("\n")


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - not supported on some platforms
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # disk full, interrupted: the old file stays, the partial copy goes
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


__all__ = ["DATA_FILES", "FORMAT_VERSION", "MANIFEST", "OPTIONAL_FILES", "SPARSE_DIR", "atomic_write_json",
           "check_files", "fsync_dir", "lists_all_files", "sha256", "write_jsonl"]
