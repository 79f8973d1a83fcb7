"""Fit the paragraph chooser (qa/answer/chooser.py): which of the top paragraphs the answer comes from.

    python benchmarks/fit_chooser.py --pool ../shared/data/passages_dev_pool.jsonl \\
        --questions ../shared/data/qa_{tydiqa_id,facqa,idkmrc}_valid.jsonl [--index DIR] \\
        [--paragraphs 4] [--model trees] [--fit qa/answer/models/chooser.json] [--json OUT]

Each answerable question with gold answers is asked as a user asks it: retrieval over the pool
index, the extractive answerer's assessment (candidates scored by the selector, the reader's reading
of the best candidate and its paragraph, and of the best candidate of each of the next
``--paragraphs - 1`` paragraphs: :func:`qa.answer.leads.pick_others`). Each paragraph is a row
of :mod:`qa.answer.chooser` features, labelled 1 when its text holds a gold answer string. The
questions are split by gold passage into two halves: a model fitted on one half is reported on the
other (share of questions whose chosen paragraph holds a gold answer, against the selector's best
paragraph and against the best possible choice). ``--fit`` writes the model fitted on all of it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def paragraph_rows(assistant, q):
    """``q`` asked as a user asks it: (hits, the candidates read, best first, their chooser feature rows,
    labels: 1 where the candidate's paragraph holds a gold answer), or None when nothing was read."""
    from qa.answer.chooser import features, row_zero_span
    from qa.evaluation.metrics import contains_answer

    hits = assistant.retrieve(q.question, k=assistant.config.answer_k)
    cands, _, readings, _, _ = assistant.answerer.assess(q.question, hits)
    if not cands or readings is None:
        return None
    others = [r for r in readings if r.cand is not None]
    chosen = [cands[0]] + [r.cand for r in others]
    x = features([c.score for c in chosen], [row_zero_span([r for r in readings if r.cand is None])] +
                 [r.span for r in others], [c.hit_rank for c in chosen])
    y = [int(contains_answer([c.article.text[c.passage_start:max(c.passage_end, c.end)]], q.answers)) for c in chosen]
    return hits, chosen, x, y


def half(q) -> int:
    """The question's half: split by gold passage, so that questions on one passage stay together."""
    key = q.articles[0] if q.articles else q.id
    return int(hashlib.md5(key.encode()).hexdigest(), 16) % 2


def collect(assistant, paths, paragraphs: int, limit=None):
    """One record per answerable question: file, half, feature rows, labels."""
    from tqdm import tqdm

    from qa.evaluation import read_questions

    answerer = assistant.answerer
    answerer.reader_paragraphs = paragraphs  # assess reads the other candidates (the chooser's inputs)
    if answerer.chooser is None:  # any chooser: assess reads the others when there is one
        from qa.answer.chooser import FEATURES, Chooser
        n = len(FEATURES)
        answerer.chooser = Chooser(np.zeros(n), 0.0, np.zeros(n), np.ones(n))
    recs = []
    for path in paths:
        qs = [q for q in read_questions(path, limit=limit) if q.answerable and q.answers]
        for q in tqdm(qs, desc=Path(path).name, unit="question"):
            got = paragraph_rows(assistant, q)
            if got is not None:
                recs.append({"file": Path(path).name, "half": half(q), "x": got[2].tolist(), "y": got[3]})
    return recs


def shares(model, recs) -> dict:
    """Share of questions whose chosen / first / best-possible paragraph holds a gold answer."""
    n = len(recs)
    chosen = sum(r["y"][model.choose(np.array(r["x"]))] for r in recs)
    return {"questions": n, "chosen": round(chosen / n, 3), "selector_first": round(sum(r["y"][0] for r in recs) / n, 3),
            "any_read": round(sum(max(r["y"]) for r in recs) / n, 3)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", nargs="+", required=True)
    ap.add_argument("--pool", required=True)
    ap.add_argument("--index", default=None, help="pool index folder (default: index/eval-pool/<name>-<hash>)")
    ap.add_argument("--paragraphs", type=int, default=4, help="paragraphs read per question (default 4; "
                    "the answerer's [answer] reader_paragraphs)")
    ap.add_argument("--limit", type=int, default=None, help="questions per file (default: all)")
    ap.add_argument("--l2", type=float, default=1.0, help="L2 penalty of --model linear")
    ap.add_argument("--model", default="trees", choices=("trees", "linear"),
                    help="gradient-boosted trees (default; 200 trees of depth 2, needs scikit-learn) or a "
                         "logistic regression")
    ap.add_argument("--fit", default=None, help="write the fitted chooser here")
    ap.add_argument("--json", default=None)
    ap.add_argument("--records", default=None, help="keep the collected rows in this JSON file and reuse them "
                                                    "when it exists (refitting without reading again)")
    args = ap.parse_args(argv)
    if args.paragraphs < 2:
        ap.error("--paragraphs must be at least 2")
    from qa.answer.chooser import FEATURES, Chooser
    from qa.evaluation.pool import pool_assistant

    t0 = time.time()
    if args.records and Path(args.records).is_file():
        recs = json.loads(Path(args.records).read_text(encoding="utf-8"))
    else:
        assistant, _ = pool_assistant(args.pool, args.index)
        recs = collect(assistant, args.questions, args.paragraphs, args.limit)
        if args.records:
            Path(args.records).write_text(json.dumps(recs), encoding="utf-8")
    seconds = time.time() - t0
    for r in recs:  # records read with more paragraphs serve a fit with fewer
        r["x"], r["y"] = [x[:len(FEATURES)] for x in r["x"][:args.paragraphs]], r["y"][:args.paragraphs]

    def fitted(rs):
        x, y = np.array([x for r in rs for x in r["x"]]), np.array([y for r in rs for y in r["y"]])
        return Chooser.fit_trees(x, y) if args.model == "trees" else Chooser.fit(x, y, l2=args.l2)

    out = {"questions": len(recs), "files": sorted({r["file"] for r in recs}), "paragraphs": args.paragraphs,
           "model": args.model, "seconds": round(seconds, 1), "halves": {}}
    for h in (0, 1):
        model = fitted([r for r in recs if r["half"] == h])
        other = [r for r in recs if r["half"] != h]
        out["halves"][f"fitted on half {h}, reported on half {1 - h}"] = {
            f: shares(model, [r for r in other if r["file"] == f]) for f in out["files"]}
    model = fitted(recs)
    out["all"] = {f: shares(model, [r for r in recs if r["file"] == f]) for f in out["files"]}
    print(json.dumps(out, indent=1))
    if args.fit:
        model.meta = {"fitted_on": out["files"], "questions": len(recs), "paragraphs": args.paragraphs,
                      "model": args.model,
                      "in_sample": out["all"], "halves": out["halves"]}
        print("wrote", model.save(args.fit))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
