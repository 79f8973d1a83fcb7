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
    out = {"source (largest outlet)": {"source": sources[0]},
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
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "filters.json"))
    a = p.parse_args()
    import torch

    torch.set_num_threads(1)
    from qa import Assistant, Filter

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
    base = float(np.median(times["no filter"]))
    n_chunks = len(assistant)
    rows = []
    for name, f in conds.items():
        where = Filter.of(f)
        allowed = int(assistant.store._mask(where).sum()) if where is not None else n_chunks
        med = float(np.median(times[name]))
        rows.append({"condition": name, "filter": f, "chunks_allowed": allowed,
                     "median_ms": round(med * 1000, 2), "p95_ms": round(float(np.percentile(times[name], 95)) * 1000, 2),
                     "ratio": round(med / base, 3), "mean_hits": round(float(np.mean(counts[name])), 2)})
    result = {"command": " ".join([Path(sys.executable).name] + sys.argv), "machine": machine(),
              "chunks": n_chunks, "articles": len(assistant.store.articles), "questions": len(qs),
              "repeats": a.repeats, "scale": assistant.manifest.get("scale"), "first_filter_s": round(table_s, 2),
              "hits_outside_filter": outside, "rows": rows}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"# filter overhead: {n_chunks} chunks ({result['scale']}), {len(qs)} questions x {a.repeats}, "
          "query vectors cached")
    print("| condition | chunks allowed | median ms | p95 ms | ratio to no filter | mean hits (k=10) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['condition']} | {r['chunks_allowed']} | {r['median_ms']} | {r['p95_ms']} | {r['ratio']} | "
              f"{r['mean_hits']} |")
    print(f"first filtered query (reads sources and dates of every article once): {table_s:.2f} s; "
          f"hits outside their filter: {outside}")


if __name__ == "__main__":
    main()
