"""Near-duplicate articles of an embedded index (one story from several outlets), found at build time
with :class:`qa.ingest.neardup.NearDupIndex` and kept across builds.

Files (in the index's ``data-*`` folder, listed with checksums in the manifest; absent when built with
``[index] near_duplicates = false`` or before duplicate detection existed)::

    neardup.json             # the NearDupIndex: parameters, article ids, lengths, dates, verified pairs
    neardup_sketches.npy     # its MinHash sketches (uint32, one row per article)
    neardup_shingles.npy     # its shingle hashes (uint32, all articles concatenated)
    duplicates.json          # the groups: representative (most complete version), members, pairs

A build reloads the previous index's NearDupIndex and only removes and re-sketches the articles whose
id, content hash or date changed (like the embedding cache); the store reads ``duplicates.json`` only.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional, Sequence

from ...errors import IndexCorruptError
from ...types import Article, DuplicateGroup

log = logging.getLogger("qa")

GROUPS_FILE = "duplicates.json"
# qa.ingest.neardup's JSON_NAME, SKETCH_NAME, SHINGLE_NAME (not imported here: serving never loads datasketch)
FILES = ("neardup.json", "neardup_sketches.npy", "neardup_shingles.npy", GROUPS_FILE)
FORMAT = "qa-duplicate-groups"


def _previous(data: Optional[Path]):
    """The previous build's NearDupIndex and its articles' (content hash, date) by id, or (None, {})."""
    from ...ingest.neardup import JSON_NAME, NearDupIndex

    if data is None or not (data / JSON_NAME).is_file():
        return None, {}
    try:
        idx = NearDupIndex.load(data)
        if idx.params != NearDupIndex().params:
            log.info("near-duplicate parameters changed: sketching every article again")
            return None, {}
        keys = {}
        with open(data / "articles.jsonl", encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                keys[r["id"]] = (r.get("content_hash"), r.get("date"))
        return idx, keys
    except Exception as e:  # noqa: BLE001 - unusable previous files: start over
        log.warning("cannot reuse the previous near-duplicate index in %s (%s): sketching every article", data, e)
        return None, {}


def update(articles: Sequence[Article], previous_data: Optional[Path]):
    """The NearDupIndex of ``articles``: the previous one (from ``previous_data``) with removed and changed
    articles taken out and new ones added. Returns (index, number of articles sketched now)."""
    from ...ingest.neardup import NearDupIndex

    idx, old = _previous(previous_data)
    idx = idx or NearDupIndex()
    now = {a.id: (a.content_hash, a.date) for a in articles}
    for aid in [a for a in idx.ids() if old.get(a) != now.get(a)]:  # removed (None) or changed
        idx.remove(aid)
    todo = [a for a in articles if a.id not in idx]
    idx.add_many(todo)
    return idx, len(todo)


def save(idx, folder: Path) -> list[DuplicateGroup]:
    """Write the index's files and ``duplicates.json`` into ``folder``; returns the groups."""
    idx.save(folder)
    groups = idx.groups()
    doc = {"format": FORMAT, "version": 1, "groups": [g.to_dict() for g in groups]}
    (folder / GROUPS_FILE).write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    return groups


def load_groups(data: Path) -> dict[str, DuplicateGroup]:
    """Each grouped article id -> its group, from ``duplicates.json`` ({} when the index has none)."""
    path = data / GROUPS_FILE
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != FORMAT:
            raise ValueError(f"format is {doc.get('format')!r}, not {FORMAT!r}")
        groups = [DuplicateGroup.from_dict(g) for g in doc["groups"]]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise IndexCorruptError(f"{path} is damaged ({str(e)[:120]}); rebuild with `qa index`") from None
    return {m: g for g in groups for m in g.members}


__all__ = ["FILES", "GROUPS_FILE", "load_groups", "save", "update"]
