"""A small client for OpenAI-compatible chat-completions servers (standard library only).

Ollama (``http://localhost:11434/v1``), the llama.cpp server (``http://localhost:8080/v1``), vLLM
and LM Studio all speak this protocol: ``POST {base_url}/chat/completions`` with
``{"model", "messages", "stream", ...}``; a streamed reply is Server-Sent Events, one
``data: {json}`` line per piece (text in ``choices[0].delta.content``), ending with
``data: [DONE]``. Connection errors, HTTP 429 and 5xx are retried (``retries`` times, with a
short back-off); a read timeout is not (a slow server stays slow).
"""
from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import time
from typing import Any, Iterator, Optional
from urllib.parse import urlsplit

from ..errors import ConfigError, LLMResponseError, LLMTimeoutError, LLMUnavailableError

log = logging.getLogger("qa")

RETRY_STATUS = {429, 500, 502, 503, 504}


class ChatClient:
    """Chat completions from ``base_url`` (e.g. ``http://localhost:11434/v1``) with ``model``.

    ``api_key`` is sent as ``Authorization: Bearer``; ``timeout`` bounds the wait for the reply
    to start and for each streamed piece; ``retries`` further tries follow a connection error,
    HTTP 429 or 5xx, after ``backoff`` seconds (doubling).
    """

    def __init__(self, base_url: str, model: str, *, api_key: Optional[str] = None, timeout: float = 60.0,
                 retries: int = 2, backoff: float = 0.5, max_tokens: int = 400, temperature: float = 0.1):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"llm_base_url must be an http(s) URL such as http://localhost:11434/v1; got {base_url!r}")
        if not model:
            raise ConfigError("llm_model must name the model the server serves (e.g. qwen2.5:3b)")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self._path = parts.path.rstrip("/")

    @classmethod
    def from_config(cls, config: Any) -> "ChatClient":
        """A client with the ``llm_*`` settings of a :class:`~qa.config.Config`; the key comes from
        the environment variable ``config.llm_api_key_env``."""
        key = os.environ.get(config.llm_api_key_env) if config.llm_api_key_env else None
        return cls(config.llm_base_url, config.llm_model, api_key=key or None, timeout=config.llm_timeout,
                   retries=config.llm_retries, max_tokens=config.llm_max_tokens, temperature=config.llm_temperature)

    # -- public -----------------------------------------------------------------------------
    def chat(self, messages: list[dict[str, str]]) -> str:
        """The whole reply text of one (non-streamed) completion."""
        resp, conn = self._request("POST", "/chat/completions", self._body(messages, stream=False))
        try:
            raw = self._read(resp, lambda: resp.read())
        finally:
            conn.close()
        try:
            data = json.loads(raw)
            content = data["choices"][0]["message"].get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise LLMResponseError(f"the LLM server at {self.base_url} sent a reply that is not chat-completions "
                                   f"JSON: {raw[:200]!r}") from None
        return content or ""

    def stream(self, messages: list[dict[str, str]]) -> Iterator[str]:
        """The reply text piece by piece, as the server streams it."""
        resp, conn = self._request("POST", "/chat/completions", self._body(messages, stream=True))
        try:
            if "text/event-stream" not in (resp.getheader("Content-Type") or ""):
                # a server that ignores "stream": true answers with one JSON document
                raw = self._read(resp, lambda: resp.read())
                try:
                    yield json.loads(raw)["choices"][0]["message"].get("content") or ""
                except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                    raise LLMResponseError(f"the LLM server at {self.base_url} sent neither a stream nor "
                                           f"chat-completions JSON: {raw[:200]!r}") from None
                return
            while True:
                line = self._read(resp, lambda: resp.readline())
                if not line:
                    raise LLMResponseError(f"the LLM server at {self.base_url} closed the stream before "
                                           "`data: [DONE]`")
                text = line.decode("utf-8", "replace").strip()
                if not text.startswith("data:"):
                    continue  # blank separators, ": keep-alive" comments, "event:" lines
                payload = text[5:].strip()
                if payload == "[DONE]":
                    return
                piece = self._delta(payload)
                if piece:
                    yield piece
        finally:
            conn.close()

    def models(self) -> list[str]:
        """Model names the server lists at ``GET /models``."""
        resp, conn = self._request("GET", "/models", None)
        try:
            raw = self._read(resp, lambda: resp.read())
        finally:
            conn.close()
        try:
            return [m["id"] for m in json.loads(raw)["data"]]
        except (ValueError, KeyError, TypeError):
            raise LLMResponseError(f"the LLM server at {self.base_url} sent an unexpected /models reply") from None

    # -- internals --------------------------------------------------------------------------
    def _body(self, messages: list[dict[str, str]], *, stream: bool) -> bytes:
        return json.dumps({"model": self.model, "messages": messages, "stream": stream,
                           "max_tokens": self.max_tokens, "temperature": self.temperature}).encode("utf-8")

    def _delta(self, payload: str) -> str:
        try:
            data = json.loads(payload)
        except ValueError:
            raise LLMResponseError(f"the LLM server at {self.base_url} streamed a line that is not JSON: "
                                   f"{payload[:200]!r}") from None
        if isinstance(data, dict) and data.get("error"):
            raise LLMResponseError(f"the LLM server at {self.base_url} reported an error: {str(data['error'])[:300]}")
        try:
            choices = data["choices"]
            if not choices:
                return ""  # e.g. a final usage-only chunk
            return choices[0].get("delta", {}).get("content") or ""
        except (KeyError, TypeError, AttributeError):
            raise LLMResponseError(f"the LLM server at {self.base_url} streamed an unexpected chunk: "
                                   f"{payload[:200]!r}") from None

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=self.timeout)

    def _read(self, resp: http.client.HTTPResponse, fn):
        try:
            return fn()
        except (socket.timeout, TimeoutError):
            raise LLMTimeoutError(f"the LLM server at {self.base_url} stopped sending for {self.timeout:g}s "
                                  "(llm_timeout)") from None
        except (OSError, http.client.HTTPException) as e:
            raise LLMUnavailableError(f"the connection to the LLM server at {self.base_url} broke: {e}") from None

    def _request(self, method: str, path: str, body: Optional[bytes]):
        """Send the request (retrying), return the 200 response and its connection."""
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last: Exception = LLMUnavailableError(f"cannot reach the LLM server at {self.base_url}")
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
                log.info("retrying the LLM server (%d/%d): %s", attempt, self.retries, last)
            conn = self._connection()
            try:
                conn.request(method, self._path + path, body=body, headers=headers)
                resp = conn.getresponse()
            except (socket.timeout, TimeoutError):
                conn.close()
                raise LLMTimeoutError(f"the LLM server at {self.base_url} did not answer within "
                                      f"{self.timeout:g}s (llm_timeout)") from None
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
                last = LLMUnavailableError(
                    f"cannot reach the LLM server at {self.base_url} ({reason}). Is it running? "
                    "Ollama: `ollama serve` (http://localhost:11434/v1); llama.cpp: "
                    "`llama-server -m MODEL.gguf --port 8080` (http://localhost:8080/v1)")
                continue
            if resp.status == 200:
                return resp, conn
            detail = self._read(resp, lambda: resp.read())[:300].decode("utf-8", "replace")
            conn.close()
            hint = (f"; is llm_model {self.model!r} one the server serves? (GET {self.base_url}/models lists them)"
                    if resp.status in (400, 404) else "")
            last = LLMResponseError(f"the LLM server at {self.base_url} answered HTTP {resp.status}: "
                                    f"{detail.strip() or resp.reason}{hint}")
            if resp.status not in RETRY_STATUS:
                raise last
        raise last
