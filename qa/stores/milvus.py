"""The Milvus store (``store = "milvus"``): passages, articles, vectors and BM25 in Milvus
collections (milvus-lite, Standalone or Distributed), through pymilvus's ``MilvusClient``. Needs
the extra ``milvus``; collections and writes in :mod:`.milvus_io`. See docs/scale-out.md.

* lexical search: Milvus full-text search (BM25 computed by Milvus from the ``lex`` field);
* dense search: Milvus vector search (inner product of normalised vectors = cosine);
* exact dense scores (convex fusion): the stored vectors of the candidates, fetched by id;
* ``milvus_hybrid = "server"``: Milvus ``hybrid_search`` fuses on the server
  (``RRFRanker(rrf_k)`` for ``fusion = "rrf"``, ``WeightedRanker(1 - w, w)`` otherwise).

Filters (``where``) become a Milvus ``filter`` expression on the chunk rows' ``source``, ``date``
and ``article_id`` fields (:func:`~.milvus_io.client.filter_expression`), so Milvus searches only
the allowed passages. Collections written before those fields existed (format 1) still open and
search; a filter on source or date raises :class:`~.milvus_io.client.MilvusStoreError` asking for a
rebuild (``qa index --force``), while a filter on article ids alone still works (no fallback that
could return fewer than ``k`` passages or ones outside the filter).

Milvus-lite returns BM25 scores negated (as distances) while Milvus servers return them positive:
the lists are used in the order Milvus gives them and scores are taken as ``abs``. Chunk ids are
stable hashes of (article, content, offsets), so what a search returned about an id never changes:
rows are cached by id.
"""
from __future__ import annotations

import functools
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from ..config import Config
from ..errors import IndexNotFoundError
from ..filters import Filter
from ..types import Article, Chunk, DuplicateGroup
from .base import Ranked, StoreStats
from .milvus_io.client import (FILTER_FIELDS, MilvusCollections, MilvusStoreError, filter_expression, in_filter,
                                lex_text, resolve_uri)

ROW_FIELDS = ["article_id", "content_hash", "start", "end"]


class ArticleView(Mapping):
    """The articles in Milvus as a read-only mapping (fetched on demand, cached by content)."""

    def __init__(self, collections: MilvusCollections, count: int):
        self.collections = collections
        self._count = count
        self._cache: dict[str, Article] = {}
        self._lock = threading.Lock()

    def get_many(self, ids, hashes: Optional[dict[str, str]] = None) -> dict[str, Article]:
        hashes = hashes or {}
        wanted = list(dict.fromkeys(ids))
        with self._lock:  # another thread may clear the cache between a check and a read
            have = {i: self._cache[i] for i in wanted if i in self._cache}
        need = [i for i in wanted if i not in have or (i in hashes and have[i].content_hash != hashes[i])]
        if need:
            fetched = {i: Article.from_dict(d) for i, d in self.collections.fetch_articles(need).items()}
            with self._lock:
                if len(self._cache) > 50_000:
                    self._cache.clear()
                self._cache.update(fetched)
            have.update(fetched)
        return {i: have[i] for i in wanted if i in have}

    def __getitem__(self, key: str) -> Article:
        got = self.get_many([key])
        if key not in got:
            raise KeyError(key)
        return got[key]

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[str]:
        return iter(self.collections.article_signatures())


class _RowCache:
    """Chunk rows (and vectors) by id, most recent kept; thread-safe."""

    def __init__(self, size: int = 100_000):
        self.size = size
        self._rows: OrderedDict[int, dict] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, pk: int, row: dict) -> None:
        with self._lock:
            old = self._rows.get(pk)
            self._rows[pk] = {**old, **row} if old else dict(row)
            self._rows.move_to_end(pk)
            while len(self._rows) > self.size:
                self._rows.popitem(last=False)

    def get(self, pk: int) -> Optional[dict]:
        with self._lock:
            return self._rows.get(pk)


class MilvusStore:
    """:class:`~qa.stores.base.Store` over the Milvus collections of one index."""

    kind = "milvus"

    def __init__(self, collections: MilvusCollections, manifest: dict, config: Config):
        self.collections = collections
        self.manifest = manifest
        self.config = config
        counts = manifest["counts"]
        self.size = counts["chunks"]
        self.articles = ArticleView(collections, counts["articles"])
        self._eps = 0.25 * manifest.get("avg_idf", 2.0)
        self._idf = functools.lru_cache(maxsize=200_000)(self._lookup_idf)
        self._rows = _RowCache()
        self.filterable = set(FILTER_FIELDS) <= collections.chunk_fields()  # False: built before filters
        self._groups = {m: DuplicateGroup(ms[0], tuple(ms), ()) for ms in manifest.get("duplicates") or ()
                        for m in ms}

    @classmethod
    def open(cls, index_dir: str | os.PathLike, config: Config) -> "MilvusStore":
        uri = resolve_uri(config, index_dir)
        collections = MilvusCollections(uri, config.milvus_collection)
        manifest = collections.read_meta() if collections.exists() else None
        if manifest is None:
            collections.close()
            raise IndexNotFoundError(f"no Milvus index {config.milvus_collection}_* at {uri}: run `qa index` "
                                     "with store = \"milvus\" in the config")
        return cls(collections, manifest, config)

    def __len__(self) -> int:
        return self.size

    # -- BM25 statistics (for the answerer) ------------------------------------------------------
    def idf(self, token: str) -> float:
        """IDF of an analyzed token as rank-bm25 computes it (0 for an unknown token)."""
        return self._idf(token)

    def _lookup_idf(self, token: str) -> float:
        df = self.collections.document_frequencies([token]).get(token, 0)
        if df == 0 or self.size == 0:
            return 0.0
        v = math.log((self.size - df + 0.5) / (df + 0.5))
        return v if v >= 0 else self._eps

    @property
    def max_idf(self) -> float:
        if self.size == 0:
            return 1.0
        return max(1e-9, math.log((self.size - 1 + 0.5) / 1.5))

    # -- search -----------------------------------------------------------------------------------
    def _lex_text(self, tokens: Sequence[str], query: str) -> str:
        if self.config.milvus_analyzer == "project":
            return lex_text(tokens)
        return query if any(ch.isalnum() for ch in query) else ""

    def _expr(self, where: Optional[Filter]) -> str:
        """The Milvus filter expression of ``where`` ("" for none); see the module docstring for
        collections built before filters."""
        if where is None or where.empty:
            return ""
        if (where.sources or where.date_from or where.date_to) and not self.filterable:
            raise MilvusStoreError(
                f"{self.collections.chunks} at {self.collections.uri} was built before filters (its passages have no "
                "source or date): rebuild it with `qa index --force` to filter by source or date")
        return filter_expression(where)

    def _search(self, data: list, field: str, metric: str, depth: int, expr: str = "") -> Ranked:
        res = self.collections.client.search(self.collections.chunks, data=data, anns_field=field, filter=expr,
                                             limit=min(depth, 16384), search_params={"metric_type": metric},
                                             output_fields=ROW_FIELDS)
        return self._ranked(res[0])

    def _ranked(self, found) -> Ranked:
        """(id, score) of a search's hits, their rows cached by id."""
        out = []
        for h in found:
            self._rows.put(int(h["id"]), h["entity"])
            out.append((int(h["id"]), float(h["distance"])))
        return out

    def lexical_search(self, tokens: Sequence[str], query: str, depth: int, where: Optional[Filter] = None) -> Ranked:
        expr = self._expr(where)
        text = self._lex_text(tokens, query)
        if not text or self.size == 0:
            return []
        return [(pk, abs(s)) for pk, s in self._search([text], "sparse", "BM25", depth, expr)]

    def dense_search(self, vector: np.ndarray, depth: int, where: Optional[Filter] = None) -> Ranked:
        expr = self._expr(where)
        return self._search([np.asarray(vector, dtype=np.float32).tolist()], "vector", "IP", depth, expr)

    def lexical_scores(self, tokens: Sequence[str], ids: Sequence[int]) -> Optional[list[float]]:
        return None  # Milvus scores BM25 only inside a search: a passage outside its list scores 0

    def dense_scores(self, vector: np.ndarray, ids: Sequence[int]) -> Optional[list[float]]:
        need = [i for i in ids if "vector" not in (self._rows.get(i) or {})]
        for group in (need[i:i + 1000] for i in range(0, len(need), 1000)):
            for r in self.collections.client.query(self.collections.chunks, filter=in_filter("id", list(group)),
                                                   output_fields=ROW_FIELDS + ["vector"]):
                self._rows.put(int(r["id"]), r)
        out = []
        for i in ids:
            row = self._rows.get(i) or {}
            vec = row.get("vector")
            out.append(float(np.asarray(vec, dtype=np.float32) @ vector) if vec is not None else 0.0)
        return out

    def hybrid_search(self, tokens: Sequence[str], query: str, vector: np.ndarray, config: Any,
                      depth: int, where: Optional[Filter] = None) -> Optional[Ranked]:
        if config.milvus_hybrid != "server" or config.fusion == "adaptive":  # adaptive needs both lists here
            return None
        from pymilvus import AnnSearchRequest, RRFRanker, WeightedRanker

        expr = self._expr(where)
        reqs = [AnnSearchRequest(data=[np.asarray(vector, dtype=np.float32).tolist()], anns_field="vector",
                                 param={"metric_type": "IP"}, limit=depth, expr=expr)]
        weights = [config.dense_weight]
        text = self._lex_text(tokens, query)
        if text:
            reqs.insert(0, AnnSearchRequest(data=[text], anns_field="sparse", param={"metric_type": "BM25"},
                                            limit=depth, expr=expr))
            weights.insert(0, 1.0 - config.dense_weight)
        ranker = RRFRanker(config.rrf_k) if config.fusion == "rrf" else WeightedRanker(*weights, norm_score=True)
        res = self.collections.client.hybrid_search(self.collections.chunks, reqs, ranker=ranker, limit=depth,
                                                    output_fields=ROW_FIELDS)
        return self._ranked(res[0])

    def lexical_variant(self, k1: float, b: float):
        """None unless ``(k1, b)`` are the collection's: Milvus fixes BM25's parameters when the
        collection is created (changing them rebuilds it)."""
        return None

    # -- records ----------------------------------------------------------------------------------
    def _row(self, pk: int) -> dict:
        row = self._rows.get(pk)
        if row is None:
            for r in self.collections.client.query(self.collections.chunks, filter=in_filter("id", [pk]),
                                                   output_fields=ROW_FIELDS):
                self._rows.put(int(r["id"]), r)
            row = self._rows.get(pk)
        if row is None:
            raise KeyError(pk)
        return row

    def passages(self, ids: Sequence[int]) -> dict[int, tuple[Chunk, Article]]:
        rows = {pk: self._row(pk) for pk in ids}
        arts = self.articles.get_many([r["article_id"] for r in rows.values()],
                                      {r["article_id"]: r["content_hash"] for r in rows.values()})
        out = {}
        for pk, row in rows.items():
            art = arts.get(row["article_id"])
            if art is None or art.content_hash != row["content_hash"]:
                continue  # passages written before their article row (an update in progress)
            s, e = int(row["start"]), int(row["end"])
            out[pk] = (Chunk(id=pk, article_id=art.id, start=s, end=e, text=art.text[s:e]), art)
        return out

    def article_ids(self, ids: Sequence[int]) -> list[str]:
        return [self._row(pk)["article_id"] for pk in ids]

    def duplicates(self, article_id: str) -> Optional[DuplicateGroup]:
        """The article's near-duplicate group, from the manifest row (no pairs: see ``qa index``'s sync)."""
        return self._groups.get(article_id)

    def sentence_vectors(self, chunk_id: int) -> None:
        return None  # not stored in Milvus: the answerer embeds the sentences it reads

    def sample_texts(self, n: int) -> list[str]:
        rows = self.collections.client.query(self.collections.chunks, filter="",
                                             output_fields=["article_id", "start", "end"], limit=n)
        arts = self.articles.get_many([r["article_id"] for r in rows])
        return [arts[r["article_id"]].text[r["start"]:r["end"]] for r in rows if r["article_id"] in arts]

    def stats(self) -> StoreStats:
        return StoreStats(kind=self.kind, location=f"{self.collections.uri} ({self.collections.prefix}_*)",
                          articles=len(self.articles), chunks=self.size, model=self.manifest["model"]["name"],
                          dimension=self.manifest["model"]["dimension"], lexical_engine="milvus-bm25",
                          dense_index=self.config.milvus_dense_index)

    def close(self) -> None:
        self.collections.close()

    def __repr__(self) -> str:
        return (f"MilvusStore(uri={self.collections.uri!r}, collection={self.collections.prefix!r}, "
                f"articles={len(self.articles)}, chunks={self.size})")
