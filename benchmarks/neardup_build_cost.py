#!/usr/bin/env python
"""The index-time cost of near-duplicate detection alone, on a corpus folder (e.g. the 100k-chunk corpus
``benchmarks/scale.py`` writes): a full pass (sketch every article, save the files, list the groups, as
``build_index``'s "near-duplicates" stage does with no previous index) and an incremental one (the
previous files reloaded, ``--changed`` of the articles edited).

    python benchmarks/neardup_build_cost.py --corpus-dir /tmp/qa-scale/n100000/corpus [--changed 0.01]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus-dir", required=True)
    p.add_argument("--changed", type=float, default=0.01, help="share of articles edited for the incremental pass")
    p.add_argument("--json", help="write the result here too")
    a = p.parse_args()
    from qa.ingest import content_hash, load_corpus
    from qa.stores.embedded_index import duplicates as dup_files
    from qa.stores.embedded_index.files import write_jsonl

    t = time.perf_counter()
    articles = load_corpus(a.corpus_dir, progress=False).articles
    read_s = time.perf_counter() - t
    work = Path(tempfile.mkdtemp(prefix="neardup-cost-"))
    try:
        t = time.perf_counter()
        idx, sketched = dup_files.update(articles, None)
        sketch_s = time.perf_counter() - t
        t = time.perf_counter()
        groups = dup_files.save(idx, work)
        save_s = time.perf_counter() - t
        write_jsonl(work / "articles.jsonl", (x.to_dict() for x in articles))  # what the next build reads
        step = max(1, int(1 / a.changed)) if a.changed > 0 else len(articles) + 1
        edited = [dataclasses.replace(x, text=x.text + " Tambahan.", content_hash=content_hash(x.text + " Tambahan."))
                  if i % step == 0 else x for i, x in enumerate(articles)]
        t = time.perf_counter()
        idx2, resketched = dup_files.update(edited, work)
        inc_s = time.perf_counter() - t
        t = time.perf_counter()
        out2 = work / "next"
        out2.mkdir()
        groups2 = dup_files.save(idx2, out2)
        inc_save_s = time.perf_counter() - t
        sizes = {f: (work / f).stat().st_size for f in dup_files.FILES}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res = {"corpus_dir": a.corpus_dir, "articles": len(articles), "read_clean_s": round(read_s, 2),
           "full": {"sketch_link_s": round(sketch_s, 2), "save_groups_s": round(save_s, 2),
                    "total_s": round(sketch_s + save_s, 2), "sketched": sketched, "groups": len(groups),
                    "grouped_articles": sum(len(g.members) for g in groups)},
           "incremental": {"changed": resketched, "update_s": round(inc_s, 2), "save_groups_s": round(inc_save_s, 2),
                           "total_s": round(inc_s + inc_save_s, 2), "groups": len(groups2)},
           "file_bytes": sizes}
    print(json.dumps(res, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
