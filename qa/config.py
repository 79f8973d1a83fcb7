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
                       Config, Spec, settings_doc, toml_value)

log = logging.getLogger("qa")

DEFAULT, MANIFEST, CLI = "default", "manifest", "cli"
#: the sections an index manifest contributes when searching, answering, evaluating (all it records)
MANIFEST_SECTIONS = ("index", "retrieval", "answer", "milvus")
#: the sections an existing index's manifest contributes to ``qa index``: a rebuild keeps what ``qa tune``
#: wrote, while build settings come from defaults < qa.toml < CLI
BUILD_MANIFEST_SECTIONS = ("retrieval",)
_warned_flat: set[str] = set()


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


def read_toml(path: str | Path) -> dict[str, Any]:
    """The settings of a TOML file as a flat, checked dict.

    Sections ``[index] [retrieval] [answer] [ui] [milvus]``, at top level or under ``[qa]``; the
    older flat form (settings at top level or directly under ``[qa]``) is accepted with a one-time
    warning. Unknown keys, keys in the wrong section, a setting given twice and bad values are
    ConfigErrors naming the file (and line), the key, and the allowed keys or the right section.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot read it: {e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: invalid TOML: {e}") from None
    root, prefix = data, ""
    if "qa" in data:
        if not isinstance(data["qa"], dict):
            raise ConfigError(f"{p}{_line(text, 'qa')}: qa must be a table ([qa]) holding the sections")
        others = sorted(set(data) - {"qa"})
        if others:
            raise ConfigError(f"{p}: {', '.join(others)} outside [qa]: with a [qa] table, put every setting under it "
                              "(or drop [qa] and use the sections at top level)")
        root, prefix = data["qa"], "qa."
    allowed = ", ".join(f"[{prefix}{s}]" for s in SECTIONS)
    out: dict[str, Any] = {}
    flat: dict[str, Any] = {}
    for key, value in root.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{p}{_line(text, key)}: {prefix}{key} must be a section ([{prefix}{key}]) "
                                  f"of settings, not {value!r}")
            for name, v in value.items():
                where = f"{p}{_line(text, name, key)}"
                if name not in SPECS:
                    raise ConfigError(f"{where}: unknown setting {name!r} in [{prefix}{key}]; allowed there: "
                                      f"{', '.join(SECTION_KEYS[key])}")
                right = SPECS[name].section
                if right != key:
                    raise ConfigError(f"{where}: {name} belongs in [{prefix}{right}], not in [{prefix}{key}]")
                out[name] = (v, where)
        elif key in SPECS:
            flat[key] = (value, f"{p}{_line(text, key)}")
        elif isinstance(value, dict):
            raise ConfigError(f"{p}{_line(text, key)}: unknown section [{prefix}{key}]; allowed sections: {allowed}")
        else:
            raise ConfigError(f"{p}{_line(text, key)}: unknown setting {key!r}; allowed: the sections {allowed} "
                              f"holding {', '.join(SPECS)}")
    for name, (v, where) in flat.items():
        if name in out:
            raise ConfigError(f"{where}: {name} is set twice, outside the sections and in "
                              f"[{prefix}{SPECS[name].section}]; keep the one in [{prefix}{SPECS[name].section}]")
        out[name] = (v, where)
    for name, (v, where) in out.items():
        _validate(SPECS[name], name, v, where)
    if flat and str(p) not in _warned_flat:
        _warned_flat.add(str(p))
        log.warning("%s: settings outside the sections (the old flat form) still work, but write them in "
                    "sections instead:\n%s", p, sectioned_toml({k: v for k, (v, _) in flat.items()}))
    return {name: v for name, (v, _) in out.items()}


def sectioned_toml(settings: Mapping[str, Any]) -> str:
    """``settings`` (flat) written as TOML sections, in the order of :data:`SECTIONS`."""
    parts = []
    for s in SECTIONS:
        names = [n for n in SECTION_KEYS[s] if n in settings]
        if names:
            parts.append(f"[{s}]\n" + "\n".join(f"{n} = {toml_value(settings[n])}" for n in names))
    return "\n\n".join(parts)


def _line(text: str, key: str, section: Optional[str] = None) -> str:
    """``:N`` with the line of ``key = `` in ``text`` (after the header of ``section``), or "" when not found."""
    start = 0
    if section is not None:
        header = re.search(rf"^[ \t]*\[[ \t]*(?:qa[ \t]*\.[ \t]*)?{re.escape(section)}[ \t]*\]", text, re.M)
        start = header.end() if header else 0
    m = re.compile(rf"^[ \t]*[\"']?{re.escape(key)}[\"']?[ \t]*=", re.M).search(text, start)
    if m is None and section is None:
        m = re.compile(rf"^[ \t]*\[[ \t]*(?:qa[ \t]*\.[ \t]*)?{re.escape(key)}[ \t]*\]", re.M).search(text)
    return f":{text.count(chr(10), 0, m.start()) + 1}" if m else ""


def _check_known(data: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(data) - set(SPECS))
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(sorted(SPECS))}")


def _checked(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    for name, value in data.items():
        _validate(SPECS[name], name, value, where)
    return dict(data)


def _validate(spec: Spec, name: str, value: Any, where: str) -> None:
    try:
        spec.validate(name, value)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def _merge(values: dict[str, Any], sources: dict[str, str], layer: Mapping[str, Any], source: str) -> None:
    for name, value in layer.items():
        values[name] = value
        sources[name] = source


__all__ = ["Config", "ResolvedConfig", "resolve_config", "load_config", "find_toml", "read_toml", "sectioned_toml",
           "settings_doc", "SECTIONS", "SECTION_KEYS", "BUILD_KEYS", "GENERATION_KEYS", "MANIFEST_KEYS",
           "MANIFEST_SECTIONS", "BUILD_MANIFEST_SECTIONS", "MODES", "ANSWERERS", "UNSUPPORTED", "DEFAULT_MODEL"]
