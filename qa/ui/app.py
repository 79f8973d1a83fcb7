"""The Gradio app of the web chat: :class:`ChatHandlers` answers, :func:`build_app` lays it out.

Answers stream into the chat with their ``[n]`` markers; the sources panel is rendered by
:mod:`qa.ui.render`. The app also exposes ``/ask`` (question, k, mode) -> dict for ``gradio_client``.
"""
from __future__ import annotations

import inspect
import logging
import os
import time
from typing import Any, Callable, Iterator, Optional, Sequence

import gradio as gr

from ..answer.lang import detect_lang
from ..assistant import MAX_QUERY_CHARS, Assistant
from ..config import MODES
from ..errors import QAError
from ..library import LiveAssistant
from ..types import Answer
from .render import (UI_TEXT, answer_markdown, api_settings, chat_filter, chat_markdown, clip_question,
                     empty_sources_html, error_html, filter_note, settings, sources_html, ui_text, word_prefixes)
from .articles import articles_panel
from .style import CSS, THEME_KW

log = logging.getLogger("qa")

DEFAULT_EXAMPLES = (
    "Siapa Kalapas Kelas IIB Amuntai?",
    "Berapa dosis vaksin yang diterima Kanwil Kemenkumham Banten?",
    "Why did the ASN cluster in Banten happen?",
)
STREAM_STEPS = 3  # an extractive answer is ready whole: it streams in this many pieces ...
STREAM_DELAY = 0.02  # ... this far apart (a word at a time held a queue worker ~1 s per answer; six
# pieces instead of three cost 13 % of the served app's throughput: benchmarks/served_load.py)
_LAUNCH_STYLES = "css" in inspect.signature(gr.Blocks.launch).parameters  # Gradio 6: css/theme go to launch()


def _kw(fn: Callable, **kwargs: Any) -> dict[str, Any]:
    """The keyword arguments ``fn`` accepts (Gradio renamed a few between major versions)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


class ChatApp(gr.Blocks):
    """The Blocks of the chat; ``launch`` binds 127.0.0.1 unless told otherwise and applies the styles."""

    def launch(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        kwargs.setdefault("server_name", os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1")
        if _LAUNCH_STYLES:
            kwargs.setdefault("css", CSS)
            kwargs.setdefault("theme", gr.themes.Soft(**THEME_KW))
        return super().launch(*args, **kwargs)


def examples_for(assistant: Assistant, examples: Optional[Sequence[str]]) -> list[str]:
    """``examples`` (blank ones dropped), or the default questions at least half of whose words
    the index knows (another corpus gets none)."""
    if examples is not None:
        return [str(e) for e in examples if str(e).strip()]
    out = []
    for q in DEFAULT_EXAMPLES:
        try:
            known = assistant.known_fraction(q)
        except Exception:  # noqa: BLE001 - examples are a nicety
            known = 0.0
        if known >= 0.5:
            out.append(q)
    return out


def _pick_example(evt: gr.SelectData) -> str:
    value = evt.value
    return value.get("text", "") if isinstance(value, dict) else str(value or "")


class ChatHandlers:
    """The event handlers of one app over ``assistant``.

    Sessions are answered in parallel (as many at once as the queue has workers): the assistant's
    read path is thread-safe, and an LLM answerer limits its own requests (``llm_concurrency``).
    Each session has its own :class:`~qa.conversation.Conversation`. ``assistant`` may be a
    :class:`~qa.library.LiveAssistant` (articles added while serving): each question is answered
    by the assistant current when it was asked.
    """

    def __init__(self, assistant: Assistant | LiveAssistant, examples: Optional[Sequence[str]] = None):
        self.live = assistant if isinstance(assistant, LiveAssistant) else LiveAssistant(assistant)
        config = self.assistant.config
        self.default_mode = config.mode if config.mode in MODES else MODES[0]
        self.examples = examples_for(self.assistant, examples)
        self.sources = [name for name, _ in self.assistant.sources()]  # offered; others can be typed

    @property
    def assistant(self) -> Assistant:
        return self.live.current

    def source_choices(self):
        """The source filter's choices after the articles changed."""
        self.sources = [name for name, _ in self.assistant.sources()]
        return gr.update(choices=self.sources)

    def _ask(self, question: str, k: int, mode: str, where: Any = None) -> Answer:
        with self.live.use() as assistant:
            return assistant.ask(question, k=k, mode=mode, filter=where)

    def _ask_stream(self, question: str, k: int, mode: str, chat: Any, where: Any = None) -> Iterator[Any]:
        with self.live.use() as assistant:
            chat.assistant = assistant  # the conversation keeps its history across index updates
            yield from chat.ask_stream(question, k=k, mode=mode, filter=where)

    def respond(self, question: Any, messages: Optional[list], chat: Any, k: Any, mode: Any,
                source: Any = None, date_from: Any = None, date_to: Any = None):
        """The chat's submit handler: yields (textbox, messages, sources panel, conversation).
        ``source``, ``date_from``, ``date_to``: the settings' filter (see :class:`qa.Filter`)."""
        messages = list(messages or [])
        q, note = clip_question(question)
        if not q:
            yield gr.skip(), messages, gr.skip(), chat
            return
        lang = detect_lang(q)
        try:
            where = chat_filter(source, date_from, date_to)
        except ValueError as e:
            messages.append({"role": "user", "content": chat_markdown(q)})
            messages.append({"role": "assistant", "content": chat_markdown(str(e))})
            yield gr.skip(), messages, error_html(str(e)), chat
            return
        note = "\n\n".join(x for x in (filter_note(where, lang), note) if x) or None
        if chat is None:
            chat = self.assistant.conversation()
        messages.append({"role": "user", "content": chat_markdown(q)})
        messages.append({"role": "assistant", "content": f"*{ui_text(lang)['thinking']}*"})
        yield "", messages, gr.skip(), chat
        k, mode = settings(k, mode, self.default_mode)
        answer, shown = None, ""
        try:
            for item in self._ask_stream(q, k, mode, chat, where):
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
            yield gr.skip(), messages, error_html(msg), chat
            return
        except Exception:  # noqa: BLE001 - never a traceback in the page
            log.exception("question failed")
            msg = ui_text(lang)["error"]
            messages[-1] = {"role": "assistant", "content": chat_markdown(msg)}
            yield gr.skip(), messages, error_html(msg), chat
            return
        if shown or answer.checks or answer.notice:  # generated (and checked) or fallen back: show it whole
            messages[-1] = {"role": "assistant", "content": answer_markdown(answer, note)}
        else:
            parts = list(word_prefixes((note + "\n\n" if note else "") + answer.text, STREAM_STEPS))
            for part in parts[:-1]:
                messages[-1] = {"role": "assistant", "content": chat_markdown(part)}
                yield gr.skip(), messages, gr.skip(), chat
                time.sleep(STREAM_DELAY)
            if parts:  # the whole text goes out with the sources panel: one update, not two
                messages[-1] = {"role": "assistant", "content": chat_markdown(parts[-1])}
        yield gr.skip(), messages, sources_html(answer, lang), chat

    def reset(self):
        """"New conversation": (chat, sources panel, conversation, textbox) emptied."""
        return [], empty_sources_html(), None, ""

    def api_ask(self, question: str, k: int = 5, mode: str = "hybrid", source: str = "", date_from: str = "",
                date_to: str = "") -> dict:
        """Answer one question (no conversation history): the answer as a dict with its citations;
        ``source`` (comma-separated outlets), ``date_from`` and ``date_to`` filter the articles. A ``k``
        outside 1..10 or an unknown ``mode`` is an error that names it (:func:`~qa.ui.render.api_settings`)."""
        q, _ = clip_question(question)
        try:
            k, mode = api_settings(k, mode, self.default_mode)
            where = chat_filter([s for s in str(source or "").split(",")], date_from, date_to)
            return self._ask(q, k, mode, where).to_dict()
        except (QAError, ValueError) as e:
            raise gr.Error(str(e).split("\n", 1)[0][:300]) from None
        except Exception:  # noqa: BLE001
            log.exception("api question failed")
            raise gr.Error(UI_TEXT["en"]["error"]) from None


def build_app(assistant: Assistant | LiveAssistant, *, examples: Optional[Sequence[str]] = None) -> gr.Blocks:
    """The chat app over ``assistant`` (call ``.launch()`` on it; it binds 127.0.0.1 by default).

    A :class:`~qa.library.LiveAssistant` made ``writable`` adds upload and delete to the Articles panel.

    ``examples``: questions offered in the empty chat (default: a few about the bundled articles,
    kept when the index has words for them). Also exposes ``/ask`` (question, k, mode) -> dict
    for ``gradio_client``.
    """
    h = ChatHandlers(assistant, examples)
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
                    examples=[{"text": e} for e in h.examples] or None))
                with gr.Row(equal_height=True):
                    box = gr.Textbox(**_kw(
                        gr.Textbox.__init__, show_label=False, elem_id="qa-input", scale=6, min_width=260, lines=1,
                        max_lines=4, max_length=MAX_QUERY_CHARS, autofocus=True, submit_btn=True,
                        placeholder="Ask a question… / Tulis pertanyaan…"))
                    new = gr.Button("New conversation", elem_id="qa-new", variant="secondary", scale=0,
                                    min_width=170)
                with gr.Accordion("Settings", open=False, elem_id="qa-settings"):
                    k = gr.Slider(1, 10, value=5, step=1, label="Passages to read (k)", elem_id="qa-k")
                    mode = gr.Radio(list(MODES), value=h.default_mode, label="Retrieval mode", elem_id="qa-mode",
                                    info="hybrid = keywords + meaning; bm25 = keywords only; dense = meaning only")
                    source = gr.Dropdown(h.sources, value=[], multiselect=True, allow_custom_value=True,
                                         label="Only from these sources", elem_id="qa-source")
                    with gr.Row():
                        date_from = gr.Textbox(label="From date", placeholder="YYYY-MM-DD, YYYY-MM or YYYY",
                                               elem_id="qa-from", max_length=10)
                        date_to = gr.Textbox(label="To date", placeholder="YYYY-MM-DD, YYYY-MM or YYYY",
                                             elem_id="qa-to", max_length=10)
                articles_panel(h.live, app, _kw(new.click, **private), after=(h.source_choices, source))
            with gr.Column(scale=2, min_width=320):
                sources = gr.HTML(empty_sources_html(), elem_id="qa-sources")

        io = dict(inputs=[box, chatbot, conv, k, mode, source, date_from, date_to],
                  outputs=[box, chatbot, sources, conv])
        # a question sent while an answer is still streaming is asked after it, never dropped
        # (Gradio's default for submit, "once", ignores it silently)
        queued = dict(show_progress="hidden", trigger_mode="always_last", **private)
        box.submit(h.respond, **io, **_kw(box.submit, **queued))
        if hasattr(chatbot, "example_select"):
            chatbot.example_select(_pick_example, None, box, **_kw(chatbot.example_select, **private)).then(
                h.respond, **io, **_kw(box.submit, **queued))
        new.click(h.reset, None, [chatbot, sources, conv, box], **_kw(new.click, **private))
        chatbot.clear(h.reset, None, [chatbot, sources, conv, box], **_kw(chatbot.clear, **private))
        gr.api(h.api_ask, api_name="ask")
    return app
