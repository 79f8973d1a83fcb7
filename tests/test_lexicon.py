"""The English -> Indonesian word list for English questions over Indonesian articles (qa/lexicon.py),
induced from the real bundled encoder (qa/adaptation/lexicon.py)."""
from __future__ import annotations

import json

import pytest

from qa.lexicon import PATH, Lexicon, packaged, widen


def test_the_packaged_lexicon_is_small_readable_json_with_its_card():
    d = json.loads(PATH.read_text(encoding="utf-8"))
    assert d["format"] == "qa-lexicon/1" and (d["source"], d["target"]) == ("en", "id")
    assert PATH.stat().st_size < 1_000_000 and (PATH.parent / "LEXICON.md").is_file()
    assert all(score >= d["min_score"] for _, _, score in d["pairs"].values())
    lex = packaged()
    for en, idn in [("governor", "gubernur"), ("doses", "dosis"), ("zones", "zona"), ("cases", "kasus"),
                    ("health", "kesehatan"), ("head", "kepala")]:
        assert lex.pairs[en] == idn, en


def test_terms_translate_words_each_once():
    lex = Lexicon("en", "id", {"governor": "gubernur", "east": "timur", "head": "kepala", "heads": "kepala"})
    assert lex.terms("Who is the governor of East Java?") == ["gubernur", "timur"]
    assert lex.terms("Governor? head and heads") == ["gubernur", "kepala"]  # each once
    assert lex.terms("Siapa Kalapas Amuntai?") == []
    bins = Lexicon("en", "id", {"bin": "bina"})
    assert bins.terms("Who heads BIN?") == [] and bins.terms("a Bin") == ["bina"]  # an acronym stays as written


def test_widen_only_across_the_packaged_languages():
    q = "How many vaccine doses did Banten receive?"
    wide = widen(q, q, "en", "id")
    assert wide.startswith(q) and {"vaksin", "dosis"} <= set(wide[len(q):].split())
    assert widen(q, q, "en", "en") == q  # the articles' own language
    assert widen(q, q, "id", "en") == q  # no Indonesian -> English list
    assert widen("Berapa dosis? dosis", q, "en", "id").split().count("dosis") == 1  # words the query has are not added


@pytest.mark.parametrize("body,field", [
    ({"format": "other"}, "format"),
    ({"format": "qa-lexicon/1", "source": 1, "target": "id", "pairs": {}}, "source"),
    ({"format": "qa-lexicon/1", "source": "en", "target": "id", "pairs": {"a": "b"}}, "pairs"),
])
def test_a_bad_lexicon_file_names_its_field(tmp_path, body, field):
    p = tmp_path / "lex.json"
    p.write_text(json.dumps(body), encoding="utf-8")
    with pytest.raises(ValueError, match=field):
        Lexicon.load(p)
    p.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="lex.json"):
        Lexicon.load(p)


def test_induce_finds_translations_with_the_real_encoder(embedder, tmp_path):
    from qa.adaptation.lexicon import dumps, induce, text_words

    target = ["gubernur", "dosis", "kota", "rumah", "sakit", "zona", "kepala", "pegawai"]
    got = induce(["governor", "doses", "zones", "house"], target, embedder.encode_queries, min_score=0.0, k=3)
    assert {k: v[0] for k, v in got.items()} == {"governor": "gubernur", "doses": "dosis", "zones": "zona",
                                                 "house": "rumah"}
    assert all(cos > 0.9 and score > 0 for _, cos, score in got.values())
    assert induce(["governor"], target, embedder.encode_queries, min_score=1.0, k=3) == {}  # below the score
    lex = {"format": "qa-lexicon/1", "source": "en", "target": "id", "pairs": {k: list(v) for k, v in got.items()}}
    text = dumps(lex)
    assert json.loads(text) == lex and len(text.splitlines()) == 1 + len(got) + 1  # a pair a line
    assert PATH.read_text(encoding="utf-8") == dumps(json.loads(PATH.read_text(encoding="utf-8")))  # as written
    f = tmp_path / "a.jsonl"
    f.write_text(json.dumps({"context": "kota kota kota rumah"}) + "\n" + json.dumps({"context": "kota kota kota rumah"})
                 + "\n\n", encoding="utf-8")
    assert text_words([str(f)], min_count=2) == {"kota": 3}  # a repeated context counts once
    f.write_text("{oops\n", encoding="utf-8")
    with pytest.raises(ValueError, match="a.jsonl:1"):
        text_words([str(f)])


def test_an_english_question_searches_with_the_indonesian_words(assistant, seed_index, embedder):
    import dataclasses

    from qa import Assistant

    q = "Which zones did the additional Covid-19 cases in Banten come from?"
    ans = assistant.ask(q)
    assert ans.query.startswith(q) and {"zona", "kasus", "tambahan"} <= set(ans.query[len(q):].split())
    assert assistant.ask("Dari zona mana penambahan kasus di Banten?").query == "Dari zona mana penambahan kasus di Banten?"
    off = Assistant.load(seed_index, dataclasses.replace(assistant.config, translate_questions=False), embedder=embedder)
    assert off.ask(q).query == q
