#!/usr/bin/env python
"""Retrieval quality of article-qa on the Indonesian dev sets (BM25, dense, hybrid).

Indexes the dev passage pool as one article per passage (article id = ``context_id``, no title,
raw passage text), asks every answerable question of each dev set and counts a hit when a
retrieved passage belongs to the question's ``context_id``. Passages may be split into several
chunks, so 50 chunks are retrieved, de-duplicated by article (first occurrence kept), and the
top 10 articles are scored with ranx: Recall@1/5/10, MRR@10, nDCG@10.

    HF_HUB_OFFLINE=1 python benchmarks/retrieval_quality.py \\
        --pool /work/shared/data/passages_dev_pool.jsonl \\
        --questions /work/shared/data/qa_tydiqa_id_valid.jsonl \\
                    /work/shared/data/qa_idkmrc_valid.jsonl \\
                    /work/shared/data/qa_facqa_valid.jsonl \\
        [--index-dir /tmp/qa-bench-index] [--json out.json] [--grid] [--set key=value ...] [--threads 1]

Indexes are kept under ``--index-dir``, one sub-folder per build setting (chunking/analyzer),
and reused between runs; embeddings are cached by text in ``--index-dir`` so that a new
analyzer setting never re-embeds and a new chunk size embeds only the chunks that changed.

``--grid`` also measures the settings that decide the defaults: (a) analyzer (stopwords x
stemming), (b) fusion (RRF, and convex with dense weight 0.0..0.5, each at 50/100/200 candidates),
(c) chunk size (400/700/1000; sizes not in ``--hybrid-chunk-sizes`` are measured for BM25 only, to
save embedding time), (d) BM25 k1/b, (e) query abbreviation expansion, (f) two fusion variants the
library does not have (proposals), (g) candidate defaults against BM25 with paired wins/losses.
The main table uses ``Assistant.retrieve`` itself; the grid takes each question's BM25 and dense
candidate lists from ``Assistant.retrieve`` once and fuses them with ``qa.fusion`` exactly as
``Assistant.retrieve`` does (checked against the main table on every run).

On a busy 2-core machine pass ``--threads 1``: torch's default two threads made single-query
encoding about ten times slower there (see docs/retrieval-quality.md).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

from qa.analyzer import Analyzer  # noqa: E402
from qa.assistant import MAX_QUERY_CHARS, Assistant  # noqa: E402
from qa.encoders.sentence_transformers import Embedder  # noqa: E402
from qa.config import Config  # noqa: E402
from qa.fusion import convex, minmax, rrf  # noqa: E402
from qa.ingest import Corpus, content_hash  # noqa: E402
from qa.stores import build_index
from qa.stores.passages import chunk_article, index_text, text_hash  # noqa: E402
from qa.types import Article, Chunk  # noqa: E402

CHUNKS_RETRIEVED = 50  # chunks asked for, before de-duplicating by article
TOP_ARTICLES = 10  # articles scored
METRICS = ["recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10"]
HEADERS = ["R@1", "R@5", "R@10", "MRR@10", "nDCG@10"]
DENSE_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
EXPERIMENT_WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5)
CANDIDATES = (50, 100, 200)
LEX_DEPTH = 1000  # BM25 list depth kept per question (the union-scoring experiment needs scores beyond top 200)
DEN_DEPTH = 200  # dense list depth kept per question (>= max(CANDIDATES))
CHUNK_SIZES = (400, 700, 1000)  # grid (c); chunk_overlap stays at the base setting (default 1)
BM25_PARAMS = ((1.2, 0.5), (1.2, 0.75), (1.5, 0.5), (1.5, 0.75))

T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


# -- data ---------------------------------------------------------------------------------------
def load_pool(path: Path) -> Corpus:
    """One Article per pool passage: id = context_id, raw text, no title."""
    articles = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            articles.append(Article(id=row["context_id"], title=None, text=row["text"], source=row.get("source"),
                                    content_hash=content_hash(row["text"])))
    return Corpus(articles=articles, files=1)


def set_name(path: Path) -> str:
    name = path.stem
    if name.startswith("qa_"):
        name = name[3:]
    for suffix in ("_valid", "_dev", "_test"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def load_questions(paths: Sequence[Path], article_ids: set[str]) -> "OrderedDict[str, list[tuple[str, str, str]]]":
    """Answerable questions per dev set: (question id, question, gold context_id)."""
    sets: OrderedDict[str, list[tuple[str, str, str]]] = OrderedDict()
    for p in paths:
        qs = []
        with open(p, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                row = json.loads(line)
                if row.get("is_impossible"):
                    continue
                if row["context_id"] not in article_ids:
                    log(f"warning: {p.name} {row['id']}: context {row['context_id']} is not in the pool; skipped")
                    continue
                qs.append((str(row["id"]), row["question"], row["context_id"]))
        sets[set_name(p)] = qs
    return sets


# -- embeddings cached across builds ------------------------------------------------------------
class CachingEmbedder:
    """An :class:`Embedder` with a text-keyed cache kept on disk across builds and runs.

    ``build_index`` only caches embeddings of the index it replaces; keeping one cache for all the
    benchmark's indexes means analyzer variants never re-embed and chunk-size variants embed only
    the chunks that differ. Queries are cached too (each question is embedded once per run).
    """

    def __init__(self, model: str, cache_path: Path, *, device: str = "auto", batch_size: int = 32):
        self.inner = Embedder(model, device=device, batch_size=batch_size)
        self.name = self.inner.name
        self.dimension = self.inner.dimension
        self.path = cache_path
        self.cache: dict[str, np.ndarray] = {}
        self._dirty = False
        self.encoded = 0
        if cache_path.is_file():
            try:
                with np.load(cache_path) as z:
                    if z["vectors"].shape[1] == self.dimension:
                        self.cache = dict(zip(z["keys"].tolist(), z["vectors"]))
            except Exception as e:  # a broken cache only costs time
                log(f"ignoring unreadable embedding cache {cache_path}: {e}")

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        keys = [text_hash(t) for t in texts]
        todo: dict[str, str] = {}
        for k, t in zip(keys, texts):
            if k not in self.cache:
                todo.setdefault(k, t)
        if todo:
            vecs = self.inner.encode(list(todo.values()), progress=progress)
            self.cache.update(zip(todo.keys(), vecs))
            self.encoded += len(todo)
            self._dirty = True
        if not keys:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.ascontiguousarray(np.stack([self.cache[k] for k in keys]), dtype=np.float32)

    def save(self) -> None:
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".tmp-{os.getpid()}.npz")
        keys = list(self.cache)
        np.savez(tmp, keys=np.array(keys), vectors=np.stack([self.cache[k] for k in keys]).astype(np.float32))
        os.replace(tmp, self.path)
        self._dirty = False


# -- indexes --------------------------------------------------------------------------------------
class Bench:
    def __init__(self, pool: Path, corpus: Corpus, index_root: Path, embedder: CachingEmbedder,
                 questions: "OrderedDict[str, list[tuple[str, str, str]]]"):
        self.pool = pool
        self.corpus = corpus
        self.index_root = index_root
        self.embedder = embedder
        self.questions = questions
        self.qrels = {name: {qid: {ctx: 1} for qid, _, ctx in qs} for name, qs in questions.items()}
        self._assistants: dict[str, Assistant] = {}
        self._lists: dict[tuple, list] = {}
        self.builds: list[dict] = []

    def index_dir(self, cfg: Config) -> Path:
        return self.index_root / (f"cs{cfg.chunk_size}-ov{cfg.chunk_overlap}-sw{int(cfg.stopwords)}"
                                  f"-st{int(cfg.stemming)}-ti{int(cfg.title_in_index)}")

    def assistant(self, cfg: Config) -> Assistant:
        """Build (or reuse) the index for ``cfg``'s build settings, load it with ``cfg``."""
        d = self.index_dir(cfg)
        key = f"{d}|{json.dumps(cfg.to_dict(), sort_keys=True)}"
        if key in self._assistants:
            return self._assistants[key]
        t = time.perf_counter()
        before = self.embedder.encoded
        rep = build_index(str(self.pool), d, cfg, corpus=self.corpus, embedder=self.embedder,
                          progress=sys.stderr.isatty())
        self.embedder.save()
        secs = time.perf_counter() - t
        info = {"index": d.name, "chunks": rep.chunks, "up_to_date": rep.skipped,
                "embedded": self.embedder.encoded - before, "seconds": round(secs, 1)}
        if not any(b["index"] == d.name for b in self.builds):
            self.builds.append(info)
        log(f"index {d.name}: {rep.chunks} chunks, "
            + ("up to date" if rep.skipped else f"built in {secs:.0f}s, {info['embedded']} chunks embedded"))
        asst = Assistant.load(d, cfg, verify=False, embedder=self.embedder)
        self._assistants[key] = asst
        return asst

    # -- retrieval --------------------------------------------------------------------------
    @staticmethod
    def top_articles(asst: Assistant, chunk_ids: Iterable[int]) -> list[str]:
        out: list[str] = []
        for c in chunk_ids:
            a = asst.chunks[c].article_id
            if a not in out:
                out.append(a)
                if len(out) == TOP_ARTICLES:
                    break
        return out

    def bm25_only(self, cfg: Config) -> Assistant:
        """An :class:`Assistant` over ``cfg``'s chunks with BM25 only (an empty dense index), built
        in memory with the chunking, index text and analyzer that ``build_index`` uses: for chunk
        sizes that are not worth embedding. Only ``mode="bm25"`` is meaningful on it."""
        import faiss

        analyzer = Analyzer(stopwords=cfg.stopwords, stemming=cfg.stemming)
        chunks, tokens = [], []
        for art in self.corpus.articles:
            for s, e in chunk_article(art, cfg):
                chunks.append(Chunk(id=len(chunks), article_id=art.id, start=s, end=e, text=art.text[s:e]))
                tokens.append(analyzer.tokens(index_text(chunks[-1].text, art, cfg)))
        log(f"BM25-only chunks for chunk_size={cfg.chunk_size}: {len(chunks)} (not embedded)")
        manifest = {"analyzer": analyzer.settings(), "config": cfg.to_dict()}
        return Assistant(Path("(in memory)"), manifest, {a.id: a for a in self.corpus.articles}, chunks, tokens,
                         faiss.IndexFlatIP(self.embedder.dimension), cfg, self.embedder)

    def run_assistant(self, asst: Assistant, name: str, **kw) -> dict[str, list[str]]:
        """Articles per question via ``Assistant.retrieve`` itself."""
        run = {}
        for qid, q, _ in self.questions[name]:
            hits = asst.retrieve(q, k=CHUNKS_RETRIEVED, **kw)
            run[qid] = self.top_articles(asst, (h.chunk.id for h in hits))
        return run

    def lists(self, asst: Assistant, name: str) -> list[tuple[list, list]]:
        """(BM25 list, dense list) per question, taken from ``Assistant.retrieve`` in ``bm25`` and
        ``dense`` mode (so query handling, e.g. abbreviation expansion, is the library's own):
        BM25 to LEX_DEPTH (for the union-scoring experiment), dense to max(CANDIDATES)."""
        key = (id(asst), name)
        if key not in self._lists:
            out = []
            has_dense = asst.dense.index.ntotal > 0
            for _, q, _ in self.questions[name]:
                lex = [(h.chunk.id, h.bm25_score) for h in
                       asst.retrieve(q, k=LEX_DEPTH, mode="bm25", candidates=LEX_DEPTH)]
                den = [(h.chunk.id, h.dense_score) for h in
                       asst.retrieve(q, k=DEN_DEPTH, mode="dense", candidates=DEN_DEPTH)] if has_dense else []
                out.append((lex, den))
            self._lists[key] = out
        return self._lists[key]

    def run_fused(self, asst: Assistant, name: str, mode: str, cfg: Config) -> dict[str, list[str]]:
        """Articles per question, fusing cached candidate lists as ``Assistant.retrieve`` does."""
        depth = max(cfg.candidates, CHUNKS_RETRIEVED)
        if depth > DEN_DEPTH:
            raise ValueError(f"candidates {cfg.candidates} > {DEN_DEPTH}: raise DEN_DEPTH")
        run = {}
        for (qid, _, _), (lex, den) in zip(self.questions[name], self.lists(asst, name)):
            lex, den = lex[:depth], den[:depth]
            if mode == "bm25":
                fused = lex
            elif mode == "dense":
                fused = den
            elif cfg.fusion == "rrf":
                fused = rrf([lex, den], k=cfg.rrf_k)
            else:
                fused = convex(lex, den, dense_weight=cfg.dense_weight)
            run[qid] = self.top_articles(asst, (d for d, _ in fused[:CHUNKS_RETRIEVED]))
        return run

    def run_experimental(self, asst: Assistant, name: str, variant: str, weight: float,
                         candidates: int) -> dict[str, list[str]]:
        """Fusion variants that the library does not have (proposals), for comparison.

        ``union``: the union of both candidate lists, every candidate scored by *both* retrievers
        (dense: cosine with the stored chunk vector; BM25: its score, 0 beyond the top LEX_DEPTH),
        min-max over the union, convex mix. ``rerank``: the BM25 candidates only, re-scored the same
        way (dense never adds a passage; it only reorders BM25's). In the library's ``convex`` a
        passage missing from one list scores 0 for that retriever instead.
        """
        key = ("vectors", id(asst))
        if key not in self._lists:
            self._lists[key] = asst.dense.index.reconstruct_n(0, asst.dense.index.ntotal)
        vectors = self._lists[key]
        depth = max(candidates, CHUNKS_RETRIEVED)
        run = {}
        for (qid, q, _), (lex, den) in zip(self.questions[name], self.lists(asst, name)):
            qv = asst.embedder.encode([q.strip()[:MAX_QUERY_CHARS]])[0]
            lex_all = dict(lex)
            cands = [d for d, _ in lex[:depth]]
            if variant == "union":
                cands = list(dict.fromkeys(cands + [d for d, _ in den[:depth]]))
            if not cands:
                run[qid] = []
                continue
            dense_scores = vectors[cands] @ qv
            a = minmax([(d, lex_all.get(d, 0.0)) for d in cands])
            b = minmax(list(zip(cands, dense_scores.tolist())))
            fused = sorted(((d, (1 - weight) * a[d] + weight * b[d]) for d in cands), key=lambda x: (-x[1], x[0]))
            run[qid] = self.top_articles(asst, (d for d, _ in fused[:CHUNKS_RETRIEVED]))
        return run

    def wins_losses(self, name: str, run: dict[str, list[str]], baseline: dict[str, list[str]]) -> tuple[int, int]:
        """Questions whose gold passage is first in ``run`` but not in ``baseline``, and vice versa."""
        gold = {qid: ctx for qid, _, ctx in self.questions[name]}
        top = {qid: (run.get(qid) or [None])[0] == gold[qid] for qid in gold}
        base = {qid: (baseline.get(qid) or [None])[0] == gold[qid] for qid in gold}
        return sum(top[q] and not base[q] for q in gold), sum(base[q] and not top[q] for q in gold)

    def evaluate(self, name: str, run: dict[str, list[str]]) -> dict[str, float]:
        from ranx import Qrels, Run, evaluate

        qrels = self.qrels[name]
        scored = {}
        for qid in qrels:
            arts = run.get(qid) or []
            # strictly decreasing scores so ranx keeps our order; a placeholder for empty results
            scored[qid] = {a: float(TOP_ARTICLES - i) for i, a in enumerate(arts)} or {"__no_result__": 0.0}
        res = evaluate(Qrels(qrels), Run(scored), METRICS, make_comparable=True)
        res = {m: float(res[m]) for m in METRICS}
        # cross-check ranx with the plain definitions (one relevant passage per question)
        ranks = [(run.get(qid) or []).index(next(iter(rel))) + 1 if next(iter(rel)) in (run.get(qid) or []) else None
                 for qid, rel in qrels.items()]
        n = len(ranks)
        mine = {"recall@1": sum(r == 1 for r in ranks if r) / n,
                "mrr@10": sum(1 / r for r in ranks if r) / n,
                "ndcg@10": sum(1 / np.log2(r + 1) for r in ranks if r) / n}
        for m, v in mine.items():
            if abs(v - res[m]) > 1e-6:
                log(f"warning: ranx {m}={res[m]:.6f} but direct computation gives {v:.6f} ({name})")
        res["n"] = n
        return res


# -- tables -------------------------------------------------------------------------------------
def fmt(v: float) -> str:
    return f"{v:.3f}"


def main_table(name: str, rows: "OrderedDict[str, dict]") -> str:
    n = next(iter(rows.values()))["n"]
    lines = [f"**{name}** ({n} answerable questions)", "",
             "| retriever | " + " | ".join(HEADERS) + " |", "|---|" + "---:|" * len(HEADERS)]
    for label, m in rows.items():
        lines.append(f"| {label} | " + " | ".join(fmt(m[k]) for k in METRICS) + " |")
    return "\n".join(lines)


def grid_table(title: str, rows: "OrderedDict[str, dict[str, dict]]", sets: Sequence[str],
               baseline: Optional[dict[str, dict]] = None) -> str:
    """Rows of settings; per dev set R@1 and MRR@10, then the macro mean over the sets.

    With ``baseline`` (BM25 per set), a last column says whether the row is at least as good as
    BM25 alone in R@1 and MRR@10 on every set.
    """
    head = ["setting"]
    for s in sets:
        head += [f"{s} R@1", f"{s} MRR"]
    head += ["mean R@1", "mean MRR"]
    if baseline:
        head.append(">= bm25 on all")
    lines = [f"**{title}**", "", "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for label, per in rows.items():
        cells = [label]
        for s in sets:
            cells += [fmt(per[s]["recall@1"]), fmt(per[s]["mrr@10"])]
        cells += [fmt(np.mean([per[s]["recall@1"] for s in sets])), fmt(np.mean([per[s]["mrr@10"] for s in sets]))]
        if baseline:
            ok = all(per[s]["recall@1"] >= baseline[s]["recall@1"] - 1e-9 and
                     per[s]["mrr@10"] >= baseline[s]["mrr@10"] - 1e-9 for s in sets)
            cells.append("yes" if ok else "no")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def parse_set(items: Sequence[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set wants key=value, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


def describe(cfg: Config) -> str:
    return (f"chunk_size={cfg.chunk_size}, chunk_overlap={cfg.chunk_overlap}, stopwords={cfg.stopwords}, "
            f"stemming={cfg.stemming}, fusion={cfg.fusion}, dense_weight={cfg.dense_weight}, "
            f"candidates={cfg.candidates}, rrf_k={cfg.rrf_k}, bm25_k1={cfg.bm25_k1}, bm25_b={cfg.bm25_b}")


# -- main ---------------------------------------------------------------------------------------
def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pool", type=Path, required=True, help="passages_dev_pool.jsonl")
    ap.add_argument("--questions", type=Path, nargs="+", required=True, help="qa_*.jsonl dev sets")
    ap.add_argument("--index-dir", type=Path, default=Path("/tmp/qa-bench-index"),
                    help="folder for the benchmark's indexes and embedding cache (kept between runs)")
    ap.add_argument("--json", type=Path, help="write all figures here")
    ap.add_argument("--grid", action="store_true", help="also measure the settings that decide the defaults")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="change a Config default for the main table and as the grid's base (repeatable)")
    ap.add_argument("--chunk-sizes", type=_ints, default=CHUNK_SIZES, metavar="N,N,...",
                    help="chunk sizes for grid (c); default 400,700,1000")
    ap.add_argument("--hybrid-chunk-sizes", type=_ints, default=(700, 1000), metavar="N,N,...",
                    help="chunk sizes of grid (c) that are fully built and embedded (dense and hybrid rows); "
                         "the others are measured for BM25 only; default 700,1000 (400 would embed ~7.9k "
                         "new chunks, ~15 min on 2 busy cores)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch intra-op threads (0: torch's default); 1 is much faster on a busy 2-core machine")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", message=".*unsafe cast.*")  # ranx/numba, harmless
    try:
        from numba.core.errors import NumbaTypeSafetyWarning

        warnings.filterwarnings("ignore", category=NumbaTypeSafetyWarning)
    except ImportError:  # pragma: no cover
        pass
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    base = Config().replace(**parse_set(args.overrides))
    corpus = load_pool(args.pool)
    questions = load_questions(args.questions, {a.id for a in corpus.articles})
    sets = list(questions)
    log(f"pool: {len(corpus.articles)} passages; questions: "
        + ", ".join(f"{s} {len(q)}" for s, q in questions.items()))
    args.index_dir.mkdir(parents=True, exist_ok=True)
    embedder = CachingEmbedder(base.model, args.index_dir / f"embeddings-{base.model.replace('/', '_')}.npz",
                               device=base.device, batch_size=base.batch_size)
    bench = Bench(args.pool, corpus, args.index_dir, embedder, questions)
    result: dict = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch_threads": __import__("torch").get_num_threads()},
        "settings": base.to_dict(), "chunks_retrieved": CHUNKS_RETRIEVED, "top_articles": TOP_ARTICLES,
        "questions": {s: len(q) for s, q in questions.items()},
    }
    timings: dict[str, float] = {}

    # -- main table: Assistant.retrieve with the (possibly overridden) defaults ----------------
    t = time.perf_counter()
    asst = bench.assistant(base)
    timings["index"] = time.perf_counter() - t
    t = time.perf_counter()
    variants = OrderedDict([
        ("bm25", dict(mode="bm25")),
        ("dense", dict(mode="dense")),
        (f"hybrid (convex, w={base.dense_weight}, cand={base.candidates})",
         dict(mode="hybrid", fusion="convex", dense_weight=base.dense_weight, candidates=base.candidates)),
        (f"hybrid-rrf (k={base.rrf_k}, cand={base.candidates})",
         dict(mode="hybrid", fusion="rrf", candidates=base.candidates)),
    ])
    main: OrderedDict[str, OrderedDict[str, dict]] = OrderedDict()
    for s in sets:
        main[s] = OrderedDict((label, bench.evaluate(s, bench.run_assistant(asst, s, **kw)))
                              for label, kw in variants.items())
    timings["main"] = time.perf_counter() - t
    result["main"] = main
    print(f"## Retrieval quality ({describe(base)})\n")
    print(f"Top {TOP_ARTICLES} passages (from {CHUNKS_RETRIEVED} chunks, de-duplicated by passage).\n")
    for s in sets:
        print(main_table(s, main[s]) + "\n")
    log(f"main table done in {timings['main']:.0f}s")

    # the grid's fast path must agree with Assistant.retrieve
    t = time.perf_counter()
    labels = list(variants)
    checks = ((labels[0], "bm25", base), (labels[1], "dense", base), (labels[2], "hybrid", base.replace(fusion="convex")),
              (labels[3], "hybrid", base.replace(fusion="rrf")))
    mismatches = []
    for s in sets:
        for label, mode, cfg in checks:
            fast = bench.evaluate(s, bench.run_fused(asst, s, mode, cfg))
            if any(abs(fast[m] - main[s][label][m]) > 1e-9 for m in METRICS):
                mismatches.append(f"{s} {label}")
                log(f"warning: grid fast path differs from Assistant.retrieve on {s} {label}: "
                    f"{ {m: round(fast[m], 4) for m in METRICS} } vs { {m: round(main[s][label][m], 4) for m in METRICS} }")
    result["fast_path_mismatches"] = mismatches
    timings["lists"] = time.perf_counter() - t
    log(f"candidate lists and fast-path check done in {timings['lists']:.0f}s"
        + (f"; MISMATCHES: {mismatches}" if mismatches else "; fast path agrees with Assistant.retrieve"))

    if args.grid:
        grid: dict = {}
        bm25_base = {s: main[s]["bm25"] for s in sets}

        # (a) analyzer: stopwords x stemming (no re-embedding: same chunks)
        t = time.perf_counter()
        rows_b, rows_h = OrderedDict(), OrderedDict()
        for sw in (True, False):
            for st in (False, True):
                cfg = base.replace(stopwords=sw, stemming=st)
                a = bench.assistant(cfg)
                label = f"stopwords={'on' if sw else 'off'}, stemming={'on' if st else 'off'}"
                rows_b[label] = {s: bench.evaluate(s, bench.run_fused(a, s, "bm25", cfg)) for s in sets}
                rows_h[label] = {s: bench.evaluate(s, bench.run_fused(a, s, "hybrid", cfg)) for s in sets}
        grid["analyzer"] = {"bm25": rows_b, "hybrid": rows_h}
        timings["grid_analyzer"] = time.perf_counter() - t
        print("## Grid (a): analyzer\n")
        print(grid_table("BM25 alone", rows_b, sets) + "\n")
        print(grid_table(f"hybrid (convex, w={base.dense_weight}, cand={base.candidates}) on the same index",
                         rows_h, sets) + "\n")
        log(f"grid (a) done in {timings['grid_analyzer']:.0f}s")

        # (b) fusion
        t = time.perf_counter()
        rows = OrderedDict()
        rows["bm25 alone"] = bm25_base
        rows["dense alone"] = {s: main[s]["dense"] for s in sets}
        for c in CANDIDATES:
            cfg = base.replace(fusion="rrf", candidates=c)
            rows[f"rrf k={cfg.rrf_k}, cand={c}"] = {s: bench.evaluate(s, bench.run_fused(asst, s, "hybrid", cfg))
                                                    for s in sets}
        for c in CANDIDATES:
            for w in DENSE_WEIGHTS:
                cfg = base.replace(fusion="convex", dense_weight=w, candidates=c)
                rows[f"convex w={w}, cand={c}"] = {s: bench.evaluate(s, bench.run_fused(asst, s, "hybrid", cfg))
                                                   for s in sets}
        grid["fusion"] = rows
        timings["grid_fusion"] = time.perf_counter() - t
        print("## Grid (b): fusion\n")
        print(grid_table("hybrid fusion (index: " + bench.index_dir(base).name + ")", rows, sets, bm25_base) + "\n")
        log(f"grid (b) done in {timings['grid_fusion']:.0f}s")

        # (e) query-side abbreviation expansion (retrieval-time setting; same index)
        if "expand_abbreviations" in Config.__dataclass_fields__:
            t = time.perf_counter()
            rows = OrderedDict()
            for flag in (True, False):
                cfg = base.replace(expand_abbreviations=flag)
                a = bench.assistant(cfg)
                for mode in ("bm25", "hybrid"):
                    rows[f"expand_abbreviations={'on' if flag else 'off'}, {mode}"] = {
                        s: bench.evaluate(s, bench.run_fused(a, s, mode, cfg)) for s in sets}
            grid["expand_abbreviations"] = rows
            timings["grid_expand"] = time.perf_counter() - t
            print("## Grid (e): query abbreviation expansion\n")
            print(grid_table(f"expand_abbreviations (hybrid: convex, w={base.dense_weight}, cand={base.candidates})",
                             rows, sets) + "\n")
            log(f"grid (e) done in {timings['grid_expand']:.0f}s")

        # (f) fusion variants that the library does not have (proposals)
        t = time.perf_counter()
        rows = OrderedDict()
        rows["bm25 alone"] = bm25_base
        rows[f"library convex w={base.dense_weight}, cand={base.candidates}"] = {
            s: main[s][labels[2]] for s in sets}
        for variant in ("union", "rerank"):
            for c in (50, 100):
                for w in EXPERIMENT_WEIGHTS:
                    rows[f"{variant} w={w}, cand={c}"] = {
                        s: bench.evaluate(s, bench.run_experimental(asst, s, variant, w, c)) for s in sets}
        grid["experimental_fusion"] = rows
        timings["grid_experimental"] = time.perf_counter() - t
        print("## Grid (f): fusion variants not in the library (proposals)\n")
        print("`union`: both candidate lists, every candidate scored by both retrievers (BM25 score, 0 beyond "
              f"its top {LEX_DEPTH}; cosine with the stored chunk vector), min-max over the union, convex mix. "
              "`rerank`: BM25's candidates only, re-scored the same way.\n")
        print(grid_table("proposed fusion (index: " + bench.index_dir(base).name + ")", rows, sets, bm25_base) + "\n")
        log(f"grid (f) done in {timings['grid_experimental']:.0f}s")

        # (g) candidate defaults against BM25 alone on the same index, with paired R@1 wins/losses
        t = time.perf_counter()
        candidates_cfg = [
            ("convex w=0.3, cand=100 (initial default)", dict(stemming=False), "convex", 0.3, 100),
            ("convex w=0.2, cand=100", dict(stemming=False), "convex", 0.2, 100),
            ("convex w=0.1, cand=100", dict(stemming=False), "convex", 0.1, 100),
            ("stemming, convex w=0.3, cand=100", dict(stemming=True), "convex", 0.3, 100),
            ("stemming, convex w=0.1, cand=100", dict(stemming=True), "convex", 0.1, 100),
            ("proposed rerank w=0.2, cand=100", dict(stemming=False), "rerank", 0.2, 100),
            ("stemming, proposed rerank w=0.1, cand=100", dict(stemming=True), "rerank", 0.1, 100),
        ]
        head = ["candidate default"] + [f"{s} R@1 (vs bm25; +won/-lost)" for s in sets] + \
               [f"{s} MRR (vs bm25)" for s in sets] + [">= bm25 on all"]
        lines = ["**candidate defaults vs BM25 alone on the same index** (won/lost: questions whose gold "
                 "passage is first with the hybrid but not with BM25, and the reverse)", "",
                 "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
        rows = OrderedDict()
        for label, build, variant, w, c in candidates_cfg:
            cfg = base.replace(**build, fusion="convex", dense_weight=w, candidates=c)
            a = bench.assistant(cfg)
            r1, mrr, per, ok = [], [], {}, True
            for s in sets:
                b_run = bench.run_fused(a, s, "bm25", cfg)
                h_run = (bench.run_fused(a, s, "hybrid", cfg) if variant == "convex"
                         else bench.run_experimental(a, s, variant, w, c))
                bm, hm = bench.evaluate(s, b_run), bench.evaluate(s, h_run)
                won, lost = bench.wins_losses(s, h_run, b_run)
                per[s] = {"hybrid": hm, "bm25": bm, "won": won, "lost": lost}
                ok &= hm["recall@1"] >= bm["recall@1"] - 1e-9 and hm["mrr@10"] >= bm["mrr@10"] - 1e-9
                r1.append(f"{hm['recall@1']:.3f} ({hm['recall@1'] - bm['recall@1']:+.3f}; +{won}/-{lost})")
                mrr.append(f"{hm['mrr@10']:.4f} ({hm['mrr@10'] - bm['mrr@10']:+.4f})")
            rows[label] = per
            lines.append("| " + " | ".join([label] + r1 + mrr + ["yes" if ok else "no"]) + " |")
        grid["candidate_defaults"] = rows
        timings["grid_candidates"] = time.perf_counter() - t
        print("## Grid (g): candidate defaults\n")
        print("\n".join(lines) + "\n")
        log(f"grid (g) done in {timings['grid_candidates']:.0f}s")

        # (d) BM25 k1/b (retrieval-time settings: same index)
        t = time.perf_counter()
        rows_b, rows_h = OrderedDict(), OrderedDict()
        for k1, b in BM25_PARAMS:
            cfg = base.replace(bm25_k1=k1, bm25_b=b)
            a = bench.assistant(cfg)
            rows_b[f"k1={k1}, b={b}"] = {s: bench.evaluate(s, bench.run_fused(a, s, "bm25", cfg)) for s in sets}
            rows_h[f"k1={k1}, b={b}"] = {s: bench.evaluate(s, bench.run_fused(a, s, "hybrid", cfg)) for s in sets}
        grid["bm25_params"] = {"bm25": rows_b, "hybrid": rows_h}
        timings["grid_bm25_params"] = time.perf_counter() - t
        print("## Grid (d): BM25 k1 and b\n")
        print(grid_table("BM25 alone", rows_b, sets) + "\n")
        print(grid_table(f"hybrid (convex, w={base.dense_weight}, cand={base.candidates})", rows_h, sets) + "\n")
        log(f"grid (d) done in {timings['grid_bm25_params']:.0f}s")

        # (c) chunk size. A full build re-chunks and so embeds every chunk not seen before (on 2
        # cores about 10 chunks/s); sizes not in --hybrid-chunk-sizes are measured for BM25 only,
        # with the library's own chunking, analyzer and BM25 (no embedding).
        t = time.perf_counter()
        rows = OrderedDict()
        for cs in args.chunk_sizes:
            cfg = base.replace(chunk_size=cs)
            if cs in args.hybrid_chunk_sizes or cs == base.chunk_size:
                a = bench.assistant(cfg)
                modes = ("bm25", "dense", "hybrid")
            else:
                a = bench.bm25_only(cfg)
                modes = ("bm25",)
            for mode in modes:
                rows[f"chunk_size={cs} ({len(a.chunks)} chunks), {mode}"] = {
                    s: bench.evaluate(s, bench.run_fused(a, s, mode, cfg)) for s in sets}
        grid["chunk_size"] = rows
        timings["grid_chunk_size"] = time.perf_counter() - t
        print(f"## Grid (c): chunk size (chunk_overlap={base.chunk_overlap})\n")
        print(grid_table(f"chunk size (hybrid: convex, w={base.dense_weight}, cand={base.candidates})",
                         rows, sets) + "\n")
        log(f"grid (c) done in {timings['grid_chunk_size']:.0f}s")
        result["grid"] = grid

    embedder.save()
    timings["total"] = time.perf_counter() - T0
    result["builds"] = bench.builds
    result["timings_s"] = {k: round(v, 1) for k, v in timings.items()}
    print("Indexes: " + "; ".join(f"{b['index']} {b['chunks']} chunks "
                                   + ("(up to date)" if b["up_to_date"] else f"(built {b['seconds']}s, "
                                      f"{b['embedded']} embedded)") for b in bench.builds))
    print(f"Total runtime: {timings['total']:.0f}s on {os.cpu_count()} CPU cores")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
