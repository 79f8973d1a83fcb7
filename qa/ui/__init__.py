"""The web chat: a Gradio app over an :class:`~qa.Assistant` (``python app.py`` or ``qa serve``).

- :mod:`qa.ui.render`: what the chat shows (Markdown and escaped HTML), pure functions, no Gradio;
- :mod:`qa.ui.app`: the Gradio app (:func:`build_app`) and its handlers;
- :mod:`qa.ui.serve`: :func:`load_or_build` and :func:`launch`;
- :mod:`qa.ui.style`: CSS and theme.

The Gradio parts are imported on first use, so ``from qa.ui import launch`` can set the serving
defaults before Gradio is loaded, and the renderers work without Gradio installed.
"""
from __future__ import annotations

import importlib
from typing import Any

from .render import UI_TEXT, answer_markdown, chat_markdown, sources_html

_LAZY = {"build_app": "app", "ChatApp": "app", "ChatHandlers": "app", "launch": "serve", "load_or_build": "serve"}

__all__ = ["UI_TEXT", "answer_markdown", "chat_markdown", "sources_html", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
