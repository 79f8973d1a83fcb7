"""Draft an evaluation set from the user's own articles, without an LLM (``qa questions``).

A sentence that holds a date, a number or a name becomes a cloze question: a window of the
sentence's words around that span, with the span blanked out (``____``); the span is the answer
and the sentence's article the gold article. Every answer is a verbatim slice of the article's
clean text (``article.text[start:end]``, recorded in the question as ``start`` / ``end``).

What such a set measures: whether retrieval brings back the article a sentence came from, given
most of that sentence's words, and whether the answerer quotes the sentence holding the blank. It
is good for comparing settings on *your* articles (fusion, weights, BM25 parameters, chunk size).
What it does not measure: questions in other words than the article's (paraphrase, synonyms,
another language), questions that need several sentences, or abstention on unanswerable
questions; because its queries copy the article's words it favours BM25 over dense retrieval and
overstates what real users' questions will get.
"""
from __future__ import annotations

import hashlib
import logging
import os
import random
import re
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

from ..chunking import split_sentences
from ..ingest import load_corpus
from ..types import Article
from .questions import Question

log = logging.getLogger("qa")

BLANK = "____"
KINDS = ("date", "number", "name")

_MONTHS = ("Januari|Februari|Maret|April|Mei|Juni|Juli|Agustus|September|Oktober|November|Desember|"
           "January|February|March|June|July|August|October|December|Jan|Feb|Mar|Apr|Jun|Jul|Agu|Aug|Sep|Okt|"
           "Oct|Nov|Des|Dec")
_DAYS = "Senin|Selasa|Rabu|Kamis|Jumat|Jum'at|Sabtu|Minggu|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
PATTERNS = {
    "date": re.compile(rf"\b\d{{1,2}}\s+(?:{_MONTHS})\.?(?:\s+\d{{4}})?\b|\b(?:{_MONTHS})\s+\d{{4}}\b|"
                       rf"\b(?:{_DAYS})\s*\(\d{{1,2}}\s*/\s*\d{{1,2}}(?:\s*/\s*\d{{2,4}})?\)|"
                       r"\(\d{1,2}\s*/\s*\d{1,2}(?:\s*/\s*\d{2,4})?\)"),
    "number": re.compile(r"(?<![\w./-])\d+(?:[.,]\d+)*(?:\s?%|\s+(?:persen|ribu|juta|miliar|triliun|percent|"
                         r"million|billion|thousand))?(?![\w/-])"),
    "name": re.compile(r"(?<![\w-])(?:[A-Z][a-z]+(?:\s+|$)){2,6}"),
}
# capitalised words that do not make a name on their own
_NOT_NAME = set(f"{_MONTHS}|{_DAYS}".split("|")) | {
    "Kepala", "Ketua", "Menteri", "Gubernur", "Bupati", "Walikota", "Presiden", "Wakil", "Direktur", "Kakanwil",
    "Pada", "Dalam", "Selain", "Untuk", "Dengan", "Sementara", "Sebagai", "Seluruh", "Bagi", "Oleh", "Dari",
    "Hal", "Menurut", "Namun", "Kata", "Sedangkan", "Adapun", "Saat", "Bapak", "Ibu", "Pak", "Bu",
    "The", "This", "That", "In", "On", "At", "For", "And", "But", "He", "She", "It", "They", "We",
}
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class _Span:
    kind: str
    start: int  # offsets into article.text
    end: int
    sent_start: int
    sent_end: int


def _is_year_only(text: str) -> bool:
    return bool(re.fullmatch(r"(?:19|20)\d{2}", text))


def _trim_name(sentence: str, s: int, e: int) -> Optional[tuple[int, int]]:
    """A run of capitalised words without leading/trailing non-name words (and not the sentence's
    first word, capitalised anyway); None when fewer than two words remain."""
    words = [(s + m.start(), s + m.end()) for m in _WORD.finditer(sentence[s:e])]
    if words and words[0][0] == 0:
        words = words[1:]
    while words and sentence[words[0][0]:words[0][1]] in _NOT_NAME:
        words = words[1:]
    while words and sentence[words[-1][0]:words[-1][1]] in _NOT_NAME:
        words = words[:-1]
    if len(words) < 2:
        return None
    return words[0][0], words[-1][1]


def find_spans(article: Article, *, min_words: int = 8) -> Iterator[_Span]:
    """Candidate answer spans (date, number, name) in the article's sentences, in text order."""
    text = article.text
    for sent in split_sentences(text):
        s_text = text[sent.start:sent.end]
        if len(_WORD.findall(s_text)) < min_words or s_text.count("\n"):
            continue
        taken: list[tuple[int, int]] = []
        for kind in KINDS:
            for m in PATTERNS[kind].finditer(s_text):
                s, e = m.start(), m.end()
                span = s_text[s:e].rstrip()
                e = s + len(span)
                if kind == "name":
                    trimmed = _trim_name(s_text, s, e)
                    if trimmed is None:
                        continue
                    s, e = trimmed
                if kind == "number" and (_is_year_only(span) or len(span) > 25
                                         or re.search(r"covid\s*-?\s*$", s_text[max(0, s - 8):s], re.I)):
                    continue
                if any(s < te and ts < e for ts, te in taken):
                    continue
                taken.append((s, e))
                yield _Span(kind, sent.start + s, sent.start + e, sent.start, sent.end)


def cloze(article: Article, span: _Span, *, window: int = 12) -> Optional[str]:
    """The question for ``span``: up to ``window`` words either side of it in its sentence, with the
    span replaced by ``____`` (None when too little context is left)."""
    text = article.text
    left = _WORD.findall(text[span.sent_start:span.start])[-window:]
    right = _WORD.findall(text[span.end:span.sent_end])[:window]
    if len(left) + len(right) < 5:
        return None
    q = " ".join(left + [BLANK] + right)
    q = re.sub(r"\s+([,.;:!?])", r"\1", q).rstrip(" .")
    return q + "?" if not q.endswith("?") else q


def draft_article(article: Article, *, per_article: int = 3, window: int = 12) -> list[Question]:
    """Up to ``per_article`` cloze questions from one article: kinds taken in turn (date, number,
    name), each from another sentence where possible; the choice is random but fixed per article."""
    rng = random.Random(int(hashlib.sha256(article.id.encode("utf-8")).hexdigest()[:12], 16))
    by_kind: dict[str, list[_Span]] = {k: [] for k in KINDS}
    for sp in find_spans(article):
        by_kind[sp.kind].append(sp)
    for spans in by_kind.values():
        rng.shuffle(spans)
    out: list[Question] = []
    used_sentences: set[int] = set()
    answers: set[str] = set()
    while len(out) < per_article and any(by_kind.values()):
        for kind in KINDS:
            if len(out) >= per_article or not by_kind[kind]:
                continue
            spans = by_kind[kind]
            pick = next((sp for sp in spans if sp.sent_start not in used_sentences), spans[0])
            spans.remove(pick)
            ans = article.text[pick.start:pick.end]
            q = cloze(article, pick, window=window)
            if q is None or ans.lower() in answers:
                continue
            used_sentences.add(pick.sent_start)
            answers.add(ans.lower())
            out.append(Question(id=f"draft-{article.id}-{len(out) + 1}", question=q, articles=(article.id,),
                                answers=(ans,), answerable=True, source=article.path or article.id,
                                meta={"kind": kind, "start": pick.start, "end": pick.end}))
    return out


def draft_questions(corpus: "str | os.PathLike | Sequence[Article]", *, per_article: int = 3,
                    limit: Optional[int] = None, window: int = 12) -> list[Question]:
    """Cloze questions drafted from a corpus folder (or a list of articles): see the module
    docstring for what such a set does and does not measure. ``limit`` caps the total."""
    if isinstance(corpus, (str, os.PathLike)):
        articles = load_corpus(corpus).articles
    else:
        articles = list(corpus)
    out: list[Question] = []
    for art in articles:
        out.extend(draft_article(art, per_article=per_article, window=window))
        if limit is not None and len(out) >= limit:
            out = out[:limit]
            break
    log.info("drafted %d questions from %d articles", len(out), len(articles))
    return out
