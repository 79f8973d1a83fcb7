"""Exceptions raised by article-qa. All derive from :class:`QAError`."""
from __future__ import annotations


class QAError(Exception):
    """Base class of every error raised on purpose by the ``qa`` package."""


class ConfigError(QAError, ValueError):
    """A setting has a value that is not allowed (the message lists the allowed values)."""


class IndexNotFoundError(QAError, FileNotFoundError):
    """There is no built index in the given folder."""


class IndexCorruptError(QAError):
    """An index exists but a file of it is missing, truncated or does not match its manifest."""


class ModelMismatchError(QAError):
    """The index was built with another embedding model than the one configured."""


class ModelNotFoundError(QAError):
    """The embedding model cannot be loaded from a local path or installed package."""


class IngestError(QAError):
    """A file of the corpus cannot be read as an article (raised per file, reported, and skipped)."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class EmptyCorpusError(QAError):
    """The corpus folder holds no readable article."""


class LLMError(QAError):
    """The LLM server could not give an answer (the answer falls back to the extractive one)."""


class LLMUnavailableError(LLMError):
    """The LLM server cannot be reached (nothing listening, wrong URL, DNS, refused)."""


class LLMTimeoutError(LLMError):
    """The LLM server did not answer within ``llm_timeout`` seconds."""


class LLMResponseError(LLMError):
    """The LLM server answered with an HTTP error or a reply that is not chat-completions JSON."""
