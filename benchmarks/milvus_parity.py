"""Quality and agreement of the Milvus backend against the embedded store on a passage pool.

    python benchmarks/milvus_parity.py --pool ../shared/data/passages_dev_pool.jsonl \
        --questions ../shared/data/qa_tydiqa_id_valid.jsonl --json benchmarks/results/milvus_parity.json

Builds (or reuses) the embedded index of the pool, then milvus-lite collections for both
``milvus_analyzer`` choices (re-using the embedded index's vectors: same model, same passage texts,
so no second embedding pass), and scores every retriever per article: R@1, R@5, R@10, MRR@10,
top-5 agreement with the embedded store's same mode, and median query latency. Prints a Markdown
table and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa import Assistant, Config  # noqa: E402
from qa.encoders.sentence_transformers import Embedder  # noqa: E402
from qa.evaluation import pool_assistant, read_questions, remap_gold  # noqa: E402
from qa.evaluation.metrics import metric_names, ranx_scores  # noqa: E402
from qa.retrieval import dedupe_articles  # noqa: E402
from qa.stores.milvus_io.sync import build_milvus  # noqa: E402
from qa.stores import read_manifest  # noqa: E402


def cached_embed(index_dir: Path, embedder: Embedder):
    """An embed function that takes vectors from the embedded index (by passage-text hash)."""
    m = read_manifest(index_dir)
    data = index_dir / m["data_dir"]
    vecs = np.load(data / "vectors.npy", mmap_mode="r")
    by_hash = {}
    with open(data / "chunks.jsonl", encoding="utf-8") as f:
        for i, line in enumerate(f):
            by_hash[json.loads(line)["embed_hash"]] = i

    def run(records):
        for i in range(0, len(records), 1000):
            group = records[i:i + 1000]
            missing = [r for r in group if r["embed_hash"] not in by_hash]
            if missing:
                for r, v in zip(missing, embedder.encode_passages([r["_text"] for r in missing])):
                    r["vector"] = v
            for r in group:
                if r["embed_hash"] in by_hash:
                    r["vector"] = np.asarray(vecs[by_hash[r["embed_hash"]]])
            yield group
    return run


def score(assistant, questions, *, mode, k_chunks=30, reference=None, **kw):
    """R@1/5/10 and MRR@10 (qa.evaluation's metrics) of ``retrieve`` in ``mode``, its median latency and
    the top-5 agreement with ``reference`` (question id -> top-5 articles)."""
    runs, ms, agree = {}, [], []
    for q in questions:
        t = time.perf_counter()
        hits = assistant.retrieve(q.question, k=k_chunks, mode=mode, **kw)
        ms.append((time.perf_counter() - t) * 1000)
        runs[q.id] = dedupe_articles((h.article.id for h in hits), 10)
        if reference is not None:
            agree.append(len(set(runs[q.id][:5]) & set(reference[q.id])) / max(1, len(reference[q.id])))
    m = ranx_scores({q.id: list(q.articles) for q in questions}, runs, metric_names(10))
    out = {"R@1": m["recall@1"], "R@5": m["recall@5"], "R@10": m["recall@10"], "MRR@10": m["mrr@10"],
           "median_ms": statistics.median(ms)}
    if agree:
        out["top5_agreement"] = float(np.mean(agree))
    return out, {qid: arts[:5] for qid, arts in runs.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pool", required=True)
    ap.add_argument("--questions", required=True)
    ap.add_argument("--work", default="/tmp/qa-milvus-parity", help="scratch folder for the indexes")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    work = Path(args.work)
    embedder = Embedder("all-MiniLM-L6-v2", device="cpu")
    t = time.perf_counter()
    emb, pool = pool_assistant(args.pool, work / "embedded", embedder=embedder)
    build_emb = time.perf_counter() - t
    questions = remap_gold(read_questions(args.questions, limit=args.limit), pool.duplicates)
    questions = [q for q in questions if q.answerable and any(a in emb.articles for a in q.articles)]
    rows, results = [], {"pool": args.pool, "questions": args.questions, "n": len(questions),
                         "passages": len(emb), "embedded_build_s": round(build_emb, 1), "rows": {}}
    ref = {}
    for mode in ("bm25", "dense", "hybrid"):
        s, ref[mode] = score(emb, questions, mode=mode)
        rows.append((f"embedded {mode}", s))
    for analyzer in ("project", "standard"):
        cfg = Config(store="milvus", milvus_uri=str(work / "milvus.db"), milvus_collection=f"pool_{analyzer}",
                     milvus_analyzer=analyzer)
        t = time.perf_counter()
        rep = build_milvus(args.pool, work, cfg, corpus=pool, embed=cached_embed(emb.index_dir, embedder),
                           dimension=embedder.dimension, progress=False)
        results[f"milvus_{analyzer}_build_s"] = round(time.perf_counter() - t, 1)
        results[f"milvus_{analyzer}_chunks"] = rep.chunks
        m = Assistant.load(work, cfg, embedder=embedder)
        variants = [("bm25", {}, "bm25")]
        if analyzer == "project":
            variants += [("dense", {}, "dense"), ("hybrid", {}, "hybrid"),
                         ("hybrid", {"fusion": "rrf"}, "hybrid"),
                         ("hybrid", {"milvus_hybrid": "server", "fusion": "rrf"}, "hybrid"),
                         ("hybrid", {"milvus_hybrid": "server", "fusion": "convex"}, "hybrid")]
        else:
            variants += [("hybrid", {}, "hybrid")]
        for mode, over, refmode in variants:
            base = m.config
            m.config = base.replace(**{k: v for k, v in over.items() if k != "fusion"})
            kw = {"fusion": over["fusion"]} if "fusion" in over else {}
            s, _ = score(m, questions, mode=mode, reference=ref[refmode], **kw)
            m.config = base
            label = f"milvus ({analyzer}) {mode}" + (f" [{', '.join(f'{k}={v}' for k, v in over.items())}]"
                                                    if over else "")
            rows.append((label, s))
        m.close()
    print(f"{len(questions)} questions, pool {args.pool} ({len(emb)} passages); top 10 articles\n")
    print("| retriever | R@1 | R@5 | R@10 | MRR@10 | top-5 agreement with embedded | median ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, s in rows:
        results["rows"][label] = s
        ag = f"{s['top5_agreement']:.3f}" if "top5_agreement" in s else "-"
        print(f"| {label} | {s['R@1']:.3f} | {s['R@5']:.3f} | {s['R@10']:.3f} | {s['MRR@10']:.3f} | {ag} | "
              f"{s['median_ms']:.0f} |")
    print("\nbuild seconds: " + ", ".join(f"{k}={v}" for k, v in results.items() if k.endswith("_s")))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
