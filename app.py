"""Serve the article-qa web chat (same as ``qa serve``).

``python app.py [--host 127.0.0.1] [--port 7860] [--share] [--index index] [--corpus corpus]``

Loads the index once (building it from the corpus first when there is none), then serves the chat
on localhost. Set QA_USERNAME and QA_PASSWORD to require a login.
"""
from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="article-qa web chat (Gradio)")
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    ap.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    ap.add_argument("--share", action="store_true", help="also make a public Gradio share link (off by default)")
    ap.add_argument("--index", default="index", help="index folder (default: index)")
    ap.add_argument("--corpus", default="corpus",
                    help="articles to index when there is no index yet (default: corpus)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from qa.ui import launch

    launch(index_dir=args.index, corpus_dir=args.corpus, host=args.host, port=args.port, share=args.share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
