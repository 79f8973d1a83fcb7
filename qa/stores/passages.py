"""What both stores build from an article: its passages (chunk spans), the text BM25 and the
encoder see for each, and the fingerprints that tell whether an index is up to date."""
from __future__ import annotations

import hashlib
import json
from typing import Optional

from ..chunking import chunk_spans
from ..config import Config
from ..encoders.identity import PACKAGED_MODELS
from ..ingest import Corpus
from ..types import Article

FORMAT_VERSION = 1  # of the embedded index (also part of every corpus fingerprint)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def corpus_fingerprint(corpus: Corpus, config: Config, model_id: Optional[str] = None) -> str:
    """Hash of the articles and build settings; a model given as a folder adds its identity
    (``model_id``, see :func:`~qa.encoders.identity.model_fingerprint`), so an index is rebuilt when
    the folder's weights change even though its path does not."""
    h = hashlib.sha256()
    h.update(json.dumps(config.build_settings(), sort_keys=True).encode())
    if model_id is not None and config.model not in PACKAGED_MODELS:
        h.update(model_id.encode())
    h.update(str(FORMAT_VERSION).encode())
    for a in corpus.articles:
        h.update(json.dumps([a.id, a.content_hash, a.title, a.source, a.date], ensure_ascii=False).encode())
    return h.hexdigest()



def chunk_article(article: Article, config: Config) -> list[tuple[int, int]]:
    return [(s.start, s.end) for s in chunk_spans(article.text, chunk_size=config.chunk_size, overlap=config.chunk_overlap)]


def index_text(chunk_text: str, article: Article, config: Config) -> str:
    """The text that BM25 and the embedder see for a chunk (title first when configured)."""
    if config.title_in_index and article.title:
        return f"{article.title}\n{chunk_text}"
    return chunk_text

