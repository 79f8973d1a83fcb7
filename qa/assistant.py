"""The :class:`Assistant`: load an index once, then ``retrieve`` passages (and ``ask``)."""
from __future__ import annotations

import functools
import logging
import os
import threading
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import numpy as np

from .analyzer import Analyzer
from .backends.dense import DenseRetriever, Embedder
from .backends.lexical import BM25Retriever
from .config import MODES, Config
from .errors import ConfigError
from .fusion import convex, convex_candidates, rrf
from .synonyms import expand
from .store import BuildReport, build_index, check_model, load_index
from .types import Answer, Article, Chunk, Hit

log = logging.getLogger("qa")

MAX_QUERY_CHARS = 2000


def check_query(question: Any, k: Any, mode: str) -> str:
    """Validate ``retrieve``'s arguments (any store); returns the question stripped and cut to
    ``MAX_QUERY_CHARS`` (empty when there is nothing to search for)."""
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"k must be a positive integer; got {k!r}")
    if not isinstance(question, str):
        raise TypeError(f"question must be a string, not {type(question).__name__}")
    return question.strip()[:MAX_QUERY_CHARS]


class Assistant:
    """Question answering over a built index.

    >>> assistant = Assistant.load("index")                       # doctest: +SKIP
    >>> hits = assistant.retrieve("Siapa Kalapas Kelas IIB Amuntai?", k=5)  # doctest: +SKIP
    """

    def __init__(self, index_dir: Path, manifest: dict, articles: dict[str, Article], chunks: list[Chunk],
                 tokens: Optional[list[list[str]]], faiss_index: Any, config: Config,
                 embedder: Optional[Embedder] = None, vectors: Any = None, sparse: Any = None):
        self._init_common(index_dir, manifest, config, embedder)
        self.articles = articles
        self.chunks = chunks
        self.bm25 = self._lexical(tokens, sparse)
        self.dense = DenseRetriever(faiss_index, embedder, ef_search=config.hnsw_ef_search)
        self.vectors = vectors

    def _init_common(self, index_dir: Union[str, os.PathLike], manifest: dict, config: Config,
                     embedder: Optional[Embedder]) -> None:
        """The state every store's assistant has (the Milvus one calls this too): settings, the
        analyzer, and the model, answerer and generator, each made on first use."""
        self.index_dir = Path(index_dir)
        self.manifest = manifest
        self.config = config
        self.analyzer = Analyzer(**{k: v for k, v in manifest["analyzer"].items() if k != "version"})
        self._embedder = embedder
        self._embedder_lock = threading.RLock()
        self._answerer = None
        self._generator = None

    def _lexical(self, tokens: Optional[list[list[str]]], sparse: Any) -> BM25Retriever:
        """BM25 with the engine the index was built for (rank-bm25 when the manifest says none)."""
        cfg = self.config
        engine = self.manifest.get("scale", {}).get("lexical_engine", "rank_bm25")
        if sparse is not None and (sparse.k1, sparse.b) == (float(cfg.bm25_k1), float(cfg.bm25_b)):
            return BM25Retriever.from_sparse(sparse, self.analyzer)
        if tokens is None:  # bm25s stored with other k1/b: rebuild its matrix from the tokens
            from .store import load_tokens

            log.info("BM25 k1=%s b=%s differ from the stored bm25s index; rebuilding it in memory",
                     cfg.bm25_k1, cfg.bm25_b)
            tokens = load_tokens(self.index_dir / self.manifest["data_dir"] / "tokens.jsonl")
        return BM25Retriever(tokens, self.analyzer, k1=cfg.bm25_k1, b=cfg.bm25_b, engine=engine)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def load(cls, index_dir: str | os.PathLike = "index", config: Optional[Config] = None, *,
             verify: bool = True, embedder: Optional[Embedder] = None) -> "Assistant":
        """Load a built index.

        ``config`` (default: the settings the index was built with) gives the retrieval
        settings; its model must be the one the index was built with (ModelMismatchError
        otherwise). ``verify`` checks file checksums. The embedding model loads on first use.
        """
        if config is not None and config.store == "milvus":  # collections in Milvus (qa.milvus)
            from .milvus import MilvusAssistant

            return MilvusAssistant.load(index_dir, config, verify=verify, embedder=embedder)
        loaded = load_index(index_dir, verify=verify)
        built = Config.from_dict(loaded.manifest["config"])
        if config is None:
            config = built
        check_model(loaded.manifest, config.model)
        if embedder is not None:
            check_model(loaded.manifest, embedder.name, getattr(embedder, "fingerprint", None))
        return cls(Path(index_dir), loaded.manifest, loaded.articles, loaded.chunks, loaded.tokens,
                   loaded.faiss_index, config, embedder, loaded.vectors, loaded.sparse)

    @classmethod
    def build(cls, corpus_dir: str | os.PathLike = "corpus", index_dir: str | os.PathLike = "index",
              config: Optional[Config] = None, *, progress: bool = True, force: bool = False,
              embedder: Optional[Embedder] = None) -> "Assistant":
        """Build (or bring up to date) the index of ``corpus_dir``, then load it (one model load)."""
        config = config or Config()
        embedder = embedder or Embedder(config.model, device=config.device, batch_size=config.batch_size)
        build_index(corpus_dir, index_dir, config, progress=progress, force=force, embedder=embedder)
        return cls.load(index_dir, config, embedder=embedder)

    @property
    def embedder(self) -> Embedder:
        """The query embedder (loaded lazily, once, thread-safely)."""
        if self._embedder is None:
            with self._embedder_lock:
                return self._load_embedder_locked()
        return self._embedder

    def _load_embedder_locked(self) -> Embedder:
        if self._embedder is None:
            cfg = self.config
            self._embedder = Embedder(cfg.model, device=cfg.device, batch_size=cfg.batch_size)
        self.dense.embedder = self._embedder
        return self._embedder

    # -- retrieval ----------------------------------------------------------------------------
    def retrieve(self, question: str, k: int = 5, *, mode: Optional[str] = None,
                 fusion: Optional[str] = None, dense_weight: Optional[float] = None,
                 candidates: Optional[int] = None) -> list[Hit]:
        """The ``k`` best passages for ``question``, best first.

        ``mode``: ``"hybrid"`` (default from config), ``"bm25"`` or ``"dense"``. ``fusion``,
        ``dense_weight`` and ``candidates`` override the configured hybrid settings for this call.
        """
        plan = self._plan(question, k, mode, fusion, dense_weight, candidates)
        if plan is None:
            return []
        question, mode, cfg, depth, lex_query = plan
        lex = self.bm25.search(lex_query, depth) if mode in ("hybrid", "bm25") else []
        den: list[tuple[int, float]] = []
        qvec = None
        if mode in ("hybrid", "dense"):
            qvec = self.embedder.encode([question])[0]
            den = self.dense.search_vector(qvec, depth)
        if mode == "bm25":
            fused = lex
        elif mode == "dense":
            fused = den
        elif cfg.fusion == "rrf":
            fused = rrf([lex, den], k=cfg.rrf_k)
        else:
            lex_all, den_all = self._exact_scores(lex_query, qvec, lex, den, k)
            fused = convex(lex_all, den_all, dense_weight=cfg.dense_weight)
        lex_rank = {d: (r, s) for r, (d, s) in enumerate(lex, start=1)}
        den_rank = {d: (r, s) for r, (d, s) in enumerate(den, start=1)}
        hits = []
        for rank, (doc, score) in enumerate(fused[:k], start=1):
            chunk = self.chunks[doc]
            lr, dr = lex_rank.get(doc), den_rank.get(doc)
            hits.append(Hit(chunk=chunk, article=self.articles[chunk.article_id], score=float(score), rank=rank,
                            bm25_rank=lr[0] if lr else None, dense_rank=dr[0] if dr else None,
                            bm25_score=lr[1] if lr else None, dense_score=dr[1] if dr else None))
        return hits

    def _plan(self, question: Any, k: Any, mode: Optional[str], fusion: Optional[str],
              dense_weight: Optional[float], candidates: Optional[int]):
        """``retrieve``'s arguments checked and resolved, for every store: ``(question, mode, cfg,
        depth, lex_query)``, or None when the question is empty. ``cfg`` carries this call's
        overrides, ``depth`` is how many candidates each retriever returns, ``lex_query`` the BM25
        query (with abbreviations expanded when configured)."""
        mode = mode or self.config.mode
        question = check_query(question, k, mode)
        if not question:
            return None
        cfg = self.config.replace(fusion=fusion, dense_weight=dense_weight, candidates=candidates)
        lex_query = expand(question) if cfg.expand_abbreviations else question
        return question, mode, cfg, max(cfg.candidates, k), lex_query

    def _exact_scores(self, lex_query: str, qvec, lex, den, k: int):
        """Candidates for convex fusion, each with both retrievers' real scores.

        The candidates (:func:`~qa.fusion.convex_candidates`) are re-scored with the dense
        similarity computed from the stored vectors (a passage outside the dense top list still
        gets its real similarity, not an assumed zero).
        """
        ids = convex_candidates(lex, den, k)
        if not ids:
            return lex, den
        bm = self.bm25.scores_for(self.analyzer.tokens(lex_query), ids)
        if self.vectors is not None:
            dn = np.asarray(self.vectors[ids], dtype=np.float32) @ qvec
        else:
            known = dict(den)
            dn = np.array([known.get(d, 0.0) for d in ids])
        return list(zip(ids, map(float, bm))), list(zip(ids, map(float, dn)))

    # -- answers ------------------------------------------------------------------------------
    @property
    def answerer(self):
        """The extractive answerer over this index (IDF from BM25, similarity from the embedder)."""
        if self._answerer is None:
            from .answer import ExtractiveAnswerer

            with self._embedder_lock:
                if self._answerer is not None:
                    return self._answerer
                embedder = self._load_embedder_locked()
                self._answerer = ExtractiveAnswerer(self.analyzer, self.bm25.idf, embedder.encode,
                                                    threshold=self.config.abstain_threshold, max_idf=self.bm25.max_idf,
                                                    corpus_lang=self.corpus_lang)
        return self._answerer

    @property
    def generator(self):
        """The configured :class:`~qa.answer.AnswerGenerator`: the extractive answerer, or with
        ``answerer = "openai"`` an LLM whose answers are checked against their passages."""
        if self._generator is None:
            from .answer import make_generator

            extractive = self.answerer
            with self._embedder_lock:
                if self._generator is None:
                    self._generator = make_generator(self.config, extractive)
        return self._generator

    @functools.cached_property
    def corpus_lang(self) -> str:
        """Main language of the articles (``"id"`` or ``"en"``), from a sample of passages."""
        from .answer import detect_lang

        step = max(1, len(self.chunks) // 200)
        votes = [detect_lang(c.text) for c in self.chunks[::step]]
        return max(set(votes), key=votes.count) if votes else "id"

    def ask(self, question: str, *, k: Optional[int] = None, mode: Optional[str] = None,
            history: Optional[list] = None) -> "Answer":
        """Answer ``question`` with verbatim quotes from the articles.

        ``history`` (a list of :class:`qa.answer.Turn`, as kept by :meth:`conversation`) lets a
        follow-up question use earlier turns. Returns an :class:`~qa.types.Answer` whose
        ``found`` is False when the passages do not support an answer.
        """
        prepared = self._prepare(question, k=k, mode=mode, history=history)
        if isinstance(prepared, Answer):
            return prepared
        question, hits, lang, query = prepared
        return self.generator.answer(question, hits, lang=lang, query=query)

    def ask_stream(self, question: str, *, k: Optional[int] = None, mode: Optional[str] = None,
                   history: Optional[list] = None) -> Iterator[Union[str, Answer]]:
        """Like :meth:`ask`, streamed: the text pieces an LLM generator writes (none for the
        extractive answerer), then, last, the checked :class:`~qa.types.Answer`."""
        prepared = self._prepare(question, k=k, mode=mode, history=history)
        if isinstance(prepared, Answer):
            yield prepared
            return
        question, hits, lang, query = prepared
        yield from self.generator.stream(question, hits, lang=lang, query=query)

    def _prepare(self, question: str, *, k: Optional[int], mode: Optional[str], history: Optional[list]):
        """(question, hits, lang, query) for answering, or an Answer when there is nothing to ask."""
        from .answer import detect_lang, rewrite

        if not isinstance(question, str):
            raise TypeError(f"question must be a string, not {type(question).__name__}")
        question = question.strip()[:MAX_QUERY_CHARS]
        lang = detect_lang(question)
        if not question:
            from .answer.lang import phrase

            return Answer(question="", text=phrase(lang, "empty"), found=False, lang=lang)
        query = rewrite(question, history or [])
        hits = self.retrieve(query, k=k or self.config.answer_k, mode=mode)
        return question, hits, lang, query

    def known_fraction(self, text: str) -> float:
        """Share of the analyzed words of ``text`` that occur in the index (0.0 when it has none)."""
        tokens = self.analyzer.tokens(text)
        if not tokens:
            return 0.0
        return sum(self.bm25.idf(t) != 0 for t in tokens) / len(tokens)

    def conversation(self) -> "Conversation":
        """A new multi-turn conversation (keeps its own history; one per chat session)."""
        from .answer import Conversation

        return Conversation(self)

    def __len__(self) -> int:
        return len(self.chunks)

    def __repr__(self) -> str:
        return (f"Assistant(index={str(self.index_dir)!r}, articles={len(self.articles)}, "
                f"chunks={len(self.chunks)}, model={self.config.model!r}, mode={self.config.mode!r})")


def build(corpus_dir: str | os.PathLike = "corpus", index_dir: str | os.PathLike = "index",
          config: Optional[Config] = None, **kw: Any) -> BuildReport:
    """Alias of :func:`qa.store.build_index`."""
    return build_index(corpus_dir, index_dir, config, **kw)
