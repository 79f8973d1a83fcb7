"""The Milvus side of the store: connection, collection schemas, and the reads and writes the
index needs, all through pymilvus's ``MilvusClient`` (the same code for milvus-lite, Milvus
Standalone and Milvus Distributed).

Four collections share a name prefix (``Config.milvus_collection``, default ``qa``):

``<prefix>_chunks``
    one row per passage: ``id`` (INT64, stable hash of article, content and offsets),
    ``article_id``, ``content_hash`` (of the article's text), ``start``/``end`` (offsets into the
    article's clean text: the passage is ``article.text[start:end]``), ``embed_hash``, ``lex``
    (the text BM25 indexes, see :func:`lex_text`), ``sparse`` (BM25 vector, computed by Milvus
    from ``lex``), ``vector`` (the normalised embedding), and the article's ``source``
    (:func:`~qa.filters.normalize_source` form) and ``date`` (ISO ``YYYY-MM-DD``), "" when
    unknown, for filtered searches (:func:`filter_expression`; collections written before format 2
    lack them).
``<prefix>_articles``
    the articles, text split into parts of at most :data:`PART_CHARS` characters (a VARCHAR holds
    at most 65,535 bytes); metadata on every part; ``sig`` fingerprints the whole article.
``<prefix>_terms``
    document frequency of each analyzer token over the passages (for the answerer's IDF).
``<prefix>_meta``
    one row ``manifest``: model, analyzer and build settings, counts, corpus fingerprint.

Milvus wants a vector field in every collection: the last three carry a 2-d placeholder.
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

from ...config import Config
from ...errors import QAError
from ...filters import Filter

log = logging.getLogger("qa")

MAX_VARCHAR = 65535
PART_CHARS = 16000  # 4 bytes per character at most in UTF-8: 64,000 bytes < 65,535
PLACEHOLDER = [1.0, 0.0]
BATCH = 1000  # rows per insert / per filter list
META_KEY = "manifest"
# The chunk fields a filter reads, with their VARCHAR sizes (in bytes).
FILTER_FIELDS = {"source": 512, "date": 64}


class MilvusStoreError(QAError):
    """Milvus cannot be reached or its collections are not what this project wrote."""


def _import_pymilvus():
    try:
        import pymilvus  # noqa: F401
        from pymilvus import MilvusClient
    except ImportError as e:
        raise ImportError(f"store = \"milvus\" needs pymilvus (and milvus-lite for a local file): "
                          f"pip install 'article-qa[milvus]' ({e})") from None
    return MilvusClient


def resolve_uri(config: Config, index_dir: str | os.PathLike = "index") -> str:
    """The Milvus URI of a config: ``milvus_uri`` or ``<index_dir>/milvus.db``."""
    uri = config.milvus_uri or str(Path(index_dir) / "milvus.db")
    return uri


def is_local(uri: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*://", uri)


def quote(value: str) -> str:
    """A Milvus filter string literal (C-style escapes, as Milvus and milvus-lite parse them)."""
    s = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{s}"'


def in_filter(field: str, values: Sequence[Any]) -> str:
    if values and isinstance(values[0], str):
        return f"{field} in [{', '.join(quote(v) for v in values)}]"
    return f"{field} in [{', '.join(str(int(v)) for v in values)}]"


def filter_expression(where: Optional[Filter]) -> str:
    """The Milvus boolean expression over the chunk collection that lets through the chunks of
    articles passing ``where`` ("" for None or an empty filter), e.g.
    ``(source in ["antara", "kompas"]) and (date != "" and date >= "2021-07-01" and date <= "2021-07-31")
    and (article_id in ["a1", "a2"])``. Sources are compared in their normalised form (as stored);
    an article without a date (stored as "") never passes a date bound; every literal is quoted."""
    if where is None or where.empty:
        return ""
    parts = []
    if where.sources:
        parts.append(in_filter("source", sorted(where.sources)))
    if where.date_from or where.date_to:
        dates = ['date != ""']
        if where.date_from:
            dates.append(f"date >= {quote(where.date_from)}")
        if where.date_to:
            dates.append(f"date <= {quote(where.date_to)}")
        parts.append(" and ".join(dates))
    if where.article_ids:
        parts.append(in_filter("article_id", list(where.article_ids)))
    return " and ".join(f"({p})" for p in parts)


def batches(items: Sequence[Any], size: int = BATCH) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def lex_text(tokens: Iterable[str]) -> str:
    """Pre-analysed text for Milvus's BM25: this project's tokens joined by spaces, with every
    non-word character inside a token turned into ``_`` ("10.575" -> ``10_575``, "covid-19" ->
    ``covid_19``), so that any word tokenizer (milvus-lite's ``\\w+``, Milvus's Unicode standard
    tokenizer, or ``whitespace``) keeps each token whole. The analyzer drops ``_`` from words, so
    no real token is changed into another."""
    return " ".join(re.sub(r"\W", "_", t) for t in tokens)


def clip_utf8(text: str, limit: int = MAX_VARCHAR) -> str:
    """``text`` cut (at a space when possible) to at most ``limit`` UTF-8 bytes."""
    b = text.encode("utf-8")
    if len(b) <= limit:
        return text
    cut = b[:limit].decode("utf-8", "ignore")
    return cut.rsplit(" ", 1)[0] if " " in cut else cut


class MilvusCollections:
    """The four collections of one index on one Milvus deployment."""

    def __init__(self, uri: str, prefix: str = "qa", *, token: Optional[str] = None):
        MilvusClient = _import_pymilvus()
        self.uri = uri
        self.prefix = prefix
        token = token if token is not None else os.environ.get("QA_MILVUS_TOKEN", "")
        if is_local(uri):
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            # milvus-lite's in-process server logs an ERROR for every query_iterator (it lacks
            # AllocTimestamp; pymilvus then uses a client-side timestamp, which is correct here).
            logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
        kw: dict = {"token": token} if token else {}
        if not is_local(uri):
            # pymilvus pings every 10 s even with no call in flight; a server with gRPC's default
            # policy (milvus-lite's, 5 min) answers an idle client with GOAWAY "too_many_pings" and
            # a later client sharing that connection can fail to reconnect. Ping only during calls
            # (pymilvus health-checks a connection idle for 30 s before reusing it).
            kw["grpc_options"] = {"grpc.keepalive_time_ms": 60_000, "grpc.keepalive_permit_without_calls": False}
        try:
            self.client = MilvusClient(uri=uri, **kw)
        except Exception as e:  # noqa: BLE001 - pymilvus raises many kinds
            raise MilvusStoreError(f"cannot connect to Milvus at {uri}: {e}") from None
        self.chunks = f"{prefix}_chunks"
        self.articles = f"{prefix}_articles"
        self.terms = f"{prefix}_terms"
        self.meta = f"{prefix}_meta"

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # noqa: BLE001
            pass

    # -- schema --------------------------------------------------------------------------------
    def exists(self) -> bool:
        """Whether the collections are there (loading them, as a reopened milvus-lite file or a
        restarted server holds them released)."""
        if not (self.client.has_collection(self.meta) and self.client.has_collection(self.chunks)):
            return False
        self.load()
        return True

    def load(self) -> None:
        for name in (self.meta, self.chunks, self.articles, self.terms):
            if self.client.has_collection(name):
                state = self.client.get_load_state(name).get("state")
                if "Loaded" not in str(state):
                    self.client.load_collection(name)

    def drop(self) -> None:
        for name in (self.meta, self.chunks, self.articles, self.terms):
            if self.client.has_collection(name):
                self.client.drop_collection(name)

    def create(self, *, dimension: int, config: Config) -> None:
        """Create the collections that are missing (with their indexes; loaded)."""
        from pymilvus import DataType, Function, FunctionType

        c = self.client
        if not c.has_collection(self.chunks):
            s = c.create_schema(auto_id=False, enable_dynamic_field=False)
            s.add_field("id", DataType.INT64, is_primary=True)
            s.add_field("article_id", DataType.VARCHAR, max_length=MAX_VARCHAR)
            s.add_field("content_hash", DataType.VARCHAR, max_length=128)
            s.add_field("start", DataType.INT64)
            s.add_field("end", DataType.INT64)
            s.add_field("embed_hash", DataType.VARCHAR, max_length=128)
            s.add_field("lex", DataType.VARCHAR, max_length=MAX_VARCHAR, enable_analyzer=True,
                        analyzer_params={"tokenizer": "standard"} if config.milvus_analyzer == "project"
                        else {"tokenizer": "standard", "filter": ["lowercase"]})
            s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            s.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
            for name, size in FILTER_FIELDS.items():
                s.add_field(name, DataType.VARCHAR, max_length=size)
            s.add_function(Function(name="lex_bm25", function_type=FunctionType.BM25,
                                    input_field_names=["lex"], output_field_names=["sparse"]))
            ip = c.prepare_index_params()
            ip.add_index("vector", index_type=config.milvus_dense_index, metric_type="IP",
                         params={"M": 32, "efConstruction": 128} if config.milvus_dense_index == "HNSW" else
                         {"nlist": 1024} if config.milvus_dense_index == "IVF_FLAT" else {})
            ip.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                         params={"bm25_k1": float(config.bm25_k1), "bm25_b": float(config.bm25_b)})
            for name in ("article_id", *FILTER_FIELDS):
                ip.add_index(name, index_type="INVERTED")
            c.create_collection(self.chunks, schema=s, index_params=ip)
        if not c.has_collection(self.articles):
            s = c.create_schema(auto_id=False, enable_dynamic_field=False)
            s.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=MAX_VARCHAR)
            s.add_field("article_id", DataType.VARCHAR, max_length=MAX_VARCHAR)
            s.add_field("part", DataType.INT64)
            s.add_field("parts", DataType.INT64)
            s.add_field("sig", DataType.VARCHAR, max_length=128)
            s.add_field("meta", DataType.VARCHAR, max_length=MAX_VARCHAR)  # JSON: title, source, date, ...
            s.add_field("text", DataType.VARCHAR, max_length=MAX_VARCHAR)
            s.add_field("placeholder", DataType.FLOAT_VECTOR, dim=2)
            self._create_with_placeholder(self.articles, s, extra_index="article_id")
        for name, fields in ((self.terms, (("df", DataType.INT64),)), (self.meta, (("value", DataType.VARCHAR),))):
            if c.has_collection(name):
                continue
            s = c.create_schema(auto_id=False, enable_dynamic_field=False)
            s.add_field("key", DataType.VARCHAR, is_primary=True, max_length=MAX_VARCHAR)
            for fname, ftype in fields:
                if ftype == DataType.VARCHAR:
                    s.add_field(fname, ftype, max_length=MAX_VARCHAR)
                else:
                    s.add_field(fname, ftype)
            s.add_field("placeholder", DataType.FLOAT_VECTOR, dim=2)
            self._create_with_placeholder(name, s)

    def _create_with_placeholder(self, name: str, schema, extra_index: Optional[str] = None) -> None:
        ip = self.client.prepare_index_params()
        ip.add_index("placeholder", index_type="FLAT", metric_type="IP")
        if extra_index:
            ip.add_index(extra_index, index_type="INVERTED")
        self.client.create_collection(name, schema=schema, index_params=ip)

    def chunk_fields(self) -> set[str]:
        """The field names of the chunk collection (to tell one written before a field was added)."""
        return {f["name"] for f in self.client.describe_collection(self.chunks).get("fields", [])}

    # -- manifest ------------------------------------------------------------------------------
    def read_meta(self) -> Optional[dict[str, Any]]:
        if not self.client.has_collection(self.meta):
            return None
        rows = self.client.query(self.meta, filter=f"key == {quote(META_KEY)}", output_fields=["value"])
        if not rows:
            return None
        try:
            return json.loads(rows[0]["value"])
        except (ValueError, KeyError, TypeError) as e:
            raise MilvusStoreError(f"{self.uri} {self.meta}: unreadable manifest ({e}); rebuild with "
                                   "`qa index --force`") from None

    def write_meta(self, meta: dict[str, Any]) -> None:
        value = json.dumps(meta, ensure_ascii=False)
        if len(value.encode("utf-8")) > MAX_VARCHAR:
            raise MilvusStoreError(f"manifest too large for {self.meta} ({len(value)} characters)")
        self.client.upsert(self.meta, [{"key": META_KEY, "value": value, "placeholder": PLACEHOLDER}])
        self.client.flush(self.meta)

    # -- reads ---------------------------------------------------------------------------------
    def count(self, name: str, filter: str = "") -> int:
        rows = self.client.query(name, filter=filter, output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def article_signatures(self) -> dict[str, str]:
        """``{article id: sig}`` of every stored article (from its part 0)."""
        out: dict[str, str] = {}
        it = self.client.query_iterator(self.articles, batch_size=BATCH, filter="part == 0",
                                        output_fields=["article_id", "sig"])
        try:
            while True:
                rows = it.next()
                if not rows:
                    break
                for r in rows:
                    out[r["article_id"]] = r["sig"]
        finally:
            it.close()
        return out

    def fetch_articles(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``{article id: Article dict}`` for the stored ones among ``ids`` (parts joined)."""
        out: dict[str, dict[str, Any]] = {}
        ids = list(dict.fromkeys(ids))
        for group in batches(ids, 200):
            parts: dict[str, list[tuple[int, int, str, str]]] = {}
            rows = self.client.query(self.articles, filter=in_filter("article_id", list(group)),
                                     output_fields=["article_id", "part", "parts", "meta", "text"])
            for r in rows:
                parts.setdefault(r["article_id"], []).append((int(r["part"]), int(r["parts"]), r["meta"], r["text"]))
            for aid, ps in parts.items():
                ps.sort()
                if len(ps) != ps[0][1] or [p[0] for p in ps] != list(range(len(ps))):
                    log.warning("article %r is incomplete in %s (%d of %d parts); skipped", aid, self.articles,
                                len(ps), ps[0][1])
                    continue
                d = json.loads(ps[0][2])
                d["id"] = aid
                d["text"] = "".join(p[3] for p in ps)
                out[aid] = d
        return out

    def chunk_rows(self, article_ids: Sequence[str], fields: Sequence[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for group in batches(list(article_ids), 200):
            out.extend(self.client.query(self.chunks, filter=in_filter("article_id", list(group)),
                                         output_fields=list(fields)))
        return out

    def document_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        terms = [t for t in dict.fromkeys(terms) if t and len(t.encode("utf-8")) < 1024]
        for group in batches(terms, 500):
            for r in self.client.query(self.terms, filter=in_filter("key", list(group)), output_fields=["df"]):
                out[r["key"]] = int(r["df"])
        return out

    # -- writes --------------------------------------------------------------------------------
    def delete_articles(self, ids: Sequence[str]) -> None:
        """Delete the articles' passages first, then their rows (a row marks a complete article)."""
        for group in batches(list(ids), 200):
            self.client.delete(self.chunks, filter=in_filter("article_id", list(group)))
        for group in batches(list(ids), 200):
            self.client.delete(self.articles, filter=in_filter("article_id", list(group)))

    def insert_chunks(self, rows: list[dict[str, Any]]) -> None:
        for group in batches(rows):
            self.client.insert(self.chunks, list(group))

    def insert_articles(self, articles: Iterable[dict[str, Any]], sigs: dict[str, str]) -> None:
        rows = []
        for a in articles:
            text = a["text"]
            pieces = [text[i:i + PART_CHARS] for i in range(0, len(text), PART_CHARS)] or [""]
            meta = json.dumps({k: v for k, v in a.items() if k not in ("id", "text")}, ensure_ascii=False)
            meta = meta if len(meta.encode("utf-8")) <= MAX_VARCHAR else json.dumps(
                {"content_hash": a.get("content_hash")})
            for n, piece in enumerate(pieces):
                rows.append({"pk": f"{a['id']}\x1f{n}", "article_id": a["id"], "part": n, "parts": len(pieces),
                             "sig": sigs[a["id"]], "meta": meta, "text": piece, "placeholder": PLACEHOLDER})
        for group in batches(rows, 200):
            self.client.insert(self.articles, list(group))

    def add_document_frequencies(self, delta: dict[str, int]) -> None:
        """Add ``delta`` to the stored document frequencies (rows reaching 0 are deleted)."""
        delta = {t: d for t, d in delta.items() if d and t and len(t.encode("utf-8")) < 1024}
        if not delta:
            return
        current = self.document_frequencies(list(delta))
        upserts, gone = [], []
        for t, d in delta.items():
            v = current.get(t, 0) + d
            if v > 0:
                upserts.append({"key": t, "df": v, "placeholder": PLACEHOLDER})
            elif t in current:
                gone.append(t)
        for group in batches(upserts):
            self.client.upsert(self.terms, list(group))
        for group in batches(gone, 500):
            self.client.delete(self.terms, filter=in_filter("key", list(group)))

    def flush(self) -> None:
        for name in (self.chunks, self.articles, self.terms):
            self.client.flush(name)
