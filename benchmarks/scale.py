#!/usr/bin/env python
"""Scale benchmark: build, load and query article-qa indexes of 10k to 1M chunks of real Indonesian news.

    OMP_NUM_THREADS=2 python benchmarks/scale.py --chunks 10000,100000,1000000 \\
        --corpus ../shared/data/corpus_indosum_dev.jsonl [--questions 200] [--json benchmarks/results/scale.json]
    python benchmarks/scale.py --quick      # 10k and 100k, fewer real embeddings: CI-sized

Corpus: the IndoSum dev articles (3.4k real news articles, ~13k chunks). Sizes beyond them re-use
the articles with a documented perturbation: copy ``j`` of an article keeps its sentences but
replaces ~15% of the words by words drawn from the corpus's own word stream (so word statistics
stay news-like), drops one sentence in ten, and gets the id ``<doc>~<j>``. Every copy is a
distinct text, so cleaning, chunking, BM25 and the dense index do real work on each.

Embedding: the first ``--real-embed`` chunks are embedded with the real model (the default, multilingual-e5-small)
and cached in ``--work``; every other chunk gets a *perturbed copy of a real vector* (a real
chunk vector picked by the chunk's text hash, plus Gaussian noise, renormalised, cosine ~0.9 to
its base). The output says how many vectors were real. Embedding a million chunks on 2 CPU cores
would take many hours; the pipeline's own cost over the model is measured separately on real
embeddings (``pipeline overhead``: a real build of ``--overhead-chunks`` chunks against raw
``model.encode`` of the same texts). Every other stage is measured for real at every size.

Each size is built, then loaded and queried in fresh processes (peak RAM per phase). Queries are
distinct first sentences of the articles' human summaries (the IndoSum news-scale recipe),
asked after warm-up in hybrid, bm25 and dense modes, with per-stage timings, and ANN recall@10
against exact search (brute force over the stored vectors) for several HNSW efSearch values.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

T0 = time.perf_counter()
EF_VALUES = (64, 128, 256, 512, 1024)
SHARD = 20000  # articles per corpus file


def say(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict:
    mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    return {"cores": os.cpu_count(), "ram_gb": round(mem / 1024 ** 2, 1), "python": platform.python_version(),
            "platform": platform.platform(), "load_avg": os.getloadavg(), "shared": "busy shared 2-core machine"}


# -- corpus ---------------------------------------------------------------------------------------
def read_articles(path: Path) -> list[dict]:
    seen, out = set(), []
    for line in open(path, encoding="utf-8"):
        r = json.loads(line)
        if r["doc_id"] in seen or not r.get("text"):
            continue
        seen.add(r["doc_id"])
        out.append({"id": r["doc_id"], "text": r["text"], "date": r.get("date"), "source": r.get("source"),
                    "summary": r.get("summary") or ""})
    return out


def perturb(text: str, rng: np.random.Generator, words: np.ndarray) -> str:
    paras = []
    for para in text.split("\n\n"):
        sents = [x for x in re.split(r"(?<=[.!?])\s+", para) if x]
        if not sents:
            continue
        keep = rng.random(len(sents)) >= 0.1
        toks = " ".join(x for x, k in zip(sents, keep) if k).split(" ") if keep.any() else sents[0].split(" ")
        swap = np.flatnonzero(rng.random(len(toks)) < 0.15)
        picks = words[rng.integers(0, len(words), len(swap))]
        for i, w in zip(swap.tolist(), picks.tolist()):
            if toks[i].isalpha():
                toks[i] = w
        paras.append(" ".join(toks))
    return "\n\n".join(paras)


def write_corpus(articles: list[dict], n_articles: int, folder: Path, seed: int = 13) -> int:
    """``n_articles`` articles (the real ones first, then perturbed copies) into JSONL files of
    ``SHARD`` articles each (the ingester reads JSON files up to 256 MiB). Re-used when present."""
    done = folder / f".done-{n_articles}-{seed}"
    if done.is_file():
        return n_articles
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    words = np.array([w for a in articles[:500] for w in a["text"].split() if w.isalpha()])
    f = None
    for i in range(n_articles):
        if i % SHARD == 0:
            if f:
                f.close()
            f = open(folder / f"articles-{i // SHARD:03d}.jsonl", "w", encoding="utf-8")
        base = articles[i % len(articles)]
        copy = i // len(articles)
        text = base["text"] if copy == 0 else perturb(base["text"], rng, words)
        row = {"id": base["id"] if copy == 0 else f"{base['id']}~{copy}", "text": text,
               "date": base["date"], "source": base["source"]}
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
    if f:
        f.close()
    done.write_text("ok")
    return n_articles


def questions(articles: list[dict], n: int) -> list[str]:
    out, seen = [], set()
    for a in articles:
        s = re.split(r"(?<=[.!?])\s+", a["summary"].strip())[0]
        q = " ".join(s.split()[:16])
        if len(q) > 20 and q not in seen:
            seen.add(q)
            out.append(q)
        if len(out) >= n:
            break
    return out


# -- embedding ------------------------------------------------------------------------------------
class BenchEmbedder:
    """Real embeddings for the first ``real_budget`` new texts (cached on disk), perturbed copies of
    real vectors for the rest (see the module docstring). Counts both."""

    def __init__(self, cache_file: Path, real_budget: int, *, device: str = "auto"):
        from qa.config import DEFAULT_MODEL
        from qa.encoders import make_encoder

        self.real = make_encoder(DEFAULT_MODEL, device=device)
        self.name, self.dimension, self.device = self.real.name, self.real.dimension, self.real.device
        self.cache_file, self.budget = cache_file, real_budget
        self.cache: dict[str, np.ndarray] = {}
        if cache_file.is_file():
            z = np.load(cache_file)
            self.cache = dict(zip(z["keys"].tolist(), z["vectors"]))
        self.n_real = self.n_cached = self.n_fake = 0
        self.real_seconds = 0.0
        self._base = None

    def encode_passages(self, texts, *, progress: bool = False) -> np.ndarray:
        return self.encode(texts, progress=progress)

    def encode(self, texts, *, progress: bool = False) -> np.ndarray:
        keys = [hashlib.sha256(t.encode("utf-8", "replace")).hexdigest()[:24] for t in texts]
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        new = [i for i, k in enumerate(keys) if k not in self.cache]
        real = new[: max(0, self.budget - len(self.cache))]
        if real:
            t = time.perf_counter()
            vecs = self.real.encode_passages([texts[i] for i in real])
            self.real_seconds += time.perf_counter() - t
            for i, v in zip(real, vecs):
                self.cache[keys[i]] = v
            self.n_real += len(real)
            self.save()
        fake = set(new) - set(real)
        base = np.stack(list(self.cache.values())) if fake else None
        for i, k in enumerate(keys):
            if i in fake:
                h = int(k, 16)
                rng = np.random.default_rng(h % (2 ** 32))
                v = base[h % len(base)] + rng.normal(0, 0.5 / np.sqrt(self.dimension), self.dimension)
                out[i] = v / np.linalg.norm(v)
            else:
                out[i] = self.cache[k]
        self.n_fake += len(fake)
        self.n_cached += len(texts) - len(new)
        return out

    def save(self) -> None:
        keys = list(self.cache)
        np.savez(self.cache_file, keys=np.array(keys), vectors=np.stack([self.cache[k] for k in keys]))


# -- phases (each size runs them in fresh processes) -----------------------------------------------
def phase_build(a) -> dict:
    from qa import Config, build_index

    emb = BenchEmbedder(Path(a.work) / "real_vectors.npz", a.real_embed)
    index = Path(a.index)
    shutil.rmtree(index, ignore_errors=True)
    t = time.perf_counter()
    rep = build_index(a.corpus_dir, index, Config(), progress=False, embedder=emb)
    total = time.perf_counter() - t
    disk = sum(p.stat().st_size for p in index.rglob("*") if p.is_file())
    st = rep.stages or {}
    per_s = {k: round(rep.chunks / v, 1) if v > 0.01 else None for k, v in st.items()}
    counts = json.loads((index / "manifest.json").read_text())["counts"]
    dup = {"seconds": round(st.get("near-duplicates", 0.0), 2),
           "pct_of_build": round(100 * st.get("near-duplicates", 0.0) / total, 2),
           **{k: counts.get(k) for k in ("duplicate_groups", "duplicate_articles", "near_dup_sketched")}}
    return {"articles": rep.articles, "chunks": rep.chunks, "seconds_total": round(total, 2), "near_duplicates": dup,
            "stages_s": {k: round(v, 2) for k, v in st.items()}, "stages_chunks_per_s": per_s,
            "peak_ram_mb": round(peak_mb()), "disk_mb": round(disk / 2 ** 20, 1),
            "vectors": {"real_now": emb.n_real, "real_cached": emb.n_cached, "perturbed": emb.n_fake},
            "device": emb.device, "scale": json.loads((index / "manifest.json").read_text())["scale"],
            "sentences": {k: json.loads((index / "manifest.json").read_text())["counts"].get(k)
                          for k in ("sentences", "sentences_embedded")}}


def _pct(xs, p):
    return round(float(np.percentile(np.array(xs) * 1000, p)), 2) if xs else None


def phase_query(a) -> dict:
    from qa import Assistant

    import torch

    from qa.retrieval import Candidates
    from qa.stores import read_manifest
    from qa.stores.embedded_index.files import check_files

    threads = int(os.environ.get("QA_BENCH_THREADS", "1"))  # 1: single queries on a busy machine
    torch.set_num_threads(threads)
    qs = json.loads(Path(a.questions_file).read_text())
    t = time.perf_counter()
    check_files(Path(a.index), read_manifest(a.index), verify=True)  # the checksum part of a load
    hash_s = time.perf_counter() - t
    rss0 = rss_mb()
    t = time.perf_counter()
    assistant = Assistant.load(a.index)
    load_s = time.perf_counter() - t
    load_rss = rss_mb() - rss0
    t = time.perf_counter()
    emb = assistant.embedder
    model_s = time.perf_counter() - t
    for q in qs[:10]:  # warm-up (not timed)
        for mode in ("hybrid", "bm25", "dense"):
            assistant.retrieve(q, k=10, mode=mode)
    res: dict = {"load_s": round(load_s, 2), "load_checksums_s": round(hash_s, 2), "load_rss_mb": round(load_rss), "model_load_s": round(model_s, 2),
                 "questions": len(qs), "torch_threads": threads}
    for mode in ("hybrid", "bm25", "dense"):
        times = []
        for q in qs:
            t = time.perf_counter()
            assistant.retrieve(q, k=10, mode=mode)
            times.append(time.perf_counter() - t)
        res[mode] = {"median_ms": _pct(times, 50), "p95_ms": _pct(times, 95)}
    stage: dict[str, list] = {"bm25 search": [], "query embedding": [], "dense search": [], "fusion": []}
    qvecs = []
    pipe, cfg = assistant.pipeline, assistant.config
    for q in qs:
        query = pipe.query(q)
        t = time.perf_counter(); lex = pipe.lexical(query, cfg.candidates)
        t1 = time.perf_counter(); v = emb.encode_queries([q])[0]
        t2 = time.perf_counter(); den = pipe.dense(v, cfg.candidates)
        t3 = time.perf_counter(); pipe.fuse(Candidates(lex, den, v), "hybrid", cfg, 10)
        t4 = time.perf_counter()
        for name, d in zip(stage, (t1 - t, t2 - t1, t3 - t2, t4 - t3)):
            stage[name].append(d)
        qvecs.append(v)
    res["stages"] = {k: {"median_ms": _pct(v, 50), "p95_ms": _pct(v, 95)} for k, v in stage.items()}
    res["serving_rss_mb"] = round(rss_mb())
    res["peak_ram_mb"] = round(peak_mb())
    res["ann"] = ann_recall(assistant, np.stack(qvecs))
    return res


def ann_recall(assistant, qv: np.ndarray) -> dict:
    """recall@10 of the dense index against exact inner product over the stored vectors."""
    vecs = assistant.store.vectors
    n = vecs.shape[0]
    best_s = np.full((len(qv), 10), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(qv), 10), dtype=np.int64)
    for s in range(0, n, 100_000):
        block = np.asarray(vecs[s:s + 100_000], dtype=np.float32) @ qv.T  # (block, q)
        for j in range(len(qv)):
            cand_s = np.concatenate([best_s[j], block[:, j]])
            cand_i = np.concatenate([best_i[j], np.arange(s, s + block.shape[0])])
            top = np.argpartition(-cand_s, 9)[:10]
            best_s[j], best_i[j] = cand_s[top], cand_i[top]
    exact = [set(r.tolist()) for r in best_i]
    index = assistant.store.faiss_index
    out = {"kind": type(index).__name__}
    settings = EF_VALUES if hasattr(index, "hnsw") else (None,)
    for ef in settings:
        if ef is not None:
            index.hnsw.efSearch = ef
        t = time.perf_counter()
        _, ids = index.search(qv.astype(np.float32), 10)
        ms = (time.perf_counter() - t) * 1000 / len(qv)
        rec = float(np.mean([len(exact[j] & set(ids[j].tolist())) / 10 for j in range(len(qv))]))
        out[f"ef={ef}" if ef else "exact"] = {"recall@10": round(rec, 4), "ms_per_query": round(ms, 3)}
    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = assistant.config.hnsw_ef_search
    return out


def phase_overhead(a) -> dict:
    """Real build of a small real corpus against raw model.encode of the same texts."""
    from qa import Config, build_index
    from qa.encoders import make_encoder
    from qa.ingest import load_corpus
    from qa.stores.passages import chunk_article, index_text

    cfg = Config()
    emb = make_encoder(cfg.model, device=cfg.device, batch_size=cfg.batch_size)
    corpus = load_corpus(a.corpus_dir, progress=False)
    texts = [index_text(a_.text[s:e], a_, cfg) for a_ in corpus.articles for s, e in chunk_article(a_, cfg)]
    emb.encode_passages(texts[:32])  # warm-up
    index = Path(a.index)
    raws, totals, embeds = [], [], []
    for _ in range(2):  # alternate, keep the faster of each: the machine is shared
        t = time.perf_counter()
        emb.encode_passages(texts)
        raws.append(time.perf_counter() - t)
        shutil.rmtree(index, ignore_errors=True)
        t = time.perf_counter()
        rep = build_index(a.corpus_dir, index, cfg, progress=False, embedder=emb)
        totals.append(time.perf_counter() - t)
        embeds.append(rep.stages["embed"])
    raw, total, embed = min(raws), min(totals), min(embeds)
    return {"chunks": len(texts), "raw_encode_s": round(raw, 2), "raw_chunks_per_s": round(len(texts) / raw, 1),
            "pipeline_embed_s": round(embed, 2), "pipeline_embed_chunks_per_s": round(len(texts) / embed, 1),
            "build_total_s": round(total, 2), "non_embedding_s": round(total - embed, 2),
            "overhead_pct": round(100 * (total - raw) / raw, 1),
            "runs": {"raw_s": [round(x, 2) for x in raws], "build_s": [round(x, 2) for x in totals]},
            "device": emb.device}


def child(phase: str, **kw) -> dict:
    # builds run niced (the machine is shared); queries run at the caller's priority, being timed
    nice = ["nice", "-n", "10"] if phase in ("build", "overhead") else []
    args = nice + [sys.executable, __file__, "--phase", phase] + [f"--{k.replace('_', '-')}={v}" for k, v in kw.items()]
    out = subprocess.run(args, check=True, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(result: dict) -> str:
    rows = ["| chunks | engines | articles | build s | chunks/s: clean, chunk+tok, embed, dense, lexical, write | near-dup s (% of build; groups) | peak RAM build MB | disk MB | load s | serving RSS MB | hybrid med/p95 ms | bm25 med/p95 | dense med/p95 | stages med ms: bm25, q-embed, dense, rescoring | ANN recall@10 (ms) | vectors real/perturbed |",
            "|" + "---|" * 16]
    for r in result["sizes"]:
        b, q = r["build"], r["query"]
        cps = b["stages_chunks_per_s"]
        order = ("read+clean", "chunk+tokenize", "embed", "dense index", "lexical index", "write")
        st = q["stages"]
        ann = "; ".join(f"{k} {v['recall@10']} ({v['ms_per_query']})" for k, v in q["ann"].items() if k != "kind")
        v = b["vectors"]
        nd = b.get("near_duplicates")
        dup = f"{nd['seconds']} ({nd['pct_of_build']}%; {nd['duplicate_groups']})" if nd else "-"
        rows.append(
            f"| {b['chunks']:,} | {'/'.join(b['scale'].values())} | {b['articles']:,} | {b['seconds_total']} | {', '.join(str(cps.get(k)) for k in order)} "
            f"| {dup} | {b['peak_ram_mb']} | {b['disk_mb']} | {q['load_s']} | {q['serving_rss_mb']} "
            f"| {q['hybrid']['median_ms']}/{q['hybrid']['p95_ms']} | {q['bm25']['median_ms']}/{q['bm25']['p95_ms']} "
            f"| {q['dense']['median_ms']}/{q['dense']['p95_ms']} "
            f"| {', '.join(str(st[k]['median_ms']) for k in st)} | {q['ann']['kind']}: {ann} "
            f"| {v['real_now'] + v['real_cached']}/{v['perturbed']} |")
    o = result.get("overhead")
    if o:
        rows.append("")
        rows.append(f"Pipeline overhead (real embeddings, {o['chunks']} chunks, {o['device']}): raw model.encode "
                    f"{o['raw_encode_s']} s ({o['raw_chunks_per_s']} chunks/s); build_index total {o['build_total_s']} s, "
                    f"its embed stage {o['pipeline_embed_s']} s ({o['pipeline_embed_chunks_per_s']} chunks/s), everything else "
                    f"{o.get('non_embedding_s')} s: overhead {o['overhead_pct']}% over raw encoding (faster of 2 runs each).")
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chunks", default="10000,100000,1000000", help="comma-separated target sizes")
    p.add_argument("--quick", action="store_true", help="10k and 100k, 500 real embeddings, 200 questions")
    p.add_argument("--corpus", default=str(ROOT.parent / "shared" / "data" / "corpus_indosum_dev.jsonl"))
    p.add_argument("--questions", type=int, default=200)
    p.add_argument("--real-embed", type=int, default=2000, help="chunks embedded with the real model (cached)")
    p.add_argument("--overhead-chunks", type=int, default=600, help="size of the real-embedding overhead build (0: skip)")
    p.add_argument("--work", default="/tmp/qa-scale", help="scratch folder (corpora, indexes, vector cache)")
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "scale.json"))
    p.add_argument("--keep", action="store_true", help="keep the built indexes")
    p.add_argument("--phase", help=argparse.SUPPRESS)
    p.add_argument("--index", help=argparse.SUPPRESS)
    p.add_argument("--corpus-dir", help=argparse.SUPPRESS)
    p.add_argument("--questions-file", help=argparse.SUPPRESS)
    p.add_argument("--table-from", nargs="+", metavar="JSON", help="only print the table of earlier result files")
    a = p.parse_args()
    if a.table_from:
        runs = [json.loads(Path(f).read_text()) for f in a.table_from]
        merged = {**runs[0], "sizes": sorted((s for r in runs for s in r["sizes"]), key=lambda s: s["target"])}
        merged["overhead"] = next((r["overhead"] for r in runs if r.get("overhead")), None)
        print(table(merged))
        return
    if a.phase:
        fn = {"build": phase_build, "query": phase_query, "overhead": phase_overhead}[a.phase]
        print(json.dumps(fn(a)))
        return
    if a.quick:
        a.chunks = "10000,100000"
        a.real_embed = min(a.real_embed, 500)
        a.overhead_chunks = min(a.overhead_chunks, 200)
    sizes = [int(x) for x in a.chunks.split(",")]
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    articles = read_articles(Path(a.corpus))
    from qa import Config
    from qa.chunking import chunk_spans

    cfg = Config()
    sample = articles[:300]
    per_article = sum(len(chunk_spans(x["text"], chunk_size=cfg.chunk_size, overlap=cfg.chunk_overlap))
                      for x in sample) / len(sample)
    qs = questions(articles, a.questions)
    qfile = work / "questions.json"
    qfile.write_text(json.dumps(qs, ensure_ascii=False))
    say(f"{len(articles)} real articles, ~{per_article:.2f} chunks each; {len(qs)} questions")
    result = {"command": " ".join([Path(sys.executable).name] + sys.argv), "machine": machine(),
              "corpus": a.corpus, "real_articles": len(articles), "questions": len(qs),
              "embedding": f"first {a.real_embed} chunks embedded with multilingual-e5-small (cached in {work}); "
                           "the rest are perturbed copies of real vectors (noise, renormalised)",
              "perturbation": "articles beyond the real ones are copies with ~15% of words replaced by corpus "
                              "words and 10% of sentences dropped", "sizes": []}
    if a.overhead_chunks:
        d = work / "overhead"
        write_corpus(articles, max(1, int(a.overhead_chunks / per_article)), d / "corpus")
        say("pipeline overhead with real embeddings ...")
        result["overhead"] = child("overhead", index=d / "index", corpus_dir=d / "corpus")
        say(json.dumps(result["overhead"]))
    for n in sizes:
        d = work / f"n{n}"
        n_art = int(np.ceil(n / (per_article * (1.0 if n <= per_article * len(articles) else 0.93))))
        write_corpus(articles, n_art, d / "corpus")
        say(f"size {n}: {n_art} articles written; building ...")
        b = child("build", index=d / "index", corpus_dir=d / "corpus", work=work, real_embed=a.real_embed)
        say(f"built: {json.dumps(b)}")
        q = child("query", index=d / "index", questions_file=qfile)
        say(f"queried: {json.dumps(q)}")
        result["sizes"].append({"target": n, "build": b, "query": q})
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(result, indent=2, ensure_ascii=False))
        if not a.keep:
            shutil.rmtree(d, ignore_errors=True)
    print(f"# article-qa scale benchmark ({result['machine']['cores']} cores, {result['machine']['ram_gb']} GB RAM)")
    print(f"command: {result['command']}")
    print(f"NOTE: {result['embedding']}; {result['perturbation']}.")
    print(table(result))
    say(f"wrote {a.json}")


if __name__ == "__main__":
    main()
