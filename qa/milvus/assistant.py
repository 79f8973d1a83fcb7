"""The :class:`~qa.assistant.Assistant` over a Milvus index: same ``retrieve``, ``ask`` and
``conversation``; passages, articles, vectors and BM25 live in Milvus.

Retrieval per mode:

* ``bm25``: Milvus full-text search (BM25 computed by Milvus from the ``lex`` field).
* ``dense``: Milvus vector search (inner product of normalised vectors = cosine).
* ``hybrid`` with ``milvus_hybrid = "client"`` (default): the project's fusion over the lists
  Milvus returns. With ``fusion = "convex"`` (the default) the BM25 candidates are re-scored with
  the cosine of their stored vectors, exactly as the embedded store does; with ``"rrf"`` the two
  ranked lists are fused by rank. Scores are min-max normalised within each list, never compared
  across engines.
* ``hybrid`` with ``milvus_hybrid = "server"``: Milvus ``hybrid_search`` fuses on the server
  (``RRFRanker(rrf_k)`` for ``fusion = "rrf"``, ``WeightedRanker(1 - w, w)`` otherwise).

Milvus-lite returns BM25 scores negated (as distances) while Milvus servers return them positive:
the lists are used in the order Milvus gives them and scores are taken as ``abs``.
"""
from __future__ import annotations

import functools
import logging
import math
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from ..analyzer import Analyzer
from ..assistant import Assistant
from ..config import Config
from ..errors import IndexNotFoundError
from ..fusion import convex, convex_candidates, rrf
from ..types import Article, Chunk, Hit
from .client import MilvusStore, lex_text, resolve_uri

log = logging.getLogger("qa")

Ranked = list[tuple[int, float]]


class MilvusLexical:
    """BM25 through Milvus, plus the document frequencies the answerer weighs words with."""

    name = "bm25"

    def __init__(self, store: MilvusStore, analyzer: Analyzer, config: Config, n_chunks: int, avg_idf: float):
        self.store, self.analyzer, self.config = store, analyzer, config
        self.k1, self.b = config.bm25_k1, config.bm25_b
        self.size = n_chunks
        self._eps = 0.25 * avg_idf
        self._idf = functools.lru_cache(maxsize=200_000)(self._lookup)

    def query_text(self, query: str) -> str:
        if self.config.milvus_analyzer == "project":
            return lex_text(self.analyzer.tokens(query))
        return query if any(ch.isalnum() for ch in query) else ""

    def search(self, query: str, k: int, *, with_vectors: bool = False) -> list[tuple[int, float, dict]]:
        """``(chunk id, BM25 score, row)`` best first (row: article_id, content_hash, start, end[, vector])."""
        text = self.query_text(query)
        if not text or self.size == 0:
            return []
        fields = ["article_id", "content_hash", "start", "end"] + (["vector"] if with_vectors else [])
        res = self.store.client.search(self.store.chunks, data=[text], anns_field="sparse", limit=min(k, 16384),
                                       search_params={"metric_type": "BM25"}, output_fields=fields)
        return [(int(h["id"]), abs(float(h["distance"])), h["entity"]) for h in res[0]]

    def idf(self, token: str) -> float:
        """IDF of an analyzed token as rank-bm25 computes it (0 for an unknown token)."""
        return self._idf(token)

    def _lookup(self, token: str) -> float:
        df = self.store.document_frequencies([token]).get(token, 0)
        if df == 0 or self.size == 0:
            return 0.0
        v = math.log((self.size - df + 0.5) / (df + 0.5))
        return v if v >= 0 else self._eps

    @property
    def max_idf(self) -> float:
        if self.size == 0:
            return 1.0
        return max(1e-9, math.log((self.size - 1 + 0.5) / 1.5))


class MilvusDense:
    name = "dense"

    def __init__(self, store: MilvusStore, embedder=None):
        self.store = store
        self.embedder = embedder

    def search_vector(self, vec: np.ndarray, k: int, *, with_vectors: bool = False) -> list[tuple[int, float, dict]]:
        fields = ["article_id", "content_hash", "start", "end"] + (["vector"] if with_vectors else [])
        res = self.store.client.search(self.store.chunks, data=[np.asarray(vec, dtype=np.float32).tolist()],
                                       anns_field="vector", limit=min(k, 16384), output_fields=fields,
                                       search_params={"metric_type": "IP"})
        return [(int(h["id"]), float(h["distance"]), h["entity"]) for h in res[0]]


class ArticleView(Mapping):
    """The articles in Milvus as a read-only mapping (fetched on demand, cached by content)."""

    def __init__(self, store: MilvusStore, count: int):
        self.store = store
        self._count = count
        self._cache: dict[str, Article] = {}
        self._lock = threading.Lock()

    def get_many(self, ids, hashes: Optional[dict[str, str]] = None) -> dict[str, Article]:
        hashes = hashes or {}
        need = [i for i in dict.fromkeys(ids)
                if i not in self._cache or (i in hashes and self._cache[i].content_hash != hashes[i])]
        if need:
            fetched = {i: Article.from_dict(d) for i, d in self.store.fetch_articles(need).items()}
            with self._lock:
                if len(self._cache) > 50_000:
                    self._cache.clear()
                self._cache.update(fetched)
        return {i: self._cache[i] for i in ids if i in self._cache}

    def __getitem__(self, key: str) -> Article:
        got = self.get_many([key])
        if key not in got:
            raise KeyError(key)
        return got[key]

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[str]:
        return iter(self.store.article_signatures())


class MilvusAssistant(Assistant):
    """:class:`~qa.assistant.Assistant` whose index is a set of Milvus collections."""

    def __init__(self, store: MilvusStore, manifest: dict, config: Config, embedder=None,
                 index_dir: str | os.PathLike = "index"):
        self._init_common(index_dir, manifest, config, embedder)
        self.store = store
        counts = manifest["counts"]
        self.articles = ArticleView(store, counts["articles"])
        self.chunks = range(counts["chunks"])  # only its length is used; passages are fetched per hit
        self.bm25 = MilvusLexical(store, self.analyzer, config, counts["chunks"], manifest.get("avg_idf", 2.0))
        self.dense = MilvusDense(store, embedder)
        self.vectors = None

    @classmethod
    def load(cls, index_dir: str | os.PathLike = "index", config: Optional[Config] = None, *,
             verify: bool = True, embedder=None) -> "MilvusAssistant":
        from ..store import check_model

        config = config or Config(store="milvus")
        uri = resolve_uri(config, index_dir)
        store = MilvusStore(uri, config.milvus_collection)
        manifest = store.read_meta() if store.exists() else None
        if manifest is None:
            store.close()
            raise IndexNotFoundError(f"no Milvus index {config.milvus_collection}_* at {uri}: run `qa index` "
                                     "with store = \"milvus\" in the config")
        check_model(manifest, config.model)
        if embedder is not None:
            check_model(manifest, embedder.name)
        return cls(store, manifest, config, embedder, index_dir)

    # -- retrieval ----------------------------------------------------------------------------
    def retrieve(self, question: str, k: int = 5, *, mode: Optional[str] = None,
                 fusion: Optional[str] = None, dense_weight: Optional[float] = None,
                 candidates: Optional[int] = None) -> list[Hit]:
        plan = self._plan(question, k, mode, fusion, dense_weight, candidates)
        if plan is None:
            return []
        question, mode, cfg, depth, lex_query = plan
        rows: dict[int, dict] = {}
        lex: Ranked = []
        den: Ranked = []
        convex_client = mode == "hybrid" and cfg.milvus_hybrid == "client" and cfg.fusion == "convex"
        if mode == "hybrid" and cfg.milvus_hybrid == "server":
            qvec = self.embedder.encode([question])[0]
            fused = self._server_hybrid(lex_query, qvec, cfg, depth, rows)
        else:
            if mode in ("hybrid", "bm25"):
                for pk, score, row in self.bm25.search(lex_query, depth, with_vectors=convex_client):
                    lex.append((pk, score))
                    rows[pk] = row
            if mode in ("hybrid", "dense"):
                qvec = self.embedder.encode([question])[0]
                for pk, score, row in self.dense.search_vector(qvec, depth):
                    den.append((pk, score))
                    rows.setdefault(pk, row)
            if mode == "bm25":
                fused = lex
            elif mode == "dense":
                fused = den
            elif cfg.fusion == "rrf":
                fused = rrf([lex, den], k=cfg.rrf_k)
            else:
                fused = self._convex(lex, den, rows, qvec, cfg, k)
        return self._hits(fused, lex, den, rows, k)

    def _convex(self, lex: Ranked, den: Ranked, rows: dict, qvec, cfg: Config, k: int) -> Ranked:
        """BM25 candidates re-scored with the cosine of their stored vectors (as the embedded store)."""
        ids = convex_candidates(lex, den, k)
        if not ids:
            return convex(lex, den, dense_weight=cfg.dense_weight)
        known = dict(den)
        bm = dict(lex)
        dn = []
        for d in ids:
            vec = rows[d].get("vector")
            dn.append(float(np.asarray(vec, dtype=np.float32) @ qvec) if vec is not None else known.get(d, 0.0))
        return convex([(d, bm.get(d, 0.0)) for d in ids], list(zip(ids, dn)), dense_weight=cfg.dense_weight)

    def _server_hybrid(self, lex_query: str, qvec, cfg: Config, depth: int, rows: dict) -> Ranked:
        from pymilvus import AnnSearchRequest, RRFRanker, WeightedRanker

        fields = ["article_id", "content_hash", "start", "end"]
        reqs = [AnnSearchRequest(data=[np.asarray(qvec, dtype=np.float32).tolist()], anns_field="vector",
                                 param={"metric_type": "IP"}, limit=depth)]
        weights = [cfg.dense_weight]
        text = self.bm25.query_text(lex_query)
        if text:
            reqs.insert(0, AnnSearchRequest(data=[text], anns_field="sparse", param={"metric_type": "BM25"},
                                            limit=depth))
            weights.insert(0, 1.0 - cfg.dense_weight)
        ranker = RRFRanker(cfg.rrf_k) if cfg.fusion == "rrf" else WeightedRanker(*weights, norm_score=True)
        res = self.store.client.hybrid_search(self.store.chunks, reqs, ranker=ranker, limit=depth,
                                              output_fields=fields)
        out = []
        for h in res[0]:
            rows[int(h["id"])] = h["entity"]
            out.append((int(h["id"]), float(h["distance"])))
        return out

    def _hits(self, fused: Ranked, lex: Ranked, den: Ranked, rows: dict, k: int) -> list[Hit]:
        lex_rank = {d: (r, s) for r, (d, s) in enumerate(lex, start=1)}
        den_rank = {d: (r, s) for r, (d, s) in enumerate(den, start=1)}
        want = fused[:k + 10]  # a few spare in case an article is being rewritten right now
        arts = self.articles.get_many([rows[d]["article_id"] for d, _ in want],
                                      {rows[d]["article_id"]: rows[d]["content_hash"] for d, _ in want})
        hits: list[Hit] = []
        for doc, score in want:
            row = rows[doc]
            art = arts.get(row["article_id"])
            if art is None or art.content_hash != row["content_hash"]:
                continue  # passages written before their article row (an update in progress)
            chunk = Chunk(id=doc, article_id=art.id, start=int(row["start"]), end=int(row["end"]),
                          text=art.text[int(row["start"]):int(row["end"])])
            lr, dr = lex_rank.get(doc), den_rank.get(doc)
            hits.append(Hit(chunk=chunk, article=art, score=float(score), rank=len(hits) + 1,
                            bm25_rank=lr[0] if lr else None, dense_rank=dr[0] if dr else None,
                            bm25_score=lr[1] if lr else None, dense_score=dr[1] if dr else None))
            if len(hits) == k:
                break
        return hits

    # -- what the embedded assistant reads from its files --------------------------------------
    @functools.cached_property
    def corpus_lang(self) -> str:
        from ..answer import detect_lang

        rows = self.store.client.query(self.store.chunks, filter="", output_fields=["article_id", "start", "end"],
                                       limit=200)
        arts = self.articles.get_many([r["article_id"] for r in rows])
        votes = [detect_lang(arts[r["article_id"]].text[r["start"]:r["end"]]) for r in rows if r["article_id"] in arts]
        return max(set(votes), key=votes.count) if votes else "id"

    def close(self) -> None:
        self.store.close()

    def __repr__(self) -> str:
        return (f"MilvusAssistant(uri={self.store.uri!r}, collection={self.store.prefix!r}, "
                f"articles={len(self.articles)}, chunks={len(self.chunks)}, model={self.config.model!r}, "
                f"mode={self.config.mode!r})")
