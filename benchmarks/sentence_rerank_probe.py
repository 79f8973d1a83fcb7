"""Probe: would re-ranking the fused head by each passage's best stored sentence lift R@1?

    python benchmarks/sentence_rerank_probe.py --pool ../shared/data/passages_dev_pool.jsonl \\
        --train ../shared/data/qa_{tydiqa_id,idkmrc,facqa}_train.jsonl \\
        --valid ../shared/data/qa_{tydiqa_id,idkmrc,facqa}_valid.jsonl [--per-file 700] [--depth 20] [--json OUT]

For each answerable question with a gold passage: the default hybrid's fused list (as ``retrieve``
fuses it), its first ``--depth`` passages, and per passage the fused score, its rank, the dense
cosine, the BM25 score, and the cosines of the question with the passage's sentences as the index
stored them at build time (the best, the second). A logistic regression (``qa.answer.selector.fit``)
over those features, fitted on ``--per-file`` questions of each ``--train`` file (label: the
passage's article is the gold one), re-orders the head of every ``--valid`` question's list; the
table gives R@1 (first distinct article) before and after, and with a fixed mix ``fused + a * best
sentence cosine / 0.1``. Nothing here changes the product: it measures whether the stage is worth
building (docs/retrieval-quality.md).
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

NAMES = ("fused", "fused_gap", "dense_gap", "bm25_share", "sentence_gap", "sentence", "second_minus_best",
         "inverse_rank", "dense", "best_sentence")


def passages(assistant, question: str, depth: int) -> list[dict]:
    cfg, pipe, store = assistant.config, assistant.pipeline, assistant.store
    q = pipe.query(question, expand_abbreviations=cfg.expand_abbreviations)
    c = pipe.candidates(q, "hybrid", cfg, max(cfg.candidates, depth))
    ranked = list(pipe.fuse(c, "hybrid", cfg, depth))[:depth]
    ids = [d for d, _ in ranked]
    lex = dict(c.lexical)
    dense = store.dense_scores(c.vector, ids) or [dict(c.dense).get(d, 0.0) for d in ids]
    out = []
    for (d, s), art, dc in zip(ranked, store.article_ids(ids), dense):
        sv = store.sentence_vectors(d)
        cos = sorted((sv[1] @ c.vector).tolist(), reverse=True) if sv is not None and len(sv[1]) else [0.0]
        out.append({"fused": float(s), "dense": float(dc), "bm25": float(lex.get(d, 0.0)), "s1": cos[0],
                    "s2": cos[1] if len(cos) > 1 else cos[0], "article": art})
    return out


def features(cands: list[dict]) -> np.ndarray:
    f = np.array([[c["fused"], c["dense"], c["bm25"], c["s1"], c["s2"]] for c in cands], float)
    return np.column_stack([f[:, 0], f[:, 0] - f[:, 0].max(), f[:, 1] - f[:, 1].max(),
                            f[:, 2] / max(f[:, 2].max(), 1e-9), f[:, 3] - f[:, 3].max(), f[:, 3], f[:, 4] - f[:, 3],
                            1.0 / np.arange(1, len(f) + 1), f[:, 1], (f[:, 3] >= f[:, 3].max()).astype(float)])


def r_at_1(recs: list[dict], score) -> dict[str, float]:
    per: dict[str, list[int]] = {}
    for r in recs:
        ok = 0
        if r["cands"]:
            ok = int(r["cands"][int(np.argmax(score(r)))]["article"] in r["gold"])
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
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    from qa.answer.selector import fit
    from qa.evaluation import read_questions
    from qa.evaluation.pool import pool_assistant

    assistant, _ = pool_assistant(args.pool, args.index)
    recs: dict[str, list[dict]] = {"train": [], "valid": []}
    for part, paths in (("train", args.train), ("valid", args.valid)):
        for path in paths:
            qs = [q for q in read_questions(path) if q.answerable and q.articles]
            if part == "train":
                random.Random(7).shuffle(qs)
                qs = qs[:args.per_file]
            for q in qs:
                recs[part].append({"file": Path(path).name, "gold": list(q.articles),
                                   "cands": passages(assistant, q.question, args.depth)})
    train = [r for r in recs["train"] if r["cands"]]
    x = np.vstack([features(r["cands"]) for r in train])
    y = np.concatenate([[c["article"] in r["gold"] for c in r["cands"]] for r in train]).astype(float)
    model = fit(x, y, l2=1.0)
    learned = lambda r: model.probability(features(r["cands"]))  # noqa: E731
    rows = {"fused (today)": lambda r: -np.arange(len(r["cands"])), "learned re-rank": learned}
    for a in (0.2, 0.3):
        rows[f"fused + {a} * best sentence / 0.1"] = (
            lambda r, a=a: np.array([c["fused"] + a * c["s1"] / 0.1 for c in r["cands"]]))
    files = list(dict.fromkeys(r["file"] for r in recs["valid"]))
    out = {"depth": args.depth, "train_questions": len(train), "features": list(NAMES),
           "weights": np.round(model.weights, 3).tolist(), "valid": {}, "train": {}}
    print(f"R@1, {len(train)} training questions, head of {args.depth}")
    print("| ranking | " + " | ".join(files) + " |")
    print("|---|" + "---:|" * len(files))
    for name, score in rows.items():
        v = r_at_1(recs["valid"], score)
        out["valid"][name] = v
        out["train"][name] = r_at_1(train, score)
        print(f"| {name} | " + " | ".join(f"{v[f]:.3f}" for f in files) + " |")
    print("weights (standardised):", dict(zip(NAMES, out["weights"])))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
