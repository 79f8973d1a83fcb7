"""Retrieval over the five real articles with the real model, FAISS and rank-bm25."""
from __future__ import annotations

import pytest

from conftest import FIXTURES, read_jsonl
from qa.errors import ConfigError

QUESTIONS = read_jsonl(FIXTURES / "retrieval_questions.jsonl")


def test_fixture_is_big_enough():
    assert len(QUESTIONS) >= 20
    assert sum(q["lang"] == "en" for q in QUESTIONS) >= 5


def _param(q):
    marks = [pytest.mark.xfail(strict=True, reason=q["known_miss"])] if q.get("known_miss") else []
    return pytest.param(q, id=q["id"], marks=marks)


@pytest.mark.parametrize("q", [_param(q) for q in QUESTIONS])
def test_answer_in_top5(assistant, q):
    hits = assistant.retrieve(q["question"], k=5)
    assert any(h.article.id == q["article"] and q["answer"].lower() in h.text.lower() for h in hits), (
        q["question"], [(h.article.id, h.text[:80]) for h in hits])


def test_hybrid_at_least_as_good_as_bm25_on_seed_questions(assistant):
    def found(mode):
        return sum(any(h.article.id == q["article"] and q["answer"].lower() in h.text.lower()
                       for h in assistant.retrieve(q["question"], k=5, mode=mode)) for q in QUESTIONS)
    hybrid, bm25, dense = found("hybrid"), found("bm25"), found("dense")
    assert hybrid >= bm25 and hybrid >= dense
    assert hybrid >= 0.9 * len(QUESTIONS)


def test_amuntai_first_hit_names_dwi_hartono(assistant):
    hit = assistant.retrieve("Siapa Kalapas Kelas IIB Amuntai?", k=5)[0]
    assert hit.article.id == "002_c05e6eef8739556f"
    assert "Dwi Hartono" in hit.text
    assert hit.article.text[hit.start:hit.end] == hit.text
    assert hit.article.source == "ANTARA"


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "dense"])
def test_modes_return_ranked_hits(assistant, mode):
    hits = assistant.retrieve("vaksinasi warga binaan Banten", k=4, mode=mode)
    assert 1 <= len(hits) <= 4
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))
    if mode == "bm25":
        assert all(h.bm25_rank is not None and h.dense_rank is None for h in hits)
    if mode == "dense":
        assert all(h.dense_rank is not None and h.bm25_rank is None for h in hits)


def test_rrf_and_convex_both_work(assistant):
    a = assistant.retrieve("Berapa dosis vaksin untuk Banten?", k=3, fusion="rrf")
    b = assistant.retrieve("Berapa dosis vaksin untuk Banten?", k=3, fusion="convex", dense_weight=0.5)
    assert a and b


def test_number_findable_with_and_without_separator(assistant):
    for q in ("10.575", "10575"):
        hits = assistant.retrieve(q, k=1, mode="bm25")
        assert hits and "10.575" in hits[0].text


def test_bad_arguments_are_clear(assistant):
    with pytest.raises(ConfigError, match="hybrid, bm25, dense"):
        assistant.retrieve("x", mode="fuzzy")
    with pytest.raises(ConfigError, match="k must be"):
        assistant.retrieve("x", k=0)
    assert assistant.retrieve("   ") == []


def test_stopword_only_question_does_not_crash(assistant):
    assert isinstance(assistant.retrieve("yang dan di", mode="bm25"), list)


def test_union_pool_scores_dense_only_passages_with_both_retrievers(assistant):
    """``fusion_pool = "union"``: the passages of both lists, each with its real BM25 score and cosine."""
    from qa.fusion import convex
    from qa.retrieval import Candidates

    pipe = assistant.pipeline
    q = pipe.query("Siapa Kalapas Kelas IIB Amuntai?")
    lex, vec = pipe.lexical(q, 3), pipe.embed(q)  # a short BM25 list: passages beyond it still score
    den = pipe.dense(vec, 10)
    assert [d for d, _ in den if d not in dict(lex)]
    cfg = assistant.config.replace(fusion_pool="union", dense_weight=0.5, rerank="off")  # the fusion itself
    fused = dict(pipe.fuse(Candidates(lex, den, vec, None, q.tokens), "hybrid", cfg, 3))
    assert set(fused) == set(dict(lex)) | set(dict(den))
    ids = list(fused)
    bm, dn = assistant.store.lexical_scores(q.tokens, ids), assistant.store.dense_scores(vec, ids)
    assert sum(s > 0 for d, s in zip(ids, bm) if d not in dict(lex)) > 0  # beyond BM25's top 3, not 0
    assert fused == pytest.approx(dict(convex(list(zip(ids, bm)), list(zip(ids, dn)), dense_weight=0.5)))
    lexical_pool = pipe.fuse(Candidates(lex, den, vec, None, q.tokens), "hybrid", cfg.replace(fusion_pool="lexical"), 3)
    assert {d for d, _ in lexical_pool} == set(dict(lex))
    hits = assistant.retrieve("Siapa Kalapas Kelas IIB Amuntai?", k=5)
    assert "Dwi Hartono" in hits[0].text
