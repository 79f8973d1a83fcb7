"""Training pairs for adapting the embedding model: labelled (question, passage) pairs from a
JSONL file, self-supervised pairs from the user's own articles, and BM25-mined hard negatives.

Labelled pairs use the evaluation question format (``docs/evaluation.md``) plus the passage
text: ``{"question": ..., "context": "the passage"}`` (the ``qa_*.jsonl`` dev-set format as is),
or ``query``/``anchor`` for the question and ``passage``/``positive``/``text`` for the passage.
Rows marked unanswerable (``is_impossible: true`` / ``answerable: false``) are skipped: their
passage does not answer them.

Self-supervised pairs (no questions needed), per chunk of an article as the index chunks it:

* inverse cloze: one sentence of the chunk is the query, the rest of the chunk the passage (the
  sentence stays in the passage one time in ten, so that the model also learns plain overlap);
* title: the article title is the query for its first chunk.
"""
from __future__ import annotations

import hashlib
import logging
import os
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

from ..chunking import chunk_spans, split_sentences
from ..evaluation.questions import QuestionFileError, json_object, jsonl_rows
from ..ingest import Corpus, load_corpus

log = logging.getLogger("qa")

QUERY_FIELDS = ("question", "query", "anchor")
PASSAGE_FIELDS = ("context", "passage", "positive", "text")
GROUP_FIELDS = ("context_id", "article", "article_id", "doc_id")


@dataclass(frozen=True)
class Pair:
    """One training example: ``query`` should embed close to ``positive``.

    ``group``: id of the passage's article (negatives are never taken from it); ``answers``: gold
    answer strings (a mined negative containing one is not used); ``negative``: a hard negative
    passage or None; ``source``: file:line or article id.
    """

    query: str
    positive: str
    group: str = ""
    answers: tuple[str, ...] = ()
    negative: Optional[str] = None
    source: str = ""


def _first(row: dict, names: Sequence[str]) -> Optional[str]:
    for n in names:
        v = row.get(n)
        if isinstance(v, str) and v.strip():
            return v.strip()
    return None


def read_pairs(path: str | os.PathLike, *, limit: Optional[int] = None) -> tuple[list[Pair], int]:
    """(pairs, skipped unanswerable rows) from a JSONL file; a bad line raises
    :class:`~qa.evaluation.QuestionFileError` naming ``file:line``."""
    p = Path(path)
    pairs: list[Pair] = []
    skipped = 0
    for _, where, row in jsonl_rows(p, "pairs"):
        row = json_object(row, where)
        query, passage = _first(row, QUERY_FIELDS), _first(row, PASSAGE_FIELDS)
        if query is None or passage is None:
            raise QuestionFileError(
                f"{where}: a training pair needs a question ({' / '.join(QUERY_FIELDS)}) and its passage "
                f"({' / '.join(PASSAGE_FIELDS)}) as non-empty strings")
        if row.get("is_impossible") is True or row.get("answerable") is False:
            skipped += 1
            continue
        answers = []
        for a in row.get("answers") or ([row["answer"]] if row.get("answer") else []):
            text = a.get("text") if isinstance(a, dict) else a
            if isinstance(text, str) and text.strip():
                answers.append(text.strip())
        group = next((str(row[g]) for g in GROUP_FIELDS if row.get(g) not in (None, "", [])), None)
        group = group or hashlib.sha256(passage.encode()).hexdigest()[:16]
        pairs.append(Pair(query=query, positive=passage, group=group, answers=tuple(answers), source=where))
        if limit is not None and len(pairs) >= limit:
            break
    if not pairs:
        raise QuestionFileError(f"{p}: no usable (question, passage) pair (expected one JSON object per line)")
    return pairs, skipped


def load_articles(path: str | os.PathLike) -> Corpus:
    """Articles of a corpus folder, or of a JSONL pool file (one passage per line, as ``--pool``)."""
    p = Path(path)
    if p.is_file():
        from ..evaluation.pool import load_pool

        return load_pool(p)
    return load_corpus(p)


def corpus_pairs(corpus: Corpus, *, max_pairs: Optional[int] = None, chunk_size: int = 700,
                 title_pairs: bool = True, min_words: int = 4, keep_sentence: float = 0.1,
                 seed: int = 13) -> list[Pair]:
    """Self-supervised pairs from articles (inverse cloze per chunk, title -> first chunk).

    At most one inverse-cloze pair per chunk and one title pair per article; when there are more
    than ``max_pairs``, a seeded random sample of them (the same every run).
    """
    rng = random.Random(seed)
    out: list[Pair] = []
    for art in corpus.articles:
        text = art.text
        spans = chunk_spans(text, chunk_size=chunk_size, overlap=0)
        for ci, ch in enumerate(spans):
            sents = [s for s in split_sentences(text, ch.start, ch.end)]
            if title_pairs and ci == 0 and art.title and len(art.title.split()) >= 3:
                out.append(Pair(query=art.title, positive=text[ch.start:ch.end], group=art.id,
                                source=f"{art.id} (title)"))
            usable = [s for s in sents if len(text[s.start:s.end].split()) >= min_words]
            if len(sents) < 2 or not usable:
                continue
            s = rng.choice(usable)
            query = text[s.start:s.end].strip()
            if rng.random() < keep_sentence:
                passage = text[ch.start:ch.end]
            else:
                passage = (text[ch.start:s.start] + " " + text[s.end:ch.end]).strip()
            if len(passage.split()) < min_words:
                continue
            if art.title:
                passage = f"{art.title}\n{passage}"
            out.append(Pair(query=query, positive=passage, group=art.id, source=f"{art.id} chunk {ci}"))
    if max_pairs is not None and len(out) > max_pairs:
        out = rng.sample(out, max_pairs)
    return out


def mine_hard_negatives(pairs: Sequence[Pair], candidates: Sequence[tuple[str, str]], *, depth: int = 10,
                        seed: int = 13) -> tuple[list[Pair], int]:
    """Give each pair a hard negative: the passage BM25 ranks highest for its query among
    ``candidates`` ((text, group) tuples) that is not from the pair's article, is not its positive
    and contains none of its gold answers. Returns (pairs, how many got one)."""
    from ..analyzer import Analyzer
    from ..config import Config
    from ..lexical import make_lexical

    texts = list(dict.fromkeys(t for t, _ in candidates))
    groups: dict[str, set[str]] = {}
    for t, g in candidates:
        groups.setdefault(t, set()).add(g)
    analyzer = Analyzer()
    cfg = Config()
    bm25 = make_lexical([analyzer.tokens(t) for t in texts], k1=cfg.bm25_k1, b=cfg.bm25_b)
    out: list[Pair] = []
    found = 0
    for pair in pairs:
        neg = None
        answers = [a.lower() for a in pair.answers]
        for i, _score in bm25.search(analyzer.tokens(pair.query), depth):
            t = texts[i]
            if pair.group in groups[t] or t == pair.positive or pair.positive in t or t in pair.positive:
                continue
            if any(a in t.lower() for a in answers):
                continue
            neg = t
            break
        found += neg is not None
        out.append(replace(pair, negative=neg))
    return out, found


__all__ = ["Pair", "corpus_pairs", "load_articles", "mine_hard_negatives", "read_pairs"]
