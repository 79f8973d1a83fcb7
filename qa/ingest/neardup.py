"""Near-duplicate articles (one story syndicated by several outlets, lightly edited), found with MinHash LSH.

Each article's clean text is normalised (NFKC, lower case, punctuation out; "Baca juga: ..." link lines
dropped) into word ``shingle``-grams, hashed to 32 bits. A MinHash sketch of that set goes into a
``datasketch`` MinHashLSH index tuned for recall at ``lsh_threshold``; every candidate pair it returns is
then *verified* on the exact shingle sets: a pair is a near-duplicate when its Jaccard similarity is at
least ``threshold``, or when the smaller text (at least ``min_shingles`` shingles) lies at least
``containment`` inside the larger one (a copy truncated to its first paragraphs). Verified pairs are
joined into groups (union-find); the representative of a group is its most complete version: the
longest text, ties broken by the earliest date, then the smallest id. Everything is deterministic.

:class:`NearDupIndex` is the incremental form (add, remove, report groups, save to / load from a folder
as JSON + ``.npy``, no pickle); :func:`find_groups` is the batch form.
"""
from __future__ import annotations

import json
import logging
import re
import unicodedata
from itertools import combinations
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
from datasketch import MinHash, MinHashLSH
from datasketch.hashfunc import sha1_hash32

from ..types import Article, DuplicateGroup, DuplicatePair

log = logging.getLogger("qa")

__all__ = ["DuplicatePair", "DuplicateGroup", "NearDupIndex", "connected", "find_groups", "shingles"]

FORMAT = "qa-neardup"
VERSION = 1
JSON_NAME = "neardup.json"
SKETCH_NAME = "neardup_sketches.npy"
SHINGLE_NAME = "neardup_shingles.npy"
SEED = 1
# datasketch 2's "affine32" permutations (1.x sketches differ): saved sketches are only comparable under the same one
MINHASH = f"datasketch affine32 seed {SEED}, word-mixed shingles"  # a saved index with another scheme is rebuilt
# odd 64-bit multipliers: one per k-gram position (k <= 12), the last for the final mix
_MIX = np.random.default_rng(20261202).integers(1, 2**62, size=13, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
# Defaults chosen by the sweep in benchmarks/near_duplicates.py (see its output in the report).
DEFAULTS: dict[str, Any] = {"threshold": 0.5, "containment": 0.8, "num_perm": 64, "shingle": 3,
                            "lsh_threshold": 0.3, "min_shingles": 20}

_LINK_LINE = re.compile(r"^\s*(baca (juga|pula)|berita terkait|lihat juga)\b.*$", re.IGNORECASE | re.MULTILINE)
_NON_WORD = re.compile(r"[\W_]+")


def _identity(x: int) -> int:  # the shingles are hashed already (see :func:`shingles`)
    return x


def shingles(text: str, k: int) -> np.ndarray:
    """Sorted unique 32-bit hashes of the normalised word ``k``-grams of ``text`` (a text shorter than
    ``k`` words gives one shingle of all its words; an empty text none)."""
    text = unicodedata.normalize("NFKC", text).lower()
    words = _NON_WORD.sub(" ", _LINK_LINE.sub(" ", text)).split()
    if not words:
        return np.zeros(0, dtype=np.uint32)
    # each distinct word hashed once (sha1, 32 bits); a k-gram's hash mixes its words' hashes by position
    # (multiply-xor in 64 bits, high half kept): ~2x faster than hashing every k-gram's string
    vocab: dict[str, int] = {}
    ids = np.fromiter((vocab.setdefault(w, len(vocab)) for w in words), dtype=np.int64, count=len(words))
    word_hash = np.fromiter((sha1_hash32(w.encode("utf-8")) for w in vocab), dtype=np.uint64, count=len(vocab))
    h = word_hash[ids]
    n = max(1, len(words) - k + 1)
    mixed = np.zeros(n, dtype=np.uint64)
    for j in range(min(k, len(words))):
        mixed ^= h[j:j + n] * _MIX[j]
    mixed = (mixed * _MIX[-1]) >> np.uint64(32)
    return np.unique(mixed.astype(np.uint32))


def _check(name: str, value: Any, lo: float, hi: float, kind: type) -> None:
    types = (int, float) if kind is float else int
    if not (isinstance(value, types) and not isinstance(value, bool) and lo <= value <= hi):
        raise ValueError(f"{name} must be {'an integer' if kind is int else 'a number'} in [{lo}, {hi}], got {value!r}")


class NearDupIndex:
    """Incremental near-duplicate detection (see the module docstring for the method and parameters)."""

    def __init__(self, *, threshold: float = DEFAULTS["threshold"], containment: float = DEFAULTS["containment"],
                 num_perm: int = DEFAULTS["num_perm"], shingle: int = DEFAULTS["shingle"],
                 lsh_threshold: float = DEFAULTS["lsh_threshold"], min_shingles: int = DEFAULTS["min_shingles"]):
        for name, value, lo, hi, kind in (
                ("threshold", threshold, 0.05, 1.0, float), ("containment", containment, 0.05, 1.0, float),
                ("num_perm", num_perm, 16, 1024, int), ("shingle", shingle, 1, 12, int),
                ("lsh_threshold", lsh_threshold, 0.05, 1.0, float), ("min_shingles", min_shingles, 1, 10_000, int)):
            _check(name, value, lo, hi, kind)
        self.params: dict[str, Any] = {"threshold": float(threshold), "containment": float(containment),
                                       "num_perm": num_perm, "shingle": shingle,
                                       "lsh_threshold": float(lsh_threshold), "min_shingles": min_shingles}
        self._lsh: Optional[MinHashLSH] = None  # built on the first add or remove (a loaded index may never need it)
        self._perms = MinHash(num_perm=num_perm, seed=SEED).permutations
        self._sets: dict[str, np.ndarray] = {}
        self._sketch: dict[str, np.ndarray] = {}
        self._meta: dict[str, tuple[int, Optional[str]]] = {}  # id -> (text length, date)
        self._edges: dict[str, dict[str, tuple[float, float]]] = {}  # id -> {other id: (jaccard, containment)}

    # ---- building -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._meta)

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._meta

    def ids(self) -> list[str]:
        """The indexed article ids, in the order they were added."""
        return list(self._meta)

    def _lsh_index(self) -> MinHashLSH:
        if self._lsh is None:
            # recall-weighted banding: the verification on the exact shingle sets keeps the precision
            self._lsh = MinHashLSH(threshold=self.params["lsh_threshold"], num_perm=self.params["num_perm"],
                                   weights=(0.2, 0.8))
            for aid, sketch in self._sketch.items():
                if len(self._sets[aid]):
                    self._lsh.insert(aid, self._minhash(sketch), check_duplication=False)
        return self._lsh

    def _minhash(self, sketch: np.ndarray) -> MinHash:
        return MinHash(hashvalues=sketch, permutations=self._perms, scheme="affine32", seed=SEED)

    def add(self, article: Article) -> None:
        """Index one article and link it to the indexed articles it near-duplicates.
        Raises ValueError when its id is already indexed (remove it first)."""
        if article.id in self._meta:
            raise ValueError(f"article {article.id!r} is already in the near-duplicate index; remove it first")
        sh = shingles(article.text, self.params["shingle"])
        mh = MinHash(num_perm=self.params["num_perm"], seed=SEED, hashfunc=_identity, permutations=self._perms,
                     scheme="affine32")
        if len(sh):
            mh.update_batch(sh.tolist())
        self._insert(article.id, sh, mh.hashvalues.copy(), (len(article.text), article.date), link=True)

    def add_many(self, articles: Iterable[Article]) -> None:
        for a in articles:
            self.add(a)

    def _insert(self, aid: str, sh: np.ndarray, sketch: np.ndarray, meta: tuple[int, Optional[str]],
                link: bool) -> None:
        lsh = self._lsh_index() if link else None  # (built before this article joins the sketches)
        self._sets[aid], self._sketch[aid], self._meta[aid] = sh, sketch, meta
        self._edges[aid] = {}
        if lsh is None or not len(sh):
            return  # loading (the LSH is rebuilt from the sketches when needed); an empty text duplicates nothing
        mh = self._minhash(sketch)
        for other in sorted(lsh.query(mh)):
            j, c = self._similarity(sh, self._sets[other])
            if self._is_duplicate(j, c, min(len(sh), len(self._sets[other]))):
                self._edges[aid][other] = self._edges[other][aid] = (j, c)
        lsh.insert(aid, mh, check_duplication=False)

    def remove(self, article_id: str) -> None:
        """Forget one article (KeyError when it is not indexed)."""
        if article_id not in self._meta:
            raise KeyError(f"article {article_id!r} is not in the near-duplicate index")
        if len(self._sets[article_id]) and self._lsh is not None:
            self._lsh.remove(article_id)
        for other in self._edges.pop(article_id):
            self._edges[other].pop(article_id, None)
        del self._sets[article_id], self._sketch[article_id], self._meta[article_id]

    @staticmethod
    def _similarity(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        inter = len(np.intersect1d(a, b, assume_unique=True))
        small = min(len(a), len(b))
        return inter / (len(a) + len(b) - inter), (inter / small if small else 0.0)

    def _is_duplicate(self, jaccard: float, containment: float, smaller: int) -> bool:
        p = self.params
        return jaccard >= p["threshold"] or (containment >= p["containment"] and smaller >= p["min_shingles"])

    # ---- reporting ------------------------------------------------------------------------
    def _order_key(self, aid: str) -> tuple:
        length, date = self._meta[aid]
        return (-length, date is None, date or "", aid)

    def _group(self, members: list[str]) -> DuplicateGroup:
        members = sorted(members, key=self._order_key)
        pairs = []
        for a, b in combinations(members, 2):
            linked = b in self._edges[a]
            j, c = self._edges[a][b] if linked else self._similarity(self._sets[a], self._sets[b])
            est = float(np.mean(self._sketch[a] == self._sketch[b]))
            pairs.append(DuplicatePair(a, b, round(est, 4), round(j, 4), round(c, 4), linked))
        return DuplicateGroup(members[0], tuple(members), tuple(pairs))

    def links(self) -> list[tuple[str, str, float, float]]:
        """Every verified pair as ``(a, b, jaccard, containment)`` with ``a < b``, sorted."""
        return sorted((a, b, j, c) for a, ls in self._edges.items() for b, (j, c) in ls.items() if a < b)

    def groups(self) -> list[DuplicateGroup]:
        """Groups of two or more near-duplicates, largest first (then by representative id)."""
        out = [self._group(m) for m in connected((a, b) for a, b, _, _ in self.links())]
        return sorted(out, key=lambda g: (-len(g.members), g.representative))

    def group_of(self, article_id: str) -> Optional[DuplicateGroup]:
        """The group holding ``article_id``, or None when it has no near-duplicate (KeyError when not indexed)."""
        if article_id not in self._meta:
            raise KeyError(f"article {article_id!r} is not in the near-duplicate index")
        seen, todo = {article_id}, [article_id]
        while todo:
            for b in self._edges[todo.pop()]:
                if b not in seen:
                    seen.add(b)
                    todo.append(b)
        return self._group(list(seen)) if len(seen) > 1 else None

    # ---- persistence ----------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        """Write ``neardup.json`` (parameters, ids, lengths, dates, verified pairs) and two ``.npy``
        arrays (sketches; concatenated shingle hashes) into ``folder`` (created when missing)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        ids = list(self._meta)
        pos = {a: i for i, a in enumerate(ids)}
        sizes = [len(self._sets[a]) for a in ids]
        edges = sorted([pos[a], pos[b], round(j, 6), round(c, 6)] for a, links in self._edges.items()
                       for b, (j, c) in links.items() if pos[a] < pos[b])
        sketches = (np.stack([self._sketch[a] for a in ids]) if ids
                    else np.zeros((0, self.params["num_perm"]), np.uint32))
        flat = np.concatenate([self._sets[a] for a in ids]) if ids else np.zeros(0, np.uint32)
        doc = {"format": FORMAT, "version": VERSION, "minhash": MINHASH, "params": self.params, "ids": ids,
               "lengths": [self._meta[a][0] for a in ids], "dates": [self._meta[a][1] for a in ids],
               "sizes": sizes, "edges": edges}
        np.save(folder / SKETCH_NAME, sketches.astype(np.uint32), allow_pickle=False)
        np.save(folder / SHINGLE_NAME, flat.astype(np.uint32), allow_pickle=False)
        (folder / JSON_NAME).write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> "NearDupIndex":
        """Read an index written by :meth:`save`; ValueError naming the file and field when it is damaged."""
        folder = Path(folder)
        jpath = folder / JSON_NAME
        for p in (jpath, folder / SKETCH_NAME, folder / SHINGLE_NAME):
            if not p.is_file():
                raise FileNotFoundError(f"near-duplicate index file missing: {p}")
        try:
            doc = json.loads(jpath.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{jpath}: not valid JSON: {e}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise ValueError(f"{jpath}: field 'format'/'version' is not {FORMAT!r} version {VERSION}")
        if doc.get("minhash") != MINHASH:
            raise ValueError(f"{jpath}: field 'minhash' is {doc.get('minhash')!r}, not {MINHASH!r}: rebuild the index")
        try:
            sketches = np.load(folder / SKETCH_NAME, allow_pickle=False)
            flat = np.load(folder / SHINGLE_NAME, allow_pickle=False)
        except ValueError as e:
            raise ValueError(f"{folder}: cannot read the .npy arrays: {e}") from None
        params = doc.get("params")
        if not isinstance(params, dict) or set(params) != set(DEFAULTS):
            raise ValueError(f"{jpath}: field 'params' must have the keys {sorted(DEFAULTS)}")
        try:
            idx = cls(**params)
        except ValueError as e:
            raise ValueError(f"{jpath}: field 'params': {e}") from None
        ids, lengths, dates, sizes = (doc.get(k) for k in ("ids", "lengths", "dates", "sizes"))
        if not isinstance(ids, list) or not all(isinstance(a, str) for a in ids) or len(set(ids)) != len(ids):
            raise ValueError(f"{jpath}: field 'ids' must be a list of distinct strings")
        n = len(ids)
        for name, val, kind in (("lengths", lengths, int), ("dates", dates, (str, type(None))), ("sizes", sizes, int)):
            if not isinstance(val, list) or len(val) != n or not all(isinstance(v, kind) for v in val):
                raise ValueError(f"{jpath}: field {name!r} must be a list as long as 'ids' of {kind}")
        if sketches.dtype != np.uint32 or sketches.shape != (n, params["num_perm"]):
            raise ValueError(f"{folder / SKETCH_NAME}: expected uint32 shape ({n}, {params['num_perm']}), "
                             f"got {sketches.dtype} {sketches.shape}")
        if flat.dtype != np.uint32 or flat.ndim != 1 or flat.shape[0] != sum(sizes):
            raise ValueError(f"{folder / SHINGLE_NAME}: expected {sum(sizes)} uint32 values, "
                             f"got {flat.dtype} {flat.shape}")
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        for i, aid in enumerate(ids):
            idx._insert(aid, flat[offsets[i]:offsets[i + 1]].copy(), sketches[i].copy(), (lengths[i], dates[i]),
                        link=False)
        for e in doc.get("edges", []):
            if not (isinstance(e, list) and len(e) == 4 and all(isinstance(v, int) and 0 <= v < n for v in e[:2])):
                raise ValueError(f"{jpath}: field 'edges' has a malformed entry {e!r}")
            a, b = ids[e[0]], ids[e[1]]
            idx._edges[a][b] = idx._edges[b][a] = (float(e[2]), float(e[3]))
        return idx


def connected(pairs: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Connected components (two or more ids each, sorted) of the graph with edges ``pairs`` (union-find)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        root = x
        while parent[root] != root:
            root = parent[root]
        while x != root:
            parent[x], x = root, parent[x]
        return root

    for a, b in pairs:
        parent.setdefault(a, a)
        parent.setdefault(b, b)
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    comps: dict[str, list[str]] = {}
    for x in parent:
        comps.setdefault(find(x), []).append(x)
    return sorted(sorted(m) for m in comps.values())


def find_groups(articles: Iterable[Article], *, threshold: float = DEFAULTS["threshold"],
                containment: float = DEFAULTS["containment"], num_perm: int = DEFAULTS["num_perm"],
                shingle: int = DEFAULTS["shingle"], lsh_threshold: float = DEFAULTS["lsh_threshold"],
                min_shingles: int = DEFAULTS["min_shingles"]) -> list[DuplicateGroup]:
    """Groups of near-duplicate ``articles`` (batch form of :class:`NearDupIndex`); ids must be unique."""
    idx = NearDupIndex(threshold=threshold, containment=containment, num_perm=num_perm, shingle=shingle,
                       lsh_threshold=lsh_threshold, min_shingles=min_shingles)
    idx.add_many(articles)
    return idx.groups()
