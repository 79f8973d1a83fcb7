"""Extractive answers: pick the sentences of the top passages that answer the question, quote them.

No LLM and no network. Each candidate sentence (and pair of neighbouring sentences) of the
retrieved passages gets the learned selector's probability of holding the answer
(:mod:`.selector`: question-sentence cosine from vectors the index stored at build time, IDF-weighted
lexical support, the question's kind against the spans the sentence holds, ...). The best sentence
(and a second one when it adds support) is quoted verbatim with its offsets; where a span clearly
is the answer the answer leads with it: the trained span reader (:mod:`.reader`) reads the question
with the best candidate and its paragraph, and its span leads when its probability reaches the
calibrated threshold (:mod:`.leads`; without torch / transformers, the question-kind patterns of
:mod:`.spans` choose a number, a name, a date). The probability that the passages answer at all comes
from the selector and the reader together (:mod:`.answerability`); below the calibrated threshold the
answerer abstains and lists the closest articles instead.
"""
from __future__ import annotations

import logging
import math
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np

from ..analyzer import Analyzer
from ..chunking import paragraphs, split_sentences
from ..encoders.cache import VectorCache
from ..synonyms import expand
from ..types import Answer, Article, Citation, Hit
from .answerability import Answerability
from .chooser import Chooser, choice, choose_paragraph, chosen_reading
from .base import abstain
from .lang import detect_lang, quoted
from .leads import MAX_QUOTE_CHARS, Reading, clip_quote, pattern_lead, pick_others, read_best, reader_lead
from .selector import FEATURES, Selector, log_len
from .spans import QUESTION_WORDS, _matches, _spans, question_type, strip_clitic  # noqa: F401 (re-exported)

TITLE_SUPPORT = 0.5  # a question word found only in the article's title counts half
SECOND_QUOTE = 0.6  # a second quote needs this share of the best candidate's probability (and new words)
log = logging.getLogger("qa")


@dataclass
class Candidate:
    article: Article
    start: int
    end: int
    hit_rank: int
    passage_start: int
    passage_end: int
    lexical: float = 0.0
    dense: float = 0.0
    type_match: float = 0.0
    score: float = 0.0  # the selector's probability that it holds the answer
    pair: bool = False
    para: int = 0
    first: bool = False  # the first sentence of its paragraph
    vector: Optional[np.ndarray] = None

    @property
    def text(self) -> str:
        return self.article.text[self.start:self.end]


SentenceSource = Callable[[Hit], Optional[tuple[np.ndarray, np.ndarray]]]
_NAME_IN = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-z]{2,}")
_DIGIT = re.compile(r"\d")


def most_complete(article: Article, start: int, end: int, passage_start: int, passage_end: int,
                  hits: Sequence[Hit]) -> tuple[Article, int, int, int, int]:
    """Where to cite ``article.text[start:end]``: in the most complete version of its story (the
    ``representative`` of the folded hit it came from) when that version holds the quote verbatim,
    with the offsets and paragraph there; else where it was found."""
    hit = next((h for h in hits if h.article.id == article.id and h.also_reported_by), None)
    rep = hit.representative if hit is not None else article
    at = rep.text.find(article.text[start:end]) if rep.id != article.id else -1
    if at < 0:
        return article, start, end, passage_start, passage_end
    end = at + (end - start)
    ps, pe = next(((a, b) for a, b in paragraphs(rep.text) if a <= at < b), (at, end))
    return rep, at, end, ps, max(pe, end)


class ExtractiveAnswerer:
    """Answers from retrieved passages by quoting the sentences the selector rates most likely to
    hold the answer.

    ``idf(token)`` weights question words (rare words count more). ``encoder``: the index's
    :class:`~qa.encoders.Encoder`, for questions and for sentences the index did not store
    (None: no cosine features, for tests of the lexical path only); ``cosine_map`` (scale, shift) puts
    its cosines on the range of the encoder the selector was trained with. ``sentences(hit)``: the vectors
    the index stored for a hit's sentences (None: embed them here). ``query_vector(text)``: the
    retrieval pipeline's (cached) query embedding. ``reader``: a loader of the span reader
    (``Reader.load``), called on first use; None, or a loader that fails (torch missing): leads chosen
    by the question-kind patterns. ``reader_threshold``: span probability below which there is no lead.
    ``reader_paragraphs``: paragraphs the reader reads, the best candidate's and those of the next
    best candidates in other paragraphs; ``chooser`` (default the packaged one) picks the one to answer
    from (:mod:`.chooser`). ``threshold``: the probability that the passages answer (``answerability``, default the packaged
    model, over the selector's and the reader's outputs) below which the answerer abstains (None: the
    model's calibrated threshold); without a reader the selector's own probability decides, against
    the selector's calibrated threshold.
    """

    name = "extractive"

    def __init__(self, analyzer: Analyzer, idf: Callable[[str], float], encoder=None, *,
                 sentences: Optional[SentenceSource] = None,
                 query_vector: Optional[Callable[[str], np.ndarray]] = None,
                 selector: Optional[Selector] = None, threshold: Optional[float] = None, max_quotes: int = 2,
                 max_idf: float = 5.0, corpus_lang: Optional[str] = None, cache_size: int = 4096,
                 cosine_map: tuple[float, float] = (1.0, 0.0), reader: Optional[Callable[[], Any]] = None,
                 reader_threshold: float = 0.05, answerability: Optional[Answerability] = None,
                 reader_paragraphs: int = 1, chooser: Optional[Chooser] = None):
        self.analyzer = analyzer
        self.idf = idf
        self.encoder = encoder
        self.sentences = sentences
        self.query_vector = query_vector or (
            (lambda text: encoder.encode_queries([text])[0]) if encoder is not None else None)
        self.selector = selector or Selector.load()
        self.answerability = answerability
        if reader is not None and answerability is None:
            self.answerability = Answerability.load()
        self.threshold = (self.answerability.threshold if self.answerability is not None else
                          self.selector.threshold) if threshold is None else threshold
        self.max_quotes = max_quotes
        self.max_idf = max_idf
        self.corpus_lang = corpus_lang
        self.cosine_map = cosine_map  # another encoder's cosines onto the selector's training range
        self._cache = VectorCache(cache_size)  # sentences the index did not store
        self.reader_loader = reader
        self.reader_threshold = reader_threshold
        if not isinstance(reader_paragraphs, int) or isinstance(reader_paragraphs, bool) or reader_paragraphs < 1:
            raise ValueError(f"reader_paragraphs must be a positive integer; got {reader_paragraphs!r}")
        self.reader_paragraphs = reader_paragraphs
        self.chooser = chooser or (Chooser.load() if reader is not None and reader_paragraphs > 1 else None)
        self._reader: Any = None
        self._reader_lock = threading.Lock()

    @property
    def encode(self) -> Optional[Callable[[Sequence[str]], np.ndarray]]:
        """Symmetric sentence similarity (the citation checker's): the encoder's passage form."""
        return None if self.encoder is None else self.encoder.encode_passages

    # -- candidates ---------------------------------------------------------------------------
    def content_terms(self, question: str) -> list[str]:
        return [t for t in dict.fromkeys(self.analyzer.tokens(question)) if t not in QUESTION_WORDS]

    def candidates(self, hits: Sequence[Hit], *, vectors: bool = False) -> list[Candidate]:
        """Sentences of the passages, and pairs of neighbouring sentences of one paragraph
        (so that "Mereka berasal dari 4 OPD." can be quoted with the sentence it leans on);
        with ``vectors``, each with its unit vector (stored, embedded here, or a pair's mean)."""
        seen: set[tuple[str, int, int]] = set()
        out: list[Candidate] = []
        for hit in hits:
            text = hit.article.text
            paras = list(paragraphs(text))
            sents = split_sentences(text, hit.start, hit.end)
            spans = [(s.start, s.end, s.para, False, i == 0 or sents[i - 1].para != s.para)
                     for i, s in enumerate(sents)]
            spans += [(a.start, b.end, a.para, True, False) for a, b in zip(sents, sents[1:])
                      if a.para == b.para and b.end - a.start <= 2 * MAX_QUOTE_CHARS]
            for start, end, para, pair, first in spans:
                key = (hit.article.id, start, end)
                if key in seen or end - start < 8:
                    continue
                seen.add(key)
                ps, pe = next(((a, b) for a, b in paras if a <= start < b), (start, end))
                out.append(Candidate(hit.article, start, end, hit.rank, ps, pe, pair=pair, para=para, first=first))
        if vectors and self.encoder is not None:
            self.attach_vectors(hits, out)
        return out

    def attach_vectors(self, hits: Sequence[Hit], cands: list[Candidate]) -> None:
        """Each candidate's unit vector: stored (``sentences(hit)``), embedded here, or for a pair the
        normalised sum of its sentences' (one alone when the other is too short to be a candidate)."""
        known: dict[tuple[str, int, int], np.ndarray] = {}
        for hit in hits:
            stored = self.sentences(hit) if self.sentences is not None else None
            if stored is not None:
                rows, vecs = stored
                for (_, s, e, _), v in zip(rows.tolist(), vecs):
                    known[(hit.article.id, s, e)] = v
        singles = [c for c in cands if not c.pair]
        todo = [c for c in singles if (c.article.id, c.start, c.end) not in known]
        if todo:
            for c, v in zip(todo, self._embed([c.text for c in todo])):
                known[(c.article.id, c.start, c.end)] = v
        by_start = {(c.article.id, c.start): known[(c.article.id, c.start, c.end)] for c in singles}
        by_end = {(c.article.id, c.end): known[(c.article.id, c.start, c.end)] for c in singles}
        for c in cands:
            if not c.pair:
                c.vector = known[(c.article.id, c.start, c.end)]
            else:
                parts = [v for v in (by_start.get((c.article.id, c.start)), by_end.get((c.article.id, c.end)))
                         if v is not None]
                v = np.sum(parts, axis=0) if parts else self._embed([c.text])[0]
                c.vector = v / max(float(np.linalg.norm(v)), 1e-12)

    def _embed(self, texts: list[str]) -> list[np.ndarray]:
        """Passage-form vectors of sentences the index did not store (an LRU cache keeps recent ones)."""
        return self._cache.get(texts, self.encoder.encode_passages)

    def cross_lingual(self, question: str) -> bool:
        """Whether ``question`` is in another language than the articles (known when the index
        knows its corpus language)."""
        return self.corpus_lang is not None and detect_lang(question) != self.corpus_lang

    # -- features -----------------------------------------------------------------------------
    def term_weights(self, question: str, query: Optional[str] = None) -> tuple[dict[str, float], dict[str, float], float]:
        """IDF weights of the question's own content words, of the words only the follow-up rewrite
        added (``query`` beyond ``question``), and the share of the own weight on words the index
        never saw. Such a word weighs as much as the rarest known word: a question about something
        absent should not look answered."""
        own = self.content_terms(question)
        ctx = [t for t in self.content_terms(query) if t not in own] if query and query != question else []
        # A question in another language than the articles ("Who is the governor of Banten?" over
        # Indonesian news) shares only names and numbers with them: its unknown common words say
        # nothing about whether the answer is there, so they are left out.
        cross = self.cross_lingual(question)
        names = {t.lower() for t in re.findall(r"\b(?:[A-Z][\w-]*|\w*\d[\w.,-]*)", question)}
        unknown = 0.0

        def w(t: str, mine: bool) -> float:
            nonlocal unknown
            v = self.idf(t)
            if v <= 0:
                v = 0.0 if (cross and t not in names) else self.max_idf
                unknown += v if mine else 0.0
            return max(v, 0.05) if v > 0 else 0.0

        own_w = {t: w(t, True) for t in own}
        ctx_w = {t: w(t, False) for t in ctx}
        total = sum(own_w.values())
        return ({t: v for t, v in own_w.items() if v > 0}, {t: v for t, v in ctx_w.items() if v > 0},
                unknown / total if total else 0.0)

    def features(self, question: str, cands: list[Candidate], *, query: Optional[str] = None,
                 qvec: Optional[np.ndarray] = None) -> np.ndarray:
        """(len(cands), len(FEATURES)) feature rows (see :mod:`.selector`); fills each candidate's
        lexical, dense and type_match."""
        own, ctx, unknown = self.term_weights(question, query)
        kind = question_type(question)
        x = np.zeros((len(cands), len(FEATURES)))
        if not cands:
            return x
        sims = np.zeros(len(cands))
        if qvec is not None and all(c.vector is not None for c in cands):
            sims = self.cosine_map[0] * (np.stack([c.vector for c in cands]) @ qvec) + self.cosine_map[1]

        def share(weights: dict[str, float], toks: set[str], title: set[str]) -> float:
            total = sum(weights.values())
            if not total:
                return 0.0
            got = sum(v * (1.0 if _matches(t, toks) else TITLE_SUPPORT if _matches(t, title) else 0.0)
                      for t, v in weights.items())
            return got / total

        titles: dict[str, set[str]] = {}
        col = {f: i for i, f in enumerate(FEATURES)}
        for n, (c, sim) in enumerate(zip(cands, sims)):
            toks = set(self.analyzer.tokens(expand(c.text)))
            if c.article.id not in titles:
                titles[c.article.id] = set(self.analyzer.tokens(expand(c.article.title or "")))
            c.lexical = share(own, toks, titles[c.article.id])
            c.dense = float(sim)
            c.type_match = 0.5 if kind is None else (1.0 if _spans(kind, c.text) else 0.0)
            row = x[n]
            row[col["cos"]], row[col["lex"]] = sim, c.lexical
            row[col["ctx_lex"]] = share(ctx, toks, titles[c.article.id]) if ctx else c.lexical
            if kind is not None:
                row[col[f"kind_{kind}"]] = 1.0
                row[col[f"match_{kind}"]] = c.type_match
            row[col["has_number"]] = 1.0 if _DIGIT.search(c.text) else 0.0
            row[col["has_name"]] = 1.0 if _NAME_IN.search(c.text) else 0.0
            row[col["unknown"]] = unknown
            row[col["log_len"]] = log_len(c.end - c.start)
            row[col["first"]], row[col["pair"]] = float(c.first), float(c.pair)
        x[:, col["cos_gap"]] = x[:, col["cos"]] - x[:, col["cos"]].max()
        x[:, col["cos_best"]] = x[:, col["cos_gap"]] >= 0
        x[:, col["lex_gap"]] = x[:, col["lex"]] - x[:, col["lex"]].max()
        x[:, col["lex_best"]] = x[:, col["lex_gap"]] >= 0
        x[:, col["cos_x_lex"]] = x[:, col["cos"]] * x[:, col["lex"]]
        return x

    def score(self, question: str, cands: list[Candidate], *, query: Optional[str] = None) -> float:
        """Each candidate's ``score`` (the selector's probability that it holds the answer); returns
        the probability that the candidates answer the question at all (compared with the threshold)."""
        if not cands:
            return 0.0
        if self.encoder is not None and any(c.vector is None for c in cands):
            self.attach_vectors([], cands)
        qvec = self.query_vector(query or question) if self.query_vector is not None else None
        x = self.features(question, cands, query=query, qvec=qvec)
        probs = self.selector.probability(x)
        for c, p in zip(cands, probs):
            c.score = float(p)
        return self.selector.answerable(x, probs)

    # -- answer -----------------------------------------------------------------------------
    def assess(self, question: str, hits: Sequence[Hit], *, query: Optional[str] = None
               ) -> tuple[list[Candidate], float, Optional[list[Reading]], float, float]:
        """(candidates best first, the selector's probability, the reader's readings (None without a
        reader): of the best candidate's paragraph and of it, then of the best candidates of the next
        ``reader_paragraphs - 1`` paragraphs (``Reading.cand`` set; read with a chooser only),
        P(answerable) from the selector and the readings (the one the chooser answers from among them),
        the threshold it is compared with: infinite when the
        selector's probability is below the model's ``selector_floor`` and no reading's span reaches
        its ``span_floor``)."""
        own = " ".join(strip_clitic(w) for w in question.split())
        cands = self.candidates(hits, vectors=True)
        selector_p = self.score(own, cands, query=query or question)
        cands.sort(key=lambda c: -c.score)
        reader = self.reader if cands else None
        if reader is None or self.answerability is None:
            return cands, selector_p, None, selector_p, self.selector.threshold
        others = pick_others(cands, self.reader_paragraphs - 1) if self.chooser is not None else []
        readings = read_best(reader, question, cands[0], others)
        chosen = chosen_reading(readings, choice(self.chooser, cands, readings))
        p = self.answerability(selector_p, [r.span for r in readings if r.cand is None],
                               [r.span for r in readings if r.cand is not None], chosen)
        # below the selector floor nothing passes (a threshold above any probability), unless a reading
        # is confident; the floor was set on questions in the articles' language, whose words the
        # selector weighs: a question in another language shares only names and numbers with them, so
        # it is not held to the floor (the calibrated threshold still decides; docs/answers.md)
        passes = (self.cross_lingual(question) or
                  self.answerability.passes_floor(selector_p, [r.span for r in readings]))
        return cands, selector_p, readings, p, self.threshold if passes else math.inf

    def answer(self, question: str, hits: Sequence[Hit], *, lang: Optional[str] = None, query: Optional[str] = None) -> Answer:
        lang = lang or detect_lang(question)
        q = query or question
        own = " ".join(strip_clitic(w) for w in question.split())
        cands, selector_p, readings, confidence, threshold = self.assess(question, hits, query=q)
        if not cands or confidence < threshold:
            if math.isinf(threshold):  # the selector floor declined it: its probability is the one that decided
                confidence = min(confidence, selector_p)
            return abstain(question, hits, lang=lang, query=q, confidence=confidence, answerer=self.name)
        terms = set(self.content_terms(own))
        focus = None  # where a long quote's window goes: the lead, else the reader's unconfident span
        if readings is not None:
            cands, readings = choose_paragraph(self.chooser, cands, readings)
            lead, lead_at, best = reader_lead(readings, cands, self.reader_threshold)
            hint, hint_at, _ = (lead, lead_at, best) if lead else reader_lead(readings, cands, 0.0)
            if hint and best.start <= hint_at and hint_at + len(hint) <= best.end:
                focus = (hint_at, hint_at + len(hint))
        else:
            best = cands[0]
            lead = pattern_lead(self.analyzer, question_type(question), best, terms)
            lead_at = best.article.text.find(lead, best.start, best.end) if lead else -1
            lead = lead if lead_at >= 0 else None
            focus = (lead_at, lead_at + len(lead)) if lead else None
        chosen = [best]
        covered = terms & set(self.analyzer.tokens(best.text))
        for c in cands:
            if len(chosen) >= self.max_quotes:
                break
            if any(c.article.id == o.article.id and c.start < o.end and o.start < c.end for o in chosen):
                continue
            adds = (terms & set(self.analyzer.tokens(c.text))) - covered
            if c.score >= SECOND_QUOTE * cands[0].score and adds:
                chosen.append(c)
                covered |= adds
        citations: list[Citation] = []
        parts: list[str] = []
        for n, c in enumerate(chosen, start=1):
            qs, qe = clip_quote(c, focus if c is best else None, terms)
            art, cs, ce, ps, pe = most_complete(c.article, qs, qe, c.passage_start, c.passage_end, hits)
            citations.append(Citation(n=n, article=art, quote=art.text[cs:ce], start=cs, end=ce,
                                      score=round(c.score, 4), passage_start=ps, passage_end=pe))
            pre = "…" if qs > c.start else ""
            post = "…" if qe < c.end else ""
            parts.append(f"{quoted(pre + c.article.text[qs:qe] + post)} [{n}]")
        text = " ".join(parts)
        if lead:
            text = f"{lead} [1]. " + text
        return Answer(question=question, text=text, citations=citations, found=True, lang=lang, query=q,
                      hits=list(hits), confidence=round(confidence, 4), answerer=self.name, lead=lead)

    def stream(self, question: str, hits: Sequence[Hit], *, lang: Optional[str] = None,
               query: Optional[str] = None) -> Iterator[Union[str, Answer]]:
        """The :class:`~qa.answer.base.Answerer` stream: no pieces, just the answer."""
        yield self.answer(question, hits, lang=lang, query=query)

    @property
    def reader(self) -> Any:
        """The span reader, loaded on first use (None: none configured, or it could not load)."""
        if self._reader is None and self.reader_loader is not None:
            with self._reader_lock:
                if self._reader is None and self.reader_loader is not None:
                    try:
                        self._reader = self.reader_loader()
                    except (ImportError, OSError) as exc:
                        log.warning("span reader unavailable, leads chosen by patterns: %s", exc)
                        self.reader_loader = None
        return self._reader

