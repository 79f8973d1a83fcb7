"""How many chat sessions a served app answers at once on this machine: the real answers, and the
served stack alone (Gradio's queue, the chat handler and the clients, with one precomputed answer).

    python benchmarks/served_load.py [--index index] [--sessions 20] [--questions 30] [--workers N] [--runs 1]

Starts the chat app (``qa.ui.build_app``, the queue of ``--workers`` workers as ``qa serve`` has) in a
child process over ``--index`` (default: ``index/``, built from ``corpus/`` when missing), then
``--sessions`` gradio_client sessions ask, without pause, ``--questions`` questions each from the seed
fixture (``tests/fixtures/answer_questions.jsonl``, cycled), each timed from submit to its last update.
Twice: ``answer`` (the assistant answers) and ``fixed`` (the handler returns one answer computed at
start: what the app, the queue and the clients cost without retrieval or reader). Prints a table;
``--json`` writes it. Clients and server share the machine, as in ``tests/test_concurrency.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
FIXTURE = ROOT / "tests" / "fixtures" / "answer_questions.jsonl"


def serve(index: str, mode: str, workers: int, port: int) -> None:
    """The child process: the app over ``index`` on ``port`` until killed."""
    from qa import Assistant
    from qa.ui import app as ui_app
    from qa.ui.serve import warm_up

    assistant = Assistant.load(index)
    warm_up(assistant)  # as `qa serve` does before it says it is ready
    if mode == "fixed":
        answer = assistant.ask(questions()[0])

        def fixed(self, question, k, mode, chat, where=None):
            yield answer
        ui_app.ChatHandlers._ask_stream = fixed
    app = ui_app.build_app(assistant)
    app.queue(default_concurrency_limit=workers)
    app.launch(server_port=port, quiet=True)


def questions() -> list[str]:
    rows = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["question"] for r in rows if r.get("question")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chat_submit(config: dict) -> tuple[int, int]:
    """(the question box's component id, the index of its submit handler) in the app's ``config``."""
    box = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "qa-input")
    fn = next(d.get("id", i) for i, d in enumerate(config["dependencies"])
              if d["inputs"][:1] == [box] and len(d["outputs"]) == 4)
    return box, fn


class Session:
    """One browser session through gradio_client: the chat's submit handler (hidden from the API
    listing, called by its index as the browser does), its own history on the server."""

    def __init__(self, url: str):
        from gradio_client import Client
        self.client = Client(url, verbose=False)
        _, self.fn = chat_submit(self.client.config)
        self.client.endpoints[self.fn].is_valid = True

    def ask(self, question: str) -> float:
        t0 = time.perf_counter()
        self.client.submit(question, [], 5, "hybrid", [], "", "", fn_index=self.fn).result(timeout=600)
        return time.perf_counter() - t0


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (all its threads), from /proc; None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class HttpSession:
    """One browser session as the page speaks to the server: a question is a POST to the queue's
    ``join`` and its updates come back on a server-sent-event stream (``queue/data``) that closes
    after the last one; one kept-alive connection, little CPU on the client's side."""

    def __init__(self, url: str):
        import uuid

        import httpx
        self.http = httpx.Client(base_url=url, timeout=600)
        config = self.http.get("config").raise_for_status().json()
        self.prefix = config.get("api_prefix", "/gradio_api").strip("/")
        self.trigger, self.fn = chat_submit(config)
        self.session = uuid.uuid4().hex

    def ask(self, question: str) -> float:
        t0 = time.perf_counter()
        body = {"data": [question, [], None, 5, "hybrid", [], "", ""], "event_data": None, "fn_index": self.fn,
                "trigger_id": self.trigger, "session_hash": self.session}
        self.http.post(f"{self.prefix}/queue/join", json=body).raise_for_status()
        with self.http.stream("GET", f"{self.prefix}/queue/data", params={"session_hash": self.session}) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed" and not msg.get("success", True):
                    raise RuntimeError(f"the app failed: {msg.get('output')}")
                if msg.get("msg") in ("close_stream", "unexpected_error"):
                    if msg["msg"] == "unexpected_error":
                        raise RuntimeError(f"the app failed: {msg.get('message')}")
                    break
        return time.perf_counter() - t0


def run(index: str, mode: str, sessions: int, per_session: int, workers: int, client: str = "gradio") -> dict:
    import httpx

    port = _free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", mode, "--index", index, "--workers", str(workers),
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 600
        while True:
            if server.poll() is not None:
                raise SystemExit(f"the app exited ({mode}): run `qa serve --index {index}` to see why")
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                raise SystemExit("the app did not start in 10 minutes")
            time.sleep(1)
        qs = questions()
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        barrier = threading.Barrier(sessions)

        def session(i: int) -> None:
            try:
                s = Session(url) if client == "gradio" else HttpSession(url)
                barrier.wait(timeout=300)
                for n in range(per_session):
                    seconds = s.ask(qs[(i * per_session + n) % len(qs)])
                    with lock:
                        latencies.append(seconds)
            except Exception as e:  # noqa: BLE001 - counted and shown
                errors.append(f"session {i}: {type(e).__name__}: {e}")

        threads = [threading.Thread(target=session, args=(i,)) for i in range(sessions)]
        t0, server_cpu0, client_cpu0 = time.perf_counter(), _cpu_seconds(server.pid), time.process_time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        server_cpu1, client_cpu = _cpu_seconds(server.pid), time.process_time() - client_cpu0
    finally:
        server.terminate()
        server.wait(timeout=60)
    latencies.sort()
    n = len(latencies)
    return {"mode": mode, "client": client, "sessions": sessions, "questions": n, "errors": len(errors), "first_error": errors[:1],
            "per_second": round(n / wall, 2) if wall else None,
            "median_s": round(statistics.median(latencies), 3) if n else None,
            "p95_s": round(latencies[int(0.95 * (n - 1))], 3) if n else None,
            # CPU per question: the server's (all its threads) and the clients' (this process), in ms
            "server_cpu_ms": round(1000 * (server_cpu1 - server_cpu0) / n, 1) if n and server_cpu0 is not None
            and server_cpu1 is not None else None,
            "client_cpu_ms": round(1000 * client_cpu / n, 1) if n else None}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", default="index")
    ap.add_argument("--corpus", default="corpus", help="built into --index when that holds no index")
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--questions", type=int, default=30, help="questions per session (the issue's load: 20 x 30)")
    from qa.ui.serve import QUEUE_WORKERS

    ap.add_argument("--workers", type=int, default=QUEUE_WORKERS,
                    help=f"the queue's workers (default {QUEUE_WORKERS}, as qa serve has)")
    ap.add_argument("--runs", type=int, default=1, help="runs of each mode, alternating")
    ap.add_argument("--client", choices=("gradio", "http"), default="gradio",
                    help="gradio: gradio_client sessions (as tests/test_concurrency.py); http: the page's own "
                         "protocol (queue join + event stream) on one connection a session, lighter on the CPU")
    ap.add_argument("--json", default=None)
    ap.add_argument("--serve", choices=("answer", "fixed"), help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        return serve(args.index, args.serve, args.workers, args.port)
    for name in ("sessions", "questions", "workers", "runs"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1")
    if not (Path(args.index) / "manifest.json").is_file():
        from qa import build_index
        build_index(args.corpus, args.index)
    rows = [run(args.index, mode, args.sessions, args.questions, args.workers, args.client)
            for _ in range(args.runs) for mode in ("answer", "fixed")]
    print(f"{args.sessions} sessions x {args.questions} questions, {args.workers} queue workers, {args.client} "
          f"clients, {os.cpu_count()} CPUs\n")
    print("| answers | questions | errors | per second | median s | p95 s | server CPU ms / q | client CPU ms / q |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['questions']} | {r['errors']} | {r['per_second']} | {r['median_s']} | {r['p95_s']} "
              f"| {r['server_cpu_ms']} | {r['client_cpu_ms']} |")
        if r["first_error"]:
            print(f"  first error: {r['first_error'][0]}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
