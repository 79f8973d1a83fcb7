"""Sentence splitting and chunking for Indonesian and English news text.

Sentences never break inside numbers ("10.575"), abbreviations ("Dr.", "H.", "Kab.", "No."),
dates such as "(14/07)", or a quotation. Chunks pack whole sentences up to about
``chunk_size`` characters, prefer paragraph boundaries, and repeat ``overlap`` sentences
between neighbours. Every span is given as character offsets into the article text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

# Lower-cased abbreviations (without the final period) after which a period does not end a sentence.
ABBREVIATIONS = frozenset("""
dr drs dra ir h hj kh prof jend pol purn brig brigjen kol letkol mayjen irjen kombes akbp kapt
kab kec kel kota prov jl jln gg no nomor hal tel telp hp rt rw
st sh se mm mh msi mhum mpd mkes mba spd skm sked amd bsc ba ma phd
sdr sdri bpk yth an ybs dll dsb dst tsb tgl thn th bln
mr mrs ms messrs mt mts jr sr inc ltd co corp vs etc eg ie approx fig ref vol
""".split())

_CANDIDATE = re.compile(r'[.!?]+["”’)\]]*(?=\s)')
_NEXT_START = re.compile(r'\s+(?=["“‘(\[]?[A-Z0-9À-ÖØ-Þ])')
_OPEN_QUOTES = {"“": "”", "‘": "’"}


@dataclass(frozen=True)
class Span:
    """A sentence or chunk: ``text[start:end]``; ``para`` is the paragraph index."""

    start: int
    end: int
    para: int = 0


def paragraphs(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each paragraph (separated by blank lines or line breaks), stripped."""
    for m in re.finditer(r"[^\n]+(?:\n(?!\s*\n)[^\n]+)*", text):
        s, e = m.start(), m.end()
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            yield s, e


def _word_before(text: str, pos: int) -> str:
    """The word ending right before ``pos`` (a period), e.g. ``Dr`` or ``S.H`` -> ``sh``."""
    i = pos
    while i > 0 and (text[i - 1].isalnum() or text[i - 1] == "."):
        i -= 1
    return text[i:pos].replace(".", "").lower()


def _in_quote(text: str, start: int, pos: int) -> bool:
    """Whether ``pos`` lies inside an open quotation that began at or after ``start``."""
    curly = 0
    straight = 0
    for ch in text[start:pos]:
        if ch == "“":
            curly += 1
        elif ch == "”":
            curly = max(0, curly - 1)
        elif ch == '"':
            straight ^= 1
    return curly > 0 or straight == 1


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Sentence spans of ``text[start:end]``, never crossing a paragraph boundary."""
    end = len(text) if end is None else end
    out: list[Span] = []
    for pi, (ps, pe) in enumerate(paragraphs(text[start:end])):
        ps += start
        pe += start
        s = ps
        for m in _CANDIDATE.finditer(text, ps, pe):
            cut = m.end()
            if cut >= pe:
                break
            nxt = _NEXT_START.match(text, cut, pe)
            if not nxt:
                continue
            punct = m.group(0)
            if punct[0] == "." and len(punct.rstrip('"”’)]')) == 1:
                word = _word_before(text, m.start())
                if word in ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                    continue
                if word.isdigit() and len(word) <= 2 and text[m.start() - len(word) - 1: m.start() - len(word)] in (" ", "("):
                    # "No. 5. Berikut" is a boundary, but "tanggal 5. " rarely; keep numbers conservative
                    pass
            if _in_quote(text, s, cut):
                continue
            out.append(Span(s, cut, pi))
            s = nxt.end()
        if s < pe:
            out.append(Span(s, pe, pi))
    return out


def chunk_spans(text: str, *, chunk_size: int = 700, overlap: int = 1) -> list[Span]:
    """Pack sentences of ``text`` into chunks of about ``chunk_size`` characters.

    A chunk ends at a paragraph boundary once it is at least half full; a single sentence longer
    than ``chunk_size`` forms a chunk of its own. ``overlap`` sentences are repeated at the start
    of the next chunk (only within a run of sentences, and never so that no progress is made).
    """
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    if overlap < 0:
        raise ValueError("overlap must be >= 0")
    sents = split_sentences(text)
    chunks: list[Span] = []
    i = 0
    n = len(sents)
    while i < n:
        j = i
        while j + 1 < n:
            nxt = sents[j + 1]
            length = nxt.end - sents[i].start
            if length > chunk_size:
                break
            if nxt.para != sents[j].para and (sents[j].end - sents[i].start) >= chunk_size // 2:
                break
            j += 1
        chunks.append(Span(sents[i].start, sents[j].end, sents[i].para))
        if j + 1 >= n:
            break
        nxt_i = j + 1 - overlap
        # overlap only inside a paragraph, and always move forward
        if nxt_i <= i or sents[nxt_i].para != sents[j + 1].para:
            nxt_i = j + 1
        i = nxt_i
    return chunks
