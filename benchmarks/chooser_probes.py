"""Probes for the paragraph chooser (qa/answer/chooser.py): would more about each paragraph read, or
more rows, tell the six paragraphs apart better? (CHOOSER.md, "Tried, not shipped", December 7.)

    python benchmarks/chooser_probes.py --pool ../shared/data/passages_dev_pool.jsonl \\
        --questions ../shared/data/qa_{tydiqa_id,facqa,idkmrc}_valid.jsonl \\
        [--train-questions T.jsonl ...] [--train-limit 800] [--records FILE] [--json OUT]

Each answerable valid question is asked as benchmarks/fit_chooser.py asks it (the shipped settings)
and each paragraph read becomes a row of the chooser's eight features plus, per paragraph:

- ``joint``: the best span log probability of one reading of all the paragraphs' candidates joined
  into one text (the span probability normalised over all of them), and its gap to the best;
- ``raw``: the best unnormalised start + end logit of the candidate read alone, and its gap;
- ``cls``: a logistic regression on the reader's final hidden state at the CLS token (fitted out of
  fold within the training half, then a feature of the trees);
- retrieval and selector facts: the hit's fused score and gap to the top hit (``hit_score``), 1 / its
  BM25 and dense ranks (``ranks``), the candidate's shared-word share (``lex``), cosine (``cos``),
  answer-type match (``type``), and the hit's folded near-duplicates (``dups``).

Trees as shipped are fitted on one half (split by gold passage) and reported on the other, for the
eight features and for each addition; ``--train-questions`` adds rows from training questions (the
eight features only; their passages are in the dev pool) to see whether more rows help. Prints the
share of questions whose chosen paragraph holds a gold answer, mean of the two halves, per file.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # fit_chooser, beside it

EXTRA = {"joint": 2, "raw": 2, "hit_score": 2, "ranks": 2, "lex": 1, "cos": 1, "type": 1, "dups": 1}


def readings(reader, question: str, texts: list[str]) -> tuple[list[float], list[float], np.ndarray]:
    """Per text: its best raw span logit read alone, its best span log probability in one joint reading
    of all ``texts``, and the final hidden state at CLS when read alone."""
    import torch

    from qa.answer.reader import best_span, encode_question, span_scores, windows
    tok = reader.tokenizer
    qids = encode_question(tok, question)
    joined, bounds = "", []
    for t in texts:
        joined += " \n " if joined else ""
        bounds.append((len(joined), len(joined) + len(t)))
        joined += t
    raw, joint, cls = [], [-30.0] * len(texts), []
    with torch.inference_mode():
        def run(w):
            h, _ = reader.hidden([w.ids])
            out = reader.head(h).float()[0]
            return h[0, 0].float().numpy(), out[:, 0], out[:, 1]
        for t in texts:
            w = windows(tok, question, t, qids=qids)[0]
            h, s, e = run(w)
            raw.append(best_span(s.numpy(), e.numpy(), w.offsets)[0])
            cls.append(h)
        for w in windows(tok, question, joined, qids=qids):
            _, s, e = run(w)
            allowed = torch.tensor([[k == 0 or o is not None for k, o in enumerate(w.offsets)]])
            ls, le = span_scores(s[None], e[None], allowed)
            for n, (lo, hi) in enumerate(bounds):
                inside = [o if o is not None and o[0] >= lo and o[1] <= hi else None for o in w.offsets]
                joint[n] = max(joint[n], best_span(ls[0].numpy(), le[0].numpy(), inside)[0])
    return raw, joint, np.stack(cls)


def collect(assistant, paths, *, extras: bool, limit=None, seed: int = 0) -> list[dict]:
    from tqdm import tqdm

    from qa.evaluation import read_questions
    from qa.synonyms import spell_out
    from fit_chooser import half, paragraph_rows

    recs = []
    for path in paths:
        qs = [q for q in read_questions(path) if q.answerable and q.answers]
        if limit:
            random.Random(seed).shuffle(qs)
            qs = qs[:limit]
        for q in tqdm(qs, desc=Path(path).name, unit="question"):
            got = paragraph_rows(assistant, q)
            if got is None:
                continue
            hits, chosen, x, y = got
            rec = {"file": Path(path).name, "half": half(q), "x": x.tolist(), "y": y}
            if extras:
                texts = [c.article.text[c.start:c.end] for c in chosen]
                raw, joint, cls = readings(assistant.answerer.reader, spell_out(q.question, texts[0]), texts)
                hs = [hits[c.hit_rank - 1] for c in chosen]
                rec["extra"] = {
                    "joint": joint, "raw": raw, "cls": cls.tolist(),
                    "hit_score": [h.score for h in hs], "ranks_bm25": [1 / (h.bm25_rank or 200) for h in hs],
                    "ranks_dense": [1 / (h.dense_rank or 200) for h in hs], "lex": [c.lexical for c in chosen],
                    "cos": [c.dense for c in chosen], "type": [c.type_match for c in chosen],
                    "dups": [len(h.also_reported_by) for h in hs]}
            recs.append(rec)
    return recs


def columns(rec: dict, name: str, cls_score=None) -> list[np.ndarray]:
    e = rec["extra"]
    if name == "cls":
        s = cls_score(rec)
        return [s, s - s.max()]
    if name == "ranks":
        return [np.array(e["ranks_bm25"]), np.array(e["ranks_dense"])]
    v = np.array(e[name], dtype=float)
    return [v, v - v.max()] if EXTRA[name] == 2 else [v]


def halves(valid: list[dict], name: str | None, train: list[dict] = ()) -> dict:
    """Mean over the two halves of the share of questions whose chosen paragraph holds a gold answer."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from qa.answer.chooser import Chooser

    def cls_model(rs):
        x = np.vstack([r["extra"]["cls"] for r in rs])
        scaler = StandardScaler().fit(x)
        m = LogisticRegression(C=0.01, max_iter=2000).fit(scaler.transform(x), np.concatenate([r["y"] for r in rs]))
        return lambda r: m.decision_function(scaler.transform(np.array(r["extra"]["cls"])))

    files = sorted({r["file"] for r in valid})
    out: dict[str, list[float]] = {f: [] for f in files}
    for h in (0, 1):
        fit_on = [r for r in valid if r["half"] == h]
        score = score_fit = None
        if name == "cls":  # out-of-fold scores for the trees' rows, a model on the whole half for the others
            folds = {}
            for k in (0, 1):
                m = cls_model([r for n, r in enumerate(fit_on) if n % 2 != k])
                folds.update({id(r): m(r) for n, r in enumerate(fit_on) if n % 2 == k})
            score_fit, score = (lambda r: folds[id(r)]), cls_model(fit_on)

        def rows(r, s=None):
            return np.column_stack([np.array(r["x"])] + (columns(r, name, s) if name else []))
        x = np.vstack([rows(r, score_fit) for r in fit_on] + [np.array(r["x"]) for r in train])
        y = np.concatenate([r["y"] for r in fit_on] + [r["y"] for r in train])
        model = Chooser.fit_trees(x, y)
        for f in files:
            rs = [r for r in valid if r["half"] != h and r["file"] == f]
            out[f].append(float(np.mean([r["y"][int(np.argmax(model.trees.probability(rows(r, score))))] for r in rs])))
    return {f: round(float(np.mean(v)), 3) for f, v in out.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", nargs="+", required=True)
    ap.add_argument("--pool", required=True)
    ap.add_argument("--index", default=None, help="pool index folder (default: index/eval-pool/<name>-<hash>)")
    ap.add_argument("--train-questions", nargs="*", default=[], help="training files whose rows are added")
    ap.add_argument("--train-limit", type=int, default=800, help="questions per training file (default 800)")
    ap.add_argument("--records", default=None, help="keep the rows in this JSON file and reuse them when it exists")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.records and Path(args.records).is_file():
        recs = json.loads(Path(args.records).read_text(encoding="utf-8"))
    else:
        from qa.evaluation.pool import pool_assistant
        assistant, _ = pool_assistant(args.pool, args.index)
        recs = {"valid": collect(assistant, args.questions, extras=True),
                "train": collect(assistant, args.train_questions, extras=False, limit=args.train_limit)}
        if args.records:
            Path(args.records).write_text(json.dumps(recs), encoding="utf-8")
    valid, train = recs["valid"], recs["train"]
    table = {"the eight features (shipped)": halves(valid, None)}
    for name in ("joint", "raw", "cls", "hit_score", "ranks", "lex", "cos", "type", "dups"):
        table[f"+ {name}"] = halves(valid, name)
    if train:
        table[f"+ rows of {len(train)} training questions"] = halves(valid, None, train)
    files = sorted({r["file"] for r in valid})
    print("| chooser | " + " | ".join(files) + " | mean |\n|---|" + "---:|" * (len(files) + 1))
    for k, v in table.items():
        print(f"| {k} | " + " | ".join(f"{v[f]:.3f}" for f in files) + f" | {np.mean(list(v.values())):.4f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"questions": len(valid), "train_rows": len(train), "table": table},
                                              indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
