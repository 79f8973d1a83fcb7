"""Load time and memory of a built index in a fresh process, without checksum verification.

    python benchmarks/load_memory.py --index /tmp/qa-scale-1m/n1000000/index \
        --questions /tmp/qa-scale-1m/questions.json --json benchmarks/results/load_1m.json

Reports ``Assistant.load(index, verify=False)`` time, model load time, RSS split into anonymous and
file-backed pages (memory-mapped files show up as file-backed RSS) after load and after the
questions, and hybrid ``retrieve(k=10)`` latency (10 warm-up queries, torch on 1 thread). Linux only
(reads /proc/self/status).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(line.split()[1]) // 1024
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--index", required=True)
    p.add_argument("--questions", required=True, help="JSON list of question strings")
    p.add_argument("--json")
    a = p.parse_args()
    import torch

    torch.set_num_threads(1)
    from qa import Assistant

    s0 = status()
    t = time.perf_counter()
    assistant = Assistant.load(a.index, verify=False)
    load_s = time.perf_counter() - t
    s1 = status()
    t = time.perf_counter()
    assistant.embedder  # noqa: B018 (loads the model)
    model_s = time.perf_counter() - t
    qs = json.loads(Path(a.questions).read_text())
    for q in qs[:10]:
        assistant.retrieve(q, k=10)
    times = []
    for q in qs:
        t = time.perf_counter()
        assistant.retrieve(q, k=10)
        times.append((time.perf_counter() - t) * 1000)
    out = {"load_verify_false_s": round(load_s, 2), "model_load_s": round(model_s, 2), "rss_before_mb": s0,
           "rss_after_load_mb": s1, "rss_after_queries_mb": status(), "questions": len(qs),
           "hybrid_median_ms": round(float(np.median(times)), 2), "hybrid_p95_ms": round(float(np.percentile(times, 95)), 2)}
    print(json.dumps(out, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
