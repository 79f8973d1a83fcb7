"""The retrieval pipeline, the one place where a question becomes ranked passages:

    analyze -> lexical candidates -> dense candidates -> fuse (-> re-rank the head) -> hits

:meth:`qa.Assistant.retrieve`, ``qa eval`` (which times each stage), ``qa tune`` (which fuses the
same candidates under many settings) and the benchmarks all run these stages; the store
(:class:`~qa.stores.base.Store`) answers the searches, so the same code serves every store.

Fusion (``settings.fusion``): ``"convex"`` scores BM25's candidates (plus the dense ones when BM25
found fewer than ``k``, see :func:`~qa.fusion.convex_candidates`) with both retrievers' real
scores (the BM25 score, and the exact cosine of each candidate's stored vector) and mixes their
min-max normalised values with ``dense_weight``; ``"rrf"`` fuses the two lists by rank;
``"adaptive"`` is convex with a weight per question (:mod:`qa.fusion_adaptive`). After convex
fusion, ``settings.rerank == "sentences"`` re-orders the head of the list by each passage's best
stored sentence (:mod:`qa.rerank`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

import numpy as np

from .analyzer import Analyzer
from .config import MODES
from .encoders.cache import VectorCache
from .errors import ConfigError
from .filters import Filter
from .fusion import convex, convex_candidates, rrf
from .fusion_adaptive import SHIPPED, adaptive_weight, shipped_model
from .rerank import features as rerank_features
from .rerank import sentence_cosines, shipped_reranker
from .stores.base import Ranked, Store
from .synonyms import expand
from .types import Hit

MAX_QUERY_CHARS = 2000
SPARE = 10  # passages fetched beyond k, for stores whose articles may be mid-update (Milvus)
FOLD_DEEPER = 2  # with duplicate folding, times the candidates are fetched 4x deeper when fewer than k hits remain


def check_query(question: Any, k: Any, mode: str) -> str:
    """Validate ``retrieve``'s arguments; returns the question stripped and cut to
    ``MAX_QUERY_CHARS`` (empty when there is nothing to search for)."""
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"k must be a positive integer; got {k!r}")
    if not isinstance(question, str):
        raise TypeError(f"question must be a string, not {type(question).__name__}")
    return question.strip()[:MAX_QUERY_CHARS]


@dataclass(frozen=True)
class Query:
    """A question as the retrievers see it: ``text`` for the encoder, ``lexical`` for BM25
    (abbreviations expanded when configured) and its analyzed ``tokens``."""

    text: str
    lexical: str
    tokens: tuple[str, ...]


@dataclass
class Candidates:
    """The candidate lists of one question (empty for a retriever the mode does not use)."""

    lexical: Ranked
    dense: Ranked
    vector: Optional[np.ndarray] = None  # the query vector (dense and hybrid modes)
    fused: Optional[Ranked] = None  # set when the store fused on its side
    tokens: tuple[str, ...] = ()  # the analyzed query (BM25 scores of dense-only passages in a union)
    lexical_index: Any = None  # BM25 with other parameters than the store's (tuning), for those scores
    sentences: Optional[dict] = None  # best/second sentence cosines by passage, kept across fusions (tuning)


QUERY_CACHE = 256


class Pipeline:
    """The stages over one store. ``encoder`` is called to get the query encoder (loaded on first
    use); ``settings`` is anything with the retrieval settings' attributes (a :class:`~qa.Config`)."""

    def __init__(self, store: Store, analyzer: Analyzer, encoder: Callable[[], Any]):
        self.store = store
        self.analyzer = analyzer
        self._encoder = encoder
        self._vectors = VectorCache(QUERY_CACHE)  # recent query vectors (the answerer's too)

    # -- stages -----------------------------------------------------------------------------------
    def query(self, question: str, *, expand_abbreviations: bool = True) -> Query:
        text = question.strip()[:MAX_QUERY_CHARS]
        lexical = expand(text) if expand_abbreviations else text
        return Query(text, lexical, tuple(self.analyzer.tokens(lexical)))

    def lexical(self, q: Query, depth: int, *, index: Any = None, where: Optional[Filter] = None) -> Ranked:
        """BM25 candidates (from ``index``, a :class:`~qa.lexical.LexicalIndex` with other
        parameters, when given); only chunks of articles passing ``where``, when given."""
        if index is not None:
            if where is not None:
                raise ValueError("a filtered search runs on the store's own BM25, not a tuning variant")
            return index.search(q.tokens, depth)
        return self.store.lexical_search(q.tokens, q.lexical, depth, where=where)

    def embed(self, q: Query) -> np.ndarray:
        return self.embed_text(q.text)

    def embed_text(self, text: str) -> np.ndarray:
        """The query vector of ``text`` (read-only; the last ``QUERY_CACHE`` are kept, so that the
        answerer reuses the one retrieval computed)."""
        return self._vectors.get([text], lambda texts: self._encoder().encode_queries(texts))[0]

    def dense(self, vector: np.ndarray, depth: int, *, where: Optional[Filter] = None) -> Ranked:
        return self.store.dense_search(vector, depth, where=where)

    def candidates(self, q: Query, mode: str, settings: Any, depth: int, *,
                   where: Optional[Filter] = None) -> Candidates:
        vector = self.embed(q) if mode in ("hybrid", "dense") else None
        if mode == "hybrid":
            fused = self.store.hybrid_search(q.tokens, q.lexical, vector, settings, depth, where=where)
            if fused is not None:
                return Candidates([], [], vector, fused, q.tokens)
        lex = self.lexical(q, depth, where=where) if mode in ("hybrid", "bm25") else []
        den = self.dense(vector, depth, where=where) if vector is not None else []
        return Candidates(lex, den, vector, None, q.tokens)

    def fuse(self, c: Candidates, mode: str, settings: Any, k: int) -> Ranked:
        """The ranked list for ``mode`` from candidate lists at least ``max(candidates, k)`` deep."""
        if c.fused is not None:
            return c.fused
        if mode == "bm25":
            return list(c.lexical)
        if mode == "dense":
            return list(c.dense)
        if settings.fusion == "rrf":
            return rrf([c.lexical, c.dense], k=settings.rrf_k)
        ranked, dn = self.convex_fuse(c, settings, k)
        if getattr(settings, "rerank", "off") == "sentences" and dn:
            ranked = self.rerank(ranked, c, dn)
        return ranked

    def convex_fuse(self, c: Candidates, settings: Any, k: int) -> tuple[Ranked, dict[int, float]]:
        """Convex fusion (``"convex"`` or ``"adaptive"``): the ranked list and the dense scores it
        mixed, by passage (empty when there were no candidates to score)."""
        w = settings.dense_weight
        if settings.fusion == "adaptive":  # convex with this question's weight (qa/fusion_adaptive.py)
            model = shipped_model(getattr(settings, "fusion_model", "") or SHIPPED)
            w = adaptive_weight(c.lexical, c.dense, len(c.tokens), model)
        ids = convex_candidates(c.lexical, c.dense, k, pool=settings.fusion_pool)
        if not ids:
            return convex(c.lexical, c.dense, dense_weight=w), {}
        bm = self._lexical_scores(c, ids, union=settings.fusion_pool == "union")
        dn = self.store.dense_scores(c.vector, ids) if c.vector is not None else None
        if dn is None:
            known = dict(c.dense)
            dn = [known.get(d, 0.0) for d in ids]
        return convex(list(zip(ids, bm)), list(zip(ids, dn)), dense_weight=w), dict(zip(ids, dn))

    def rerank_features(self, ranked: Ranked, c: Candidates, dn: dict[int, float], depth: int) -> Optional[np.ndarray]:
        """:mod:`qa.rerank`'s features of the first ``depth`` passages of ``ranked`` (``dn``: their dense
        cosines; the BM25 score is the one of BM25's own candidate list, 0 for a passage it did not
        list); None when there is nothing to re-order (fewer than two passages, no query vector, a
        store without sentence vectors)."""
        head = list(ranked[:depth])
        if len(head) < 2 or c.vector is None:
            return None
        ids = [d for d, _ in head]
        cos = sentence_cosines(self.store, c.vector, ids, c.sentences)
        if cos is None:
            return None
        bm = dict(c.lexical)
        return rerank_features([s for _, s in head], [dn.get(d, 0.0) for d in ids], [bm.get(d, 0.0) for d in ids], *cos)

    def rerank(self, ranked: Ranked, c: Candidates, dn: dict[int, float]) -> Ranked:
        """``ranked`` with its head re-ordered by the shipped :class:`~qa.rerank.Reranker`."""
        model = shipped_reranker()
        x = self.rerank_features(ranked, c, dn, model.depth)
        return ranked if x is None else model.rerank(ranked, x)

    def _lexical_scores(self, c: Candidates, ids: list[int], *, union: bool) -> list[float]:
        """BM25 scores of the convex candidates. BM25 returns every chunk with a positive score up to
        its depth: when it returned fewer than k, a passage missing from its list scores 0; in a union
        a dense-only passage gets its real BM25 score when the store can compute it (else 0)."""
        lex = dict(c.lexical)
        missing = [d for d in ids if d not in lex] if union else []
        if missing and c.tokens:
            index = c.lexical_index
            extra = index.scores(c.tokens, missing) if index is not None else \
                self.store.lexical_scores(c.tokens, missing)
            if extra is not None:
                lex.update(zip(missing, extra))
        return [float(lex.get(d, 0.0)) for d in ids]

    def hits(self, ranked: Ranked, c: Candidates, k: int, *, fold: bool = False,
             where: Optional[Filter] = None) -> list[Hit]:
        """``Hit`` objects for the first ``k`` passages of ``ranked`` that the store can show (and
        whose article passes ``where``: the store filtered already; this makes sure). ``fold``:
        a near-duplicate group (one story from several outlets) shows the passages of one member only,
        the best-ranked one, like a single article, with the others in ``also_reported_by``; reads
        further down ``ranked`` for the passages folded away."""
        lex_rank = {d: (r, s) for r, (d, s) in enumerate(c.lexical, start=1)}
        den_rank = {d: (r, s) for r, (d, s) in enumerate(c.dense, start=1)}
        hits: list[Hit] = []
        shown: dict[str, str] = {}  # group representative -> the member whose passages are shown
        pos, step = 0, k + SPARE
        while len(hits) < k and pos < len(ranked):
            want, pos, step = ranked[pos:pos + step], pos + step, 2 * step
            found = self.store.passages([d for d, _ in want])
            for doc, score in want:
                if doc not in found or len(hits) == k:
                    continue
                chunk, article = found[doc]
                if where is not None and not where.matches(article):
                    continue
                group = self.store.duplicates(article.id) if fold else None
                if group is not None and shown.setdefault(group.representative, article.id) != article.id:
                    continue
                lr, dr = lex_rank.get(doc), den_rank.get(doc)
                hits.append(Hit(chunk=chunk, article=article, score=float(score), rank=len(hits) + 1,
                                bm25_rank=lr[0] if lr else None, dense_rank=dr[0] if dr else None,
                                bm25_score=lr[1] if lr else None, dense_score=dr[1] if dr else None))
                if group is not None:
                    others = (self.store.articles.get(m) for m in group.members if m != article.id)
                    hits[-1].also_reported_by = tuple(a for a in others if a is not None)
                    hits[-1].representative_id = group.representative
            if not fold:
                break
        return hits

    def story(self, article_id: str) -> str:
        """The id a story goes by: the representative of the article's near-duplicate group (the same
        story from several outlets, found at build), else the article's own id."""
        group = self.store.duplicates(article_id)
        return group.representative if group is not None else article_id

    def article_ranking(self, ranked: Ranked, n_chunks: int, k: int, *, fold: bool = False) -> list[str]:
        """The top ``k`` distinct articles of the first ``n_chunks`` passages (an article ranks where
        its best passage does). ``fold``: near-duplicate articles count once, as one story listed
        under :meth:`story` (what ``retrieve`` shows with ``fold_duplicates``)."""
        ids = self.store.article_ids([d for d, _ in ranked[:n_chunks]])
        return dedupe_articles([self.story(a) for a in ids] if fold else ids, k)

    # -- all stages -------------------------------------------------------------------------------
    def retrieve(self, question: str, k: int, mode: str, settings: Any, *,
                 where: Optional[Filter] = None) -> list[Hit]:
        """The ``k`` best passages for ``question`` (see :meth:`qa.Assistant.retrieve`); only from
        articles passing ``where``, when given."""
        text = check_query(question, k, mode)
        if not text:
            return []
        q = self.query(text, expand_abbreviations=settings.expand_abbreviations)
        depth = max(settings.candidates, k)
        fold = getattr(settings, "fold_duplicates", False)
        for _ in range(FOLD_DEEPER + 1):
            c = self.candidates(q, mode, settings, depth, where=where)
            hits = self.hits(self.fuse(c, mode, settings, k), c, k, fold=fold, where=where)
            # folding took passages away: look deeper while the retrievers had more to give
            if len(hits) == k or not fold or max(len(c.lexical), len(c.dense), len(c.fused or ())) < depth:
                break
            depth *= 4
        return hits


def dedupe_articles(article_ids: Iterable[str], k: int) -> list[str]:
    """The first ``k`` distinct article ids, in order of first occurrence."""
    out: list[str] = []
    seen: set[str] = set()
    for a in article_ids:
        if a not in seen:
            seen.add(a)
            out.append(a)
            if len(out) == k:
                break
    return out


def describe(settings: dict[str, Any]) -> str:
    """A short human description: ``hybrid convex w=0.3 cand=100 k1=1.5 b=0.75``."""
    s = settings
    bm25 = f"k1={s['bm25_k1']} b={s['bm25_b']}"
    chunk = f" chunk={s['chunk_size']}" if "chunk_size" in s else ""
    if s["mode"] == "bm25":
        return f"bm25 {bm25}{chunk}"
    if s["mode"] == "dense":
        return f"dense{chunk}"
    pool = " union" if s.get("fusion_pool") == "union" else ""
    fusion = {"convex": f"convex{pool} w={s['dense_weight']}", "rrf": f"rrf k={s.get('rrf_k')}"}.get(
        s["fusion"], f"{s['fusion']}{pool}")
    rerank = " rerank" if s.get("rerank") == "sentences" and s["fusion"] in ("convex", "adaptive") else ""
    return f"hybrid {fusion}{rerank} cand={s['candidates']} {bm25}{chunk}"


__all__ = ["Candidates", "MAX_QUERY_CHARS", "Pipeline", "Query", "check_query", "dedupe_articles", "describe"]
