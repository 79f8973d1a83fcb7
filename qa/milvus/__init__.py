"""The Milvus store backend (``store = "milvus"``): the same assistant on milvus-lite, Milvus
Standalone or Milvus Distributed, through pymilvus's ``MilvusClient``. Needs the extra ``milvus``.
See docs/scale-out.md."""
from .assistant import MilvusAssistant
from .client import MilvusStore, MilvusStoreError, lex_text, resolve_uri
from .sync import build_milvus, sync

__all__ = ["MilvusAssistant", "MilvusStore", "MilvusStoreError", "build_milvus", "lex_text", "resolve_uri", "sync"]
