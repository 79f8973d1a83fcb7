"""Calibrate when the answerer declines: fit the answerability model and its threshold, through the whole assistant.

    python benchmarks/calibrate_abstention.py --pool ../shared/data/passages_dev_pool.jsonl \\
        --questions ../shared/data/qa_{idkmrc,tydiqa_id,facqa}_valid.jsonl [--index DIR] \\
        [--max-declined 0.15] [--bound-idk-only] [--selector-floor 0.7] [--span-floor 0.7] \\
        [--records FILE] [--fit qa/answer/models/answerability.json] [--json OUT]

Each question is asked as a user asks it: retrieval over the pool index (built, or reused, with the
default settings), then the extractive answerer's assessment (:meth:`ExtractiveAnswerer.assess`):
the selector's probability and the span reader's readings of the best candidate and its paragraph,
as :mod:`qa.answer.answerability` features. A logistic regression over them is fitted on every
question of every file (label: answerable); the decline threshold is the one with the best
abstention F1 on the files that have unanswerable questions (IDK-MRC) among those declining at most
``--max-declined`` of their answerable questions, and of every other file's (TyDi, FacQA: the bound
holds for each set; ``--bound-idk-only``: for IDK-MRC alone, as before December 6, 2026), with
every question whose selector probability is below ``--selector-floor`` declined as well unless one
of the reader's spans (of any paragraph it read) is at least ``--span-floor`` probable. ``--records FILE`` keeps what was read, to refit
without reading again. For an honest figure the questions are split by
passage into two halves: a model and threshold fitted on one half are reported on the other. The
selector's own probability (the answerer without the reader) is reported beside it. ``--fit``
writes the model fitted on all of it, with the threshold, as the answerer loads it.
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


def rounded(m: dict) -> dict:
    return {"threshold": round(m["threshold"], 4), **{k: round(m[k], 3) for k in ("precision", "recall", "f1")},
            "declined_answerable": round(m["declined_answerable"], 3)}


def feature_names(name: str) -> tuple:
    """The answerability columns that ``--features name`` fits: chosen, :data:`CHOSEN_FEATURES`; others,
    without the chosen paragraph's reading; base, without the other paragraphs' either."""
    from qa.answer.answerability import CHOSEN_FEATURES, FEATURES, OTHER_FEATURES

    return {"chosen": CHOSEN_FEATURES, "others": OTHER_FEATURES, "base": FEATURES}[name]


def collect(assistant, paths, limit=None, features_name="chosen"):
    """One record per question: file, passage half, answerable, selector probability, features
    (:func:`feature_names` of ``features_name``)."""
    from qa.answer.answerability import features
    from qa.answer.chooser import choice, chosen_reading
    from qa.evaluation import read_questions

    names = feature_names(features_name)
    answerer = assistant.answerer
    recs = []
    for path in paths:
        for q in read_questions(path, limit=limit):
            hits = assistant.retrieve(q.question, k=assistant.config.answer_k)
            cands, sel_p, readings, _, _ = answerer.assess(q.question, hits)
            spans = [r.span for r in readings if r.cand is None] if readings is not None else []
            others = [r.span for r in readings if r.cand is not None] if readings is not None else []
            chosen = chosen_reading(readings, choice(answerer.chooser, cands, readings)) if readings else None
            key = q.articles[0] if q.articles else q.id
            recs.append({"file": Path(path).name, "half": int(hashlib.md5(key.encode()).hexdigest(), 16) % 2,
                         "answerable": bool(q.answerable), "selector": sel_p,
                         "x": features(sel_p, spans, others, chosen, names=names).tolist(),
                         "spans": [[s.probability, s.null] if s is not None else None for s in spans],
                         "others": [[s.probability, s.null] if s is not None else None for s in others],
                         "question": q.question, "answers": list(q.answers)[:3]})
    return recs


def decided(model, rs):
    """The model's probability where the question passes the floors (the selector's, or a reading at
    least ``span_floor`` probable), else 0 (declined either way)."""
    from types import SimpleNamespace as NS

    p = model.probability(np.array([r["x"] for r in rs]))
    passes = [model.passes_floor(r["selector"], [NS(probability=s[0]) if s else None
                                                 for s in r.get("spans", []) + r.get("others", [])]) for r in rs]
    return np.where(np.array(passes), p, 0.0)


def fit_and_choose(recs, max_declined, floor, span_floor=None, every_file=True):
    """The model fitted on ``recs`` and the threshold chosen on their unanswerable-bearing files
    (``every_file``: declining at most ``max_declined`` of every file's answerable questions too)."""
    from qa.answer.answerability import Answerability
    from qa.answer.selector import best_threshold

    model = Answerability.fit(np.array([r["x"] for r in recs]), np.array([r["answerable"] for r in recs], float))
    model.selector_floor = floor
    model.span_floor = span_floor
    idk = [r for r in recs if r["idk"]]
    files = sorted({r["file"] for r in recs if not r["idk"]}) if every_file else []
    others = [decided(model, [r for r in recs if r["file"] == f and r["answerable"]]) for f in files]
    model.threshold = best_threshold(decided(model, idk), [r["answerable"] for r in idk],
                                     max_declined=max_declined, others=others)["threshold"]
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", nargs="+", required=True)
    ap.add_argument("--pool", required=True)
    ap.add_argument("--index", default=None, help="pool index folder (default: index/eval-pool/<name>-<hash>)")
    ap.add_argument("--max-declined", type=float, default=0.15)
    ap.add_argument("--bound-idk-only", action="store_true",
                    help="apply --max-declined to the unanswerable-bearing files only (default: to every file)")
    ap.add_argument("--selector-floor", type=float, default=0.7,
                    help="decline below this selector probability whatever the model says (default 0.7)")
    ap.add_argument("--span-floor", type=float, default=0.7,
                    help="below the selector floor, still answer when a reading's span is at least this probable "
                         "(default 0.7; above 1: never)")
    ap.add_argument("--features", choices=("chosen", "others", "base"), default="chosen",
                    help="chosen (default): CHOSEN_FEATURES, with the reading of the paragraph the chooser answers "
                         "from; others: OTHER_FEATURES, the other paragraphs' 'no answer' only; base: FEATURES")
    ap.add_argument("--paragraphs", type=int, default=None,
                    help="paragraphs the reader reads (default: the index's [answer] reader_paragraphs)")
    ap.add_argument("--limit", type=int, default=None, help="questions per file (default: all)")
    ap.add_argument("--fit", default=None, help="write the fitted answerability model here")
    ap.add_argument("--json", default=None)
    ap.add_argument("--records", default=None, help="keep the collected rows in this JSON file and reuse them "
                                                    "when it exists (refitting without reading again)")
    args = ap.parse_args(argv)
    from qa.answer.selector import abstention, best_threshold
    from qa.evaluation.pool import pool_assistant

    assistant, _ = pool_assistant(args.pool, args.index)
    if args.paragraphs is not None:
        if args.paragraphs < 1:
            ap.error("--paragraphs must be at least 1")
        assistant.answerer.reader_paragraphs = args.paragraphs
    span = args.span_floor if args.span_floor <= 1.0 else None
    t0 = time.time()
    if args.records and Path(args.records).is_file():
        recs = json.loads(Path(args.records).read_text(encoding="utf-8"))
        width = len(feature_names(args.features))  # the columns are nested: each set starts the next
        recs = [{**r, "x": r["x"][:width]} for r in recs]
    else:
        recs = collect(assistant, args.questions, args.limit, args.features)
        if args.records:
            Path(args.records).write_text(json.dumps(recs), encoding="utf-8")
    seconds = time.time() - t0
    with_null = {r["file"] for r in recs if not r["answerable"]}
    if not with_null:
        raise SystemExit("no unanswerable questions in --questions: give IDK-MRC valid (or another set with some)")
    for r in recs:
        r["idk"] = r["file"] in with_null
    out = {"questions": len(recs), "files": sorted({r["file"] for r in recs}), "seconds": round(seconds, 1),
           "paragraphs": assistant.answerer.reader_paragraphs, "selector_floor": args.selector_floor,
           "span_floor": span, "max_declined": args.max_declined,
           "bound": "idk-only" if args.bound_idk_only else "every file", "halves": {}}
    for h in (0, 1):
        mine = [r for r in recs if r["half"] == h]
        other = [r for r in recs if r["half"] != h and r["idk"]]
        model = fit_and_choose(mine, args.max_declined, args.selector_floor, span, not args.bound_idk_only)
        p = decided(model, other)
        sel_t = best_threshold([r["selector"] for r in mine if r["idk"]], [r["answerable"] for r in mine if r["idk"]],
                               max_declined=args.max_declined)["threshold"]
        ans = [r["answerable"] for r in other]
        out["halves"][f"fitted on half {h}, reported on half {1 - h}"] = {
            "selector and reader": rounded(abstention(p, ans, model.threshold)),
            "selector alone": rounded(abstention([r["selector"] for r in other], ans, sel_t))}
    model = fit_and_choose(recs, args.max_declined, args.selector_floor, span, not args.bound_idk_only)
    idk = [r for r in recs if r["idk"]]
    out["all"] = rounded(abstention(decided(model, idk),
                                    [r["answerable"] for r in idk], model.threshold))
    out["declined_answerable_per_file"] = {
        f: round(float(np.mean(decided(model, [r for r in recs if r["file"] == f and r["answerable"]])
                               < model.threshold)), 3) for f in out["files"]}
    if args.records and seconds < 1:
        print(f"{len(recs)} questions read from {args.records}")
    else:
        print(f"{len(recs)} questions through the assistant in {seconds:.0f} s ({1000 * seconds / max(1, len(recs)):.0f} ms each)")
    print("| fitted on | reported on | model | threshold | precision | recall | F1 | answerable declined |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for key, v in out["halves"].items():
        a, b = key.replace("fitted on ", "").split(", reported on ")
        for name, m in v.items():
            print(f"| {a} | {b} | {name} | {m['threshold']} | {m['precision']} | {m['recall']} | {m['f1']} | "
                  f"{m['declined_answerable']} |")
    m = out["all"]
    print(f"| all | all | selector and reader | {m['threshold']} | {m['precision']} | {m['recall']} | {m['f1']} | "
          f"{m['declined_answerable']} |")
    print("answerable declined per file:", out["declined_answerable_per_file"])
    out["other_bounds"] = {}
    for bound in (0.05, 0.10, 0.15, 0.20):
        alt = fit_and_choose(recs, bound, args.selector_floor, span, not args.bound_idk_only)
        pi = decided(alt, idk)
        out["other_bounds"][str(bound)] = {**rounded(abstention(pi, [r["answerable"] for r in idk], alt.threshold)), **{
            f: round(float(np.mean(decided(alt, [r for r in recs if r["file"] == f and r["answerable"]])
                                   < alt.threshold)), 3) for f in out["files"]}}
        print(f"at most {bound:.0%} declined:", out["other_bounds"][str(bound)])
    if args.fit:
        model.meta = {"data": out["files"], "questions": len(recs), "max_declined": args.max_declined,
                      "pool": Path(args.pool).name, "figures": {k: v for k, v in out.items() if k != "seconds"},
                      "reader": assistant.config.reader or "packaged", "selector": assistant.config.selector or "packaged"}
        print("wrote", model.save(args.fit), "weights", np.round(model.weights, 3).tolist(), "threshold", model.threshold)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
