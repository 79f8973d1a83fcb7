#!/usr/bin/env python
"""Retrieval and answers before and after ``qa adapt``: one table per model, JSON for docs/adaptation.md.

For each model (the base model and adapted folders): index the dev passage pool with it (one article
per passage, as ``qa eval --pool``), then on each dev set's answerable questions measure dense and
hybrid (the shipped convex fusion, dense weight 0.2) Recall@1/5/10 and MRR@10 with
``qa.evaluation.evaluate``; re-check the fusion weight with ``qa.evaluation.tune`` (hybrid convex,
dense weight 0.1..0.7, tuned on one half of each set and checked on the other, nothing written);
and, on the five seed articles in ``corpus/``, the answer accuracy (answer or quotes contain the gold
answer) on ``tests/fixtures/answer_questions.jsonl`` and hybrid top-5 retrieval on
``tests/fixtures/retrieval_questions.jsonl``.

    HF_HUB_OFFLINE=1 python benchmarks/adaptation.py --data ../shared/data \\
        --model all-MiniLM-L6-v2 --model models/minilm-id-sup --model models/minilm-id-ict \\
        [--work /tmp/qa-adapt-bench] [--json benchmarks/results/adaptation.json] [--threads 1]

Train the adapted models first, e.g. (see docs/adaptation.md for the exact runs measured)::

    qa adapt --pairs ../shared/data/qa_tydiqa_id_train.jsonl ../shared/data/qa_facqa_train.jsonl \\
        --out models/minilm-id-sup --max-seq-length 128
    qa adapt --corpus ../shared/data/passages_dev_pool.jsonl --max-pairs 2000 --max-seq-length 128 \\
        --out models/minilm-id-ict

Pool indexes are kept in ``--work`` per model (reused when up to date). A training time is read
from each adapted folder's ``adaptation.json``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Optional

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa import Assistant  # noqa: E402
from qa.config import Config  # noqa: E402
from qa.evaluation import (SearchSpace, evaluate, load_questions, pool_assistant, read_questions,  # noqa: E402
                           remap_gold, tune)

SETS = {"tydiqa": "qa_tydiqa_id_valid.jsonl", "idkmrc": "qa_idkmrc_valid.jsonl", "facqa": "qa_facqa_valid.jsonl"}
METRICS = ("recall@1", "recall@5", "recall@10", "mrr@10")
log = logging.getLogger("qa")


def _label(model: str) -> str:
    return Path(model).name if Path(model).is_dir() else model


def sample_pool(data: Path, size: int, work: Path, seed: int = 13) -> Path:
    """A smaller pool: every passage that answers a valid question, plus a seeded random sample of
    the other passages up to ``size`` in all (written to ``work``)."""
    gold = set()
    for fname in SETS.values():
        for q in read_questions(data / fname):
            gold.update(q.articles)
    rows = [json.loads(line) for line in open(data / "passages_dev_pool.jsonl", encoding="utf-8") if line.strip()]
    keep = [r for r in rows if r["context_id"] in gold]
    others = [r for r in rows if r["context_id"] not in gold]
    keep += random.Random(seed).sample(others, max(0, min(len(others), size - len(keep))))
    out = work / f"pool-sample-{size}.jsonl"
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep), encoding="utf-8")
    return out


def measure(model: str, data: Path, work: Path, pool_file: Path, reuse: Optional[Path] = None) -> dict:
    cfg = Config(model=model, device="cpu")
    tag = hashlib.sha256(str(Path(model).resolve() if Path(model).is_dir() else model).encode()).hexdigest()[:8]
    index_dir = work / f"{pool_file.stem}-{_label(model)}-{tag}"
    if reuse is not None and not index_dir.exists() and (reuse / "manifest.json").is_file():
        shutil.copytree(reuse, index_dir)  # its stored vectors are reused where the model is the same
    t0 = time.perf_counter()
    assistant, pool = pool_assistant(pool_file, index_dir, cfg, progress=sys.stderr.isatty())
    out: dict = {"model": model, "pool": str(pool_file), "passages": len(pool.articles),
                 "chunks": len(assistant), "index": str(index_dir), "index_seconds": round(time.perf_counter() - t0, 1),
                 "sets": {}}
    card = Path(model) / "adaptation.json"
    if card.is_file():
        c = json.loads(card.read_text(encoding="utf-8"))
        out["training"] = {"seconds": c["seconds"], "pairs": c["pairs"], "mode": c["mode"], "settings": c["settings"],
                           "device": c["device"]}
    for name, fname in SETS.items():
        questions = remap_gold(read_questions(data / fname), pool.duplicates)
        report = evaluate(assistant, questions, k=10, answers=False)
        row = {r: {m: round(report.retrieval[r].metrics[m], 4) for m in METRICS} for r in ("bm25", "dense", "hybrid")}
        row["n"] = report.scored
        space = SearchSpace(modes=("hybrid",), dense_weights=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7), rrf_ks=(60,),
                            candidates=(100,), bm25_params=((cfg.bm25_k1, cfg.bm25_b),))
        t = tune(assistant, questions, metric="mrr@10", space=space, write=False)
        row["tuned"] = {"dense_weight": t.after.get("dense_weight"), "mode": t.after.get("mode"),
                        "heldout_before": {m: round(t.before_heldout[m], 4) for m in METRICS},
                        "heldout_after": {m: round(t.after_heldout[m], 4) for m in METRICS},
                        "would_write": t.written or t.reason}
        out["sets"][name] = row
        log.warning("%s %s: dense R@1 %.3f, hybrid R@1 %.3f (tuned w=%s)", _label(model), name,
                    row["dense"]["recall@1"], row["hybrid"]["recall@1"], row["tuned"]["dense_weight"])
    seed = Assistant.build(ROOT / "corpus", work / f"seed-{_label(model)}-{tag}", cfg, progress=False)
    single = [r for r in map(json.loads, open(ROOT / "tests/fixtures/answer_questions.jsonl", encoding="utf-8"))
              if "question" in r]  # follow-up conversations ("turns") are left out
    ans = evaluate(seed, load_questions(single), k=5, answers=True)
    ret = evaluate(seed, read_questions(ROOT / "tests/fixtures/retrieval_questions.jsonl"), k=5, answers=False)
    out["seed"] = {"answers_contain_gold": ans.answers.contains_gold, "answer_questions": ans.answers.n_with_gold,
                   "hybrid_recall@1": ret.retrieval["hybrid"].metrics["recall@1"],
                   "hybrid_recall@5": ret.retrieval["hybrid"].metrics["recall@5"],
                   "dense_recall@5": ret.retrieval["dense"].metrics["recall@5"], "retrieval_questions": ret.scored}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def table(results: list[dict]) -> str:
    lines = ["| model | set | retriever | R@1 | R@5 | R@10 | MRR@10 |", "|---|---|---|---:|---:|---:|---:|"]
    for r in results:
        for s, row in r["sets"].items():
            for ret in ("dense", "hybrid"):
                v = row[ret]
                lines.append(f"| {_label(r['model'])} | {s} ({row['n']}) | {ret} | " +
                             " | ".join(f"{v[m]:.3f}" for m in METRICS) + " |")
    lines += ["", "| model | set | tuned dense weight | held-out MRR@10 at 0.2 | at tuned |", "|---|---|---:|---:|---:|"]
    for r in results:
        for s, row in r["sets"].items():
            t = row["tuned"]
            lines.append(f"| {_label(r['model'])} | {s} | {t['dense_weight']} | {t['heldout_before']['mrr@10']:.3f} | "
                         f"{t['heldout_after']['mrr@10']:.3f} |")
    lines += ["", "| model | training s | seed answers contain gold | seed hybrid R@5 | seed dense R@5 |",
              "|---|---:|---:|---:|---:|"]
    for r in results:
        s = r["seed"]
        lines.append(f"| {_label(r['model'])} | {r.get('training', {}).get('seconds', '-')} | "
                     f"{s['answers_contain_gold']:.3f} of {s['answer_questions']} | {s['hybrid_recall@5']:.3f} | "
                     f"{s['dense_recall@5']:.3f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, type=Path, help="folder with passages_dev_pool.jsonl and qa_*_valid.jsonl")
    ap.add_argument("--model", action="append", required=True, help="model name or adapted folder (repeat)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/qa-adapt-bench"), help="pool indexes go here")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: faster on a busy machine)")
    ap.add_argument("--pool-sample", type=int, default=None, metavar="N",
                    help="measure over a smaller pool: the valid sets' gold passages plus random others, N in all "
                         "(embedding the full pool once per model takes long on a small CPU)")
    ap.add_argument("--reuse-index", type=Path, default=None,
                    help="an index of the pool built with the base model, whose vectors the base model reuses")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    pool_file = (sample_pool(args.data, args.pool_sample, args.work) if args.pool_sample
                 else args.data / "passages_dev_pool.jsonl")
    results = []
    for m in args.model:
        results.append(measure(m, args.data, args.work, pool_file, args.reuse_index))
        if args.json:  # after each model, so that a long run keeps what it measured
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "threads": args.threads,
                                             "results": results}, ensure_ascii=False, indent=2) + "\n",
                                 encoding="utf-8")
    print(table(results))
    if args.json:
        print(f"\n-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
