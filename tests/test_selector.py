"""Sentence vectors stored at index time and the learned sentence selector (real model, real FAISS)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import CORPUS, FIXTURES, ROOT, read_jsonl
from qa.answer.selector import FEATURES, PACKAGED, Selector, best_threshold, fit
from qa.chunking import split_sentences
from qa.errors import ConfigError, IndexCorruptError

QUESTIONS = ["Berapa warga binaan yang divaksin booster di Lapas?", "Siapa Kepala Lapas Amuntai?",
             "Kapan vaksinasi massal petugas dan WBP Banten dilakukan?"]


class CountingEncoder:
    """The real encoder, counting its calls."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = {"encode_queries": 0, "encode_passages": 0}

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode_queries(self, texts):
        self.calls["encode_queries"] += 1
        return self.inner.encode_queries(texts)

    def encode_passages(self, texts, **kw):
        self.calls["encode_passages"] += 1
        return self.inner.encode_passages(texts, **kw)


def test_index_stores_every_sentence_of_every_chunk(seed_index, embedder):
    from qa.stores.embedded_index.load import load_index

    loaded = load_index(seed_index)
    m = loaded.manifest
    assert {"sentences.npy", "sentence_vectors.npy"} <= set(m["files"])
    s = loaded.sentences
    assert len(s) == m["counts"]["sentences"] > len(loaded.chunks)
    texts = []
    for c in loaded.chunks:
        rows, vecs = s.of_chunk(c.id)
        text = loaded.articles[c.article_id].text
        want = [(x.start, x.end, x.para) for x in split_sentences(text, c.start, c.end)]
        assert [tuple(r[1:]) for r in rows.tolist()] == want
        assert all(r[0] == c.id for r in rows.tolist())
        texts += [text[a:b] for a, b, _ in want]
        assert vecs.dtype == np.float32 and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-3)
    fresh = embedder.encode_passages(texts[:12])
    assert np.allclose(np.asarray(s.vectors[:12], dtype=np.float32), fresh, atol=1e-4)


def test_answering_costs_no_sentence_embedding(seed_index, embedder):
    from qa import Assistant

    spy = CountingEncoder(embedder)
    a = Assistant.load(seed_index, embedder=spy)
    for q in QUESTIONS:
        ans = a.ask(q)
        assert ans.hits
    assert spy.calls["encode_passages"] == 0  # stored vectors, not a model call per sentence
    assert spy.calls["encode_queries"] == len(QUESTIONS)  # retrieval's query vector is reused by the answerer


def test_index_without_sentence_vectors_gives_the_same_answers(tmp_path, seed_index, embedder):
    from qa import Assistant, Config, build_index

    d = tmp_path / "plain"
    build_index(CORPUS, d, Config(sentence_vectors=False), progress=False, embedder=embedder)
    files = json.loads((d / "manifest.json").read_text())["files"]
    assert "sentence_vectors.npy" not in files
    spy = CountingEncoder(embedder)
    plain = Assistant.load(d, embedder=spy)
    stored = Assistant.load(seed_index, embedder=embedder)
    for q in QUESTIONS:
        a, b = plain.ask(q), stored.ask(q)
        assert (a.found, a.text) == (b.found, b.text)
        assert a.confidence == pytest.approx(b.confidence, abs=1e-3)
    assert spy.calls["encode_passages"] >= 1  # embedded on the fly instead


def test_rebuild_embeds_only_new_sentences(corpus_copy, tmp_path, embedder):
    from qa import build_index

    d = tmp_path / "index"
    first = build_index(corpus_copy, d, progress=False, embedder=embedder)
    m1 = json.loads((d / "manifest.json").read_text())
    assert m1["counts"]["sentences_embedded"] > 0
    art = sorted(corpus_copy.glob("0*.txt"))[0]
    text = art.read_text(encoding="utf-8")
    assert "masih terjadi" in text
    art.write_text(text.replace("masih terjadi", "masih saja terjadi", 1), encoding="utf-8")  # one sentence changes
    build_index(corpus_copy, d, progress=False, embedder=embedder)
    m2 = json.loads((d / "manifest.json").read_text())
    assert 1 <= m2["counts"]["sentences_embedded"] <= 3
    assert m2["counts"]["sentences"] == m1["counts"]["sentences"] and first.chunks == m2["counts"]["chunks"]


def test_damaged_sentence_files_are_refused(tmp_path, seed_index):
    import shutil

    from qa import Assistant

    d = tmp_path / "index"
    shutil.copytree(seed_index, d)
    data = d / json.loads((d / "manifest.json").read_text())["data_dir"]
    p = data / "sentence_vectors.npy"
    raw = bytearray(p.read_bytes())
    raw[-5] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(IndexCorruptError, match="sentence_vectors.npy"):
        Assistant.load(d)
    p.write_bytes(bytes(raw[:-100]))
    with pytest.raises(IndexCorruptError, match="sentence_vectors.npy"):
        Assistant.load(d, verify=False)


# -- the selector model -------------------------------------------------------------------------
def test_packaged_selector_is_small_readable_json_with_a_card():
    assert PACKAGED.stat().st_size < 1_000_000
    d = json.loads(PACKAGED.read_text())
    assert d["features"] == list(FEATURES) and len(d["weights"]) == len(FEATURES)
    s = Selector.load()
    assert 0.0 < s.threshold < 1.0 and s.question is not None
    assert (PACKAGED.parent / "SELECTOR.md").is_file()


def test_fit_learns_and_is_deterministic():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, len(FEATURES)))
    y = (x[:, 0] + 0.5 * x[:, 3] > 0).astype(float)
    a, b = fit(x, y), fit(x, y)
    assert np.array_equal(a.weights, b.weights)
    p = a.probability(x)
    assert ((p > 0.5) == (y > 0)).mean() > 0.95
    assert a.weights[0] > 0 and a.weights[3] > 0
    with pytest.raises(ValueError, match="both labels"):
        fit(x, np.zeros(len(x)))


def test_best_threshold_by_hand():
    # 4 unanswerable (low), 4 answerable; declining below 0.35 catches 3 of 4 unanswerable, no answerable
    best_p = [0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9]
    answerable = [False, False, False, False, True, True, True, True]
    b = best_threshold(best_p, answerable, max_declined=0.0)
    assert b["threshold"] == 0.4 and b["precision"] == 1.0 and b["recall"] == 0.75
    b = best_threshold(best_p, answerable, max_declined=0.25)
    assert b["threshold"] == 0.7 and b["recall"] == 1.0 and b["declined_answerable"] == 0.25


def test_bad_selector_files_name_the_problem(tmp_path):
    p = tmp_path / "s.json"
    with pytest.raises(ConfigError, match="not found"):
        Selector.load(p)
    p.write_text("{")
    with pytest.raises(ConfigError, match="s.json"):
        Selector.load(p)
    good = json.loads(PACKAGED.read_text())
    p.write_text(json.dumps({**good, "features": good["features"][:-1]}))
    with pytest.raises(ConfigError, match="features"):
        Selector.load(p)
    p.write_text(json.dumps({**good, "weights": good["weights"][:3]}))
    with pytest.raises(ConfigError, match="weights"):
        Selector.load(p)
    p.write_text(json.dumps({**good, "threshold": 3}))
    with pytest.raises(ConfigError, match="threshold"):
        Selector.load(p)
    assert "question" in good  # the answerability model
    p.write_text(json.dumps({**good, "question": {**good["question"], "weights": [1.0]}}))
    with pytest.raises(ConfigError, match="question"):
        Selector.load(p)


def _labelled_rows() -> list[dict]:
    """Questions of the seed fixture with the paragraph holding their answer as context, and
    unanswerable ones with a paragraph of the same article."""
    rows = []
    texts = {p.stem: p.read_text(encoding="utf-8") for p in CORPUS.iterdir()}
    for r in read_jsonl(FIXTURES / "answer_questions.jsonl"):
        if r["type"] == "single" and r.get("article") in texts:
            text = texts[r["article"]]
            for para in text.split("\n\n"):
                pos = para.find(r["answer"])
                if pos >= 0:
                    rows.append({"question": r["question"], "context": para,
                                 "answers": [{"text": r["answer"], "start": pos}], "is_impossible": False})
                    break
        elif r["type"] == "unanswerable":
            para = max(next(iter(texts.values())).split("\n\n"), key=len)
            rows.append({"question": r["question"], "context": para, "answers": [], "is_impossible": True})
    return rows


def test_train_selector_command_writes_a_selector_the_assistant_uses(tmp_path, seed_index, embedder):
    from qa import Assistant, Config

    rows = _labelled_rows()
    assert len(rows) >= 20
    f = tmp_path / "labelled.jsonl"
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "my-selector.json"
    r = subprocess.run([sys.executable, "-m", "qa", "train-selector", "--train", str(f), "--calibrate", str(f),
                        "--max-declined", "0.5", "--holdout", "0", "--retrieval", "hybrid", "--out", str(out),
                        "--no-progress"],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert out.is_file() and out.with_suffix(".md").is_file()
    assert "abstain_threshold" in r.stdout and "| train |" in r.stdout
    mine = Selector.load(out)
    card = out.with_suffix(".md").read_text()
    assert f"{len(rows)} questions" in card and "ranked by BM25 and dense vectors (RRF)" in card
    cfg = Config.from_dict({**Assistant.load(seed_index, embedder=embedder).config.to_dict(), "selector": str(out),
                            "abstain_threshold": mine.threshold})
    a = Assistant.load(seed_index, cfg, embedder=embedder)
    assert np.array_equal(a.answerer.selector.weights, mine.weights)
    ans = a.ask(QUESTIONS[1])
    assert all(c.article.text[c.start:c.end] == c.quote for c in ans.citations)
    # a bad file is refused up front, naming the line
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "Siapa?", "answers": []}) + "\n")
    r = subprocess.run([sys.executable, "-m", "qa", "train-selector", "--train", str(bad), "--out",
                        str(tmp_path / "x.json")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "bad.jsonl:1" in r.stderr and "context" in r.stderr


def test_cosine_map_puts_another_encoders_cosines_on_the_training_range():
    from qa.answer.selector import cosine_map

    rng = np.random.default_rng(1)
    v = rng.normal(size=(500, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    scale, shift = cosine_map(v, {"mean": 0.8, "std": 0.025})
    i, j = rng.integers(0, 500, 3000), rng.integers(0, 500, 3000)
    c = scale * (v[i] * v[j]).sum(1)[i != j] + shift
    assert abs(c.mean() - 0.8) < 0.01 and abs(c.std() - 0.025) < 0.005
    assert cosine_map(v, None) == (1.0, 0.0) and cosine_map(v[:1], {"mean": 0.8, "std": 0.02}) == (1.0, 0.0)


def test_an_index_of_another_encoder_gets_its_cosines_mapped(tmp_path, seed_index, embedder):
    from qa import Assistant

    same = Assistant.load(seed_index, embedder=embedder)
    assert same.answerer.cosine_map == (1.0, 0.0)  # the selector's own encoder: nothing to map

    class Renamed(CountingEncoder):
        fingerprint = "another-encoder"

    other = Assistant.load(seed_index, embedder=Renamed(embedder))
    scale, shift = other.answerer.cosine_map
    assert (scale, shift) != (1.0, 0.0) and scale > 0


class _Topical:
    """Vectors by topic word (a fake encoder for the distractor ranking alone)."""

    dimension = 3
    TOPICS = (("vaksin", "imunisasi"), ("banjir",), ("pemilu",))

    def _vec(self, text: str) -> np.ndarray:
        v = np.asarray([float(any(w in text.lower() for w in t)) for t in self.TOPICS]) + 1e-3
        return v / np.linalg.norm(v)

    def encode_passages(self, texts, progress=False):
        return np.stack([self._vec(t) for t in texts])

    encode_queries = encode_passages


def test_hybrid_distractors_add_the_passages_dense_search_finds():
    """--retrieval hybrid: a passage that shares no word with the question but is about the same
    thing (here: by the encoder's vectors) becomes a distractor; BM25 alone never ranks it."""
    from qa.adaptation.selector import Labelled, _key, _ranked_others
    from qa.analyzer import Analyzer
    from qa.lexical import make_lexical

    gold = "Lapas Amuntai menggelar vaksin booster untuk warga binaan."
    lexical_twin = "Warga binaan Lapas Amuntai ikut lomba tujuhbelasan."
    about_the_same = "Vaksin dosis ketiga disuntikkan di Rutan Barabai."
    other = "Banjir melanda Kabupaten Hulu Sungai Utara."
    contexts = {_key(t): t for t in (gold, lexical_twin, about_the_same, other)}
    ids = list(contexts)
    analyzer = Analyzer()
    lexical = make_lexical([analyzer.tokens(contexts[i]) for i in ids], engine="bm25s", k1=1.5, b=0.75)
    rows = [Labelled("Berapa warga binaan Lapas Amuntai yang ikut imunisasi?", gold, [("100", -1)], "x")]
    enc = _Topical()
    qvecs = enc.encode_queries([rows[0].question])
    got = {}
    for how in ("bm25", "hybrid"):
        others = _ranked_others(rows, lexical, analyzer, ids, contexts, enc, qvecs, 2, how, False)[0]
        got[how] = [contexts[i] for i in others]
    assert gold not in got["bm25"] + got["hybrid"]
    assert lexical_twin in got["bm25"] and about_the_same not in got["bm25"]
    assert set(got["hybrid"]) == {lexical_twin, about_the_same}
    from qa.adaptation.selector import featurize

    with pytest.raises(ValueError, match="bm25, hybrid"):
        featurize(rows, enc, retrieval="dense")
