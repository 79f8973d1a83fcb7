"""Where each setting comes from, merged per key: defaults < index manifest < ``qa.toml`` < CLI flags.

The settings themselves (sections, defaults, checks, docs) are defined once in :mod:`qa.settings`
and re-exported here. ``qa.toml`` groups them in sections::

    [index]          # how the index is built: model, chunk_size, ... (qa index)
    [retrieval]      # mode, fusion, dense_weight, ... (qa tune writes these into the index)
    [answer]         # answer_k, abstain_threshold, answerer, llm_*
    [ui]             # host, port, share (qa serve)
    [milvus]         # store, milvus_*

optionally nested under ``[qa]`` (``[qa.retrieval]``). The older flat form (settings at top level or
directly under ``[qa]``) still works, with a one-time warning showing it in sections.

:func:`resolve_config` merges the sources key by key and records, for every setting, where its
value came from (``"default"``, ``"manifest"``, the TOML file's path, ``"cli"``), so that a
``qa.toml`` setting only ``mode`` keeps the ``dense_weight`` that ``qa tune`` wrote.
"""
from __future__ import annotations

import logging
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Mapping, Optional

from .errors import ConfigError
from .settings import (ANSWERERS, BUILD_KEYS, DEFAULT_MODEL, DENSE_INDEXES, DEVICES, FUSIONS,  # noqa: F401
                       GENERATION_KEYS, LEXICAL_ENGINES, MANIFEST_KEYS, MILVUS_ANALYZERS, MILVUS_DENSE_INDEXES,
                       MILVUS_HYBRIDS, MODES, SECTION_KEYS, SECTIONS, SPECS, STORES, UNSUPPORTED, VECTOR_DTYPES,
                       Config, Spec, _line, _validate, read_toml, sectioned_toml, settings_doc, toml_value)

log = logging.getLogger("qa")

DEFAULT, MANIFEST, CLI = "default", "manifest", "cli"
#: the sections an index manifest contributes when searching, answering, evaluating (all it records)
MANIFEST_SECTIONS = ("index", "retrieval", "answer", "milvus")
#: the sections an existing index's manifest contributes to ``qa index``: a rebuild keeps what ``qa tune``
#: wrote, while build settings come from defaults < qa.toml < CLI
BUILD_MANIFEST_SECTIONS = ("retrieval",)
#: defaults that older versions wrote into index manifests, for settings whose meaning moved with the
#: model behind them (``abstain_threshold``: an answer score, then the selector's probability, now
#: P(answerable) from the selector and the reader; ``reader_paragraphs``: 2 until the paragraph
#: chooser was fitted on four, then 4 until it was fitted on six); a manifest holding exactly one of
#: them gets today's default (a value chosen by hand or by ``qa tune`` is anything else and stays)
FORMER_DEFAULTS: Mapping[str, tuple[Any, ...]] = {"abstain_threshold": (0.54, 0.74, 0.59, 0.51, 0.49, 0.47, 0.52, 0.57,
                                                                        0.62, 0.63),
                                                  "reader_paragraphs": (2, 4)}


@dataclass(frozen=True)
class ResolvedConfig:
    """The merged :class:`Config` and, per setting, where its value came from."""

    config: Config
    sources: Mapping[str, str]  # name -> "default" | "manifest" | path of the TOML file | "cli"

    def source(self, name: str) -> str:
        if name not in SPECS:
            raise ValueError(f"unknown setting {name!r}; allowed: {', '.join(SPECS)}")
        return self.sources[name]

    def sections(self) -> dict[str, dict[str, tuple[Any, str]]]:
        """``{section: {name: (value, source)}}`` in declaration order."""
        return {s: {n: (getattr(self.config, n), self.sources[n]) for n in SECTION_KEYS[s]} for s in SECTIONS}

    def to_dict(self) -> dict[str, dict[str, dict[str, Any]]]:
        """JSON-ready: ``{section: {name: {"value": ..., "source": ...}}}``."""
        return {s: {n: {"value": v, "source": src} for n, (v, src) in items.items()}
                for s, items in self.sections().items()}

    def show(self) -> str:
        """Every setting as TOML, by section, with its source as a comment (valid ``qa.toml`` text)."""
        lines = [f"# precedence per setting: {DEFAULT} < {MANIFEST} (the index) < TOML file < {CLI} (flags)"]
        for s, items in self.sections().items():
            lines.append(f"\n[{s}]")
            width = max(len(f"{n} = {toml_value(v)}") for n, (v, _) in items.items())
            lines += [f"{n} = {toml_value(v)}".ljust(width) + f"  # {src}" for n, (v, src) in items.items()]
        return "\n".join(lines)


def upgrade_manifest_config(config: Mapping[str, Any], where: str = "index manifest") -> dict[str, Any]:
    """The ``"config"`` of an index manifest without the settings that only hold an older default
    (:data:`FORMER_DEFAULTS`): those take today's default, with a log line saying so."""
    out = dict(config)
    for name, olds in FORMER_DEFAULTS.items():
        v, now = out.get(name), getattr(Config, name)
        if isinstance(v, (int, float)) and v != now and any(abs(v - o) < 1e-9 for o in olds):
            log.info("%s: %s = %s was the default of an older version (for another model); using today's "
                     "default %s (set it in qa.toml to keep another value)", where, name, v, now)
            del out[name]
    return out


def resolve_config(*, manifest: Optional[Mapping[str, Any]] = None, toml_path: Optional[str | Path] = None,
                   cli: Optional[Mapping[str, Any]] = None,
                   manifest_sections: Collection[str] = MANIFEST_SECTIONS) -> ResolvedConfig:
    """Merge the settings per key: defaults < ``manifest`` < ``toml_path`` < ``cli``.

    ``manifest``: the ``"config"`` dict of an index manifest (this function reads no index file);
    only its settings in ``manifest_sections`` count (``BUILD_MANIFEST_SECTIONS`` for ``qa index``),
    and never the LLM or ``[ui]`` ones. ``toml_path``: a TOML file (see :func:`read_toml`), or None
    for none (:func:`find_toml` gives ``qa.toml`` when present). ``cli``: flags; ``None`` values
    mean "not given". Every value is checked, and an error names the source it came from.
    """
    bad = sorted(set(manifest_sections) - set(MANIFEST_SECTIONS))
    if bad:
        raise ValueError(f"manifest_sections: {', '.join(bad)} not allowed; allowed: {', '.join(MANIFEST_SECTIONS)}")
    values: dict[str, Any] = {}
    sources = {name: DEFAULT for name in SPECS}
    if manifest is not None:
        if not isinstance(manifest, Mapping):
            raise ConfigError(f"index manifest: \"config\" must be a table of settings; got {manifest!r}")
        _check_known(manifest, "index manifest")
        layer = {k: v for k, v in manifest.items() if k in MANIFEST_KEYS and SPECS[k].section in manifest_sections}
        _merge(values, sources, _checked(layer, "index manifest"), MANIFEST)
    if toml_path is not None:
        _merge(values, sources, read_toml(toml_path), str(toml_path))
    if cli:
        flags = {k: v for k, v in cli.items() if v is not None}
        _check_known(flags, "command line")
        _merge(values, sources, _checked(flags, "command line"), CLI)
    return ResolvedConfig(Config(**values), sources)


def load_config(path: Optional[str | Path] = None, **overrides: Any) -> Config:
    """Config from ``path`` (or ``qa.toml`` in the working folder when present), then overrides
    (``None`` ones ignored). No index manifest: see :func:`resolve_config` for that."""
    return resolve_config(toml_path=find_toml(path), cli=overrides).config


def find_toml(path: Optional[str | Path] = None) -> Optional[Path]:
    """``path`` when given, else ``qa.toml`` in the working folder when it exists, else None."""
    if path is not None:
        return Path(path)
    return Path("qa.toml") if Path("qa.toml").is_file() else None


def _check_known(data: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(data) - set(SPECS))
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(sorted(SPECS))}")


def _checked(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    for name, value in data.items():
        _validate(SPECS[name], name, value, where)
    return dict(data)


def _merge(values: dict[str, Any], sources: dict[str, str], layer: Mapping[str, Any], source: str) -> None:
    for name, value in layer.items():
        values[name] = value
        sources[name] = source


__all__ = ["Config", "ResolvedConfig", "resolve_config", "upgrade_manifest_config", "FORMER_DEFAULTS", "load_config", "find_toml", "read_toml", "sectioned_toml",
           "settings_doc", "SECTIONS", "SECTION_KEYS", "BUILD_KEYS", "GENERATION_KEYS", "MANIFEST_KEYS",
           "MANIFEST_SECTIONS", "BUILD_MANIFEST_SECTIONS", "MODES", "ANSWERERS", "UNSUPPORTED", "DEFAULT_MODEL"]
