"""Reliability: hostile files and questions (property-based fuzzing), damaged indexes, a full disk,
``qa index`` killed with SIGKILL, and retrieval from several threads.

Short runs by default; ``QA_FUZZ_EXAMPLES=N`` sets the examples per fuzz target and ``-m slow``
(or ``--runslow``) adds the long runs (more kills, the real ``qa index`` killed in every phase).
Figures of the last run go to ``artifacts/reliability-*.json`` (see docs/reliability.md).
"""
from __future__ import annotations

import builtins
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from conftest import CORPUS, ROOT
from fakes import HashEmbedder, n_examples, write_corpus
from qa import Assistant, build_index
from qa.assistant import MAX_QUERY_CHARS
from qa.errors import IndexCorruptError, IndexNotFoundError, QAError
from qa.ingest import load_corpus, safe_str
from qa.ingest import readers
from qa.stores import read_manifest
from qa.stores.embedded_index.files import DATA_FILES, MANIFEST
from qa.stores.embedded_index.load import load_index

ARTIFACTS = ROOT / "artifacts"
TESTS = Path(__file__).resolve().parent
def fuzz(default: int) -> settings:
    """Settings of a fuzz target: ``default`` examples (or QA_FUZZ_EXAMPLES), no deadline."""
    return settings(max_examples=n_examples(default), deadline=None, suppress_health_check=list(HealthCheck))


def _record(name: str, data: dict) -> None:
    """Keep the figures of this run (kills, cases) for docs/reliability.md."""
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"reliability-{name}.json").write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


@pytest.fixture(scope="module")
def fake():
    return HashEmbedder()


# =============================================================================================
# 1. Bad input: ingestion
# =============================================================================================
WORDS = ("berita vaksin lapas warga binaan kepala dinas Jakarta Amuntai harga cabai banjir pasar "
         "sekolah jalan rusak COVID-19 dosis").split()
sentence = st.lists(st.sampled_from(WORDS), min_size=3, max_size=12).map(lambda ws: " ".join(ws).capitalize() + ".")
story = st.lists(sentence, min_size=1, max_size=5).map("\n\n".join)
any_text = st.text(max_size=300)
weird_space = st.text(alphabet=" \t\n\r\x0b\x0c\u00a0\u2028\u3000\ufeff\u200b", max_size=40)
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "latin-1", "cp1252"]


def _encode(text: str, enc: str) -> bytes:
    return text.encode(enc, errors="replace")


TAGS = ["p", "div", "article", "main", "h1", "br", "nav", "script", "style", "b", "span", "li", "figure",
        "table", "td", "template", "title", "time", "a", "img"]
html_frag = st.recursive(
    st.one_of(story, any_text.map(lambda t: t.replace("<", "&lt;")), st.sampled_from(["<", ">", "&", "<!--", "-->", "<![CDATA["])),
    lambda inner: st.tuples(st.sampled_from(TAGS), st.lists(inner, max_size=4), st.booleans()).map(
        lambda t: f"<{t[0]}>" + "".join(t[1]) + (f"</{t[0]}>" if t[2] else "")),
    max_leaves=20)
html_doc = st.tuples(html_frag, st.integers(0, 2500), st.booleans()).map(
    lambda t: "<html><body>" + "<div>" * t[1] + t[0] + ("</div>" * t[1] if t[2] else ""))
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40))
json_value = st.recursive(json_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                              st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                          max_leaves=8)
record = st.fixed_dictionaries({}, optional={"text": st.one_of(story, any_text, json_value), "title": json_value,
                                             "id": json_value, "date": json_value, "source": json_value,
                                             "url": json_value, "content": st.one_of(story, json_value)})
json_doc = st.one_of(record, st.lists(st.one_of(record, json_value), max_size=4), json_value).map(
    lambda v: json.dumps(v, ensure_ascii=False))
jsonl_doc = st.lists(st.one_of(record.map(lambda r: json.dumps(r, ensure_ascii=False)), any_text.map(lambda t: t.replace("\n", " ")),
                               st.just("{broken"), st.just("[" * 3000 + "]" * 3000), st.just("")), max_size=6).map("\n".join)


@st.composite
def files(draw):
    """(name, bytes) of one hostile or ordinary file."""
    ext = draw(st.sampled_from([".txt", ".md", ".html", ".htm", ".json", ".jsonl", ".xyz", ""]))
    kind = draw(st.sampled_from(["bytes", "text", "space", "html", "json", "jsonl"]))
    if kind == "bytes":
        data = draw(st.binary(max_size=3000))
    elif kind == "space":
        data = _encode(draw(weird_space), draw(st.sampled_from(ENCODINGS)))
    else:
        text = draw({"text": st.one_of(story, any_text), "html": html_doc, "json": json_doc, "jsonl": jsonl_doc}[kind])
        data = _encode(text, draw(st.sampled_from(ENCODINGS)))
        if draw(st.integers(0, 5)) == 0 and data:  # cut short at a random byte
            data = data[: draw(st.integers(0, len(data) - 1))]
    name = draw(st.one_of(
        st.text(st.characters(exclude_characters="/\x00", exclude_categories=["Cs"]), min_size=1, max_size=30),
        st.binary(min_size=1, max_size=30).filter(lambda b: b"/" not in b and b"\x00" not in b).map(os.fsdecode),
    ))
    assume(not name.startswith(".") and (name + ext).lower() not in {"readme.md", "readme.txt"})
    assume(len(os.fsencode(name + ext)) <= 200)
    return name + ext, data


GOOD = "Berita Baik\n\nJakarta - Zyxwvut unik sekali: berita ini selalu terbaca dengan benar."


def _accounted(path: Path, corpus) -> bool:
    p = safe_str(str(path))
    if any(a.path == p for a in corpus.articles):
        return True
    if any(x.path == p or x.path.startswith(p + ":") or x.path.startswith(p + "[") for x in corpus.problems):
        return True
    return False


@fuzz(40)
@given(st.lists(files(), min_size=1, max_size=5, unique_by=lambda f: f[0]))
def test_fuzz_corpus_files_are_indexed_or_reported(fake, many):
    """Random bytes, wrong encodings, broken HTML/JSON, odd names: every file is either indexed
    or reported by name with a reason; the good file is always indexed; the index builds and loads."""
    with tempfile.TemporaryDirectory() as tmp:
        corpus_dir = Path(tmp) / "corpus"
        corpus_dir.mkdir()
        (corpus_dir / "good.txt").write_text(GOOD, encoding="utf-8")
        written = []
        for name, data in many:
            p = corpus_dir / name
            if p.exists():
                continue
            p.write_bytes(data)
            written.append(p)
        corpus = load_corpus(corpus_dir)
        ids = {a.id for a in corpus.articles}
        dropped = {d for d, _ in corpus.duplicates}
        assert "good" in ids or "good" in dropped
        for p in written:
            stem_id = safe_str(p.relative_to(corpus_dir).with_suffix("").as_posix())
            assert _accounted(p, corpus) or any(d == stem_id or d.startswith(stem_id + "#") for d in dropped), p
        for pr in corpus.problems:
            assert pr.reason and pr.path
            (pr.path + pr.reason).encode("utf-8")  # printable, writable to the manifest
        for a in corpus.articles:
            assert a.text.strip()
            json.dumps(a.to_dict(), ensure_ascii=False).encode("utf-8")
        index = Path(tmp) / "index"
        report = build_index(corpus_dir, index, progress=False, embedder=fake, corpus=corpus)
        loaded = load_index(index)
        assert set(loaded.articles) == ids and report.articles == len(ids)


def test_hand_made_bad_files(tmp_path, fake):
    """The cases the issue lists that the fuzzer is unlikely to build, all in one corpus."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("Rahasia yang tidak boleh terindeks sama sekali.", encoding="utf-8")
    c = tmp_path / "corpus"
    (c / "sub").mkdir(parents=True)
    (c / "good.txt").write_text(GOOD, encoding="utf-8")
    (c / "utf16be.txt").write_bytes(b"\xfe\xff" + "Berita UTF-16 big-endian dengan BOM.".encode("utf-16-be"))
    (c / "latin1.md").write_bytes("# Judul\n\nSekolah di Bogor menjual caf\xe9 dan cr\xe8me br\xfbl\xe9e.".encode("latin-1"))
    (c / "whitespace.txt").write_bytes(" \t\r\n\u00a0\u3000\u200b\ufeff\n".encode("utf-8"))
    (c / "deep.html").write_text("<html><body>" + "<div>" * 30_000 + "<p>Berita yang sangat dalam bersarang.</p>"
                                 + "</div>" * 30_000 + "</body></html>", encoding="utf-8")
    (c / "unclosed.html").write_text("<html><body>" + "<p><b><i><span>" * 5_000 + "Berita tanpa tag penutup.",
                                     encoding="utf-8")
    (c / "broken.html").write_text("<html><body><p>Isi <b>tebal <i>miring <div <<<>>> &#xffffffff; &bogus; <!-- tanpa akhir",
                                   encoding="utf-8")
    (c / "deep.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    (c / "lines.jsonl").write_text("\n".join([
        '{"text": ' + "[" * 50_000 + "]" * 50_000 + "}",  # too deep for the JSON parser
        '{"text": "Baris kedua tetap terbaca walau baris pertama rusak.", "id": "baris-2"}',
        '{"title": "tanpa teks"}',
        '{"text": "Angka raksasa.", "id": ' + "9" * 5000 + "}",
        '{"text": "Teks \\ud800 dengan surrogate \\udfff tunggal.", "title": "Judul \\udcff", "id": "sur\\ud800"}',
        "{broken",
    ]), encoding="utf-8")
    (c / "empty-list.json").write_text("[]", encoding="utf-8")
    (c / "blank.jsonl").write_text("\n \n\x1c\n", encoding="utf-8")
    big = c / "big.txt"
    with open(big, "wb") as f:  # 50 MB of real words
        block = ("Warga binaan lapas menerima vaksin dosis pertama di aula. " * 1000 + "\n\n").encode()
        for _ in range(50 * 2**20 // len(block) + 1):
            f.write(block)
    assert big.stat().st_size >= 50 * 2**20
    odd = ["nama dengan spasi.txt", "baris\nbaru.txt", "-mulai-minus.txt", "kutip'\"$(rm -rf).txt", "emoji 😀☃.txt",
           "ＦＵＬＬ.txt", "رتب.txt", "a" * 200 + ".txt"]
    for i, name in enumerate(odd):
        (c / name).write_text(f"Berita nomor {i} dengan nama berkas yang aneh. Kalimat kedua {i}.", encoding="utf-8")
    with open(os.fsencode(c) + b"/bukan-utf8-\xff\xfe.txt", "wb") as f:
        f.write(b"Berita dengan nama berkas yang bukan UTF-8.")
    (c / "link-out.txt").symlink_to(outside / "secret.txt")
    (c / "link-dir").symlink_to(outside, target_is_directory=True)
    (c / "sub" / "loop").symlink_to(c / "sub", target_is_directory=True)
    (c / "dangling.txt").symlink_to(tmp_path / "nothing.txt")
    (c / "link-in.txt").symlink_to(c / "good.txt")  # inside the corpus: read (a duplicate of good)
    os.mkfifo(c / "pipe.txt")  # would block a naive read forever

    t0 = time.perf_counter()
    corpus = load_corpus(c)
    seconds = time.perf_counter() - t0
    ids = {a.id for a in corpus.articles}
    reasons = {Path(p.path).name: p.reason for p in corpus.problems}
    assert "good" in ids and "utf16be" in ids and "latin1" in ids and "deep" in ids and "unclosed" in ids
    assert "broken" in ids and "baris-2" in ids
    assert "café" in next(a for a in corpus.articles if a.id == "latin1").text
    assert "Berita yang sangat dalam bersarang." in next(a for a in corpus.articles if a.id == "deep").text
    for i, name in enumerate(odd):
        assert name[:-4] in ids, name
    assert "bukan-utf8-\ufffd\ufffd" in ids
    sur = next(a for a in corpus.articles if a.path.endswith("lines.jsonl") and "surrogate" in a.text)
    json.dumps(sur.to_dict(), ensure_ascii=False).encode("utf-8")
    assert "too large" in reasons["big.txt"] and "MiB" in reasons["big.txt"]
    assert "empty" in reasons["whitespace.txt"] or "no article text" in reasons["whitespace.txt"]
    assert "invalid JSON" in reasons["deep.json"]
    assert "invalid JSON" in reasons["lines.jsonl:1"] and "text" in reasons["lines.jsonl:3"]
    assert "invalid JSON" in reasons["lines.jsonl:4"] and "invalid JSON" in reasons["lines.jsonl:6"]
    assert "no articles" in reasons["empty-list.json"] and "no articles" in reasons["blank.jsonl"]
    assert "outside" in reasons["link-out.txt"] and "outside" in reasons["dangling.txt"]
    assert "folder; not followed" in reasons["link-dir"] and "folder; not followed" in reasons["loop"]
    assert "regular file" in reasons["pipe.txt"]
    assert not any("Rahasia" in a.text for a in corpus.articles)  # nothing read through the links out
    assert ("link-in", "good") in corpus.duplicates
    assert seconds < 120, seconds
    build_index(c, tmp_path / "index", progress=False, embedder=fake, corpus=corpus)
    loaded = load_index(tmp_path / "index")
    assert set(loaded.articles) == ids
    assert len(json.loads((tmp_path / "index" / MANIFEST).read_text(encoding="utf-8"))["corpus"]["problems"]) == len(corpus.problems)


def test_size_limits_are_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "MAX_JSON_FILE_BYTES", 1000)
    monkeypatch.setattr(readers, "MAX_ARTICLE_CHARS", 100)
    (tmp_path / "many.jsonl").write_text(json.dumps({"text": "x " * 600}), encoding="utf-8")
    (tmp_path / "long.jsonl").write_text(json.dumps({"text": "Kalimat panjang. " * 10}), encoding="utf-8")
    c = load_corpus(tmp_path)
    reasons = {Path(p.path).name: p.reason for p in c.problems}
    assert "too large" in reasons["many.jsonl"] and "too long" in reasons["long.jsonl:1"]


@pytest.mark.slow
def test_50_mb_jsonl_of_many_articles_is_read(tmp_path):
    """A 50 MB JSONL of ordinary articles is no reason to refuse: it is read in bounded time."""
    rec = {"title": "Berita", "text": "Jakarta - " + "Warga menerima vaksin dosis pertama di puskesmas. " * 20}
    with open(tmp_path / "many.jsonl", "w", encoding="utf-8") as f:
        i = 0
        while f.tell() < 50 * 2**20:
            f.write(json.dumps({**rec, "id": f"a{i}", "text": rec["text"] + f" Nomor {i}."}) + "\n")
            i += 1
    t0 = time.perf_counter()
    c = load_corpus(tmp_path)
    assert len(c.articles) == i and not c.problems
    assert time.perf_counter() - t0 < 600


# =============================================================================================
# 1. Bad input: questions
# =============================================================================================
HOSTILE = [
    "", "   \n\t  ", "\u3000\u200b\ufeff", "a" * 100_000, "Siapa kepala lapasnya? " * 5000,
    "\x00\x01\x02\x1b[31mmerah\x1b[0m\x7f\x08", "😀🔥 siapa 👮‍♂️ kalapas amuntai? 🇮🇩", "\u202eKalapas\u202c \u2066Amuntai\u2069",
    "<script>alert(1)</script><img src=x onerror=alert(2)>", "javascript:alert(document.cookie)",
    "'; DROP TABLE articles; --", "SELECT * FROM users WHERE '1'='1' OR 1=1; --", "{{7*7}} ${7*7} %s%n%x",
    "../../../../etc/passwd", "file:///etc/shadow", "Кто глава 刑务所 Amuntai? من هو رئيس السجن", "ﷺ" * 3000,
    "\ud800 lapas \udcff", "\n".join(["x"] * 5000), "?" * 2500, "Z̴̡͈̀a̷͙̓l̸̰͝g̵̙̈o̵̢̕ lapas",
]
questions = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=400),
    st.text(st.characters(categories=["Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "So", "Sk", "Mn", "Lo", "Nd", "P"]), max_size=200),
    st.builds(lambda w, n: (w + " ") * n, st.sampled_from(["lapas", "😀", "a", "<b>", "'--", "\x00"]), st.integers(1, 25_000)),
    st.lists(st.one_of(st.sampled_from(WORDS), st.sampled_from(HOSTILE[5:12])), max_size=12).map(" ".join),
)


def _check_answer(assistant, q, answer):
    assert isinstance(answer.text, str) and answer.text.strip()
    assert isinstance(answer.found, bool) and len(answer.question) <= MAX_QUERY_CHARS
    assert "Traceback" not in answer.text
    if answer.found:
        assert answer.citations
    for c in answer.citations:
        assert c.article.text[c.start:c.end] == c.quote


@pytest.fixture(scope="module")
def fake_assistant(tmp_path_factory, embedder):
    """25 articles (20 generated towns), real model: answers cost milliseconds (stored sentence vectors),
    and the learned selector needs the encoder it was trained with to rate answers."""
    d = tmp_path_factory.mktemp("fake")
    write_corpus(d / "corpus", towns=20, seed=CORPUS)
    build_index(d / "corpus", d / "index", progress=False, embedder=embedder)
    return Assistant.load(d / "index", embedder=embedder)


@fuzz(150)
@given(q=questions, k=st.integers(1, 10), mode=st.sampled_from(["hybrid", "bm25", "dense"]))
def test_fuzz_questions_through_ask_and_retrieve(fake_assistant, q, k, mode):
    hits = fake_assistant.retrieve(q, k=k, mode=mode)
    assert len(hits) <= k
    for h in hits:
        assert h.article.text[h.start:h.end] == h.text
    _check_answer(fake_assistant, q, fake_assistant.ask(q, k=k, mode=mode))
    chat = fake_assistant.conversation()
    chat.ask(q, k=k, mode=mode)
    _check_answer(fake_assistant, q, chat.ask("Siapa kepala lapasnya?", k=k, mode=mode))


REAL_MODEL_CASES = ["a" * 100_000, "\x00\x01\x02\x1b[31mmerah\x1b[0m\x7f \u202e\u200b\ufeff",
                    "😀🔥 siapa 👮‍♂️ kalapas amuntai? 🇮🇩 Кто глава 刑务所 Amuntai? من هو رئيس السجن",
                    "\ud800 lapas \udcff", "<script>alert(1)</script> '; DROP TABLE x; --", "", "   "]


def test_hostile_questions_with_the_real_model(assistant):
    """The tokenizer of the real model sees every hostile string (lone surrogates used to raise)."""
    for q in REAL_MODEL_CASES:
        assert len(assistant.retrieve(q, k=3)) <= 3
        _check_answer(assistant, q, assistant.ask(q, k=3))


# =============================================================================================
# 2. Faults: damaged index files
# =============================================================================================
@pytest.fixture(scope="module")
def pristine(tmp_path_factory, fake):
    d = tmp_path_factory.mktemp("pristine")
    write_corpus(d / "corpus", towns=6, seed=CORPUS)
    build_index(d / "corpus", d / "index", progress=False, embedder=fake)
    return d / "index"


def _copy_index(src: Path) -> Path:
    dst = Path(tempfile.mkdtemp()) / "index"
    shutil.copytree(src, dst)
    return dst


@fuzz(120)
@given(target=st.sampled_from(DATA_FILES + (MANIFEST,)), kind=st.sampled_from(["truncate", "flip", "garbage", "empty", "delete", "append"]),
       where=st.floats(0, 1), byte=st.integers(1, 255), verify=st.booleans())
def test_fuzz_damaged_index_files(pristine, fake, target, kind, where, byte, verify):
    """Any damage to any file gives IndexCorruptError naming the file and saying to rebuild, or
    (verify=False, damage the cheap checks cannot see) a load whose data still hang together."""
    index = _copy_index(pristine)
    try:
        manifest = read_manifest(index)
        path = index / MANIFEST if target == MANIFEST else index / manifest["data_dir"] / target
        data = bytearray(path.read_bytes())
        at = min(int(where * len(data)), len(data) - 1)
        if kind == "truncate":
            path.write_bytes(bytes(data[:at]))
        elif kind == "flip":
            data[at] ^= byte
            path.write_bytes(bytes(data))
        elif kind == "garbage":
            path.write_bytes(random.Random(at).randbytes(len(data)))
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "delete":
            path.unlink()
        else:
            path.write_bytes(bytes(data) + b'{"junk": 1}\n')
        if target in ("dense.faiss", "vectors.npy") and not verify and kind in ("flip", "garbage"):
            verify = True  # binary payloads are only guarded by the checksum (the default)
        try:
            loaded = load_index(index, verify=verify)
        except (IndexCorruptError, IndexNotFoundError) as e:  # not found: the manifest was deleted
            msg = str(e)
            assert "rebuild" in msg or "run `qa index" in msg, msg
            named = [target] if target != MANIFEST else [MANIFEST, *DATA_FILES]
            assert any(n in msg for n in named), msg
            return
        # Loaded: only damage no check can see gets here (a harmless manifest field, or without
        # checksums a changed title or token); what was loaded still hangs together.
        assert target == MANIFEST or not verify, (target, kind)
        for c in loaded.chunks:
            assert loaded.articles[c.article_id].text[c.start:c.end] == c.text
        try:
            Assistant.load(index, embedder=fake, verify=verify).retrieve("lapas", k=2)
        except QAError as e:  # e.g. a changed model name
            assert "rebuild" in str(e), str(e)
    finally:
        shutil.rmtree(index.parent, ignore_errors=True)


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.text(max_size=12), st.just("../../etc"),
                      st.just("data-../../x"), st.just([]), st.just({}))


@fuzz(120)
@given(path_pick=st.lists(st.integers(0, 50), min_size=1, max_size=3), value=json_leaf, delete=st.booleans())
def test_fuzz_manifest_structure(pristine, fake, path_pick, value, delete):
    """A manifest that is valid JSON but has a wrong field (removed, wrong type, a path) never gives
    a KeyError or TypeError: a QAError that says to rebuild, or a load that works."""
    index = _copy_index(pristine)
    try:
        m = json.loads((index / MANIFEST).read_text(encoding="utf-8"))
        node, key = m, None
        for pick in path_pick:
            if not isinstance(node, dict) or not node:
                break
            key = sorted(node)[pick % len(node)]
            if isinstance(node[key], dict) and node[key] and pick % 2:
                node = node[key]
                key = None
                continue
            break
        if key is None and isinstance(node, dict) and node:
            key = sorted(node)[0]
        if isinstance(node, dict) and key is not None:
            if delete:
                del node[key]
            else:
                node[key] = value
        (index / MANIFEST).write_text(json.dumps(m), encoding="utf-8")
        try:
            a = Assistant.load(index, embedder=fake)
        except QAError as e:
            assert "rebuild" in str(e) or "configure" in str(e), str(e)
            return
        a.retrieve("lapas", k=2)
    finally:
        shutil.rmtree(index.parent, ignore_errors=True)


# =============================================================================================
# 2. Faults: a full disk
# =============================================================================================
class _Disk:
    """Bytes left on a simulated disk; writes past it fail with ENOSPC (after writing what fits)."""

    def __init__(self, free: float):
        self.free = free
        self.written = 0
        self.full = False

    def take(self, n: int) -> int:
        ok = int(min(n, max(0, self.free - self.written)))
        self.written += ok
        if ok < n:
            self.full = True
        return ok


class _FullDiskFile:
    def __init__(self, f, disk: _Disk):
        self._f, self._disk = f, disk

    def write(self, data):
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        ok = self._disk.take(len(raw))
        if ok < len(raw):
            if ok:
                part = raw[:ok]
                self._f.write(part.decode("utf-8", "ignore") if isinstance(data, str) else part)
            raise OSError(errno.ENOSPC, "No space left on device (simulated)")
        return self._f.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()

    def __getattr__(self, name):
        return getattr(self._f, name)


def _build_on_disk(corpus: Path, index: Path, free: float, fake) -> _Disk:
    """Build with every write (Python files, numpy, FAISS) charged to a disk with ``free`` bytes."""
    import numpy as np

    import qa.lexical.base
    import qa.stores.embedded_index.dense
    import qa.stores.embedded_index.files

    files, lexical, dense = qa.stores.embedded_index.files, qa.lexical.base, qa.stores.embedded_index.dense
    disk = _Disk(free)
    real_open, real_save, real_np_save = builtins.open, dense.save, np.save

    def limited_open(file, mode="r", *a, **kw):
        f = real_open(file, mode, *a, **kw)
        return _FullDiskFile(f, disk) if any(c in mode for c in "wax") else f

    def limited_np_save(file, arr, *a, **kw):
        with limited_open(file, "wb") as f:
            real_np_save(f, arr, *a, **kw)

    def limited_save(ix, path):
        real_save(ix, path)
        size = Path(path).stat().st_size
        ok = disk.take(size)
        if ok < size:
            os.truncate(path, ok)
            raise OSError(errno.ENOSPC, "No space left on device (simulated)")

    # Python-level writes of the store (its own files, BM25 tokens, numpy) and FAISS's file.
    files.open = lexical.open = limited_open
    dense.save = limited_save
    np.save = limited_np_save
    try:
        build_index(corpus, index, progress=False, force=True, embedder=fake)
    finally:
        del files.open, lexical.open
        dense.save = real_save
        np.save = real_np_save
    return disk


def test_disk_full_at_every_stage_loses_nothing(tmp_path, fake):
    corpus = write_corpus(tmp_path / "corpus", towns=8, seed=CORPUS)
    index = tmp_path / "index"
    build_index(corpus, index, progress=False, embedder=fake)
    before = read_manifest(index)
    total = _build_on_disk(corpus, index, float("inf"), fake).written  # bytes one build writes
    manifest_bytes = (index / MANIFEST).stat().st_size
    before = read_manifest(index)
    # the last point stays 64 bytes short: the next manifest may be a few bytes shorter than this one
    # (build_seconds "0.1" against "0.034"), and a build that fits is not a disk-full case
    points = sorted({0, 1, 100, *[int(total * f / 20) for f in range(1, 20)],
                     total - manifest_bytes, total - manifest_bytes + 1, total - manifest_bytes // 2, total - 64})
    for free in points:
        with pytest.raises(OSError) as exc:
            _build_on_disk(corpus, index, free, fake)
        assert exc.value.errno == errno.ENOSPC
        assert read_manifest(index) == before, free
        load_index(index)  # checksums and all
        left = sorted(p.name for p in index.iterdir())
        assert left == sorted([MANIFEST, before["data_dir"]]), (free, left)  # nothing half-written stays
    # enough room (the manifest differs by a few bytes between builds: timings and folder names)
    _build_on_disk(corpus, index, total + 256, fake)
    assert read_manifest(index)["data_dir"] != before["data_dir"]
    assert len(os.listdir(index)) == 2
    _record("disk-full", {"free_space_points": len(points), "bytes_per_build": total})


# =============================================================================================
# 2. Faults: SIGKILL during `qa index`
# =============================================================================================
FAKE_INDEX = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
from fakes import HashEmbedder
from qa.stores import build_index
build_index(sys.argv[1], sys.argv[2], progress=False, force=True, embedder=HashEmbedder())
"""


def _leftovers_ok(index: Path, current: str) -> list[str]:
    extra = []
    for p in index.iterdir():
        if p.name in (MANIFEST, current):
            continue
        assert p.name.startswith(("data-", ".tmp-", f".{MANIFEST}.tmp-")), p.name
        extra.append(p.name)
    return extra


def _kill_runs(cmd: list[str], index: Path, reference: dict, n: int, rng: random.Random, *, env=None, cwd=None,
               targeted_share: float = 0.5) -> dict:
    """Start ``cmd`` ``n`` times and SIGKILL it: at a uniform random time within one build's
    duration, or (``targeted_share`` of the runs) a random moment after it starts writing. After
    each kill the index loads, verified, with the reference content."""
    def run(kill_after=None, watch_write=False, window=0.0):
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if watch_write:
            while p.poll() is None and not any(x.name.startswith(".tmp-") for x in index.iterdir()):
                time.sleep(0.002)
            time.sleep(rng.uniform(0, window))
        elif kill_after is not None:
            try:
                p.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                pass
        killed = p.poll() is None
        if killed:
            p.send_signal(signal.SIGKILL)
        _, err = p.communicate(timeout=600)
        assert killed or p.returncode == 0, err.decode(errors="replace")[-2000:]
        return killed, time.perf_counter() - t0

    # One whole build: how long it takes, and how long its writing phase lasts (from the .tmp-*
    # folder's appearance to the new manifest, plus the clean-up after it).
    t0 = time.perf_counter()
    old_manifest = (index / MANIFEST).stat()
    p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t_write = t_swap = None
    while p.poll() is None:
        names = [x.name for x in index.iterdir()]
        if t_write is None and any(n.startswith(".tmp-") for n in names):
            t_write = time.perf_counter()
        if t_write and t_swap is None and (index / MANIFEST).stat().st_ino != old_manifest.st_ino:
            t_swap = time.perf_counter()
        time.sleep(0.001)
    full = time.perf_counter() - t0
    assert p.returncode == 0, p.communicate()[1].decode(errors="replace")[-2000:]
    window = ((t_swap or time.perf_counter()) - t_write) * 1.25 if t_write else 0.05
    stats = {"runs": 0, "kills": 0, "completed": 0, "kept_previous": 0, "new_complete": 0,
             "kills_that_left_a_partial_build": 0, "targeted_at_writing": 0, "full_build_seconds": round(full, 2), "writing_seconds": round(window, 3)}
    left_before: set[str] = set()
    for i in range(n):
        before = read_manifest(index)
        targeted = rng.random() < targeted_share
        killed, _ = run(kill_after=None if targeted else rng.uniform(0, full * 1.05), watch_write=targeted,
                        window=window)
        stats["runs"] += 1
        stats["targeted_at_writing"] += targeted
        stats["kills" if killed else "completed"] += 1
        after = read_manifest(index)
        loaded = load_index(index)  # complete and verified, whatever the moment of the kill
        assert set(loaded.articles) == reference["articles"] and len(loaded.chunks) == reference["chunks"]
        if after == before:
            stats["kept_previous"] += 1
        else:
            stats["new_complete"] += 1
        left = set(_leftovers_ok(index, after["data_dir"]))
        stats["kills_that_left_a_partial_build"] += bool(left - left_before)
        left_before = left
    return stats


def _reference(index: Path) -> dict:
    loaded = load_index(index)
    return {"articles": set(loaded.articles), "chunks": len(loaded.chunks)}


def test_sigkill_during_index_keeps_previous_index(tmp_path, fake):
    """The store's build in a fresh interpreter (hash embedder: about a second a build), killed at
    random moments: the index always loads, verified; orphans go with the next build."""
    corpus = write_corpus(tmp_path / "corpus", towns=10, fillers=400, seed=CORPUS)
    index = tmp_path / "index"
    build_index(corpus, index, progress=False, embedder=fake)
    n = int(os.environ.get("QA_KILLS") or 15)
    stats = _kill_runs([sys.executable, "-c", FAKE_INDEX, str(corpus), str(index)], index, _reference(index), n,
                       random.Random(1234))
    assert stats["kills"] >= n * 0.6, stats
    build_index(corpus, index, progress=False, force=True, embedder=fake)
    assert sorted(p.name for p in index.iterdir()) == sorted([MANIFEST, read_manifest(index)["data_dir"]])
    _record("sigkill-store", stats)


def _real_cli_setup(tmp_path, embedder):
    corpus = write_corpus(tmp_path / "corpus", towns=12, seed=CORPUS)
    index = tmp_path / "index"
    build_index(corpus, index, progress=False, embedder=embedder)  # the CLI reuses these embeddings
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "qa", "index", "--corpus", str(corpus), "--index", str(index), "--force", "--no-progress"]
    return corpus, index, env, cmd


def test_sigkill_real_qa_index_while_writing(tmp_path, embedder):
    """``python -m qa index --force`` with the real model, killed after it starts writing."""
    corpus, index, env, cmd = _real_cli_setup(tmp_path, embedder)
    before = read_manifest(index)
    p = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while p.poll() is None and not any(x.name.startswith(".tmp-") for x in index.iterdir()):
        time.sleep(0.002)
    assert p.poll() is None, p.communicate()[1].decode(errors="replace")[-2000:]
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    assert read_manifest(index) == before
    load_index(index)
    assert _leftovers_ok(index, before["data_dir"])  # the unfinished build's folder is there...
    build_index(corpus, index, progress=False, embedder=embedder, force=True)
    assert len(os.listdir(index)) == 2  # ...and gone after the next build


@pytest.mark.slow
def test_sigkill_real_qa_index_in_every_phase(tmp_path, embedder):
    """The real CLI killed at uniform random moments (start-up, model load, reading, writing)."""
    corpus, index, env, cmd = _real_cli_setup(tmp_path, embedder)
    n = int(os.environ.get("QA_KILLS") or 15)
    stats = _kill_runs(cmd, index, _reference(index), n, random.Random(99), env=env, cwd=tmp_path, targeted_share=0.3)
    assert stats["kills"] >= n * 0.6, stats
    build_index(corpus, index, progress=False, force=True, embedder=embedder)
    assert len(os.listdir(index)) == 2
    _record("sigkill-cli", stats)


# =============================================================================================
# 3. Retrieval from several threads
# =============================================================================================
THREAD_QUESTIONS = ["Siapa Kalapas Kelas IIB Amuntai?", "Berapa dosis vaksin yang diterima Kanwil Kemenkumham Banten?",
                    "Why did the ASN cluster in Banten happen?", "Kapan vaksinasi dilakukan?",
                    "Siapa Kepala Binda Kalsel?", "vaksin booster"]


def _sig(hits):
    return [(h.chunk.id, round(h.score, 5), h.bm25_rank, h.dense_rank) for h in hits]


def test_retrieve_from_8_threads_matches_serial(assistant):
    """The real model, FAISS and BM25 called from 8 threads at once give the single-threaded results."""
    modes = ("hybrid", "bm25")
    ref = {(q, m): _sig(assistant.retrieve(q, k=5, mode=m)) for q in THREAD_QUESTIONS for m in modes}
    barrier = threading.Barrier(8)

    def work(seed):
        order = list(ref)
        random.Random(seed).shuffle(order)
        barrier.wait()
        return [(key, _sig(assistant.retrieve(key[0], k=5, mode=key[1]))) for key in order]

    with ThreadPoolExecutor(8) as ex:
        results = [r for rs in ex.map(work, range(8)) for r in rs]
    assert len(results) == 8 * len(ref)
    for key, sig in results:
        assert sig == ref[key], key


def test_ask_and_conversations_from_threads(fake_assistant):
    """ask() and one Conversation per thread, 8 threads: the same answers as one thread, and no
    follow-up picks up another thread's conversation."""
    from fakes import HEADS, TOWNS

    def session(i):
        chat = fake_assistant.conversation()
        first = chat.ask(f"Berapa warga binaan Lapas Kelas IIB {TOWNS[i]} yang divaksin?")
        follow = chat.ask("Siapa kepala lapasnya?")
        return first.to_dict(), follow.to_dict()

    ref = {i: session(i) for i in range(16)}
    for i, (first, follow) in ref.items():
        assert str(100 + 7 * i) in first["text"] and HEADS[i] in follow["text"], (i, follow["text"])
    with ThreadPoolExecutor(8) as ex:
        got = dict(zip(range(16), ex.map(session, list(range(16)))))
    assert got == ref
