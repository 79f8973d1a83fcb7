"""Large-index engines (bm25s, HNSW, float16 vectors) and incremental updates, on real components."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import CORPUS, FIXTURES, read_jsonl
from qa import Assistant, Config, build_index
from qa.analyzer import Analyzer
from qa.lexical import make_lexical
from qa.stores import read_manifest
from qa.stores.embedded_index.load import load_index
from qa.stores.passages import index_text

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
# every engine choice a large index makes, forced on the small corpus
SCALE = dict(lexical_engine="bm25s", dense_index="hnsw", vector_dtype="float16")


def _questions() -> list[str]:
    return [r["question"] for r in read_jsonl(FIXTURES / "retrieval_questions.jsonl")]


def _tokens(index: Path) -> tuple[Analyzer, list[list[str]]]:
    li = load_index(index)
    an = Analyzer()
    cfg = Config()
    return an, [an.tokens(index_text(c.text, li.articles[c.article_id], cfg)) for c in li.chunks]


def test_bm25s_ranks_and_scores_like_rank_bm25(seed_index):
    an, toks = _tokens(seed_index)
    a = make_lexical(toks, k1=1.5, b=0.75)
    b = make_lexical(toks, engine="bm25s", k1=1.5, b=0.75)
    for q in _questions() + ["vaksin", "Kalapas Amuntai", "tidak ada kata ini xyzzy"]:
        ra, rb = a.search(an.tokens(q), 10), b.search(an.tokens(q), 10)
        assert [d for d, _ in ra] == [d for d, _ in rb], q
        assert np.allclose([s for _, s in ra], [s for _, s in rb], rtol=1e-5), q
        ids = list(range(len(toks)))
        assert np.allclose(a.scores(an.tokens(q), ids), b.scores(an.tokens(q), ids), rtol=1e-5, atol=1e-6)
    # the IDF the answerer uses is rank-bm25's for both engines (epsilon floor included)
    words = {w for t in toks for w in t}
    assert max(abs(a.idf(w) - b.idf(w)) for w in words) < 1e-9
    assert a.max_idf == pytest.approx(b.max_idf) and b.idf("xyzzy") == 0.0


@pytest.mark.parametrize("engine", ["rank_bm25", "bm25s"])
def test_bm25_finds_the_words_of_a_tiny_index(engine):
    """One or two chunks: Okapi's IDF of a word in one of two chunks is log(1.5 / 1.5) = 0 and in the
    only chunk negative, so rank-bm25's own floor (0.25 x a mean IDF that is 0 or less) scored every
    word nothing and BM25 found no passage; the floor is now at least 0.25."""
    two = make_lexical([["lapas", "cipinang", "vaksin"], ["lapas", "amuntai", "vaksin"]], engine=engine, k1=1.5, b=0.75)
    assert [d for d, _ in two.search(["cipinang"], 5)] == [0]
    assert [d for d, _ in two.search(["amuntai", "vaksin"], 5)][0] == 1
    assert two.idf("cipinang") == pytest.approx(0.25) and two.idf("xyzzy") == 0.0
    one = make_lexical([["lapas", "porong", "narapidana"]], engine=engine, k1=1.5, b=0.75)
    assert [d for d, _ in one.search(["narapidana", "porong"], 5)] == [0]


def test_a_two_article_index_finds_a_title_word_by_bm25(tmp_path, embedder):
    """Two short articles, one passage each: every word of one of them is in half the passages
    (IDF 0 under rank-bm25's rule), so BM25 found nothing for "Cipinang" (issue seen by a new user)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rows = [{"id": "a", "title": "Vaksinasi di Lapas Cipinang",
             "text": "Sebanyak 500 narapidana di Lapas Cipinang menerima vaksin dosis pertama pada Senin."},
            {"id": "b", "title": "Vaksinasi di Rutan Porong",
             "text": "Rutan Porong memvaksin 70 tahanan dengan dosis kedua pada Selasa."}]
    (corpus / "two.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    build_index(corpus, tmp_path / "index", progress=False, embedder=embedder)
    a = Assistant.load(tmp_path / "index", embedder=embedder)
    assert len(a.store.chunks) == 2
    hits = a.retrieve("Cipinang", k=3, mode="bm25")
    assert [h.article.id for h in hits] == ["a"]
    assert a.retrieve("narapidana vaksin", k=3, mode="bm25")[0].article.id == "a"


@pytest.mark.skipif(not (SHARED / "passages_dev_pool.jsonl").is_file(), reason="needs ../shared/data (dev pool)")
def test_bm25s_parity_on_dev_pool():
    """Same top-10 as rank-bm25 for the dev questions over the 5.6k-passage dev pool.

    Tolerance: scores agree to float32 precision; the engines differ only for a word found in more
    than half of the passages (rank-bm25 floors its negative IDF at 0.25 x mean IDF, bm25s at 0),
    which after stopword removal is rare. Measured: 1477 of 1477 questions, same top-10 in the
    same order; 99% is required so that a float32 near-tie cannot fail the test."""
    an = Analyzer()
    toks = [an.tokens(r["text"]) for r in read_jsonl(SHARED / "passages_dev_pool.jsonl")]
    a, b = make_lexical(toks, k1=1.5, b=0.75), make_lexical(toks, engine="bm25s", k1=1.5, b=0.75)
    qs = [an.tokens(r["question"]) for f in ("qa_tydiqa_id_valid", "qa_facqa_valid")
          for r in read_jsonl(SHARED / f"{f}.jsonl")]
    same = sum([d for d, _ in a.search(q, 10)] == [d for d, _ in b.search(q, 10)] for q in qs)
    assert same / len(qs) >= 0.99, f"{same}/{len(qs)} questions with the same top-10"


def test_scale_settings_build_store_and_serve(tmp_path, embedder, seed_index):
    index = tmp_path / "index"
    build_index(CORPUS, index, Config(**SCALE), progress=False, embedder=embedder)
    m = read_manifest(index)
    assert m["scale"] == SCALE
    assert any(f.startswith("bm25s/") for f in m["files"])
    data = index / m["data_dir"]
    assert np.load(data / "vectors.npy", mmap_mode="r").dtype == np.float16
    big = Assistant.load(index, embedder=embedder)
    small = Assistant.load(seed_index, embedder=embedder)
    assert read_manifest(seed_index)["scale"] == {"lexical_engine": "rank_bm25", "dense_index": "flat",
                                                  "vector_dtype": "float32"}
    assert big.store.lexical.engine == "bm25s" and small.store.lexical.engine == "rank_bm25"
    assert hasattr(big.store.faiss_index, "hnsw") and big.store.faiss_index.hnsw.efSearch == Config().hnsw_ef_search
    agree = {"bm25": 0, "dense": 0, "hybrid": 0}
    qs = _questions()
    for q in qs:
        for mode in agree:
            hb = [(h.article.id, h.start) for h in big.retrieve(q, k=5, mode=mode)]
            hs = [(h.article.id, h.start) for h in small.retrieve(q, k=5, mode=mode)]
            agree[mode] += hb[:1] == hs[:1]
            if mode == "bm25":
                assert hb == hs, q
    # float16 vectors and HNSW change dense scores in the 3rd decimal at most: same best passage
    assert agree["dense"] >= len(qs) - 1 and agree["hybrid"] >= len(qs) - 1, agree


def test_bm25s_index_with_other_k1_is_rebuilt_right(tmp_path, embedder):
    index = tmp_path / "index"
    build_index(CORPUS, index, Config(lexical_engine="bm25s"), progress=False, embedder=embedder)
    a = Assistant.load(index, Config(lexical_engine="bm25s", bm25_k1=1.2, bm25_b=0.5), embedder=embedder)
    assert a.store.lexical.engine == "bm25s" and (a.store.lexical.k1, a.store.lexical.b) == (1.2, 0.5)
    ref = Assistant.load(index, Config(lexical_engine="bm25s"), embedder=embedder)
    an, toks = _tokens(index)
    okapi = make_lexical(toks, k1=1.2, b=0.5)
    for q in _questions()[:10]:
        assert [d for d, _ in a.store.lexical.search(an.tokens(q), 10)] == [d for d, _ in okapi.search(an.tokens(q), 10)]
    assert ref.store.lexical.k1 == 1.5


def _chunk_hashes(index: Path) -> set[str]:
    data = index / read_manifest(index)["data_dir"]
    return {json.loads(line)["embed_hash"] for line in (data / "chunks.jsonl").read_text(encoding="utf-8").splitlines()}


@pytest.mark.parametrize("settings", [{}, SCALE], ids=["small-defaults", "large-engines"])
def test_incremental_add_change_delete(tmp_path, corpus_copy, embedder, settings):
    cfg = Config(**settings)
    index = tmp_path / "index"
    build_index(corpus_copy, index, cfg, progress=False, embedder=embedder)
    before = _chunk_hashes(index)
    gone = "002_c05e6eef8739556f"
    gone_text = (corpus_copy / f"{gone}.txt").read_text(encoding="utf-8")
    (corpus_copy / f"{gone}.txt").unlink()
    changed = corpus_copy / "003_69489f4e311f00f9.txt"
    changed.write_text(changed.read_text(encoding="utf-8").replace("Khofifa Indar Parawansa", "Gubernur Zamrudbiru"),
                       encoding="utf-8")
    (corpus_copy / "new.txt").write_text("Berita Baru\n\nSurabaya - Vaksinasi di Lapas Porong diikuti 250 warga binaan.",
                                         encoding="utf-8")
    report = build_index(corpus_copy, index, cfg, progress=False, embedder=embedder)
    after = _chunk_hashes(index)
    assert report.embedded == len(after - before) > 1  # only new and changed chunks were embedded
    a = Assistant.load(index, embedder=embedder)
    assert gone not in a.articles and len(a.articles) == 5
    everything = len(a)
    for mode in ("bm25", "dense", "hybrid"):
        for q in (gone_text[:300], "Dwi Hartono Amuntai", "Khofifa Indar Parawansa Zamrudbiru"):
            hits = a.retrieve(q, k=everything, mode=mode)
            assert all(h.article.id != gone for h in hits), (mode, q)
            assert all("Khofifa Indar" not in h.text for h in hits), (mode, q)
    assert a.retrieve("Zamrudbiru", k=1, mode="bm25")[0].article.id == changed.stem
    assert a.retrieve("Porong", k=1, mode="bm25")[0].article.id == "new"
    # BM25 statistics are those of a fresh build of the same corpus
    fresh = tmp_path / "fresh"
    build_index(corpus_copy, fresh, cfg, progress=False, embedder=embedder, force=True)
    f = Assistant.load(fresh, embedder=embedder)
    assert a.store.lexical.size == f.store.lexical.size == everything
    an, toks = _tokens(index)
    for w in {w for t in toks for w in t} | {"khofifa", "hartono"}:
        assert a.store.idf(w) == pytest.approx(f.store.idf(w), abs=1e-12), w
    assert a.store.idf("khofifa") == 0.0 and a.store.idf("zamrudbiru") > 0
    for q in _questions()[:10]:
        assert a.store.lexical.search(an.tokens(q), 10) == f.store.lexical.search(an.tokens(q), 10)


def test_index_command_says_where_it_embedded(tmp_path, corpus_copy):
    import subprocess
    import sys

    from conftest import ROOT

    out = subprocess.run([sys.executable, "-m", "qa", "index", "--corpus", str(corpus_copy), "--index",
                          str(tmp_path / "i"), "--no-progress"], cwd=tmp_path, capture_output=True, text=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(ROOT)}, check=True).stdout
    import torch

    where = "on GPU (cuda)" if torch.cuda.is_available() else "on CPU"
    assert f"embedded {where}" in out, out


def test_scale_benchmark_runs_at_a_tiny_size(tmp_path):
    """benchmarks/scale.py end to end at 1k chunks (keeps the benchmark from rotting)."""
    import subprocess
    import sys

    from conftest import ROOT

    corpus = SHARED / "corpus_indosum_dev.jsonl"
    if not corpus.is_file():  # a stand-in news file in the IndoSum format, from the bundled articles
        corpus = tmp_path / "news.jsonl"
        with open(corpus, "w", encoding="utf-8") as f:
            for i, p in enumerate(sorted(CORPUS.glob("*.txt"))):
                text = p.read_text(encoding="utf-8")
                summary = " ".join(re.sub(r"[.!?]", " ", text).split()[:30]) + f" {i}"  # one long "sentence"
                f.write(json.dumps({"doc_id": p.stem, "text": text, "summary": summary,
                                    "date": None, "source": None}) + "\n")
    out_json = tmp_path / "scale.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--chunks", "1000", "--questions", "20",
                           "--real-embed", "32", "--overhead-chunks", "0", "--corpus", str(corpus),
                           "--work", str(tmp_path / "work"), "--json", str(out_json)],
                          capture_output=True, text=True, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "perturbed copies of real vectors" in proc.stdout and "| chunks |" in proc.stdout
    r = json.loads(out_json.read_text())
    size = r["sizes"][0]
    b, q = size["build"], size["query"]
    assert 900 <= b["chunks"] <= 1300
    # every chunk and every distinct sentence (stored for the answerer) is embedded once
    assert b["sentences"]["sentences"] > b["chunks"]
    assert b["vectors"]["real_now"] == 32
    # (the bench embedder embeds a text once: a one-sentence chunk's text may equal its sentence's)
    assert b["chunks"] - 32 < b["vectors"]["perturbed"] <= b["chunks"] + b["sentences"]["sentences_embedded"] - 32
    assert q["questions"] >= 5 and all(q[m]["median_ms"] > 0 for m in ("hybrid", "bm25", "dense"))
    assert q["ann"]["exact"]["recall@10"] == 1.0  # a flat index is exact
    assert r["machine"]["cores"] >= 1 and b["disk_mb"] > 0 and q["load_s"] > 0


def test_lazy_articles_and_chunks_serve_like_eager(seed_index, embedder, tmp_path):
    from qa.errors import IndexCorruptError
    from qa.stores.embedded import EmbeddedStore
    from qa.stores.embedded_index.lazy import LazyArticles, LazyChunks

    eager, lazy = load_index(seed_index, lazy=False), load_index(seed_index, lazy=True)
    assert isinstance(lazy.articles, LazyArticles) and isinstance(lazy.chunks, LazyChunks)
    assert list(lazy.chunks) == list(eager.chunks) and lazy.chunks[-1] == eager.chunks[-1]
    assert lazy.chunks[1:4] == eager.chunks[1:4] and len(lazy.chunks) == len(eager.chunks)
    assert dict(lazy.articles) == eager.articles and "nope" not in lazy.articles
    with pytest.raises(IndexError):
        lazy.chunks[len(eager.chunks)]
    a = Assistant(EmbeddedStore(seed_index, lazy, Config()), Config(), embedder=embedder, index_dir=seed_index)
    b = Assistant.load(seed_index, embedder=embedder)
    for q in _questions()[:8]:
        for mode in ("hybrid", "bm25", "dense"):
            assert [h.to_dict() for h in a.retrieve(q, k=5, mode=mode)] == [h.to_dict() for h in b.retrieve(q, k=5, mode=mode)]
    assert a.ask(_questions()[0]).to_dict() == b.ask(_questions()[0]).to_dict()
    # a damaged chunk row is reported, naming the file, when it is read
    bad = tmp_path / "chunks.jsonl"
    data = seed_index / read_manifest(seed_index)["data_dir"]
    rows = (data / "chunks.jsonl").read_text(encoding="utf-8").splitlines()
    r = json.loads(rows[2])
    r["start"] += 1
    rows[2] = json.dumps(r, ensure_ascii=False)
    bad.write_text("\n".join(rows) + "\n", encoding="utf-8")
    chunks = LazyChunks(bad, lazy.articles)
    assert chunks[1] == eager.chunks[1]
    with pytest.raises(IndexCorruptError, match=r"chunks\.jsonl:3"):
        chunks[2]


@pytest.mark.parametrize("engine", ["rank_bm25", "bm25s"])
def test_tuning_scores_other_bm25_parameters_through_the_store(tmp_path, embedder, engine):
    """``Store.lexical_variant``: BM25 with other (k1, b) over the same chunks, as rank-bm25 scores it."""
    index = tmp_path / "index"
    build_index(CORPUS, index, Config(lexical_engine=engine), progress=False, embedder=embedder)
    a = Assistant.load(index, embedder=embedder)
    assert a.store.lexical.engine == engine
    an, toks = _tokens(index)
    assert a.store.lexical_variant(1.5, 0.75) is a.store.lexical
    for k1, b in ((0.9, 0.4), (2.0, 0.9)):
        variant = a.store.lexical_variant(k1, b)
        okapi = make_lexical(toks, k1=k1, b=b)
        for q in _questions()[:8]:
            got, want = variant.search(an.tokens(q), 30), okapi.search(an.tokens(q), 30)
            assert [d for d, _ in got] == [d for d, _ in want]
            assert np.allclose([s for _, s in got], [s for _, s in want], rtol=1e-5)


@pytest.mark.parametrize("kind, dtype", [("flat", "float32"), ("hnsw", "float16"), ("hnsw", "float32")])
def test_large_dense_index_files_are_memory_mapped_and_search_the_same(tmp_path, monkeypatch, kind, dtype):
    import faiss

    from qa.stores.embedded_index import dense as dense_mod

    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((3000, 64)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    built = dense_mod.build(vecs, kind=kind, dtype=dtype, hnsw_m=16, ef_construction=40)
    path = tmp_path / "dense.faiss"
    dense_mod.save(built, path)
    monkeypatch.setattr(dense_mod, "MMAP_BYTES", 1)   # every file counts as large
    mapped = dense_mod.load(path)
    assert type(mapped).__name__ == type(built).__name__ and mapped.ntotal == 3000
    q = vecs[:20] + 0.05 * rng.standard_normal((20, 64)).astype(np.float32)
    for index in (built, mapped):
        if hasattr(index, "hnsw"):
            faiss.downcast_index(index).hnsw.efSearch = 64
    d1, i1 = built.search(q, 10)
    d2, i2 = mapped.search(q, 10)
    assert np.array_equal(i1, i2) and np.allclose(d1, d2)
