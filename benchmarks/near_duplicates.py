"""Near-duplicate detection (qa/ingest/neardup.py) on syndicated copies constructed from real IndoSum articles.

    python benchmarks/near_duplicates.py --corpus /work/shared/data/corpus_indosum_dev.jsonl

A sample of articles gets 1-3 edited copies each, as syndication does (another outlet's dateline or byline
prepended, a paragraph dropped or added, sentences reordered, a few words changed, a "Baca juga:" line, a
boilerplate footer, truncation to the first paragraphs); every text then goes through the ingestion
cleaner (``article_from_raw``). The untouched rest of the corpus stays in: it holds genuinely different
stories on the same topic (follow-ups reusing background paragraphs): hard negatives. Reported: pairwise
precision / recall of the groups against the construction, recall per edit, a parameter sweep, and the
cost (seconds per 1,000 articles; share of an index build at 100k chunks).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import sys
import time
from itertools import combinations
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qa.chunking import chunk_spans  # noqa: E402
from qa.ingest import article_from_raw  # noqa: E402
from qa.ingest.neardup import DEFAULTS, NearDupIndex, connected  # noqa: E402
from qa.ingest.readers import RawArticle  # noqa: E402
from qa.types import Article  # noqa: E402

DATELINES = ["JAKARTA, KOMPAS.com - ", "Jakarta (ANTARA) - ", "Jakarta, Beritasatu.com - ", "JAKARTA, suara.com - ",
             "Liputan6.com, Jakarta - ", "JAKARTA, okezone - ", "Bandung (ANTARA News) - "]
BYLINES = ["Reporter: Rina Suryani", "Penulis: Dedi Kurniawan | Editor: Sri Lestari", "Oleh: Tim Redaksi"]
FOOTERS = ["(ant/dan)", "Editor: Agus Salim\nSumber: ANTARA", "Copyright © 2017 Portal Berita. All rights reserved.",
           "Simak berita terbaru lainnya di kanal kami dan ikuti akun media sosial kami.",
           "Dapatkan update berita pilihan dan breaking news setiap hari. Mari bergabung di kanal Telegram kami."]
SWAPS = {"mengatakan": "menyatakan", "ujar": "kata", "kata": "ujar", "menurut": "berdasarkan", "akan": "bakal",
         "tidak": "tak", "sudah": "telah", "telah": "sudah", "juga": "pun", "namun": "tetapi", "hari": "hari ini",
         "sangat": "amat", "besar": "luas", "banyak": "sejumlah", "saat": "ketika", "ketika": "saat"}
EDITS = ["dateline", "byline", "drop_par", "add_par", "reorder", "words", "baca_juga", "footer", "truncate"]


def load(path: str) -> list[dict]:
    rows, seen = [], set()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                key = (r["doc_id"], r["text"])
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise SystemExit(f"{path}:{n}: bad record ({e}); need fields doc_id, text")
            if key not in seen:
                seen.add(key)
                rows.append(r)
    return rows


def edit(text: str, edits: list[str], rng: random.Random, donors: list[dict]) -> str:
    pars = [p for p in text.split("\n\n") if p.strip()]
    for e in edits:
        if e == "dateline":
            pars[0] = rng.choice(DATELINES) + pars[0]
        elif e == "byline":
            pars.insert(0, rng.choice(BYLINES))
        elif e == "drop_par" and len(pars) > 2:
            del pars[rng.randrange(1, len(pars))]
        elif e == "add_par":
            # a context paragraph from another story of at least 4 paragraphs (never a whole article)
            donor = [p for p in rng.choice(donors)["text"].split("\n\n") if len(p) > 80]
            pars.insert(rng.randrange(1, len(pars) + 1), rng.choice(donor))
        elif e == "reorder":
            for i in rng.sample(range(len(pars)), min(2, len(pars))):
                sents = re.split(r"(?<=[.!?])\s+", pars[i])
                rng.shuffle(sents)
                pars[i] = " ".join(sents)
        elif e == "words":
            words = " ".join(pars).split(" ")
            for i in rng.sample(range(len(pars)), min(3, len(pars))):  # ~3% of the words of 3 paragraphs
                w = pars[i].split(" ")
                for j in rng.sample(range(len(w)), max(1, len(w) // 30)):
                    w[j] = SWAPS.get(w[j].lower(), rng.choice(words))
                pars[i] = " ".join(w)
        elif e == "baca_juga":
            pars.insert(rng.randrange(1, len(pars) + 1), "Baca juga: " + rng.choice(donors)["text"].split(".")[0][:90])
        elif e == "footer":
            pars.append(rng.choice(FOOTERS))
        elif e == "truncate" and len(pars) > 3:
            pars = pars[:max(2, math.ceil(len(pars) * rng.uniform(0.4, 0.7)))]
    return "\n\n".join(pars)


def construct(rows: list[dict], n_sample: int, seed: int) -> tuple[list[Article], list[set[str]], dict[str, list[str]]]:
    """Articles (originals + copies, cleaned), the true groups, and the edits of each copy."""
    rng = random.Random(seed)
    sample = rng.sample(range(len(rows)), min(n_sample, len(rows)))
    raws, truth, edits_of = [], [], {}
    donors = [r for r in rows if sum(len(p) > 80 for p in r["text"].split("\n\n")) >= 4]
    for i, r in enumerate(rows):
        raws.append(RawArticle(id=r["doc_id"], text=r["text"], path="indosum", title=r.get("title"),
                               source=r.get("source"), find_title=False))
    for i in sample:
        r, group = rows[i], {rows[i]["doc_id"]}
        for c in range(rng.randint(1, 3)):
            ed = rng.sample(EDITS, rng.randint(2, 4))
            cid = f"{r['doc_id']}~copy{c}"
            raws.append(RawArticle(id=cid, text=edit(r["text"], ed, rng, donors), path="copy", find_title=False))
            group.add(cid)
            edits_of[cid] = ed
        truth.append(group)
    return [article_from_raw(x) for x in raws], truth, edits_of


def pairs_of(groups) -> set[tuple[str, str]]:
    return {tuple(sorted(p)) for g in groups for p in combinations(sorted(g), 2)}


def score(pred: set, true: set) -> tuple[float, float]:
    tp = len(pred & true)
    return (tp / len(pred) if pred else 1.0), (tp / len(true) if true else 1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", required=True, help="IndoSum JSONL (doc_id, text, ...)")
    ap.add_argument("--sample", type=int, default=400, help="articles that get edited copies (default 400)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--passages_per_s", type=float, default=11.0, help="embedding speed of an index build")
    ap.add_argument("--chunks_per_article", type=float, default=2.0)
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--json", default=str(Path(__file__).resolve().parent / "results" / "near_duplicates.json"),
                    help="where to write the results ('' for nowhere)")
    args = ap.parse_args()
    rows = load(args.corpus)
    arts, truth, edits_of = construct(rows, args.sample, args.seed)
    true_pairs = pairs_of(truth)
    print(f"corpus {len(rows)} articles; {len(truth)} sampled with {len(edits_of)} edited copies; "
          f"{len(arts)} articles in all; {len(true_pairs)} true pairs")

    report: dict = {"corpus": args.corpus, "sample": args.sample, "seed": args.seed, "articles": len(arts),
                    "true_pairs": len(true_pairs), "sweep": []}
    if not args.no_sweep:
        print("\nsweep: k=shingle words, perm=num_perm, lsh=LSH candidate threshold, J=Jaccard threshold, "
              "C=containment threshold (min_shingles %d)" % DEFAULTS["min_shingles"])
        print(f"{'k':>2} {'perm':>4} {'lsh':>4} {'b x r':>6} {'s/1k':>5} {'links':>6} | " +
              " ".join(f"J{j}/C{c}: P R".rjust(16) for j in (0.4, 0.5, 0.6) for c in (0.7, 0.8, 0.9)))
        for k in (3, 4, 5, 7):
            for perm in (32, 64, 128):
                for lsh in (0.2, 0.3, 0.4):
                    idx = NearDupIndex(shingle=k, num_perm=perm, lsh_threshold=lsh, threshold=0.4, containment=0.7)
                    t = time.perf_counter()
                    idx.add_many(arts)
                    dt = time.perf_counter() - t
                    links = idx.links()
                    cells = []
                    for j in (0.4, 0.5, 0.6):
                        for c in (0.7, 0.8, 0.9):
                            small = DEFAULTS["min_shingles"]
                            keep = [(a, b) for a, b, jj, cc in links if jj >= j or
                                    (cc >= c and min(len(idx._sets[a]), len(idx._sets[b])) >= small)]
                            p, r = score(pairs_of(connected(keep)), true_pairs)
                            cells.append(f"{p:.3f} {r:.3f}".rjust(16))
                            report["sweep"].append({
                                "shingle": k, "num_perm": perm, "lsh_threshold": lsh, "threshold": j,
                                "containment": c, "precision": round(p, 4), "recall": round(r, 4),
                                "s_per_1k": round(dt / len(arts) * 1000, 3)})
                    br = f"{idx._lsh.b}x{idx._lsh.r}"
                    head = f"{k:>2} {perm:>4} {lsh:>4} {br:>6} {dt / len(arts) * 1000:5.2f} {len(links):>6} | "
                    print(head + " ".join(cells))

    print(f"\nchosen defaults: {DEFAULTS}")
    idx = NearDupIndex()
    t = time.perf_counter()
    idx.add_many(arts)
    groups = idx.groups()
    dt = time.perf_counter() - t
    pred = pairs_of([g.members for g in groups])
    p, r = score(pred, true_pairs)
    truth_of = {a: frozenset(g) for g in truth for a in g}
    false = sorted(pred - true_pairs)
    print(f"\n| metric | value |\n| --- | --- |")
    print(f"| pairwise precision | {p:.4f} ({len(pred & true_pairs)}/{len(pred)}) |")
    print(f"| pairwise recall | {r:.4f} ({len(pred & true_pairs)}/{len(true_pairs)}) |")
    exact = sum(1 for g in groups if truth_of.get(g.representative) == frozenset(g.members))
    print(f"| groups found / constructed | {len(groups)} / {len(truth)} ({exact} exactly right) |")
    orig_rep = sum(1 for g in groups if "~copy" not in g.representative)
    print(f"| groups whose representative is the untouched original | {orig_rep} / {len(groups)} |")
    sec_per_k = dt / len(arts) * 1000
    print(f"| seconds per 1,000 articles (build + groups) | {sec_per_k:.2f} |")
    n_chunks = sum(len(chunk_spans(a.text)) for a in arts[:len(rows)])
    cpa = n_chunks / len(rows)
    for label, per in (("assumed", args.chunks_per_article), ("measured on IndoSum (chunk_size 700)", cpa)):
        n_art = 100_000 / per
        nd = sec_per_k * n_art / 1000
        embed = 100_000 / args.passages_per_s
        print(f"| share of a 100k-chunk build, {per:.2f} chunks/article ({label}) | "
              f"{nd:.0f} s of {embed:.0f} s embedding = {100 * nd / embed:.2f}% |")
    by_edit: dict[str, list[int]] = {e: [0, 0] for e in EDITS}
    for cid, eds in edits_of.items():
        orig = cid.split("~copy")[0]
        hit = tuple(sorted((cid, orig))) in pred
        for e in eds:
            by_edit[e][0] += hit
            by_edit[e][1] += 1
    print("\nrecall of copy-original pairs by edit (a copy has 2-4 edits):")
    print(" | ".join(f"{e} {h / max(n, 1):.3f} ({n})" for e, (h, n) in by_edit.items()))
    if false:
        print(f"\nfalse pairs ({len(false)}; first 10):")
        ln = idx.links()
        for a, b in false[:10]:
            jc = [(j, c) for x, y, j, c in ln if {x, y} == {a, b}]
            print(f"  {a}  {b}  {jc or 'joined through a third article'}")
    loose = NearDupIndex(threshold=0.2, containment=0.5)
    loose.add_many(arts)
    negs = sorted(((c, j, a, b) for a, b, j, c in loose.links() if (a, b) not in true_pairs), reverse=True)
    print(f"\nclosest negatives (LSH candidates that are different stories, highest containment first; "
          f"the defaults group at J >= {DEFAULTS['threshold']} or C >= {DEFAULTS['containment']}):")
    for c, j, a, b in negs[:6]:
        print(f"  C={c:.3f} J={j:.3f}  {a}  {b}")
    missed = sorted(true_pairs - pred)
    if missed:
        print(f"\nmissed pairs ({len(missed)}; first 10, with edits of the copy):")
        sets = idx._sets
        for a, b in missed[:10]:
            j, c = NearDupIndex._similarity(sets[a], sets[b])
            print(f"  {a} {b} J={j:.3f} C={c:.3f} sizes={len(sets[a])},{len(sets[b])} {edits_of.get(b) or edits_of.get(a)}")
    report.update(defaults=DEFAULTS, precision=round(p, 4), recall=round(r, 4), groups=len(groups),
                  groups_exact=exact, representative_is_original=orig_rep, s_per_1k=round(sec_per_k, 3),
                  chunks_per_article_measured=round(cpa, 2),
                  recall_by_edit={e: round(h / max(n, 1), 4) for e, (h, n) in by_edit.items()},
                  false_pairs=len(false), missed_pairs=len(missed))
    report["cost_by_size"] = cost_by_size(arts)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")




def cost_by_size(arts: list[Article]) -> list[dict]:
    """Seconds per 1,000 articles and memory of the defaults at growing sizes (candidates grow faster than n)."""
    import tracemalloc

    print("\ncost of the defaults by corpus size:\n| articles | s per 1k | LSH candidate pairs per article (each verified) | memory per article (Python heap) |")
    print("| --- | --- | --- | --- |")
    rows = []
    for n in sorted({min(1000, len(arts)), min(2000, len(arts)), len(arts)}):
        idx = NearDupIndex()
        t = time.perf_counter()
        idx.add_many(arts[:n])
        dt = time.perf_counter() - t
        lsh = idx._lsh_index()
        cands = sum(len(lsh.query(idx._minhash(idx._sketch[a]))) - 1 for a in idx._sets if len(idx._sets[a])) / 2
        tracemalloc.start()
        again = NearDupIndex()
        again.add_many(arts[:n])
        mem = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del again
        print(f"| {n} | {dt / n * 1000:.2f} | {cands / n:.2f} | {mem / n / 1024:.1f} KiB |")
        rows.append({"articles": n, "s_per_1k": round(dt / n * 1000, 3),
                     "candidates_per_article": round(cands / n, 3), "bytes_per_article": round(mem / n)})
    return rows
if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
