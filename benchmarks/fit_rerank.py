"""Fit the re-rank model (qa/rerank.py) on labelled questions over a pool index, and report R@1.

    python benchmarks/fit_rerank.py --pool ../shared/data/passages_dev_pool.jsonl \\
        --train ../shared/data/qa_{tydiqa_id,idkmrc,facqa}_train.jsonl \\
        --valid ../shared/data/qa_{tydiqa_id,idkmrc,facqa}_valid.jsonl \\
        [--per-file 700] [--depth 20] [--out qa/fusion_models/rerank.json] [--json OUT]

Each answerable question with a gold passage is retrieved as ``retrieve`` does with the index's
settings, re-ranking off (``Pipeline.convex_fuse``); the features of the first ``--depth`` passages
come from ``Pipeline.rerank_features``, the very function the re-ranker runs on at query time. A
logistic regression (``qa.linear.fit_logistic``, L2 1.0) is fitted on ``--per-file`` questions of
each ``--train`` file (label: the passage belongs to the gold article), and R@1 (first distinct
article) of the ``--valid`` questions is printed with and without it. ``--out`` writes the model.
With ``fold_duplicates`` (the default) articles and gold are stories (``Pipeline.story``), as
``qa eval`` counts them: a near-duplicate of the gold article is labelled as the gold.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def head(assistant, question: str, depth: int):
    """(article ids of the head, its features) for one question; (ids, None) when nothing to re-rank."""
    cfg, pipe = assistant.config.replace(rerank="off"), assistant.pipeline
    q = pipe.query(question, expand_abbreviations=cfg.expand_abbreviations)
    c = pipe.candidates(q, "hybrid", cfg, max(cfg.candidates, depth))
    ranked, dn = pipe.convex_fuse(c, cfg, depth)
    ranked = list(ranked)[:depth]
    x = pipe.rerank_features(ranked, c, dn, depth)
    ids = assistant.store.article_ids([d for d, _ in ranked])
    # a near-duplicate of the gold is the same story when retrieval folds them (qa eval counts it so)
    return ([pipe.story(a) for a in ids] if cfg.fold_duplicates else ids), x


def r_at_1(rows, model=None) -> dict[str, float]:
    per: dict[str, list[int]] = {}
    for r in rows:
        ok = 0
        if r["articles"]:
            i = 0 if model is None or r["x"] is None else int(np.argmax(model.probability(r["x"])))
            ok = int(r["articles"][i] in r["gold"])
        per.setdefault(r["file"], []).append(ok)
    return {f: round(float(np.mean(v)), 3) for f, v in per.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pool", required=True)
    ap.add_argument("--index", default=None)
    ap.add_argument("--train", nargs="+", required=True)
    ap.add_argument("--valid", nargs="+", required=True)
    ap.add_argument("--per-file", type=int, default=700, help="training questions per --train file (default 700)")
    ap.add_argument("--depth", type=int, default=20, help="passages re-ranked (default 20)")
    ap.add_argument("--out", default=None, help="write the fitted model here")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    from qa.evaluation import read_questions
    from qa.evaluation.pipeline import gold_ids
    from qa.evaluation.pool import pool_assistant
    from qa.linear import fit_logistic
    from qa.rerank import FEATURES, Reranker

    assistant, _ = pool_assistant(args.pool, args.index)
    rows: dict[str, list[dict]] = {"train": [], "valid": []}
    for part, paths in (("train", args.train), ("valid", args.valid)):
        for path in paths:
            qs = [q for q in read_questions(path) if q.answerable and q.articles]
            if part == "train":
                random.Random(7).shuffle(qs)
                qs = qs[:args.per_file]
            for q in qs:
                arts, x = head(assistant, q.question, args.depth)
                gold = set(gold_ids(assistant, q.articles, assistant.config.fold_duplicates))
                rows[part].append({"file": Path(path).name, "gold": gold, "articles": arts, "x": x})
    train = [r for r in rows["train"] if r["x"] is not None]
    x = np.vstack([r["x"] for r in train])
    y = np.concatenate([[a in r["gold"] for a in r["articles"][:len(r["x"])]] for r in train]).astype(float)
    model = Reranker(*fit_logistic(x, y, l2=1.0), depth=args.depth)
    files = list(dict.fromkeys(r["file"] for r in rows["valid"]))
    out = {"depth": args.depth, "train_questions": len(train), "features": list(FEATURES),
           "valid": {"fused": r_at_1(rows["valid"]), "re-ranked": r_at_1(rows["valid"], model)},
           "train": {"fused": r_at_1(train), "re-ranked": r_at_1(train, model)}}
    print(f"R@1, {len(train)} training questions, head of {args.depth}")
    print("| ranking | " + " | ".join(files) + " |")
    print("|---|" + "---:|" * len(files))
    for name, v in out["valid"].items():
        print(f"| {name} | " + " | ".join(f"{v[f]:.3f}" for f in files) + " |")
    print("weights (standardised):", {n: round(float(w), 3) for n, w in zip(FEATURES, model.weights)})
    if args.out:
        model.meta = {"data": sorted({r["file"] for r in train}), "questions": len(train), "per_file": args.per_file,
                      "pool": Path(args.pool).name, "figures": out}
        print("wrote", model.save(args.out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
