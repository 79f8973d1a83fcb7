"""ANN quality of a built index against exact search over its own stored vectors.

    python benchmarks/ann_check.py --index /tmp/qa-scale-1m/n1000000/index \
        --questions /tmp/qa-scale-1m/questions.json --json benchmarks/results/ann_1m.json
    # the same vectors in a fresh fp16 HNSW with another efConstruction (M=32):
    python benchmarks/ann_check.py ... --rebuild-efc 200 --json benchmarks/results/ann_1m_efc200.json

For each efSearch: recall@10 against exact inner product, the share of ANN hits whose cosine is
within 0.01 of the exact 10th hit's (near-ties count as found), and whether the top hit is within
0.01 of the exact top hit. ``--questions`` is a JSON list of question strings (scale.py writes
one into its work folder); they are embedded with the index's model.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import faiss
import numpy as np


def exact_top(Q: np.ndarray, V, k: int) -> tuple[np.ndarray, np.ndarray]:
    best = np.full((len(Q), k), -np.inf, dtype=np.float32)
    bid = np.zeros((len(Q), k), dtype=np.int64)
    for s in range(0, V.shape[0], 100_000):
        sc = Q @ np.asarray(V[s:s + 100_000], dtype=np.float32).T
        top = np.argpartition(-sc, k, axis=1)[:, :k]
        cand = np.concatenate([best, np.take_along_axis(sc, top, 1)], 1)
        cid = np.concatenate([bid, top + s], 1)
        o = np.argsort(-cand, 1)[:, :k]
        best, bid = np.take_along_axis(cand, o, 1), np.take_along_axis(cid, o, 1)
    return best, bid


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--index", required=True)
    p.add_argument("--questions", required=True)
    p.add_argument("--ef", default="128,512,1024,2048,4096")
    p.add_argument("--rebuild-efc", type=int, default=0, help="build a new fp16 HNSW with this efConstruction")
    p.add_argument("--m", type=int, default=32)
    p.add_argument("--json")
    a = p.parse_args()
    from qa.encoders.sentence_transformers import Embedder

    d = Path(a.index)
    man = json.loads((d / "manifest.json").read_text())
    data = d / man["data_dir"]
    qs = json.loads(Path(a.questions).read_text())
    Q = np.asarray(Embedder(man["model"]["name"]).encode(qs), dtype=np.float32)
    V = np.load(data / "vectors.npy", mmap_mode="r")
    k = 10
    t = time.perf_counter()
    best, bid = exact_top(Q, V, k)
    out: dict = {"n": int(V.shape[0]), "questions": len(Q), "exact_ms_per_query": round((time.perf_counter() - t) * 1000 / len(Q), 2),
                 "exact_top1_minus_top10_cosine_median": round(float(np.median(best[:, 0] - best[:, -1])), 4), "ef": {}}
    if a.rebuild_efc:
        idx = faiss.IndexHNSWSQ(V.shape[1], faiss.ScalarQuantizer.QT_fp16, a.m, faiss.METRIC_INNER_PRODUCT)
        idx.hnsw.efConstruction = a.rebuild_efc
        t = time.perf_counter()
        idx.train(np.asarray(V[:10000], dtype=np.float32))
        for s in range(0, V.shape[0], 100_000):
            idx.add(np.asarray(V[s:s + 100_000], dtype=np.float32))
        out.update(M=a.m, efConstruction=a.rebuild_efc, build_s=round(time.perf_counter() - t, 1))
        hnsw = idx.hnsw
    else:
        idx = faiss.read_index(str(data / "dense.faiss"))
        if not hasattr(faiss.downcast_index(idx), "hnsw"):
            raise SystemExit(f"{data / 'dense.faiss'} is not an HNSW index (exact search needs no check); "
                             "use --rebuild-efc N to try HNSW on these vectors")
        hnsw = faiss.downcast_index(idx).hnsw
        out.update(M=None, efConstruction=int(hnsw.efConstruction), build_s=None)
    for ef in map(int, a.ef.split(",")):
        hnsw.efSearch = ef
        t = time.perf_counter()
        _, I = idx.search(Q, k)
        ms = (time.perf_counter() - t) * 1000 / len(Q)
        cos = np.einsum("qkd,qd->qk", np.asarray(V[I.ravel()], dtype=np.float32).reshape(len(Q), k, -1), Q)
        out["ef"][ef] = {"recall@10": round(float(np.mean([len(set(I[i]) & set(bid[i])) / k for i in range(len(Q))])), 4),
                         "within_0.01_of_exact_10th": round(float(np.mean(cos >= best[:, -1:] - 0.01)), 4),
                         "top1_within_0.01": round(float(np.mean(np.abs(cos[:, 0] - best[:, 0]) <= 0.01)), 4),
                         "ms_per_query": round(ms, 3)}
    print("| efSearch | recall@10 | hits within 0.01 of exact 10th | top-1 within 0.01 | ms/query (batched) |")
    print("|---:|---:|---:|---:|---:|")
    for ef, r in out["ef"].items():
        print(f"| {ef} | {r['recall@10']} | {r['within_0.01_of_exact_10th']} | {r['top1_within_0.01']} | {r['ms_per_query']} |")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
