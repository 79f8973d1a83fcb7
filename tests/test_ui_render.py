"""What the web chat shows, rendered from real qa.types objects (no Gradio, no server): every piece of
article text escaped, only http(s) links, the quote marked at its place in the paragraph, dates per
language, the not-found panel, and the question as the chat takes it."""
from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings as hyp_settings, strategies as st

from qa.answer.lang import phrase
from qa.assistant import MAX_QUERY_CHARS
from qa.types import Answer, Article, Chunk, Citation, Hit
from qa.ui import UI_TEXT, chat_markdown, sources_html
from qa.ui.render import (CONTEXT_CHARS, MONTHS, answer_markdown, clip_question, date_text, link_html,
                          passage_html, settings, word_prefixes)

HOSTILE = ('Budi <script>window.__pwned=1</script> & <img src=x onerror="window.__pwned=2"> '
           "*tebal* _miring_ `kode` [tautan](javascript:alert(1)) # judul | ~coret~ $x$ \\ {a}")
SAFE_TAGS = {"div", "span", "b", "blockquote", "mark", "a"}


class _Page(HTMLParser):
    """Tags, attributes and text of an HTML fragment, as a browser's parser would see them."""

    def __init__(self, fragment: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.stack: list[str] = []
        self.marked: list[str] = []
        self.feed(fragment)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.stack:
            del self.stack[len(self.stack) - 1 - self.stack[::-1].index(tag):]

    def handle_data(self, data):
        self.text.append(data)
        if "mark" in self.stack:
            self.marked.append(data)

    def by_class(self, cls: str) -> list[dict]:
        return [a for _, a in self.tags if cls in (a.get("class") or "").split()]


def _article(i: int = 0, **kw) -> Article:
    text = kw.pop("text", f"Kota {i} - Paragraf pertama artikel {i}.\n\nParagraf kedua artikel {i} berisi jawaban.")
    return Article(id=kw.pop("id", f"a{i}"), title=kw.pop("title", f"Judul artikel {i}"), text=text, **kw)


def _hit(article: Article, start: int = 0, end: int | None = None, cid: int = 0) -> Hit:
    end = len(article.text) if end is None else end
    return Hit(chunk=Chunk(cid, article.id, start, end, article.text[start:end]), article=article, score=1.0)


def _cited_answer(article: Article, quote: str, lang: str = "id", **kw) -> Answer:
    qs = article.text.index(quote)
    ps = article.text.rfind("\n\n", 0, qs)
    ps = 0 if ps < 0 else ps + 2
    pe = article.text.find("\n\n", qs)
    pe = len(article.text) if pe < 0 else pe
    cite = Citation(n=1, article=article, quote=quote, start=qs, end=qs + len(quote), score=0.9,
                    passage_start=ps, passage_end=pe)
    return Answer(question="q", text=f"{quote} [1]", citations=[cite], lang=lang, hits=[_hit(article)], **kw)


def _unmarkdown(md: str) -> str:
    return html.unescape(re.sub(r"\\(.)", r"\1", md))


# -- the chat bubble ---------------------------------------------------------------------------
def test_chat_markdown_shows_specials_as_written():
    md = chat_markdown(HOSTILE + "\n1. bukan daftar\n- bukan butir\n+ juga bukan\n> bukan kutipan")
    assert "<" not in md and ">" not in md  # no tag can reach the page
    assert "&lt;script&gt;" in md and "&lt;img src=x onerror=" in md
    for ch in "*_`[]#|~${}":  # every Markdown special is backslash-escaped
        assert all(md[m.start() - 1] == "\\" for m in re.finditer(re.escape(ch), md)), ch
    assert "\n1\\. bukan" in md and "\n\\- bukan" in md and "\n\\+ juga" in md
    assert _unmarkdown(md).endswith("> bukan kutipan")


@hyp_settings(max_examples=300, deadline=None)
@given(st.text())
def test_chat_markdown_round_trips_any_text(text):
    md = chat_markdown(text)
    assert "<" not in md
    assert _unmarkdown(md) == text


def test_answer_markdown_bolds_flags_names_answerer_and_shows_notice():
    flag = phrase("id", "unsupported")
    ans = Answer(question="q", text=f"Kepala lapas adalah Dwi [1]. Ia lahir di <Bulan> {flag}", lang="id",
                 answerer="openai", model="model-x", notice="Server *LLM* tidak terjangkau.")
    md = answer_markdown(ans, note="Pertanyaan dipotong.")
    assert md.startswith("*Server \\*LLM\\* tidak terjangkau.*\n\nPertanyaan dipotong.\n\n")
    assert f"**{chat_markdown(flag)}**" in md and "&lt;Bulan&gt;" in md
    assert md.endswith(f"*{phrase('id', 'answered_by')}: LLM: model-x*")
    assert answer_markdown(Answer(question="q", text="Yes [1].", lang="en")).endswith("*Answered by: extractive*")


def test_word_prefixes_grow_to_the_whole_text():
    text = "Dwi  Hartono\n[1] adalah kepala. "
    parts = list(word_prefixes(text))
    assert parts[-1] == text and len(parts) == 5
    assert all(b.startswith(a) and len(b) > len(a) for a, b in zip(parts, parts[1:]))
    long = " ".join(f"kata{i}" for i in range(40)) + " [1]."
    few = list(word_prefixes(long, 6))
    assert len(few) == 6 and few[-1] == long and all(b.startswith(a) and len(b) > len(a) for a, b in zip(few, few[1:]))
    assert all(p.endswith(" ") for p in few[:-1])  # cut at word boundaries
    assert list(word_prefixes(text, 6)) == parts  # fewer words than steps: a word at a time


# -- the sources panel -------------------------------------------------------------------------
def test_hostile_article_is_text_and_its_javascript_link_is_refused():
    art = _article(title="Pelantikan <script>x()</script>", source='<img src=x onerror="x()">Warta',
                   url="javascript:window.__pwned=4", date="2021-03-05",
                   text="Pembuka.\n\n" + HOSTILE + " menjadi kepala dinas.\n\nPenutup.")
    out = sources_html(_cited_answer(art, HOSTILE))
    page = _Page(out)
    assert {t for t, _ in page.tags} <= SAFE_TAGS - {"a"}  # no script, no img, and no link for javascript:
    assert not any(k.startswith("on") for _, a in page.tags for k in a)
    text = "".join(page.text)
    assert "Pelantikan <script>x()</script>" in text and '<img src=x onerror="x()">Warta' in text
    assert "".join(page.marked) == HOSTILE


@pytest.mark.parametrize("url", ["javascript:alert(1)", "JavaScript:alert(1)", "data:text/html,<script>x()</script>",
                                 " https://example.com/", "ftp://example.com/a", "//example.com/", ""])
def test_only_http_links_are_made(url):
    assert link_html(_article(url=url or None), "id") == ""


def test_http_link_is_escaped_and_opens_safely():
    url = 'https://berita.example/a?b=1&c="><script>x()</script>'
    page = _Page(link_html(_article(url=url), "en"))
    (tag, attrs), = page.tags
    assert tag == "a" and attrs["href"] == url and attrs["target"] == "_blank"
    assert {"noopener", "noreferrer"} <= set(attrs["rel"].split())
    assert "".join(page.text).startswith(UI_TEXT["en"]["open"])


def test_quote_is_marked_at_its_place_in_its_paragraph():
    first = "Amuntai (ANTARA) - Paragraf pembuka tentang vaksinasi."
    para = 'Menurut Kanwil, "Kalapas" <b>Kelas IIB</b> adalah Dwi Hartono. Ia menjabat sejak 2019 & masih aktif.'
    art = _article(text=f"{first}\n\n{para}\n\nParagraf penutup.")
    quote = "<b>Kelas IIB</b> adalah Dwi Hartono."
    out = sources_html(_cited_answer(art, quote))
    (passage,) = re.findall(r'<blockquote class="qa-passage">(.*?)</blockquote>', out)
    before, marked, after = re.fullmatch(r"(.*)<mark>(.*)</mark>(.*)", passage).groups()
    assert html.unescape(before) == 'Menurut Kanwil, "Kalapas" '
    assert html.unescape(marked) == quote
    assert html.unescape(after) == " Ia menjabat sejak 2019 & masih aktif."
    assert first not in html.unescape(out) and "penutup" not in out  # only the quote's paragraph


def test_long_sides_are_trimmed_at_word_boundaries():
    words = [f"{'ab' * (i % 7)}kata{i}" for i in range(200)]  # uneven lengths
    before, after = " ".join(words[:100]) + " ", " " + " ".join(words[100:])
    quote = "Dwi Hartono menjabat Kalapas."
    text = before + quote + after
    qs = len(before)
    out = passage_html(text, 0, len(text), qs, qs + len(quote))
    left, marked, right = re.fullmatch(r"(.*)<mark>(.*)</mark>(.*)", out).groups()
    assert marked == quote
    assert left.startswith("…") and right.endswith("…")
    assert len(left) <= CONTEXT_CHARS + 1 and len(right) <= CONTEXT_CHARS + 1
    # a plain cut at CONTEXT_CHARS would split a word on each side ...
    assert " " not in before[-CONTEXT_CHARS - 1:-CONTEXT_CHARS + 1] + after[CONTEXT_CHARS - 1:CONTEXT_CHARS + 1]
    # ... the trimmed sides keep whole words only
    assert before.endswith(left[1:]) and before[-len(left)] == " "
    assert after.startswith(right[:-1]) and after[len(right) - 1] == " "


def test_short_sides_are_kept_whole_and_bad_offsets_show_the_quote_alone():
    text = "Awal kalimat. Kutipan ini. Akhir kalimat."
    qs, qe = text.index("Kutipan"), text.index(" Akhir")
    assert passage_html(text, 0, len(text), qs, qe) == "Awal kalimat. <mark>Kutipan ini.</mark> Akhir kalimat."
    assert passage_html(text, qs + 2, len(text), qs, qe) == "<mark>Kutipan ini.</mark>"  # paragraph after quote
    assert passage_html(text, 0, len(text) + 5, qs, qe) == "<mark>Kutipan ini.</mark>"  # past the end
    assert passage_html(text, 0, 0, qs, qe) == "<mark>Kutipan ini.</mark>"  # no paragraph


@pytest.mark.parametrize("lang,expected", [("id", "5 Maret 2021"), ("en", "5 March 2021"), ("fr", "5 Maret 2021")])
def test_dates_are_written_in_the_answer_language(lang, expected):
    assert date_text("2021-03-05", lang) == expected
    art = _article(date="2021-03-05", source="ANTARA")
    page = "".join(_Page(sources_html(_cited_answer(art, "Paragraf kedua", lang=lang))).text)
    assert expected in page and "ANTARA" in page
    assert f"{phrase(lang, 'date').capitalize()}: {expected}" in page


def test_dates_that_are_not_iso_are_shown_as_given_and_missing_ones_as_unknown():
    assert [date_text(v, "en") for v in ("2021-13-01", "5 Maret 2021", "2021-3-5", None)] == \
        ["2021-13-01", "5 Maret 2021", "2021-3-5", None]
    assert all(len(MONTHS[lang]) == 12 for lang in MONTHS)
    for lang in ("id", "en"):
        text = "".join(_Page(sources_html(_cited_answer(_article(), "Paragraf kedua", lang=lang))).text)
        unknown = phrase(lang, "unknown")
        assert f"{phrase(lang, 'source').capitalize()}: {unknown}" in text
        assert f"{phrase(lang, 'date').capitalize()}: {unknown}" in text


def test_cards_follow_the_citations():
    a, b = _article(0, source="ANTARA"), _article(1, source="Kompas", url="https://kompas.example/1")
    ans = _cited_answer(a, "Paragraf kedua artikel 0")
    qs = b.text.index("berisi")
    ans.citations.append(Citation(n=2, article=b, quote="berisi jawaban.", start=qs, end=qs + 15, score=0.5,
                                  passage_start=b.text.index("Paragraf kedua"), passage_end=len(b.text)))
    page = _Page(sources_html(ans))
    assert len(page.by_class("qa-card")) == 2 and page.marked == ["Paragraf kedua artikel 0", "berisi jawaban."]
    text = "".join(page.text)
    assert text.index("Judul artikel 0") < text.index("Judul artikel 1")
    assert [a["href"] for t, a in page.tags if t == "a"] == ["https://kompas.example/1"]
    assert text.startswith(f"{phrase('id', 'answered_by')}: extractive{phrase('id', 'sources')}")


def test_a_folded_story_names_the_other_outlets_that_reported_it():
    rep = _article(0, source="ANTARA", date="2022-03-30")
    copy = _article(1, source="Banjarmasin <b>Post</b>", date="2022-03-31", url="https://bpost.example/1")
    third = _article(2, source=None, title="Tanpa sumber")
    hit = _hit(copy)
    hit.also_reported_by, hit.representative_id = (rep, third), rep.id
    ans = _cited_answer(rep, "Paragraf kedua artikel 0")  # cited in the most complete version
    ans.hits = [hit, _hit(_article(3), cid=1)]
    page = _Page(sources_html(ans))
    also = page.by_class("qa-also")
    assert len(also) == 1
    text = "".join(page.text)
    assert f"{phrase('id', 'also_reported').capitalize()}: Banjarmasin <b>Post</b> (31 Maret 2022), Tanpa sumber" \
        in text  # the outlet is text (escaped), an outlet-less article shows its title
    assert "<b>Post</b>" not in sources_html(ans).replace("&lt;b&gt;Post&lt;/b&gt;", "")
    # a citation of an unfolded article shows no line; nor does the not-found panel's unfolded hit
    ans.citations[0] = Citation(n=1, article=ans.hits[1].article, quote="Paragraf", start=ans.hits[1].article.text.index(
        "Paragraf"), end=ans.hits[1].article.text.index("Paragraf") + 8, score=0.9)
    assert not _Page(sources_html(ans)).by_class("qa-also")
    closest = Answer(question="q", text="-", found=False, lang="en", hits=[hit])
    en = "".join(_Page(sources_html(closest)).text)
    assert "Also reported by: ANTARA (30 March 2022), Tanpa sumber" in en


def test_not_found_lists_at_most_three_distinct_closest_articles():
    arts = [_article(i, text=f"Artikel {i} " + "panjang " * 200) for i in range(5)]
    hits = [_hit(arts[0], 0, 40, 0), _hit(arts[0], 40, 80, 1), _hit(arts[1], cid=2), _hit(arts[0], cid=3),
            _hit(arts[2], cid=4), _hit(arts[3], cid=5), _hit(arts[4], cid=6)]
    ans = Answer(question="q", text=phrase("en", "not_found"), found=False, lang="en", hits=hits,
                 notice="The LLM server was unreachable.")
    page = _Page(sources_html(ans))
    text = "".join(page.text)
    assert phrase("en", "not_found") in text and phrase("en", "closest") in text
    assert "extractive (fallback)" in text
    assert len(page.by_class("qa-card")) == 3
    assert re.findall(r"Judul artikel (\d)", text) == ["0", "1", "2"]
    assert re.findall(r'<span class="qa-num">(\d)</span>', sources_html(ans)) == ["1", "2", "3"]
    assert not page.marked
    excerpts = re.findall(r'<blockquote class="qa-passage">(.*?)</blockquote>', sources_html(ans))
    assert excerpts[0] == html.escape(hits[0].text) and excerpts[1].endswith("…")  # long excerpts cut
    assert len(excerpts[1]) <= 2 * CONTEXT_CHARS + 1

    none = _Page(sources_html(Answer(question="q", text="-", found=False, lang="id")))
    assert not none.by_class("qa-card") and phrase("id", "closest") not in "".join(none.text)
    assert phrase("id", "not_found") in "".join(none.text)


def test_empty_panel_before_the_first_question():
    for lang in ("id", "en"):
        page = _Page(sources_html(None, lang))
        assert page.by_class("qa-empty") and "".join(page.text).startswith(phrase(lang, "sources"))
    assert set(UI_TEXT["id"]) == set(UI_TEXT["en"])


# -- what the user sent ------------------------------------------------------------------------
def test_lone_surrogates_are_replaced_so_the_reply_can_be_encoded():
    q, note = clip_question("  Siapa \ud800 kepala \udfff lapasnya?  ")
    q.encode("utf-8")  # would raise on a lone surrogate
    chat_markdown(q).encode("utf-8")
    assert note is None and q.startswith("Siapa ") and q.endswith(" lapasnya?") and "\ufffd" in q
    assert clip_question("Siapa 😀 kepala?")[0] == "Siapa 😀 kepala?"  # a real pair is kept


def test_long_questions_are_cut_with_a_note_in_their_language():
    q, note = clip_question("Siapa kepala lapas yang baru di kota itu? " * 100)
    assert len(q) == MAX_QUERY_CHARS and note == phrase("id", "too_long").format(n=MAX_QUERY_CHARS)
    q, note = clip_question("Who is the head of the prison in that town? " * 100)
    assert len(q) == MAX_QUERY_CHARS and str(MAX_QUERY_CHARS) in note and note == phrase("en", "too_long").format(
        n=MAX_QUERY_CHARS)
    exact = "x" * MAX_QUERY_CHARS
    assert clip_question(exact) == (exact, None)
    assert clip_question(exact + "y") == (exact, phrase("id", "too_long").format(n=MAX_QUERY_CHARS))
    assert clip_question(None) == ("", None) and clip_question("   ") == ("", None)
    assert clip_question(42) == ("42", None)


@pytest.mark.parametrize("k,expected", [(3, 3), ("7", 7), (0, 1), (-4, 1), (99, 10), (2.9, 2), ("abc", 5),
                                        (None, 5), (float("inf"), 5), (float("nan"), 5), ([1], 5)])
def test_k_is_made_a_number_from_1_to_10(k, expected):
    assert settings(k, "bm25", "hybrid") == (expected, "bm25")


@pytest.mark.parametrize("mode,expected", [("dense", "dense"), ("bm25", "bm25"), ("hybrid", "hybrid"),
                                           ("<script>", "bm25"), (None, "bm25"), ("", "bm25")])
def test_unknown_modes_fall_back_to_the_default(mode, expected):
    assert settings(5, mode, "bm25") == (5, expected)


# -- the example filter's question to the assistant ------------------------------------------------
def test_known_fraction_counts_the_words_the_index_has(tmp_path):
    from fakes import HashEmbedder
    from qa import Assistant, build_index

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Vaksinasi di Amuntai\n\nPetugas lapas Amuntai menerima vaksin Sinovac.\n",
                                  encoding="utf-8")
    (corpus / "b.txt").write_text("Banjir di Barabai\n\nBanjir merendam rumah warga Barabai.\n", encoding="utf-8")
    # a third article: with rank-bm25 a word in exactly half of the passages has IDF 0
    (corpus / "c.txt").write_text("Harga cabai naik\n\nHarga cabai rawit di pasar induk naik.\n", encoding="utf-8")
    build_index(corpus, tmp_path / "index", progress=False, embedder=HashEmbedder())
    a = Assistant.load(tmp_path / "index", embedder=HashEmbedder())
    assert a.known_fraction("Amuntai Barabai") == 1.0
    assert a.known_fraction("Amuntai zzqxw") == 0.5
    assert a.known_fraction("zzqxw qqvvk plorb") == 0.0
    assert a.known_fraction("") == 0.0 and a.known_fraction("?!") == 0.0
