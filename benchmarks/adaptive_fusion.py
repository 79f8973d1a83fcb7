"""Adaptive fusion against the fixed ones on the dev sets (docs/retrieval-quality.md, "Query-adaptive fusion").

For each question file: BM25 alone, dense alone, convex union 0.7 (the default), the best fixed
convex union weight for that set (0.05 grid, chosen on the set itself: an optimistic reference),
and ``fusion = "adaptive"`` with the shipped model (or ``--model``). Rankings come from
``qa.evaluation.tune.ranking_runner`` (candidate lists once, then ``Pipeline.fuse`` as
``Assistant.retrieve`` fuses them), metrics from ``ranx_scores``; +won/-lost is R@1 against the
default. Also the time ``Pipeline.fuse`` takes per question, adaptive against convex.

    OMP_NUM_THREADS=1 python benchmarks/adaptive_fusion.py --pool ../shared/data/passages_dev_pool.jsonl \\
        --index DIR --questions ../shared/data/qa_{tydiqa_id,idkmrc,facqa}_valid.jsonl --json OUT.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qa import Config  # noqa: E402
from qa.evaluation import SearchSpace, pool_assistant, read_questions, remap_gold  # noqa: E402
from qa.evaluation.metrics import ranx_scores  # noqa: E402
from qa.evaluation.pipeline import gold_ids, retrieval_settings  # noqa: E402
from qa.evaluation.tune import ranking_runner  # noqa: E402
from qa.retrieval import Candidates  # noqa: E402

K, N_CHUNKS = 10, 50
METRICS = ["recall@1", "recall@5", "mrr@10"]
GRID = [round(0.05 * i, 2) for i in range(21)]


def wins(run: dict, base: dict, qrels: dict) -> tuple[int, int]:
    first = lambda r, q: bool(r.get(q)) and r[q][0] in qrels[q]  # noqa: E731
    return (sum(first(run, q) and not first(base, q) for q in qrels),
            sum(first(base, q) and not first(run, q) for q in qrels))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pool", required=True)
    ap.add_argument("--index", default=None)
    ap.add_argument("--questions", nargs="+", required=True)
    ap.add_argument("--model", default="", help="adaptive fusion model JSON (default: the shipped one)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    cfg = Config()
    assistant, corpus = pool_assistant(args.pool, args.index, cfg)
    cur = retrieval_settings(cfg)
    out: dict = {}
    for path in args.questions:
        name = Path(path).stem
        qs = remap_gold(read_questions(path), corpus.duplicates)
        usable = [q for q in qs if q.answerable and any(a in assistant.articles for a in q.articles)]
        qrels = {q.id: gold_ids(assistant, q.articles, cfg.fold_duplicates) for q in usable}
        run = ranking_runner(assistant, usable, cfg, SearchSpace(candidates=(cfg.candidates,),
                                                                 bm25_params=()), N_CHUNKS, K)
        base = run({**cur, "mode": "hybrid", "fusion": "convex", "dense_weight": 0.7, "fusion_pool": "union"}, qrels)
        rows = {"bm25": {**cur, "mode": "bm25"}, "dense": {**cur, "mode": "dense"}}
        best = max(GRID, key=lambda w: (ranx_scores(qrels, run({**cur, "mode": "hybrid", "fusion": "convex",
                                                                 "fusion_pool": "union", "dense_weight": w}, qrels),
                                                    ["recall@1", "mrr@10"]).get("recall@1"), -abs(w - 0.7)))
        rows["convex union 0.7 (default)"] = {**cur, "mode": "hybrid", "fusion": "convex", "dense_weight": 0.7}
        rows[f"best fixed: convex union {best}"] = {**cur, "mode": "hybrid", "fusion": "convex", "dense_weight": best}
        rows["adaptive"] = {**cur, "mode": "hybrid", "fusion": "adaptive", "fusion_model": args.model}
        out[name] = {"questions": len(usable), "rows": {}}
        for label, s in rows.items():
            ranked = run(s, qrels)
            w, lost = wins(ranked, base, qrels)
            out[name]["rows"][label] = {**ranx_scores(qrels, ranked, METRICS), "won": w, "lost": lost}
        out[name]["fuse_ms"] = fuse_timing(assistant, usable[:200], cfg, args.model)
        print(f"## {name} ({len(usable)})", json.dumps(out[name], indent=1), flush=True)
    print(table(out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


def fuse_timing(assistant, questions, cfg: Config, model: str) -> dict[str, float]:
    """Median time of ``Pipeline.fuse`` per question: convex, adaptive, and the difference."""
    pipe = assistant.pipeline
    cands = []
    for q in questions:
        qq = pipe.query(q.question)
        v = pipe.embed(qq)
        cands.append(Candidates(pipe.lexical(qq, cfg.candidates), pipe.dense(v, cfg.candidates), v, None, qq.tokens))
    res = {}
    for fusion in ("convex", "adaptive", "convex", "adaptive"):  # twice: the second pass is warm
        s = cfg.replace(fusion=fusion, fusion_model=model)
        times = []
        for c in cands:
            t0 = time.perf_counter()
            pipe.fuse(c, "hybrid", s, K)
            times.append((time.perf_counter() - t0) * 1000)
        res[fusion] = float(np.median(times))
    res["added"] = res["adaptive"] - res["convex"]
    return res


def table(out: dict) -> str:
    lines = ["| set | fusion | R@1 | R@5 | MRR@10 | R@1 +won/-lost vs default |", "|---|---|---:|---:|---:|---:|"]
    for name, d in out.items():
        for label, m in d["rows"].items():
            lines.append(f"| {name} ({d['questions']}) | {label} | {m['recall@1']:.3f} | {m['recall@5']:.3f} | "
                         f"{m['mrr@10']:.3f} | +{m['won']}/-{m['lost']} |")
    means = {label: np.mean([d["rows"][label]["recall@1"] for d in out.values()])
             for label in ("bm25", "dense", "convex union 0.7 (default)", "adaptive")}
    lines += ["", "mean R@1: " + ", ".join(f"{k} {v:.4f}" for k, v in means.items())]
    lines += ["fuse ms per question (median; convex / adaptive / added): " + "; ".join(
        f"{n} {d['fuse_ms']['convex']:.3f} / {d['fuse_ms']['adaptive']:.3f} / {d['fuse_ms']['added']:+.3f}"
        for n, d in out.items())]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
