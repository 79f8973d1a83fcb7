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
    assert {how for *_, how in d["pairs"].values()} == {"dictionary", "encoder"}
    assert all(score >= d["min_score"] for _, _, score, how in d["pairs"].values() if how == "encoder")
    assert "CC BY-SA" in d["meta"]["attribution"]  # the dictionary's pairs carry its licence
    lex = packaged()
    for en, idn in [("governor", "gubernur"), ("doses", "dosis"), ("zones", "zona"), ("cases", "kasus"),
                    ("health", "kesehatan"), ("head", "kepala"), ("heads", "kepala"), ("come", "datang"),
                    ("office", "kantor"), ("city", "kota")]:
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
    assert all(how == "encoder" and cos > 0.9 and score > 0 for _, cos, score, how in got.values())
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
    # "nickname": "panggilan" (the dictionary's) brings the sentence naming the head of the division first
    nick = assistant.ask("What is the nickname of Banten's head of the correctional division?")
    assert {"panggilan", "divisi"} <= set(nick.query.split()) and "Nirhono" in nick.citations[0].quote


def test_read_dictionary_from_freedict_and_tsv_files(tmp_path):
    from qa.adaptation.lexicon import read_dictionary

    # dictd: the index gives each entry's offset and length in base64; senses are numbered, glosses English
    entries = ["head /hɛd/ <n>\n1. kepala 2.\nend of hammer\n2. kepala, pimpin\nleader, chief\n",
               "office /ˈɒfɪs/ <n>\nkantor, biro\nroom(s) used for work\n", "civil servant <n>\npegawai negeri\nofficial\n"]
    body, index = b"", []
    b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    enc = lambda n: b64[n // 64] + b64[n % 64] if n >= 64 else b64[n]  # noqa: E731 - two digits suffice here
    for e in entries:
        raw = e.encode("utf-8")
        index.append(f"{e.split(' /')[0].split(' <')[0]}\t{enc(len(body))}\t{enc(len(raw))}")
        body += raw
    (tmp_path / "d.dict").write_bytes(body)
    (tmp_path / "d.index").write_text("\n".join(index) + "\n", encoding="utf-8")
    got = read_dictionary(str(tmp_path / "d.index"))
    assert got == {"head": ["kepala", "pimpin"], "office": ["kantor", "biro"], "civil servant": ["pegawai negeri"]}
    (tmp_path / "d.index").write_text("head\tA\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"d.index:1"):
        read_dictionary(str(tmp_path / "d.index"))
    (tmp_path / "d.dict").unlink()
    with pytest.raises(FileNotFoundError, match="d.dict.dz"):
        read_dictionary(str(tmp_path / "d.index"))
    tsv = tmp_path / "words.tsv"
    tsv.write_text("# english\tindonesian\nhead\tkepala, pimpin\nCity\tkota\n", encoding="utf-8")
    assert read_dictionary(str(tsv)) == {"head": ["kepala", "pimpin"], "city": ["kota"]}
    tsv.write_text("head\tkepala\nno tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"words.tsv:2"):
        read_dictionary(str(tsv))


def test_lemma_keys_and_indonesian_forms():
    from qa.adaptation.lexicon import indonesian_forms, lemma_keys

    assert lemma_keys("heads")[1] == "head" and "agency" in lemma_keys("agencies")
    assert "test" in lemma_keys("tested") and "stop" in lemma_keys("stopped") and "come" in lemma_keys("coming")
    assert lemma_keys("glass") == ["glass"]
    vocab = {"pemimpin", "pimpinan", "dipimpin", "memimpin", "pelayanan", "impian"}
    assert indonesian_forms("pimpin", vocab) == {"pemimpin", "pimpinan", "dipimpin", "memimpin"}
    assert indonesian_forms("layan", vocab) == {"pelayanan"} and indonesian_forms("kota", vocab) == set()


def test_a_dictionary_corrects_the_encoders_look_alikes(embedder):
    from qa.adaptation.lexicon import induce

    target = ["kepala", "headphone", "kantor", "gubernur", "rumah", "dosis", "koma", "datang"]
    source = ["heads", "office", "city", "governor", "come"]
    alone = induce(source, target, embedder.encode_queries, min_score=0.0, k=3)
    assert (alone["heads"][0], alone["come"][0]) == ("headphone", "koma")  # the encoder's look-alikes
    bilingual = {"head": ["kepala", "pimpin"], "office": ["kantor", "biro"], "city": ["kota"], "come": ["datang"]}
    got = induce(source, target, embedder.encode_queries, min_score=0.0, k=3, dictionary=bilingual,
                 vocabulary=["kota"])  # "kota" is not among the encoder's targets, but the dictionary may give it
    assert {w: (v[0], v[3]) for w, v in got.items()} == {
        "heads": ("kepala", "dictionary"), "office": ("kantor", "dictionary"), "city": ("kota", "dictionary"),
        "come": ("datang", "dictionary"), "governor": ("gubernur", "encoder")}
    assert induce(["governor"], target, embedder.encode_queries, min_score=1.0, k=3, dictionary=bilingual) == {}


def test_the_english_question_benchmark_merges_its_wordings(tmp_path):
    """benchmarks/english_questions.py (the full run needs ../shared/data): its hand-written English
    wordings join the FacQA rows by id, and an id that is not there is named."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("english_questions", root / "benchmarks" / "english_questions.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for name, n in [("facqa_valid", 40), ("tydiqa_id_valid", 40), ("idkmrc_valid", 44)]:  # for qa_<name>.jsonl
        rows = [json.loads(line) for line in (root / "benchmarks" / "data" / f"{name}_en.jsonl").open(encoding="utf-8")]
        assert len(rows) == n and len({w["id"] for w in rows}) == n and all(w["question"].endswith("?") for w in rows)
    wordings = [json.loads(line) for line in (root / "benchmarks" / "data" / "facqa_valid_en.jsonl").open(encoding="utf-8")]
    facqa = tmp_path / "facqa.jsonl"
    facqa.write_text("".join(json.dumps({"id": w["id"], "question": "Siapa?", "answers": [{"text": "x"}]}) + "\n"
                             for w in wordings[:39]), encoding="utf-8")
    with pytest.raises(ValueError, match="facqa-valid-39"):
        bench.merged(str(facqa), str(root / "benchmarks" / "data" / "facqa_valid_en.jsonl"), tmp_path / "out.jsonl")
    en = tmp_path / "en.jsonl"
    en.write_text(json.dumps(wordings[0]) + "\n", encoding="utf-8")
    assert bench.merged(str(facqa), str(en), tmp_path / "out.jsonl") == 1
    row = json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8"))
    assert row["question"] == "Siapa?" and row["question_en"] == wordings[0]["question"]
