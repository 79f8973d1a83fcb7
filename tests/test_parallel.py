"""Answering in parallel: the assistant's read path from many threads at once (real model, FAISS,
BM25, extractive answerer) gives the single-threaded results; the chat answers sessions at the
same time (no global lock); an LLM answerer never has more than ``llm_concurrency`` requests at
its server, streamed or not, and frees its slot when a stream is abandoned."""
from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from llm_server import ScriptedLLM
from qa import Assistant, Config
from qa.errors import ConfigError

THREADS = 4
pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")  # pandas deprecations inside Gradio
QUESTIONS = ["Siapa Kalapas Kelas IIB Amuntai?", "Berapa dosis vaksin yang diterima Kanwil Kemenkumham Banten?",
             "Why did the ASN cluster in Banten happen?", "Kapan vaksinasi dilakukan?", "Siapa Kepala Binda Kalsel?",
             "Apa ibu kota Prancis?"]
ASKED = [QUESTIONS[i] for i in (0, 1, 2, 5)]  # found, found, across languages, not in the articles
CONVERSATIONS = [("Berapa warga binaan Lapas Amuntai yang divaksin?", "Siapa kepala lapasnya?"),
                 ("Siapa Kepala Binda Kalsel?", "Apa yang dia katakan tentang vaksinasi?")]


def _rounded(x):
    """``x`` with floats rounded (torch may sum in another order when threads share the CPU)."""
    if isinstance(x, float):
        return round(x, 4)
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_rounded(v) for v in x]
    return x


def _hits(hits):
    return [(h.chunk.id, round(h.score, 4), h.bm25_rank, h.dense_rank) for h in hits]


def _run(assistant, op):
    kind, *args = op
    if kind == "retrieve":
        return _hits(assistant.retrieve(args[0], k=5, mode=args[1]))
    if kind == "ask":
        ans = assistant.ask(args[0])
        return _rounded(ans.to_dict()), _hits(ans.hits)
    chat = assistant.conversation()  # "chat": one conversation, its turns in order
    return [_rounded(chat.ask(q).to_dict()) for q in args[0]]


def _from_threads(assistant, ops) -> list:
    """Every op from THREADS threads started together, each thread in its own order: (op, result) pairs."""
    barrier = threading.Barrier(THREADS)

    def work(seed):
        order = list(ops)
        random.Random(seed).shuffle(order)
        barrier.wait(timeout=120)
        return [(op, _run(assistant, op)) for op in order]

    with ThreadPoolExecutor(THREADS) as ex:
        return [r for rs in ex.map(work, range(THREADS)) for r in rs]


def test_retrieve_ask_and_follow_ups_from_threads_match_one_thread(assistant):
    """THREADS threads each run every retrieval (3 modes), answer and conversation (a question,
    then a follow-up), in their own order, all at once through one Assistant: every result
    equals the single-threaded one. (tests/test_reliability.py checks retrieval from 8 threads.)"""
    ops = ([("retrieve", q, m) for q in QUESTIONS for m in ("hybrid", "bm25", "dense")]
           + [("ask", q) for q in ASKED] + [("chat", turns) for turns in CONVERSATIONS])
    ref = {op: _run(assistant, op) for op in ops}
    assert any(r[0]["found"] for op, r in ref.items() if op[0] == "ask")
    assert any(not r[0]["found"] for op, r in ref.items() if op[0] == "ask")  # abstentions too
    results = _from_threads(assistant, ops)
    assert len(results) == THREADS * len(ops)
    for op, got in results:
        assert got == ref[op], op


def test_large_index_layout_from_threads_matches_one_thread(tmp_path, embedder):
    """The same on the layout of large indexes: bm25s (its last-query cache shared by the
    threads), HNSW over float16 vectors, articles and chunks parsed lazily from memory-mapped
    JSONL (lru caches filled by the threads together)."""
    from conftest import CORPUS
    from qa import build_index
    from qa.stores.embedded import EmbeddedStore
    from qa.stores.embedded_index.load import load_index

    cfg = Config(lexical_engine="bm25s", dense_index="hnsw", vector_dtype="float16")
    build_index(CORPUS, tmp_path / "index", cfg, progress=False, embedder=embedder)

    def fresh() -> Assistant:
        store = EmbeddedStore(tmp_path / "index", load_index(tmp_path / "index", lazy=True), cfg)
        return Assistant(store, cfg, embedder=embedder, index_dir=tmp_path / "index")

    ops = ([("retrieve", q, m) for q in QUESTIONS for m in ("hybrid", "bm25")] + [("ask", q) for q in ASKED[:2]])
    serial = fresh()
    ref = {op: _run(serial, op) for op in ops}
    shared = fresh()  # empty caches
    assert shared.store.lexical.engine == "bm25s" and type(shared.store.chunks).__name__ == "LazyChunks"
    results = _from_threads(shared, ops)
    for op, got in results:
        assert got == ref[op], op


def test_encoder_is_ready_for_threads_when_loaded():
    """The first encode used to switch the tokenizer's truncation and padding (a write that races
    with other threads' encodes); a loaded encoder's calls change nothing shared, and 8 threads
    encoding at once on a fresh encoder get the single-threaded vectors."""
    from qa.encoders.sentence_transformers import Embedder

    enc = Embedder("all-MiniLM-L6-v2", device="cpu")
    tok = enc.model.tokenizer._tokenizer
    state = (tok.truncation, tok.padding)
    texts = [["pendek"], ["kalimat yang jauh lebih panjang " * 40, "dua"], ["tiga kata saja"] * 5, QUESTIONS]
    barrier = threading.Barrier(8)

    def work(i):
        barrier.wait(timeout=60)
        return enc.encode(texts[i % len(texts)])

    with ThreadPoolExecutor(8) as ex:
        got = list(ex.map(work, range(8)))
    assert (tok.truncation, tok.padding) == state
    for i, vecs in enumerate(got):
        np.testing.assert_allclose(vecs, enc.encode(texts[i % len(texts)]), atol=1e-5)


# -- the chat -------------------------------------------------------------------------------------
class SlowAnswerer:
    """An answerer that takes ``seconds`` per answer and uses no CPU meanwhile (so the timing
    does not depend on this machine's speed or load): it returns the real extractive answer,
    worked out beforehand for each of ``questions``. Counts how many answers run at once."""

    name = "extractive"

    def __init__(self, assistant, questions, seconds: float):
        x = assistant.answerer
        self.prepared = {q: x.answer(q, assistant.retrieve(q, k=5)) for q in questions}
        self.seconds = seconds
        self.inside = self.most_inside = 0
        self._lock = threading.Lock()

    def answer(self, question, hits, *, lang=None, query=None):
        with self._lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            time.sleep(self.seconds)
            return self.prepared[question]
        finally:
            with self._lock:
                self.inside -= 1

    def stream(self, question, hits, *, lang=None, query=None):
        yield self.answer(question, hits, lang=lang, query=query)


@pytest.fixture()
def slow_assistant(seed_index, embedder):
    a = Assistant.load(seed_index, embedder=embedder, verify=False)
    a._generator = SlowAnswerer(a, QUESTIONS[:4], 1.0)
    return a


def _at_once(n: int, fn, timeout: float = 120.0) -> tuple[list, float]:
    """``fn(i)`` for i < n, in n threads released together; (results, seconds from the release).
    The threads are daemons: one stuck for good (a leaked LLM slot) fails the test, not the run."""
    barrier = threading.Barrier(n + 1)
    results: list = [None] * n
    errors: list = []

    def run(i):
        try:
            barrier.wait(timeout=60)
            results[i] = fn(i)
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait(timeout=60)
    t0 = time.perf_counter()
    for t in threads:
        t.join(max(0.0, timeout - (time.perf_counter() - t0)))
    seconds = time.perf_counter() - t0
    assert not any(t.is_alive() for t in threads), f"still waiting after {timeout:.0f}s"
    if errors:
        raise errors[0]
    return results, seconds


def test_chat_answers_four_sessions_at_once(slow_assistant, monkeypatch):
    """Four sessions ask at the same moment through the chat's handlers, each answer taking 1 s:
    all four are inside the answerer together and the four answers take under 4 s (one question at a
    time needs at least 4 s), each session getting its own answer."""
    pytest.importorskip("gradio")
    from qa.ui import app as ui_app
    from qa.ui.render import chat_markdown

    monkeypatch.setattr(ui_app, "STREAM_DELAY", 0.0)
    h = ui_app.ChatHandlers(slow_assistant, examples=[])
    qs = QUESTIONS[:4]
    expected = [chat_markdown(slow_assistant.generator.prepared[q].text) for q in qs]

    def session(i):
        *_, (box, messages, sources, chat) = h.respond(qs[i], [], None, 5, "hybrid")
        return messages, chat

    results, seconds = _at_once(4, session)
    assert slow_assistant.generator.most_inside == 4
    assert seconds < 4.0, f"4 sessions took {seconds:.2f}s: one at a time takes at least 4 s"
    for i, (messages, chat) in enumerate(results):
        assert messages[-1]["content"] == expected[i], i
        assert [t.question for t in chat.history] == [qs[i]]  # its own conversation

    slow_assistant.generator.most_inside = 0
    results, seconds = _at_once(4, lambda i: h.api_ask(qs[i], 5, "hybrid"))  # the named API too
    assert slow_assistant.generator.most_inside == 4 and seconds < 4.0, seconds
    assert [r["question"] for r in results] == qs


def test_served_chat_answers_sessions_at_once(slow_assistant):
    """The same through the served app (Gradio queue, 4 workers) and gradio_client sessions."""
    pytest.importorskip("gradio_client")
    from test_concurrency import ChatSession, _serve

    app, url = _serve(slow_assistant)
    sessions = [ChatSession(url) for _ in range(4)]
    try:
        results, seconds = _at_once(4, lambda i: sessions[i].chat(QUESTIONS[i]))
    finally:
        for s in sessions:
            s.close()
        app.close()
    # all four answers inside the answerer at once: the queue's workers answer in parallel (wall time
    # is not asserted here: through a server on a loaded 2-core machine it varies too much)
    assert slow_assistant.generator.most_inside == 4, f"at most {slow_assistant.generator.most_inside} at once"
    for i, (user, answer, sources, _) in enumerate(results):
        assert user.replace("\\", "") == QUESTIONS[i] and answer.strip(), (i, user, answer)


# -- the LLM's own limit -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def llm():
    server = ScriptedLLM(slow_seconds=0.4).start()
    yield server
    server.stop()


def _llm_assistant(seed_index, embedder, llm, limit: int) -> Assistant:
    base = Assistant.load(seed_index, embedder=embedder, verify=False).config.to_dict()
    cfg = Config.from_dict({**base, "answerer": "openai", "llm_base_url": llm.url, "llm_model": "slow",
                            "llm_retries": 0, "llm_timeout": 30.0, "llm_concurrency": limit})
    return Assistant.load(seed_index, cfg, embedder=embedder, verify=False)


def _settle(llm):
    deadline = time.time() + 10
    while llm.active and time.time() < deadline:
        time.sleep(0.02)
    llm.reset_counts()


@pytest.mark.parametrize("limit", [1, 2])
def test_llm_concurrency_caps_requests_at_the_server(seed_index, embedder, llm, limit):
    """Six questions at once, asked and streamed: the server never sees more than ``limit`` of
    them at a time (and sees that many: the limit does not serialise further), and every one
    gets the checked LLM answer a lone question gets."""
    a = _llm_assistant(seed_index, embedder, llm, limit)
    q = QUESTIONS[0]
    ref = a.ask(q)
    assert ref.answerer == "openai" and ref.found and not ref.notice, ref.to_dict()
    _settle(llm)
    answers, _ = _at_once(6, lambda i: a.ask(q))
    assert llm.max_active == limit
    assert [x.to_dict() for x in answers] == [ref.to_dict()] * 6

    _settle(llm)
    streams, _ = _at_once(6, lambda i: list(a.ask_stream(q)))
    assert llm.max_active == limit
    for items in streams:
        *pieces, final = items
        assert pieces and all(isinstance(p, str) for p in pieces)
        assert final.to_dict() == ref.to_dict()


def test_abandoned_streams_give_their_slot_back(seed_index, embedder, llm):
    """Streams dropped after their first piece (a browser closed) free their slot: four of them,
    then two questions at once still get answers (a leaked slot would make them wait forever)."""
    a = _llm_assistant(seed_index, embedder, llm, 2)
    q = QUESTIONS[0]

    def abandon(i):
        stream = a.ask_stream(q)
        first = next(stream)
        stream.close()
        return first

    firsts, _ = _at_once(4, abandon, timeout=30)
    assert all(isinstance(f, str) and f for f in firsts)
    _settle(llm)
    answers, _ = _at_once(2, lambda i: a.ask(q), timeout=30)
    assert all(x.answerer == "openai" and x.found for x in answers)
    assert llm.max_active == 2


def test_llm_concurrency_is_checked():
    from qa.answer import LLMAnswerer

    assert Config().llm_concurrency == 2
    for bad in (0, 65, 2.5, True, "2"):
        with pytest.raises(ConfigError, match="llm_concurrency"):
            Config(llm_concurrency=bad)
    with pytest.raises(ValueError, match="concurrency must be an integer from 1 to 64"):
        LLMAnswerer(None, None, concurrency=0)
