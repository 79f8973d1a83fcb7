"""English renderings of Indonesian training questions for the span reader (qa/adaptation/crosslingual.py),
from the real packaged lexicon."""
from __future__ import annotations

import json
import random

import pytest

from qa.adaptation.crosslingual import TABLE, backwards, main, mix, render


@pytest.fixture(scope="module")
def words():
    return backwards()


def test_backwards_reads_the_packaged_lexicon_the_other_way(words):
    assert "governor" in words["gubernur"] and "doses" in words["dosis"]
    assert all(v == sorted(v, key=lambda w: (len(w), w)) for v in words.values())  # shortest first
    # an encoder pair below the score is left out: every English word comes from a pair that passes
    d = json.loads((__import__("qa.lexicon", fromlist=["PATH"]).PATH).read_text(encoding="utf-8"))["pairs"]
    for idn, ens in list(words.items())[:500]:
        for en in ens:
            word, _, csls, how = d[en][:4]
            assert word == idn and (how == "dictionary" or csls >= 0.07)


def test_render_translates_question_words_and_keeps_names_and_numbers(words):
    assert render("Siapa pendiri Cape Town?", words) == "Who founder Cape Town?"
    assert render("Berapa jumlah pasien di Rumah Sakit Fatmawati pada tahun 2020?", words) == \
        "How many number patient in Rumah Sakit Fatmawati on year 2020?"
    assert render("Di mana letak Universitas Cape Town?", words).startswith("Where location Universitas")
    # a word neither the table nor the lexicon knows stays as written (code-switched, as real askers write)
    assert "xyzzyqua" in render("Apa itu xyzzyqua?", words)
    # affixed forms by their root: "gubernurnya" -> the English for "gubernur"
    assert render("Siapa gubernurnya?", words).split()[1].rstrip("?") in words["gubernur"]


def test_render_with_a_random_pick_stays_among_the_shortest(words):
    seen = {render("Apa dosis vaksin?", words, random.Random(s)) for s in range(20)}
    for text in seen:
        assert text.startswith("What ") and text.endswith("?")
        assert text.split()[1] in words["dosis"][:3]


def test_the_table_is_lower_case_indonesian_to_english():
    assert all(k == k.lower() and v and v == v.lower() for k, v in TABLE.items())
    assert TABLE["siapa"] == "who" and TABLE["berapa"] == "how many"


def _rows(path, n, start=0):
    with path.open("w", encoding="utf-8") as f:
        for i in range(start, start + n):
            f.write(json.dumps({"id": f"q{i}", "question": f"Siapa gubernur provinsi {i}?", "context":
                                f"Gubernur provinsi {i} adalah Budi.", "answers": [{"text": "Budi", "start": 0}],
                                "is_impossible": False}) + "\n")


def test_mix_renders_some_rows_and_keeps_the_others(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    _rows(a, 6)
    _rows(b, 6, start=6)
    rows = mix([a, b], 4, 5, seed=1)
    en = [r for r in rows if r["id"].endswith("-en")]
    idn = [r for r in rows if not r["id"].endswith("-en")]
    assert len(en) == 4 and len(idn) == 5
    assert all(r["question"].startswith("Who governor province") for r in en)
    assert all(r["question"].startswith("Siapa gubernur") for r in idn)
    assert len({r["id"].removesuffix("-en") for r in rows}) == 9  # no row twice
    assert all(r["answers"] == [{"text": "Budi", "start": 0}] for r in rows)  # contexts and answers kept
    with pytest.raises(ValueError, match="at most the 12 rows"):
        mix([a, b], 10, 5)


def test_the_command_writes_the_mix(tmp_path, capsys):
    a = tmp_path / "a.jsonl"
    _rows(a, 5)
    out = tmp_path / "mix.jsonl"
    assert main(["--train", str(a), "--english", "2", "--indonesian", "3", "--out", str(out)]) == 0
    assert len(out.read_text(encoding="utf-8").splitlines()) == 5 and "wrote 5 rows" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--train", str(a), "--english", "9", "--out", str(out)])
    assert "at most the 5 rows" in capsys.readouterr().err
