"""The tool commands of the command line: ``qa add``, ``qa remove``, ``qa chat``, ``qa eval``, ``qa tune``,
``qa questions``, ``qa adapt``, ``qa config`` (parsers in :mod:`qa.cli`)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Optional

from .config import ResolvedConfig, load_config
from .errors import ConfigError, QAError


def _resolved(args: argparse.Namespace, index: Optional[str | Path], *, build: bool = False,
              **flags) -> ResolvedConfig:
    """The settings for a command (see :func:`qa.stores.resolve_settings`)."""
    from .stores import resolve_settings

    return resolve_settings(index, toml_path=getattr(args, "config", None), cli=flags, build=build)


def _eval_setup(args: argparse.Namespace):
    """The assistant and questions for ``qa eval`` / ``qa tune`` (indexing --corpus or --pool first)."""
    from .assistant import Assistant
    from .evaluation import pool_assistant, read_questions, remap_gold
    from .stores import build_index

    if args.k < 1:
        raise QAErrorArg(f"--k must be at least 1; got {args.k}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    questions = read_questions(args.questions, question_field=args.question_field, limit=args.limit)
    if args.pool:  # the pool's index is a cache: it keeps what it was built and tuned with
        from .evaluation.pool import pool_index_dir

        cfg = _resolved(args, args.index or pool_index_dir(args.pool)).config
        assistant, pool = pool_assistant(args.pool, args.index, cfg, progress=sys.stderr.isatty())
        questions = remap_gold(questions, pool.duplicates)
        print(f"pool {args.pool}: {len(pool.articles)} passages, index {assistant.index_dir}/", file=sys.stderr)
        return assistant, questions, pool
    index = args.index or "index"
    if args.corpus:
        build_index(args.corpus, index, _resolved(args, index, build=True).config,
                    progress=sys.stderr.isatty())  # as `qa index` would (skipped files are logged as warnings)
    return Assistant.load(index, _resolved(args, index).config), questions, args.corpus


class QAErrorArg(QAError, ValueError):
    """A bad command-line argument."""


def _filter(args: argparse.Namespace):
    """The ``--source`` / ``--since`` / ``--until`` / ``--article`` filter (None: no filter)."""
    from .filters import Filter

    try:
        return Filter.of(Filter(source=args.source or (), date_from=args.since, date_to=args.until,
                                article_ids=args.article or ()))
    except ValueError as e:
        raise ConfigError(str(e).replace("date_from", "--since").replace("date_to", "--until")) from None


def print_answer(ans) -> None:
    """An answer as ``qa ask`` and ``qa chat`` print it: the text, then each source with its quote."""
    from .answer.lang import quoted

    if ans.notice:
        print(f"note: {ans.notice}")
    print(ans.text)
    for c in ans.citations:
        meta = " · ".join(x for x in (c.article.source, c.article.date) if x)
        print(f"  [{c.n}] {c.article.display_title}" + (f" ({meta})" if meta else ""))
        print(f"      {quoted(c.quote)}")
    print(f"answered by: {ans.answerer_label}")


CHAT_HELP = "one question per line; follow-ups use the earlier turns. /new: a new conversation; /quit or Ctrl-D: stop"


def _cmd_chat(args: argparse.Namespace) -> int:
    """A conversation over standard input: each line a question, answered with the earlier turns as
    context (:class:`~qa.conversation.Conversation`). A bad question is reported and the chat goes on."""
    from .assistant import Assistant

    if args.k is not None and args.k < 1:
        raise QAErrorArg(f"-k must be a positive integer; got {args.k}")
    cfg = _resolved(args, args.index, mode=args.mode).config
    where = _filter(args)
    chat = Assistant.load(args.index, cfg).conversation()
    interactive = sys.stdin.isatty()
    if interactive:
        print(CHAT_HELP)
    while True:
        try:
            line = input("> ") if interactive else sys.stdin.readline()
        except EOFError:
            break
        if not interactive and not line:
            break
        question = line.strip()
        if not question:
            continue
        if question in ("/quit", "/exit"):
            break
        if question == "/new":
            chat.reset()
            print("(a new conversation)")
            continue
        if not interactive:
            print(f"> {question}")
        try:
            print_answer(chat.ask(question, k=args.k, mode=args.mode, filter=where))
        except QAError as e:
            print(f"error: {e}", file=sys.stderr)
        print()
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import evaluate

    assistant, questions, _ = _eval_setup(args)
    report = evaluate(assistant, questions, k=args.k, answers=not args.no_answers,
                      reader_only=not args.no_reader_only)
    print(f"{len(questions)} questions from {args.questions}; index {assistant.index_dir}/ "
          f"({len(assistant.articles)} articles, {len(assistant)} passages); {report.seconds:.0f}s\n")
    print(report.tables())
    for note in report.notes:
        print(f"note: {note}")
    if args.json:
        print(f"\nper-question report: {report.write_json(args.json)}")
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from .evaluation import tune

    sizes: list[int] = []
    if args.chunk_sizes:
        try:
            sizes = [int(x) for x in args.chunk_sizes.split(",") if x.strip()]
        except ValueError:
            raise QAErrorArg(f"--chunk-sizes wants numbers separated by commas, e.g. 400,1000; "
                             f"got {args.chunk_sizes!r}") from None
    assistant, questions, corpus = _eval_setup(args)
    report = tune(assistant, questions, metric=args.metric, k=args.k, write=not args.dry_run,
                  progress=lambda msg: print(msg, file=sys.stderr), chunk_sizes=sizes, corpus=corpus)
    print(report.tables())
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        print(f"\ntuning report: {out}")
    return 0


def _cmd_questions(args: argparse.Namespace) -> int:
    from .evaluation import draft_questions, write_questions
    from .evaluation.tune import MIN_QUESTIONS, per_article_for

    if args.per_article < 1:
        raise QAErrorArg(f"--per-article must be at least 1; got {args.per_article}")
    questions = draft_questions(args.corpus, per_article=args.per_article, limit=args.limit)
    if not questions:
        print(f"no sentence with a date, number or name found in {args.corpus}; nothing written", file=sys.stderr)
        return 1
    write_questions(args.out, questions)
    n_articles = len({q.articles[0] for q in questions})
    kinds = {}
    for q in questions:
        kinds[q.meta.get("kind")] = kinds.get(q.meta.get("kind"), 0) + 1
    print(f"drafted {len(questions)} cloze questions ({', '.join(f'{v} {k}' for k, v in kinds.items())}) "
          f"from {n_articles} articles -> {args.out}")
    print("They test whether retrieval finds the article a sentence came from, given most of its words; "
          "they do not test paraphrased questions or abstention (see docs/evaluation.md).")
    if len(questions) < MIN_QUESTIONS:
        print(f"note: `qa tune` needs at least {MIN_QUESTIONS}; draft more with --per-article "
              f"{per_article_for(n_articles)}", file=sys.stderr)
    return 0


def _cmd_adapt(args: argparse.Namespace) -> int:
    from .adaptation import adapt

    cfg = load_config(args.config)
    negatives: list[tuple[str, str]] = []
    if args.hard_negatives and Path(args.index, "manifest.json").is_file():
        from .stores.embedded_index.load import load_index

        loaded = load_index(args.index, verify=False)
        negatives = [(c.text, c.article_id) for c in loaded.chunks]
        print(f"mining hard negatives from {len(negatives)} chunks of {args.index}/ and the pairs' passages",
              file=sys.stderr)
    if args.no_progress and not args.verbose:
        logging.getLogger("qa").setLevel(logging.INFO)
    report = adapt(pairs=args.pairs, corpus=args.corpus, base=args.base or cfg.model, out=args.out,
                   epochs=args.epochs, batch_size=args.batch_size, max_seq_length=args.max_seq_length,
                   max_pairs=args.max_pairs, learning_rate=args.learning_rate, hard_negatives=args.hard_negatives,
                   negatives_from=negatives, loss=args.loss, device=args.device or cfg.device,
                   chunk_size=cfg.chunk_size, overwrite=args.force, progress=not args.no_progress)
    what = "labelled pairs" if report.mode == "pairs" else "self-supervised pairs"
    neg = f", {report.hard_negatives} with a hard negative" if report.hard_negatives else ""
    print(f"adapted {report.base} on {report.pairs} {what}{neg}: {report.steps} steps in {report.seconds:.0f}s on "
          f"{report.device}, final loss {report.train_loss} -> {report.out}/")
    print(f"card: {report.out}/ADAPTATION.md. Next: qa index --model {report.out} --force, then check the fusion "
          "weight with qa tune --questions YOUR_QUESTIONS.jsonl (docs/adaptation.md)")
    return 0


def _command(args: argparse.Namespace) -> str:
    """The command line that ran, as a card records it: ``qa`` and its arguments as given."""
    return shlex.join(["qa", *getattr(args, "argv", [args.command])])


def _cmd_train_reader(args: argparse.Namespace) -> int:
    from .adaptation.reader import MODEL, card, train
    if args.layers < 1 or args.layers > 12 or args.epochs < 1 or (args.limit is not None and args.limit < 1):
        raise QAErrorArg("--layers must be in 1..12, --epochs and --limit at least 1")
    out = Path(args.out or MODEL)
    report = train(args.train, valid_files=args.valid, layers=args.layers, epochs=args.epochs, lr=args.lr,
                   limit=args.limit, threads=args.threads, out=out, init=args.init, progress=True,
                   cache_dir=args.cache_dir)
    text = card(report, _command(args))
    out.with_name(out.stem.upper() + ".md" if args.out is None else out.stem + ".md").write_text(text, encoding="utf-8")
    print(text)
    return 0


def _cmd_train_selector(args: argparse.Namespace) -> int:
    from .adaptation.selector import card, train
    from .encoders import make_encoder

    for name in ("limit", "distractors"):
        v = getattr(args, name)
        if v is not None and v < (1 if name == "limit" else 0):
            raise QAErrorArg(f"--{name} must be at least {1 if name == 'limit' else 0}; got {v}")
    for name in ("max_declined", "holdout"):
        if not 0.0 <= getattr(args, name) < 1.0:
            raise QAErrorArg(f"--{name.replace('_', '-')} must be in 0..1; got {getattr(args, name)}")
    cfg = load_config(args.config)
    encoder = make_encoder(args.model or cfg.model, device=cfg.device, batch_size=cfg.batch_size)
    selector, report = train(args.train, encoder, valid_files=args.valid, calibrate=args.calibrate,
                             limit=args.limit, distractors=args.distractors, retrieval=args.retrieval, l2=args.l2,
                             max_declined=args.max_declined, holdout=args.holdout, seed=args.seed,
                             cache=args.cache, progress=not args.no_progress)
    out = selector.save(args.out)
    command = _command(args)
    out.with_suffix(".md").write_text(card(selector, report, command), encoding="utf-8")
    print(card(selector, report, command))
    print(f"wrote {out} and its card {out.with_suffix('.md')}; use it with [answer] selector = \"{out}\" and "
          f"abstain_threshold = {selector.threshold:.4f}")
    return 0



def _update_index(args: argparse.Namespace, cfg) -> None:
    from .stores import build_index

    if args.no_index:
        print(f"the index in {args.index}/ was left as it is: run `qa index --corpus {args.corpus}`")
        return
    report = build_index(args.corpus, args.index, cfg, progress=False)
    print(f"index updated: {report.articles} articles, {report.chunks} chunks ({report.embedded} embedded now) "
          f"in {report.seconds:.1f}s -> {args.index}/")


def _cmd_add(args: argparse.Namespace) -> int:
    """``qa add FILE...``: the same checks and per-file results as the chat's upload."""
    from .library import UploadLimits, add_files

    cfg = _resolved(args, args.index, build=True).config
    folders = [f for f in args.files if Path(f).is_dir()]
    if folders:
        raise QAErrorArg(f"{', '.join(folders)}: a folder; give the article files (qa add {folders[0]}/*.txt), "
                         f"or copy them into the corpus folder and run `qa index`")
    missing = [f for f in args.files if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(f"no such file: {', '.join(missing)}")
    results = add_files([(Path(f).name, Path(f)) for f in args.files], args.corpus, UploadLimits.from_config(cfg))
    for r in results:
        print(r, file=sys.stderr if r.status == "skipped" and not r.reason.startswith("unchanged") else sys.stdout)
    if any(r.status != "skipped" for r in results):
        _update_index(args, cfg)
    return 1 if any(r.status == "skipped" and not r.reason.startswith("unchanged") for r in results) else 0


def _cmd_remove(args: argparse.Namespace) -> int:
    """``qa remove ID...``: the articles' text goes to ``<corpus>/.trash/``."""
    from .library import remove_articles

    cfg = _resolved(args, args.index, build=True).config
    results = remove_articles(args.ids, args.corpus)
    for r in results:
        print(r, file=sys.stdout if r.status == "removed" else sys.stderr)
    if any(r.status == "removed" for r in results):
        _update_index(args, cfg)
    return 0 if all(r.status == "removed" for r in results) else 1


def _cmd_train_fusion(args: argparse.Namespace) -> int:
    from .adaptation.fusion import card, train_fusion
    from .config import Config
    from .evaluation import pool_assistant

    if args.limit is not None and args.limit < 1:
        raise QAErrorArg(f"--limit must be at least 1; got {args.limit}")
    assistant, corpus = pool_assistant(args.pool, args.index, Config())
    model, report = train_fusion(assistant, args.train, valid_files=args.valid, duplicates=corpus.duplicates,
                                 limit=args.limit, seed=args.seed, l2=args.l2)
    out = model.save(args.out)
    command = _command(args)
    text = card(model, report, command)
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    print(f"wrote {out} and its card {out.with_suffix('.md')}; use it with [retrieval] fusion = \"adaptive\" and "
          f"fusion_model = \"{out}\"")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        from .ui import launch
    except ImportError as e:
        raise ImportError(f"the web chat needs Gradio: pip install 'article-qa[ui]' ({e})") from e
    ui = _resolved(args, None, host=args.host, port=args.port, share=args.share).config
    launch(index_dir=args.index, corpus_dir=args.corpus, host=ui.host, port=ui.port, share=ui.share,
           config_path=args.config, auth=_login(args.login),
           allow_upload=args.allow_upload)
    return 0


def _login(value: Optional[str]) -> Optional[tuple[str, str]]:
    """(user, password) from ``--login USER[:PASSWORD]`` (the password from QA_PASSWORD when not given)."""
    if value is None:
        return None
    user, _, password = value.partition(":")
    password = password or os.environ.get("QA_PASSWORD", "")
    if not user or not password:
        raise ConfigError("--login needs USER:PASSWORD, or USER with the password in QA_PASSWORD")
    return user, password


def _cmd_config(args: argparse.Namespace) -> int:
    settings = _resolved(args, args.index)
    if args.json:
        print(json.dumps(settings.to_dict(), ensure_ascii=False, indent=2))
    else:
        has = Path(args.index, "manifest.json").is_file()
        print(f"# index {args.index}: " + ("its manifest counts" if has else "no manifest there (not built yet, "
                                         "or a Milvus store): defaults, TOML and flags only"))
        print(settings.show())
    return 0
