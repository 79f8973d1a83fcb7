"""The dense half of the embedded index: a FAISS inner-product index over the chunk vectors
(exact ``flat``, or approximate ``hnsw`` for large indexes), saved as ``dense.faiss``."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

DENSE_KINDS = ("flat", "hnsw")
MMAP_BYTES = 64 << 20  # index files from this size are memory-mapped
EXACT_MAX = 20_000  # a filter letting at most this many chunks through is searched exactly (no index)
BLOCK = 65536


def build(vectors: np.ndarray, *, kind: str = "flat", dtype: str = "float32", hnsw_m: int,
          ef_construction: int):
    """A FAISS index over ``vectors``: ``flat`` (exact, float32) or ``hnsw`` (HNSW graph over
    float32 vectors, or fp16 ones when ``dtype`` is ``"float16"``), inner-product metric."""
    import faiss

    if kind not in DENSE_KINDS:
        raise ValueError(f"dense index kind must be one of {', '.join(DENSE_KINDS)}; got {kind!r}")
    d = vectors.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif dtype == "float16":
        index = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_fp16, hnsw_m, faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
    if kind == "hnsw":
        index.hnsw.efConstruction = ef_construction
        if not index.is_trained:
            index.train(np.ascontiguousarray(vectors[: min(len(vectors), 10000)], dtype=np.float32))
    step = 65536  # add in blocks, so a float16 array is never converted whole
    for s in range(0, len(vectors), step):
        index.add(np.ascontiguousarray(vectors[s:s + step], dtype=np.float32))
    return index

def save(index, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))

def load(path: Path):
    """Read a saved index. From ``MMAP_BYTES`` the file is memory-mapped instead of read whole:
    the vectors (flat, or the fp16/float32 storage under HNSW) and the HNSW graph stay in the
    page cache, so a 1M-chunk HNSW index loads in well under a second and takes ~40 MB of
    private memory instead of ~1 GB (docs/benchmarks.md). FAISS older than 1.10 has no
    ``IO_FLAG_MMAP_IFC``: there only flat indexes are mapped and others are read whole.
    A mapped index is read-only (FAISS aborts the process on ``add``); builds and updates
    always make a new index (:meth:`build`)."""
    import faiss

    if Path(path).stat().st_size < MMAP_BYTES:
        return faiss.read_index(str(path))
    ifc = getattr(faiss, "IO_FLAG_MMAP_IFC", None)
    if ifc is not None:
        return faiss.read_index(str(path), ifc | faiss.IO_FLAG_READ_ONLY)
    index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    if "Flat" not in type(index).__name__:  # old FAISS maps only flat indexes
        return faiss.read_index(str(path))
    return index

def set_ef_search(index, ef_search: int) -> None:
    """HNSW search depth (recall against speed); no effect on a flat index."""
    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = int(ef_search)


def search(index, vec: np.ndarray, k: int, allow: Optional[np.ndarray] = None,
           vectors: Optional[np.ndarray] = None) -> list[tuple[int, float]]:
    """Up to ``k`` (chunk id, inner product), best first; only chunks whose entry in the boolean
    mask ``allow`` is true, when given. A filtered search scores the allowed rows of ``vectors``
    exactly when at most ``EXACT_MAX`` pass (or when HNSW, whose graph walk a narrow filter starves,
    found fewer than ``k``); otherwise FAISS searches with an id selector over the mask."""
    if index.ntotal == 0:
        return []
    x = vec.reshape(1, -1).astype(np.float32)
    if allow is None:
        scores, ids = index.search(x, min(k, index.ntotal))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
    rows = np.flatnonzero(allow)
    k = min(k, rows.size)
    if k == 0:
        return []
    if vectors is not None and rows.size <= EXACT_MAX:
        return exact(vectors, rows, x[0], k)
    import faiss

    bitmap = np.packbits(np.asarray(allow, dtype=bool), bitorder="little")
    params = faiss.SearchParametersHNSW() if hasattr(index, "hnsw") else faiss.SearchParameters()
    params.sel = faiss.IDSelectorBitmap(len(allow), faiss.swig_ptr(bitmap))
    if hasattr(index, "hnsw"):
        params.efSearch = max(int(index.hnsw.efSearch), k)
    scores, ids = index.search(x, k, params=params)
    found = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
    if len(found) < k and vectors is not None:
        return exact(vectors, rows, x[0], k)
    return found


def exact(vectors: np.ndarray, rows: np.ndarray, vec: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The ``k`` best of ``rows`` by exact inner product with ``vec`` (ties by row), in blocks so
    float16 or memory-mapped vectors are never converted whole."""
    scores = np.empty(rows.size, dtype=np.float32)
    for s in range(0, rows.size, BLOCK):
        scores[s:s + BLOCK] = np.asarray(vectors[rows[s:s + BLOCK]], dtype=np.float32) @ vec
    k = min(k, rows.size)
    top = np.argpartition(-scores, k - 1)[:k] if k < rows.size else np.arange(rows.size)
    top = top[np.lexsort((rows[top], -scores[top]))]
    return [(int(rows[i]), float(scores[i])) for i in top]
