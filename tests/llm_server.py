"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions protocol with scripted replies.

``POST /v1/chat/completions`` (``"stream": true`` -> Server-Sent Events, else one JSON document) and
``GET /v1/models``. The reply is chosen by the request's ``model`` (the script name) and written
from the prompt it receives: the numbered passages ``[n] title`` + text, and the question. So a
script can cite "the passage that contains 'Dwi Hartono'" whatever rank retrieval gave it.
"""
from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional

Passages = dict[int, str]


def parse_prompt(messages: list[dict]) -> tuple[Passages, str]:
    """The numbered passages and the question in the user message the client sent."""
    user = next(m["content"] for m in messages if m["role"] == "user")
    body, _, question = user.rpartition("\n\n")
    question = question.split(":", 1)[1].strip()
    passages = {}
    for block in re.split(r"\n\n(?=\[\d+\] )", body.split(":\n\n", 1)[1]):
        m = re.match(r"\[(\d+)\] ", block)
        if m:
            passages[int(m.group(1))] = block
    return passages, question


def cite(passages: Passages, phrase: str) -> int:
    """The number of the first passage containing ``phrase``."""
    return next(n for n, text in sorted(passages.items()) if phrase in text)


def other(passages: Passages, phrase: str) -> int:
    """The number of a passage that does NOT contain ``phrase`` (a wrong citation)."""
    return next(n for n, text in sorted(passages.items()) if phrase not in text)


# model name -> reply written from (passages, question)
SCRIPTS: dict[str, Callable[[Passages, str], str]] = {
    "correct": lambda p, q: f"Kalapas Kelas IIB Amuntai adalah Dwi Hartono [{cite(p, 'Dwi Hartono')}].",
    "correct-two": lambda p, q: (f"Kalapas Kelas IIB Amuntai adalah Dwi Hartono. [{cite(p, 'Dwi Hartono')}] "
                                 f"Sekitar 100 warga binaan dan tahanan di Lapas Amuntai mengikuti vaksin booster "
                                 f"[{cite(p, 'sekitar 100 warga binaan')}]."),
    "wrong-citation": lambda p, q: f"Kalapas Kelas IIB Amuntai adalah Dwi Hartono [{other(p, 'Dwi Hartono')}].",
    "invented": lambda p, q: (f"Kalapas Kelas IIB Amuntai adalah Dwi Hartono [{cite(p, 'Dwi Hartono')}]. "
                              f"Dwi Hartono menjabat sejak 2015 bersama Menteri Yasonna Laoly "
                              f"[{cite(p, 'Dwi Hartono')}]."),
    "bad-marker": lambda p, q: f"Kalapas Kelas IIB Amuntai adalah Dwi Hartono [{cite(p, 'Dwi Hartono')}][9].",
    "no-marker": lambda p, q: "Kalapas Kelas IIB Amuntai adalah Dwi Hartono.",
    "no-answer": lambda p, q: "NO_ANSWER",
    "english": lambda p, q: f"The head of the Amuntai prison is Dwi Hartono [{cite(p, 'Dwi Hartono')}].",
    "all-invented": lambda p, q: "Kepala lapas itu bernama Joko Susilo sejak 2009 [1].",
}


class ScriptedLLM:
    """The server: ``url`` is its ``/v1`` base URL; ``requests`` records what clients sent.

    Special models: ``slow`` waits ``slow_seconds`` before answering; ``flaky`` answers HTTP 500
    to the first request of each question, then like ``correct``; ``broken`` always answers 500;
    ``drop`` streams a few pieces and closes the connection without ``[DONE]``. ``active`` and
    ``max_active`` count the requests being answered at once.
    """

    def __init__(self, *, piece_delay: float = 0.0, slow_seconds: float = 3.0):
        self.requests: list[dict] = []
        self.piece_delay = piece_delay
        self.slow_seconds = slow_seconds
        self.active = 0  # chat-completions requests being answered now (a stream counts until it ends)
        self.max_active = 0  # the most at once since the start (or the last reset_counts)
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                if self.path.rstrip("/") != "/v1/models":
                    return self._json(404, {"error": {"message": f"no route {self.path}"}})
                self._json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in SCRIPTS]})

            def do_POST(self):
                if self.path != "/v1/chat/completions":
                    return self._json(404, {"error": {"message": f"no route {self.path}"}})
                with server._lock:
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                self._counted = True
                try:
                    self._complete()
                finally:
                    self._uncount()

            def _uncount(self):
                """No longer active: called before the reply's last bytes are sent, so a client
                that has its whole reply is never still counted."""
                if getattr(self, "_counted", False):
                    self._counted = False
                    with server._lock:
                        server.active -= 1

            def _complete(self):
                length = int(self.headers.get("Content-Length") or 0)
                req = json.loads(self.rfile.read(length))
                with server._lock:
                    server.requests.append({"body": req, "auth": self.headers.get("Authorization")})
                model = req.get("model", "")
                passages, question = parse_prompt(req["messages"])
                if model == "slow":
                    time.sleep(server.slow_seconds)
                    model = "correct"
                if model == "broken":
                    return self._json(500, {"error": {"message": "scripted failure"}})
                if model == "flaky":
                    key = question + str(req.get("stream"))
                    with server._lock:
                        first = key not in server._seen
                        server._seen.add(key)
                    if first:
                        return self._json(500, {"error": {"message": "scripted: first try fails"}})
                    model = "correct"
                script = SCRIPTS.get("correct" if model == "drop" else model)
                if script is None:
                    return self._json(404, {"error": {"message": f"model {model!r} not found"}})
                reply = script(passages, question)
                if req.get("stream"):
                    return self._stream(reply, drop=model == "drop")
                self._json(200, {"id": "x", "object": "chat.completion", "model": model,
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": reply}}]})

            def _json(self, status: int, data: dict):
                raw = json.dumps(data).encode()
                self._uncount()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _stream(self, reply: str, drop: bool = False):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                pieces = re.findall(r"\S+\s*", reply)
                if drop:
                    pieces = pieces[:2]
                first = {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}
                self.wfile.write(f"data: {json.dumps(first)}\n\n".encode())
                for piece in pieces:
                    chunk = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                    if server.piece_delay:
                        time.sleep(server.piece_delay)
                self._uncount()
                if not drop:
                    self.wfile.write(b": keep-alive comment\n\ndata: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread: Optional[threading.Thread] = None

    def reset_counts(self) -> None:
        with self._lock:
            self.max_active = self.active

    def start(self) -> "ScriptedLLM":
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
