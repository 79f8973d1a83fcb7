"""Answer quality on the seed-article question set (tests/fixtures/answer_questions.jsonl).

    python benchmarks/answer_eval.py [--index index] [--questions tests/fixtures/answer_questions.jsonl] [-v]

Prints: answers containing the answer string (single questions and follow-up turns),
unanswerable questions declined, and every quote checked to be verbatim at its offsets.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def evaluate(assistant, rows, verbose=False):
    from collections import Counter

    c = Counter()
    for r in rows:
        if r["type"] == "single":
            turns, conv = [r], assistant.conversation()
        elif r["type"] == "followup":
            turns, conv = r["turns"], assistant.conversation()
        else:
            ans = assistant.ask(r["question"])
            c["unanswerable"] += 1
            c["declined"] += not ans.found
            if verbose and ans.found:
                print("ANSWERED-UNANSWERABLE", r["question"], "|", ans.text[:120])
            continue
        for i, t in enumerate(turns):
            ans = conv.ask(t["question"])
            key = "single" if r["type"] == "single" else ("followup_first" if i == 0 else "followup_next")
            ok = ans.found and t["answer"].lower() in ans.text.lower()
            c[key] += 1
            c[key + "_ok"] += ok
            for cit in ans.citations:
                c["quotes"] += 1
                c["quotes_verbatim"] += cit.article.text[cit.start:cit.end] == cit.quote
            if verbose and not ok:
                print("MISS", t["question"], "|", t["answer"], "|", ans.query if ans.query != t["question"] else "", "|", ans.text[:160])
    return c


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", default="index")
    ap.add_argument("--questions", default="tests/fixtures/answer_questions.jsonl")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    from qa import Assistant

    a = Assistant.load(args.index)
    rows = [json.loads(l) for l in open(args.questions, encoding="utf-8") if l.strip()]
    c = evaluate(a, rows, args.verbose)
    print("| set | answered with the answer string |")
    print("|---|---|")
    for k in ("single", "followup_first", "followup_next"):
        print(f"| {k} | {c[k + '_ok']}/{c[k]} |")
    print(f"| unanswerable declined | {c['declined']}/{c['unanswerable']} |")
    print(f"| quotes verbatim at offsets | {c['quotes_verbatim']}/{c['quotes']} |")


if __name__ == "__main__":
    main()
