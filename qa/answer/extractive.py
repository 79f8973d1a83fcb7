"""Extractive answers: pick the sentences of the top passages that answer the question, quote them.

No LLM and no network. Each candidate sentence is scored by
  * lexical support: the IDF-weighted share of the question's content words it contains,
  * dense similarity between question and sentence (the index's embedding model),
  * the kind of question: "berapa"/"how many" wants a number, "siapa"/"who" a name,
    "kapan"/"when" a date, "di mana"/"where" a place, "mengapa"/"why" a reason,
  * the retrieval rank of its passage.
The best sentence (and a second one when it adds support) is quoted verbatim with its offsets;
where a span clearly is the answer (a number, a name, a date) the answer leads with it.
Below a calibrated score the answerer abstains and lists the closest articles instead.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence, Union

import numpy as np

from ..analyzer import Analyzer
from ..chunking import paragraphs, split_sentences
from ..synonyms import expand
from ..types import Answer, Article, Citation, Hit
from .base import abstain
from .lang import detect_lang


def strip_clitic(word: str) -> str:
    """``lapasnya`` -> ``lapas`` (possessive/definite clitic), keeping words such as ``hanya``."""
    low = word.lower().rstrip("?!.,")
    if low.endswith("nya") and len(low) > 5 and low not in _NYA_KEEP:
        return word[: len(low) - 3] + word[len(low):]
    return word


_NYA_KEEP = {"hanya", "bahwasanya", "sebenarnya", "biasanya", "akhirnya", "selanjutnya", "sebelumnya",
             "sesungguhnya", "seharusnya", "misalnya", "lainnya", "karenanya", "adanya", "katanya", "punya"}

# Calibrated on IDK-MRC valid (benchmarks/calibrate_abstention.py): see docs/answers.md.
DEFAULT_THRESHOLD = 0.54
WEIGHTS = {"lexical": 0.55, "dense": 0.10, "type": 0.12, "rank": 0.08}
# Cosines of different encoders live in different ranges. The weights and threshold above were
# calibrated with all-MiniLM-L6-v2, whose question/sentence cosines on 150 TyDi valid questions have
# a median of 0.382 for unrelated pairs and 0.587 for the gold sentence; multilingual-e5-small's are
# 0.787 and 0.890. An E5 cosine is mapped affinely onto MiniLM's range (scale, shift) before use.
DENSE_MAPS = {"e5": (1.99, 0.382 - 1.99 * 0.787)}
MAX_QUOTE_CHARS = 320
TITLE_SUPPORT = 0.5  # a question word found only in the article's title counts half
PAIR_PENALTY = 0.03  # a two-sentence quote must add support to beat a single sentence

QTYPES = {
    "number": r"\bberapa(kah)?\b|\bhow (many|much)\b|\bjumlah\b|\bwhat (number|percentage)\b|\bberapa persen\b",
    "date": r"\bkapan(kah)?\b|\bwhen\b|\btanggal berapa\b|\btahun berapa\b|\bwhat (date|year|day)\b|\bhari apa\b",
    "person": r"\bsiapa(kah)?\b|\bwho(m|se)?\b",
    "place": r"\bdi ?mana(kah)?\b|\bke ?mana\b|\bdari ?mana\b|\bwhere\b|\bwhich (city|province|place|region)\b",
    "reason": r"\bmengapa\b|\bkenapa\b|\bwhy\b|\bapa (sebab|alasan)\b|\balasan\b|\bfor what reason\b",
}
_QTYPE_RE = {k: re.compile(v, re.I) for k, v in QTYPES.items()}
QUESTION_WORDS = {
    "apa", "apakah", "siapa", "siapakah", "berapa", "berapakah", "kapan", "kapankah", "mana", "dimana",
    "manakah", "mengapa", "kenapa", "bagaimana", "bagaimanakah", "what", "who", "whom", "whose", "how", "many",
    "much", "when", "where", "why", "which", "jumlah", "nama", "name", "disebut", "called",
}

_NUM = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?:\s?%|\s?persen)?(?:\s+(?:ribu|juta|miliar|triliun))?"
                  r"(?:\s+[a-zA-Z][\w-]*){0,1}")
_MONTHS = (r"Januari|Februari|Maret|April|Mei|Juni|Juli|Agustus|September|Oktober|November|Desember|January|"
           r"February|March|May|June|July|August|October|December")
_DATE = re.compile(rf"(?:(?:Senin|Selasa|Rabu|Kamis|Jumat|Sabtu|Minggu),?\s+)?\d{{1,2}}\s+(?:{_MONTHS})(?:\s+\d{{4}})?|"
                   rf"(?:{_MONTHS})\s+\d{{4}}|\(\d{{1,2}}/\d{{1,2}}(?:/\d{{2,4}})?\)|"
                   r"\b(?:Senin|Selasa|Rabu|Kamis|Jumat|Sabtu|Minggu)\b(?:\s+(?:pagi|siang|sore|malam))?|\b(?:19|20)\d{2}\b")
_NAME = re.compile(r"\b(?:[A-Z][a-z]+\.?\s)?(?:[A-Z][a-z']+(?:\s+|$)){1,4}")
_PLACE = re.compile(r"\b(?:di|ke|dari|in|at)\s+((?:[A-Z][\w-]*\s?){1,4})")
_REASON = re.compile(r"\b(karena|sebab|akibat|lantaran|agar|supaya|sehingga|because|due to|so that|since)\b", re.I)
_TITLES = {"Kepala", "Kalapas", "Gubernur", "Bupati", "Walikota", "Presiden", "Menteri", "Kakanwil", "Sekjen",
           "Koordinator", "Brigjen", "Pol", "Dr", "Prof", "Jend", "Kadivpas", "Sekdinsos", "Kadinsos", "Kata",
           "Sementara", "Selain", "Untuk", "Dengan", "Pada", "Dalam", "Sebagai", "Sesuai", "Seperti", "Hal", "Di"}


def _matches(term: str, toks: set[str]) -> bool:
    """``term`` is in ``toks``, or shares a stem-like prefix with one of them ("vaksin" ~ "vaksinasi")."""
    if term in toks:
        return True
    if len(term) < 5 or not term.isalpha():
        return False
    return any(len(u) >= 5 and u.isalpha() and (u.startswith(term) or term.startswith(u)) for u in toks)


def question_type(question: str) -> Optional[str]:
    """``number``, ``date``, ``person``, ``place``, ``reason`` or ``None``."""
    for kind in ("number", "date", "person", "place", "reason"):
        if _QTYPE_RE[kind].search(question):
            # "tanggal berapa" is a date question, not a number question
            if kind == "number" and _QTYPE_RE["date"].search(question):
                return "date"
            return kind
    return None


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
    score: float = 0.0
    pair: bool = False

    @property
    def text(self) -> str:
        return self.article.text[self.start:self.end]


_NOT_NAMES = {
    "Kelas", "Lapas", "Rutan", "Dinas", "Provinsi", "Prov", "Kabupaten", "Kab", "Kota", "Kantor", "Wilayah",
    "Badan", "Lembaga", "Pemasyarakatan", "Kementerian", "Hukum", "HAM", "Covid", "COVID", "Virus", "Corona",
    "Disease", "Daerah", "Negara", "Intelijen", "Sosial", "Kesehatan", "Satgas", "Pemprov", "Pemkab", "Tahun",
    "Hari", "Bakti", "Darurat", "PPKM", "ASN", "UPT", "WBP", "Warga", "Binaan", "Organisasi", "Perangkat",
    "Aparatur", "Sipil", "Unit", "Pelaksana", "Teknis", "Divisi", "Jenderal", "Sekretaris", "Gubernur",
    "Peraturan", "Seluruh", "Pandemi", "Rapat", "Virtual", "Data", "Foto", "Humas", "Online", "Pimpinan",
}
_COVID_BEFORE = re.compile(r"covid\s*-?\s*$", re.I)


def _spans(kind: Optional[str], text: str) -> list[tuple[int, int]]:
    if kind == "number":
        return [(m.start(), m.end()) for m in _NUM.finditer(text) if not _COVID_BEFORE.search(text[max(0, m.start() - 8):m.start()])]
    if kind == "date":
        return [(m.start(), m.end()) for m in _DATE.finditer(text)]
    if kind == "person":
        out = []
        for m in _NAME.finditer(text):
            words = [w for w in m.group(0).split() if w.rstrip(".") not in _TITLES]
            if any(w.rstrip(".,") in _NOT_NAMES for w in words):
                continue
            if len(words) >= 2 or (len(words) == 1 and m.start() > 0 and len(words[0]) > 3):
                s = text.index(words[0], m.start())
                e = s + len(" ".join(words)) if " ".join(words) in text[s:m.end() + 1] else m.end()
                out.append((s, min(e, m.end())))
        return out
    if kind == "place":
        return [(m.start(1), m.start(1) + len(m.group(1).rstrip())) for m in _PLACE.finditer(text)]
    if kind == "reason":
        return [(m.start(), m.end()) for m in _REASON.finditer(text)]
    return []


def dense_map(encoder) -> tuple[float, float]:
    """The :data:`DENSE_MAPS` entry of an encoder: E5 (recognised by its ``query: `` prefix, on either
    backend) or none."""
    describe = getattr(encoder, "describe", None)
    prefixes = (describe() or {}).get("prefixes", {}) if describe else {}
    return DENSE_MAPS["e5"] if prefixes.get("query") == "query: " else (1.0, 0.0)


class ExtractiveAnswerer:
    """Answers from retrieved passages by quoting their best sentences.

    ``idf(token)`` weights question words (rare words count more); ``encode(texts)`` gives
    normalised vectors (None: no dense feature). ``threshold`` is the score below which the
    answerer abstains.
    """

    name = "extractive"

    def __init__(self, analyzer: Analyzer, idf: Callable[[str], float],
                 encode: Optional[Callable[[Sequence[str]], np.ndarray]] = None, *,
                 threshold: float = DEFAULT_THRESHOLD, max_quotes: int = 2, max_idf: float = 5.0,
                 corpus_lang: Optional[str] = None, dense_map: tuple[float, float] = (1.0, 0.0)):
        self.analyzer = analyzer
        self.idf = idf
        self.encode = encode
        self.threshold = threshold
        self.max_quotes = max_quotes
        self.max_idf = max_idf
        self.corpus_lang = corpus_lang
        self.dense_map = dense_map


    # -- features ---------------------------------------------------------------------------
    def content_terms(self, question: str) -> list[str]:
        return [t for t in dict.fromkeys(self.analyzer.tokens(question)) if t not in QUESTION_WORDS]

    def candidates(self, hits: Sequence[Hit]) -> list[Candidate]:
        """Sentences of the passages, and pairs of neighbouring sentences of one paragraph
        (so that "Mereka berasal dari 4 OPD." can be quoted with the sentence it leans on)."""
        seen: set[tuple[str, int, int]] = set()
        out: list[Candidate] = []
        for hit in hits:
            text = hit.article.text
            paras = list(paragraphs(text))
            sents = split_sentences(text, hit.start, hit.end)
            spans = [(s.start, s.end, False) for s in sents]
            spans += [(a.start, b.end, True) for a, b in zip(sents, sents[1:])
                      if a.para == b.para and b.end - a.start <= 2 * MAX_QUOTE_CHARS]
            for start, end, pair in spans:
                key = (hit.article.id, start, end)
                if key in seen or end - start < 8:
                    continue
                seen.add(key)
                ps, pe = next(((a, b) for a, b in paras if a <= start < b), (start, end))
                out.append(Candidate(hit.article, start, end, hit.rank, ps, pe, pair=pair))
        return out

    def term_weights(self, question: str, query: Optional[str] = None) -> tuple[dict[str, float], dict[str, float]]:
        """IDF weights of the question's own content words, and of the words only the follow-up
        rewrite added (``query`` beyond ``question``). A word the index never saw weighs as much
        as the rarest known word: a question about something absent should not look answered."""
        own = self.content_terms(question)
        ctx = [t for t in self.content_terms(query) if t not in own] if query and query != question else []
        # A question in another language than the articles ("Who is the governor of Banten?" over
        # Indonesian news) shares only names and numbers with them: its unknown common words say
        # nothing about whether the answer is there, so they are left out.
        cross = self.corpus_lang is not None and detect_lang(question) != self.corpus_lang
        names = {t.lower() for t in re.findall(r"\b(?:[A-Z][\w-]*|\w*\d[\w.,-]*)", question)}

        def w(t: str) -> float:
            v = self.idf(t)
            if v <= 0:
                v = 0.0 if (cross and t not in names) else self.max_idf
            return max(v, 0.05) if v > 0 else 0.0

        own_w = {t: w(t) for t in own}
        ctx_w = {t: w(t) for t in ctx}
        return {t: v for t, v in own_w.items() if v > 0}, {t: v for t, v in ctx_w.items() if v > 0}

    def score(self, question: str, cands: list[Candidate], *, query: Optional[str] = None) -> None:
        """Fill in each candidate's features and score for ``question`` (``query``: its rewrite).

        Lexical support is the IDF-weighted share of the question's own words in the sentence;
        for a rewritten follow-up, words from earlier turns count for a quarter of it.
        """
        own, ctx = self.term_weights(question, query)
        kind = question_type(question)
        sims = np.zeros(len(cands))
        if self.encode is not None and cands:
            vecs = self.encode([query or question] + [c.text for c in cands])
            sims = vecs[1:] @ vecs[0]

        def share(weights: dict[str, float], toks: set[str], title: set[str]) -> float:
            total = sum(weights.values())
            if not total:
                return 0.0
            got = sum(v * (1.0 if _matches(t, toks) else TITLE_SUPPORT if _matches(t, title) else 0.0)
                      for t, v in weights.items())
            return got / total

        titles: dict[str, set[str]] = {}
        for c, sim in zip(cands, sims):
            toks = set(self.analyzer.tokens(expand(c.text)))
            if c.article.id not in titles:
                titles[c.article.id] = set(self.analyzer.tokens(expand(c.article.title or "")))
            title = titles[c.article.id]
            c.lexical = (share(own, toks, title) if not ctx
                         else 0.75 * share(own, toks, title) + 0.25 * share(ctx, toks, title))
            c.dense = float(max(0.0, self.dense_map[0] * sim + self.dense_map[1]))
            if kind is None:
                c.type_match = 0.5
            else:
                c.type_match = 1.0 if _spans(kind, c.text) else 0.0
            rank_prior = 1.0 / math.sqrt(c.hit_rank)
            c.score = (WEIGHTS["lexical"] * c.lexical + WEIGHTS["dense"] * c.dense
                       + WEIGHTS["type"] * c.type_match + WEIGHTS["rank"] * rank_prior
                       - (PAIR_PENALTY if c.pair else 0.0))

    # -- answer -----------------------------------------------------------------------------
    def answer(self, question: str, hits: Sequence[Hit], *, lang: Optional[str] = None, query: Optional[str] = None) -> Answer:
        lang = lang or detect_lang(question)
        q = query or question
        own = " ".join(strip_clitic(w) for w in question.split())
        cands = self.candidates(hits)
        self.score(own, cands, query=q)
        cands.sort(key=lambda c: -c.score)
        if not cands or cands[0].score < self.threshold:
            return abstain(question, hits, lang=lang, query=q, confidence=cands[0].score if cands else 0.0,
                           answerer=self.name)
        best = cands[0]
        chosen = [best]
        terms = set(self.content_terms(own))
        covered = terms & set(self.analyzer.tokens(best.text))
        for c in cands[1:]:
            if len(chosen) >= self.max_quotes:
                break
            if any(c.article.id == o.article.id and c.start < o.end and o.start < c.end for o in chosen):
                continue
            adds = (terms & set(self.analyzer.tokens(c.text))) - covered
            if c.score >= max(self.threshold, 0.85 * best.score) and adds:
                chosen.append(c)
                covered |= adds
        kind = question_type(question)
        citations: list[Citation] = []
        parts: list[str] = []
        lead = self._lead_span(kind, best, terms)
        for n, c in enumerate(chosen, start=1):
            qs, qe = self._clip(c, lead if c is best else None, terms)
            citations.append(Citation(n=n, article=c.article, quote=c.article.text[qs:qe], start=qs, end=qe,
                                      score=round(c.score, 4), passage_start=c.passage_start, passage_end=c.passage_end))
            pre = "…" if qs > c.start else ""
            post = "…" if qe < c.end else ""
            parts.append(f"“{pre}{c.article.text[qs:qe]}{post}” [{n}]")
        text = " ".join(parts)
        if lead:
            text = f"{lead} [1]. " + text
        return Answer(question=question, text=text, citations=citations, found=True, lang=lang, query=q,
                      hits=list(hits), confidence=round(best.score, 4), answerer=self.name, lead=lead)

    def stream(self, question: str, hits: Sequence[Hit], *, lang: Optional[str] = None,
               query: Optional[str] = None) -> Iterator[Union[str, Answer]]:
        """The :class:`~qa.answer.base.Answerer` stream: no pieces, just the answer."""
        yield self.answer(question, hits, lang=lang, query=query)

    def _lead_span(self, kind: Optional[str], c: Candidate, terms: set[str]) -> Optional[str]:
        if kind not in ("number", "person", "date"):
            return None
        text = c.text
        spans = _spans(kind, text)
        spans = [(s, e) for s, e in spans if not (set(self.analyzer.tokens(text[s:e])) <= terms)]
        if not spans:
            return None
        # nearest to the question's words in the sentence
        pos = [m.start() for t in terms for m in re.finditer(re.escape(t), text.lower())]
        if pos:
            spans.sort(key=lambda se: min(abs(se[0] - p) for p in pos))
        s, e = spans[0]
        return text[s:e].strip(" ,.;:") or None

    def _clip(self, c: Candidate, lead: Optional[str], terms: set[str]) -> tuple[int, int]:
        """Offsets of the quote: the whole sentence, or a window of it around the answer."""
        if c.end - c.start <= MAX_QUOTE_CHARS:
            return c.start, c.end
        text = c.article.text
        low = text[c.start:c.end].lower()
        anchor = low.find(lead.lower()) if lead else -1
        if anchor < 0:
            hits = [low.find(t) for t in terms if low.find(t) >= 0]
            anchor = min(hits) if hits else 0
        s = max(0, anchor - MAX_QUOTE_CHARS // 2)
        e = min(len(low), s + MAX_QUOTE_CHARS)
        s = max(0, e - MAX_QUOTE_CHARS)
        # to word boundaries
        while s > 0 and not low[s - 1].isspace():
            s += 1
        while e < len(low) and not low[e].isspace() and e > s:
            e -= 1
        qs, qe = c.start + s, c.start + e
        while qs < qe and text[qs].isspace():
            qs += 1
        while qe > qs and text[qe - 1] in " ,;":
            qe -= 1
        return qs, qe
