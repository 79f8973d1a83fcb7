"""Query-adaptive fusion: the features, the shipped model and its loading errors, and `fusion =
"adaptive"` through the real pipeline (seed index, real E5 model, real BM25)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import FIXTURES, read_jsonl
from qa.config import Config
from qa.errors import ConfigError
from qa.fusion_adaptive import FEATURES, SHIPPED, AdaptiveModel, adaptive_weight, query_features, shipped_model

QUESTIONS = read_jsonl(FIXTURES / "retrieval_questions.jsonl")


def test_features_of_agreeing_and_disagreeing_lists():
    lex = [(1, 12.0), (2, 6.0), (3, 5.0)]
    same = query_features(lex, [(1, 0.9), (2, 0.8), (3, 0.7)], n_tokens=4)
    other = query_features(lex, [(7, 0.9), (8, 0.89), (1, 0.5)], n_tokens=4)
    f = dict(zip(FEATURES, same))
    assert len(same) == len(FEATURES) and np.isfinite(same).all()
    assert f["bm25_top"] == pytest.approx(np.log1p(12.0)) and f["bm25_gap"] == pytest.approx(0.5)
    assert f["dense_top"] == pytest.approx(0.9) and f["dense_gap"] == pytest.approx(0.1)
    assert f["overlap10"] == pytest.approx(0.3) and f["bm25_top_in_dense"] == 1.0 and f["dense_top_in_bm25"] == 1.0
    assert f["bm25_hits"] == pytest.approx(0.03) and f["query_tokens"] == pytest.approx(np.log1p(4))
    g = dict(zip(FEATURES, other))
    assert g["overlap10"] == pytest.approx(0.1) and g["bm25_top_in_dense"] == pytest.approx(1 / 3)
    assert g["dense_top_in_bm25"] == 0.0


def test_features_of_empty_lists_are_zeros_not_errors():
    x = query_features([], [], n_tokens=0)
    assert x.shape == (len(FEATURES),) and (x == 0).all()
    assert np.isfinite(query_features([(1, 3.0)], [], n_tokens=1)).all()


def test_shipped_model_loads_and_gives_weights_in_range():
    m = shipped_model()
    assert m.features == FEATURES and SHIPPED.is_file() and SHIPPED.with_suffix(".md").is_file()
    X = np.random.default_rng(0).normal(size=(50, len(FEATURES))) * m.scale + m.mean
    w = m.weights(X)
    assert ((w >= m.weights_.min() - 1e-12) & (w <= m.weights_.max() + 1e-12)).all()
    assert len(m.classes) == len(m.weights_) >= 2 and m.weights_.min() < m.weights_.max()
    assert m.weight(X[3]) == pytest.approx(w[3])


def test_model_round_trips(tmp_path):
    m = shipped_model()
    again = AdaptiveModel.load(m.save(tmp_path / "m.json"))
    assert again.weight(m.mean) == pytest.approx(m.weight(m.mean))


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"format": "other"}', "not an adaptive fusion model"),
    ('{"format": "qa-adaptive-fusion/1", "features": ["a"]}', "retrain it with `qa train-fusion`"),
    (None, "scale > 0"),
    ("missing", "missing or bad field"),
])
def test_bad_model_files_are_clear_errors(tmp_path, content, message):
    good = shipped_model().to_dict()
    if content is None:
        content = json.dumps({**good, "scale": [0.0] * len(FEATURES)})
    elif content == "missing":
        content = json.dumps({k: v for k, v in good.items() if k != "theta"})
    p = tmp_path / "bad.json"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        AdaptiveModel.load(p)
    with pytest.raises(ConfigError, match="cannot read"):
        AdaptiveModel.load(tmp_path / "absent.json")


def test_adaptive_is_a_fusion_choice_and_names_it():
    assert Config(fusion="adaptive").fusion == "adaptive"
    with pytest.raises(ConfigError, match="adaptive"):
        Config(fusion="learned")


def test_adaptive_fuse_is_convex_with_the_models_weight(assistant):
    """Through the real pipeline: the fused list equals convex fusion at the weight the model gives."""
    pipe = assistant.pipeline
    cfg = assistant.config.replace(fusion="adaptive", fusion_pool="union")
    q = pipe.query("Berapa dosis vaksin untuk warga binaan di Banten?")
    vec = pipe.embed(q)
    from qa.retrieval import Candidates

    c = Candidates(pipe.lexical(q, 100), pipe.dense(vec, 100), vec, None, q.tokens)
    fused = pipe.fuse(c, "hybrid", cfg, 5)
    w = adaptive_weight(c.lexical, c.dense, len(q.tokens))
    assert 0.0 <= w <= 1.0
    want = pipe.fuse(c, "hybrid", cfg.replace(fusion="convex", dense_weight=w), 5)
    assert [d for d, _ in fused] == [d for d, _ in want]
    assert dict(fused) == pytest.approx(dict(want))


def test_adaptive_retrieval_finds_the_seed_answers(assistant):
    def found(**kw):
        return sum(any(h.article.id == q["article"] and q["answer"].lower() in h.text.lower()
                       for h in assistant.retrieve(q["question"], k=5, **kw)) for q in QUESTIONS)
    adaptive = found(fusion="adaptive")
    assert adaptive >= found(mode="bm25") and adaptive >= 0.9 * len(QUESTIONS)


def test_other_model_file_from_settings(assistant, tmp_path):
    m = shipped_model()
    always_dense = AdaptiveModel(m.features, m.mean, m.scale, np.zeros((len(FEATURES), 1)), np.zeros(1),
                                 np.ones(1), ("dense",))
    path = always_dense.save(tmp_path / "dense.json")
    pipe = assistant.pipeline
    q = pipe.query("Siapa Kalapas Kelas IIB Amuntai?")
    vec = pipe.embed(q)
    from qa.retrieval import Candidates

    c = Candidates(pipe.lexical(q, 100), pipe.dense(vec, 100), vec, None, q.tokens)
    got = pipe.fuse(c, "hybrid", assistant.config.replace(fusion="adaptive", fusion_model=str(path)), 5)
    want = pipe.fuse(c, "hybrid", assistant.config.replace(fusion="convex", dense_weight=1.0), 5)
    assert [d for d, _ in got][:5] == [d for d, _ in want][:5]
    bad = tmp_path / "bad.json"
    bad.write_text("[]", encoding="utf-8")
    with pytest.raises(ConfigError, match="not an adaptive fusion model"):
        pipe.fuse(c, "hybrid", assistant.config.replace(fusion="adaptive", fusion_model=str(bad)), 5)


def _synthetic(n: int = 40):
    """Two kinds of question: on "news" the gold passage wins only with a dense weight under 0.29, on
    "wiki" only over 0.71; one feature (bm25_gap) tells them apart."""
    from qa.adaptation.fusion import FusionData

    rng = np.random.default_rng(0)
    sets, X, A, B = [], [], [], []
    for i in range(n):
        news = i % 2 == 0
        sets.append("news" if news else "wiki")
        x = rng.normal(size=len(FEATURES)) * 0.1
        x[FEATURES.index("bm25_gap")] += 2.0 if news else -2.0
        X.append(x)
        A.append([1.0, 0.6] if news else [0.0, 1.0])  # gold = candidate 0
        B.append([0.0, 1.0] if news else [1.0, 0.6])
    ids = np.tile(np.arange(2), (n, 1))
    gold = np.zeros((n, 2), dtype=bool)
    gold[:, 0] = True
    return FusionData([f"q{i}" for i in range(n)], sets, np.array(X), np.array(A), np.array(B), ids, gold,
                      [["g", "x"]] * n, [("g",)] * n)


def test_training_finds_each_kinds_weight_and_the_classifier_separates_them():
    from qa.adaptation.fusion import best_weight, fit, per_set, ranks

    data = _synthetic()
    news = data.subset([i for i, s in enumerate(data.sets) if s == "news"])
    wiki = data.subset([i for i, s in enumerate(data.sets) if s == "wiki"])
    assert best_weight(news) < 0.5 < best_weight(wiki)
    m = fit(data, l2=1e-4, steps=1000)
    assert m.classes == ("news", "wiki")
    w = m.weights(data.X)
    assert (ranks(data, w) == 1).all()  # every question gets a weight that puts its gold first
    assert per_set(data, w)["all"]["r@1"] == 1.0 and per_set(data, np.full(len(w), 0.5))["all"]["r@1"] < 1.0
    again = fit(data, l2=1e-4, steps=1000)  # deterministic
    assert np.array_equal(again.theta, m.theta)


def test_train_fusion_end_to_end_on_the_seed_index(assistant, tmp_path):
    """`qa train-fusion`'s code over the real seed index: two question files (Indonesian, English) are
    two classes; the model loads back and drives `fusion = "adaptive"`; the card names the data."""
    from qa.adaptation.fusion import card, train_fusion

    files = []
    for lang in ("id", "en"):
        p = tmp_path / f"{lang}.jsonl"
        p.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS if q["lang"] == lang), encoding="utf-8")
        files.append(str(p))
    model, report = train_fusion(assistant, files, limit=None, steps=200, check_share=0.3)
    assert set(model.classes) == {"id", "en"} and report.fit_questions + report.check_questions == len(QUESTIONS)
    assert report.check_adaptive["all"]["n"] == report.check_questions
    path = model.save(tmp_path / "m.json")
    text = card(model, report, "qa train-fusion ...")
    assert "id.jsonl" in text and "| train check |" in text
    cfg = assistant.config.replace(fusion="adaptive", fusion_model=str(path))
    hits = assistant.pipeline.retrieve(QUESTIONS[0]["question"], 3, "hybrid", cfg)
    assert hits and hits[0].article.id == QUESTIONS[0]["article"]
