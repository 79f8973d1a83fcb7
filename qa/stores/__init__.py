"""Stores: where an index lives. One protocol (:class:`Store`, in ``base.py``), one file per backend:
``embedded.py`` (FAISS + BM25 files in a folder; format in ``embedded_index/``) and ``milvus.py``
(Milvus collections; I/O in ``milvus_io/``). :func:`open_store` and :func:`build_index` pick the
backend from ``config.store``."""
from __future__ import annotations

import os
from typing import Any, Optional

from pathlib import Path

from ..config import (BUILD_MANIFEST_SECTIONS, MANIFEST_SECTIONS, Config, ResolvedConfig, find_toml,
                      resolve_config)
from ..errors import QAError
from .base import BuildReport, Ranked, Store, StoreStats
from .embedded_index.manifest import check_model, read_manifest, update_config


def open_store(index_dir: str | os.PathLike, config: Config, *, verify: bool = True,
               lazy: Optional[bool] = None) -> Store:
    """The store of ``config.store`` for ``index_dir``, checked against ``config.model``
    (:class:`~qa.errors.ModelMismatchError` when the index was built with another model)."""
    if config.store == "milvus":
        from .milvus import MilvusStore

        store: Store = MilvusStore.open(index_dir, config)
    else:
        from .embedded import EmbeddedStore

        store = EmbeddedStore.open(index_dir, config, verify=verify, lazy=lazy)
    try:
        check_model(store.manifest, config.model)
    except Exception:
        store.close()
        raise
    return store


def resolve_settings(index_dir: Optional[str | os.PathLike], *, toml_path: Optional[str | os.PathLike] = None,
                     cli: Optional[dict] = None, build: bool = False) -> ResolvedConfig:
    """The settings for working with ``index_dir``, merged per key: defaults < the index's manifest (what
    it was built and tuned with; for a ``build``, only its retrieval settings, so ``qa index`` keeps what
    ``qa tune`` wrote) < ``toml_path`` (default: ``qa.toml`` here when present) < ``cli``."""
    manifest = None
    if index_dir is not None and Path(index_dir, "manifest.json").is_file():  # none: no index yet, or Milvus
        try:
            manifest = read_manifest(Path(index_dir)).get("config")
        except QAError:
            if not build:  # a damaged manifest does not stop a rebuild, which replaces it
                raise
    return resolve_config(manifest=manifest, toml_path=find_toml(toml_path), cli=cli or {},
                          manifest_sections=BUILD_MANIFEST_SECTIONS if build else MANIFEST_SECTIONS)


def build_index(corpus_dir: str | os.PathLike = "corpus", index_dir: str | os.PathLike = "index",
                config: Optional[Config] = None, **kw: Any) -> BuildReport:
    """Read ``corpus_dir``, chunk, embed and index it into the store of ``config.store``.

    Embedded (default): an index folder, written atomically; does nothing when it is already up
    to date (unless ``force=True``); chunks embedded before with the same model are not embedded
    again; bad files are skipped and listed in ``BuildReport.problems``. Milvus: the same into
    Milvus collections (docs/scale-out.md). Keyword arguments: ``progress``, ``force``,
    ``embedder``, ``corpus`` (an already loaded :class:`~qa.ingest.Corpus`).
    """
    config = config or Config()
    if config.store == "milvus":
        from .milvus_io.sync import build_milvus

        return build_milvus(corpus_dir, index_dir, config, **kw)
    from .embedded_index.build import build_index as build_embedded

    return build_embedded(corpus_dir, index_dir, config, **kw)


__all__ = ["BuildReport", "Ranked", "Store", "StoreStats", "build_index", "check_model", "open_store",
           "read_manifest", "resolve_settings", "update_config"]
