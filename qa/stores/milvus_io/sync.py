"""Build or bring up to date the Milvus index of a corpus (``qa index`` with ``store = "milvus"``).

Incremental like the embedded store: articles are compared by a signature of their text and
metadata; removed and changed articles are deleted, new and changed ones are chunked, embedded
(vectors of unchanged passage texts are reused from the collection) and inserted. Milvus has no
transactions, so the order makes a crash harmless: an article's passages are written before its
article row, the article row marks it complete, and the manifest (with the corpus fingerprint) is
written last; the next ``qa index`` redoes whatever a crash left unfinished.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np

from ...analyzer import Analyzer
from ...config import Config
from ...errors import EmptyCorpusError, ModelMismatchError
from ...filters import normalize_source
from ...ingest import Corpus, load_corpus
from ...types import Article
from ..base import BuildReport
from ..passages import chunk_article, corpus_fingerprint, index_text, text_hash
from .client import BATCH, FILTER_FIELDS, MAX_VARCHAR, MilvusCollections, clip_utf8, lex_text, resolve_uri

log = logging.getLogger("qa")

FORMAT = 2  # 2: chunk rows carry the article's source and date (for filters); 1 lacked them
# Settings whose change means the collections must be rebuilt.
REBUILD_KEYS = ("model", "chunk_size", "chunk_overlap", "stopwords", "stemming", "title_in_index",
                "milvus_analyzer", "milvus_dense_index", "bm25_k1", "bm25_b")

# A passage to embed and index: its row without the vector and the text the embedder sees.
Record = dict[str, Any]
# embed(records) -> the same records in batches, each record with "vector" (list of floats).
EmbedFn = Callable[[list[Record]], Iterator[list[Record]]]


def article_sig(a: Article) -> str:
    d = a.to_dict()
    d.pop("path", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]


def chunk_pk(article_id: str, content_hash: str, start: int, end: int) -> int:
    h = hashlib.sha256(f"{article_id}\x00{content_hash}\x00{start}\x00{end}".encode()).digest()
    return int.from_bytes(h[:8], "big") & ((1 << 63) - 1)


def filter_values(a: Article) -> dict[str, str]:
    """The article's ``source`` (normalised) and ``date`` as its chunk rows carry them ("" when unknown).
    They are part of :func:`article_sig`, so a change of source or date alone rewrites the rows."""
    return {"source": clip_utf8(normalize_source(a.source), FILTER_FIELDS["source"]),
            "date": clip_utf8(a.date or "", FILTER_FIELDS["date"])}


def passage_records(a: Article, config: Config, analyzer: Analyzer) -> list[Record]:
    """The passages of an article as chunk rows (no vector yet), with ``_text`` (what is embedded)
    and ``_terms`` (its distinct analyzer tokens, for the document frequencies)."""
    out = []
    meta = filter_values(a)
    for s, e in chunk_article(a, config):
        text = index_text(a.text[s:e], a, config)
        tokens = analyzer.tokens(text)
        lex = lex_text(tokens) if config.milvus_analyzer == "project" else text
        out.append({"id": chunk_pk(a.id, a.content_hash, s, e), "article_id": a.id, "content_hash": a.content_hash,
                    "start": s, "end": e, "embed_hash": text_hash(text), "lex": clip_utf8(lex), **meta,
                    "_text": text, "_terms": sorted(set(tokens))})
    return out


def local_embedder(embedder, batch: int = 256, progress: bool = False) -> EmbedFn:
    """An :data:`EmbedFn` over an :class:`~qa.encoders.sentence_transformers.Embedder` in this process."""
    def run(records: list[Record]) -> Iterator[list[Record]]:
        bar = None
        if progress and len(records) > batch:
            from tqdm import tqdm

            bar = tqdm(total=len(records), desc="embedding", unit="passage")
        for i in range(0, len(records), batch):
            group = records[i:i + batch]
            vecs = embedder.encode_passages([r["_text"] for r in group])
            for r, v in zip(group, vecs):
                r["vector"] = v
            if bar:
                bar.update(len(group))
            yield group
        if bar:
            bar.close()
    return run


def build_milvus(corpus_dir: str | os.PathLike = "corpus", index_dir: str | os.PathLike = "index",
                 config: Optional[Config] = None, *, progress: bool = True, force: bool = False,
                 embedder=None, corpus: Optional[Corpus] = None, embed: Optional[EmbedFn] = None,
                 dimension: Optional[int] = None) -> BuildReport:
    """Index ``corpus_dir`` into the Milvus collections of ``config`` (see :func:`sync`).

    ``embed`` (e.g. :func:`qa.stores.milvus_io.ray_ingest.ray_embedder`) replaces the in-process embedder;
    then ``dimension`` must be given.
    """
    t0 = time.perf_counter()
    config = config or Config(store="milvus")
    corpus = corpus if corpus is not None else load_corpus(corpus_dir, progress=progress)
    if not corpus.articles:
        reasons = "; ".join(str(p) for p in corpus.problems[:5])
        raise EmptyCorpusError(f"no readable article in {corpus_dir}" + (f" ({reasons})" if reasons else ""))
    if embed is None:
        from ...encoders import make_encoder

        embedder = embedder or make_encoder(config.model, device=config.device, batch_size=config.batch_size)
        if embedder.name != config.model:
            raise ModelMismatchError(f"embedder {embedder.name!r} differs from the configured model {config.model!r}")
        embed, dimension = local_embedder(embedder, progress=progress), embedder.dimension
    elif not dimension:
        raise ValueError("build_milvus(embed=...) needs dimension= (the embedding size)")
    store = MilvusCollections(resolve_uri(config, index_dir), config.milvus_collection)
    try:
        articles, chunks, embedded, skipped = sync(store, corpus, config, embed, dimension, force=force,
                                                    folder=str(corpus_dir), t0=t0)
    finally:
        store.close()
    return BuildReport(Path(index_dir), articles, chunks, corpus.problems, len(corpus.duplicates), skipped,
                       time.perf_counter() - t0, embedded=embedded)


def sync(store: MilvusCollections, corpus: Corpus, config: Config, embed: EmbedFn, dimension: int, *,
         force: bool = False, folder: str = "", t0: Optional[float] = None) -> tuple[int, int, int, bool]:
    """Make the collections hold exactly ``corpus``; returns (articles, chunks, embedded, skipped)."""
    t0 = t0 or time.perf_counter()
    fingerprint = corpus_fingerprint(corpus, config) + f"/{config.milvus_analyzer}/{config.milvus_dense_index}"
    meta = store.read_meta() if store.exists() else None
    settings = {k: getattr(config, k) for k in REBUILD_KEYS}
    if meta is not None and (force or meta.get("format") != FORMAT or meta.get("settings") != settings
                             or meta.get("model", {}).get("dimension") != dimension):
        log.info("rebuilding the Milvus collections %s_* (%s)", store.prefix,
                 "forced" if force else "build settings changed")
        store.drop()
        meta = None
    if meta is not None and meta.get("corpus", {}).get("fingerprint") == fingerprint:
        log.info("Milvus index %s_* at %s is up to date; nothing to do", store.prefix, store.uri)
        return meta["counts"]["articles"], meta["counts"]["chunks"], 0, True
    store.create(dimension=dimension, config=config)

    analyzer = Analyzer(stopwords=config.stopwords, stemming=config.stemming)
    stored = store.article_signatures()
    current = {a.id: a for a in corpus.articles}
    sigs = {a.id: article_sig(a) for a in corpus.articles}
    removed = [i for i in stored if i not in current]
    changed = [i for i in stored if i in current and stored[i] != sigs[i]]
    added = [i for i in current if i not in stored]
    log.info("Milvus sync: %d new, %d changed, %d removed, %d unchanged articles", len(added), len(changed),
             len(removed), len(stored) - len(removed) - len(changed))

    # Old passages of removed and changed articles: their terms leave the statistics; their
    # vectors are kept for reuse (a changed article's unchanged passages are not embedded again).
    delta: Counter = Counter()
    cache: dict[str, Any] = {}
    old = list(removed) + list(changed)
    if old:
        old_articles = store.fetch_articles(old)
        for row in store.chunk_rows(old, ["article_id", "start", "end", "embed_hash", "vector"]):
            art = old_articles.get(row["article_id"])
            if art is None:
                continue
            a = Article.from_dict(art)
            delta.subtract(set(analyzer.tokens(index_text(a.text[row["start"]:row["end"]], a, config))))
            cache[row["embed_hash"]] = row["vector"]
    # Added ones too: a crash may have left passages of an article whose row was never written.
    store.delete_articles(old + added)

    changed_set = set(changed)
    todo_ids = [i for i in current if i in changed_set or i not in stored]
    embedded = 0
    pending: dict[str, int] = {}
    records: list[Record] = []
    for aid in todo_ids:
        recs = passage_records(current[aid], config, analyzer)
        pending[aid] = len(recs)
        records.extend(recs)
        for r in recs:
            delta.update(r["_terms"])
    empty = [aid for aid in todo_ids if pending[aid] == 0]  # no passage at all (blank text)
    ready = [r for r in records if r["embed_hash"] in cache]
    for r in ready:
        r["vector"] = cache[r["embed_hash"]]
    to_embed = [r for r in records if r["embed_hash"] not in cache]
    done_articles = 0

    def write(group: list[Record]) -> None:
        nonlocal done_articles
        rows = [{k: (np.asarray(v, dtype=np.float32).tolist() if k == "vector" else v)
                 for k, v in r.items() if not k.startswith("_")} for r in group]
        store.insert_chunks(rows)
        finished = []
        for r in group:
            pending[r["article_id"]] -= 1
            if pending[r["article_id"]] == 0:
                finished.append(r["article_id"])
        if finished:
            store.insert_articles((current[i].to_dict() for i in finished), sigs)
            done_articles += len(finished)

    for group in (ready[i:i + BATCH] for i in range(0, len(ready), BATCH)):
        write(list(group))
    for group in embed(to_embed):
        embedded += len(group)
        write(group)
    if empty:
        store.insert_articles((current[i].to_dict() for i in empty), sigs)
    store.add_document_frequencies(dict(delta))
    store.flush()
    n_articles = store.count(store.articles, "part == 0")
    n_chunks = store.count(store.chunks)
    seconds = time.perf_counter() - t0
    avg_idf = (meta or {}).get("avg_idf") if stored else None
    if avg_idf is None:  # a full build: the mean IDF over the vocabulary, as rank-bm25 computes it
        dfs = [d for d in delta.values() if d > 0]
        avg_idf = float(np.mean([math.log((n_chunks - d + 0.5) / (d + 0.5)) for d in dfs])) if dfs else 1.0
    groups = duplicate_groups(corpus, config)
    store.write_meta({
        "duplicates": groups,
        "format": FORMAT, "settings": settings, "avg_idf": avg_idf,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "build_seconds": round(seconds, 3),
        "model": {"name": config.model, "dimension": dimension, "normalized": True},
        "analyzer": analyzer.settings(), "milvus_analyzer": config.milvus_analyzer,
        "config": config.manifest_dict(),
        "corpus": {"folder": folder, "fingerprint": fingerprint, "problems": len(corpus.problems),
                   "duplicates": len(corpus.duplicates)},
        "counts": {"articles": n_articles, "chunks": n_chunks, "embedded": embedded,
                   "duplicate_groups": len(groups or ())},
    })
    log.info("Milvus index %s_* at %s: %d articles, %d chunks (%d embedded) in %.1fs", store.prefix, store.uri,
             n_articles, n_chunks, embedded, seconds)
    return n_articles, n_chunks, embedded, False


def duplicate_groups(corpus: Corpus, config: Config) -> Optional[list[list[str]]]:
    """The near-duplicate groups of the corpus as member id lists (the representative first), kept in the
    manifest row; None when ``near_duplicates`` is off or they would not fit in it (results then not folded).
    Unlike the embedded index, every article is sketched again on each sync."""
    if not config.near_duplicates:
        return None
    from ...ingest.neardup import find_groups

    groups = [list(g.members) for g in find_groups(corpus.articles)]
    if len(json.dumps(groups, ensure_ascii=False).encode("utf-8")) > MAX_VARCHAR // 2:
        log.warning("%d near-duplicate groups do not fit in the Milvus manifest row: results are not folded",
                    len(groups))
        return None
    return groups
