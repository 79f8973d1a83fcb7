"""Articles and chunks of a large index, read on demand from memory-mapped JSONL files.

Parsing a million chunk rows (and the articles they quote) as Python objects takes tens of seconds
and gigabytes; a query needs only the few it returns. :class:`LazyArticles` (a mapping, id ->
:class:`~qa.types.Article`) and :class:`LazyChunks` (a sequence of :class:`~qa.types.Chunk`) index
the line starts of ``articles.jsonl`` and ``chunks.jsonl`` once, then parse a row when it is
used. A row that does not parse, or a chunk that is not the slice of its article it claims to be,
raises :class:`~qa.errors.IndexCorruptError` naming the file, when it is read.
"""
from __future__ import annotations

import json
import mmap
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from ...errors import IndexCorruptError
from ...types import Article, Chunk

_ID = re.compile(rb'\{"id": ("(?:[^"\\]|\\.)*")')
_ARTICLE_ID = re.compile(rb'"article_id": ("(?:[^"\\]|\\.)*")')
_BLOCK = 64 << 20


def _map(path: Path) -> mmap.mmap:
    with open(path, "rb") as f:
        if f.seek(0, 2) == 0:
            raise IndexCorruptError(f"{path} is empty; rebuild with `qa index`")
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def _release(mm: mmap.mmap) -> None:
    """Unmap the pages a full scan touched from this process (they stay in the kernel's page cache
    and come back on access), so scanning a large file does not count as resident memory."""
    if hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED)


def line_starts(mm: mmap.mmap) -> np.ndarray:
    """Byte offsets of every line start, plus the end of the file (n + 1 values)."""
    parts = [np.zeros(1, dtype=np.int64)]
    for s in range(0, len(mm), _BLOCK):
        block = np.frombuffer(mm, dtype=np.uint8, count=min(_BLOCK, len(mm) - s), offset=s)
        parts.append(np.flatnonzero(block == 10).astype(np.int64) + s + 1)
    starts = np.concatenate(parts)
    if starts[-1] != len(mm):  # no final newline
        starts = np.append(starts, len(mm))
    return starts


class _Rows:
    def __init__(self, path: Path):
        self.path = path
        self._mm = _map(path)
        self.starts = line_starts(self._mm)
        _release(self._mm)

    def __len__(self) -> int:
        return len(self.starts) - 1

    def raw(self, i: int) -> bytes:
        return self._mm[int(self.starts[i]):int(self.starts[i + 1])]

    def row(self, i: int) -> dict:
        try:
            return json.loads(self.raw(i))
        except (ValueError, RecursionError) as e:
            raise IndexCorruptError(f"{self.path}:{i + 1}: invalid JSON ({str(e)[:120]}); rebuild with `qa index`") from None


class LazyArticles(Mapping):
    """``articles.jsonl`` as a read-only mapping id -> Article, parsed on access (recent ones cached)."""

    def __init__(self, path: Path):
        self._rows = _Rows(path)
        self._line: dict[str, int] = {}
        mm = self._rows._mm
        for i, s in enumerate(self._rows.starts[:-1].tolist()):
            m = _ID.match(mm, s)
            if m is None:
                raise IndexCorruptError(f"{path}:{i + 1}: no article id at the start of the row; rebuild with `qa index`")
            self._line[json.loads(m.group(1))] = i
        _release(mm)
        self._get = lru_cache(maxsize=2048)(self._parse)

    def _parse(self, i: int) -> Article:
        try:
            return Article.from_dict(self._rows.row(i))
        except TypeError as e:
            raise IndexCorruptError(f"{self._rows.path}:{i + 1}: bad article ({e}); rebuild with `qa index`") from None

    def __getitem__(self, key: str) -> Article:
        return self._get(self._line[key])

    def metadata(self) -> Iterator[tuple[str, Optional[str], Optional[str]]]:
        """(id, source, date) of every article, in file order, without building Article objects
        (a filter's table reads these once)."""
        for key, i in self._line.items():
            row = self._rows.row(i)
            yield key, row.get("source"), row.get("date")
        _release(self._rows._mm)

    def __contains__(self, key: object) -> bool:
        return key in self._line

    def __iter__(self) -> Iterator[str]:
        return iter(self._line)

    def __len__(self) -> int:
        return len(self._line)


class LazyChunks(Sequence):
    """``chunks.jsonl`` as a read-only sequence of Chunk, parsed on access and checked against
    its article."""

    def __init__(self, path: Path, articles: LazyArticles):
        self._rows = _Rows(path)
        self._articles = articles
        self._get = lru_cache(maxsize=8192)(self._parse)

    def _parse(self, i: int) -> Chunk:
        r = self._rows.row(i)
        try:
            c = Chunk(id=r["id"], article_id=r["article_id"], start=r["start"], end=r["end"], text=r["text"])
            ok = c.id == i and self._articles[c.article_id].text[c.start:c.end] == c.text
        except (KeyError, TypeError, AttributeError):
            ok = False
        if not ok:
            raise IndexCorruptError(f"{self._rows.path}:{i + 1}: chunk does not match its article in "
                                    "articles.jsonl; rebuild with `qa index`")
        return c

    def __len__(self) -> int:
        return len(self._rows)

    def article_id_list(self) -> list[str]:
        """The article id of every chunk, read from the start of each row (not checked against the
        article: that happens when a chunk is read)."""
        mm, out = self._rows._mm, []
        for i, s in enumerate(self._rows.starts[:-1].tolist()):
            m = _ARTICLE_ID.search(mm, s, min(int(self._rows.starts[i + 1]), s + 4096))
            if m is None:
                raise IndexCorruptError(f"{self._rows.path}:{i + 1}: no article_id in the row; rebuild with `qa index`")
            out.append(json.loads(m.group(1)))
        _release(mm)
        return out

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._get(j) for j in range(*i.indices(len(self)))]
        n = len(self)
        j = int(i) + n if int(i) < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"chunk {i} out of range ({n} chunks)")
        return self._get(j)
