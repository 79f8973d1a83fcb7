#!/usr/bin/env python
"""Filter overhead: retrieve with and without a filter on an index of ~100k chunks of real news.

    OMP_NUM_THREADS=2 python benchmarks/filters.py --chunks 100000 \\
        --corpus ../shared/data/corpus_indosum_dev.jsonl [--questions 200] [--json benchmarks/results/filters.json]

The corpus and the vectors are made as in ``benchmarks/scale.py`` (IndoSum dev articles, perturbed
copies beyond the real ones; the first ``--real-embed`` chunks embedded with the real model, the
rest perturbed copies of real vectors), built with the default settings (at 100k chunks: bm25s and
HNSW) but without sentence vectors (retrieval does not read them). Each question is asked once to
warm up (its query vector is then cached, so the timings are the searches, fusion and hit building:
the part a filter changes), then ``--repeats`` times in each condition, interleaved; the table gives
the median per condition and its ratio to the unfiltered median, plus the one-off cost of the
first filtered query (reading every article's source and date into arrays). Every filtered hit is
checked against the filter.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

from scale import BenchEmbedder, machine, questions, read_articles, say, write_corpus  # noqa: E402


def build(a, articles: list[dict]) -> Path:
    from qa import Config, build_index
    from qa.chunking import chunk_spans

    cfg = Config(sentence_vectors=False)
    index = Path(a.work) / f"n{a.chunks}" / "index"
    if (index / "manifest.json").is_file() and not a.rebuild:
        return index
    per = np.mean([len(chunk_spans(x["text"], chunk_size=cfg.chunk_size, overlap=cfg.chunk_overlap))
                   for x in articles[:300]])
    n_art = int(np.ceil(a.chunks / (per * 0.93)))
    corpus = Path(a.work) / f"n{a.chunks}" / "corpus"
    write_corpus(articles, n_art, corpus)
    say(f"{n_art} articles written; building ...")
    shutil.rmtree(index, ignore_errors=True)
    emb = BenchEmbedder(Path(a.work) / "real_vectors.npz", a.real_embed)
    rep = build_index(corpus, index, cfg, progress=False, embedder=emb)
    say(f"built {rep.chunks} chunks in {rep.seconds:.0f}s")
    return index


def filters(assistant, rng: np.random.Generator) -> dict[str, dict]:
    """Filters of several selectivities, from the index's own metadata."""
    sources = [name for name, _ in assistant.sources()]
    arts = assistant.store.articles
    rows = list(arts.metadata()) if hasattr(arts, "metadata") else [(x.id, x.source, x.date) for x in arts.values()]
    dates = sorted(d for _, _, d in rows if d)
    ids = [aid for aid, _, _ in rows]
    mid = dates[len(dates) // 2] if dates else None
    out = {"source (4 largest outlets)": {"source": sources[:4]},
           "source (largest outlet)": {"source": sources[0]},
           "source (a small outlet)": {"source": sources[min(len(sources) - 1, 9)]},
           "date range (half of the dated)": {"date_from": mid} if mid else None,
           "source + date": {"source": sources[0], "date_to": mid} if mid else None,
           "10 article ids": {"article_ids": rng.choice(ids, 10, replace=False).tolist()}}
    return {k: v for k, v in out.items() if v}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chunks", type=int, default=100000)
    p.add_argument("--corpus", default=str(ROOT.parent / "shared" / "data" / "corpus_indosum_dev.jsonl"))
    p.add_argument("--questions", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--real-embed", type=int, default=500)
    p.add_argument("--work", default="/tmp/qa-filters")
    p.add_argument("--rebuild", action="store_true")
    p.add_argument("--exact-max", type=int, default=None,
                   help="override qa.stores.embedded_index.dense.EXACT_MAX (filters letting at most this many "
                        "chunks through are scored exactly instead of searched with an id selector)")
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "filters.json"))
    a = p.parse_args()
    import torch

    torch.set_num_threads(1)
    from qa import Assistant, Filter
    from qa.stores.embedded_index import dense

    if a.exact_max is not None:
        dense.EXACT_MAX = a.exact_max

    articles = read_articles(Path(a.corpus))
    index = build(a, articles)
    qs = questions(articles, a.questions)
    assistant = Assistant.load(index)
    rng = np.random.default_rng(3)
    conds = {"no filter": None, **filters(assistant, rng)}
    for q in qs:  # warm-up: query vectors cached, files paged in
        assistant.retrieve(q, k=10)
    t = time.perf_counter()
    first = next(v for v in conds.values() if v)
    assistant.retrieve(qs[0], k=10, filter=first)
    table_s = time.perf_counter() - t
    times: dict[str, list[float]] = {c: [] for c in conds}
    counts: dict[str, list[int]] = {c: [] for c in conds}
    outside = 0
    for _ in range(a.repeats):
        for q in qs:
            for name, f in conds.items():
                where = Filter.of(f)
                t = time.perf_counter()
                hits = assistant.retrieve(q, k=10, filter=where)
                times[name].append(time.perf_counter() - t)
                counts[name].append(len(hits))
                outside += sum(where is not None and not where.matches(h.article) for h in hits)
    from qa.encoders.cache import VectorCache

    whole: dict[str, list[float]] = {c: [] for c in conds}  # retrieve as called: the query embedded each time
    cached = assistant.pipeline._vectors
    assistant.pipeline._vectors = VectorCache(0)
    for name, f in conds.items():
        where = Filter.of(f)
        for q in qs:
            t = time.perf_counter()
            assistant.retrieve(q, k=10, filter=where)
            whole[name].append(time.perf_counter() - t)
    assistant.pipeline._vectors = cached
    recall: dict[str, float] = {}
    for name, f in conds.items():  # the dense search under the filter against exact search over its rows
        where = Filter.of(f)
        mask = assistant.store._mask(where) if where is not None else np.ones(len(assistant), dtype=bool)
        rows_ = np.flatnonzero(mask)
        got = []
        for q in qs:
            v = assistant.pipeline.embed_text(q)
            found = assistant.store.dense_search(v, 10, where)
            scores = np.concatenate([np.asarray(assistant.store.vectors[rows_[s:s + 65536]], dtype=np.float32) @ v
                                     for s in range(0, rows_.size, 65536)])
            tenth = np.sort(scores)[::-1][min(10, scores.size) - 1]  # tie-aware: identical texts share a vector
            got.append(sum(sc >= tenth - 1e-5 for _, sc in found) / min(10, scores.size))
        recall[name] = round(float(np.mean(got)), 4)
    base = float(np.median(times["no filter"]))
    base_whole = float(np.median(whole["no filter"]))
    n_chunks = len(assistant)
    rows = []
    for name, f in conds.items():
        where = Filter.of(f)
        allowed = int(assistant.store._mask(where).sum()) if where is not None else n_chunks
        med = float(np.median(times[name]))
        rows.append({"condition": name, "filter": f, "chunks_allowed": allowed,
                     "median_ms": round(med * 1000, 2), "p95_ms": round(float(np.percentile(times[name], 95)) * 1000, 2),
                     "ratio": round(med / base, 3),
                     "whole_median_ms": round(float(np.median(whole[name])) * 1000, 2),
                     "whole_ratio": round(float(np.median(whole[name])) / base_whole, 3), "dense_recall@10": recall[name], "mean_hits": round(float(np.mean(counts[name])), 2)})
    result = {"command": " ".join([Path(sys.executable).name] + sys.argv), "machine": machine(),
              "chunks": n_chunks, "articles": len(assistant.store.articles), "questions": len(qs),
              "repeats": a.repeats, "exact_max": dense.EXACT_MAX, "scale": assistant.manifest.get("scale"), "first_filter_s": round(table_s, 2),
              "hits_outside_filter": outside, "rows": rows}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"# filter overhead: {n_chunks} chunks ({result['scale']}), {len(qs)} questions x {a.repeats}, "
          f"query vectors cached, exact scoring up to {dense.EXACT_MAX} allowed chunks")
    print("| condition | chunks allowed | search median ms | p95 ms | ratio | retrieve median ms (query embedded) | ratio | "
          "dense recall@10 | mean hits (k=10) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['condition']} | {r['chunks_allowed']} | {r['median_ms']} | {r['p95_ms']} | {r['ratio']} | "
              f"{r['whole_median_ms']} | {r['whole_ratio']} | "
              f"{r['dense_recall@10']} | {r['mean_hits']} |")
    print(f"first filtered query (reads sources and dates of every article once): {table_s:.2f} s; "
          f"hits outside their filter: {outside}")


if __name__ == "__main__":
    main()
