"""Add and remove articles of a corpus folder, then bring its index up to date (``qa add``,
``qa remove``, the chat's Articles panel).

- :func:`add_files` checks uploaded ``(name, bytes)`` items (name, type, size, count), reads each
  with the readers and rules of ``qa index`` and writes the accepted ones into the corpus folder
  atomically; :func:`remove_articles` moves removed articles into ``<corpus>/.trash/`` (ingestion
  skips dot-folders), so nothing is lost silently.
- :class:`LiveAssistant` serves an :class:`~qa.Assistant` while its index is updated: one writer at
  a time, the new index loaded completely before the swap, and an older index's data folder kept
  until no request reads it any more. Readers never see a half-updated index.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional

from .assistant import Assistant
from .errors import QAError
from .ingest import SUPPORTED_EXTS, load_corpus
from .stores import BuildReport, build_index, read_manifest

log = logging.getLogger("qa")

TRASH = ".trash"
MAX_NAME_BYTES = 200
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f/\\:]")

__all__ = ["FileResult", "RemoveResult", "UploadLimits", "UploadError", "LiveAssistant", "add_files",
           "remove_articles", "TRASH"]


class UploadError(QAError):
    """Writing is not possible (off, or an index that cannot be updated from here)."""


@dataclass(frozen=True)
class UploadLimits:
    """Most files in one upload and largest file (bytes)."""

    max_files: int = 50
    max_bytes: int = 8 * 2**20

    @classmethod
    def from_config(cls, config) -> "UploadLimits":
        return cls(max_files=config.upload_max_files, max_bytes=int(config.upload_max_mb * 2**20))


@dataclass(frozen=True)
class FileResult:
    """What happened to one uploaded file: ``added``, ``updated`` or ``skipped`` (with the reason)."""

    name: str
    status: str
    reason: str = ""
    article_ids: tuple[str, ...] = ()

    def __str__(self) -> str:
        ids = f" ({', '.join(self.article_ids)})" if self.article_ids else ""
        return f"{self.name}: {self.status}{ids}" + (f" - {self.reason}" if self.reason else "")


@dataclass(frozen=True)
class RemoveResult:
    """What happened to one article id: ``removed`` (its text kept in ``trash``) or ``not found``."""

    id: str
    status: str
    trash: str = ""

    def __str__(self) -> str:
        return f"{self.id}: {self.status}" + (f" (kept in {self.trash})" if self.trash else "")


def check_name(name: str, limits: UploadLimits) -> Optional[str]:
    """Why ``name`` cannot be a corpus file name (None when it can): a plain name, no folder."""
    if not isinstance(name, str) or not name.strip():
        return "no file name"
    if _BAD_NAME.search(name) or name in (".", ".."):
        return "file name must be a plain name (no folder, no control characters)"
    if name.startswith("."):
        return "hidden file names (starting with '.') are not read as articles"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "file name is not valid Unicode"
    if size > MAX_NAME_BYTES:
        return f"file name too long ({size} bytes; the limit is {MAX_NAME_BYTES})"
    ext = Path(name).suffix.lower()
    if ext not in SUPPORTED_EXTS or not Path(name).stem.strip():
        return f"unsupported file type {ext or '(none)'}; supported: {', '.join(sorted(SUPPORTED_EXTS))}"
    if name.lower() in {"readme.md", "readme.txt"}:
        return "README files are not read as articles"
    return None


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 / 10 else f"{n / 1024:.0f} KiB"


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _to_trash(corpus: Path, rel: str, data: bytes) -> Path:
    """Keep ``data`` (a replaced or removed file, or removed records) in ``<corpus>/.trash/``."""
    trash = corpus / TRASH
    trash.mkdir(exist_ok=True)
    safe = rel.replace("/", "__")
    dest = trash / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}-{safe}"
    _atomic_write(dest, data)
    return dest


def add_files(items: Iterable[tuple[str, bytes | os.PathLike]], corpus_dir: str | os.PathLike,
              limits: UploadLimits = UploadLimits()) -> list[FileResult]:
    """Check and write uploaded files into ``corpus_dir``; one :class:`FileResult` per item, in order.

    An item is (file name, its bytes), or (file name, the path of a file holding them: an upload's
    temporary file, read only when within the size limit).

    A file is read exactly as ``qa index`` reads it (same readers, same reasons for skipping).
    Skipped: a bad name, type or size, a file over the count limit, an unreadable file or one with
    no article left, one whose articles are all already in the corpus, one whose article id another
    file already has, the same bytes as the file of that name (``unchanged``). A file of the same
    name with other content is ``updated`` (the old one kept in ``.trash/``). Does not touch the index.
    """
    corpus = Path(corpus_dir)
    corpus.mkdir(parents=True, exist_ok=True)
    existing = load_corpus(corpus)
    by_hash = {a.content_hash: a.id for a in existing.articles}
    owner = {a.id: os.path.relpath(a.path, corpus) for a in existing.articles if a.path}
    results: list[FileResult] = []
    batch_names: set[str] = set()
    for n, (name, data) in enumerate(items):
        def skip(reason: str) -> None:
            results.append(FileResult(str(name), "skipped", reason))

        if n >= limits.max_files:
            skip(f"over the limit of {limits.max_files} files per upload")
            continue
        bad = check_name(name, limits)
        if bad:
            skip(bad)
            continue
        size = len(data) if isinstance(data, (bytes, bytearray)) else os.path.getsize(data)
        if size > limits.max_bytes:
            skip(f"file too large: {_size(size)} (the upload limit is {_size(limits.max_bytes)})")
            continue
        if not isinstance(data, (bytes, bytearray)):
            data = Path(data).read_bytes()
        if name.lower() in batch_names:
            skip("another file of this upload has the same name")
            continue
        batch_names.add(name.lower())
        target = corpus / name
        if target.is_symlink() or (target.exists() and not target.is_file()):
            skip("the corpus folder has something other than a file of this name")
            continue
        old = target.read_bytes() if target.is_file() else None
        if old == data:
            skip("unchanged: the corpus already has this file")
            continue
        with tempfile.TemporaryDirectory(dir=corpus, prefix=".upload-check-") as tmp:
            (Path(tmp) / name).write_bytes(data)
            parsed = load_corpus(tmp)
        reasons = [str(p).replace(tmp + os.sep, "") for p in parsed.problems]  # as `qa index` words them
        if not parsed.articles:
            skip("; ".join(reasons[:3]) or "no article in the file")
            continue
        mine = {a.id for a in existing.articles if a.path and Path(a.path) == target}
        taken = [a.id for a in parsed.articles if a.id in owner and a.id not in mine]
        if taken:
            skip(f"article id {taken[0]!r} is already used by {owner[taken[0]]}; rename the file")
            continue
        new = [a for a in parsed.articles if by_hash.get(a.content_hash) in (None, *mine)]
        if not new:
            dup = by_hash[parsed.articles[0].content_hash]
            skip(f"same text as article {dup!r}, already in the corpus")
            continue
        if old is not None:
            _to_trash(corpus, name, old)
        _atomic_write(target, data)
        for a in new:
            by_hash[a.content_hash] = a.id
            owner[a.id] = name
        notes = reasons + [f"{len(parsed.articles) - len(new)} article(s) already in the corpus, indexed once"
                           ] if len(new) < len(parsed.articles) else reasons
        results.append(FileResult(name, "updated" if old is not None else "added", "; ".join(notes[:3]),
                                  tuple(a.id for a in new)))
    return results


def _record_id(obj: object, default_id: str) -> Optional[str]:
    if not isinstance(obj, dict):
        return None
    for key in ("id", "doc_id"):
        v = obj.get(key)
        if v not in (None, "") and str(v).strip():
            return str(v).strip()
    return default_id


def remove_articles(ids: Iterable[str], corpus_dir: str | os.PathLike) -> list[RemoveResult]:
    """Remove articles (by id) from ``corpus_dir``; their text goes to ``<corpus>/.trash/``.

    A one-article file moves there whole. From a ``.jsonl`` file only the article's line is taken
    out (left blank, so the ids of the other lines stay); from a ``.json`` list, its record. Does not
    touch the index.
    """
    corpus = Path(corpus_dir)
    loaded = load_corpus(corpus)
    where = {a.id: Path(a.path) for a in loaded.articles if a.path}
    per_file: dict[Path, list[str]] = {}
    for path in {where[i] for i in where}:
        per_file[path] = [a.id for a in loaded.articles if a.path and Path(a.path) == path]
    results = []
    for aid in dict.fromkeys(str(i).strip() for i in ids):
        path = where.get(aid)
        if path is None or not path.is_file():
            results.append(RemoveResult(aid, "not found"))
            continue
        rel = path.relative_to(corpus).as_posix()
        if per_file.get(path) == [aid]:
            dest = corpus / TRASH / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}-{rel.replace('/', '__')}"
            dest.parent.mkdir(exist_ok=True)
            os.replace(path, dest)
        else:
            dest = _remove_record(corpus, path, rel, aid)
        per_file[path] = [i for i in per_file.get(path, []) if i != aid]
        del where[aid]
        results.append(RemoveResult(aid, "removed", dest.relative_to(corpus).as_posix()))
    return results


def _remove_record(corpus: Path, path: Path, rel: str, aid: str) -> Path:
    """Take the record of ``aid`` out of a JSON/JSONL file of several articles (atomically)."""
    stem_id = Path(rel).with_suffix("").as_posix()
    text = path.read_text(encoding="utf-8-sig")
    removed: list[str] = []
    if path.suffix.lower() == ".json":
        items = json.loads(text)
        keep = [o for i, o in enumerate(items) if _record_id(o, f"{stem_id}#{i}") != aid]
        removed = [json.dumps(o, ensure_ascii=False) for o in items if o not in keep]
        new = json.dumps(keep, ensure_ascii=False, indent=1) + "\n"
    else:
        lines = text.split("\n")
        for n, line in enumerate(lines, start=1):
            try:
                obj = json.loads(line) if line.strip() else None
            except (ValueError, RecursionError):
                continue
            if obj is not None and _record_id(obj, f"{stem_id}#{n}") == aid:
                removed.append(line)
                lines[n - 1] = ""  # blank: the line numbers (ids) of the other records stay
        new = "\n".join(lines)
    dest = _to_trash(corpus, rel, ("\n".join(removed) + "\n").encode("utf-8"))
    _atomic_write(path, new.encode("utf-8"))
    return dest


@dataclass
class Update:
    """One change through :class:`LiveAssistant`: per-file or per-id results and the rebuild."""

    files: list[FileResult] = field(default_factory=list)
    removed: list[RemoveResult] = field(default_factory=list)
    build: Optional[BuildReport] = None
    seconds: float = 0.0


class LiveAssistant:
    """The assistant a server answers with, updated in place when articles are added or removed.

    ``with live.use() as assistant:`` gives the current assistant for one request; an update
    builds the new index (embedding only new text), loads it completely, then swaps it in.
    Requests that started before keep the one they have; its data folder is removed when the last
    of them ends. One update at a time (a lock); ``writable=False`` refuses every change.
    """

    def __init__(self, assistant: Assistant, corpus_dir: str | os.PathLike = "corpus", *,
                 writable: bool = False, limits: Optional[UploadLimits] = None):
        self._current = assistant
        self.corpus_dir = Path(corpus_dir)
        self.writable = writable
        self.limits = limits or UploadLimits.from_config(assistant.config)
        self._write = threading.Lock()
        self._state = threading.Lock()
        self._leases: dict[int, list] = {}  # id(assistant) -> [assistant, requests reading it]
        self._retired: dict[int, Assistant] = {}

    @property
    def current(self) -> Assistant:
        return self._current

    @contextmanager
    def use(self) -> Iterator[Assistant]:
        """The current assistant, kept (with its index files) until the block ends."""
        with self._state:
            a = self._current
            self._leases.setdefault(id(a), [a, 0])[1] += 1
        try:
            yield a
        finally:
            with self._state:
                entry = self._leases[id(a)]
                entry[1] -= 1
                done = entry[1] == 0 and id(a) in self._retired
                if entry[1] == 0:
                    del self._leases[id(a)]
                if done:
                    del self._retired[id(a)]
            if done:
                self._drop(a)

    def add(self, items: Iterable[tuple[str, bytes | os.PathLike]]) -> Update:
        """:func:`add_files`, then the index update (when something was added or updated)."""
        with self._writing() as t0:
            files = add_files(items, self.corpus_dir, self.limits)
            build = self._rebuild() if any(f.status != "skipped" for f in files) else None
            return Update(files=files, build=build, seconds=time.perf_counter() - t0)

    def remove(self, ids: Iterable[str]) -> Update:
        """:func:`remove_articles`, then the index update."""
        with self._writing() as t0:
            removed = remove_articles(ids, self.corpus_dir)
            build = self._rebuild() if any(r.status == "removed" for r in removed) else None
            return Update(removed=removed, build=build, seconds=time.perf_counter() - t0)

    @contextmanager
    def _writing(self) -> Iterator[float]:
        if not self.writable:
            raise UploadError("adding and removing articles is off: start the server with a login "
                              "(--login, or QA_USERNAME and QA_PASSWORD) or --allow-upload")
        if self._current.config.store != "embedded":
            raise UploadError("adding articles here needs the embedded store; for Milvus, run `qa index`")
        with self._write:
            yield time.perf_counter()

    def _rebuild(self) -> BuildReport:
        old = self._current
        index_dir = old.index_dir
        with self._state:
            keep = tuple(a.manifest["data_dir"] for a, _ in self._leases.values()) + (old.manifest["data_dir"],)
        report = build_index(self.corpus_dir, index_dir, old.config, progress=False, embedder=old.embedder,
                             keep=keep)
        if report.skipped and read_manifest(index_dir)["data_dir"] == old.manifest["data_dir"]:  # nothing new
            return report
        new = Assistant.load(index_dir, old.config, embedder=old.embedder)
        _ = new.generator, new.corpus_lang  # loaded before the swap: the first question is not slower
        with self._state:
            self._current = new
            busy = id(old) in self._leases
            if busy:
                self._retired[id(old)] = old
        if not busy:
            self._drop(old)
        log.info("index updated: %d articles, %d passages (%d embedded) in %.1fs", report.articles,
                 report.chunks, report.embedded, report.seconds)
        return report

    def _drop(self, old: Assistant) -> None:
        """Remove the data folder of a replaced assistant (unless the index uses it again)."""
        name = old.manifest["data_dir"]
        try:
            if read_manifest(old.index_dir)["data_dir"] == name:
                return
        except QAError:
            return
        with self._state:
            if any(a.manifest["data_dir"] == name for a, _ in self._leases.values()):
                return
        shutil.rmtree(old.index_dir / name, ignore_errors=True)
