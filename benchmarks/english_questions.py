"""English questions over Indonesian articles: the same dev questions asked in Indonesian and in English.

    python benchmarks/english_questions.py --questions ../shared/data/qa_facqa_valid.jsonl \
        ../shared/data/qa_tydiqa_id_valid.jsonl ../shared/data/qa_idkmrc_valid.jsonl \
        --pool ../shared/data/passages_dev_pool.jsonl [--english FILE ...] [--lexicon FILE] [--json OUT]

``benchmarks/data/<set>_en.jsonl`` (the default ``--english`` for ``qa_<set>.jsonl``) hold English
wordings, written by hand for this project, of the first 40 questions of FacQA valid (news) and TyDi
valid (Wikipedia) and the first 44 of IDK-MRC valid (21 of them unanswerable): ids and wordings only;
the passages and gold answers come from ``--questions``. The dev sets hold no English question, and the
assistant answers English questions over Indonesian articles: this measures how far from the
Indonesian wording an English one lands, with the English -> Indonesian word list (``[retrieval]
translate_questions``, ``qa/answer/models/LEXICON.md``: the query gains the Indonesian words; the
question is read as asked) and without it.
``--lexicon`` swaps in another word list file (to compare versions). One row a set and setting: hybrid
R@1 / R@5 (by story), answers holding a gold answer, lead exact match / token F1, the share answered,
the reader given the gold passage, and abstention on the unanswerable questions.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
HERE = Path(__file__).resolve().parent
KEEP = ("found", "confidence", "lead", "contains_gold", "em", "f1")  # of each answer record, for the JSON


def merged(questions: str, english: str, out: Path) -> int:
    """Write the ``--questions`` rows that have an English wording, with it as ``question_en``."""
    wording = {}
    for n, line in enumerate(Path(english).read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            row = json.loads(line)
            if not isinstance(row.get("id"), str) or not isinstance(row.get("question"), str):
                raise ValueError(f"{english}:{n}: expected {{\"id\": ..., \"question\": ...}}")
            wording[row["id"]] = row["question"]
    rows = []
    for line in Path(questions).read_text(encoding="utf-8").splitlines():
        if line.strip() and (row := json.loads(line)).get("id") in wording:
            rows.append({**row, "question_en": wording[row["id"]]})
    missing = set(wording) - {r["id"] for r in rows}
    if missing:
        raise ValueError(f"{english}: ids not in {questions}: {', '.join(sorted(missing)[:5])}")
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return len(rows)


def row(name: str, report) -> dict:
    hyb = report.retrieval["hybrid"].metrics
    a = report.answers
    ro = a.reader_only
    return {"setting": name, "R@1": hyb.get("recall@1"), "R@5": hyb.get("recall@5"), "contains_gold": a.contains_gold,
            "lead_em": a.lead_em, "lead_f1": a.lead_f1, "answered": a.answered_share,
            "reader_only_f1": ro.lead_f1 if ro else None, "abstention_precision": a.abstention_precision,
            "abstention_recall": a.abstention_recall,
            "abstention_f1": (2 * a.abstention_precision * a.abstention_recall / (a.abstention_precision + a.abstention_recall)
                              if a.abstention_precision and a.abstention_recall else None)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", nargs="+", required=True,
                    help="dev question files (../shared/data/qa_facqa_valid.jsonl, qa_tydiqa_id_valid.jsonl)")
    ap.add_argument("--pool", required=True, help="the dev passage pool (../shared/data/passages_dev_pool.jsonl)")
    ap.add_argument("--english", nargs="+", help="English wordings, one file per --questions file "
                    "(default: benchmarks/data/<name without qa_>_en.jsonl)")
    ap.add_argument("--index", help="the pool's index folder (default: qa eval's cache for the pool)")
    ap.add_argument("--lexicon", help="another English -> Indonesian word list file for the English rows")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    import qa.lexicon
    from qa.evaluation import evaluate, pool_assistant, read_questions, remap_gold
    from qa.evaluation.pool import pool_index_dir

    if args.lexicon:
        qa.lexicon.PATH = Path(args.lexicon)
        qa.lexicon.packaged.cache_clear()
    from qa import Assistant

    index = Path(args.index) if args.index else pool_index_dir(args.pool)
    base, pool = pool_assistant(args.pool, index, Assistant.load(index, verify=False).config)
    english = args.english or [str(HERE / "data" / f"{Path(q).stem.removeprefix('qa_')}_en.jsonl") for q in args.questions]
    if len(english) != len(args.questions):
        ap.error("give one --english file per --questions file")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for questions, wordings in zip(args.questions, english):
            f = Path(tmp) / "questions.jsonl"
            n = merged(questions, wordings, f)
            for name, field, translate in [("Indonesian, as in the set", "question", True),
                                           ("English, without the word list", "question_en", False),
                                           ("English, with the word list", "question_en", True)]:
                qs = remap_gold(read_questions(f, question_field=field), pool.duplicates)
                a = type(base)(base.store, base.config.replace(translate_questions=translate), embedder=base.embedder,
                               index_dir=base.index_dir)
                report = evaluate(a, qs, k=10, reader_only=True)
                rows.append({"set": Path(questions).stem, "questions": n, **row(name, report)})
                rows[-1]["per_question"] = [{"id": r.id, "question": r.question, "gold_rank": r.gold_rank.get("hybrid"),
                                             **{k: (r.answer or {}).get(k) for k in KEEP}} for r in report.results]
    fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    print(f"index {index}" + (f", word list {args.lexicon}" if args.lexicon else ""))
    print("| set | setting | hybrid R@1 | R@5 | answer holds gold | lead EM | lead F1 | answered | reader-only F1 "
          "| abstention P / R / F1 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['set']} ({r['questions']}) | {r['setting']} | {fmt(r['R@1'])} | {fmt(r['R@5'])} | {fmt(r['contains_gold'])} "
              f"| {fmt(r['lead_em'])} | {fmt(r['lead_f1'])} | {fmt(r['answered'])} | {fmt(r['reader_only_f1'])} "
              f"| {' / '.join(fmt(r[k]) for k in ('abstention_precision', 'abstention_recall', 'abstention_f1'))} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"lexicon": args.lexicon, "rows": rows}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
