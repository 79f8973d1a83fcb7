"""Build (or bring up to date) the embedded index of a corpus, atomically (layout: :mod:`.files`)."""
from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Optional

import numpy as np

from ...analyzer import Analyzer
from ...config import Config
from ...encoders.identity import PACKAGED_MODELS, model_identity, same_model
from ...encoders import Encoder, make_encoder
from ...errors import EmptyCorpusError, IndexCorruptError, IndexNotFoundError, ModelMismatchError
from ...ingest import Corpus, load_corpus
from ...lexical import save_tokens
from ...types import Article, Chunk
from ..base import BuildReport
from ..passages import chunk_article, corpus_fingerprint, index_text, text_hash
from . import dense as faiss_files
from . import duplicates as dup_files
from . import sentences as sentence_files
from .files import DATA_FILES, FORMAT_VERSION, MANIFEST, SPARSE_DIR, atomic_write_json, check_files, fsync_dir, sha256, write_jsonl
from .manifest import read_manifest

log = logging.getLogger("qa")


def _previous_data(index_dir: Path, model: Optional[str], fingerprint: Optional[str], *,
                   any_model: bool = False) -> Optional[Path]:
    """The data folder of the current index when it was built with the same model (same
    fingerprint; ``None`` computes it from ``model``), else None. ``any_model``: whatever the model,
    and None instead of an error when there is no usable index."""
    if any_model:
        try:
            return check_files(index_dir, read_manifest(index_dir), verify=False)
        except Exception:  # noqa: BLE001 - no usable previous index
            return None
    manifest = read_manifest(index_dir)
    if not same_model(manifest["model"], model, fingerprint if fingerprint is not None else model_identity(model)):
        return None
    return check_files(index_dir, manifest, verify=False)


def load_cache(index_dir: Path, model: str, fingerprint: Optional[str] = None) -> dict[str, np.ndarray]:
    """Embeddings of the current index keyed by chunk-text hash, when built with the same model
    (same fingerprint; ``None`` computes it from ``model``)."""
    try:
        data = _previous_data(index_dir, model, fingerprint)
        if data is None:
            return {}
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
    embedder: Optional[Encoder] = None,
    corpus: Optional[Corpus] = None,
    keep: tuple[str, ...] = (),
) -> BuildReport:
    """Read ``corpus_dir``, chunk, embed and index it into ``index_dir`` (atomically).

    Does nothing when the index is already up to date for this corpus and build settings
    (unless ``force``). Chunks whose text was embedded before with the same model are not
    embedded again. Bad files are skipped and listed in ``BuildReport.problems``. ``keep``: names
    of older ``data-*`` folders not to remove yet (still read by a loaded index: :mod:`qa.library`).
    """
    config = config or Config()
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

    embedder = embedder or make_encoder(config.model, device=config.device, batch_size=config.batch_size)
    if embedder.name != config.model:
        raise ModelMismatchError(f"embedder {embedder.name!r} differs from the configured model {config.model!r}")
    hashes = [text_hash(t) for t in texts]
    stage("load model")
    model_id = model_identity(config.model, embedder)
    cache = load_cache(index_dir, config.model, model_id)
    todo = [i for i, h in enumerate(hashes) if h not in cache]
    vectors = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
    for i, h in enumerate(hashes):
        if h in cache:
            vectors[i] = cache[h]
    if todo:
        log.info("embedding %d of %d chunks (%d from cache) on %s", len(todo), len(texts), len(texts) - len(todo),
                 getattr(embedder, "device", "?"))
        vectors[todo] = embedder.encode_passages([texts[i] for i in todo], progress=progress and len(todo) > 64)
    if choices["vector_dtype"] == "float16":
        vectors = vectors.astype(np.float16)
    stage("embed")
    spans = sent_vectors = None
    n_sent_embedded = 0
    if config.sentence_vectors:
        by_id = {a.id: a for a in corpus.articles}
        spans = sentence_files.chunk_sentences(chunks, by_id)
        sent_cache = load_sentence_cache(index_dir, config.model, model_id)
        sent_vectors, n_sent_embedded = sentence_files.embed_sentences(
            sentence_files.sentence_texts(spans, chunks, by_id), embedder, sent_cache, progress=progress)
        del sent_cache
        if choices["vector_dtype"] == "float16":
            sent_vectors = sent_vectors.astype(np.float16)
    stage("embed sentences")
    log.info("indexing %d chunks: lexical %s, dense %s, vectors %s", len(chunks), choices["lexical_engine"],
             choices["dense_index"], choices["vector_dtype"])
    dense = faiss_files.build(vectors, kind=choices["dense_index"], dtype=choices["vector_dtype"],
                                 hnsw_m=config.hnsw_m, ef_construction=config.hnsw_ef_construction)
    stage("dense index")
    sparse = None
    if choices["lexical_engine"] == "bm25s":
        from ...lexical.bm25s_engine import SparseBM25

        sparse = SparseBM25.build(tokens, k1=config.bm25_k1, b=config.bm25_b)
    stage("lexical index")
    neardup, n_sketched, groups = None, 0, []
    if config.near_duplicates:
        neardup, n_sketched = dup_files.update(corpus.articles, _previous_data(index_dir, None, None, any_model=True))
    stage("near-duplicates")

    index_dir.mkdir(parents=True, exist_ok=True)
    build_id = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    data = index_dir / f"data-{build_id}"
    tmp = index_dir / f".tmp-{build_id}"
    tmp.mkdir()
    try:
        write_jsonl(tmp / "articles.jsonl", (a.to_dict() for a in corpus.articles))
        write_jsonl(tmp / "chunks.jsonl", ({**c.to_dict(), "embed_hash": h} for c, h in zip(chunks, hashes)))
        save_tokens(tokens, tmp / "tokens.jsonl")
        np.save(tmp / "vectors.npy", vectors)
        faiss_files.save(dense, tmp / "dense.faiss")
        del dense
        names = list(DATA_FILES)
        if spans is not None:
            np.save(tmp / sentence_files.SPANS_FILE, spans)
            np.save(tmp / sentence_files.VECTORS_FILE, sent_vectors)
            names += list(sentence_files.FILES)
        if sparse is not None:
            names += [f"{SPARSE_DIR}/{n}" for n in sparse.save(tmp / SPARSE_DIR)]
            del sparse
        if neardup is not None:  # writing the detector's files counts as its stage, not as "write"
            stage("write")
            groups = dup_files.save(neardup, tmp)
            names += list(dup_files.FILES)
            stage("near-duplicates")
        for name in names:
            with open(tmp / name, "rb+") as f:
                os.fsync(f.fileno())
        if (tmp / SPARSE_DIR).is_dir():
            fsync_dir(tmp / SPARSE_DIR)
        fsync_dir(tmp)
        os.replace(tmp, data)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        files = {name: {"bytes": (data / name).stat().st_size, "sha256": sha256(data / name)} for name in names}
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
                  "fingerprint": model_id, "backend": getattr(embedder, "backend", "sentence-transformers"),
                  **({} if config.model in PACKAGED_MODELS else {"path": getattr(embedder, "path", None)})},
        "encoder": embedder.describe() if hasattr(embedder, "describe") else None,
        "chunking": {"chunk_size": config.chunk_size, "chunk_overlap": config.chunk_overlap,
                     "title_in_index": config.title_in_index},
        "analyzer": analyzer.settings(),
        "scale": choices,
        "config": config.manifest_dict(),
        "corpus": {"folder": str(corpus_dir), "fingerprint": fingerprint, "files": corpus.files,
                   "problems": [str(p) for p in corpus.problems],
                   "duplicates": [list(d) for d in corpus.duplicates]},
        "counts": {"articles": len(corpus.articles), "chunks": len(chunks), "embedded": len(todo),
                   "sentences": 0 if spans is None else len(spans), "sentences_embedded": n_sent_embedded,
                   **({} if neardup is None else {"duplicate_groups": len(groups), "duplicate_articles":
                                                  sum(len(g.members) for g in groups), "near_dup_sketched": n_sketched})},
        "files": files,
    }
    try:
        atomic_write_json(index_dir / MANIFEST, manifest)
    except BaseException:  # e.g. disk full: the previous manifest stays in use; drop the unused data
        if _current_data_dir(index_dir) != data.name:
            shutil.rmtree(data, ignore_errors=True)
        raise
    _remove_stale(index_dir, keep={data.name, *keep})
    stage("write")
    log.info("indexed %d articles, %d chunks in %.1fs", len(corpus.articles), len(chunks), seconds)
    return BuildReport(index_dir, len(corpus.articles), len(chunks), corpus.problems,
                       len(corpus.duplicates), False, seconds, embedded=len(todo), stages=stages,
                       device=getattr(embedder, "device", None))


def load_sentence_cache(index_dir: Path, model: str, fingerprint: str) -> dict[str, np.ndarray]:
    """Sentence vectors of the current index keyed by text hash, when built with the same model."""
    try:
        data = _previous_data(index_dir, model, fingerprint)
        if data is None or not (data / sentence_files.SPANS_FILE).is_file():
            return {}
        with open(data / "articles.jsonl", encoding="utf-8") as f:
            articles = {a.id: a for a in (Article.from_dict(json.loads(line)) for line in f)}
        with open(data / "chunks.jsonl", encoding="utf-8") as f:
            chunks = [Chunk(id=r["id"], article_id=r["article_id"], start=r["start"], end=r["end"], text="")
                      for r in map(json.loads, f)]
        return sentence_files.load_cache(data, chunks, articles)
    except Exception:  # noqa: BLE001 - no usable previous index: embed every sentence
        return {}


def _current_data_dir(index_dir: Path) -> Optional[str]:
    try:
        return read_manifest(index_dir)["data_dir"]
    except Exception:  # noqa: BLE001 - no readable manifest: nothing refers to any data folder
        return None


def _remove_stale(index_dir: Path, keep: set[str]) -> None:
    """Remove what killed or failed builds left: other ``data-*`` (those not in ``keep``) and
    ``.tmp-*`` folders and partial manifest copies (``.manifest.json.tmp-*``)."""
    for p in index_dir.iterdir():
        if p.is_dir() and (p.name.startswith("data-") or p.name.startswith(".tmp-")) and p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)
        elif p.name.startswith(f".{MANIFEST}.tmp-") and p.is_file():
            try:
                p.unlink()
            except OSError:
                pass

