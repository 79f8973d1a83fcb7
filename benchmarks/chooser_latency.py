"""The answer stage with the paragraph chooser reading more or fewer paragraphs, timed on the same questions.

    python benchmarks/chooser_latency.py --index index/eval-pool/passages_dev_pool-52070a3bfa \\
        --questions ../shared/data/qa_tydiqa_id_valid.jsonl [--limit 200] [--paragraphs 1 2 4]

Each question is retrieved once; then the extractive answerer answers it with each
``reader_paragraphs`` given (1: no chooser), in an order that rotates between questions (so the
machine's drift hits all alike). Prints the median and p95 ms of each.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--questions", required=True)
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--paragraphs", type=int, nargs="+", default=[1, 2, 4], help="reader_paragraphs values to time")
    args = ap.parse_args(argv)
    from qa import Assistant
    from qa.answer.chooser import Chooser
    from qa.evaluation import read_questions

    a = Assistant.load(args.index)
    answerer = a.answerer
    answerer.chooser = answerer.chooser or Chooser.load()
    qs = read_questions(args.questions, limit=args.limit)
    hits = [a.retrieve(q.question, k=a.config.answer_k) for q in qs]
    answerer.answer(qs[0].question, hits[0])  # load the reader
    ms: dict[int, list[float]] = {p: [] for p in args.paragraphs}
    order = list(ms)
    for n, (q, h) in enumerate(zip(qs, hits)):
        for p in order[n % len(order):] + order[:n % len(order)]:
            answerer.reader_paragraphs = p
            t0 = time.perf_counter()
            answerer.answer(q.question, h)
            ms[p].append(1000 * (time.perf_counter() - t0))
    print("| reader_paragraphs | questions | median ms | p95 ms |\n|---:|---:|---:|---:|")
    for p, v in ms.items():
        v.sort()
        print(f"| {p} | {len(v)} | {statistics.median(v):.0f} | {v[int(0.95 * (len(v) - 1))]:.0f} |")


if __name__ == "__main__":
    main()
