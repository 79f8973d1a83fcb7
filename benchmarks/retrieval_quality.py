#!/usr/bin/env python
"""Retrieval quality on the Indonesian dev sets: a thin driver over ``qa.evaluation``.

The pool (one article per passage) is indexed with ``qa.evaluation.pool_assistant`` into the
folder ``qa eval --pool`` uses (reused while up to date); each question set is read with
``read_questions`` + ``remap_gold``. The retrieval settings are the ``Config`` defaults (plus
``--set key=value``), not whatever a ``qa tune`` may have written into the pool index.

* Main table per set: ``evaluate(assistant, questions, k=10, answers=False)``, i.e. exactly what
  ``qa eval`` reports (bm25 / dense / hybrid: R@1, R@5, R@10, MRR@10, nDCG@10 of the top 10
  articles among the first 50 passages).
* ``--grid``: rankings from ``qa.evaluation.tune.ranking_runner`` (each question's candidate
  lists computed once through the retrieval pipeline, fused as ``Assistant.retrieve`` fuses them)
  scored with ``ranx_scores``: convex fusion (BM25's pool and the union) at dense_weight 0.0..1.0 x
  candidates 50/100/200; RRF
  k 10/30/60 x candidates; BM25 k1 x b (``store.lexical_variant``), BM25 alone and the default
  hybrid; the analyzer (stopwords x stemming), BM25 alone and the default hybrid, on scratch
  indexes in a temporary folder whose vectors come from the pool index (``SeededEmbedder``:
  nothing is re-embedded). Every row has its paired R@1 wins/losses against the default BM25
  alone (questions whose gold article is first in the row but not with BM25, and the reverse).
  Not measured: chunk size (re-chunking re-embeds the pool, ~15 min a size on 2 cores; see
  ``qa tune --chunk-sizes``) and query abbreviation expansion.

    OMP_NUM_THREADS=1 python benchmarks/retrieval_quality.py --pool ../shared/data/passages_dev_pool.jsonl \\
        --questions ../shared/data/qa_tydiqa_id_valid.jsonl ../shared/data/qa_idkmrc_valid.jsonl \\
                    ../shared/data/qa_facqa_valid.jsonl \\
        --grid --threads 1 --json benchmarks/results/retrieval_quality.json
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from qa import Config  # noqa: E402
from qa.evaluation import SearchSpace, evaluate, metric_names, pool_assistant, read_questions, remap_gold  # noqa: E402
from qa.evaluation.metrics import ranx_scores  # noqa: E402
from qa.evaluation.pipeline import gold_ids, retrieval_settings  # noqa: E402
from qa.evaluation.rebuild import SeededEmbedder  # noqa: E402
from qa.evaluation.tune import ranking_runner  # noqa: E402
from qa.retrieval import describe  # noqa: E402

K = 10
N_CHUNKS = max(50, 5 * K)  # passages read per question, as ``evaluate`` reads them
METRICS = metric_names(K)
HEADS = ["R@1", "R@5", "R@10", "MRR@10", "nDCG@10"]
WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))
CANDIDATES = (50, 100, 200)
RRF_KS = (10, 30, 60)
BM25_PARAMS = SearchSpace().bm25_params  # k1 {0.9, 1.2, 1.5, 2.0} x b {0.4, 0.6, 0.75, 0.9}, as qa tune
ANALYZERS = ((True, False), (True, True), (False, False), (False, True))  # (stopwords, stemming)
T0 = time.perf_counter()


def say(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def set_name(path: Path) -> str:
    name = path.stem.removeprefix("qa_")
    for suffix in ("_valid", "_dev", "_test"):
        name = name.removesuffix(suffix)
    return name


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set wants key=value, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def top1_wins(run: dict, base: dict, qrels: dict) -> tuple[int, int]:
    """Questions whose gold article is first in ``run`` but not in ``base``, and the reverse."""
    def first(r: dict, q: str) -> bool:
        return bool(r.get(q)) and r[q][0] in qrels[q]
    return (sum(first(run, q) and not first(base, q) for q in qrels),
            sum(first(base, q) and not first(run, q) for q in qrels))


def grid_settings(cur: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    hybrid = {**cur, "mode": "hybrid"}
    return {
        "fusion": [{**hybrid, "fusion": "convex", "fusion_pool": pool, "dense_weight": w, "candidates": c}
                   for pool in ("lexical", "union") for c in CANDIDATES for w in WEIGHTS],
        "rrf": [{**hybrid, "fusion": "rrf", "rrf_k": rk, "candidates": c} for c in CANDIDATES for rk in RRF_KS],
        "bm25_params": [{**cur, "mode": m, "bm25_k1": k1, "bm25_b": b}
                        for k1, b in BM25_PARAMS for m in ("bm25", "hybrid")],
    }


def score_rows(run, rows: list[dict[str, Any]], qrels: dict, base: dict, suffix: str = "") -> dict[str, dict]:
    out = {}
    for s in rows:
        ranked = run(s, qrels)
        won, lost = top1_wins(ranked, base, qrels)
        out[describe(s) + suffix] = {**ranx_scores(qrels, ranked, METRICS), "won": won, "lost": lost}
    return out


def grid_table(title: str, rows: dict[str, dict[str, dict]], sets: Sequence[str]) -> str:
    """One row per setting: R@1, MRR@10 and R@1 wins/losses against BM25 per set, then the means."""
    head = ["setting"] + [f"{s} {h}" for s in sets for h in ("R@1", "MRR@10", "+won/-lost")] + ["mean R@1", "mean MRR"]
    lines = [f"**{title}**", "", "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for label, per in rows.items():
        cells = [label]
        for s in sets:
            m = per[s]
            cells += [f"{m['recall@1']:.3f}", f"{m[f'mrr@{K}']:.3f}", f"+{m['won']}/-{m['lost']}"]
        cells += [f"{sum(per[s][k] for s in sets) / len(sets):.3f}" for k in ("recall@1", f"mrr@{K}")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pool", type=Path, required=True, help="passages_dev_pool.jsonl")
    ap.add_argument("--questions", type=Path, nargs="+", required=True, help="question files (qa_*.jsonl)")
    ap.add_argument("--index", type=Path, help="pool index folder (default: the one `qa eval --pool` uses)")
    ap.add_argument("--json", type=Path, help="write the tables here")
    ap.add_argument("--grid", action="store_true", help="also the fusion, BM25 and analyzer grids")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="change a Config default (repeatable)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger().handlers[0].setLevel(logging.WARNING)  # bm25s sets its own logger to DEBUG on import
    warnings.filterwarnings("ignore", message=".*unsafe cast.*")  # ranx/numba, harmless
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    cfg = Config().replace(**parse_set(args.overrides))
    assistant, pool = pool_assistant(args.pool, args.index, cfg, progress=sys.stderr.isatty())
    say(f"pool {args.pool}: {len(pool.articles)} passages, {len(assistant.store)} chunks, index {assistant.index_dir}")
    questions = {set_name(p): remap_gold(read_questions(p), pool.duplicates) for p in args.questions}
    sets = list(questions)
    seconds: dict[str, float] = {}
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch_threads": __import__("torch").get_num_threads()},
        "settings": retrieval_settings(cfg), "k": K, "passages_read": N_CHUNKS, "questions": {}, "main": {}}

    t = time.perf_counter()
    print(f"## Main table: `qa eval` ({describe({**retrieval_settings(cfg), 'mode': 'hybrid'})})\n")
    for name, qs in questions.items():
        report = evaluate(assistant, qs, k=K, answers=False, config=cfg)
        result["questions"][name] = {"questions": report.questions, "scored": report.scored}
        result["main"][name] = {r.name: {"settings": r.settings, "n": r.n, **r.metrics}
                                for r in report.retrieval.values()}
        print(f"### {name}\n\n{report.tables()}\n")
    seconds["main"] = time.perf_counter() - t
    say(f"main tables in {seconds['main']:.0f}s")

    if args.grid:
        t = time.perf_counter()
        cur = retrieval_settings(cfg)
        groups = grid_settings(cur)
        grid: dict[str, dict[str, dict[str, dict]]] = {g: {} for g in (*groups, "analyzer")}
        seeded = SeededEmbedder(assistant.embedder)
        seeded.seed(assistant.index_dir)
        with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp:
            variants = {}
            for sw, st in ANALYZERS:
                vcfg = cfg.replace(stopwords=sw, stemming=st)
                same = (sw, st) == (cfg.stopwords, cfg.stemming)
                variants[f" stopwords={'on' if sw else 'off'} stemming={'on' if st else 'off'}"] = (vcfg, (
                    assistant if same else pool_assistant(args.pool, Path(tmp, f"sw{sw:d}-st{st:d}"), vcfg,
                                                          embedder=seeded)[0]))
            say(f"analyzer indexes ready ({seeded.encoded} passages embedded)")
            space = SearchSpace(candidates=CANDIDATES, bm25_params=BM25_PARAMS)
            for name, qs in questions.items():
                usable = [q for q in qs if q.answerable and any(a in assistant.articles for a in q.articles)]
                qrels = {q.id: gold_ids(assistant, q.articles, cfg.fold_duplicates) for q in usable}
                run = ranking_runner(assistant, usable, cfg, space, N_CHUNKS, K)
                base = run({**cur, "mode": "bm25"}, qrels)
                for group, rows in groups.items():
                    for label, m in score_rows(run, rows, qrels, base).items():
                        grid[group].setdefault(label, {})[name] = m
                default = {**cur, "mode": "hybrid"}
                hyb = grid["fusion"][describe(default)][name]
                if any(abs(hyb[m] - result["main"][name]["hybrid"][m]) > 1e-9 for m in METRICS):
                    say(f"WARNING: {name}: the grid's default hybrid differs from evaluate's")
                    result.setdefault("grid_mismatches", []).append(name)
                for suffix, (vcfg, va) in variants.items():
                    vrun = run if va is assistant else ranking_runner(va, usable, vcfg, SearchSpace(
                        candidates=(vcfg.candidates,), bm25_params=()), N_CHUNKS, K)
                    for label, m in score_rows(vrun, [{**cur, "mode": "bm25"}, default], qrels, base, suffix).items():
                        grid["analyzer"].setdefault(label, {})[name] = m
                say(f"grid {name} done")
        result["grid"] = grid
        seconds["grid"] = time.perf_counter() - t
        titles = {"fusion": "convex fusion: dense_weight x candidates", "rrf": "RRF: k x candidates",
                  "bm25_params": "BM25 k1 x b: BM25 alone and the default hybrid",
                  "analyzer": "analyzer (scratch indexes, same vectors): BM25 alone and the default hybrid"}
        print("## Grid (+won/-lost: R@1 against the default BM25 alone)\n")
        for group, rows in grid.items():
            print(grid_table(titles[group], rows, sets) + "\n")
    seconds["total"] = time.perf_counter() - T0
    result["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    print(f"Runtime: {seconds['total']:.0f}s on {os.cpu_count()} CPU cores ("
          + ", ".join(f"{k} {v:.0f}s" for k, v in seconds.items() if k != "total") + ")")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        say(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
