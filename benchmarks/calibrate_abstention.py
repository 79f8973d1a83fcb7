"""Calibrate the answerer's decline threshold on IDK-MRC valid, through the whole assistant.

    python benchmarks/calibrate_abstention.py --questions ../shared/data/qa_idkmrc_valid.jsonl \
        --pool ../shared/data/passages_dev_pool.jsonl [--index DIR] [--max-declined 0.15] [--json OUT]

Each question is asked as a user would ask it: retrieval over the pool index (built, or reused,
with the default settings), then the extractive answerer. With the threshold at 0 every answer
carries the selector's best probability (``Answer.confidence``); the threshold is then chosen for
the best abstention F1 (declined-and-unanswerable over declined, over unanswerable) among those
that decline at most ``--max-declined`` of the answerable questions. Questions are split by
passage into two halves: the threshold chosen on one half is reported on the other, and the
figure for the whole set is given at the threshold chosen on all of it (the one to ship).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def decisions(best_p, answerable, threshold):
    from qa.answer.selector import abstention

    m = abstention(best_p, answerable, threshold)
    return {"threshold": round(m["threshold"], 4), **{k: round(m[k], 3) for k in ("precision", "recall", "f1")},
            "declined_answerable": round(m["declined_answerable"], 3) if any(answerable) else None}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", required=True)
    ap.add_argument("--pool", required=True)
    ap.add_argument("--index", default=None, help="pool index folder (default: index/eval-pool/<name>-<hash>)")
    ap.add_argument("--max-declined", type=float, default=0.15)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    from qa.answer.selector import best_threshold
    from qa.evaluation.pool import pool_assistant

    rows = [json.loads(line) for line in open(args.questions, encoding="utf-8") if line.strip()]
    assistant, _ = pool_assistant(args.pool, args.index)
    assistant = type(assistant)(assistant.store, assistant.config.replace(abstain_threshold=0.0),
                                embedder=assistant.embedder, index_dir=assistant.index_dir)
    t0 = time.time()
    best_p, answerable, halves, contains = [], [], [], []
    for r in rows:
        ans = assistant.ask(r["question"])
        best_p.append(ans.confidence)
        answerable.append(not r.get("is_impossible"))
        halves.append(int(hashlib.md5(r["context_id"].encode()).hexdigest(), 16) % 2)
        golds = [a["text"].lower() for a in r.get("answers") or []]
        contains.append(any(g in ans.text.lower() for g in golds))
    seconds = time.time() - t0
    out = {"questions": len(rows), "unanswerable": answerable.count(False), "seconds": round(seconds, 1)}
    for h in (0, 1):
        pick = [i for i, x in enumerate(halves) if x == h]
        other = [i for i, x in enumerate(halves) if x != h]
        t = best_threshold([best_p[i] for i in pick], [answerable[i] for i in pick],
                           max_declined=args.max_declined)["threshold"]
        out[f"chosen on half {h}, on half {1 - h}"] = decisions([best_p[i] for i in other],
                                                                [answerable[i] for i in other], t)
    t = best_threshold(best_p, answerable, max_declined=args.max_declined)["threshold"]
    out["chosen on all"] = decisions(best_p, answerable, t)
    ok = [c and p >= t for c, p, a in zip(contains, best_p, answerable) if a]
    out["answerable: answered with a gold answer at that threshold"] = round(sum(ok) / max(1, len(ok)), 3)
    print(f"IDK-MRC valid through the assistant: {len(rows)} questions ({out['unanswerable']} unanswerable), "
          f"{seconds:.0f} s ({1000 * seconds / max(1, len(rows)):.0f} ms per question)")
    print("| threshold chosen on | reported on | threshold | precision | recall | F1 | answerable declined |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for key in ("chosen on half 0, on half 1", "chosen on half 1, on half 0", "chosen on all"):
        m = out[key]
        a, b = (key.split(", on ") + ["all"])[:2] if "half" in key else ("all", "all")
        print(f"| {a.replace('chosen on ', '')} | {b} | {m['threshold']} | {m['precision']} | {m['recall']} | "
              f"{m['f1']} | {m['declined_answerable']} |")
    print(f"answerable questions answered with a gold answer at {t}: "
          f"{out['answerable: answered with a gold answer at that threshold']}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
