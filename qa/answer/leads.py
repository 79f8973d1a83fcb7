"""The answer's lead (the shortest span that answers) and the quote window around it.

With the span reader (:mod:`.reader`): it reads the best candidate's paragraph and the candidate
itself in one batch (:func:`read_best`); the more probable of the two spans leads when its
probability reaches ``[answer] reader_threshold`` (:func:`reader_lead`), and the quote becomes the
candidate sentence that holds it (the paragraph's span may sit in a neighbouring sentence). Both
readings also go into the decline decision (:mod:`.answerability`). Without the reader (torch missing,
``reader = "off"``) the question-kind patterns of :mod:`.spans` pick a number, a name or a date next
to the question's words (:func:`pattern_lead`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from .spans import _spans
from ..synonyms import spell_out

MAX_QUOTE_CHARS = 320


@dataclass(frozen=True)
class Reading:
    """One span the reader found: ``span`` (offsets into the text read) and where that text starts
    in the article (``offset``); ``span`` None: nothing to read. ``cand``: the other candidate that
    was read (None: the best candidate or its paragraph)."""

    span: Any
    offset: int
    cand: Any = None


def read_best(reader, question: str, best, others: Sequence = ()) -> list[Reading]:
    """The reader's best span of ``best``'s paragraph and of ``best`` itself (that order), then of
    each of ``others`` alone (:func:`pick_others`; ``Reading.cand`` set), in one batch: each text is
    read with ``question``'s abbreviations written out, except those the text itself writes and never
    spells out (:func:`~qa.synonyms.spell_out`)."""
    text = best.article.text
    views = [(best.passage_start, max(best.passage_end, best.end)), (best.start, best.end)]
    texts = [text[lo:hi] for lo, hi in views] + [c.article.text[c.start:c.end] for c in others]
    spans = reader.read_many([spell_out(question, t) for t in texts], texts)
    return ([Reading(s, lo) for s, (lo, _) in zip(spans, views)] +
            [Reading(s, c.start, c) for s, c in zip(spans[len(views):], others)])


def pick_others(cands: Sequence, n: int) -> list:
    """Up to ``n`` candidates after ``cands[0]``, best first, each the best of a paragraph not seen yet."""
    seen = {(cands[0].article.id, cands[0].passage_start)} if cands else set()
    picked = []
    for c in cands[1:]:
        if len(picked) >= n:
            break
        if (c.article.id, c.passage_start) not in seen:
            seen.add((c.article.id, c.passage_start))
            picked.append(c)
    return picked


def reader_lead(readings: Sequence[Reading], cands: Sequence, threshold: float) -> tuple[Optional[str], int, Any]:
    """(lead, offset in the article, the candidate to quote first) from the most probable reading;
    (None, -1, cands[0]) when it is below ``threshold`` or no candidate sentence holds it. The
    readings are of ``cands[0]``'s article (:func:`read_best`; those of other candidates are left out)."""
    best = cands[0]
    got = [r for r in readings if r.span is not None and r.cand is None]
    if not got:
        return None, -1, best
    r = max(got, key=lambda r: r.span.probability)
    if r.span.probability < threshold:
        return None, -1, best
    text = best.article.text
    s, e = r.offset + r.span.start, r.offset + r.span.end
    while e > s and (text[e - 1] in " ,;:" or (text[e - 1] == "." and e - s > 1 and not text[e - 2].isupper())):
        e -= 1
    while s < e and text[s].isspace():
        s += 1
    if s >= e:
        return None, -1, best
    holders = [c for c in cands if c.article.id == best.article.id and c.start <= s and e <= c.end]
    if not holders:
        return None, -1, best
    quote = best if best in holders else max(holders, key=lambda c: (not c.pair, c.score))
    return text[s:e], s, quote


def pattern_lead(analyzer, kind: Optional[str], c, terms: set[str]) -> Optional[str]:
    """A span of the question's kind (number, person, date) in ``c``, nearest to the question's words."""
    if kind not in ("number", "person", "date"):
        return None
    text = c.text
    spans = [(s, e) for s, e in _spans(kind, text) if not (set(analyzer.tokens(text[s:e])) <= terms)]
    if not spans:
        return None
    pos = [m.start() for t in terms for m in re.finditer(re.escape(t), text.lower())]
    if pos:
        spans.sort(key=lambda se: min(abs(se[0] - p) for p in pos))
    s, e = spans[0]
    return text[s:e].strip(" ,.;:") or None


def clip_quote(c, lead: Optional[tuple[int, int]], terms: set[str]) -> tuple[int, int]:
    """Offsets of the quote: the whole candidate, or a window of it around the answer (``lead``:
    offsets in the article of the lead, or of the reader's span that was not confident enough to
    lead; always inside the window); without one, the window that holds the most of the question's
    words (``terms``), the earliest of equals."""
    if c.end - c.start <= MAX_QUOTE_CHARS:
        return c.start, c.end
    text = c.article.text
    low = text[c.start:c.end].lower()
    if lead and lead[0] >= c.start:
        s = max(0, lead[0] - c.start - MAX_QUOTE_CHARS // 2)
    else:
        s = _densest_window(low, terms)
    e = min(len(low), s + MAX_QUOTE_CHARS)
    s = max(0, e - MAX_QUOTE_CHARS)
    while s > 0 and not low[s - 1].isspace():  # to word boundaries
        s += 1
    while e < len(low) and not low[e].isspace() and e > s:
        e -= 1
    qs, qe = c.start + s, c.start + e
    while qs < qe and text[qs].isspace():
        qs += 1
    while qe > qs and text[qe - 1] in " ,;":
        qe -= 1
    if lead:  # the lead stays inside its quote
        qs, qe = min(qs, lead[0]), max(qe, lead[1])
    return qs, qe


def _densest_window(low: str, terms: set[str]) -> int:
    """Start of the ``MAX_QUOTE_CHARS`` window of ``low`` holding the most distinct ``terms``, those
    words centred in it (an answer sits next to the question's words, before or after them); the
    windows tried centre each term occurrence; 0 when none occurs."""
    found = [(m.start(), m.end(), t) for t in terms if t for m in re.finditer(re.escape(t), low)]
    best, best_key = 0, (0, 0.0)
    for a0, _, _ in found:
        s = min(max(0, a0 - MAX_QUOTE_CHARS // 2), max(0, len(low) - MAX_QUOTE_CHARS))
        inside = [(a, b, t) for a, b, t in found if s <= a and b <= s + MAX_QUOTE_CHARS]
        mid = (min(a for a, _, _ in inside) + max(b for _, b, _ in inside)) / 2
        key = (len({t for _, _, t in inside}), -abs(mid - (s + MAX_QUOTE_CHARS / 2)))
        if key > best_key:
            best, best_key = s, key
    return best


__all__ = ["MAX_QUOTE_CHARS", "Reading", "clip_quote", "pattern_lead", "pick_others", "read_best", "reader_lead"]
