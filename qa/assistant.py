"""The :class:`Assistant`: one store, one retrieval pipeline, one answerer.

    Assistant ── Pipeline (qa.retrieval) ── Store (qa.stores: embedded | milvus)
         └────── Answerer (qa.answer: extractive | LLM)

Load an index once, then ``retrieve`` passages and ``ask`` questions; the same object serves every
store. Multi-turn chat sits on top (:mod:`qa.conversation`).
"""
from __future__ import annotations

import functools
import logging
import os
import threading
import warnings
from collections import Counter
from pathlib import Path
from typing import Iterator, Optional, Union

from .analyzer import Analyzer
from .config import DEFAULT_MODEL, Config
from .encoders.identity import PACKAGED_MODELS
from .encoders import Encoder, make_encoder
from .retrieval import MAX_QUERY_CHARS, Pipeline, check_query
from .stores import BuildReport, Store, build_index, check_model, open_store
from .filters import Filter, FilterLike, normalize_source
from .lexicon import widen
from .types import Answer, Hit

log = logging.getLogger("qa")
MAX_LISTED = 100_000  # articles a store without cheap metadata is read through to list its sources

__all__ = ["Assistant", "MAX_QUERY_CHARS", "check_query"]


class Assistant:
    """Question answering over a built index.

    >>> assistant = Assistant.load("index")                       # doctest: +SKIP
    >>> hits = assistant.retrieve("Siapa Kalapas Kelas IIB Amuntai?", k=5)  # doctest: +SKIP
    """

    def __init__(self, store: Store, config: Config, *, embedder: Optional[Encoder] = None,
                 index_dir: Union[str, os.PathLike] = "index"):
        self.store = store
        self.config = config
        self.index_dir = Path(index_dir)
        self.manifest = store.manifest
        self.analyzer = Analyzer(**{k: v for k, v in self.manifest["analyzer"].items() if k != "version"})
        self._embedder = embedder
        self._lock = threading.RLock()
        self._answerer = None
        self._generator = None
        self._sources: Optional[list[tuple[str, int]]] = None
        self.pipeline = Pipeline(store, self.analyzer, lambda: self.embedder)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def load(cls, index_dir: str | os.PathLike = "index", config: Optional[Config] = None, *,
             verify: bool = True, embedder: Optional[Encoder] = None) -> "Assistant":
        """Load a built index.

        ``config`` (default: the settings the index was built and tuned with) gives the retrieval
        settings and the store (``store = "milvus"`` opens Milvus collections); its model must be
        the one the index was built with (ModelMismatchError otherwise). ``verify`` checks file
        checksums. The embedding model loads on first use.
        """
        if config is None:
            from .stores import read_manifest

            config = Config.from_dict(read_manifest(index_dir)["config"])
        store = open_store(index_dir, config, verify=verify)
        built = store.manifest["model"]["name"]
        if built != DEFAULT_MODEL and built in PACKAGED_MODELS:
            log.info("%s was built with %s; the default model is now %s (multilingual): `qa index --force` "
                     "re-embeds it (docs/encoders.md)", index_dir, built, DEFAULT_MODEL)
        if embedder is not None:
            try:
                check_model(store.manifest, embedder.name, getattr(embedder, "fingerprint", None))
            except Exception:
                store.close()
                raise
        return cls(store, config, embedder=embedder, index_dir=index_dir)

    @classmethod
    def build(cls, corpus_dir: str | os.PathLike = "corpus", index_dir: str | os.PathLike = "index",
              config: Optional[Config] = None, *, progress: bool = True, force: bool = False,
              embedder: Optional[Encoder] = None) -> "Assistant":
        """Build (or bring up to date) the index of ``corpus_dir``, then load it (one model load)."""
        config = config or Config()
        embedder = embedder or make_encoder(config.model, device=config.device, batch_size=config.batch_size)
        build_index(corpus_dir, index_dir, config, progress=progress, force=force, embedder=embedder)
        return cls.load(index_dir, config, embedder=embedder)

    @property
    def embedder(self) -> Encoder:
        """The query encoder (loaded lazily, once, thread-safely)."""
        if self._embedder is None:
            with self._lock:
                if self._embedder is None:
                    cfg = self.config
                    self._embedder = make_encoder(cfg.model, device=cfg.device, batch_size=cfg.batch_size)
        return self._embedder

    @property
    def articles(self):
        """The indexed articles, a read-only mapping id -> :class:`~qa.types.Article`."""
        return self.store.articles

    # -- retrieval ----------------------------------------------------------------------------
    def retrieve(self, question: str, k: int = 5, *, mode: Optional[str] = None,
                 fusion: Optional[str] = None, dense_weight: Optional[float] = None,
                 candidates: Optional[int] = None, filter: FilterLike = None,
                 fold_duplicates: Optional[bool] = None) -> list[Hit]:
        """The ``k`` best passages for ``question``, best first.

        ``mode``: ``"hybrid"`` (default from config), ``"bm25"`` or ``"dense"``. ``fusion``,
        ``dense_weight`` and ``candidates`` override the configured hybrid settings for this call.
        ``filter``: only passages of articles passing it, a :class:`~qa.Filter` or a dict with its
        fields (``{"source": "ANTARA", "date_from": "2021-07"}``); ``k`` come back when ``k`` match.
        ``fold_duplicates`` (default from config: true) shows one story once, the near-duplicate
        articles of other outlets in its ``also_reported_by``.
        """
        where = Filter.of(filter)
        settings = self.config.replace(fusion=fusion, dense_weight=dense_weight, candidates=candidates,
                                       fold_duplicates=fold_duplicates)
        return self.pipeline.retrieve(question, k, mode or self.config.mode, settings, where=where)

    def sources(self) -> list[tuple[str, int]]:
        """The outlets of the indexed articles (``Article.source``, as first written) with their article
        counts, most articles first: the choices of a source filter. Empty for a store of more than
        ``MAX_LISTED`` articles that cannot list metadata cheaply."""
        if self._sources is None:
            arts = self.store.articles
            if hasattr(arts, "metadata"):
                rows = ((aid, src) for aid, src, _ in arts.metadata())
            elif isinstance(arts, dict) or len(arts) <= MAX_LISTED:
                rows = ((a.id, a.source) for a in arts.values())
            else:
                rows = iter(())
            names: dict[str, str] = {}
            counts: Counter = Counter()
            for _, src in rows:
                key = normalize_source(src)
                if key:
                    names.setdefault(key, " ".join(src.split()))
                    counts[key] += 1
            self._sources = [(names[key], n) for key, n in sorted(counts.items(), key=lambda x: (-x[1], x[0]))]
        return list(self._sources)

    def known_fraction(self, text: str) -> float:
        """Share of the analyzed words of ``text`` that occur in the index (0.0 when it has none)."""
        tokens = self.analyzer.tokens(text)
        if not tokens:
            return 0.0
        return sum(self.store.idf(t) != 0 for t in tokens) / len(tokens)

    # -- answers ------------------------------------------------------------------------------
    def _stored_sentences(self, hit: Hit):
        """The index's sentence vectors of a retrieved passage (None for a passage it does not hold)."""
        try:
            if hit.chunk.id < 0 or self.store.article_ids([hit.chunk.id])[0] != hit.article.id:
                return None
        except (IndexError, KeyError, TypeError):
            return None
        return self.store.sentence_vectors(hit.chunk.id)

    @property
    def answerer(self):
        """The extractive answerer over this index (IDF from the store, similarity from the encoder)."""
        if self._answerer is None:
            from .answer import ExtractiveAnswerer
            from .answer.selector import Selector

            embedder = self.embedder
            selector = Selector.load(self.config.selector or None)
            pipeline = self.pipeline
            cos_map = (1.0, 0.0)
            if selector.encoder and getattr(embedder, "fingerprint", None) != selector.encoder:
                from .answer.selector import cosine_map

                sentences = getattr(self.store, "sentences", None)
                sample = sentences.vectors if sentences is not None else getattr(self.store, "vectors", None)
                cos_map = cosine_map(sample, (selector.meta or {}).get("cosine_reference"))
                log.info("selector trained with %s, index encoder %s: cosines mapped by %.3f x + %.3f",
                         selector.encoder, getattr(embedder, "fingerprint", "?"), *cos_map)
            with self._lock:
                if self._answerer is None:
                    self._answerer = ExtractiveAnswerer(
                        self.analyzer, self.store.idf, embedder, sentences=self._stored_sentences,
                        query_vector=lambda text: pipeline.embed(pipeline.query(text)), selector=selector,
                        threshold=self.config.abstain_threshold, max_idf=self.store.max_idf,
                        corpus_lang=self.corpus_lang, cosine_map=cos_map, reader=self._reader_loader(),
                        reader_threshold=self.config.reader_threshold,
                        reader_paragraphs=self.config.reader_paragraphs)
        return self._answerer

    def _reader_loader(self):
        """The span reader's loader for the answerer (None with ``[answer] reader = "off"``)."""
        if self.config.reader.strip().lower() == "off":
            return None
        from .answer.reader import Reader

        path = self.config.reader or None
        precision = self.config.reader_precision
        return lambda: Reader.load(path, precision=precision)

    @property
    def generator(self):
        """The configured :class:`~qa.answer.Answerer`: the extractive answerer, or with
        ``answerer = "openai"`` an LLM whose answers are checked against their passages."""
        if self._generator is None:
            from .answer import make_answerer

            extractive = self.answerer
            with self._lock:
                if self._generator is None:
                    self._generator = make_answerer(self.config, extractive)
        return self._generator

    @functools.cached_property
    def corpus_lang(self) -> str:
        """Main language of the articles (``"id"`` or ``"en"``), from a sample of passages."""
        from .answer import detect_lang

        votes = [detect_lang(t) for t in self.store.sample_texts(200)]
        return max(set(votes), key=votes.count) if votes else "id"

    def ask(self, question: str, *, k: Optional[int] = None, mode: Optional[str] = None,
            query: Optional[str] = None, history: Optional[list] = None, filter: FilterLike = None,
            fold_duplicates: Optional[bool] = None) -> Answer:
        """Answer ``question`` with verbatim quotes from the articles.

        ``query`` is the text to retrieve with when it differs from the question (a follow-up
        rewritten with earlier turns: :meth:`conversation` does that). ``filter``: answer only from
        articles passing it (as in :meth:`retrieve`). Returns an
        :class:`~qa.types.Answer` whose ``found`` is False when the passages do not support an answer.
        ``fold_duplicates``: as in :meth:`retrieve` (a quote from a folded copy cites the most complete version).
        """
        prepared = self._prepare(question, k=k, mode=mode, query=query, history=history, filter=filter,
                                 fold=fold_duplicates)
        if isinstance(prepared, Answer):
            return prepared
        question, hits, lang, query = prepared
        return self.generator.answer(question, hits, lang=lang, query=query)

    def ask_stream(self, question: str, *, k: Optional[int] = None, mode: Optional[str] = None,
                   query: Optional[str] = None, history: Optional[list] = None,
                   filter: FilterLike = None, fold_duplicates: Optional[bool] = None) -> Iterator[Union[str, Answer]]:
        """Like :meth:`ask`, streamed: the text pieces an LLM answerer writes (none for the
        extractive answerer), then, last, the checked :class:`~qa.types.Answer`."""
        prepared = self._prepare(question, k=k, mode=mode, query=query, history=history, filter=filter,
                                 fold=fold_duplicates)
        if isinstance(prepared, Answer):
            yield prepared
            return
        question, hits, lang, query = prepared
        yield from self.generator.stream(question, hits, lang=lang, query=query)

    def _prepare(self, question: str, *, k: Optional[int], mode: Optional[str], query: Optional[str],
                 history: Optional[list], filter: FilterLike = None, fold: Optional[bool] = None):
        """(question, hits, lang, query) for answering, or an Answer when there is nothing to ask."""
        from .answer import detect_lang
        from .answer.lang import phrase

        if not isinstance(question, str):
            raise TypeError(f"question must be a string, not {type(question).__name__}")
        where = Filter.of(filter)  # a bad filter fails before anything else
        question = question.strip()[:MAX_QUERY_CHARS]
        lang = detect_lang(question)
        if not question:
            return Answer(question="", text=phrase(lang, "empty"), found=False, lang=lang)
        if history is not None and query is None:
            warnings.warn("ask(history=...) is deprecated: use assistant.conversation().ask(...)",
                          DeprecationWarning, stacklevel=3)
            from .conversation import rewrite

            query = rewrite(question, history)
        query = query or question
        if self.config.translate_questions:
            query = widen(query, question, lang, self.corpus_lang)
        hits = self.retrieve(query, k=self.config.answer_k if k is None else k, mode=mode, filter=where,
                             fold_duplicates=fold)
        if not hits and where is not None:  # say why there is nothing: the filter (None when empty)
            return Answer(question=question, text=phrase(lang, "no_match").format(filter=where.describe(lang)),
                          found=False, lang=lang)
        return question, hits, lang, query

    def conversation(self):
        """A new multi-turn :class:`~qa.conversation.Conversation` (one per chat session)."""
        from .conversation import Conversation

        return Conversation(self)

    def close(self) -> None:
        """Release the store (a Milvus connection; nothing for an index folder)."""
        self.store.close()

    def __len__(self) -> int:
        return len(self.store)

    def __repr__(self) -> str:
        return (f"Assistant(store={self.store!r}, model={self.config.model!r}, mode={self.config.mode!r})")


__all__ += ["BuildReport"]
