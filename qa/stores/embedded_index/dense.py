"""The dense half of the embedded index: a FAISS inner-product index over the chunk vectors
(exact ``flat``, or approximate ``hnsw`` for large indexes), saved as ``dense.faiss``."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

DENSE_KINDS = ("flat", "hnsw")
MMAP_BYTES = 64 << 20  # index files from this size are memory-mapped
EXACT_MAX = 50_000  # a filter letting at most this many chunks through is searched exactly (benchmarks/filters.py)
EF_MAX = 4096  # the widest HNSW walk a filtered search takes


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


def search(index, vec: np.ndarray, k: int, allow: Optional[np.ndarray] = None) -> list[tuple[int, float]]:
    """Up to ``k`` (chunk id, inner product), best first; only chunks whose entry in the boolean
    mask ``allow`` is true, when given. A filtered search is exact (FAISS scans the stored vectors
    of the allowed ids only) for a flat index, or when at most ``EXACT_MAX`` chunks pass; an HNSW
    index with a broader filter walks the graph with an id selector and a search depth widened by
    the share filtered out (up to ``EF_MAX``), and falls back to the exact scan if that comes back
    short. Figures: benchmarks/filters.py, docs/benchmarks.md."""
    if index.ntotal == 0:
        return []
    x = vec.reshape(1, -1).astype(np.float32)
    if allow is None:
        return _run(index, x, min(k, index.ntotal))
    import faiss

    rows = int(np.count_nonzero(allow))
    k = min(k, rows)
    if k == 0:
        return []
    bitmap = np.packbits(np.asarray(allow, dtype=bool), bitorder="little")  # kept alive during the search
    selector = faiss.IDSelectorBitmap(len(allow), faiss.swig_ptr(bitmap))
    hnsw = hasattr(index, "hnsw")
    flat = faiss.downcast_index(index.storage) if hnsw else index
    if hnsw and rows > EXACT_MAX:
        params = faiss.SearchParametersHNSW()
        params.sel = selector
        params.efSearch = min(EF_MAX, max(int(index.hnsw.efSearch * len(allow) / rows), k))
        found = _run(index, x, k, params)
        if len(found) == k:
            return found
    params = faiss.SearchParameters()
    params.sel = selector
    return _run(flat, x, k, params)


def _run(index, x: np.ndarray, k: int, params=None) -> list[tuple[int, float]]:
    scores, ids = index.search(x, k) if params is None else index.search(x, k, params=params)
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
