"""Sentence splitting and chunk offsets (property-based)."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from conftest import CORPUS
from qa.chunking import chunk_spans, split_sentences
from qa.ingest import load_corpus


def _sents(text):
    return [text[s.start:s.end] for s in split_sentences(text)]


def test_no_split_inside_protected_tokens():
    text = ("Vaksinasi sebanyak 10.575 dosis diberikan. Dr. Heri dan H. Budi dari Kab. Hulu, No. 5, hadir "
            "Rabu (14/07) terkait Covid-19. “Kita siap. Semua aman,” kata Prof. Budi. Selesai.")
    sents = _sents(text)
    assert sents == [
        "Vaksinasi sebanyak 10.575 dosis diberikan.",
        "Dr. Heri dan H. Budi dari Kab. Hulu, No. 5, hadir Rabu (14/07) terkait Covid-19.",
        "“Kita siap. Semua aman,” kata Prof. Budi.",
        "Selesai.",
    ]


def test_english_sentences():
    assert _sents("Mr. Smith arrived. He left at 5 p.m. on Monday! Why? Because.") == [
        "Mr. Smith arrived.", "He left at 5 p.m. on Monday!", "Why?", "Because."]


def test_paragraph_break_is_a_boundary():
    assert _sents("Judul tanpa titik\n\nKalimat pertama.") == ["Judul tanpa titik", "Kalimat pertama."]


def test_seed_chunks_cover_every_sentence():
    for art in load_corpus(CORPUS).articles:
        spans = chunk_spans(art.text, chunk_size=700, overlap=1)
        covered = set()
        for c in spans:
            covered.update(range(c.start, c.end))
        for s in split_sentences(art.text):
            assert s.start in covered and s.end - 1 in covered


words = st.sampled_from(["Vaksin", "dosis", "10.575", "Covid-19", "Dr.", "H.", "Kab.", "No.", "(14/07)",
                         "“kata", "dia.”", "warga", "binaan.", "Lapas", "Amuntai!", "siapa?", "e.g.", "A."])
texts = st.lists(st.lists(words, min_size=1, max_size=30).map(" ".join), min_size=1, max_size=6).map("\n\n".join)


@settings(max_examples=300, deadline=None)
@given(texts, st.integers(min_value=50, max_value=800), st.integers(min_value=0, max_value=3))
def test_chunk_offsets_are_exact(text, size, overlap):
    spans = chunk_spans(text, chunk_size=size, overlap=overlap)
    starts = [c.start for c in spans]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)  # always moves forward
    for c in spans:
        piece = text[c.start:c.end]
        assert piece and piece == piece.strip()
    sents = split_sentences(text)
    for s in sents:
        assert text[s.start:s.end].strip() == text[s.start:s.end]
        assert any(c.start <= s.start and s.end <= c.end for c in spans)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=0, max_size=400))
def test_arbitrary_text_never_crashes(text):
    for c in chunk_spans(text, chunk_size=120, overlap=1):
        assert 0 <= c.start < c.end <= len(text)
