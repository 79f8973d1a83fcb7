"""``qa adapt``: training pairs, a short real fine-tuning run, and indexes built with the adapted folder.

The training runs here are tiny (a few dozen pairs, 64 tokens, batch 8, one epoch) so that they fit
in CI; the full runs and their figures are in benchmarks/adaptation.py and docs/adaptation.md.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import CORPUS, FIXTURES, read_jsonl

os.environ["HF_HUB_OFFLINE"] = "1"
PAIRS = FIXTURES / "adapt_pairs.jsonl"
QUESTIONS = FIXTURES / "retrieval_questions.jsonl"

pytest.importorskip("datasets", reason="the adapt extra is not installed: pip install 'article-qa[adapt]'")


# -- pairs: pure logic --------------------------------------------------------------------------
def test_read_pairs_reads_the_dev_set_format_and_skips_unanswerable(tmp_path):
    from qa.adaptation import read_pairs

    rows = read_jsonl(PAIRS)
    f = tmp_path / "p.jsonl"
    extra = {"question": "Siapa?", "context": "Tidak ada jawabannya di sini.", "is_impossible": True}
    alt = {"query": "Kapan lapas divaksin?", "passage": "Vaksinasi dilakukan Rabu (14/07).", "article": "a1"}
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows + [extra, alt]) + "\n", encoding="utf-8")
    pairs, skipped = read_pairs(f)
    assert skipped == 1 and len(pairs) == len(rows) + 1
    assert pairs[0].query == rows[0]["question"] and pairs[0].positive == rows[0]["context"]
    assert pairs[0].group == rows[0]["context_id"] and pairs[0].answers == (rows[0]["answers"][0]["text"],)
    assert pairs[-1].group == "a1" and pairs[-1].source == f"{f}:{len(rows) + 2}"


@pytest.mark.parametrize("bad, why", [
    ('{"question": "Siapa?", "context": ', "invalid JSON"),
    ('{"question": "Siapa?"}', "needs a question"),
    ('["a", "b"]', "expected a JSON object"),
    ('{"question": "", "context": "Teks."}', "needs a question"),
])
def test_a_bad_pairs_line_is_an_error_naming_file_and_line(tmp_path, bad, why):
    from qa.adaptation import read_pairs
    from qa.evaluation import QuestionFileError

    f = tmp_path / "pairs.jsonl"
    f.write_text('{"question": "Siapa kalapas?", "context": "Kalapas adalah Dwi."}\n\n' + bad + "\n", encoding="utf-8")
    with pytest.raises(QuestionFileError, match=f"{f}:3: .*{why}"):
        read_pairs(f)


def test_corpus_pairs_are_inverse_cloze_and_title_pairs_from_the_articles():
    from qa.adaptation import corpus_pairs
    from qa.ingest import load_corpus

    corpus = load_corpus(CORPUS)
    texts = {a.id: a.text for a in corpus.articles}
    pairs = corpus_pairs(corpus, chunk_size=700)
    assert len(pairs) >= 10
    assert pairs == corpus_pairs(corpus, chunk_size=700)  # seeded: the same every run
    ict = [p for p in pairs if not p.source.endswith("(title)")]
    titles = [p for p in pairs if p.source.endswith("(title)")]
    assert titles and all(p.query == next(a.title for a in corpus.articles if a.id == p.group) for p in titles)
    for p in ict:
        assert p.query in texts[p.group]  # the query is a sentence of the article
    removed = [p for p in ict if p.query not in p.positive]
    assert len(removed) >= 0.7 * len(ict)  # mostly the sentence is cut out of its passage
    assert len(corpus_pairs(corpus, max_pairs=5)) == 5


def test_hard_negatives_skip_the_same_article_and_passages_holding_the_answer():
    from qa.adaptation import Pair, mine_hard_negatives

    pair = Pair(query="Siapa kepala lapas Amuntai?", positive="Kepala Lapas Amuntai adalah Dwi Hartono.",
                group="a", answers=("Dwi Hartono",))
    cands = [(pair.positive, "a"), ("Lapas Amuntai dipimpin kepala lapas baru, kata Dwi Hartono.", "b"),
             ("Kepala lapas Amuntai hadir dalam rapat vaksinasi.", "c"), ("Lapas Amuntai juga ada di artikel a.", "a"),
             ("Cuaca cerah di Banten.", "d")]
    (got,), n = mine_hard_negatives([pair], cands)
    assert n == 1 and got.negative == "Kepala lapas Amuntai hadir dalam rapat vaksinasi."


def test_bad_settings_are_rejected_before_any_training(tmp_path):
    from qa.adaptation import AdaptError, adapt
    from qa.errors import ConfigError

    with pytest.raises(ConfigError, match="exactly one of pairs"):
        adapt(pairs=PAIRS, corpus=CORPUS)
    with pytest.raises(ConfigError, match="batch_size must be an integer between 2"):
        adapt(pairs=PAIRS, batch_size=1, out=tmp_path / "m")
    with pytest.raises(ConfigError, match="loss must be one of mnrl, cached-mnrl"):
        adapt(pairs=PAIRS, loss="triplet", out=tmp_path / "m")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "x").write_text("x")
    with pytest.raises(AdaptError, match="already exists"):
        adapt(pairs=PAIRS, out=tmp_path / "m")


# -- real runs ----------------------------------------------------------------------------------
def _hybrid_top5(assistant, questions) -> int:
    return sum(any(h.article.id == q["article"] for h in assistant.retrieve(q["question"], k=5)) for q in questions)


@pytest.fixture(scope="module")
def minilm():
    from qa.encoders.sentence_transformers import SentenceTransformerEncoder

    return SentenceTransformerEncoder("all-MiniLM-L6-v2", device="cpu")


@pytest.fixture(scope="module")
def adapted(tmp_path_factory) -> Path:
    from qa.adaptation import adapt

    out = tmp_path_factory.mktemp("adapt") / "minilm-pairs"
    report = adapt(pairs=PAIRS, out=out, base="all-MiniLM-L6-v2", epochs=1, batch_size=8, max_seq_length=64,
                   progress=False, device="cpu")
    assert report.pairs == 32 and report.steps == 4 and report.train_loss is not None
    return out


def test_a_short_run_writes_a_loadable_model_with_its_card(adapted, minilm):
    from sentence_transformers import SentenceTransformer

    card = json.loads((adapted / "adaptation.json").read_text(encoding="utf-8"))
    assert card["base"] == "all-MiniLM-L6-v2" and card["data"]["files"][0]["pairs"] == 32
    assert card["settings"]["max_seq_length"] == 64 and card["seconds"] > 0
    assert "all-MiniLM-L6-v2" in (adapted / "ADAPTATION.md").read_text(encoding="utf-8")
    model = SentenceTransformer(str(adapted), device="cpu", local_files_only=True)
    assert model.max_seq_length == minilm.model.max_seq_length  # trained short, embeds at full length
    a = model.encode(["Siapa Kalapas Kelas IIB Amuntai?"], normalize_embeddings=True)[0]
    b = minilm.encode(["Siapa Kalapas Kelas IIB Amuntai?"])[0]
    assert a.shape == b.shape and 0.5 < float(a @ b) < 0.99999  # moved, but not destroyed


def test_index_with_the_adapted_folder_answers_the_seed_questions(adapted, minilm, tmp_path):
    from qa import Assistant
    from qa.config import Config

    questions = read_jsonl(QUESTIONS)
    d = tmp_path / "index"
    assistant = Assistant.build(CORPUS, d, Config(model="all-MiniLM-L6-v2", device="cpu"), progress=False,
                                embedder=minilm)  # a base-model index in the same folder: its vectors must not be reused
    cfg = Config(model=str(adapted), device="cpu")
    adapted_assistant = Assistant.build(CORPUS, d, cfg, progress=False)
    manifest = adapted_assistant.manifest
    assert manifest["model"]["name"] == str(adapted) and manifest["model"]["fingerprint"].startswith("sha256:")
    assert manifest["counts"]["embedded"] == manifest["counts"]["chunks"]  # nothing reused from the base index
    base = _hybrid_top5(assistant, questions)
    got = _hybrid_top5(adapted_assistant, questions)
    assert got >= base - 2 and got >= 0.8 * len(questions), (got, base)
    answer = adapted_assistant.ask("Siapa Kalapas Kelas IIB Amuntai?")
    assert answer.found and "Dwi Hartono" in answer.text


def test_a_changed_model_folder_is_re_embedded_and_an_old_index_refuses_it(tmp_path, minilm):
    """Two different models at the same path: the cache is keyed by the folder's content, not its name."""
    import torch
    from sentence_transformers import SentenceTransformer

    from qa import Assistant, build_index
    from qa.config import Config
    from qa.errors import ModelMismatchError

    folder = tmp_path / "model"
    shutil.copytree(minilm.path, folder)
    cfg = Config(model=str(folder), device="cpu")
    first = build_index(CORPUS, tmp_path / "index", cfg, progress=False)
    assert first.embedded == first.chunks
    assert build_index(CORPUS, tmp_path / "index", cfg, progress=False).skipped
    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.save(str(folder))
    with pytest.raises(ModelMismatchError, match="has changed since the index was built"):
        Assistant.load(tmp_path / "index", cfg)
    again = build_index(CORPUS, tmp_path / "index", cfg, progress=False)
    assert not again.skipped and again.embedded == again.chunks


def test_cli_adapt_corpus_end_to_end(tmp_path, capsys):
    from qa.cli import main

    out = tmp_path / "models" / "minilm-corpus"
    rc = main(["adapt", "--corpus", str(CORPUS), "--out", str(out), "--max-seq-length", "64", "--batch-size", "8",
               "--max-pairs", "24", "--device", "cpu", "--no-progress", "--hard-negatives",
               "--index", str(tmp_path / "no-index")])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "self-supervised pairs" in printed and str(out) in printed
    card = json.loads((out / "adaptation.json").read_text(encoding="utf-8"))
    assert card["mode"] == "corpus" and card["pairs"] == 24 and card["data"]["articles"] == 5
    assert 0 < card["hard_negatives"] <= 24  # mined from the other articles' passages (no index there)
    index = tmp_path / "index"
    assert main(["index", "--corpus", str(CORPUS), "--index", str(index), "--model", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["search", "Siapa Kalapas Kelas IIB Amuntai?", "--index", str(index), "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert "Dwi Hartono" in hits[0]["text"]
    # refuses to overwrite without --force; a bad pairs file is reported with its line
    assert main(["adapt", "--corpus", str(CORPUS), "--out", str(out), "--device", "cpu"]) == 2
    assert "already exists" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "Siapa?", "context": "Dia."}\n{oops\n', encoding="utf-8")
    assert main(["adapt", "--pairs", str(bad), "--out", str(tmp_path / "m2")]) == 2
    assert f"{bad}:2: invalid JSON" in capsys.readouterr().err


def test_docs_python_example_runs(tmp_path, monkeypatch, capsys):
    """The Python example of docs/adaptation.md runs as written (a one-minute try on the seed articles)."""
    import re

    from conftest import ROOT

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "adaptation.md").read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 1
    shutil.copytree(CORPUS, tmp_path / "corpus")
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "docs/adaptation.md", "exec"), {"__name__": "__docs__"})
    mode, pairs, steps, _seconds, out = capsys.readouterr().out.strip().splitlines()[-1].split()
    assert (mode, pairs, steps) == ("corpus", "24", "3")
    assert (tmp_path / out / "model.safetensors").is_file() and (tmp_path / out / "ADAPTATION.md").is_file()
