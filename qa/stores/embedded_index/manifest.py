"""The manifest of an embedded index: read and check it, check the model, update tuned settings."""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Optional

from ...analyzer import Analyzer
from ...config import Config, upgrade_manifest_config
from ...encoders.identity import PACKAGED_MODELS, model_identity
from ...errors import ConfigError, IndexCorruptError, IndexNotFoundError, ModelMismatchError, QAError
from .files import DATA_FILES, FORMAT_VERSION, MANIFEST, atomic_write_json, lists_all_files

log = logging.getLogger("qa")


def read_manifest(index_dir: str | os.PathLike) -> dict[str, Any]:
    """The manifest of an index, or IndexNotFoundError / IndexCorruptError naming the file."""
    d = Path(index_dir)
    path = d / MANIFEST
    if not path.is_file():
        raise IndexNotFoundError(f"no index in {d}/ (missing {MANIFEST}): run `qa index --index {d}`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IndexCorruptError(f"{path} is not valid JSON ({e}); rebuild with `qa index`") from None
    if not isinstance(manifest, dict) or "format_version" not in manifest or "data_dir" not in manifest:
        raise IndexCorruptError(f"{path} is incomplete (no format_version/data_dir); rebuild with `qa index`")
    if manifest["format_version"] != FORMAT_VERSION:
        raise IndexCorruptError(
            f"{path}: index format {manifest['format_version']} is not the supported {FORMAT_VERSION}; "
            "rebuild with `qa index`"
        )
    problem = _manifest_problem(manifest)
    if problem:
        raise IndexCorruptError(f"{path} is damaged ({problem}); rebuild with `qa index`")
    if isinstance(manifest.get("config"), dict):
        manifest["config"] = upgrade_manifest_config(manifest["config"], str(path))
    return manifest



def _manifest_problem(m: dict[str, Any]) -> Optional[str]:
    """What is wrong with the shape of a parsed manifest (None when nothing is)."""
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    data_dir = m.get("data_dir")
    if not isinstance(data_dir, str) or not re.fullmatch(r"data-[A-Za-z0-9_.-]+", data_dir) or data_dir in ("data-.", "data-.."):
        return f"data_dir {data_dir!r} is not a data-* folder name"
    files = m.get("files")
    if not isinstance(files, dict) or not lists_all_files(files):
        return "the list of files is not " + ", ".join(DATA_FILES) + " (and bm25s/ files for that engine)"
    for name, meta in files.items():
        if not (isinstance(meta, dict) and is_int(meta.get("bytes")) and isinstance(meta.get("sha256"), str)):
            return f"no size and checksum for {name}"
    counts, model = m.get("counts"), m.get("model")
    if not (isinstance(counts, dict) and is_int(counts.get("chunks")) and is_int(counts.get("articles"))):
        return "no article and chunk counts"
    if not (isinstance(model, dict) and isinstance(model.get("name"), str) and is_int(model.get("dimension"))):
        return "no model name and dimension"
    analyzer, config, corpus = m.get("analyzer"), m.get("config"), m.get("corpus")
    if not isinstance(analyzer, dict) or not set(analyzer) <= set(Analyzer().settings()):
        return "unknown analyzer settings"
    if not isinstance(corpus, dict) or not isinstance(config, dict):
        return "no corpus or config section"
    scale = m.get("scale", {})  # absent in indexes built before the scale settings
    allowed = {"lexical_engine": ("rank_bm25", "bm25s"), "dense_index": ("flat", "hnsw"),
               "vector_dtype": ("float32", "float16")}
    if not isinstance(scale, dict) or any(scale.get(k, v[0]) not in v for k, v in allowed.items()):
        return "bad scale section (lexical_engine rank_bm25|bm25s, dense_index flat|hnsw, vector_dtype float32|float16)"
    try:
        Config.from_dict(config)
    except (QAError, TypeError, ValueError) as e:
        return f"bad config: {e}"
    return None


def check_model(manifest: dict[str, Any], model: str, fingerprint: Optional[str] = None) -> None:
    """ModelMismatchError unless the index was built with ``model``; for a model folder, also
    unless its weights are still those the index was built with (``fingerprint``, computed when
    not given)."""
    built = manifest["model"]["name"]
    if built != model:
        raise ModelMismatchError(
            f"the index was built with model {built!r} but {model!r} is configured; "
            f"rebuild with `qa index --force` or configure model = {built!r}"
        )
    recorded = manifest["model"].get("fingerprint")
    if model in PACKAGED_MODELS or recorded is None:
        return
    fingerprint = fingerprint or model_identity(model)
    if fingerprint is not None and fingerprint != recorded:
        raise ModelMismatchError(
            f"the model folder {model!r} has changed since the index was built (its weights differ); "
            "rebuild with `qa index --force`"
        )


def update_config(index_dir: str | os.PathLike, **settings: Any) -> dict[str, Any]:
    """Change settings recorded in an index's manifest (``"config"``), atomically.

    Only settings that do not change what is stored may be changed this way (retrieval and answer
    settings such as ``mode``, ``fusion``, ``dense_weight``, ``rrf_k``, ``candidates``,
    ``bm25_k1``, ``bm25_b``); build settings (model, chunking, analyzer) need a rebuild. The new
    config is validated with :class:`Config` before the manifest is replaced. Returns it.
    """
    d = Path(index_dir)
    manifest = read_manifest(d)
    build = sorted(k for k in settings if k in Config.__dataclass_fields__ and k in Config().build_settings())
    if build:
        raise ConfigError(f"{', '.join(build)} change(s) what is stored in the index; rebuild with "
                          f"`qa index --force` instead of updating {d / MANIFEST}")
    new = Config.from_dict({**manifest.get("config", {}), **settings}, where=str(d / MANIFEST))
    manifest["config"] = new.manifest_dict()
    atomic_write_json(d / MANIFEST, manifest)
    log.info("updated %s: %s", d / MANIFEST, ", ".join(f"{k}={v}" for k, v in settings.items()))
    return manifest["config"]
