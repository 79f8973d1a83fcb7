"""qa.evaluation on the real seed corpus, model, FAISS, BM25 and ranx: evaluate, tune, draft questions,
and the `qa eval` / `qa tune` / `qa questions` commands in a subprocess."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import pytest

from conftest import CORPUS, FIXTURES, read_jsonl

pytest.importorskip("ranx")

from qa import Assistant  # noqa: E402
from qa.errors import ConfigError  # noqa: E402
from qa.evaluation import (MIN_QUESTIONS, QuestionFileError, SearchSpace, TooFewQuestionsError,  # noqa: E402
                           draft_questions, evaluate, pool_assistant, read_questions, split_halves, tune,
                           write_questions)
from qa.evaluation.metrics import fast_scores, metric_names, ranx_scores  # noqa: E402
from qa.retrieval import Candidates, describe  # noqa: E402
from qa.stores import update_config  # noqa: E402
from qa.config import Config  # noqa: E402
from qa.evaluation.pipeline import retrieval_settings  # noqa: E402

RETRIEVAL_FIXTURE = FIXTURES / "retrieval_questions.jsonl"
SHARED_FIXTURE = FIXTURES / "eval_questions_shared.jsonl"
POOL_FIXTURE = FIXTURES / "eval_pool.jsonl"


def _qa(*args, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "qa", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def drafted():
    return draft_questions(CORPUS)


@pytest.fixture(scope="module")
def tuning_questions(drafted):
    return read_questions(RETRIEVAL_FIXTURE) + drafted


@pytest.fixture(scope="module")
def cached_embedder(embedder):
    """The model behind a text-keyed cache: the tuning tests embed each question and chunk once."""
    from qa.evaluation.rebuild import SeededEmbedder

    return SeededEmbedder(embedder)


@pytest.fixture()
def index_copy(seed_index, tmp_path):
    d = tmp_path / "index"
    shutil.copytree(seed_index, d)
    return d


# -- question files -------------------------------------------------------------------------------
def test_reads_the_fixture_and_the_shared_dev_set_formats(tmp_path):
    qs = read_questions(RETRIEVAL_FIXTURE)
    rows = read_jsonl(RETRIEVAL_FIXTURE)
    assert len(qs) == len(rows)
    assert qs[0].id == rows[0]["id"] and qs[0].articles == (rows[0]["article"],)
    assert qs[0].answers == (rows[0]["answer"],) and qs[0].answerable
    shared = read_questions(SHARED_FIXTURE)
    assert shared[0].articles == ("p-banten-16",) and shared[0].answers == ("16",)
    impossible = [q for q in shared if not q.answerable]
    assert len(impossible) == 1 and impossible[0].answers == ()
    assert read_questions(SHARED_FIXTURE, limit=2) == shared[:2]
    # the gold passage: read from 'context', "" when absent, written back by write_questions
    shared_rows = read_jsonl(SHARED_FIXTURE)
    assert [q.context for q in shared] == [row["context"] for row in shared_rows]
    assert shared[0].context.startswith("Sebagai informasi terdapat 16 satuan kerja")
    assert all(q.context == "" for q in qs)
    write_questions(tmp_path / "shared.jsonl", shared)
    again = read_questions(tmp_path / "shared.jsonl")
    assert again == shared and [q.context for q in again] == [q.context for q in shared]


@pytest.mark.parametrize("lines, message", [
    (['{"question": "a?", "article": "x"}', '{"question": "b?", "article": '], ":2: invalid JSON"),
    (['{"id": "1", "article": "x"}'], ":1: missing or empty field 'question'"),
    (['{"id": "1", "question": 42}'], ":1: field 'question' (the question text) must be a string; got int"),
    (['{"id": "1", "question": "a?"}', '{"id": "1", "question": "b?"}'], ":2: duplicate question id '1'"),
    (['{"question": "a?", "answerable": "yes"}'], ":1: 'answerable' / 'is_impossible' must be true or false"),
    (['[1, 2]'], ":1: expected a JSON object"),
    (['{"question": "a?", "context": ["Teks."]}'], ":1: field 'context' must be a string (the gold passage)"),
    ([''], "no questions"),
])
def test_bad_question_files_name_file_and_line(tmp_path, lines, message):
    p = tmp_path / "q.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(QuestionFileError) as e:
        read_questions(p)
    assert str(p) in str(e.value) and message in str(e.value)
    assert isinstance(e.value, ValueError)


def test_question_pool_and_pair_files_share_one_reader_that_names_the_bad_line(tmp_path):
    from qa.adaptation.pairs import read_pairs
    from qa.evaluation.pool import load_pool

    good = '{"id": "p1", "context_id": "p1", "question": "a?", "context": "Teks.", "text": "Teks satu."}'
    p = tmp_path / "rows.jsonl"
    p.write_bytes((good + "\n\n").encode() + b'{"text": "caf\xe9"}\n')   # line 3 is Latin-1, not UTF-8
    for read in (read_questions, load_pool, read_pairs):
        with pytest.raises(QuestionFileError, match=r"rows\.jsonl:3: not UTF-8 text"):
            read(p)
    p.write_text(good + "\n[1]\n", encoding="utf-8")
    for read in (read_questions, load_pool, read_pairs):
        with pytest.raises(QuestionFileError, match=r"rows\.jsonl:2: expected a JSON object, got list"):
            read(p)
    for read, what in ((read_questions, "question"), (load_pool, "pool"), (read_pairs, "pairs")):
        with pytest.raises(FileNotFoundError, match=f"{what} file not found"):
            read(tmp_path / "missing.jsonl")


def test_split_is_deterministic_and_disjoint(tuning_questions):
    a1, b1 = split_halves(tuning_questions)
    a2, b2 = split_halves(list(reversed(tuning_questions)))
    assert {q.id for q in a1} == {q.id for q in a2} and {q.id for q in b1} == {q.id for q in b2}
    assert not {q.id for q in a1} & {q.id for q in b1} and len(a1) + len(b1) == len(tuning_questions)


# -- evaluate -------------------------------------------------------------------------------------
def test_pipeline_stages_reproduce_retrieve(assistant):
    """The stages eval times and tune re-fuses (deeper lists, cut per setting) give ``retrieve``'s ranking."""
    pipe = assistant.pipeline
    for q in read_questions(RETRIEVAL_FIXTURE)[:3]:
        query = pipe.query(q.question)
        lex = pipe.lexical(query, 200)
        qvec = pipe.embed(query)
        den = pipe.dense(qvec, 200)
        for mode, fusion in (("bm25", None), ("dense", None), ("hybrid", "convex"), ("hybrid", "rrf")):
            cfg = assistant.config.replace(fusion=fusion)
            for k in (5, 50):
                want = [(h.chunk.id, round(h.score, 9)) for h in
                        assistant.retrieve(q.question, k=k, mode=mode, fusion=fusion)]
                d = max(cfg.candidates, k)
                got = pipe.fuse(Candidates(lex[:d], den[:d], qvec), mode, cfg, k)[:k]
                assert [(doc, round(s, 9)) for doc, s in got] == want, (mode, fusion, k)


@pytest.fixture(scope="module")
def seed_report(assistant):
    return evaluate(assistant, read_questions(RETRIEVAL_FIXTURE), k=10, answers=False)


def test_evaluate_seed_corpus(seed_report, tmp_path):
    report = seed_report
    qs = read_questions(RETRIEVAL_FIXTURE)
    assert set(report.retrieval) == {"bm25", "dense", "hybrid"}
    assert report.scored == len(qs) and report.answers is None
    for r in report.retrieval.values():
        m = r.metrics
        assert all(0.0 <= v <= 1.0 for v in m.values()), m
        assert m["recall@1"] <= m["recall@5"] <= m["recall@10"]
        assert m["recall@1"] <= m["mrr@10"] <= m["recall@10"] and m["ndcg@10"] <= m["recall@10"]
        assert r.n == len(qs)
    assert report.retrieval["hybrid"].configured
    assert report.retrieval["hybrid"].metrics["recall@5"] >= 0.9  # the seed questions are easy
    for stage in ("embed_query", "dense_search", "bm25", "fusion", "total"):
        lat = report.latency[stage]
        assert lat["n"] == len(qs) and 0 <= lat["median_ms"] <= lat["p95_ms"]
    # per-question report: gold ranks agree with the metrics
    for name in ("bm25", "dense", "hybrid"):
        r1 = sum(r.gold_rank[name] == 1 for r in report.results) / len(qs)
        assert math.isclose(r1, report.retrieval[name].metrics["recall@1"])
    out = report.write_json(tmp_path / "report.json")
    data = json.loads(out.read_text(encoding="utf-8"))
    assert [r["id"] for r in data["results"]] == [q.id for q in qs]
    assert set(data["results"][0]["gold_rank"]) == {"bm25", "dense", "hybrid"}
    assert data["retrieval"]["hybrid"]["metrics"]["mrr@10"] == report.retrieval["hybrid"].metrics["mrr@10"]


def test_ranx_and_plain_definitions_agree(seed_report):
    names = metric_names(5)
    assert names == ["recall@1", "recall@5", "mrr@5", "ndcg@5"]
    qrels = {r.id: r.gold_articles for r in seed_report.results}
    for name in ("bm25", "dense", "hybrid"):
        runs = {r.id: r.top_articles[name] for r in seed_report.results}  # the top 5 articles
        assert ranx_scores(qrels, runs, names) == pytest.approx(fast_scores(qrels, runs, names))
        assert fast_scores(qrels, runs, ["recall@5"])["recall@5"] == pytest.approx(
            seed_report.retrieval[name].metrics["recall@5"])
    qrels2 = {"a": ["x", "y"], "b": ["z"], "c": ["w"]}
    runs2 = {"a": ["q", "y", "x"], "b": [], "c": ["w"]}
    assert ranx_scores(qrels2, runs2, metric_names(10)) == pytest.approx(fast_scores(qrels2, runs2, metric_names(10)))


def test_squad_exact_match_and_token_f1():
    from qa.evaluation.metrics import exact_match, squad_normalize, token_f1

    assert exact_match("28 Agustus 1950", ["28 Agustus 1950"]) == 1.0
    assert token_f1("28 Agustus 1950", ["28 Agustus 1950"]) == 1.0
    # 3 of the 7 predicted tokens are gold; all 3 gold tokens are predicted: P = 3/7, R = 1
    pred = "wafat dini hari tanggal 28 Agustus 1950"
    assert exact_match(pred, ["28 Agustus 1950"]) == 0.0
    p, r = 3 / 7, 1.0
    assert token_f1(pred, ["28 Agustus 1950"]) == pytest.approx(2 * p * r / (p + r)) == pytest.approx(0.6)
    # case, punctuation and spacing do not count; punctuation becomes a space ("GA - 181" == "GA-181")
    assert squad_normalize("  Nirhono   Jatmokoadi.”") == "nirhono jatmokoadi"
    assert exact_match("Nirhono Jatmokoadi.", ["nirhono  jatmokoadi"]) == 1.0
    assert exact_match("GA-181", ["GA - 181"]) == 1.0 and exact_match("(12/7)", ["12 7"]) == 1.0
    # the best gold counts: "137 kasus" vs "137" (P 1/2, R 1) -> 2/3; vs "137 kasus baru" (P 1, R 2/3) -> 0.8
    assert token_f1("137 kasus", ["137"]) == pytest.approx(2 / 3)
    assert token_f1("137 kasus", ["137", "137 kasus baru"]) == pytest.approx(0.8)
    assert exact_match("137 kasus", ["137", "137 Kasus"]) == 1.0
    # shared tokens count with multiplicity: "vaksin vaksin" vs "vaksin" -> P 1/2, R 1
    assert token_f1("vaksin vaksin", ["vaksin"]) == pytest.approx(2 / 3)
    assert token_f1("350 vaksin", ["tiga tahap"]) == 0.0
    # an abstention ("") scores 0 against a gold answer
    assert exact_match("", ["137"]) == 0.0 and token_f1("", ["137"]) == 0.0 and token_f1("...", ["137"]) == 0.0
    with pytest.raises(ValueError, match="no gold"):
        token_f1("137", [])
    with pytest.raises(TypeError):
        exact_match("137", "137")  # one string is not a list of gold answers


def test_lead_prediction_is_the_lead_else_the_first_quote_else_empty():
    from qa.evaluation.metrics import lead_prediction
    from qa.types import Answer, Article, Citation

    text = "Data dari Dinas Kesehatan Provinsi Banten, per tanggal 15 September 2020, ada 137 kasus baru."
    art = Article(id="a", title=None, text=text)
    cite = Citation(n=1, article=art, quote=text, start=0, end=len(text), score=0.9)
    q = "Berapa kasus baru di Banten?"
    assert lead_prediction(Answer(question=q, text="137 kasus [1]. ...", citations=[cite], lead="137 kasus")) == "137 kasus"
    assert lead_prediction(Answer(question=q, text=f"{text} [1]", citations=[cite])) == text
    assert lead_prediction(Answer(question=q, text="Tidak ditemukan.", found=False)) == ""


def test_answers_quotes_and_abstention(assistant):
    qs = read_questions(RETRIEVAL_FIXTURE)[:5] + [q for q in read_questions(SHARED_FIXTURE) if not q.answerable]
    report = evaluate(assistant, qs, k=10)
    a = report.answers
    assert a is not None and a.n_with_gold == 5 and a.n_unanswerable == 1
    assert a.n_quotes > 0 and a.quotes_verbatim == 1.0
    assert 0.0 <= a.contains_gold <= 1.0 and a.abstention_recall in (0.0, 1.0)
    assert report.latency["answer"]["n"] == len(qs)
    # the unanswerable question's gold passage is not in this index: reported, not scored
    assert report.scored == 5 and any("not in the index" in n for n in report.notes)
    for r in report.results:
        assert all(c["verbatim"] for c in r.answer["quotes"])


def _paragraph(article_text: str, needle: str) -> str:
    """The line of an article's text holding ``needle`` (a verbatim slice: a real gold passage)."""
    i = article_text.index(needle)
    start = article_text.rfind("\n", 0, i) + 1
    end = article_text.find("\n", i)
    return article_text[start:end if end >= 0 else len(article_text)].strip()


KASUS, TAGANA, KADIVPAS = "004_a334bb20f42b0522", "003_69489f4e311f00f9", "000_6e0daaa39b882e33"


@pytest.fixture(scope="module")
def reader_only_setup(tmp_path_factory, embedder, assistant):
    """An index of the bundled corpus without the Tagana article (003), and a dev-set style question
    file whose gold passages are paragraphs of the real articles: one whose article is indexed
    (137 new cases), one whose article is not (350 vaccines: the retriever cannot find it, the
    reader given its passage can), one without a passage, one unanswerable."""
    from qa import build_index

    root = tmp_path_factory.mktemp("reader-only")
    corpus = root / "corpus"
    shutil.copytree(CORPUS, corpus)
    (corpus / f"{TAGANA}.txt").unlink()
    build_index(corpus, root / "index", progress=False, embedder=embedder)
    text = {a: assistant.articles[a].text for a in (KASUS, TAGANA, KADIVPAS)}
    rows = [
        {"id": "ro-kasus", "question": "Berapa kasus baru terkonfirmasi positif di Banten per 15 September 2020?",
         "context_id": KASUS, "context": _paragraph(text[KASUS], "ada 137 kasus baru"),
         "answers": [{"text": "137", "start": 0}], "is_impossible": False},
        {"id": "ro-tagana", "question": "Berapa vaksin yang dialokasikan untuk relawan Tagana?",
         "context_id": TAGANA, "context": _paragraph(text[TAGANA], "dialokasikan 350 vaksin"),
         "answers": [{"text": "350", "start": 0}], "is_impossible": False},
        {"id": "ro-nopassage", "question": "Siapa Kepala Divisi Pemasyarakatan Banten?", "context_id": KADIVPAS,
         "answers": [{"text": "Nirhono Jatmokoadi", "start": 0}], "is_impossible": False},
        {"id": "ro-unanswerable", "question": "Siapa juara Piala Dunia 2018?", "context_id": KADIVPAS,
         "context": _paragraph(text[KADIVPAS], "Nirhono Jatmokoadi menyampaikan"), "answers": [],
         "is_impossible": True},
    ]
    qfile = root / "qa_valid.jsonl"
    qfile.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return root / "index", qfile, rows


def test_reader_only_tells_reader_errors_from_retriever_errors(reader_only_setup, embedder, tmp_path):
    from qa.evaluation.metrics import exact_match, squad_normalize, token_f1

    index, qfile, rows = reader_only_setup
    qs = read_questions(qfile)
    assert [q.context for q in qs] == [r.get("context", "") for r in rows]
    assistant = Assistant.load(index, embedder=embedder)
    assert TAGANA not in assistant.articles and KASUS in assistant.articles
    report = evaluate(assistant, qs, k=5)
    by_id = {r.id: r for r in report.results}
    a = report.answers
    # answerable questions with gold answers: kasus, tagana, nopassage; reader-only: those with a passage
    assert a.n_with_gold == 3 and a.reader_only is not None
    ro = a.reader_only
    assert ro.n == 2 and ro.skipped == 1
    assert by_id["ro-nopassage"].reader_only is None and by_id["ro-unanswerable"].reader_only is None
    for qid, gold, context in (("ro-kasus", "137", rows[0]["context"]), ("ro-tagana", "350", rows[1]["context"])):
        r = by_id[qid].reader_only
        # the reader saw the gold passage alone: every quote is a verbatim slice of it
        assert r["found"] and r["quotes"]
        for c in r["quotes"]:
            art_id = rows[0]["context_id"] if qid == "ro-kasus" else rows[1]["context_id"]
            assert c["article_id"] == f"gold:{art_id}" and context[c["start"]:c["end"]] == c["quote"]
        # an obvious count in its passage: the reader finds it and leads with it
        assert r["contains_gold"] and gold in squad_normalize(r["prediction"]).split()
        assert r["prediction"] == (r["lead"] or r["quotes"][0]["quote"])
        assert r["em"] == exact_match(r["prediction"], [gold]) and r["f1"] == token_f1(r["prediction"], [gold]) > 0
    # the Tagana article is not in the index: a retriever error, not a reader error
    tagana = by_id["ro-tagana"]
    assert tagana.gold_rank["hybrid"] is None and not tagana.answer["contains_gold"]
    assert tagana.answer["em"] == 0.0 and "350" not in tagana.answer["prediction"]
    assert tagana.reader_only["contains_gold"]
    # summary figures are the means of the per-question ones, on the same questions for both settings
    measured = [by_id["ro-kasus"], by_id["ro-tagana"]]
    mean = lambda vals: sum(vals) / len(vals)  # noqa: E731
    assert ro.contains_gold == 1.0 and ro.answered_share == 1.0
    assert ro.lead_em == pytest.approx(mean([r.reader_only["em"] for r in measured]))
    assert ro.lead_f1 == pytest.approx(mean([r.reader_only["f1"] for r in measured]))
    assert ro.retrieved_contains_gold == mean([float(bool(r.answer["contains_gold"])) for r in measured]) < 1.0
    assert ro.retrieved_lead_f1 == pytest.approx(mean([r.answer["f1"] for r in measured]))
    assert ro.retrieved_lead_f1 < ro.lead_f1
    answered = [r for r in measured if r.answer["found"]]
    assert ro.lead_f1_answered == ro.lead_f1  # the reader answered both
    assert ro.retrieved_lead_f1_answered == (pytest.approx(mean([r.answer["f1"] for r in answered])) if answered
                                             else None)
    answerable = [by_id[i] for i in ("ro-kasus", "ro-tagana", "ro-nopassage")]
    assert a.lead_em == pytest.approx(mean([r.answer["em"] for r in answerable]))
    assert a.lead_f1 == pytest.approx(mean([r.answer["f1"] for r in answerable]))
    assert by_id["ro-unanswerable"].answer["em"] is None and by_id["ro-unanswerable"].answer["f1"] is None
    # the reader-only answer is timed on its own, outside the pipeline's total
    assert report.latency["reader_only_answer"]["n"] == 2
    lat = by_id["ro-kasus"].latency_ms
    assert lat["total"] == pytest.approx(sum(v for s, v in lat.items() if s not in ("total", "reader_only_answer")),
                                         abs=0.01)
    table = report.tables()
    assert "| lead span exact match (SQuAD EM) |" in table and "| lead span token F1 (SQuAD F1) |" in table
    assert "Reader only" in table and "1 without one skipped" in table and "| answered (did not abstain) |" in table
    assert "| lead span token F1 where answered |" in table
    assert "else its first quote" in table  # the definition of the scored span
    data = json.loads(report.write_json(tmp_path / "r.json").read_text(encoding="utf-8"))
    assert data["answers"]["reader_only"]["n"] == 2 and data["answers"]["reader_only"]["lead_f1"] == ro.lead_f1
    assert data["answers"]["lead_em"] == a.lead_em
    res = {r["id"]: r for r in data["results"]}
    assert res["ro-kasus"]["reader_only"]["lead"] == by_id["ro-kasus"].reader_only["lead"]
    assert set(res["ro-kasus"]["answer"]) >= {"lead", "prediction", "em", "f1"}
    assert res["ro-nopassage"]["reader_only"] is None
    # skipped on request: no reader-only answers, figures or timing
    off = evaluate(assistant, qs[:1], k=5, reader_only=False)
    assert off.answers.reader_only is None and off.results[0].reader_only is None
    assert "reader_only_answer" not in off.latency and "Reader only" not in off.tables()
    assert off.answers.lead_em is not None


def test_pool_index_is_built_once_and_duplicates_are_remapped(tmp_path, embedder):
    from qa.evaluation import remap_gold

    d = tmp_path / "pool-index"
    assistant, pool = pool_assistant(POOL_FIXTURE, d, embedder=embedder)
    assert len(pool.articles) == 6 and pool.duplicates == [("p-banten-kasus-copy", "p-banten-kasus")]
    assert assistant.articles["p-banten-16"].text.startswith("Sebagai informasi terdapat 16")
    qs = remap_gold(read_questions(SHARED_FIXTURE), pool.duplicates)
    assert next(q for q in qs if q.id == "s6").articles == ("p-banten-kasus",)
    report = evaluate(assistant, qs, k=3, answers=False)
    assert report.scored == 6 and report.retrieval["bm25"].metrics["recall@3"] >= 5 / 6
    data_dir = assistant.manifest["data_dir"]
    again, _ = pool_assistant(POOL_FIXTURE, d, embedder=embedder)
    assert again.manifest["data_dir"] == data_dir  # reused, not rebuilt


# -- tune -----------------------------------------------------------------------------------------
def test_tune_refuses_too_few_questions(assistant):
    qs = read_questions(RETRIEVAL_FIXTURE)[:10]
    with pytest.raises(TooFewQuestionsError, match=rf"10 usable .* at least {MIN_QUESTIONS}") as e:
        tune(assistant, qs, write=False)
    assert "qa questions --per-article 7" in str(e.value)  # 30 over the 5 articles, and one more


def test_update_config_validates_and_refuses_build_settings(index_copy):
    before = (index_copy / "manifest.json").read_bytes()
    with pytest.raises(ConfigError, match="dense_weight"):
        update_config(index_copy, dense_weight=2.0)
    with pytest.raises(ConfigError, match="rebuild"):
        update_config(index_copy, chunk_size=400)
    with pytest.raises(ConfigError, match="unknown setting"):
        update_config(index_copy, colour="blue")
    assert (index_copy / "manifest.json").read_bytes() == before
    cfg = update_config(index_copy, fusion="rrf", rrf_k=30)
    assert cfg["fusion"] == "rrf" and Assistant.load(index_copy).config.rrf_k == 30


SMALL_SPACE = SearchSpace(dense_weights=(0.3, 0.5), rrf_ks=(60,), candidates=(100,), bm25_params=((1.5, 0.75),))


def test_tune_writes_settings_that_beat_the_current_ones(index_copy, cached_embedder, tuning_questions):
    update_config(index_copy, mode="dense")  # dense alone is weak on these Indonesian articles
    assistant = Assistant.load(index_copy, embedder=cached_embedder)
    report = tune(assistant, tuning_questions, space=SMALL_SPACE)
    assert report.usable == len(tuning_questions) >= MIN_QUESTIONS
    assert report.tune_questions + report.heldout_questions == report.usable
    assert report.before["mode"] == "dense" and report.after["mode"] != "dense"
    assert report.after_tune["mrr@10"] > report.before_tune["mrr@10"]
    assert report.after_heldout["mrr@10"] >= report.before_heldout["mrr@10"]
    assert report.written and report.changes["mode"] == report.after["mode"]
    manifest = json.loads((index_copy / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["config"]["mode"] == report.after["mode"]
    assert Assistant.load(index_copy).config.mode == report.after["mode"]
    assert "held-out" in report.tables()


def test_tune_does_not_write_when_nothing_is_better(index_copy, cached_embedder, tuning_questions):
    before = (index_copy / "manifest.json").read_bytes()
    assistant = Assistant.load(index_copy, embedder=cached_embedder)
    report = tune(assistant, tuning_questions, space=SearchSpace(modes=("dense",)))
    assert not report.written and report.after == report.before and "already the best" in report.reason
    assert (index_copy / "manifest.json").read_bytes() == before
    update_config(index_copy, mode="dense")
    before = (index_copy / "manifest.json").read_bytes()
    report = tune(Assistant.load(index_copy, embedder=cached_embedder), tuning_questions, space=SMALL_SPACE,
                  write=False)
    assert not report.written and report.changes and "dry run" in report.reason
    assert (index_copy / "manifest.json").read_bytes() == before


def test_tune_tries_adaptive_fusion(index_copy, cached_embedder, tuning_questions):
    current = retrieval_settings(Config())
    grid = SearchSpace().settings(current)
    adaptive = [s for s in grid if s.get("fusion") == "adaptive"]
    assert {(s["fusion_pool"], s["candidates"]) for s in adaptive} == {(p, c) for p in ("lexical", "union")
                                                                       for c in (50, 100, 200)}
    assert len(adaptive) == 2 * 3 * len(SearchSpace().bm25_params) and "adaptive union" in describe(adaptive[-1])
    assert not [s for s in SearchSpace(fusions=("convex",)).settings(current) if s.get("fusion") == "adaptive"]
    update_config(index_copy, mode="dense")
    only = SearchSpace(modes=("hybrid",), fusions=("adaptive",), candidates=(100,), bm25_params=((1.5, 0.75),))
    report = tune(Assistant.load(index_copy, embedder=cached_embedder), tuning_questions, space=only)
    assert report.after["fusion"] == "adaptive" and report.after["mode"] == "hybrid" and report.written
    assert report.after_heldout["mrr@10"] >= report.before_heldout["mrr@10"]
    assert Assistant.load(index_copy).config.fusion == "adaptive"


def test_tune_chunk_sizes_rebuilds_only_when_a_size_wins(index_copy, cached_embedder, tuning_questions):
    assistant = Assistant.load(index_copy, embedder=cached_embedder)
    report = tune(assistant, tuning_questions, space=SMALL_SPACE, chunk_sizes=(400,), corpus=CORPUS)
    assert report.chunk_sizes == [700, 400] and report.after["chunk_size"] in (400, 700)
    assert report.tried == 2 * len(SMALL_SPACE.settings(report.before))
    manifest = json.loads((index_copy / "manifest.json").read_text(encoding="utf-8"))
    if report.rebuilt:
        assert report.written and manifest["chunking"]["chunk_size"] == manifest["config"]["chunk_size"] == 400
    else:
        assert manifest["chunking"]["chunk_size"] == 700 and "chunk_size" not in report.changes


def test_scratch_index_and_rebuild_share_embeddings(index_copy, cached_embedder, tmp_path):
    from qa.evaluation.rebuild import SeededEmbedder, corpus_for, rebuild, scratch_index

    assistant = Assistant.load(index_copy, embedder=cached_embedder)
    corpus, folder = corpus_for(assistant, CORPUS)
    seeded = SeededEmbedder(cached_embedder)
    seeded.seed(index_copy)
    counts = json.loads((index_copy / "manifest.json").read_text(encoding="utf-8"))["counts"]
    assert len(seeded.cache) == len(assistant) + counts["sentences_embedded"] and seeded.encoded == 0
    scratch = scratch_index(assistant, 400, corpus, folder, tmp_path / "scratch", seeded)
    assert len(scratch) > len(assistant) and 0 < seeded.encoded <= len(scratch)
    encoded = seeded.encoded
    rebuild(assistant, 400, {"mode": "bm25"}, corpus, folder, seeded)
    assert seeded.encoded == encoded  # the rebuild embeds nothing new
    rebuilt = Assistant.load(index_copy)
    assert rebuilt.config.chunk_size == 400 and rebuilt.config.mode == "bm25"
    assert [c.text for c in rebuilt.store.chunks] == [c.text for c in scratch.store.chunks]


# -- drafted questions ----------------------------------------------------------------------------
def test_drafted_questions_are_cloze_with_verbatim_answers(drafted, assistant, tmp_path):
    assert len(drafted) >= 10
    assert {q.meta["kind"] for q in drafted} >= {"date", "number", "name"}
    for q in drafted:
        art = assistant.articles[q.articles[0]]
        assert art.text[q.meta["start"]:q.meta["end"]] == q.answers[0]
        assert "____" in q.question and q.answerable
    assert draft_questions(CORPUS) == drafted  # deterministic
    write_questions(tmp_path / "d.jsonl", drafted)
    assert read_questions(tmp_path / "d.jsonl") == drafted


# -- command line ---------------------------------------------------------------------------------
def test_cli_questions_eval_and_tune(tmp_path, seed_index):
    r = _qa("questions", "--corpus", str(CORPUS), "--out", "drafts.jsonl", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "drafted" in r.stdout and len(read_jsonl(tmp_path / "drafts.jsonl")) >= 10
    r = _qa("eval", "--questions", str(SHARED_FIXTURE), "--pool", str(POOL_FIXTURE), "--index", "pool-index",
            "--k", "5", "--no-answers", "--json", "report.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "| bm25" in r.stdout and "| dense" in r.stdout and "| hybrid" in r.stdout and "R@5" in r.stdout
    data = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert len(data["results"]) == 7 and data["scored"] == 6 and data["answers"] is None
    # tune: too few questions -> refused (exit 2, no traceback); enough -> runs and writes when better
    index = tmp_path / "index"
    shutil.copytree(seed_index, index)
    r = _qa("tune", "--questions", str(SHARED_FIXTURE), "--index", str(index), cwd=tmp_path)
    assert r.returncode == 2 and "too few questions" in r.stderr and "Traceback" not in r.stderr
    update_config(index, mode="dense")
    (tmp_path / "all.jsonl").write_text(RETRIEVAL_FIXTURE.read_text(encoding="utf-8")
                                        + (tmp_path / "drafts.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    r = _qa("tune", "--questions", "all.jsonl", "--corpus", str(CORPUS), "--index", str(index), "--json", "tune.json",
            cwd=tmp_path)  # --corpus: the index is up to date, so it is not rebuilt
    assert r.returncode == 0, r.stderr
    assert "held-out" in r.stdout and "Written to the index" in r.stdout
    rep = json.loads((tmp_path / "tune.json").read_text(encoding="utf-8"))
    assert rep["written"] and json.loads((index / "manifest.json").read_text())["config"]["mode"] != "dense"


def test_cli_eval_reports_lead_scores_and_skips_reader_only_on_request(tmp_path, reader_only_setup):
    index, qfile, _ = reader_only_setup
    r = _qa("eval", "--questions", str(qfile), "--index", str(index), "--k", "3", "--limit", "1",
            "--no-reader-only", "--json", "report.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "| lead span exact match (SQuAD EM) |" in r.stdout and "| lead span token F1 (SQuAD F1) |" in r.stdout
    assert "Reader only" not in r.stdout
    data = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert data["answers"]["reader_only"] is None and data["results"][0]["reader_only"] is None
    assert data["answers"]["lead_f1"] == data["results"][0]["answer"]["f1"]
    assert "--no-reader-only" in _qa("eval", "--help", cwd=tmp_path).stdout


def test_cli_eval_bad_question_file(tmp_path, seed_index):
    (tmp_path / "bad.jsonl").write_text('{"question": "ok?"}\nnot json\n', encoding="utf-8")
    r = _qa("eval", "--questions", "bad.jsonl", "--index", str(seed_index), cwd=tmp_path)
    assert r.returncode == 2 and "bad.jsonl:2: invalid JSON" in r.stderr and "Traceback" not in r.stderr
