"""Any sentence-transformers model folder behind the :class:`~qa.encoders.base.Encoder` protocol.

The query/passage convention comes from the model folder: when its
``config_sentence_transformers.json`` names prompts ``query`` and ``passage`` (as the E5
folder written by :mod:`qa.encoders.e5_convert` does), they are applied; a model without
them (MiniLM) encodes raw text. Callers never add prefixes.
"""
from __future__ import annotations

import logging
import os
from importlib import metadata
from typing import Any, Sequence

import numpy as np

from .base import check_texts, clean_text

log = logging.getLogger("qa")

__all__ = ["Embedder", "SentenceTransformerEncoder"]


class SentenceTransformerEncoder:
    """``model``: a packaged model name (``all-MiniLM-L6-v2``) or a local folder; nothing is
    downloaded. ``device``: ``"auto"`` (cuda when available), ``"cpu"``, ``"cuda"``. On CPU
    the weights are computed in float32 whatever their stored dtype (CPU float16 is slow).
    Encoding may be called from several threads at once (no lock: torch runs them in parallel)."""

    backend = "sentence-transformers"

    def __init__(self, model: str, *, device: str = "auto", batch_size: int = 32) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        from .identity import model_fingerprint, pick_device, resolve_model
        self.name = model
        self.path = resolve_model(model)
        self.device = pick_device(device)
        self.batch_size = batch_size
        kwargs: dict[str, Any] = {}
        if self.device == "cpu":  # a float16 folder (e5_convert --dtype float16) computes in float32 on CPU
            import torch
            kwargs["model_kwargs"] = {"dtype": torch.float32}
        self.model = SentenceTransformer(self.path, device=self.device, local_files_only=True, **kwargs)
        get_dim = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        self.dimension = int(get_dim())
        prompts = dict(getattr(self.model, "prompts", None) or {})
        self.prompts = {k: prompts[k] for k in ("query", "passage") if k in prompts}
        self.fingerprint = model_fingerprint(model)
        self.version = metadata.version("sentence-transformers")
        self.max_seq_length = int(getattr(self.model, "max_seq_length", 0) or 0)
        # The first encode sets the fast tokenizer's truncation and padding (a write to the Rust
        # tokenizer that races with another thread's encode: "Already borrowed"). Done here, once,
        # later calls only read them, so encoding is safe from several threads at once; torch
        # inference (eval mode, inference_mode) changes no shared state.
        self.encode_queries(["warm-up"])

    def _encode(self, texts: list[str], kind: str, progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        kwargs: dict[str, Any] = {}
        if kind in self.prompts:
            kwargs["prompt_name"] = kind
        vecs = self.model.encode([clean_text(t) for t in texts], batch_size=self.batch_size,
                                 normalize_embeddings=True, convert_to_numpy=True,
                                 show_progress_bar=progress, **kwargs)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(check_texts(texts, "encode_queries"), "query", False)

    def encode_passages(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        return self._encode(check_texts(texts, "encode_passages"), "passage", progress)

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Symmetric use (sentence similarity): the passage convention for every text."""
        return self.encode_passages(texts, progress=progress)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "name": self.name,
            "dimension": self.dimension,
            "prefixes": {"query": self.prompts.get("query", ""), "passage": self.prompts.get("passage", "")},
            "version": self.version,
            "fingerprint": self.fingerprint,
            "device": self.device,
            "max_tokens": self.max_seq_length,
            "long_inputs": "truncated",
            "normalized": True,
        }

    def __repr__(self) -> str:
        return f"SentenceTransformerEncoder({self.name!r}, {self.device})"


Embedder = SentenceTransformerEncoder  # the name before the encoder protocol (0.1)
