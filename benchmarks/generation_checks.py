"""Citation checks of generated answers: accuracy on hand-written claims, and their cost per answer.

    python benchmarks/generation_checks.py [--index index] [--claims tests/fixtures/generated_claims.jsonl]
                                           [--questions tests/fixtures/answer_questions.jsonl] [--json OUT]

1. Each claim (a generated sentence and the passage it cites) is checked; the table gives, per
   kind, how many the checks classify as labelled (supported or not).
2. Cost: for each single question of the answer set, the extractive answer's time, and the time
   the checks add to an LLM answer (``LLMAnswerer.finish`` on a reply made of the retrieved
   passages' first sentences with [n] markers: no server involved, so this is the checks alone).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", default="index")
    ap.add_argument("--claims", default=str(ROOT / "tests/fixtures/generated_claims.jsonl"))
    ap.add_argument("--questions", default=str(ROOT / "tests/fixtures/answer_questions.jsonl"))
    ap.add_argument("--json", default=str(ROOT / "benchmarks/results/generation_checks.json"))
    args = ap.parse_args()

    from qa import Assistant
    from qa.answer import ChatClient, CitationChecker, LLMAnswerer
    from qa.chunking import split_sentences
    from qa.types import Hit

    assistant = Assistant.load(args.index)
    checker = CitationChecker(assistant.answerer)
    rows = [json.loads(x) for x in Path(args.claims).read_text(encoding="utf-8").splitlines() if x.strip()]
    by_kind: dict[str, Counter] = {}
    wrong = []
    for r in rows:
        chunk = next(c for c in assistant.store.chunks if r["passage"] in c.text)
        hit = Hit(chunk=chunk, article=assistant.articles[chunk.article_id], score=1.0, rank=1)
        (chk,) = checker.verify(r["sentence"] + " [1]", [hit]).checks
        k = by_kind.setdefault(f"{r['kind']} ({'supported' if r['supported'] else 'unsupported'})", Counter())
        k["n"] += 1
        k["right"] += chk.supported == r["supported"]
        if chk.supported != r["supported"]:
            wrong.append({"sentence": r["sentence"], "labelled": r["supported"], "reason": chk.reason})

    questions = [json.loads(x) for x in Path(args.questions).read_text(encoding="utf-8").splitlines() if x.strip()]
    questions = [q["question"] for q in questions if q.get("type") == "single"]
    llm = LLMAnswerer(ChatClient("http://127.0.0.1:9/v1", "none"), assistant.answerer)
    ext_ms, check_ms, supported = [], [], Counter()
    for q in questions:
        hits = assistant.retrieve(q, k=assistant.config.answer_k)
        t = time.perf_counter()
        assistant.answerer.answer(q, hits)
        ext_ms.append(1000 * (time.perf_counter() - t))
        reply = " ".join(f"{h.text[s.start - h.start:s.end - h.start]} [{n}]"
                         for n, h in enumerate(hits[:2], start=1) for s in split_sentences(h.article.text, h.start, h.end)[:1])
        t = time.perf_counter()
        ans = llm.finish(q, hits, reply, lang="id", query=q)
        check_ms.append(1000 * (time.perf_counter() - t))
        supported.update(c.status for c in ans.checks)

    print("| claims | checked as labelled |\n|---|---|")
    for kind, c in sorted(by_kind.items()):
        print(f"| {kind} | {c['right']}/{c['n']} |")
    total = sum(c["right"] for c in by_kind.values())
    print(f"| all | {total}/{len(rows)} |\n")
    print("| per answer (median over %d questions) | ms |\n|---|---|" % len(questions))
    print(f"| extractive answer | {statistics.median(ext_ms):.0f} |")
    print(f"| checks of a 2-sentence generated answer | {statistics.median(check_ms):.0f} |")
    print(f"\nverbatim first sentences as replies: {dict(supported)} (all should be supported)")
    out = {"claims_by_kind": {k: dict(v) for k, v in by_kind.items()}, "claims_right": total, "claims": len(rows),
           "wrong": wrong, "extractive_ms_median": statistics.median(ext_ms),
           "checks_ms_median": statistics.median(check_ms), "verbatim_reply_status": dict(supported)}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
