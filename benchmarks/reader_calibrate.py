"""Calibrate the span reader's lead threshold, and choose what it reads, on the valid sets.

    python benchmarks/reader_calibrate.py --pool ../shared/data/passages_dev_pool.jsonl [--index DIR] \
        --questions ../shared/data/qa_{tydiqa_id,facqa,idkmrc}_valid.jsonl [--config TOML] [--json OUT]

Without ``--index`` the answerer gets its IDF from BM25 over the pool's passages and embeds each
question's sentences itself (no pool index to build; the same features otherwise).

Reader only, as ``qa eval`` measures it: each answerable question's gold passage is the one hit;
the answerer's selector picks the best candidate (sentence or pair) as it would for the answer.
For that candidate this records the SQuAD token F1 / EM of: the candidate itself (the answer with
no lead), the question-kind patterns' lead (the answerer before the reader), and the reader's
span read from the candidate (``sentence``), from its paragraph (``paragraph``; the lead must lie in
a candidate sentence) or the more probable of the two (``both``, what the answerer does), with the
reader's probability and time (one batch of both). Then, per reading mode,
at each threshold: [lead F1, lead EM (below it the answer is scored on its quote), share of answers
with a lead, mean F1 of those leads]; the threshold with the best mean F1 over all sets, and the
figures per set at it, also as ``qa eval`` counts them (0 where the answerer declines to answer).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GRID = [round(x, 2) for x in np.arange(0.0, 1.0, 0.05)]


def pool_answerer(pool):
    """The answerer without a pool index: IDF from BM25 over the pool's passages (as ``qa
    train-selector`` does), the default encoder embedding each question's sentences, the packaged selector."""
    from qa.analyzer import Analyzer
    from qa.answer.extractive import ExtractiveAnswerer
    from qa.config import DEFAULT_MODEL
    from qa.encoders import make_encoder
    from qa.lexical import make_lexical

    analyzer = Analyzer()
    texts = {json.loads(line)["text"] for line in open(pool, encoding="utf-8") if line.strip()}
    lexical = make_lexical([analyzer.tokens(t) for t in sorted(texts)], engine="bm25s", k1=1.5, b=0.75)
    return ExtractiveAnswerer(analyzer, lexical.idf, make_encoder(DEFAULT_MODEL, device="cpu"),
                              max_idf=lexical.max_idf, corpus_lang="id")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", nargs="+", required=True)
    ap.add_argument("--pool", required=True)
    ap.add_argument("--index", default=None)
    ap.add_argument("--config", default=None, help="TOML of the pool index's build settings (as qa eval --config)")
    ap.add_argument("--reader", default=None, help="reader weights (default: the packaged ones)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    from qa.answer.leads import pattern_lead, read_best, reader_lead
    from qa.answer.reader import Reader
    from qa.answer.spans import question_type, strip_clitic
    from qa.evaluation import read_questions
    from qa.evaluation.metrics import exact_match, token_f1
    from qa.config import load_config
    from qa.evaluation.pool import pool_assistant
    from qa.evaluation.runner import gold_hit

    if args.index:
        assistant, _ = pool_assistant(args.pool, args.index, load_config(args.config) if args.config else None)
        answerer = assistant.answerer
    else:
        answerer = pool_answerer(args.pool)
    reader = Reader.load(args.reader)
    if answerer.answerability is None:  # built without a reader: give it the packaged decision model
        from qa.answer.answerability import Answerability
        answerer.answerability = Answerability.load()
        answerer.threshold = answerer.answerability.threshold
    recs = []
    for path in args.questions:
        qs = [q for q in read_questions(path, limit=args.limit) if q.answerable and q.answers and q.context.strip()]
        for q in qs:
            hits = [gold_hit(q)]
            own = " ".join(strip_clitic(w) for w in q.question.split())
            answerer.reader_loader, answerer._reader = None, reader
            cands, _, _, confidence, threshold = answerer.assess(q.question, hits)
            if not cands:
                continue
            best = max(cands, key=lambda c: c.score)
            terms = set(answerer.content_terms(own))
            golds = list(q.answers)
            rec = {"set": Path(path).name, "id": q.id, "declined": confidence < threshold,
                   "quote_f1": token_f1(best.text, golds),
                   "quote_em": exact_match(best.text, golds)}
            pat = pattern_lead(answerer.analyzer, question_type(q.question), best, terms)
            rec["pattern_f1"] = token_f1(pat, golds) if pat else rec["quote_f1"]
            rec["pattern_em"] = exact_match(pat, golds) if pat else rec["quote_em"]
            t0 = time.perf_counter()
            readings = read_best(reader, q.question, best)  # [paragraph, sentence], one batch
            ms = (time.perf_counter() - t0) * 1000
            for mode, use in (("sentence", readings[1:]), ("paragraph", readings[:1]), ("both", readings)):
                lead, at, quote = reader_lead(use, sorted(cands, key=lambda c: -c.score), 0.0)
                p = max((r.span.probability for r in use if r.span is not None), default=0.0)
                rec[mode] = {"lead": lead, "p": p, "ms": ms,
                             "f1": token_f1(lead, golds) if lead else None, "em": exact_match(lead, golds) if lead else None,
                             "verbatim": (quote.article.text[at:at + len(lead)] == lead) if lead else None}
            recs.append(rec)
    out = {"n": len(recs), "sets": sorted({r["set"] for r in recs})}

    def led(r, mode, t):
        return bool(r[mode]["lead"]) and r[mode]["p"] >= t

    def score(rs, mode, t, key="f1", declined=False):
        """Mean lead F1 / EM; ``declined``: as qa eval counts, 0 where the answerer declines."""
        vals = []
        for r in rs:
            m = r[mode]
            v = m[key] if m["lead"] and m["p"] >= t else r[f"quote_{key}"]
            vals.append(0.0 if declined and r["declined"] else v)
        return float(np.mean(vals)) if vals else float("nan")

    for s in out["sets"] + ["all"]:
        rs = [r for r in recs if s in ("all", r["set"])]
        out[s] = {"n": len(rs), "declined": round(float(np.mean([r["declined"] for r in rs])), 4),
                  "quote_f1": round(float(np.mean([r["quote_f1"] for r in rs])), 4),
                  "pattern_f1_em_as_qa_eval": [round(float(np.mean([0 if r["declined"] else r[f"pattern_{k}"]
                                                                   for r in rs])), 4) for k in ("f1", "em")],
                  "pattern_f1": round(float(np.mean([r["pattern_f1"] for r in rs])), 4),
                  "pattern_em": round(float(np.mean([r["pattern_em"] for r in rs])), 4)}
        for mode in ("sentence", "paragraph", "both"):
            out[s][mode] = {str(t): [round(score(rs, mode, t), 4), round(score(rs, mode, t, "em"), 4),
                                     round(float(np.mean([led(r, mode, t) for r in rs])), 3),
                                     round(float(np.mean([r[mode]["f1"] for r in rs if led(r, mode, t)] or [0])), 4)]
                            for t in GRID}
    for mode in ("sentence", "paragraph", "both"):
        curve = out["all"][mode]
        t = max(GRID, key=lambda t: curve[str(t)][0])
        ms = [r[mode]["ms"] for r in recs]
        out[f"best_{mode}"] = {"threshold": t, "f1_em_led": curve[str(t)],
                               "per_set": {s: out[s][mode][str(t)] for s in out["sets"]},
                               "per_set_as_qa_eval": {s: [round(score([r for r in recs if r["set"] == s], mode, t, k, True), 4)
                                                          for k in ("f1", "em")] for s in out["sets"]},
                               "ms_median": round(float(np.median(ms)), 1), "ms_p95": round(float(np.percentile(ms, 95)), 1),
                               "verbatim": all(r[mode]["verbatim"] in (None, True) for r in recs)}
    print(json.dumps({k: v for k, v in out.items() if k.startswith("best_") or k == "n"}, indent=1))
    for s in out["sets"] + ["all"]:
        print(s, out[s]["n"], "declined", out[s]["declined"], "quote F1", out[s]["quote_f1"], "patterns F1/EM",
              out[s]["pattern_f1"], out[s]["pattern_em"], "as qa eval", out[s]["pattern_f1_em_as_qa_eval"])
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": out, "records": recs}, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
