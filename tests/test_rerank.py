"""Re-ranking the fused head by each passage's best stored sentence (qa/rerank.py, Pipeline.rerank):
the model file, the re-ordering, and the stage on the real seed index (real encoder, FAISS, BM25)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from qa.errors import ConfigError
from qa.rerank import FEATURES, SHIPPED, Reranker, features, sentence_cosines, shipped_reranker


def test_shipped_model_is_small_readable_json_with_a_card():
    d = json.loads(SHIPPED.read_text(encoding="utf-8"))
    assert d["features"] == list(FEATURES) and SHIPPED.stat().st_size < 10_000
    m = Reranker.load()
    assert m.depth == 20 and m.meta.get("questions", 0) > 1000
    assert (SHIPPED.parent / "rerank.md").is_file()
    # what the features say: a higher fused score and a better best sentence both count for more
    assert m.weights[FEATURES.index("fused")] > 0 and m.weights[FEATURES.index("sentence_gap")] > 0


def test_features_describe_the_head():
    x = features([1.0, 0.8, 0.5], [0.80, 0.85, 0.70], [12.0, 0.0, 6.0], [0.82, 0.90, 0.75], [0.80, 0.85, 0.75])
    assert x.shape == (3, len(FEATURES))
    col = {n: x[:, i] for i, n in enumerate(FEATURES)}
    assert col["fused_gap"].tolist() == pytest.approx([0.0, -0.2, -0.5])
    assert col["bm25_share"].tolist() == pytest.approx([1.0, 0.0, 0.5])
    assert col["best_sentence"].tolist() == [0.0, 1.0, 0.0]
    assert col["sentence_gap"].tolist() == pytest.approx([-0.08, 0.0, -0.15])
    assert col["inverse_rank"].tolist() == pytest.approx([1.0, 0.5, 1 / 3])


def test_rerank_orders_the_head_by_probability_and_keeps_the_tail_below():
    n = len(FEATURES)
    w = np.zeros(n)
    w[FEATURES.index("sentence")] = 5.0  # only the best sentence's cosine counts
    m = Reranker(w, 0.0, np.zeros(n), np.ones(n), depth=3)
    ranked = [(10, 0.9), (11, 0.8), (12, 0.7), (13, 0.6), (14, 0.5)]
    x = features([s for _, s in ranked[:3]], [0.8] * 3, [1.0] * 3, [0.1, 0.9, 0.5], [0.1, 0.9, 0.5])
    out = m.rerank(ranked, x)
    assert [d for d, _ in out] == [11, 12, 10, 13, 14]
    scores = [s for _, s in out]
    assert scores == sorted(scores, reverse=True) and scores[3] < scores[2]
    tie = Reranker(np.zeros(n), 0.0, np.zeros(n), np.ones(n), depth=3)
    assert [d for d, _ in tie.rerank(ranked, x)] == [10, 11, 12, 13, 14]  # equal probabilities: fused order


def test_bad_model_files_name_the_field(tmp_path):
    d = json.loads(SHIPPED.read_text(encoding="utf-8"))
    p = tmp_path / "r.json"
    for bad, field in (({**d, "format": "x"}, "format"), ({**d, "features": ["a"]}, "features"),
                       ({**d, "weights": [1, 2]}, "weights"), ({**d, "scale": [0] * len(FEATURES)}, "scale"),
                       ({**d, "bias": "x"}, "bias"), ({**d, "depth": 1}, "depth")):
        p.write_text(json.dumps(bad))
        with pytest.raises(ConfigError, match=field):
            Reranker.load(p)
    p.write_text("{not json")
    with pytest.raises(ConfigError, match="JSON"):
        Reranker.load(p)
    with pytest.raises(ConfigError, match="not found"):
        Reranker.load(tmp_path / "none.json")
    m = Reranker.load()
    assert np.allclose(Reranker.load(m.save(tmp_path / "copy.json")).weights, m.weights)


def _without(assistant):
    return type(assistant)(assistant.store, assistant.config.replace(rerank="off"), embedder=assistant.embedder,
                           index_dir=assistant.index_dir)


def test_on_the_seed_index_the_stage_reorders_only_the_head(assistant):
    q = "Berapa vaksin yang dialokasikan untuk relawan Tagana?"
    assert assistant.config.rerank == "sentences"
    on, off = assistant.retrieve(q, 10), _without(assistant).retrieve(q, 10)
    assert len(on) == len(off) == 10
    assert {h.chunk.id for h in on} == {h.chunk.id for h in off}  # the head of 20 holds all 10 either way
    assert [h.score for h in on] == sorted((h.score for h in on), reverse=True)
    assert all(0.0 <= h.score <= 1.0 for h in on)
    assert "350" in on[0].text  # the passage with the answer ("350 dosis") stays first


def test_a_store_without_sentence_vectors_keeps_the_fused_order(assistant, monkeypatch):
    q = "Siapa Kalapas Kelas IIB Amuntai?"
    off = _without(assistant).retrieve(q, 5)
    monkeypatch.setattr(assistant.store, "sentence_vectors", lambda chunk_id: None)
    assert sentence_cosines(assistant.store, np.ones(3), [1, 2]) is None
    kept = assistant.retrieve(q, 5)
    assert [h.chunk.id for h in kept] == [h.chunk.id for h in off]
    assert [h.score for h in kept] == pytest.approx([h.score for h in off])
    assert shipped_reranker() is shipped_reranker()  # loaded once


def test_sentence_cosines_are_kept_across_fusions_of_one_question(assistant, monkeypatch):
    """``qa tune`` fuses each question under many settings: the cache computes each passage once."""
    v = assistant.pipeline.embed_text("Siapa Kalapas Kelas IIB Amuntai?")
    ids = [h.chunk.id for h in _without(assistant).retrieve("Siapa Kalapas Kelas IIB Amuntai?", 4)]
    cache: dict = {}
    first = sentence_cosines(assistant.store, v, ids, cache)
    assert set(cache) == set(ids) and first == sentence_cosines(assistant.store, v, ids)
    assert all(b >= s for b, s in zip(*first))
    monkeypatch.setattr(assistant.store, "sentence_vectors", lambda chunk_id: pytest.fail("recomputed"))
    assert sentence_cosines(assistant.store, v, ids, cache) == first


def test_the_eval_label_names_the_rerank():
    from qa.retrieval import describe
    s = {"mode": "hybrid", "fusion": "convex", "fusion_pool": "union", "dense_weight": 0.7, "candidates": 100,
         "bm25_k1": 1.5, "bm25_b": 0.75, "rerank": "sentences"}
    assert "rerank" in describe(s) and "rerank" not in describe({**s, "rerank": "off"})
    assert "rerank" not in describe({**s, "fusion": "rrf", "rrf_k": 60})
