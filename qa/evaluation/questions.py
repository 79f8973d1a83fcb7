"""Evaluation questions: the JSONL format, its reader, and the tune / held-out split.

One JSON object per line::

    {"id": "q1", "question": "Siapa Kalapas Kelas IIB Amuntai?",
     "article": "001_4b26eca18300fe70",            # gold article id(s): a string or a list
     "answers": ["Dwi Hartono"],                    # gold answer strings (optional)
     "answerable": true,                            # false: the articles do not answer it
     "context": "..."}                              # the gold passage text (optional)

Accepted alternatives (so that existing sets load as they are):

* gold article: ``article``, ``articles``, ``article_id``, ``context_id`` (the ``qa_*.jsonl`` dev
  sets, whose passages are indexed one article per passage) or ``doc_id``;
* answers: ``answer`` (a string) or ``answers`` (strings, or objects with ``text`` as in SQuAD);
* answerable: ``answerable`` or its inverse ``is_impossible``; missing means answerable;
* ``context``: the gold passage (the ``qa_*.jsonl`` sets carry it): ``qa eval`` also gives the
  answerer this passage alone (the reader-only figures);
* ``id`` is optional (default: the line number); ``question_field`` picks another field as the
  question text (e.g. ``summary`` to use IndoSum summaries as queries for their own article).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

from ..errors import QAError

GOLD_FIELDS = ("article", "articles", "article_id", "context_id", "doc_id")


class QuestionFileError(QAError, ValueError):
    """A question (or pool) file cannot be read: the message names the file and line."""


class TooFewQuestionsError(QAError, ValueError):
    """Too few usable questions for a result that means anything (the message gives the count)."""


@dataclass(frozen=True)
class Question:
    """One evaluation question.

    ``articles``: ids of the articles (or pool passages) that answer it; empty when unknown.
    ``answers``: gold answer strings; empty when unknown. ``answerable``: False when the
    articles do not contain the answer (the answerer should abstain). ``context``: the gold passage
    text ("" when the file gives none). ``source``: file:line.
    """

    id: str
    question: str
    articles: tuple[str, ...] = ()
    answers: tuple[str, ...] = ()
    answerable: bool = True
    context: str = ""
    source: str = field(default="", compare=False)
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["articles"] = list(self.articles)
        d["answers"] = list(self.answers)
        return d


def _strings(value: Any, where: str, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list):
        raise QuestionFileError(f"{where}: field {name!r} must be a string or a list, got {type(value).__name__}")
    out = []
    for v in value:
        if isinstance(v, dict):  # SQuAD-style {"text": ..., "start": ...}
            v = v.get("text")
        if isinstance(v, (str, int)) and not isinstance(v, bool) and str(v).strip():
            out.append(str(v).strip())
        elif v is not None and not isinstance(v, str):
            raise QuestionFileError(f"{where}: field {name!r} holds a {type(v).__name__}; expected strings")
    return tuple(dict.fromkeys(out))


def jsonl_rows(path: str | os.PathLike, what: str) -> Iterator[tuple[int, str, Any]]:
    """``(line number, where, row)`` for each non-blank line of a JSONL file, ``where`` being
    ``file:line``.

    Read line by line (pool files can be large). Raises ``FileNotFoundError`` ("``what`` file not
    found: ...") and :class:`QuestionFileError` for text that is not UTF-8 or a line that is not
    valid JSON, naming the file and line. Rows are decoded JSON values; callers check their shape.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} file not found: {p}")
    with open(p, "rb") as f:
        for lineno, raw in enumerate(f, start=1):  # bytes, decoded per line: an error names its line
            where = f"{p}:{lineno}"
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")  # a leading BOM is allowed
            except UnicodeDecodeError as e:
                raise QuestionFileError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start} of the line)") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise QuestionFileError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None
            yield lineno, where, row


def json_object(row: Any, where: str) -> dict:
    """``row`` when it is a JSON object, else a :class:`QuestionFileError` naming ``where``."""
    if not isinstance(row, dict):
        raise QuestionFileError(f"{where}: expected a JSON object, got {type(row).__name__}")
    return row


def parse_question(row: Any, where: str, *, default_id: str, question_field: str = "question") -> Question:
    """One :class:`Question` from a decoded JSON row (``where`` names file:line in errors)."""
    row = json_object(row, where)
    text = row.get(question_field)
    if text is not None and not isinstance(text, str):
        raise QuestionFileError(f"{where}: field {question_field!r} (the question text) must be a string; "
                                f"got {type(text).__name__}")
    if not isinstance(text, str) or not text.strip():
        raise QuestionFileError(f"{where}: missing or empty field {question_field!r} (the question text)")
    gold: tuple[str, ...] = ()
    for name in GOLD_FIELDS:
        if row.get(name) not in (None, "", []):
            gold = _strings(row[name], where, name)
            break
    answers = _strings(row.get("answers", row.get("answer")), where, "answers")
    if "answerable" in row:
        answerable = row["answerable"]
    elif "is_impossible" in row:
        answerable = not row["is_impossible"] if isinstance(row["is_impossible"], bool) else row["is_impossible"]
    else:
        answerable = True
    if not isinstance(answerable, bool):
        raise QuestionFileError(f"{where}: 'answerable' / 'is_impossible' must be true or false, got {answerable!r}")
    qid = row.get("id", default_id)
    if not isinstance(qid, (str, int)) or isinstance(qid, bool) or str(qid) == "":
        raise QuestionFileError(f"{where}: field 'id' must be a non-empty string or number, got {qid!r}")
    context = row.get("context")
    if context is not None and not isinstance(context, str):
        raise QuestionFileError(f"{where}: field 'context' must be a string (the gold passage), got "
                                f"{type(context).__name__}")
    meta = {k: row[k] for k in ("lang", "type", "kind", "start", "end") if k in row}
    return Question(id=str(qid), question=text.strip(), articles=gold, answers=answers if answerable else (),
                    answerable=answerable, context=context or "", source=where, meta=meta)


def read_questions(path: str | os.PathLike, *, question_field: str = "question",
                   limit: Optional[int] = None) -> list[Question]:
    """Questions from a JSONL file (format in this module's docstring).

    Raises :class:`QuestionFileError` naming the file and line for a bad line, a duplicate id or
    an empty file, and ``FileNotFoundError`` when the file does not exist.
    """
    p = Path(path)
    out: list[Question] = []
    seen: dict[str, str] = {}
    for lineno, where, row in jsonl_rows(p, "question"):
        q = parse_question(row, where, default_id=f"line{lineno}", question_field=question_field)
        if q.id in seen:
            raise QuestionFileError(f"{where}: duplicate question id {q.id!r} (first at {seen[q.id]})")
        seen[q.id] = where
        out.append(q)
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise QuestionFileError(f"{p}: no questions (expected one JSON object per line)")
    return out


def load_questions(source: "str | os.PathLike | Iterable[Question | dict]", **kw: Any) -> list[Question]:
    """Questions from a file path, or from an iterable of :class:`Question` or row dicts."""
    if isinstance(source, (str, os.PathLike)):
        return read_questions(source, **kw)
    out = []
    for i, item in enumerate(source, start=1):
        if isinstance(item, Question):
            out.append(item)
        else:
            out.append(parse_question(item, f"question {i}", default_id=f"q{i}",
                                      question_field=kw.get("question_field", "question")))
    return out


def write_questions(path: str | os.PathLike, questions: Sequence[Question]) -> None:
    """Write questions as JSONL in the documented format (readable by :func:`read_questions`)."""
    p = Path(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", encoding="utf-8") as f:
        for q in questions:
            row = {"id": q.id, "question": q.question,
                   "article": q.articles[0] if len(q.articles) == 1 else list(q.articles),
                   "answers": list(q.answers), "answerable": q.answerable, **q.meta}
            if q.context:
                row["context"] = q.context
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def is_tuning_half(question_id: str) -> bool:
    """Deterministic split: True for the tuning half, False for the held-out half (hash of the id)."""
    return hashlib.sha256(question_id.encode("utf-8")).digest()[0] % 2 == 0


def split_halves(questions: Sequence[Question]) -> tuple[list[Question], list[Question]]:
    """(tuning half, held-out half), by :func:`is_tuning_half` of each question id."""
    tune = [q for q in questions if is_tuning_half(q.id)]
    held = [q for q in questions if not is_tuning_half(q.id)]
    return tune, held
