"""Command line: ``qa index``, ``qa search`` (and more as they land). ``qa --help`` lists them."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from .config import MODES, load_config
from .errors import QAError

log = logging.getLogger("qa")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", default="index", help="index folder (default: index)")
    p.add_argument("--config", default=None, help="TOML config file (default: qa.toml when present)")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="qa", description="Question answering over news articles, with quoted sources.")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="build or update the index of a corpus folder")
    _add_common(p)
    p.add_argument("--corpus", default="corpus", help="folder of articles (default: corpus)")
    p.add_argument("--model", default=None, help="embedding model name or local folder")
    p.add_argument("--chunk-size", type=int, default=None, help="target chunk length in characters")
    p.add_argument("--chunk-overlap", type=int, default=None, help="sentences shared by neighbouring chunks")
    p.add_argument("--force", action="store_true", help="rebuild even when the index is up to date")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = sub.add_parser("search", help="retrieve passages for a question")
    _add_common(p)
    p.add_argument("question", help="the question")
    p.add_argument("-k", type=int, default=5, help="number of passages (default: 5)")
    p.add_argument("--mode", choices=MODES, default=None, help="retrieval mode (default: hybrid)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = sub.add_parser("serve", help="serve the web chat (Gradio) on this machine")
    p.add_argument("--index", default="index", help="index folder (default: index)")
    p.add_argument("--corpus", default="corpus", help="articles to index when there is no index yet (default: corpus)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    p.add_argument("--share", action="store_true", help="also make a public Gradio share link (off by default)")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    return ap


def _cmd_index(args: argparse.Namespace) -> int:
    from .store import build_index

    cfg = load_config(args.config, model=args.model, chunk_size=args.chunk_size, chunk_overlap=args.chunk_overlap)
    report = build_index(args.corpus, args.index, cfg, progress=not args.no_progress, force=args.force)
    for p in report.problems:
        print(f"skipped {p}", file=sys.stderr)
    if report.skipped:
        print(f"index in {args.index}/ is up to date ({report.articles} articles, {report.chunks} chunks); nothing to do")
    else:
        extra = f", {report.duplicates} duplicate(s) indexed once" if report.duplicates else ""
        print(f"indexed {report.articles} articles into {report.chunks} chunks in {report.seconds:.1f}s "
              f"({report.embedded} embedded{extra}, {len(report.problems)} file(s) skipped) -> {args.index}/")
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from .assistant import Assistant

    cfg = load_config(args.config) if (args.config or Path("qa.toml").is_file()) else None
    assistant = Assistant.load(args.index, cfg)
    hits = assistant.retrieve(args.question, k=args.k, mode=args.mode)
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=2))
        return 0
    if not hits:
        print("no passage found")
        return 0
    for h in hits:
        meta = " · ".join(x for x in (h.article.source, h.article.date) if x)
        print(f"[{h.rank}] {h.score:.3f}  {h.article.display_title}" + (f"  ({meta})" if meta else ""))
        print(f"    {h.article.id} [{h.start}:{h.end}]  bm25 rank {h.bm25_rank or '-'}, dense rank {h.dense_rank or '-'}")
        print("    " + h.text.replace("\n\n", "\n    ").replace("\n", "\n    "))
        print()
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        from .ui import launch
    except ImportError as e:
        raise ImportError(f"the web chat needs Gradio: pip install 'article-qa[ui]' ({e})") from e
    launch(index_dir=args.index, corpus_dir=args.corpus, host=args.host, port=args.port, share=args.share)
    return 0


COMMANDS = {"index": _cmd_index, "search": _cmd_search, "serve": _cmd_serve}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    for noisy in ("faiss", "faiss.loader", "sentence_transformers", "httpx", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except QAError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
