"""The embedded index on disk: build it atomically, check it, load it.

Layout of an index folder::

    index/
      manifest.json          # written last, atomically: format, model, settings, counts, files
      data-<build id>/
        articles.jsonl       # one Article per line
        chunks.jsonl         # one Chunk per line (article id, offsets, text, content hash)
        tokens.jsonl         # BM25 tokens per chunk
        vectors.npy          # float32 (or float16) embeddings, row i = chunk i (also the embedding cache)
        dense.faiss          # FAISS index over the vectors (exact flat, or HNSW for large indexes)
        bm25s/               # large indexes only: bm25s sparse BM25 matrix, memory-mapped on load

A build writes a new ``data-*`` folder, then replaces ``manifest.json`` in one atomic rename;
until then the previous index stays whole and loadable. A crash leaves at most an orphan
``data-*`` folder, which the next build removes.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .analyzer import Analyzer
from .backends.dense import PACKAGED_MODELS, DenseRetriever, Embedder, model_identity, same_model
from .backends.lexical import BM25Retriever
from .backends.sparse import FILES as SPARSE_FILES
from .chunking import chunk_spans
from .config import Config
from .errors import EmptyCorpusError, IndexCorruptError, IndexNotFoundError, ModelMismatchError, QAError
from .ingest import Corpus, load_corpus
from .types import Article, Chunk

log = logging.getLogger("qa")

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATA_FILES = ("articles.jsonl", "chunks.jsonl", "tokens.jsonl", "vectors.npy", "dense.faiss")
SPARSE_DIR = "bm25s"
LAZY_CHUNKS = 50000  # from this many chunks, articles and chunks are read on demand (qa.lazy)
OPTIONAL_FILES = tuple(f"{SPARSE_DIR}/{n}" for n in SPARSE_FILES)  # written by the bm25s engine only


@dataclass
class BuildReport:
    """What :func:`build_index` did."""

    index_dir: Path
    articles: int
    chunks: int
    problems: list
    duplicates: int
    skipped: bool  # True when the index was already up to date
    seconds: float
    embedded: int = 0  # chunks embedded now (the rest came from the cache)
    device: Optional[str] = None  # where chunks were embedded: "cpu", "cuda", ...
    stages: Optional[dict] = None  # seconds per build stage (read+clean, chunk, embed, dense, lexical, write)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def corpus_fingerprint(corpus: Corpus, config: Config, model_id: Optional[str] = None) -> str:
    """Hash of the articles and build settings; a model given as a folder adds its identity
    (``model_id``, see :func:`~qa.backends.dense.model_fingerprint`), so an index is rebuilt when
    the folder's weights change even though its path does not."""
    h = hashlib.sha256()
    h.update(json.dumps(config.build_settings(), sort_keys=True).encode())
    if model_id is not None and config.model not in PACKAGED_MODELS:
        h.update(model_id.encode())
    h.update(str(FORMAT_VERSION).encode())
    for a in corpus.articles:
        h.update(json.dumps([a.id, a.content_hash, a.title, a.source, a.date], ensure_ascii=False).encode())
    return h.hexdigest()


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
    return manifest


def _lists_all_files(files: Mapping[str, Any]) -> bool:
    """Whether a manifest's ``files`` names every data file and nothing but those (bm25s files optional)."""
    return set(DATA_FILES) <= set(files) <= set(DATA_FILES + OPTIONAL_FILES)


def _manifest_problem(m: dict[str, Any]) -> Optional[str]:
    """What is wrong with the shape of a parsed manifest (None when nothing is)."""
    import re

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    data_dir = m.get("data_dir")
    if not isinstance(data_dir, str) or not re.fullmatch(r"data-[A-Za-z0-9_.-]+", data_dir) or data_dir in ("data-.", "data-.."):
        return f"data_dir {data_dir!r} is not a data-* folder name"
    files = m.get("files")
    if not isinstance(files, dict) or not _lists_all_files(files):
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


def check_files(index_dir: Path, manifest: dict[str, Any], *, verify: bool = True) -> Path:
    """Check that every data file exists with the recorded size (and hash when ``verify``)."""
    data = index_dir / manifest["data_dir"]
    for name, meta in manifest.get("files", {}).items():
        p = data / name
        if not p.is_file():
            raise IndexCorruptError(f"index file missing: {p}; rebuild with `qa index`")
        size = p.stat().st_size
        if size != meta["bytes"]:
            raise IndexCorruptError(
                f"index file {p} has {size} bytes, manifest says {meta['bytes']} (truncated or changed); "
                "rebuild with `qa index`"
            )
        if verify and _sha256(p) != meta["sha256"]:
            raise IndexCorruptError(f"index file {p} does not match its checksum (corrupted); rebuild with `qa index`")
    if not _lists_all_files(manifest.get("files", {})):
        raise IndexCorruptError(f"{index_dir / MANIFEST} does not list all index files; rebuild with `qa index`")
    return data


def _write_jsonl(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False))
            f.write("\n")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - not supported on some platforms
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # disk full, interrupted: the old file stays, the partial copy goes
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def chunk_article(article: Article, config: Config) -> list[tuple[int, int]]:
    return [(s.start, s.end) for s in chunk_spans(article.text, chunk_size=config.chunk_size, overlap=config.chunk_overlap)]


def index_text(chunk_text: str, article: Article, config: Config) -> str:
    """The text that BM25 and the embedder see for a chunk (title first when configured)."""
    if config.title_in_index and article.title:
        return f"{article.title}\n{chunk_text}"
    return chunk_text


def _load_cache(index_dir: Path, model: str, fingerprint: Optional[str] = None) -> dict[str, np.ndarray]:
    """Embeddings of the current index keyed by chunk-text hash, when built with the same model
    (same fingerprint; ``None`` computes it from ``model``)."""
    try:
        manifest = read_manifest(index_dir)
        if fingerprint is None:
            fingerprint = model_identity(model)
        if not same_model(manifest["model"], model, fingerprint):
            return {}
        data = check_files(index_dir, manifest, verify=False)
        vecs = np.load(data / "vectors.npy", mmap_mode="r")
        cache: dict[str, np.ndarray] = {}
        with open(data / "chunks.jsonl", encoding="utf-8") as f:
            for i, line in enumerate(f):
                cache[json.loads(line)["embed_hash"]] = vecs[i]
        return cache
    except Exception:  # no usable previous index: embed everything
        return {}


def build_index(
    corpus_dir: str | os.PathLike = "corpus",
    index_dir: str | os.PathLike = "index",
    config: Optional[Config] = None,
    *,
    progress: bool = True,
    force: bool = False,
    embedder: Optional[Embedder] = None,
    corpus: Optional[Corpus] = None,
) -> BuildReport:
    """Read ``corpus_dir``, chunk, embed and index it into ``index_dir`` (atomically).

    Does nothing when the index is already up to date for this corpus and build settings
    (unless ``force``). Chunks whose text was embedded before with the same model are not
    embedded again. Bad files are skipped and listed in ``BuildReport.problems``.
    """
    config = config or Config()
    if config.store == "milvus":  # the same build into Milvus collections (docs/scale-out.md)
        from .milvus import build_milvus

        return build_milvus(corpus_dir, index_dir, config, progress=progress, force=force, embedder=embedder,
                            corpus=corpus)
    t0 = time.perf_counter()
    index_dir = Path(index_dir)
    corpus = corpus if corpus is not None else load_corpus(corpus_dir, progress=progress)
    stages = {"read+clean": time.perf_counter() - t0}
    lap = time.perf_counter()

    def stage(name: str) -> None:
        nonlocal lap
        now = time.perf_counter()
        stages[name] = stages.get(name, 0.0) + now - lap
        lap = now
    if not corpus.articles:
        reasons = "; ".join(str(p) for p in corpus.problems[:5])
        raise EmptyCorpusError(f"no readable article in {corpus_dir}" + (f" ({reasons})" if reasons else ""))
    model_id = model_identity(config.model, embedder)
    fingerprint = corpus_fingerprint(corpus, config, model_id)
    if not force and (index_dir / MANIFEST).is_file():
        try:
            old = read_manifest(index_dir)
            check_files(index_dir, old, verify=False)
            if old["corpus"]["fingerprint"] == fingerprint:
                log.info("index in %s is up to date; nothing to do", index_dir)
                return BuildReport(index_dir, old["counts"]["articles"], old["counts"]["chunks"],
                                   corpus.problems, len(corpus.duplicates), True, time.perf_counter() - t0)
        except (IndexCorruptError, IndexNotFoundError, KeyError):
            pass

    analyzer = Analyzer(stopwords=config.stopwords, stemming=config.stemming)
    chunks: list[Chunk] = []
    texts: list[str] = []
    for art in corpus.articles:
        for s, e in chunk_article(art, config):
            chunk = Chunk(id=len(chunks), article_id=art.id, start=s, end=e, text=art.text[s:e])
            chunks.append(chunk)
            texts.append(index_text(chunk.text, art, config))
    intern = sys.intern  # one string object per distinct word: a million chunks' tokens fit in memory
    tokens = [[intern(w) for w in analyzer.tokens(t)] for t in texts]
    choices = config.scale_choices(len(chunks))
    stage("chunk+tokenize")

    embedder = embedder or Embedder(config.model, device=config.device, batch_size=config.batch_size)
    if embedder.name != config.model:
        raise ModelMismatchError(f"embedder {embedder.name!r} differs from the configured model {config.model!r}")
    hashes = [text_hash(t) for t in texts]
    stage("load model")
    model_id = model_identity(config.model, embedder)
    cache = _load_cache(index_dir, config.model, model_id)
    todo = [i for i, h in enumerate(hashes) if h not in cache]
    vectors = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
    for i, h in enumerate(hashes):
        if h in cache:
            vectors[i] = cache[h]
    if todo:
        log.info("embedding %d of %d chunks (%d from cache) on %s", len(todo), len(texts), len(texts) - len(todo),
                 getattr(embedder, "device", "?"))
        vectors[todo] = embedder.encode([texts[i] for i in todo], progress=progress and len(todo) > 64)
    if choices["vector_dtype"] == "float16":
        vectors = vectors.astype(np.float16)
    stage("embed")
    log.info("indexing %d chunks: lexical %s, dense %s, vectors %s", len(chunks), choices["lexical_engine"],
             choices["dense_index"], choices["vector_dtype"])
    dense = DenseRetriever.build(vectors, kind=choices["dense_index"], dtype=choices["vector_dtype"],
                                 hnsw_m=config.hnsw_m, ef_construction=config.hnsw_ef_construction)
    stage("dense index")
    sparse = None
    if choices["lexical_engine"] == "bm25s":
        from .backends.sparse import SparseBM25

        sparse = SparseBM25.build(tokens, k1=config.bm25_k1, b=config.bm25_b)
    stage("lexical index")

    index_dir.mkdir(parents=True, exist_ok=True)
    build_id = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    data = index_dir / f"data-{build_id}"
    tmp = index_dir / f".tmp-{build_id}"
    tmp.mkdir()
    try:
        _write_jsonl(tmp / "articles.jsonl", (a.to_dict() for a in corpus.articles))
        _write_jsonl(tmp / "chunks.jsonl", ({**c.to_dict(), "embed_hash": h} for c, h in zip(chunks, hashes)))
        BM25Retriever.save_tokens(tokens, tmp / "tokens.jsonl")
        np.save(tmp / "vectors.npy", vectors)
        DenseRetriever.save(dense, tmp / "dense.faiss")
        del dense
        names = list(DATA_FILES)
        if sparse is not None:
            names += [f"{SPARSE_DIR}/{n}" for n in sparse.save(tmp / SPARSE_DIR)]
            del sparse
        for name in names:
            with open(tmp / name, "rb+") as f:
                os.fsync(f.fileno())
        if (tmp / SPARSE_DIR).is_dir():
            _fsync_dir(tmp / SPARSE_DIR)
        _fsync_dir(tmp)
        os.replace(tmp, data)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        files = {name: {"bytes": (data / name).stat().st_size, "sha256": _sha256(data / name)} for name in names}
    except BaseException:
        shutil.rmtree(data, ignore_errors=True)
        raise
    seconds = time.perf_counter() - t0
    manifest = {
        "format_version": FORMAT_VERSION,
        "data_dir": data.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_seconds": round(seconds, 3),
        "model": {"name": config.model, "dimension": embedder.dimension, "normalized": True,
                  "fingerprint": model_id,
                  **({} if config.model in PACKAGED_MODELS else {"path": getattr(embedder, "path", None)})},
        "chunking": {"chunk_size": config.chunk_size, "chunk_overlap": config.chunk_overlap,
                     "title_in_index": config.title_in_index},
        "analyzer": analyzer.settings(),
        "scale": choices,
        "config": config.manifest_dict(),
        "corpus": {"folder": str(corpus_dir), "fingerprint": fingerprint, "files": corpus.files,
                   "problems": [str(p) for p in corpus.problems],
                   "duplicates": [list(d) for d in corpus.duplicates]},
        "counts": {"articles": len(corpus.articles), "chunks": len(chunks), "embedded": len(todo)},
        "files": files,
    }
    try:
        _atomic_write_json(index_dir / MANIFEST, manifest)
    except BaseException:  # e.g. disk full: the previous manifest stays in use; drop the unused data
        if _current_data_dir(index_dir) != data.name:
            shutil.rmtree(data, ignore_errors=True)
        raise
    _remove_stale(index_dir, keep=data.name)
    stage("write")
    log.info("indexed %d articles, %d chunks in %.1fs", len(corpus.articles), len(chunks), seconds)
    return BuildReport(index_dir, len(corpus.articles), len(chunks), corpus.problems,
                       len(corpus.duplicates), False, seconds, embedded=len(todo), stages=stages,
                       device=getattr(embedder, "device", None))


def _current_data_dir(index_dir: Path) -> Optional[str]:
    try:
        return read_manifest(index_dir)["data_dir"]
    except Exception:  # noqa: BLE001 - no readable manifest: nothing refers to any data folder
        return None


def _remove_stale(index_dir: Path, keep: str) -> None:
    """Remove what killed or failed builds left: other ``data-*`` and ``.tmp-*`` folders and
    partial manifest copies (``.manifest.json.tmp-*``)."""
    for p in index_dir.iterdir():
        if p.is_dir() and (p.name.startswith("data-") or p.name.startswith(".tmp-")) and p.name != keep:
            shutil.rmtree(p, ignore_errors=True)
        elif p.name.startswith(f".{MANIFEST}.tmp-") and p.is_file():
            try:
                p.unlink()
            except OSError:
                pass


@dataclass
class LoadedIndex:
    """Everything read from an index folder."""

    manifest: dict[str, Any]
    articles: "Mapping[str, Article]"  # a dict, or qa.lazy.LazyArticles for large indexes
    chunks: "Sequence[Chunk]"  # a list, or qa.lazy.LazyChunks
    tokens: Optional[list[list[str]]]  # None when the bm25s engine serves BM25 (``sparse``)
    faiss_index: Any
    vectors: Any = None  # float32 or float16 (chunks x dimension), memory-mapped from vectors.npy
    sparse: Any = None  # qa.backends.sparse.SparseBM25, memory-mapped, for the bm25s engine


def load_index(index_dir: str | os.PathLike, *, verify: bool = True, lazy: Optional[bool] = None) -> LoadedIndex:
    """Read and check an index folder; errors name the bad file and say to rebuild.

    ``lazy`` (default: from ``LAZY_CHUNKS`` chunks on) maps articles and chunks from disk and parses
    each one when used (:mod:`qa.lazy`), instead of reading them all: a million chunks load in
    seconds, in a fraction of the memory."""
    d = Path(index_dir)
    manifest = read_manifest(d)
    data = check_files(d, manifest, verify=verify)
    if lazy is None:
        lazy = manifest["counts"]["chunks"] >= LAZY_CHUNKS

    def rows(name: str) -> list[dict]:
        out = []
        try:
            with open(data / name, encoding="utf-8") as f:
                for n, line in enumerate(f, start=1):
                    try:
                        out.append(json.loads(line))
                    except (ValueError, RecursionError) as e:
                        raise IndexCorruptError(f"{data / name}:{n}: invalid JSON ({str(e)[:120]}); "
                                                "rebuild with `qa index`") from None
        except UnicodeDecodeError as e:  # a damaged byte (only reachable with verify=False)
            raise IndexCorruptError(f"{data / name} is not valid UTF-8 ({e.reason} at byte {e.start}); "
                                    "rebuild with `qa index`") from None
        return out

    try:
        if lazy:
            from .lazy import LazyArticles, LazyChunks

            articles = LazyArticles(data / "articles.jsonl")
            chunks = LazyChunks(data / "chunks.jsonl", articles)
        else:
            articles = {r["id"]: Article.from_dict(r) for r in rows("articles.jsonl")}
            chunks = [Chunk(id=r["id"], article_id=r["article_id"], start=r["start"], end=r["end"], text=r["text"])
                      for r in rows("chunks.jsonl")]
    except (KeyError, TypeError, AttributeError) as e:
        raise IndexCorruptError(f"{data}: a record of articles.jsonl or chunks.jsonl lacks field {e}; "
                                "rebuild with `qa index`") from None
    sparse = None
    tokens: Optional[list[list[str]]] = None
    if manifest.get("scale", {}).get("lexical_engine") == "bm25s":
        from .backends.sparse import SparseBM25

        try:
            sparse = SparseBM25.load(data / SPARSE_DIR)
        except (OSError, ValueError, KeyError) as e:
            raise IndexCorruptError(f"{data / SPARSE_DIR} cannot be read ({str(e)[:120]}); "
                                    "rebuild with `qa index`") from None
        n_lex = sparse.size
    else:
        tokens = load_tokens(data / "tokens.jsonl")
        n_lex = len(tokens)
    try:
        faiss_index = DenseRetriever.load(data / "dense.faiss")
    except RuntimeError as e:
        raise IndexCorruptError(f"{data / 'dense.faiss'} cannot be read by FAISS ({str(e).splitlines()[0]}); "
                                "rebuild with `qa index`") from None
    n = manifest["counts"]["chunks"]
    if not (len(chunks) == n_lex == faiss_index.ntotal == n):
        raise IndexCorruptError(
            f"{data}: chunks.jsonl has {len(chunks)} rows, the BM25 index {n_lex}, dense.faiss "
            f"{faiss_index.ntotal} vectors; the manifest says {n}; rebuild with `qa index`"
        )
    if faiss_index.d != manifest["model"]["dimension"]:
        raise IndexCorruptError(f"{data / 'dense.faiss'}: dimension {faiss_index.d} != manifest "
                                f"{manifest['model']['dimension']}; rebuild with `qa index`")
    for c in ([] if lazy else chunks):  # a lazy chunk is checked when it is read
        art = articles.get(c.article_id)
        try:
            ok = art is not None and art.text[c.start:c.end] == c.text
        except (TypeError, AttributeError):  # a field of the wrong type
            ok = False
        if not ok:
            raise IndexCorruptError(f"{data / 'chunks.jsonl'}: chunk {c.id} does not match its article "
                                    f"{c.article_id!r} in articles.jsonl; rebuild with `qa index`")
    try:
        vectors = np.load(data / "vectors.npy", mmap_mode="r")
    except ValueError as e:
        raise IndexCorruptError(f"{data / 'vectors.npy'} cannot be read ({e}); rebuild with `qa index`") from None
    if vectors.shape != (n, faiss_index.d):
        raise IndexCorruptError(f"{data / 'vectors.npy'}: shape {vectors.shape} != ({n}, {faiss_index.d}); "
                                "rebuild with `qa index`")
    return LoadedIndex(manifest, articles, chunks, tokens, faiss_index, vectors, sparse)


def load_tokens(path: Path) -> list[list[str]]:
    """BM25 tokens of every chunk, from ``tokens.jsonl``; IndexCorruptError when damaged."""
    try:
        tokens = BM25Retriever.load_tokens(path)
        if not all(isinstance(t, list) and all(isinstance(w, str) for w in t) for t in tokens):
            raise ValueError("a row is not a list of words")
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise IndexCorruptError(f"{path} is damaged ({str(e)[:120]}); rebuild with `qa index`") from None
    return tokens


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
    from .errors import ConfigError

    d = Path(index_dir)
    manifest = read_manifest(d)
    build = sorted(k for k in settings if k in Config.__dataclass_fields__ and k in Config().build_settings())
    if build:
        raise ConfigError(f"{', '.join(build)} change(s) what is stored in the index; rebuild with "
                          f"`qa index --force` instead of updating {d / MANIFEST}")
    new = Config.from_dict({**manifest.get("config", {}), **settings}, where=str(d / MANIFEST))
    manifest["config"] = new.manifest_dict()
    _atomic_write_json(d / MANIFEST, manifest)
    log.info("updated %s: %s", d / MANIFEST, ", ".join(f"{k}={v}" for k, v in settings.items()))
    return manifest["config"]
