"""Dates normalised at ingestion (qa/ingest/dates.py) on a hand-labelled fixture and real ingestion."""
from __future__ import annotations

import datetime
import json
import logging

import pytest
from hypothesis import given, settings, strategies as st

from conftest import CORPUS, FIXTURES, read_jsonl
from qa.ingest import load_corpus
from qa.ingest.dates import article_date, parse_dates, parse_metadata_date

CASES = read_jsonl(FIXTURES / "dates.jsonl")


def _predict(case: dict) -> str | None:
    found = article_date(case["text"], metadata_date=case.get("metadata_date"), base_year=case.get("base_year"))
    return found.iso if found else None


def test_fixture_shape():
    assert len(CASES) >= 150
    assert sum(1 for c in CASES if c.get("negative")) >= 30
    assert sum(1 for c in CASES if c["expected"] is None and not c.get("negative")) >= 10  # impossible / no year
    for i, c in enumerate(CASES, 1):
        assert isinstance(c["text"], str) and c["text"].strip() and c["note"], i
        if c["expected"] is not None:
            datetime.date.fromisoformat(c["expected"])


def test_fixture_accuracy():
    misses = [(i, c["expected"], _predict(c), c["note"], c["text"][:90])
              for i, c in enumerate(CASES, 1) if _predict(c) != c["expected"]]
    for m in misses:
        print("MISS line %d: expected %s got %s (%s) %r" % m)
    accuracy = 1 - len(misses) / len(CASES)
    print(f"date accuracy {accuracy:.3f} on {len(CASES)} cases")
    assert accuracy >= 0.98, misses


def test_offsets_verbatim_and_dates_real():
    n = 0
    for c in CASES:
        for source in (c["text"], c.get("metadata_date") or ""):
            for m in parse_dates(source, base_year=c.get("base_year")):
                n += 1
                assert source[m.start:m.end] == m.text, (m, source)
                if m.iso is not None:
                    assert datetime.date.fromisoformat(m.iso) == datetime.date(m.year, m.month, m.day)
                else:
                    assert m.year is None and not m.year_inferred
    assert n >= 120


def test_negatives_give_no_date():
    negatives = [c for c in CASES if c.get("negative")]
    for c in negatives:
        assert parse_dates(c["text"]) == [], c["note"]
        assert parse_dates(c["text"], base_year=2021) == [], c["note"]
        assert article_date(c["text"], base_year=2021) is None, c["note"]


def test_year_from_context():
    (m,) = parse_dates("Rabu (13/4) warga berkumpul.")
    assert (m.iso, m.day, m.month, m.year, m.year_inferred, m.weekday) == (None, 13, 4, None, False, 2)
    (m,) = parse_dates("Rabu (13/4) warga berkumpul.", base_year=2022)
    assert (m.iso, m.year_inferred, m.text) == ("2022-04-13", True, "Rabu (13/4)")
    # the written weekday picks the neighbouring year when the base year does not fit it
    assert parse_dates("Jumat (10/11)", base_year=2018)[0].iso == "2017-11-10"
    # a reference date (the publication date) places the mention nearest to it
    assert parse_dates("(28/12)", reference=datetime.date(2021, 1, 3))[0].iso == "2020-12-28"
    assert parse_dates("(3/1)", reference=datetime.date(2020, 12, 30))[0].iso == "2021-01-03"
    # the text's own full date gives the year
    ms = parse_dates("Kamis (28/12) lalu polisi menangkap tersangka; laporan dirilis 2 Januari 2018.")
    assert [(m.iso, m.year_inferred) for m in ms] == [("2017-12-28", True), ("2018-01-02", False)]


def test_metadata_date_and_choice():
    assert parse_metadata_date("2020-09-15T10:00:00+07:00").iso == "2020-09-15"
    assert parse_metadata_date("Senin, 07/12/2020 14:05 WIB").iso == "2020-12-07"
    assert parse_metadata_date("kemarin sore") is None
    assert parse_metadata_date("Rabu (13/4)") is None  # no year: not a full date
    found = article_date("Jakarta, Kamis (8/7/2021) - isi.", metadata_date="2021-07-10")
    assert found.iso == "2021-07-10" and found.from_metadata
    # a dateline near the start beats an earlier-dated event later in the text
    text = "Bandung, Senin (7/12/2020) - Sidang kasus yang terjadi pada 3 Maret 2018 digelar lagi."
    assert article_date(text).text == "Senin (7/12/2020)"


@pytest.mark.parametrize("kwargs", [{"base_year": "2021"}, {"base_year": 21}, {"base_year": True},
                                    {"reference": "2021-01-01"}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        parse_dates("Rabu (13/4)", **kwargs)


_FORMS = [
    lambda d, id_m, en_m, wd: f"{wd}, {d.day} {id_m} {d.year}",
    lambda d, id_m, en_m, wd: f"Jakarta, {wd} ({d.day}/{d.month}/{d.year}) -",
    lambda d, id_m, en_m, wd: f"{d.day:02d}/{d.month:02d}/{d.year}",
    lambda d, id_m, en_m, wd: f"{en_m} {d.day}, {d.year}",
    lambda d, id_m, en_m, wd: f"{d.day} {id_m[:3]} {d.year}",
    lambda d, id_m, en_m, wd: d.isoformat(),
]
_ID_MONTHS = ["Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September",
              "Oktober", "November", "Desember"]
_EN_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December"]
_ID_DAYS = ["Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu"]


@settings(max_examples=150, deadline=None)
@given(st.dates(datetime.date(1950, 1, 1), datetime.date(2099, 12, 31)), st.sampled_from(range(len(_FORMS))),
       st.text(alphabet="abc ,.", max_size=12))
def test_round_trip(day, form, prefix):
    s = _FORMS[form](day, _ID_MONTHS[day.month - 1], _EN_MONTHS[day.month - 1], _ID_DAYS[day.weekday()])
    text = f"Kata {prefix} dia {s}. Selesai."
    ms = [m for m in parse_dates(text) if m.iso]
    assert [m.iso for m in ms] == [day.isoformat()], (text, ms)
    assert text[ms[0].start:ms[0].end] == ms[0].text


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789/.-() ,:SeninRabuMeiDesAgt", max_size=60))
def test_any_text_offsets_and_real_dates(text):
    for m in parse_dates(text, base_year=2020):
        assert text[m.start:m.end] == m.text
        if m.iso:
            datetime.date.fromisoformat(m.iso)


def test_ingestion_dates(tmp_path, caplog):
    (tmp_path / "a.txt").write_text("Banjir di Bekasi\n\nBekasi, Kamis (8/7/2021) - Banjir merendam tiga kecamatan.\n",
                                    encoding="utf-8")
    (tmp_path / "b.md").write_text("# Judul\n\nPanen raya dimulai 12 Okt 2021 di Karawang. Petani gembira.\n",
                                   encoding="utf-8")
    (tmp_path / "c.txt").write_text("Rapat digelar Rabu (13/4) di balai desa. Warga hadir.\n", encoding="utf-8")
    records = [
        {"id": "j1", "text": "Isi berita tanpa tanggal.", "date": "2020-09-15T10:00:00+07:00"},
        {"id": "j2", "text": "Isi berita lain tanpa tanggal.", "date": "Selasa, 15/09/2020 10:00 WIB"},
        {"id": "j3", "text": "Jakarta, Senin (7/12/2020) - Teks.", "date": "kemarin"},
        {"id": "j4", "text": "Teks keempat, Dec 2, 2026, tanpa metadata."},
    ]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (tmp_path / "e.json").write_text(json.dumps([{"text": "Teks JSON.", "date": "2 Desember 2026"}]), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="qa"):
        corpus = load_corpus(tmp_path)
    got = {a.id: (a.date, a.date_text) for a in corpus.articles}
    assert got == {
        "a": ("2021-07-08", "Kamis (8/7/2021)"),
        "b": ("2021-10-12", "12 Okt 2021"),
        "c": (None, None),  # "(13/4)" with no year anywhere
        "j1": ("2020-09-15", "2020-09-15T10:00:00+07:00"),
        "j2": ("2020-09-15", "Selasa, 15/09/2020 10:00 WIB"),
        "j3": ("2020-12-07", "Senin (7/12/2020)"),
        "j4": ("2026-12-02", "Dec 2, 2026"),
        "e#0": ("2026-12-02", "2 Desember 2026"),
    }
    assert any("d.jsonl" in r.getMessage() and "kemarin" in r.getMessage() for r in caplog.records)
    arts = corpus.articles
    # sortable and filterable by the ISO date
    ordered = sorted((a for a in arts if a.date), key=lambda a: a.date)
    assert [a.id for a in ordered][:2] == ["j1", "j2"] and ordered[-1].date == "2026-12-02"
    assert {a.id for a in arts if a.date and "2021-01-01" <= a.date < "2022-01-01"} == {"a", "b"}


def test_seed_articles_keep_their_dates():
    # Dates load_corpus gave these five files before dates.py (checked on the previous commit).
    before = {"000_6e0daaa39b882e33": None, "001_4b26eca18300fe70": None, "002_c05e6eef8739556f": None,
              "003_69489f4e311f00f9": None, "004_a334bb20f42b0522": "2020-09-15"}
    arts = {a.id: a for a in load_corpus(CORPUS).articles}
    assert {k: a.date for k, a in arts.items()} == before
    assert arts["004_a334bb20f42b0522"].date_text == "Selasa 15 September 2020"  # the weekday-marked mention
