"""The web chat: a Gradio app over an :class:`~qa.Assistant` (``python app.py`` or ``qa serve``).

Answers stream into the chat with their ``[n]`` markers; a sources panel shows, for each
citation, the article's title, outlet and date and the quoted sentence highlighted in its
paragraph. Every piece of article text is HTML-escaped before it reaches the page.
"""
from __future__ import annotations

import html
import inspect
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import gradio as gr

from .answer.lang import detect_lang, phrase
from .assistant import MAX_QUERY_CHARS, Assistant
from .encoders.sentence_transformers import Embedder
from .config import MODES, load_config
from .errors import IndexNotFoundError, QAError
from .stores import build_index
from .types import Answer, Article
from .ui_style import CSS, THEME_KW

log = logging.getLogger("qa")

DEFAULT_EXAMPLES = (
    "Siapa Kalapas Kelas IIB Amuntai?",
    "Berapa dosis vaksin yang diterima Kanwil Kemenkumham Banten?",
    "Why did the ASN cluster in Banten happen?",
)
STREAM_DELAY = 0.012  # seconds between streamed words
CONTEXT_CHARS = 360  # paragraph text shown on each side of a quote
UI_TEXT = {
    "id": {"error": "Maaf, terjadi kesalahan saat menjawab. Silakan coba lagi.",
           "thinking": "Mencari di artikel…", "open": "Buka artikel"},
    "en": {"error": "Sorry, something went wrong while answering. Please try again.",
           "thinking": "Searching the articles…", "open": "Open article"},
}
MONTHS = {
    "id": "Januari Februari Maret April Mei Juni Juli Agustus September Oktober November Desember".split(),
    "en": "January February March April May June July August September October November December".split(),
}


def _kw(fn: Callable, **kwargs: Any) -> dict[str, Any]:
    """The keyword arguments ``fn`` accepts (Gradio renamed a few between major versions)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


_LAUNCH_STYLES = "css" in inspect.signature(gr.Blocks.launch).parameters  # Gradio 6: css/theme go to launch()


class ChatApp(gr.Blocks):
    """The Blocks of the chat; ``launch`` binds 127.0.0.1 unless told otherwise and applies the styles."""

    def launch(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        kwargs.setdefault("server_name", os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1")
        if _LAUNCH_STYLES:
            kwargs.setdefault("css", CSS)
            kwargs.setdefault("theme", gr.themes.Soft(**THEME_KW))
        return super().launch(*args, **kwargs)


# -- HTML -------------------------------------------------------------------------------------
def _esc(text: Optional[str]) -> str:
    return html.escape(text or "", quote=True)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]#|~$])")


def chat_markdown(text: str) -> str:
    """``text`` for the chat bubble, shown as written: HTML-escaped, then Markdown-escaped."""
    out = _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))
    out = re.sub(r"(?m)^(\s*)(\d+)\.", r"\1\2\\.", out)  # no accidental numbered lists
    return re.sub(r"(?m)^(\s*)([-+>])", r"\1\\\2", out)


def answer_markdown(answer: Answer, note: Optional[str] = None) -> str:
    """The chat bubble of a generated or fallen-back answer: the notice in italics, unsupported
    sentences' flags in bold, and which answerer wrote it."""
    md = chat_markdown((note + "\n\n" if note else "") + answer.text)
    flag = chat_markdown(phrase(answer.lang, "unsupported"))
    md = md.replace(flag, f"**{flag}**")
    if answer.notice:
        md = f"*{chat_markdown(answer.notice)}*\n\n{md}"
    return md + f"\n\n*{chat_markdown(phrase(answer.lang, 'answered_by'))}: {chat_markdown(answer.answerer_label)}*"


def _answerer_html(answer: Answer, lang: str) -> str:
    label = answer.answerer_label + (" (fallback)" if answer.notice and answer.answerer == "extractive" else "")
    return (f'<div class="qa-answerer">{_esc(phrase(lang, "answered_by"))}: '
            f'<span class="qa-answerer-name">{_esc(label)}</span></div>')


def _ui(lang: str) -> dict[str, str]:
    return UI_TEXT.get(lang, UI_TEXT["id"])


def _date(value: Optional[str], lang: str) -> Optional[str]:
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", value or "")
    if not m or not 1 <= int(m.group(2)) <= 12:
        return value
    return f"{int(m.group(3))} {MONTHS.get(lang, MONTHS['id'])[int(m.group(2)) - 1]} {m.group(1)}"


def _meta(article: Article, lang: str) -> str:
    unknown = phrase(lang, "unknown")
    source = article.source or unknown
    date = _date(article.date, lang) or unknown
    return (f'<div class="qa-meta"><b>{_esc(phrase(lang, "source").capitalize())}:</b> {_esc(source)}'
            f' &middot; <b>{_esc(phrase(lang, "date").capitalize())}:</b> {_esc(date)}</div>')


def _link(article: Article, lang: str) -> str:
    url = article.url or ""
    if not re.match(r"https?://", url, re.I):  # no javascript: or data: links
        return ""
    return (f'<a class="qa-link" href="{_esc(url)}" target="_blank" rel="noopener noreferrer nofollow">'
            f'{_esc(_ui(lang)["open"])} &rarr;</a>')


def _passage(text: str, ps: int, pe: int, qs: int, qe: int) -> str:
    """The paragraph ``text[ps:pe]`` with ``text[qs:qe]`` in ``<mark>`` (escaped, long sides trimmed)."""
    if not (0 <= ps <= qs <= qe <= pe <= len(text)) or pe == ps:
        ps, pe = qs, qe
    before, quote, after = text[ps:qs], text[qs:qe], text[qe:pe]
    if len(before) > CONTEXT_CHARS:
        before = "…" + before[-CONTEXT_CHARS:].split(" ", 1)[-1]
    if len(after) > CONTEXT_CHARS:
        after = after[:CONTEXT_CHARS].rsplit(" ", 1)[0] + "…"
    return f"{_esc(before.lstrip())}<mark>{_esc(quote)}</mark>{_esc(after.rstrip())}"


def _card(n: Any, article: Article, body: str, lang: str) -> str:
    return (f'<div class="qa-card"><div class="qa-card-head"><span class="qa-num">{_esc(str(n))}</span><div>'
            f'<div class="qa-title">{_esc(article.display_title)}</div>{_meta(article, lang)}</div></div>'
            f'<blockquote class="qa-passage">{body}</blockquote>{_link(article, lang)}</div>')


def sources_html(answer: Optional[Answer], lang: str = "id") -> str:
    """The sources panel for ``answer`` (citations, or the closest articles when none was found)."""
    if answer is None:
        return _empty_sources(lang)
    lang = answer.lang or lang
    if answer.found and answer.citations:
        cards = [_card(c.n, c.article, _passage(c.article.text, c.passage_start, c.passage_end, c.start, c.end), lang)
                 for c in answer.citations]
        return (_answerer_html(answer, lang) + f'<div class="qa-panel-title">{_esc(phrase(lang, "sources"))}</div>'
                + "".join(cards))
    seen: set[str] = set()
    cards = []
    for h in answer.hits:
        if h.article.id in seen:
            continue
        seen.add(h.article.id)
        excerpt = h.text if len(h.text) <= 2 * CONTEXT_CHARS else h.text[:2 * CONTEXT_CHARS].rsplit(" ", 1)[0] + "…"
        cards.append(_card(len(seen), h.article, _esc(excerpt), lang))
        if len(cards) == 3:
            break
    head = _answerer_html(answer, lang) + f'<div class="qa-note">{_esc(phrase(lang, "not_found"))}</div>'
    if cards:
        head += f'<div class="qa-panel-title">{_esc(phrase(lang, "closest"))}</div>'
    return head + "".join(cards)


def _empty_sources(lang: str = "en") -> str:
    text = ("Sources appear here: each quote highlighted in its article, with title, outlet and date."
            if lang == "en" else "Sumber tampil di sini: setiap kutipan disorot dalam artikelnya, "
            "lengkap dengan judul, media dan tanggal.")
    return f'<div class="qa-panel-title">{_esc(phrase(lang, "sources"))}</div><div class="qa-empty">{_esc(text)}</div>'


def _error_html(message: str) -> str:
    return f'<div class="qa-empty">{_esc(message)}</div>'


# -- handlers ---------------------------------------------------------------------------------
def _settings(k: Any, mode: Any, default_mode: str) -> tuple[int, str]:
    try:
        k = min(10, max(1, int(k)))
    except (TypeError, ValueError, OverflowError):
        k = 5
    return k, mode if mode in MODES else default_mode


def _clip_question(question: Any) -> tuple[str, Optional[str]]:
    """The question (stripped, at most MAX_QUERY_CHARS) and a note when it was cut."""
    q = str(question or "").strip()
    # lone surrogates (JSON "\ud800" escapes a browser sends for broken text) cannot be encoded
    # into the reply stream: replace them
    q = q.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if len(q) <= MAX_QUERY_CHARS:
        return q, None
    return q[:MAX_QUERY_CHARS], phrase(detect_lang(q), "too_long").format(n=MAX_QUERY_CHARS)


def _words(text: str) -> Iterator[str]:
    """Growing prefixes of ``text``, a word at a time."""
    for m in re.finditer(r"\S+\s*", text):
        yield text[:m.end()]


def _examples_for(assistant: Assistant, examples: Optional[Sequence[str]]) -> list[str]:
    if examples is not None:
        return [str(e) for e in examples if str(e).strip()]
    out = []
    for q in DEFAULT_EXAMPLES:  # only those whose words the index knows (another corpus gets none)
        try:
            if assistant.known_fraction(q) >= 0.5:
                out.append(q)
        except Exception:  # noqa: BLE001 - examples are a nicety
            pass
    return out


def build_app(assistant: Assistant, *, examples: Optional[Sequence[str]] = None) -> gr.Blocks:
    """The chat app over ``assistant`` (call ``.launch()`` on it; it binds 127.0.0.1 by default).

    ``examples``: questions offered in the empty chat (default: a few about the bundled articles,
    kept when the index has words for them). Also exposes ``/ask`` (question, k, mode) -> dict
    for ``gradio_client``.
    """
    lock = threading.Lock()  # one question at a time through the assistant
    default_mode = assistant.config.mode if assistant.config.mode in MODES else MODES[0]
    examples = _examples_for(assistant, examples)

    def ask(question: str, k: int, mode: str, chat: Any = None) -> Answer:
        with lock:
            if chat is not None:
                return chat.ask(question, k=k, mode=mode)
            return assistant.ask(question, k=k, mode=mode)

    def ask_stream(question: str, k: int, mode: str, chat: Any) -> Iterator[Any]:
        with lock:  # held while an LLM streams: one question at a time through the assistant
            yield from chat.ask_stream(question, k=k, mode=mode)

    def respond(question: Any, messages: Optional[list], chat: Any, k: Any, mode: Any):
        messages = list(messages or [])
        q, note = _clip_question(question)
        if not q:
            yield gr.skip(), messages, gr.skip(), chat
            return
        lang = detect_lang(q)
        if chat is None:
            chat = assistant.conversation()
        messages.append({"role": "user", "content": chat_markdown(q)})
        messages.append({"role": "assistant", "content": f"*{_ui(lang)['thinking']}*"})
        yield "", messages, gr.skip(), chat
        k, mode = _settings(k, mode, default_mode)
        answer, shown = None, ""
        try:
            for item in ask_stream(q, k, mode, chat):
                if isinstance(item, str):  # an LLM's text as it arrives (shown unchecked until the end)
                    shown += item
                    messages[-1] = {"role": "assistant", "content": chat_markdown(shown)}
                    yield gr.skip(), messages, gr.skip(), chat
                else:
                    answer = item
            if answer is None:
                raise RuntimeError("the answerer ended without an answer")
        except QAError as e:
            log.warning("question failed: %s", e)
            msg = str(e).split("\n", 1)[0][:300]
            messages[-1] = {"role": "assistant", "content": chat_markdown(msg)}
            yield gr.skip(), messages, _error_html(msg), chat
            return
        except Exception:  # noqa: BLE001 - never a traceback in the page
            log.exception("question failed")
            msg = _ui(lang)["error"]
            messages[-1] = {"role": "assistant", "content": chat_markdown(msg)}
            yield gr.skip(), messages, _error_html(msg), chat
            return
        if shown or answer.checks or answer.notice:  # generated (and checked) or fallen back: show it whole
            messages[-1] = {"role": "assistant", "content": answer_markdown(answer, note)}
        else:
            text = (note + "\n\n" if note else "") + answer.text
            for part in _words(text):
                messages[-1] = {"role": "assistant", "content": chat_markdown(part)}
                yield gr.skip(), messages, gr.skip(), chat
                time.sleep(STREAM_DELAY)
        yield gr.skip(), messages, sources_html(answer, lang), chat

    def reset():
        return [], _empty_sources(), None, ""

    def pick_example(evt: gr.SelectData):
        value = evt.value
        return value.get("text", "") if isinstance(value, dict) else str(value or "")

    def api_ask(question: str, k: int = 5, mode: str = "hybrid") -> dict:
        """Answer one question (no conversation history): the answer as a dict with its citations."""
        q, _ = _clip_question(question)
        k, mode = _settings(k, mode, default_mode)
        try:
            return ask(q, k, mode).to_dict()
        except QAError as e:
            raise gr.Error(str(e).split("\n", 1)[0][:300]) from None
        except Exception:  # noqa: BLE001
            log.exception("api question failed")
            raise gr.Error(UI_TEXT["en"]["error"]) from None

    private = dict(api_visibility="private", show_api=False)
    styles = {} if _LAUNCH_STYLES else {"css": CSS, "theme": gr.themes.Soft(**THEME_KW)}
    with ChatApp(title="article-qa", analytics_enabled=False, **styles) as app:
        conv = gr.State(None)  # this browser session's qa.answer.Conversation (made on the first question)
        gr.HTML('<div id="qa-header"><h1>article-qa<span class="dot">.</span></h1>'
                "<p>Ask about the news articles in the index, in Indonesian or English. Every answer quotes "
                "its sources.</p></div>", elem_id="qa-header-box")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=380):
                chatbot = gr.Chatbot(**_kw(
                    gr.Chatbot.__init__, show_label=False, elem_id="qa-chat", height=540, type="messages",
                    latex_delimiters=[], feedback_options=None, buttons=["copy"], layout="bubble",
                    placeholder="### Ask about the articles\nIn English or Bahasa Indonesia. Every answer quotes "
                                "the sentences it rests on.",
                    examples=[{"text": e} for e in examples] or None))
                with gr.Row(equal_height=True):
                    box = gr.Textbox(**_kw(
                        gr.Textbox.__init__, show_label=False, elem_id="qa-input", scale=6, min_width=260, lines=1,
                        max_lines=4,
                        max_length=MAX_QUERY_CHARS, autofocus=True, submit_btn=True,
                        placeholder="Ask a question… / Tulis pertanyaan…"))
                    new = gr.Button("New conversation", elem_id="qa-new", variant="secondary", scale=0,
                                    min_width=170)
                with gr.Accordion("Settings", open=False, elem_id="qa-settings"):
                    k = gr.Slider(1, 10, value=5, step=1, label="Passages to read (k)", elem_id="qa-k")
                    mode = gr.Radio(list(MODES), value=default_mode, label="Retrieval mode", elem_id="qa-mode",
                                    info="hybrid = keywords + meaning; bm25 = keywords only; dense = meaning only")
            with gr.Column(scale=2, min_width=320):
                sources = gr.HTML(_empty_sources(), elem_id="qa-sources")

        io = dict(inputs=[box, chatbot, conv, k, mode], outputs=[box, chatbot, sources, conv])
        box.submit(respond, **io, **_kw(box.submit, show_progress="hidden", **private))
        if hasattr(chatbot, "example_select"):
            chatbot.example_select(pick_example, None, box, **_kw(chatbot.example_select, **private)).then(
                respond, **io, **_kw(box.submit, show_progress="hidden", **private))
        new.click(reset, None, [chatbot, sources, conv, box], **_kw(new.click, **private))
        chatbot.clear(reset, None, [chatbot, sources, conv, box], **_kw(chatbot.clear, **private))
        gr.api(api_ask, api_name="ask")
    return app


# -- serving ----------------------------------------------------------------------------------
def _env_auth() -> Optional[tuple[str, str]]:
    user, password = os.environ.get("QA_USERNAME"), os.environ.get("QA_PASSWORD")
    return (user, password) if user and password else None


def load_or_build(index_dir: str | os.PathLike = "index", corpus_dir: str | os.PathLike = "corpus", *,
                  embedder: Optional[Embedder] = None) -> Assistant:
    """Load the index; when there is none, build it from ``corpus_dir`` first (with progress)."""
    cfg = load_config() if Path("qa.toml").is_file() else None
    try:
        return Assistant.load(index_dir, cfg, embedder=embedder)
    except IndexNotFoundError:
        log.warning("no index in %s/; building it from %s/ first (this takes a while)", index_dir, corpus_dir)
        started = time.time()
        cfg = cfg or load_config()
        embedder = embedder or Embedder(cfg.model, device=cfg.device, batch_size=cfg.batch_size)
        report = build_index(corpus_dir, index_dir, cfg, progress=True, embedder=embedder)
        log.warning("index built in %.0fs: %d articles, %d passages, %d file(s) skipped -> %s/",
                    time.time() - started, report.articles, report.chunks, len(report.problems), index_dir)
        return Assistant.load(index_dir, cfg, embedder=embedder)


def launch(index_dir: str | os.PathLike = "index", corpus_dir: str | os.PathLike = "corpus",
           host: str = "127.0.0.1", port: int = 7860, share: bool = False,
           auth: Optional[tuple[str, str]] = None, *, examples: Optional[Sequence[str]] = None,
           prevent_thread_lock: bool = False):
    """Load (or build) the index once, then serve the chat on ``host:port`` (localhost by default).

    ``share=True`` asks Gradio for a public link. ``auth`` (username, password) defaults to
    the environment variables ``QA_USERNAME`` and ``QA_PASSWORD`` when both are set.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")  # no-op when already set up
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)  # start-up progress is worth seeing
    for noisy in ("faiss", "faiss.loader", "sentence_transformers", "httpx", "transformers", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    log.info("loading the index from %s/", index_dir)
    assistant = load_or_build(index_dir, corpus_dir)
    _ = assistant.embedder  # load the model now, not on the first question
    log.info("ready: %d articles, %d passages", len(assistant.articles), len(assistant))
    auth = auth or _env_auth()
    if host not in ("127.0.0.1", "localhost", "::1") and auth is None:
        log.warning("serving on %s without a password: anyone who can reach it can use it "
                    "(set QA_USERNAME and QA_PASSWORD)", host)
    if share:
        log.warning("share=True: Gradio makes a public link to this app")
    app = build_app(assistant, examples=examples)
    app.queue(default_concurrency_limit=4)
    return app.launch(server_name=host, server_port=port, share=share, auth=auth, show_error=False,
                      prevent_thread_lock=prevent_thread_lock)
