"""Filters (source, date range, article ids) on retrieve/ask/CLI, pushed down into the embedded store:
unit tests of :class:`qa.Filter`, and a property test of 1,000 random filtered queries on real indexes
(the real E5 model, real FAISS flat and HNSW, real rank-bm25 and bm25s): never a hit outside the
filter, and exactly the unfiltered ranking restricted to the filter, ``k`` deep when ``k`` match."""
from __future__ import annotations

import datetime
import json
import random

import pytest

from conftest import CORPUS
from qa import Assistant, Config, Filter, build_index, load_corpus
from qa.cli import main as cli
from qa.stores.embedded_index import dense as dense_files

SOURCES = ["ANTARA", "Kompas", "Tempo", "detikNews", None]


# -- the Filter object --------------------------------------------------------------------------
def test_filter_normalises_and_validates():
    f = Filter(source="ANTARA", date_from="2021", date_to="2021-02")
    assert f.source == ("ANTARA",) and f.date_from == "2021-01-01" and f.date_to == "2021-02-28"
    assert Filter(date_to="2020-02").date_to == "2020-02-29"  # leap year
    assert Filter(date_from=datetime.date(2021, 7, 3)).date_from == "2021-07-03"
    assert Filter.of({}) is None and Filter.of(None) is None and Filter.of(Filter()) is None
    assert Filter.of({"source": ["a", "b"]}).source == ("a", "b")
    for bad, msg in [({"date_from": "2021-13"}, "not a valid date"), ({"date_to": "July 2021"}, "YYYY"),
                     ({"date_from": "2022", "date_to": "2021"}, "after"), ({"sorce": "x"}, "allowed: source"),
                     ({"source": [""]}, "non-empty"), ({"source": 3}, "string"), ({"date_from": 2021}, "ISO")]:
        with pytest.raises(ValueError, match=msg):
            Filter.of(bad)
    with pytest.raises(ValueError, match="qa.Filter or a dict"):
        Filter.of("ANTARA")


def test_filter_matches_articles():
    from qa.types import Article

    a = Article(id="x", title=None, text="t", source="  antara ", date="2021-07-15")
    none = Article(id="y", title=None, text="t")
    assert Filter(source="ANTARA").matches(a) and not Filter(source="ANTARA").matches(none)
    assert Filter(source=["Kompas", "Antara"]).matches(a)
    assert Filter(date_from="2021-07").matches(a) and not Filter(date_from="2021-07-16").matches(a)
    assert Filter(date_to="2021-07-15").matches(a) and not Filter(date_to="2021-06").matches(a)
    assert not Filter(date_to="2030").matches(none)  # no date: never inside a date range
    assert Filter(article_ids=["x"]).matches(a) and not Filter(article_ids=["x"]).matches(none)
    assert Filter(source="antara", date_from="2021").describe() == "source antara · 2021-01-01..…"
    assert Filter(source=["a", "b"], article_ids=["x"]).describe("id") == "sumber a atau b · 1 artikel"


# -- a real index of articles with several sources and dates -------------------------------------
def _news_corpus(folder) -> dict[str, dict]:
    """The five bundled articles cut into 2-paragraph articles, each given an outlet and a date
    (some none), as a JSONL corpus; returns the metadata by id."""
    rng = random.Random(17)
    rows = []
    for art in load_corpus(CORPUS).articles:
        paras = art.text.split("\n\n")
        for i in range(0, len(paras), 2):
            text = "\n\n".join(paras[i:i + 2])
            if len(text) < 80:
                continue
            day = datetime.date(2020, 1, 1) + datetime.timedelta(days=rng.randrange(0, 900))
            rows.append({"id": f"n{len(rows):03d}", "title": f"Berita {len(rows)}", "text": text,
                         "source": rng.choice(SOURCES), "date": day.isoformat() if rng.random() < 0.85 else None})
    folder.mkdir()
    with open(folder / "news.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({k: v for k, v in r.items() if v is not None}, ensure_ascii=False) + "\n")
    return {r["id"]: r for r in rows}


@pytest.fixture(scope="module")
def news(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("news")
    meta = _news_corpus(root / "corpus")
    out = {}
    for name, cfg in {"flat": Config(), "hnsw": Config(dense_index="hnsw", lexical_engine="bm25s")}.items():
        build_index(root / "corpus", root / name, cfg, progress=False, embedder=embedder)
        out[name] = Assistant.load(root / name, embedder=embedder)
    assert out["hnsw"].store.stats().dense_index == "hnsw" and out["flat"].store.stats().dense_index == "flat"
    return meta, out, root


def _allowed(meta: dict, f: Filter) -> set[str]:
    """The article ids passing ``f``, computed here without the library's matching code."""
    out = set()
    for aid, r in meta.items():
        if f.article_ids and aid not in f.article_ids:
            continue
        if f.source and (r["source"] or "").lower() not in {s.lower() for s in f.source}:
            continue
        if (f.date_from or f.date_to) and not r["date"]:
            continue
        if f.date_from and r["date"] < f.date_from or f.date_to and r["date"] > f.date_to:
            continue
        out.add(aid)
    return out


def _random_filter(rng: random.Random, ids: list[str]) -> Filter:
    kw = {}
    if rng.random() < 0.5:
        kw["source"] = rng.sample([s for s in SOURCES if s] + ["Republika"], rng.randint(1, 2))
        if rng.random() < 0.3:
            kw["source"] = [s.upper() for s in kw["source"]]
    if rng.random() < 0.5:
        a = datetime.date(2020, 1, 1) + datetime.timedelta(days=rng.randrange(0, 900))
        b = a + datetime.timedelta(days=rng.randrange(0, 400))
        kw["date_from" if rng.random() < 0.7 else "date_to"] = a.isoformat()
        if rng.random() < 0.5:
            kw["date_to"] = b.isoformat()
            kw.setdefault("date_from", a.isoformat())
    if rng.random() < 0.25 or not kw:
        kw["article_ids"] = rng.sample(ids, rng.randint(1, 6))
    return Filter(**kw)


@pytest.mark.parametrize("selector", ["exact", "hnsw-walk"])
def test_1000_random_filtered_queries_stay_inside_and_fill_k(news, monkeypatch, selector):
    meta, assistants, _ = news
    if selector == "hnsw-walk":  # HNSW walks its graph with the id selector (else: an exact scan of the allowed ids)
        monkeypatch.setattr(dense_files, "EXACT_MAX", 0)
    rng = random.Random(5 if selector == "exact" else 6)
    ids = sorted(meta)
    sentences = [s for r in meta.values() for s in r["text"].replace("\n", " ").split(". ") if len(s) > 30]
    questions = [" ".join(s.split()[:rng.randint(3, 8)]) for s in rng.sample(sentences, 40)]
    questions += ["vaksinasi warga binaan", "Siapa Kalapas Amuntai?", "klaster ASN Banten", "dosis booster"]
    checked = filled = 0
    for _ in range(500):
        name = rng.choice(["flat", "hnsw"])
        a = assistants[name]
        q, f, k = rng.choice(questions), _random_filter(rng, ids), rng.randint(1, 8)
        mode = rng.choice(["hybrid", "bm25", "dense"])
        allowed = _allowed(meta, f)
        hits = a.retrieve(q, k=k, mode=mode, filter=f)
        outside = [h.article.id for h in hits if h.article.id not in allowed]
        assert not outside, (q, f, mode, name, outside)
        n_allowed = sum(1 for c in a.store.chunks if c.article_id in allowed)
        if mode != "bm25":  # dense (and hybrid, which falls back on it) can return any allowed passage
            assert len(hits) == min(k, n_allowed), (q, f, mode, name, len(hits), n_allowed)
            filled += len(hits) == k
        else:  # BM25 returns passages sharing a word: the unfiltered full ranking, restricted
            everything = a.retrieve(q, k=len(a), mode="bm25")
            want = [h for h in everything if h.article.id in allowed][:k]
            assert [h.chunk.id for h in hits] == [h.chunk.id for h in want], (q, f, name)
        if mode == "dense" and name == "flat":  # exact: the unfiltered ranking restricted to the filter
            everything = a.retrieve(q, k=len(a), mode="dense")
            want = [h for h in everything if h.article.id in allowed][:k]
            assert [round(h.score, 4) for h in hits] == [round(h.score, 4) for h in want], (q, f)
        checked += 1
    assert checked == 500 and filled > 100  # two parametrisations: 1,000 queries


def test_hnsw_walk_under_a_filter_matches_the_exact_scan(news, monkeypatch):
    """The widened HNSW walk with an id selector finds what the exact scan of the allowed ids finds
    (a 50-chunk index: the walk reaches every node), and a filter no chunk passes gives nothing."""
    import numpy as np

    meta, assistants, _ = news
    a = assistants["hnsw"]
    store = a.store
    v = a.pipeline.embed_text("vaksinasi warga binaan lapas")
    mask = store._mask(Filter(source=["ANTARA", "Kompas", "Tempo"]))
    exact = dense_files.search(store.faiss_index, v, 5, mask)
    monkeypatch.setattr(dense_files, "EXACT_MAX", 0)
    walked = dense_files.search(store.faiss_index, v, 5, mask)
    assert [i for i, _ in walked] == [i for i, _ in exact] and all(mask[i] for i, _ in walked)
    assert dense_files.search(store.faiss_index, v, 5, np.zeros(len(a), dtype=bool)) == []


def test_filter_is_pushed_into_the_searches_not_applied_after(news):
    """With candidates = k, filtering after the search would return fewer than k: the store searches
    inside the filter, so k passages of a low-ranked article still come back."""
    meta, assistants, _ = news
    a = assistants["flat"]
    q = "Siapa Kalapas Kelas IIB Amuntai?"
    top = {h.article.id for h in a.retrieve(q, k=3, candidates=3)}
    by_article: dict[str, int] = {}
    for c in a.store.chunks:
        by_article[c.article_id] = by_article.get(c.article_id, 0) + 1
    far = next(aid for aid, n in sorted(by_article.items()) if aid not in top and n >= 2)
    for mode in ("hybrid", "dense", "bm25"):
        hits = a.retrieve(q, k=2, candidates=2, mode=mode, filter={"article_ids": [far]})
        assert all(h.article.id == far for h in hits)
        if mode != "bm25":
            assert len(hits) == 2


def test_ask_answers_only_from_the_filter(news):
    meta, assistants, _ = news
    a = assistants["flat"]
    q = "Berapa warga binaan yang divaksin?"
    for source in ("ANTARA", "Tempo"):
        ans = a.ask(q, filter={"source": source})
        assert all(c.article.source == source for c in ans.citations)
        assert all(h.article.source == source for h in ans.hits)
    ans = a.ask(q, filter={"source": "Republika"})  # nothing passes: an answer that names the filter, no error
    assert not ans.found and not ans.citations and not ans.hits
    assert "filter ini (sumber Republika)" in ans.text and "perluas" in ans.text, ans.text
    streamed = list(a.ask_stream("How many inmates were vaccinated?", filter={"source": "Republika"}))
    assert streamed[-1].text.startswith("No article passing the filter (source Republika)"), streamed[-1].text
    assert a.ask(q, filter={"source": "ANTARA"}).text != ans.text
    conv = a.conversation()
    first = conv.ask("Siapa Kalapas Kelas IIB Amuntai?", filter={"date_from": "2021"})
    assert all(h.article.date >= "2021-01-01" for h in first.hits)
    with pytest.raises(ValueError, match="date_from"):
        a.ask(q, filter={"date_from": "kemarin"})


def test_cli_filters(news, capsys):
    meta, _, root = news
    antara = {aid for aid, r in meta.items() if r["source"] == "ANTARA"}
    assert cli(["search", "vaksinasi", "--index", str(root / "flat"), "--source", "antara", "-k", "4", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits and {h["article_id"] for h in hits} <= antara and all(h["source"] == "ANTARA" for h in hits)
    assert cli(["search", "vaksinasi", "--index", str(root / "flat"), "--since", "2021-03", "--until", "2021",
                "--json"]) == 0
    assert all("2021-03-01" <= h["date"] <= "2021-12-31" for h in json.loads(capsys.readouterr().out))
    assert cli(["ask", "Siapa Kalapas Kelas IIB Amuntai?", "--index", str(root / "flat"), "--source", "Republika"]) == 0
    assert "Tidak ada artikel dengan filter ini (sumber Republika)" in capsys.readouterr().out
    assert cli(["search", "vaksin", "--index", str(root / "flat"), "--since", "2021-13"]) == 2
    assert "--since '2021-13' is not a valid date" in capsys.readouterr().err


def test_news_archive_doc_example_runs(tmp_path, monkeypatch):
    """docs/news-archive.md's Python example runs as written (on a copy of the bundled corpus)."""
    import re
    import shutil

    from conftest import ROOT

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "news-archive.md").read_text(encoding="utf-8"),
                        flags=re.S)
    assert blocks
    shutil.copytree(CORPUS, tmp_path / "corpus")
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, "docs/news-archive.md", "exec"), {"__name__": "__doc__"})
    assert len(Assistant.load(tmp_path / "index").articles) == 5  # the example removed what it added
    assert any((tmp_path / "corpus" / ".trash").iterdir())
