"""Evaluation over a pool of passages (``--pool FILE``): each passage becomes one article.

A pool is a JSONL file of ``{"context_id" | "id" | "doc_id": ..., "text": ...}`` rows (optional
``title``, ``source``, ``date``, ``url``), e.g. ``passages_dev_pool.jsonl``: the raw passage text
is the article text and the id is the article id, so a question's ``context_id`` is its gold
article. The pool is indexed once into a cache folder (default ``index/eval-pool/<name>-<hash of
the pool's path>``) and reused while the pool and the build settings are unchanged; a rebuild with
other analyzer settings re-uses the stored embeddings (they are keyed by passage text).
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

from ..assistant import Assistant
from ..encoders import Encoder, make_encoder
from ..config import Config
from ..ingest import Corpus, Problem, content_hash
from ..stores import build_index
from ..types import Article
from .questions import Question, QuestionFileError, json_object, jsonl_rows

log = logging.getLogger("qa")

ID_FIELDS = ("context_id", "id", "doc_id")
DEFAULT_POOL_ROOT = Path("index") / "eval-pool"


def load_pool(path: str | os.PathLike) -> Corpus:
    """One :class:`~qa.types.Article` per pool line (raw text, no cleaning).

    A repeated id is an error naming the line; a passage whose text repeats an earlier one is
    indexed once and listed in ``Corpus.duplicates`` as ``(dropped id, kept id)`` (see
    :func:`remap_gold`).
    """
    p = Path(path)
    articles: list[Article] = []
    problems: list[Problem] = []
    duplicates: list[tuple[str, str]] = []
    ids: dict[str, int] = {}
    by_hash: dict[str, str] = {}
    for lineno, where, row in jsonl_rows(p, "pool"):
        row = json_object(row, where)
        rid = next((row[k] for k in ID_FIELDS if row.get(k) not in (None, "")), None)
        text = row.get("text")
        if rid is None or not isinstance(text, str) or not text.strip():
            raise QuestionFileError(f"{where}: a pool passage needs an id ({' / '.join(ID_FIELDS)}) and a "
                                    "non-empty 'text'")
        rid = str(rid)
        if rid in ids:
            raise QuestionFileError(f"{where}: duplicate passage id {rid!r} (first on line {ids[rid]})")
        ids[rid] = lineno
        h = content_hash(text)
        if h in by_hash:
            duplicates.append((rid, by_hash[h]))
            continue
        by_hash[h] = rid

        def opt(name: str) -> Optional[str]:
            v = row.get(name)
            return str(v) if v not in (None, "") else None

        articles.append(Article(id=rid, title=opt("title"), text=text, source=opt("source"), date=opt("date"),
                                url=opt("url"), content_hash=h))
    if duplicates:
        log.info("%s: %d passage(s) repeat an earlier one's text; indexed once", p, len(duplicates))
    return Corpus(articles=articles, problems=problems, duplicates=duplicates, files=1)


def remap_gold(questions: Sequence[Question], duplicates: Sequence[tuple[str, str]]) -> list[Question]:
    """Questions whose gold article was dropped as a duplicate point at the kept copy instead."""
    alias = dict(duplicates)
    if not alias:
        return list(questions)
    from dataclasses import replace

    return [replace(q, articles=tuple(dict.fromkeys(alias.get(a, a) for a in q.articles))) if
            any(a in alias for a in q.articles) else q for q in questions]


def pool_index_dir(pool: str | os.PathLike, root: str | os.PathLike = DEFAULT_POOL_ROOT) -> Path:
    """The cache folder of a pool's index: ``<root>/<file stem>-<hash of its absolute path>``."""
    p = Path(pool).resolve()
    return Path(root) / f"{p.stem}-{hashlib.sha256(str(p).encode()).hexdigest()[:10]}"


def pool_assistant(pool: str | os.PathLike, index_dir: Optional[str | os.PathLike] = None,
                   config: Optional[Config] = None, *, embedder: Optional[Encoder] = None,
                   progress: bool = False) -> tuple[Assistant, Corpus]:
    """Build (or reuse) the index of a pool and load it; returns the assistant and the pool corpus.

    ``config`` gives the build settings (default: :class:`Config` defaults) and, when given, the
    retrieval settings; without it the index's own (possibly tuned) settings are used.
    """
    build_cfg = config or Config()
    corpus = load_pool(pool)
    d = Path(index_dir) if index_dir else pool_index_dir(pool)
    embedder = embedder or make_encoder(build_cfg.model, device=build_cfg.device, batch_size=build_cfg.batch_size)
    report = build_index(str(pool), d, build_cfg, corpus=corpus, embedder=embedder, progress=progress)
    if report.skipped:
        log.info("pool index %s is up to date (%d passages, %d chunks)", d, report.articles, report.chunks)
    else:
        log.info("indexed pool %s: %d passages, %d chunks (%d embedded) in %.0fs -> %s", pool, report.articles,
                 report.chunks, report.embedded, report.seconds, d)
    return Assistant.load(d, config, verify=False, embedder=embedder), corpus
