"""Ingestion and cleaning on the real articles and on hand-made bad files."""
from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings, strategies as st

from conftest import CORPUS
from qa.ingest import load_corpus
from qa.ingest.clean import clean_article, is_boilerplate, parse_date

# Boilerplate lines as they appear in the five seed files (written out by hand, not taken from the code).
SEED_BOILERPLATE = {
    "Alaku", "• Bagikan", "Bagikan", "Tinggalkan Balasan",
    "Alamat email Anda tidak akan dipublikasikan. Ruas yang wajib ditandai *",
    "1", "2", "Cetak E-mail", "VIDEO BERITA TERKAIT :", "Tags:", "TINGGALKAN KOMENTAR",
    "Please enter your comment!", "Please enter your name here",
    "This site uses Akismet to reduce spam. Learn how your comment data is processed.",
    "kluster asn di banten",
}


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


@pytest.fixture(scope="module")
def seeds():
    corpus = load_corpus(CORPUS)
    return {a.id: a for a in corpus.articles}, corpus


def test_five_articles_no_problems(seeds):
    arts, corpus = seeds
    assert len(arts) == 5 and corpus.problems == [] and corpus.duplicates == []


def test_no_boilerplate_line_survives(seeds):
    arts, _ = seeds
    for a in arts.values():
        lines = {_norm(line) for line in a.text.split("\n") if line.strip()}
        assert not lines & {_norm(b) for b in SEED_BOILERPLATE}, a.id
        assert "Alaku" not in a.text and "Bagikan" not in a.text and "Akismet" not in a.text


def test_no_story_sentence_lost(seeds):
    arts, _ = seeds
    for a in arts.values():
        raw = (CORPUS / f"{a.id}.txt").read_text(encoding="utf-8")
        clean = _norm(a.text) + " " + _norm(a.title or "")
        for line in raw.splitlines():
            line = _norm(line.replace("\u00a0", " "))
            if not line or line in {_norm(b) for b in SEED_BOILERPLATE}:
                continue
            assert line in clean, (a.id, line[:80])


def test_metadata_from_datelines(seeds):
    arts, _ = seeds
    assert (arts["002_c05e6eef8739556f"].place, arts["002_c05e6eef8739556f"].source) == ("Amuntai", "ANTARA")
    assert (arts["000_6e0daaa39b882e33"].place, arts["000_6e0daaa39b882e33"].source) == ("Serang", "Darah Juang Online")
    assert arts["001_4b26eca18300fe70"].place == "Padang"
    assert arts["004_a334bb20f42b0522"].source == "BantenTribun.id"
    assert arts["004_a334bb20f42b0522"].date == "2020-09-15"
    assert arts["003_69489f4e311f00f9"].source == "Bhirawa"
    assert arts["004_a334bb20f42b0522"].title.startswith("Kluster ASN di Banten")
    assert arts["000_6e0daaa39b882e33"].title.startswith("ANTISIPASI PENYEBARAN COVID")


@pytest.mark.parametrize("text,iso", [
    ("Selasa 15 September 2020", "2020-09-15"), ("Senin, 3 Mei 2021 pukul 10.00", "2021-05-03"),
    ("on September 15, 2020", "2020-09-15"), ("2022-04-01T10:00", "2022-04-01"),
    ("Rabu (14/07)", None), ("31 Februari 2020", None),
])
def test_parse_date(text, iso):
    assert parse_date(text) == iso


def test_boilerplate_patterns():
    for line in ["Bagikan", "  • Bagikan", "Cetak   E-mail", "VIDEO BERITA TERKAIT :", "Tags:", "Please enter your comment!",
                 "Alamat email Anda tidak akan dipublikasikan."]:
        assert is_boilerplate(re.sub(r"\s+", " ", line).strip()), line
    for line in ["Tags: vaksin, lapas", "Bagikan vaksin kepada warga binaan di lapas."]:
        assert not is_boilerplate(line), line


def test_readers_and_bad_files(tmp_path):
    (tmp_path / "a.txt").write_text("Judul Satu\n\nJakarta - Isi berita pertama cukup panjang. Kalimat kedua.\n", encoding="utf-8")
    (tmp_path / "dup.txt").write_text("Judul Satu\n\nJakarta - Isi berita pertama cukup panjang. Kalimat kedua.\n", encoding="utf-8")
    (tmp_path / "b.html").write_text(
        "<html><head><title>T</title><meta property='og:site_name' content='Kabar'></head><body>"
        "<nav>Home | Berita</nav><script>alert(1)</script><article><h1>Judul HTML</h1>"
        "<time datetime='2021-07-14'>14 Juli</time><p>Paragraf <b>satu</b> di sini.</p><p>Paragraf dua.</p>"
        "<div class='share'><button>Bagikan</button></div></article><footer>(c) 2021</footer></body></html>",
        encoding="utf-8")
    (tmp_path / "c.jsonl").write_text(
        json.dumps({"id": "x1", "title": "Rekaman", "text": "Teks rekaman satu.", "date": "2020-01-02", "source": "S"}) + "\n"
        + "{broken json\n" + json.dumps({"title": "no text"}) + "\n", encoding="utf-8")
    (tmp_path / "d.json").write_text(json.dumps([{"text": "Teks JSON."}, 5, {"text": 12345}]), encoding="utf-8")
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02binary\x00" * 20)
    (tmp_path / "empty.md").write_text("   \n\n", encoding="utf-8")
    (tmp_path / "latin.txt").write_bytes("Kafe di Bandung menjual caf\xe9 murah.".encode("latin-1"))
    (tmp_path / "utf16.txt").write_bytes("Teks UTF-16 dengan BOM.".encode("utf-16"))
    (tmp_path / "fake16.txt").write_bytes(b"\xff\xfe" + "Bukan UTF-16: teks biasa yang diawali dua byte aneh.".encode())
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    c = load_corpus(tmp_path)
    ids = {a.id: a for a in c.articles}
    assert set(ids) == {"a", "b", "x1", "d#0", "latin", "utf16"}
    assert ids["b"].title == "Judul HTML" and ids["b"].source == "Kabar" and ids["b"].date == "2021-07-14"
    assert "alert" not in ids["b"].text and "Home" not in ids["b"].text and "Bagikan" not in ids["b"].text
    assert "Paragraf satu di sini." in ids["b"].text
    assert ids["x1"].title == "Rekaman" and ids["x1"].date == "2020-01-02"
    assert "café" in ids["latin"].text
    assert ids["a"].place == "Jakarta"
    reasons = {p.path.split("/")[-1]: p.reason for p in c.problems}
    assert "binary" in reasons["bin.txt"]
    assert "empty" in reasons["empty.md"]
    assert "not UTF-16 text" in reasons["fake16.txt"]
    assert "invalid JSON" in reasons["c.jsonl:2"]
    assert "text" in reasons["c.jsonl:3"]
    assert "object" in reasons["d.json[1]"]
    assert "must be a string; got int" in reasons["d.json[2]"]
    assert "unsupported" in reasons["image.png"]
    assert c.duplicates == [("dup", "a")]


def test_markdown_front_matter_gives_title_date_and_source(tmp_path):
    (tmp_path / "fm.md").write_text(
        "---\ntitle: \"Vaksinasi di Lapas Cipinang\"\ndate: 2021-05-05\nsource: Detik\nauthor: Redaksi\n"
        "url: https://example.org/a\n---\n\nSebanyak 500 narapidana di Lapas Cipinang menerima vaksin.\n",
        encoding="utf-8")
    (tmp_path / "heading.md").write_text("---\nsource: Kompas\n---\n# Judul dari Heading\n\nIsi berita di sini.\n",
                                         encoding="utf-8")
    (tmp_path / "rule.md").write_text("Isi tanpa front matter.\n\n---\n\nBagian kedua.\n", encoding="utf-8")
    ids = {a.id: a for a in load_corpus(tmp_path).articles}
    fm = ids["fm"]
    assert (fm.title, fm.date, fm.source, fm.url) == ("Vaksinasi di Lapas Cipinang", "2021-05-05", "Detik",
                                                      "https://example.org/a")
    assert fm.text == "Sebanyak 500 narapidana di Lapas Cipinang menerima vaksin." and "author" not in fm.text
    assert ids["heading"].title == "Judul dari Heading" and ids["heading"].source == "Kompas"
    assert "Bagian kedua" in ids["rule"].text and ids["rule"].date is None  # a rule later on is not front matter


def test_symlink_outside_corpus_not_followed(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("Rahasia di luar korpus.", encoding="utf-8")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "ok.txt").write_text("Berita biasa.", encoding="utf-8")
    (corpus / "link.txt").symlink_to(outside)
    c = load_corpus(corpus)
    assert [a.id for a in c.articles] == ["ok"]
    assert any("link.txt" in p.path and "outside" in p.reason for p in c.problems)


def test_missing_folder():
    with pytest.raises(FileNotFoundError, match="corpus folder not found"):
        load_corpus("/nonexistent/folder")


story = st.lists(st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=12), min_size=4, max_size=15)


@settings(max_examples=150, deadline=None)
@given(st.lists(story.map(lambda ws: " ".join(ws) + "."), min_size=1, max_size=6),
       st.lists(st.sampled_from(sorted(SEED_BOILERPLATE - {"kluster asn di banten", "Alaku"})), max_size=6),
       st.booleans(), st.randoms())
def test_cleaning_keeps_story_and_drops_boilerplate(sentences, junk, repeated, rnd):
    lines = sentences + junk + (["Alaku"] * 3 if repeated else [])
    junk = junk + (["Alaku"] if repeated else [])
    rnd.shuffle(lines)
    # comment-form markers end the story, so keep them at the end as on real pages
    tail = [l for l in lines if l in ("Tinggalkan Balasan", "TINGGALKAN KOMENTAR")]
    body = [l for l in lines if l not in tail]
    cleaned = clean_article("\n\n".join(body + tail), find_title=False)
    for s in sentences:
        assert _norm(s) in _norm(cleaned.text)
    kept = {_norm(l) for l in cleaned.text.split("\n") if l.strip()}
    assert not kept & {_norm(j) for j in junk}


def test_a_duplicate_id_names_both_records(tmp_path):
    (tmp_path / "list.json").write_text(json.dumps([{"id": "a1", "text": "Teks pertama yang cukup panjang."},
                                                    {"id": "a1", "text": "Teks kedua, isi yang lain sekali."}]),
                                        encoding="utf-8")
    (tmp_path / "more.jsonl").write_text(json.dumps({"id": "a1", "text": "Teks ketiga, lain lagi."}) + "\n",
                                         encoding="utf-8")
    c = load_corpus(tmp_path)
    assert [a.id for a in c.articles] == ["a1"] and "pertama" in c.articles[0].text
    reasons = {p.path.split("/")[-1]: p.reason for p in c.problems}
    first = str(tmp_path / "list.json") + "[0]"
    assert reasons == {"list.json[1]": f"duplicate article id 'a1' (first read from {first}); skipped",
                       "more.jsonl:1": f"duplicate article id 'a1' (first read from {first}); skipped"}
