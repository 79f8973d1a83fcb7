"""Citation checks for generated answers: does each sentence's cited passage support it?

A generated answer is split into sentences; each sentence's ``[n]`` markers must name passages
that were given to the model (others are dropped). A sentence is *supported* by its cited
passages when

  * every number and every name in it occurs in those passages (or their title, outlet and date):
    a number or a name found nowhere there is taken as invented, whatever else the sentence says;
  * and enough of its content: the IDF-weighted share of its content words found in the passages
    (a word unknown to the whole index weighs as much as the rarest one) is at least
    ``LEXICAL_MIN``, or at least ``LEXICAL_WITH_DENSE`` with a cosine similarity of at least
    ``DENSE_MIN`` between the sentence and the passages' best sentence (the index's embedding model).

A sentence written in another language than its passages (an English answer over Indonesian
articles) is checked on its numbers and names only, or on the similarity when it has none.
The best-supporting sentence of a cited passage becomes the citation's quote: a verbatim span of
the article, with its offsets. Limits: see docs/generation.md.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from ..analyzer import STOPWORDS
from ..chunking import split_sentences
from ..synonyms import expand
from ..types import Citation, Hit, SentenceCheck
from .extractive import QUESTION_WORDS, Candidate, ExtractiveAnswerer, _matches
from .leads import clip_quote
from .lang import detect_lang, phrase

LEXICAL_MIN = 0.6
LEXICAL_WITH_DENSE = 0.4
DENSE_MIN = 0.55
DENSE_CROSS_LANG = 0.6  # a cross-language sentence without numbers or names needs this similarity

MARKER = re.compile(r"\[\s*(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\s*\]")
_LEADING_MARKERS = re.compile(r"^(?:\s*\[\s*\d{1,3}(?:\s*[,;]\s*\d{1,3})*\s*\])+")
_NUMBER = re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[\w'’-]+")
_NUMBER_WORDS = {
    "satu": "1", "dua": "2", "tiga": "3", "empat": "4", "lima": "5", "enam": "6", "tujuh": "7", "delapan": "8",
    "sembilan": "9", "sepuluh": "10", "sebelas": "11", "seratus": "100", "seribu": "1000",
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
    "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "hundred": "100", "thousand": "1000",
}
# Capitalised words that are not names (months, days, sentence openers of either language).
_NOT_NAMES = set("""
januari februari maret april mei juni juli agustus september oktober november desember january february march
may june july august october december senin selasa rabu kamis jumat sabtu minggu monday tuesday wednesday
thursday friday saturday sunday menurut sementara selain namun sedangkan however according meanwhile also
kata said ia dia beliau mereka he she they it its the this that these those
""".split())


@dataclass
class GenSentence:
    """One sentence of a generated answer: as written, without its markers, and its marker numbers."""

    text: str
    body: str
    markers: list[int] = field(default_factory=list)


@dataclass
class Verified:
    """A generated answer after the checks: its text (renumbered markers; unsupported sentences
    flagged or removed), verbatim citations, and the check of every sentence."""

    text: str
    citations: list[Citation]
    checks: list[SentenceCheck]

    @property
    def supported(self) -> int:
        return sum(c.status == "supported" for c in self.checks)


@dataclass
class Support:
    """How far passages support one sentence (see the module docstring)."""

    supported: bool
    lexical: float = 0.0
    dense: float = 0.0
    missing: list[str] = field(default_factory=list)
    checkable: bool = True
    best: Optional[Candidate] = None  # the passages' best-supporting sentence (the quote)


def markers_of(text: str) -> list[int]:
    """The marker numbers of ``text`` in order, each once ("[1][2]", "[1, 3]" included)."""
    out: list[int] = []
    for m in MARKER.finditer(text):
        out += [int(x) for x in re.split(r"\s*[,;]\s*", m.group(1)) if x]
    return list(dict.fromkeys(out))


def strip_markers(text: str) -> str:
    """``text`` without markers, spaces tidied ("Dwi Hartono [1]." -> "Dwi Hartono.")."""
    out = MARKER.sub("", text)
    out = re.sub(r"[ \t]+([.,;:!?])", r"\1", out)
    return re.sub(r"\s+", " ", out).strip()


def split_generated(text: str) -> list[GenSentence]:
    """Sentences of generated ``text``; markers written after a sentence's full stop
    ("… Hartono. [1]") belong to that sentence."""
    text = re.sub(r"(?m)^\s*(?:[-*•]|\d+[.)])\s+", "", text)  # list bullets and numbering
    raw = [text[s.start:s.end] for s in split_sentences(text)]
    out: list[str] = []
    for seg in raw:
        lead = _LEADING_MARKERS.match(seg)
        if lead and out:
            out[-1] = out[-1] + " " + lead.group(0).strip()
            seg = seg[lead.end():].strip()
        if seg:
            out.append(seg)
    return [GenSentence(text=s, body=strip_markers(s), markers=markers_of(s)) for s in out]


def _norm_number(tok: str) -> str:
    return re.sub(r"[.,]", "", tok).lstrip("0") or "0"


class CitationChecker:
    """Checks generated sentences against passages with the index's analyzer, IDF and embedder
    (those of an :class:`~qa.answer.ExtractiveAnswerer`, whose sentence candidates give the quotes)."""

    def __init__(self, extractive: ExtractiveAnswerer):
        self.x = extractive
        self.analyzer = extractive.analyzer

    # -- features -----------------------------------------------------------------------------
    def weights(self, body: str) -> dict[str, float]:
        """IDF weight of each content word of ``body`` (unknown words weigh as the rarest)."""
        out = {}
        for t in dict.fromkeys(self.analyzer.tokens(body)):
            if t in QUESTION_WORDS:
                continue
            v = self.x.idf(t)
            out[t] = self.x.max_idf if v <= 0 else max(v, 0.05)
        return out

    def facts(self, body: str) -> list[str]:
        """Numbers and names in ``body``: what a passage must contain for the sentence to stand."""
        out = [m.group(0) for m in _NUMBER.finditer(body)]
        words = list(_WORD.finditer(body))
        for i, m in enumerate(words):
            w = m.group(0).strip("'’-")
            if not w or not w[0].isupper() or w.lower() in _NOT_NAMES or w.lower() in STOPWORDS \
                    or w.lower() in QUESTION_WORDS:
                continue
            acronym = len(w) >= 2 and w.isupper()
            nxt = words[i + 1].group(0) if i + 1 < len(words) else ""
            first = m.start() == 0 or body[:m.start()].strip() in ("", '"', "“", "(")
            if first and not acronym and not (nxt[:1].isupper() and nxt.lower() not in STOPWORDS):
                continue  # a sentence's first word is capitalised anyway
            out.append(w)
        return list(dict.fromkeys(out))

    @staticmethod
    def passage_text(hit: Hit) -> str:
        """What the model was shown of a passage: its text, title, outlet and date."""
        a = hit.article
        return " ".join(x for x in (a.title or a.display_title, a.source, a.date, hit.text) if x)

    def _fact_found(self, fact: str, text_low: str, nums: set[str], toks: set[str]) -> bool:
        """Whether a number or name of the sentence is in the passage text: numbers by value
        ("10.575" = "10575"), names by word (a stem-like prefix, or one typo in a long name:
        "Kemenkumham" ~ "KEMENKUKHAM"); "Covid-19" when "covid" and "19" are both there."""
        if fact[0].isdigit():
            return _norm_number(fact) in nums
        low = fact.lower()
        if low in _NUMBER_WORDS and _NUMBER_WORDS[low] in nums:
            return True
        if re.search(rf"(?<!\w){re.escape(low)}", text_low) or _matches(low, toks):
            return True
        parts = [x for x in re.split(r"[-‐'’]", low) if x]
        if len(parts) > 1:
            return all(self._fact_found(x, text_low, nums, toks) for x in parts)
        return len(low) >= 7 and any(_one_edit(low, t) for t in toks if abs(len(t) - len(low)) <= 1)

    # -- support --------------------------------------------------------------------------------
    def support(self, body: str, hits: Sequence[Hit], cands: Sequence[Candidate], sims: np.ndarray) -> Support:
        """Support of sentence ``body`` by ``hits``; ``cands`` are their sentences, ``sims`` the
        sentence's cosine similarity with each."""
        if not hits:
            return Support(False)
        ptext = " ".join(self.passage_text(h) for h in hits)
        low = expand(ptext).lower()
        toks = set(self.analyzer.tokens(expand(ptext)))
        nums = {_norm_number(t) for t in _NUMBER.findall(ptext)}
        nums |= {v for w, v in _NUMBER_WORDS.items() if re.search(rf"\b{w}\b", ptext.lower())}
        facts = self.facts(body)
        missing = [f for f in facts if not self._fact_found(f, low, nums, toks)]
        weights = self.weights(body)
        ids = {h.article.id for h in hits}
        spans = [(h.article.id, h.start, h.end) for h in hits]
        own = [i for i, c in enumerate(cands)
               if c.article.id in ids and any(a == c.article.id and s <= c.start and c.end <= e for a, s, e in spans)]
        dense = float(max((sims[i] for i in own), default=0.0))
        cross = detect_lang(body) != detect_lang(" ".join(h.text for h in hits))
        if cross:  # other words cannot be compared across languages: numbers and names only
            weights = {t: v for t, v in weights.items() if any(t == f.lower() or t == _norm_number(f) for f in facts)}
        total = sum(weights.values())
        toks |= {w for w, v in _NUMBER_WORDS.items() if v in nums}  # "tujuh" where the passage says "7"
        lexical = (sum(v for t, v in weights.items() if _matches(t, toks)) / total) if total else 0.0
        best = self._best(body, weights, cands, sims, own)
        if not weights and not facts:
            if cross:
                return Support(dense >= DENSE_CROSS_LANG and not missing, 0.0, dense, missing, True, best)
            return Support(True, 0.0, dense, [], False, best)  # nothing to check ("Berikut jawabannya:")
        ok = not missing and (lexical >= LEXICAL_MIN or (lexical >= LEXICAL_WITH_DENSE and dense >= DENSE_MIN)
                              or (cross and facts and not weights and dense >= DENSE_CROSS_LANG))
        return Support(ok, round(lexical, 4), round(dense, 4), missing, True, best)

    def _best(self, body: str, weights: dict[str, float], cands: Sequence[Candidate], sims: np.ndarray,
              own: list[int]) -> Optional[Candidate]:
        """The candidate sentence (of ``own``) that shares most of ``body``'s words, then meaning."""
        total = sum(weights.values()) or 1.0
        best, best_score = None, -1.0
        for i in own:
            c = cands[i]
            ctoks = set(self.analyzer.tokens(expand(c.text)))
            share = sum(v for t, v in weights.items() if _matches(t, ctoks)) / total
            score = share + 0.5 * float(sims[i]) - (0.05 if c.pair else 0.0)
            if score > best_score:
                best, best_score = c, score
        return best

    def prepare(self, sentences: Sequence[GenSentence], hits: Sequence[Hit]) -> tuple[list[Candidate], np.ndarray]:
        """The passages' candidate sentences and each generated sentence's similarity with them."""
        cands = self.x.candidates(hits)
        if self.x.encode is None or not cands or not sentences:
            return cands, np.zeros((len(sentences), len(cands)))
        vecs = self.x.encode([s.body for s in sentences] + [c.text for c in cands])
        return cands, np.asarray(vecs[:len(sentences)]) @ np.asarray(vecs[len(sentences):]).T

    def best_in(self, body: str, hit: Hit, cands: Sequence[Candidate], sims: np.ndarray) -> tuple[Optional[Candidate], float]:
        """The sentence of ``hit``'s passage that best supports ``body``, and its score."""
        own = [i for i, c in enumerate(cands) if c.article.id == hit.article.id and hit.start <= c.start
               and c.end <= hit.end]
        weights = self.weights(body)
        best = self._best(body, weights, cands, sims, own)
        if best is None:
            return None, -1.0
        total = sum(weights.values()) or 1.0
        share = sum(v for t, v in weights.items() if _matches(t, set(self.analyzer.tokens(expand(best.text))))) / total
        return best, share + 0.5 * float(sims[cands.index(best)])

    # -- the whole answer -------------------------------------------------------------------------
    def verify(self, raw: str, hits: Sequence[Hit], *, lang: str = "id", unsupported: str = "flag") -> Verified:
        """Check every sentence of generated ``raw`` against the passages ``hits`` (numbered from 1
        as in the prompt); build the answer text and its citations (see the module docstring)."""
        if unsupported not in ("flag", "remove"):
            raise ValueError(f"unsupported must be 'flag' or 'remove'; got {unsupported!r}")
        sents = split_generated(raw)
        cands, sims = self.prepare(sents, hits)
        numbers: dict[int, int] = {}  # passage number in the prompt -> citation number in the answer
        quotes: dict[int, tuple[Candidate, float, set[str]]] = {}
        parts: list[str] = []
        checks: list[SentenceCheck] = []
        note = phrase(lang, "unsupported")
        for i, s in enumerate(sents):
            valid = [n for n in s.markers if 1 <= n <= len(hits)]
            dropped = [n for n in s.markers if n not in valid]
            if not (self.weights(s.body) or self.facts(s.body)):
                checks.append(SentenceCheck(s.text, "unchecked", True, valid, dropped,
                                            reason="no content words to check"))
                parts.append(s.body)
                continue
            added, reason = False, ""
            if valid:
                sup = self.support(s.body, [hits[n - 1] for n in valid], cands, sims[i])
            else:
                sup, valid = self._any_passage(s.body, hits, cands, sims[i])
                added = sup.supported
                reason = (f"no marker; passage {valid[0]} supports it (marker added)" if added
                          else "no marker, and no passage supports it")
                valid = valid if added else []
            if sup.supported:
                ns = []
                for p in valid:
                    n = numbers.setdefault(p, len(numbers) + 1)
                    ns.append(n)
                    cand, score = self.best_in(s.body, hits[p - 1], cands, sims[i])
                    if cand is not None and (p not in quotes or score > quotes[p][1]):
                        quotes[p] = (cand, score, set(self.weights(s.body)))
                parts.append(_with_markers(s.body, sorted(set(ns))))
                checks.append(SentenceCheck(s.text, "supported", True, valid if not added else [], dropped,
                                            sup.lexical, sup.dense, [], reason or "supported by the cited passage",
                                            citation=ns[0] if ns else None, marker_added=added))
                continue
            if not reason:
                reason = self._why(s.body, sup, valid, hits, cands, sims[i])
            status = "flagged" if unsupported == "flag" else "removed"
            if status == "flagged":
                parts.append(f"{s.body.rstrip()} {note}")
            checks.append(SentenceCheck(s.text, status, False, valid, dropped, sup.lexical, sup.dense,
                                        sup.missing, reason))
        citations = []
        for p, n in sorted(numbers.items(), key=lambda kv: kv[1]):
            cand, score, terms = quotes[p]
            qs, qe = clip_quote(cand, None, terms)
            citations.append(Citation(n=n, article=cand.article, quote=cand.article.text[qs:qe], start=qs, end=qe,
                                      score=round(score, 4), passage_start=cand.passage_start,
                                      passage_end=cand.passage_end))
        return Verified(" ".join(p for p in parts if p).strip(), citations, checks)

    def _any_passage(self, body: str, hits: Sequence[Hit], cands, sims) -> tuple[Support, list[int]]:
        """For a sentence without markers: the passage that supports it best (or the best try)."""
        best: Optional[tuple[Support, int]] = None
        for n, h in enumerate(hits, start=1):
            sup = self.support(body, [h], cands, sims)
            key = (sup.supported, sup.lexical + sup.dense - len(sup.missing))
            if best is None or key > (best[0].supported, best[0].lexical + best[0].dense - len(best[0].missing)):
                best = (sup, n)
        return (best[0], [best[1]]) if best else (Support(False), [])

    def _why(self, body: str, sup: Support, cited: list[int], hits: Sequence[Hit], cands, sims) -> str:
        where = ", ".join(f"passage {n}" for n in cited)
        if sup.missing:
            why = f"{', '.join(repr(m) for m in sup.missing)} not in {where}"
        else:
            why = f"{where} supports too little of it (words {sup.lexical:.0%}, similarity {sup.dense:.2f})"
        others = [n for n in range(1, len(hits) + 1) if n not in cited
                  and self.support(body, [hits[n - 1]], cands, sims).supported]
        if others:
            why += f"; passage {others[0]} would support it (wrong citation)"
        return why


def _one_edit(a: str, b: str) -> bool:
    """``a`` and ``b`` differ by at most one inserted, deleted or replaced character."""
    if a == b:
        return True
    if len(a) > len(b):
        a, b = b, a
    if len(b) - len(a) > 1:
        return False
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), len(a))
    return a[i + (len(a) == len(b)):] == b[i + 1:]


def _with_markers(body: str, ns: list[int]) -> str:
    """``body`` with ``[n]`` markers before its final punctuation."""
    m = re.match(r"(.*?)([.!?…]*)$", body, re.S)
    marks = "".join(f"[{n}]" for n in ns)
    return f"{m.group(1).rstrip()} {marks}{m.group(2)}" if marks else body
