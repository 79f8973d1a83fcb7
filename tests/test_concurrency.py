"""The running chat under load and attack: 20 simultaneous sessions through gradio_client (no
answer in the wrong session, no shared history), hostile questions through the chat and the API,
login, and no file reachable through the server.

The default run serves, in this process, an index of 25 articles built with the real model (an
answer costs a query embedding and a matrix product, so a few hundred questions take seconds);
``-m slow`` runs the same sessions against ``qa serve`` as shipped. Latency figures go to ``artifacts/concurrency-*.json``.
"""
from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import CORPUS, ROOT
from fakes import HEADS, TOWNS, n_examples, write_corpus

gr = pytest.importorskip("gradio")
pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402

from qa import Assistant, build_index  # noqa: E402
from qa.ui import UI_TEXT, build_app  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")
ARTIFACTS = ROOT / "artifacts"
SESSIONS = 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(assistant, **launch):
    """The app as ``qa.ui.launch`` runs it (queue of 4 workers), on a free localhost port."""
    app = build_app(assistant)
    app.queue(default_concurrency_limit=4)
    port = _free_port()
    app.launch(prevent_thread_lock=True, server_port=port, quiet=True, **launch)
    return app, f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def fake_index(tmp_path_factory, embedder):
    d = tmp_path_factory.mktemp("load")
    write_corpus(d / "corpus", towns=SESSIONS, seed=CORPUS)
    build_index(d / "corpus", d / "index", progress=False, embedder=embedder)
    return d


@pytest.fixture(scope="module")
def fake_app(fake_index, embedder):
    app, url = _serve(Assistant.load(fake_index / "index", embedder=embedder))
    yield url
    app.close()


# -- driving the chat as the browser does ------------------------------------------------------
class ChatSession:
    """One browser session: a gradio_client Client (its own session hash, so its own gr.State)
    that submits to the chat's handler. The handler is hidden from the API listing
    (api_visibility="private"), which gradio_client enforces only on its side; the browser calls
    it the same way, by its index."""

    def __init__(self, url: str, **kw):
        self.client = Client(url, verbose=False, **kw)
        box = next(c["id"] for c in self.client.config["components"] if c.get("props", {}).get("elem_id") == "qa-input")
        self.fn = next(d.get("id", i) for i, d in enumerate(self.client.config["dependencies"])
                       if d["inputs"][:1] == [box] and len(d["outputs"]) == 4)
        self.client.endpoints[self.fn].is_valid = True

    def api_fn(self, name: str) -> int:
        """The index of the handler listed in the API as ``name`` (e.g. "ask")."""
        return next(d.get("id", i) for i, d in enumerate(self.client.config["dependencies"]) if d.get("api_name") == name)

    def chat(self, question, k: int = 5, mode: str = "hybrid") -> tuple[str, str, str, float]:
        """(user message, answer, sources panel, seconds) for one question in this session."""
        t0 = time.perf_counter()
        _, messages, sources = self.client.submit(question, [], k, mode, [], "", "", fn_index=self.fn).result(timeout=600)
        seconds = time.perf_counter() - t0
        texts = [_content(m) for m in messages or []]
        user = texts[-2] if len(texts) >= 2 else ""
        return user, texts[-1] if texts else "", sources if isinstance(sources, str) else "", seconds

    def ask_api(self, question, k: int = 5, mode: str = "hybrid") -> dict:
        return self.client.predict(question, k, mode, api_name="/ask")

    def close(self):
        try:
            self.client.close()
        except Exception:  # noqa: BLE001 - older clients have no close()
            pass


def _content(message) -> str:
    c = message.get("content") if isinstance(message, dict) else message
    if isinstance(c, list):
        return " ".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in c)
    return str(c or "")


def _unescape(md: str) -> str:
    return md.replace("\\", "")


# -- 20 sessions --------------------------------------------------------------------------------
def _script(i: int, rounds: int) -> list[tuple[str, str]]:
    """(question, what the answer must contain) for session ``i``: questions about its own town,
    with follow-ups that only make sense with this session's history."""
    town, head, n = TOWNS[i], HEADS[i], str(100 + 7 * i)
    steps = [(f"Berapa warga binaan Lapas Kelas IIB {town} yang divaksin?", n),
             ("Siapa kepala lapasnya?", head),
             (f"Siapa Kepala Lapas Kelas IIB {town}?", head),
             ("Berapa warga binaan yang divaksin di sana?", n)]
    return steps * rounds


def _reference(assistant, sessions: int, rounds: int) -> dict[int, list[str]]:
    """What each session must see: its script asked through one Conversation, single-threaded."""
    from qa.ui import chat_markdown

    ref = {}
    for i in range(sessions):
        chat = assistant.conversation()
        ref[i] = [chat_markdown(chat.ask(q, k=5, mode="hybrid").text) for q, _ in _script(i, rounds)]
        assert TOWNS[i] in _unescape(ref[i][0]) or str(100 + 7 * i) in ref[i][0], ref[i][0]
        assert HEADS[i] in _unescape(ref[i][1]), ref[i][1]  # the follow-up works with this history
    return ref


def _run_sessions(url: str, rounds: int, reference: dict[int, list[str]], sessions: int = SESSIONS,
                  **client_kw) -> dict:
    barrier = threading.Barrier(sessions)
    results: dict[int, list] = {}
    errors: list[str] = []

    def session(i: int):
        s = ChatSession(url, **client_kw)
        out = []
        try:
            barrier.wait(timeout=300)
            for n_q, (q, expected) in enumerate(_script(i, rounds)):
                user, answer, sources, seconds = s.chat(q)
                out.append((q, expected, user, answer, sources, seconds))
                if n_q == 1:  # the named API has no history, even in a session that has one
                    api = s.ask_api("Siapa kepala lapasnya?")
                    out.append(("/ask", api["query"], "", api["text"], "", 0.0))
        except Exception as e:  # noqa: BLE001 - reported below with the session number
            errors.append(f"session {i}: {type(e).__name__}: {e}")
        finally:
            s.close()
        results[i] = out

    threads = [threading.Thread(target=session, args=(i,)) for i in range(sessions)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=3600)
    wall = time.perf_counter() - t0
    assert not errors, errors[:5]
    latencies = []
    for i, out in results.items():
        others = [h for j, h in enumerate(HEADS[:sessions]) if j != i]
        chat_answers = [x for x in out if x[0] != "/ask"]
        assert len(chat_answers) == len(reference[i]), i
        for (q, expected, user, answer, sources, seconds), ref in zip(chat_answers, reference[i]):
            latencies.append(seconds)
            assert _unescape(user) == q, (i, user, q)  # this session's own question came back
            assert answer == ref, (i, q, answer, ref)  # the answer this session's own history gives
            assert not any(h in answer for h in others), (i, q, answer)  # nothing from other sessions
            assert UI_TEXT["id"]["error"] not in answer and "Traceback" not in answer
            if expected in _unescape(ref):
                assert f"Lapas Kelas IIB {TOWNS[i]}" in sources, (i, q)
        for q, query, *_ in out:
            if q == "/ask":
                assert query == "Siapa kepala lapasnya?", (i, query)  # not rewritten: /ask has no history
    latencies.sort()
    return {"sessions": sessions, "questions": len(latencies), "api_calls": sessions, "wall_seconds": round(wall, 1),
            "median_seconds": round(statistics.median(latencies), 3),
            "p95_seconds": round(latencies[int(0.95 * (len(latencies) - 1))], 3),
            "max_seconds": round(latencies[-1], 3),
            "questions_per_second": round(len(latencies) / wall, 2)}


def _record(name: str, data: dict) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"concurrency-{name}.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    print(f"\n{name}: {data}")


def test_20_sessions_at_once_keep_their_own_answers_and_history(fake_app, fake_index, embedder):
    rounds = int(os.environ.get("QA_LOAD_ROUNDS") or 1)  # 4 questions a round (80); QA_LOAD_ROUNDS=4: 320
    reference = _reference(Assistant.load(fake_index / "index", embedder=embedder), SESSIONS, rounds)
    figures = _run_sessions(fake_app, rounds, reference)
    assert figures["questions"] == SESSIONS * 4 * rounds
    _record("in-process", {**figures, "model": getattr(embedder, "name", "?"), "queue_workers": 4})


def test_served_load_benchmark_runs(seed_index, tmp_path):
    """benchmarks/served_load.py at a tiny size (3 sessions × 2 questions, both modes) against the seed
    index: every question answered, no error, the table printed and its JSON written."""
    out = tmp_path / "served.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "served_load.py"), "--index", str(seed_index),
                           "--sessions", "3", "--questions", "2", "--json", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| answer | 6 | 0 |" in done.stdout and "| fixed | 6 | 0 |" in done.stdout, done.stdout
    rows = json.loads(out.read_text())
    assert [r["mode"] for r in rows] == ["answer", "fixed"]
    assert all(r["questions"] == 6 and r["errors"] == 0 and r["median_s"] > 0 for r in rows)
    assert all(r["server_cpu_ms"] > 0 and r["client_cpu_ms"] > 0 for r in rows)  # CPU per question, both sides
    light = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "served_load.py"), "--index", str(seed_index),
                            "--sessions", "2", "--questions", "2", "--client", "http"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert light.returncode == 0 and "| answer | 4 | 0 |" in light.stdout and "http clients" in light.stdout, \
        light.stdout + light.stderr[-2000:]
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "served_load.py"), "--sessions", "0"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--sessions must be at least 1" in bad.stderr


def test_qa_serve_loads_the_models_before_it_says_ready(seed_index, embedder, monkeypatch):
    """``qa serve`` loads the answerer and its span reader at start: the first question does not wait
    for them (the reader alone took about 4 s of the first answer); PyTorch computes on one thread
    per queue worker unless OMP_NUM_THREADS says otherwise."""
    from qa.ui import serve

    fresh = Assistant.load(seed_index, embedder=embedder)
    assert fresh._answerer is None  # nothing loaded yet
    launched = []
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, *a, **kw: launched.append(kw))
    monkeypatch.setattr(serve, "load_or_build", lambda *a, **kw: fresh)
    import torch

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    serve.launch(index_dir=str(seed_index), corpus_dir=str(CORPUS))  # conftest puts the threads back after
    assert launched and fresh._answerer is not None and fresh.answerer._reader is not None
    assert torch.get_num_threads() == 1  # the queue's workers are the parallelism
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert serve.serving_threads() == 2 and torch.get_num_threads() == 2  # the environment's word wins


@pytest.mark.slow
def test_20_sessions_against_qa_serve_with_the_real_model(tmp_path, embedder):
    """The same sessions against ``python -m qa serve`` (real model, the app as shipped)."""
    corpus = write_corpus(tmp_path / "corpus", towns=SESSIONS, seed=CORPUS)
    build_index(corpus, tmp_path / "index", progress=False, embedder=embedder)
    reference = _reference(Assistant.load(tmp_path / "index", embedder=embedder), SESSIONS,
                           int(os.environ.get("QA_LOAD_ROUNDS") or 3))
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1",  # and the qa of this checkout, not an installed one
           "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    env.pop("QA_USERNAME", None), env.pop("QA_PASSWORD", None)
    server = subprocess.Popen([sys.executable, "-m", "qa", "serve", "--index", str(tmp_path / "index"),
                               "--port", str(port)], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        import httpx

        deadline = time.time() + 600
        while True:
            assert server.poll() is None, "qa serve exited"
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline, "qa serve did not start"
            time.sleep(1)
        rounds = int(os.environ.get("QA_LOAD_ROUNDS") or 3)
        figures = _run_sessions(url, rounds, reference)
        _record("real-model", {**figures, "model": getattr(embedder, "name", "?"), "queue_workers": 4})
    finally:
        server.terminate()
        server.wait(timeout=60)


# -- hostile questions through the running app --------------------------------------------------
HOSTILE = [
    "", "   \n\t  ", "a" * 100_000, "\x00\x01\x02\x1b[31mmerah\x1b[0m\x7f\x08", "😀🔥 siapa 👮‍♂️ kalapas amuntai? 🇮🇩",
    "<script>alert(1)</script><img src=x onerror=alert(2)>", "'; DROP TABLE articles; --",
    "SELECT * FROM users WHERE '1'='1' OR 1=1; --", "Кто глава 刑务所 Amuntai? من هو رئيس السجن", "{{7*7}} ${7*7} %s%n",
    "../../../../etc/passwd", "\u202eKalapas\u202c \u2066Amuntai\u2069", "Siapa kepala lapasnya? " * 5000,
    None, 12345, ["daftar"], {"kamus": 1},
]


def test_hostile_questions_through_chat_and_api(fake_app):
    s = ChatSession(fake_app)
    try:
        for q in HOSTILE:
            user, answer, sources, _ = s.chat(q)
            blank = q is None or isinstance(q, str) and not q.strip()
            if blank:
                assert answer == ""  # nothing asked: the chat stays as it was
            else:
                assert answer.strip(), repr(q)
                assert UI_TEXT["id"]["error"] not in answer and UI_TEXT["en"]["error"] not in answer, repr(q)
            for text in (user, answer, sources):
                assert "Traceback" not in text and "<script" not in text and "<img" not in text  # escaped
            result = s.ask_api(q)
            assert isinstance(result, dict) and isinstance(result["text"], str) and result["text"].strip()
            assert len(result["question"]) <= 2000
    finally:
        s.close()


@settings(max_examples=n_examples(30), deadline=None, suppress_health_check=list(HealthCheck))
@given(q=st.one_of(st.text(max_size=300), st.text(st.characters(categories=["Cc", "Cf", "Zs", "So", "Mn", "Lo"]), max_size=100)),
       k=st.one_of(st.integers(-5, 50), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=3), st.none()),
       mode=st.one_of(st.sampled_from(["hybrid", "bm25", "dense"]), st.text(max_size=8), st.none()))
def test_fuzz_the_named_api(fake_app, q, k, mode):
    """Any question, k and mode through /ask: an answer dict when k and mode are valid (or empty), else
    an error that names the field; never a server error.
    (gradio_client refuses to encode NaN and infinities; test_non_finite_k sends them raw.)"""
    from gradio_client.exceptions import AppError

    client = _api_client(fake_app)
    valid_k = k is None or k == "" or (not isinstance(k, (bool, str)) and float(k).is_integer() and 1 <= k <= 10)
    valid_mode = mode in (None, "", "hybrid", "bm25", "dense")
    if valid_k and valid_mode:
        result = client.predict(q, k, mode, api_name="/ask")
        assert isinstance(result, dict) and result["text"].strip() and "Traceback" not in result["text"]
    else:
        with pytest.raises(AppError) as e:
            client.predict(q, k, mode, api_name="/ask")
        assert ("k must be a whole number from 1 to 10" if not valid_k else "mode must be one of") in str(e.value)


def test_non_finite_k_from_a_raw_client(fake_app):
    """NaN and ±Infinity (valid in Python's JSON, which the server parses) are refused, naming k."""
    s = ChatSession(fake_app)
    ask_fn = s.api_fn("ask")
    s.close()
    for k in (float("nan"), float("inf"), float("-inf")):
        last = _raw_queue(fake_app, ask_fn, ["kepala lapas", k, "hybrid", "", "", ""])
        assert last.get("msg") == "process_completed" and last.get("success") is False, (k, last)
        assert "k must be a whole number" in json.dumps(last), last
    last = _raw_queue(fake_app, ask_fn, ["kepala lapas", 3.0, "", "", "", ""])  # 3.0 is 3; "" the default mode
    assert last.get("success") and last["output"]["data"][0]["text"].strip(), last


_CLIENTS: dict[str, Client] = {}


def _api_client(url: str) -> Client:
    if url not in _CLIENTS:
        _CLIENTS[url] = Client(url, verbose=False)
    return _CLIENTS[url]


def _raw_queue(url: str, fn_index: int, data: list) -> dict:
    """Call an event the way the browser does (raw JSON, so strings gradio_client cannot encode
    get through); the last message of the event stream."""
    import httpx

    base = url.rstrip("/") + "/gradio_api"
    session = f"raw-{time.time_ns()}"
    body = json.dumps({"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None}).encode()
    r = httpx.post(base + "/queue/join", content=body, headers={"content-type": "application/json"}, timeout=30)
    r.raise_for_status()
    last: dict = {}
    with httpx.stream("GET", base + f"/queue/data?session_hash={session}", timeout=120) as resp:
        for line in resp.iter_lines():
            if line.startswith("data:"):
                last = json.loads(line[5:])
                if last.get("msg") == "process_completed":
                    break
    return last


def test_lone_surrogates_from_the_browser(fake_app):
    s = ChatSession(fake_app)
    ask_fn = s.api_fn("ask")
    s.close()
    for fn, data in ((s.fn, ["\ud800 lapas \udcff", [], None, 5, "hybrid", [], "", ""]), (ask_fn, ["\ud800 lapas \udcff", 5, "hybrid", "", "", ""])):
        last = _raw_queue(fake_app, fn, data)
        assert last.get("msg") == "process_completed" and last.get("success") is True, last
        assert "lapas" in json.dumps(last["output"], ensure_ascii=False)


# -- security ---------------------------------------------------------------------------------
def test_no_file_outside_reachable_through_the_server(fake_index, embedder, tmp_path, monkeypatch):
    """Paths in requests (absolute, relative to the working folder, ../ and %2e%2e escapes) read
    nothing: not a file outside, not the corpus, not the index."""
    import httpx

    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET-OUTSIDE", encoding="utf-8")
    (tmp_path / "cwd").mkdir()
    (tmp_path / "cwd" / "secret.txt").write_text("TOPSECRET-CWD", encoding="utf-8")
    monkeypatch.chdir(tmp_path / "cwd")
    app, url = _serve(Assistant.load(fake_index / "index", embedder=embedder))
    base = url.rstrip("/")
    targets = [str(secret), "secret.txt", "../secret.txt", "/etc/passwd", str(fake_index / "index" / "manifest.json"),
               str(fake_index / "corpus" / "town_00.txt")]
    forms = ["/gradio_api/file={}", "/file={}", "/gradio_api/file/{}", "/static/{}", "/assets/{}", "/gradio_api/static/{}",
             "/{}", "/gradio_api/proxy={}", "/gradio_api/file={}?download=true"]
    encodings = [lambda p: p, lambda p: urllib.parse.quote(p, safe=""),
                 lambda p: "..%2f" * 8 + p.lstrip("/").replace("/", "%2f"), lambda p: "%2e%2e/" * 8 + p.lstrip("/")]
    tried = 0
    try:
        with httpx.Client(timeout=15) as http:
            for t in targets:
                for form in forms:
                    for enc in encodings:
                        r = http.get(base + form.format(enc(t)))
                        tried += 1
                        body = r.text
                        assert "TOPSECRET" not in body and "root:x:0" not in body, (form, t)
                        assert '"format_version"' not in body and "Lapas Kelas IIB" not in body, (form, t)
    finally:
        app.close()
    assert tried == len(targets) * len(forms) * len(encodings)


def test_login_is_enforced_when_set(fake_index, embedder):
    app, url = _serve(Assistant.load(fake_index / "index", embedder=embedder), auth=("ana", "s3cret"))
    try:
        import httpx

        r = httpx.post(url + "gradio_api/call/ask", json={"data": ["Siapa kepala lapas?", 5, "hybrid"]}, timeout=30)
        assert r.status_code in (401, 403), r.status_code
        with pytest.raises(Exception):
            Client(url, verbose=False)
        with pytest.raises(Exception):
            Client(url, verbose=False, auth=("ana", "salah"))
        client = Client(url, verbose=False, auth=("ana", "s3cret"))
        assert client.predict(f"Siapa Kepala Lapas Kelas IIB {TOWNS[0]}?", 5, "hybrid", api_name="/ask")["found"]
    finally:
        app.close()


def test_dependency_bounds_cover_what_was_tested():
    """Every dependency has a lower and an upper bound, and the installed (tested) version is inside."""
    import tomllib
    from importlib.metadata import version

    from packaging.requirements import Requirement

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = list(meta["dependencies"]) + [r for extra in meta["optional-dependencies"].values() for r in extra]
    for line in reqs:
        req = Requirement(line)
        ops = {s.operator for s in req.specifier}
        assert ops & {">=", ">", "==", "~="} and ops & {"<", "<=", "==", "~="}, f"{line}: needs lower and upper bounds"
        try:
            installed = version(req.name)
        except Exception:  # noqa: BLE001 - an extra that is not installed here
            continue
        assert req.specifier.contains(installed.split("+")[0], prereleases=True), f"{req.name} {installed} outside {line}"
