"""Serve the article-qa web chat (same as ``qa serve``).

``python app.py [--host 127.0.0.1] [--port 7860] [--share] [--index index] [--corpus corpus] [--login USER] [--allow-upload]``

Loads the index once (building it from the corpus first when there is none), then serves the chat
on localhost. Set QA_USERNAME and QA_PASSWORD to require a login.
"""
from __future__ import annotations

import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``qa serve`` with ``argv`` (default: this script's arguments)."""
    from qa.cli import main as qa_main

    return qa_main(["serve", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
