"""Date normalisation (qa/ingest/dates.py): accuracy on the labelled fixture, coverage and speed on IndoSum.

    python benchmarks/dates.py --indosum /work/shared/data/corpus_indosum_dev.jsonl \
        [--before d0def60] [--json benchmarks/results/dates.json]

Fixture: ``tests/fixtures/dates.jsonl`` (hand-labelled), scored with ``article_date``.
IndoSum: its ``date`` field is empty, so every date comes from the text. The ``doc_id`` holds a Unix
timestamp (``indosum-1490674536-...``, apparently crawl time, days to weeks after publication): it is
used (a) as a ``base_year`` for mentions without a year ("Senin (27 / 3)") in the second setting, and
(b) as a rough check: the share of article dates within 7 / 31 days before or after it. ``--before
REV`` also scores the ``parse_date`` of qa/ingest/clean.py at that git revision (the old regexes).
"""
from __future__ import annotations

import argparse
import datetime
import json
import re
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.ingest.dates import article_date  # noqa: E402


def fixture_scores() -> list[tuple[str, str]]:
    cases = [json.loads(x) for x in (ROOT / "tests/fixtures/dates.jsonl").read_text(encoding="utf-8").splitlines() if x]

    def pred(c: dict) -> str | None:
        m = article_date(c["text"], metadata_date=c.get("metadata_date"), base_year=c.get("base_year"))
        return m.iso if m else None

    groups = {"all": cases, "dated (expected ISO)": [c for c in cases if c["expected"]],
              "no date expected (impossible / no year)": [c for c in cases if not c["expected"] and not c.get("negative")],
              "hard negatives": [c for c in cases if c.get("negative")]}
    rows = []
    for name, cs in groups.items():
        ok = sum(pred(c) == c["expected"] for c in cs)
        rows.append((f"fixture: {name}", f"{ok}/{len(cs)} = {ok / len(cs):.3f}"))
    return rows


def _old_parse_date(rev: str):
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:qa/ingest/clean.py"], check=True,
                         capture_output=True, text=True).stdout
    module = types.ModuleType("old_clean")
    sys.modules["old_clean"] = module  # dataclasses look their module up
    exec(compile(src, f"{rev}:qa/ingest/clean.py", "exec"), module.__dict__)
    return module.parse_date


def indosum_scores(path: Path, before: str | None) -> list[tuple[str, str]]:
    docs = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    stamps = {}
    for d in docs:
        m = re.match(r"indosum-(\d{9,10})-", d["doc_id"])
        if m:
            stamps[d["doc_id"]] = datetime.datetime.fromtimestamp(int(m.group(1)), datetime.timezone.utc).date()
    rows = [("indosum: articles / with a doc_id timestamp", f"{len(docs)} / {len(stamps)}")]
    settings = [("text only", lambda d: {}),
                ("text + base_year from doc_id", lambda d: {"base_year": stamps[d["doc_id"]].year} if d["doc_id"] in stamps else {})]
    for name, kw in settings:
        times, dated, inferred, near7, near31, checked = [], 0, 0, 0, 0, 0
        for d in docs:
            t = time.perf_counter()
            m = article_date(d["text"], **kw(d))
            times.append((time.perf_counter() - t) * 1000)
            if not m:
                continue
            dated += 1
            inferred += m.year_inferred
            if d["doc_id"] in stamps:
                checked += 1
                gap = abs((m.date - stamps[d["doc_id"]]).days)
                near7 += gap <= 7
                near31 += gap <= 31
        times.sort()
        rows += [(f"indosum [{name}]: articles with a date", f"{dated} ({dated / len(docs):.1%}); year from context: {inferred}"),
                 (f"indosum [{name}]: date within 7 / 31 days of doc_id time",
                  f"{near7 / max(checked, 1):.1%} / {near31 / max(checked, 1):.1%} of {checked}"),
                 (f"indosum [{name}]: ms per article median / p95 / max",
                  f"{statistics.median(times):.2f} / {times[int(0.95 * len(times))]:.2f} / {times[-1]:.1f}")]
    if before:
        old = _old_parse_date(before)
        times, dated = [], 0
        for d in docs:
            t = time.perf_counter()
            dated += old(d["text"]) is not None
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        rows += [(f"indosum [clean.parse_date at {before}]: articles with a date", f"{dated} ({dated / len(docs):.1%})"),
                 (f"indosum [clean.parse_date at {before}]: ms median / p95",
                  f"{statistics.median(times):.2f} / {times[int(0.95 * len(times))]:.2f}")]
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--indosum", type=Path, help="corpus_indosum_dev.jsonl (optional)")
    p.add_argument("--before", help="git revision whose clean.parse_date to compare with")
    p.add_argument("--json", type=Path, help="write the table here as JSON")
    a = p.parse_args()
    t0 = time.perf_counter()
    article_date("Selasa 15 September 2020")  # dateparser's first call loads its language data
    rows = [("first call (imports and loads dateparser), ms", f"{(time.perf_counter() - t0) * 1000:.0f}")]
    rows += fixture_scores()
    if a.indosum:
        rows += indosum_scores(a.indosum, a.before)
    width = max(len(k) for k, _ in rows)
    print(f"{'measure':<{width}}  value\n{'-' * width}  -----")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    if a.json:
        a.json.write_text(json.dumps(dict(rows), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
