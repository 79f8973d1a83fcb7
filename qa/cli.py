"""Command line: ``qa index``, ``qa add``, ``qa remove``, ``qa search``, ``qa ask``, ``qa chat``, ``qa serve``,
``qa eval``, ``qa tune``, ``qa questions``, ``qa adapt``, ``qa config``.

``qa --help`` lists them; ``qa COMMAND --help`` gives each one's options.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Optional, Sequence

from .config import ANSWERERS, MODES, UNSUPPORTED
from .cli_tools import (_cmd_adapt, _cmd_add, _cmd_chat, _cmd_config, _cmd_eval, _cmd_questions, _cmd_remove,
                        _cmd_serve, _cmd_train_fusion, _cmd_train_reader, _cmd_train_selector, _cmd_tune, _resolved,
                        QAErrorArg, _filter, print_answer)
from . import __version__
from .errors import QAError

log = logging.getLogger("qa")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", default="index", help="index folder (default: index)")
    p.add_argument("--config", default=None, help="TOML config file (default: qa.toml when present)")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")


def _add_filter(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("filters (only articles passing all of them)")
    g.add_argument("--source", action="append", default=None, metavar="NAME",
                   help="outlet, case-insensitive; repeat for any of several")
    g.add_argument("--since", default=None, metavar="DATE", help="from this date on: YYYY-MM-DD, YYYY-MM or YYYY")
    g.add_argument("--until", default=None, metavar="DATE", help="up to this date, inclusive (same forms)")
    g.add_argument("--article", action="append", default=None, metavar="ID", help="only this article id; repeatable")


CONFIG_HELP = """settings: qa.toml in the working folder (or --config FILE), in sections:
  [index]      model, chunk_size, chunk_overlap, stopwords, ... (how qa index builds)
  [retrieval]  mode, fusion, dense_weight, rrf_k, candidates, bm25_k1, bm25_b, ...
  [answer]     answer_k, abstain_threshold, answerer, llm_base_url, llm_model, ...
  [ui]         host, port, share (qa serve)
  [milvus]     store, milvus_uri, milvus_collection, ...
each setting is taken from the last of: default < the index's manifest (what it was
built and tuned with) < qa.toml < command-line flags. `qa config --show` prints every
setting, its value and where it came from."""


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="qa", description="Question answering over news articles, with quoted sources.",
                                 epilog=CONFIG_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"qa {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="build or update the index of a corpus folder")
    _add_common(p)
    p.add_argument("--corpus", default="corpus", help="folder of articles (default: corpus)")
    p.add_argument("--model", default=None, help="embedding model name or local folder")
    p.add_argument("--chunk-size", type=int, default=None, help="target chunk length in characters")
    p.add_argument("--chunk-overlap", type=int, default=None, help="sentences shared by neighbouring chunks")
    p.add_argument("--force", action="store_true", help="rebuild even when the index is up to date")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = sub.add_parser("add", help="add article files to the corpus folder, then update the index")
    _add_common(p)
    p.add_argument("files", nargs="+", metavar="FILE", help=".txt .md .html .json .jsonl files")
    p.add_argument("--corpus", default="corpus", help="folder of articles (default: corpus)")
    p.add_argument("--no-index", action="store_true", help="only write the files; leave the index as it is")

    p = sub.add_parser("remove", help="remove articles (by id) from the corpus folder, then update the index")
    _add_common(p)
    p.add_argument("ids", nargs="+", metavar="ID", help="article ids (as `qa search` shows them)")
    p.add_argument("--corpus", default="corpus", help="folder of articles (default: corpus)")
    p.add_argument("--no-index", action="store_true", help="only change the files; leave the index as it is")

    p = sub.add_parser("search", help="retrieve passages for a question")
    _add_common(p)
    p.add_argument("question", help="the question")
    p.add_argument("-k", type=int, default=5, help="number of passages (default: 5)")
    p.add_argument("--mode", choices=MODES, default=None, help="retrieval mode (default: hybrid)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--no-fold", action="store_true",
                   help="show near-duplicate articles (one story, several outlets) as separate hits")
    _add_filter(p)

    p = sub.add_parser("ask", help="answer a question with quoted sources (extractive, or a checked LLM answer)")
    _add_common(p)
    p.add_argument("question", help="the question")
    p.add_argument("-k", type=int, default=None, help="passages to read (default: answer_k, 5)")
    p.add_argument("--mode", choices=MODES, default=None, help="retrieval mode (default: hybrid)")
    p.add_argument("--answerer", choices=ANSWERERS, default=None, help="extractive (default) or openai (an LLM)")
    p.add_argument("--llm-base-url", default=None, help="OpenAI-compatible server, e.g. http://localhost:11434/v1")
    p.add_argument("--llm-model", default=None, help="model name on that server")
    p.add_argument("--llm-unsupported", choices=UNSUPPORTED, default=None,
                   help="flag (default) or remove generated sentences their sources do not support")
    p.add_argument("--json", action="store_true", help="print the answer as JSON (with the check of every sentence)")
    _add_filter(p)

    p = sub.add_parser("chat", help="a conversation in the terminal: questions from standard input, one per line; "
                                    "follow-ups use the earlier turns")
    _add_common(p)
    p.add_argument("-k", type=int, default=None, help="passages to read (default: answer_k, 5)")
    p.add_argument("--mode", choices=MODES, default=None, help="retrieval mode (default: hybrid)")
    _add_filter(p)

    p = sub.add_parser("serve", help="serve the web chat (Gradio) on this machine")
    p.add_argument("--index", default="index", help="index folder (default: index)")
    p.add_argument("--corpus", default="corpus", help="articles to index when there is no index yet (default: corpus)")
    p.add_argument("--host", default=None,
                   help="address to bind (default: [ui] host in qa.toml, else 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=None, help="port (default: [ui] port in qa.toml, else 7860)")
    p.add_argument("--share", action=argparse.BooleanOptionalAction, default=None,
                   help="also make a public Gradio share link (default: [ui] share in qa.toml, else off)")
    p.add_argument("--login", default=None, metavar="USER[:PASSWORD]",
                   help="ask for this login (without :PASSWORD, the password is read from QA_PASSWORD); "
                        "also turns on adding and deleting articles")
    p.add_argument("--allow-upload", action=argparse.BooleanOptionalAction, default=None,
                   help="let the chat add and delete articles of --corpus (default: [ui] allow_upload, "
                        "else on only with a login)")
    p.add_argument("--config", default=None, help="TOML config file (default: qa.toml when present)")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")

    p = sub.add_parser("config", help="show every setting, its value and where it came from",
                       description=CONFIG_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--show", action="store_true", required=True,
                   help="print the settings `qa search` and `qa ask` would use, by section, with their sources")
    p.add_argument("--index", default="index", help="index whose manifest counts (default: index)")
    p.add_argument("--config", default=None, help="TOML config file (default: qa.toml when present)")
    p.add_argument("--json", action="store_true", help="print JSON: {section: {name: {value, source}}}")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")

    p = sub.add_parser("eval", help="measure retrieval and answers on a question file (see docs/evaluation.md)")
    _add_eval_common(p)
    p.add_argument("--json", default=None, metavar="OUT", help="write the full report, with every question, here")
    p.add_argument("--no-answers", action="store_true", help="measure retrieval only (skip the answerer)")
    p.add_argument("--no-reader-only", action="store_true",
                   help="skip the reader-only pass (the answerer given each question's gold passage 'context' "
                        "alone; on by default when the questions carry one)")

    p = sub.add_parser("tune", help="tune the retrieval settings on a question file; write them when better")
    _add_eval_common(p)
    p.add_argument("--metric", default=None, help="metric to optimise (default: mrr@K); e.g. recall@1, ndcg@10")
    p.add_argument("--dry-run", action="store_true", help="report only; never write the index's config")
    p.add_argument("--chunk-sizes", default=None, metavar="N,N,...",
                   help="also try these chunk sizes: builds a scratch index for each (embeds the new chunks) and "
                        "rebuilds the index when one wins; needs --corpus or --pool unless the index's corpus "
                        "folder is here")
    p.add_argument("--json", default=None, metavar="OUT", help="write the tuning report here")

    p = sub.add_parser("questions", help="draft cloze questions from a corpus folder (no LLM)")
    p.add_argument("--corpus", default="corpus", help="folder of articles (default: corpus)")
    p.add_argument("--out", required=True, help="JSONL file to write")
    p.add_argument("--per-article", type=int, default=3, help="questions per article (default: 3)")
    p.add_argument("--limit", type=int, default=None, help="at most this many questions in all")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")

    p = sub.add_parser("adapt", help="fine-tune the embedding model on your language and articles "
                                     "(see docs/adaptation.md)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--pairs", nargs="+", metavar="FILE",
                     help="JSONL (question, passage) pairs: {question, context} as in the qa_*.jsonl sets")
    src.add_argument("--corpus", metavar="DIR", help="no labels: build self-supervised pairs from these articles "
                                                     "(a folder, or a JSONL pool file)")
    p.add_argument("--base", default=None, help="model to start from (default: the configured model)")
    p.add_argument("--out", default=None, help="folder to write the model to (default: models/<base>-<data>)")
    p.add_argument("--epochs", type=int, default=1, help="passes over the pairs (default: 1)")
    p.add_argument("--batch-size", type=int, default=32, help="pairs per step; more in-batch negatives (default: 32)")
    p.add_argument("--max-seq-length", type=int, default=256,
                   help="tokens per text while training (default: 256; 128 trains about twice as fast)")
    p.add_argument("--max-pairs", type=int, default=None, help="use at most this many pairs (a seeded sample)")
    p.add_argument("--learning-rate", type=float, default=2e-5, help="default: 2e-5")
    p.add_argument("--hard-negatives", action="store_true",
                   help="add a BM25-mined hard negative to each pair (from the other pairs' passages and the "
                        "chunks of --index when it exists); slower by about half")
    p.add_argument("--index", default="index", help="index whose chunks --hard-negatives mines (default: index)")
    p.add_argument("--loss", default="mnrl", choices=("mnrl", "cached-mnrl"), help="default: mnrl")
    p.add_argument("--device", default=None, choices=("auto", "cpu", "cuda", "mps"), help="default: auto (GPU when present)")
    p.add_argument("--config", default=None, help="TOML config file (default: qa.toml when present)")
    p.add_argument("--force", action="store_true", help="replace --out when it exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log the time estimate instead)")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")

    p = sub.add_parser("train-selector", help="train the answerer's sentence selector on labelled questions "
                                              "(see docs/answers.md)")
    p.add_argument("--train", nargs="+", required=True, metavar="FILE",
                   help="JSONL {question, context, answers: [{text, start}], is_impossible} (the qa_*.jsonl form)")
    p.add_argument("--valid", nargs="*", default=[], metavar="FILE", help="also report on these files")
    p.add_argument("--calibrate", default=None, metavar="FILE",
                   help="set the decline threshold for the best abstention F1 on this file (needs unanswerable "
                        "questions)")
    p.add_argument("--max-declined", type=float, default=0.15,
                   help="the threshold declines at most this share of answerable questions (default: 0.15)")
    p.add_argument("--limit", type=int, default=None, help="questions sampled from each --train file (default: all)")
    p.add_argument("--distractors", type=int, default=2, help="other passages per question (default: 2)")
    p.add_argument("--retrieval", default="bm25", choices=("bm25", "hybrid"), help="how the distractors are ranked "
                   "(default: bm25; hybrid: BM25 and the encoder fused, as the assistant retrieves)")
    p.add_argument("--holdout", type=float, default=0.15, help="share of questions kept out of the fit and "
                                                                  "reported (default: 0.15)")
    p.add_argument("--l2", type=float, default=1.0, help="L2 penalty (default: 1.0)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--model", default=None, help="encoder of the cosine features (default: the configured model; "
                                                 "use the one your index is built with)")
    p.add_argument("--cache", default=None, metavar="NPZ", help="keep the featurized training questions here and "
                                                                 "reuse them on the next run with the same data")
    p.add_argument("--out", required=True, help="selector JSON to write (its card: the same name with .md); "
                                                "name it in [answer] selector")
    p.add_argument("--config", default=None, help="TOML config file (default: qa.toml when present)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")

    p = sub.add_parser("train-reader", help="train the answerer's span reader (qa/answer/models/READER.md)")
    p.add_argument("--train", nargs="+", required=True, metavar="FILE", help="question files (qa_*.jsonl form)")
    p.add_argument("--valid", nargs="*", default=[], metavar="FILE", help="report on, and set the threshold with, these")
    p.add_argument("--layers", type=int, default=3, help="top layers trained (default: 3; the rest stay frozen)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--limit", type=int, default=None, help="train on a random sample of this many questions")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--out", default=None, help="weights to write (default: the packaged reader; card: same name, .md)")
    p.add_argument("--cache-dir", default="/tmp/qa-reader-cache", help="the frozen layers' outputs, kept between runs")
    p.add_argument("--init", default=None, help="weights to go on from (of --layers or fewer: the rest from the "
                                                "base; of more: their lower ones stay frozen)")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")

    p = sub.add_parser("train-fusion", help="train the adaptive fusion model (a dense weight per question) on "
                                            "labelled questions over a pool (docs/retrieval-quality.md)")
    p.add_argument("--train", nargs="+", required=True, metavar="FILE", help="question files (qa_*.jsonl form)")
    p.add_argument("--valid", nargs="*", default=[], metavar="FILE",
                   help="report on these files (their questions are kept out of training)")
    p.add_argument("--pool", required=True, help="pool JSONL the questions' context_ids refer to")
    p.add_argument("--index", default=None, help="the pool's index folder (default: qa eval --pool's)")
    p.add_argument("--limit", type=int, default=1300, help="questions sampled from each --train file (default: 1300)")
    p.add_argument("--l2", type=float, default=0.1, help="L2 penalty of the classifier (default: 0.1)")
    p.add_argument("--seed", type=int, default=15, help="sampling seed (default: 15)")
    p.add_argument("--out", required=True, help="model JSON to write (card: same name, .md); name it in "
                                                "[retrieval] fusion_model")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    ap.commands = sub.choices  # name -> subparser: main() reports a stray argument with its command's usage
    return ap


def _add_eval_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--questions", required=True, help="JSONL question file (format: docs/evaluation.md)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--corpus", default=None, help="index this folder of articles first (into --index)")
    src.add_argument("--pool", default=None, help="JSONL of passages {context_id|id, text}: one article each, "
                                                  "indexed into --index (default: index/eval-pool/<name>-<hash>)")
    p.add_argument("--index", default=None, help="index folder (default: index)")
    p.add_argument("--config", default=None, help="TOML config file (default: qa.toml when present)")
    p.add_argument("--k", "-k", type=int, default=10, help="articles scored per question (default: 10)")
    p.add_argument("--question-field", default="question",
                   help="field holding the question text (default: question; e.g. summary)")
    p.add_argument("--limit", type=int, default=None, help="only the first N questions of the file")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (default: torch's choice; 1 is faster on a busy machine)")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")


def _cmd_index(args: argparse.Namespace) -> int:
    from .stores import build_index

    cfg = _resolved(args, args.index, build=True, model=args.model, chunk_size=args.chunk_size,
                   chunk_overlap=args.chunk_overlap).config
    report = build_index(args.corpus, args.index, cfg, progress=not args.no_progress, force=args.force)
    # the files skipped were logged as warnings while reading, one line each: not repeated here
    if report.skipped:
        print(f"index in {args.index}/ is up to date ({report.articles} articles, {report.chunks} chunks); nothing to do")
    else:
        extra = f", {report.duplicates} duplicate(s) indexed once" if report.duplicates else ""
        device = ""
        if report.embedded and report.device:  # say where the model ran: GPU when present, else CPU
            device = " on GPU (cuda)" if report.device == "cuda" else f" on {report.device.upper()}"
        print(f"indexed {report.articles} articles into {report.chunks} chunks in {report.seconds:.1f}s "
              f"({report.embedded} embedded{device}{extra}, {len(report.problems)} file(s) skipped) -> {args.index}/")
        from .encoders.identity import PACKAGED_MODELS

        if cfg.model not in PACKAGED_MODELS:
            print(f"model {cfg.model}: a better dense model wants more fusion weight (dense_weight is "
                  f"{cfg.dense_weight}); re-check it with `qa tune --questions FILE` (docs/adaptation.md)")
    return 0


def _question(args: argparse.Namespace) -> None:
    if not args.question.strip():
        raise QAErrorArg("empty question: give the question in quotes, e.g. qa ask \"Siapa Kalapas Amuntai?\"")


def _cmd_search(args: argparse.Namespace) -> int:
    from .assistant import Assistant

    _question(args)

    cfg = _resolved(args, args.index, mode=args.mode).config
    where = _filter(args)
    assistant = Assistant.load(args.index, cfg)
    hits = assistant.retrieve(args.question, k=args.k, mode=args.mode, filter=where,
                              fold_duplicates=False if args.no_fold else None)
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=2))
        return 0
    if not hits:
        print("no passage found" + (f" (filter: {where.describe()})" if where else ""))
        return 0
    for h in hits:
        meta = " · ".join(x for x in (h.article.source, h.article.date) if x)
        print(f"[{h.rank}] {h.score:.3f}  {h.article.display_title}" + (f"  ({meta})" if meta else ""))
        print(f"    {h.article.id} [{h.start}:{h.end}]  bm25 rank {h.bm25_rank or '-'}, dense rank {h.dense_rank or '-'}")
        if h.also_reported_by:
            print("    also reported by: " + ", ".join((a.source or a.id) + (f" ({a.date})" if a.date else "")
                                                   for a in h.also_reported_by))
        print("    " + h.text.replace("\n\n", "\n    ").replace("\n", "\n    "))
        print()
    return 0


def _cmd_ask(args: argparse.Namespace) -> int:
    from .assistant import Assistant

    _question(args)

    cfg = _resolved(args, args.index, mode=args.mode, answerer=args.answerer,
                   llm_base_url=args.llm_base_url, llm_model=args.llm_model,
                   llm_unsupported=args.llm_unsupported).config
    where = _filter(args)
    assistant = Assistant.load(args.index, cfg)
    ans = None
    for item in assistant.ask_stream(args.question, k=args.k, mode=args.mode, filter=where):
        if isinstance(item, str):
            if not args.json and sys.stderr.isatty():
                print(item, end="", file=sys.stderr, flush=True)  # the LLM's draft as it comes, before the checks
        else:
            ans = item
    if args.json:
        print(json.dumps(ans.to_dict(), ensure_ascii=False, indent=2))
        return 0
    print_answer(ans)
    return 0


COMMANDS = {"index": _cmd_index, "add": _cmd_add, "remove": _cmd_remove, "search": _cmd_search, "ask": _cmd_ask,
            "chat": _cmd_chat,
            "serve": _cmd_serve, "eval": _cmd_eval, "tune": _cmd_tune, "questions": _cmd_questions, "adapt": _cmd_adapt,
            "config": _cmd_config, "train-selector": _cmd_train_selector,
            "train-reader": _cmd_train_reader, "train-fusion": _cmd_train_fusion}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # the command's own usage, not the top level's
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command as given (model cards record it)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    for noisy in ("faiss", "faiss.loader", "sentence_transformers", "httpx", "transformers", "pymilvus", "milvus_lite",
                   "bm25s"):
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
    except BrokenPipeError:  # `qa ... | head`: the reader left; stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as e:  # a port in use, a full disk, a folder that cannot be written: one line, no traceback
        if args.verbose:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
