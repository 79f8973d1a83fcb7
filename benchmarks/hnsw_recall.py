#!/usr/bin/env python
"""HNSW parameters for the dense index: recall@10 against exact search, and time per query.

    python benchmarks/hnsw_recall.py --vectors /tmp/qa-scale/real_vectors.npz --n 100000 \\
        --corpus ../shared/data/corpus_indosum_dev.jsonl [--json benchmarks/results/hnsw_recall.json]

Index vectors: the cached real all-MiniLM-L6-v2 chunk vectors written by benchmarks/scale.py, then
perturbed copies of them (noise, renormalised) up to ``--n``, as in scale.py. Queries: 200 summary
sentences embedded with the real model. ``within_0.01_of_exact_top10``: share of the ANN top 10 whose cosine is at least the exact
10th best minus 0.01 (the perturbed copies form tight clusters of near-tied vectors, where
plain recall@10 counts swaps between near-equal copies as misses). Builds the index exactly as ``qa`` does
(:func:`qa.stores.embedded_index.dense.build`) for each (M, efConstruction) and sweeps efSearch.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402


def main() -> None:
    import faiss
    import torch

    from qa.encoders.sentence_transformers import Embedder
    from qa.stores.embedded_index import dense as faiss_files
    from scale import questions, read_articles

    p = argparse.ArgumentParser()
    p.add_argument("--vectors", required=True)
    p.add_argument("--n", type=int, default=100000)
    p.add_argument("--corpus", default=str(ROOT.parent / "shared" / "data" / "corpus_indosum_dev.jsonl"))
    p.add_argument("--configs", default="32:64,16:40", help="M:efConstruction pairs")
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "hnsw_recall.json"))
    a = p.parse_args()
    torch.set_num_threads(1)
    real = np.load(a.vectors)["vectors"].astype(np.float32)
    rng = np.random.default_rng(7)
    base = real[rng.integers(0, len(real), a.n - len(real))]
    fake = base + rng.normal(0, 0.5 / np.sqrt(real.shape[1]), base.shape).astype(np.float32)
    vecs = np.concatenate([real, fake / np.linalg.norm(fake, axis=1, keepdims=True)]).astype(np.float32)
    qv = Embedder("all-MiniLM-L6-v2").encode(questions(read_articles(Path(a.corpus)), 200))
    sims = qv @ vecs.T
    exact = np.argsort(-sims, axis=1)[:, :10]
    tenth = sims[np.arange(len(qv)), exact[:, 9]]
    out = {"n": a.n, "real_vectors": len(real), "queries": len(qv), "machine_load": os.getloadavg(), "runs": []}
    for cfg in a.configs.split(","):
        m, efc = map(int, cfg.split(":"))
        for dtype in ("float16",):
            t = time.perf_counter()
            index = faiss_files.build(vecs.astype(np.float16), kind="hnsw", dtype=dtype, hnsw_m=m, ef_construction=efc)
            build_s = time.perf_counter() - t
            for ef in (32, 64, 128, 256, 512, 1024):
                index.hnsw.efSearch = ef
                times, found, near = [], [], []
                for j in range(len(qv)):
                    t = time.perf_counter()
                    _, ids = index.search(qv[j:j + 1], 10)
                    times.append(time.perf_counter() - t)
                    found.append(len(set(ids[0].tolist()) & set(exact[j].tolist())) / 10)
                    near.append(float(np.mean(sims[j, ids[0]] >= tenth[j] - 0.01)))
                row = {"M": m, "efConstruction": efc, "dtype": dtype, "build_s": round(build_s, 1), "efSearch": ef,
                       "recall@10": round(float(np.mean(found)), 4),
                       "within_0.01_of_exact_top10": round(float(np.mean(near)), 4),
                       "median_ms": round(float(np.median(times)) * 1000, 3),
                       "p95_ms": round(float(np.percentile(times, 95)) * 1000, 3)}
                out["runs"].append(row)
                print(json.dumps(row), flush=True)
    flat = faiss.IndexFlatIP(vecs.shape[1])
    flat.add(vecs)
    times = []
    for j in range(len(qv)):
        t = time.perf_counter()
        flat.search(qv[j:j + 1], 10)
        times.append(time.perf_counter() - t)
    out["flat"] = {"median_ms": round(float(np.median(times)) * 1000, 3), "p95_ms": round(float(np.percentile(times, 95)) * 1000, 3)}
    print(json.dumps(out["flat"]))
    Path(a.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
