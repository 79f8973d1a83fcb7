"""Extractive answers over the five real articles: verbatim quotes, abstention, follow-ups, language."""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import FIXTURES, read_jsonl
from qa.answer import detect_lang, question_type
from qa.conversation import Turn, is_followup, rewrite

ROWS = read_jsonl(FIXTURES / "answer_questions.jsonl")
SINGLE = [r for r in ROWS if r["type"] == "single"]
UNANSWERABLE = [r for r in ROWS if r["type"] == "unanswerable"]
FOLLOWUPS = [r for r in ROWS if r["type"] == "followup"]
AMUNTAI = "002_c05e6eef8739556f"


def check_answer(ans):
    """Every quote is verbatim at its offsets, inside its paragraph, and marked in the text."""
    for c in ans.citations:
        assert c.quote and c.article.text[c.start:c.end] == c.quote
        assert c.passage_start <= c.start < c.end <= c.passage_end
        assert f"[{c.n}]" in ans.text
        assert c.quote in ans.text
    markers = {int(m) for m in re.findall(r"\[(\d+)\]", ans.text)}
    assert markers <= {c.n for c in ans.citations}
    assert ans.found == bool(ans.citations)
    assert "““" not in ans.text and "””" not in ans.text


def test_a_quoted_remark_is_quoted_in_single_marks(assistant):
    """A quote that holds double quotation marks (a remark) goes in ‘…’, not ““…”” (and stays verbatim)."""
    from qa.answer.lang import quoted

    assert quoted("Vaksinasi selesai.") == "“Vaksinasi selesai.”"
    assert quoted("“Kami siap,” kata dia.") == "‘“Kami siap,” kata dia.’"
    remarks = 0
    for q in ("Apa arahan Presiden Joko Widodo?", "Apa harapan Nirhono?", "Apa kata Kepala Lapas tentang vaksinasi?"):
        ans = assistant.ask(q)
        check_answer(ans)
        for c in ans.citations:
            if "“" in c.quote:
                remarks += 1
                assert "‘“" in ans.text or "‘…" in ans.text, ans.text
    assert remarks, "no answer quoted a remark: pick other questions"


def test_fixture_size():
    assert len(SINGLE) >= 20 and len(UNANSWERABLE) >= 5 and len(FOLLOWUPS) >= 5
    assert len(ROWS) + sum(len(r["turns"]) - 1 for r in FOLLOWUPS) >= 25


def test_quotes_verbatim_over_all_fixture_questions(assistant):
    n = 0
    for r in ROWS:
        if r["type"] == "followup":
            chat = assistant.conversation()
            for t in r["turns"]:
                ans = chat.ask(t["question"])
                check_answer(ans)
                n += len(ans.citations)
        else:
            ans = assistant.ask(r["question"])
            check_answer(ans)
            n += len(ans.citations)
    assert n >= 20


CORPUS_WORDS = ["vaksin", "Banten", "lapas", "Amuntai", "berapa", "siapa", "kapan", "dosis", "warga", "binaan",
                "Covid-19", "ASN", "kluster", "Tagana", "relawan", "how", "many", "who", "WBP", "PPKM", "Padang",
                "protokol", "kesehatan", "booster", "BIN", "Kalsel", "Dinsos", "Jatim", "<b>", "'; DROP", "🙂"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(CORPUS_WORDS), min_size=1, max_size=8).map(" ".join))
def test_quotes_verbatim_property(assistant, question):
    check_answer(assistant.ask(question + "?"))


def test_share_of_single_questions_answered(assistant):
    ok = sum(1 for r in SINGLE if (a := assistant.ask(r["question"])).found and r["answer"].lower() in a.text.lower())
    # measured 16/25 (see docs/answers.md); a floor that catches regressions
    assert ok >= 0.4 * len(SINGLE)


def test_leads_with_the_name(assistant):
    ans = assistant.ask("Siapa Kalapas Kelas IIB Amuntai?")
    assert ans.found and ans.text.startswith("Dwi Hartono")
    c = ans.citations[0]
    assert c.article.id == AMUNTAI and "Dwi Hartono" in c.quote


def test_leads_with_the_number(assistant):
    ans = assistant.ask("Berapa vaksin yang dialokasikan untuk relawan Tagana?")
    assert ans.found and ans.text.startswith("350")


@pytest.mark.parametrize("question,lang", [
    ("Who is the president of France?", "en"),
    ("What is the capital city of Australia?", "en"),
    ("Berapa jumlah vaksin yang diterima Lapas Nusakambangan?", "id"),
])
def test_declines_in_the_question_language(assistant, question, lang):
    ans = assistant.ask(question)
    assert not ans.found and ans.citations == [] and ans.lang == lang
    assert ans.text.startswith("Sorry" if lang == "en" else "Maaf")
    assert ans.hits  # the closest articles are still listed
    assert ans.hits[0].article.display_title in ans.text


def test_share_of_unanswerable_declined(assistant):
    declined = sum(not assistant.ask(r["question"]).found for r in UNANSWERABLE)
    assert declined >= 0.5 * len(UNANSWERABLE)


def test_followup_retrieves_from_the_earlier_article(assistant):
    chat = assistant.conversation()
    first = chat.ask("Berapa warga binaan Lapas Amuntai yang mendapat vaksin booster?")
    assert first.hits[0].article.id == AMUNTAI
    ans = chat.ask("Siapa kepala lapasnya?")
    assert "Amuntai" in ans.query and ans.query != "Siapa kepala lapasnya?"
    assert ans.hits[0].article.id == AMUNTAI
    assert all(h.article.id == AMUNTAI for h in ans.hits[:3])
    # without the conversation the same words do not point at Amuntai
    alone = assistant.ask("Siapa kepala lapasnya?")
    assert alone.query == "Siapa kepala lapasnya?"


def test_scripted_conversations_stay_on_their_article(assistant):
    total = right = 0
    for r in FOLLOWUPS:
        chat = assistant.conversation()
        for t in r["turns"]:
            ans = chat.ask(t["question"])
            total += 1
            right += ans.hits[0].article.id == t["article"]
    assert right >= 0.8 * total  # measured 16/18


def test_conversations_do_not_share_history(assistant):
    a, b = assistant.conversation(), assistant.conversation()
    a.ask("Berapa ASN Pemkab Pandeglang yang positif Covid-19?")
    b.ask("Berapa vaksin yang dialokasikan untuk relawan Tagana?")
    assert "Pandeglang" in a.ask("Kenapa mereka bisa terpapar?").query
    assert "Tagana" in b.ask("Siapa koordinatornya?").query
    a.reset()
    assert a.history == []


def test_rewrite_rules():
    hist = [Turn(question="Berapa warga binaan Lapas Amuntai yang divaksin?", query="Berapa warga binaan Lapas Amuntai yang divaksin?")]
    assert is_followup("Siapa kepala lapasnya?") and is_followup("What is his rank?")
    assert not is_followup("Siapa Kalapas Kelas IIB Amuntai?")
    q = rewrite("Siapa kepala lapasnya?", hist)
    assert q.startswith("Siapa kepala lapas?") and "Lapas Amuntai" in q
    assert rewrite("Siapa Gubernur Banten?", hist) == "Siapa Gubernur Banten?"
    assert rewrite("Siapa kepala lapasnya?", []) == "Siapa kepala lapasnya?"
    # the earlier answer's lead is what "dia" / "his" most often points at: it comes first
    named = [Turn(question="Siapa Kadinsos Jatim?", query="Siapa Kadinsos Jatim?", lead="Dr Alwi MHum")]
    assert rewrite("Berapa pegawai yang terpapar menurut dia?", named).startswith(
        "Berapa pegawai yang terpapar menurut dia? Dr Alwi MHum Kadinsos Jatim")
    long_lead = [Turn(question="Apa yang dia soroti?", query="Apa yang dia soroti?",
                      lead="penularan Covid 19 yang terjadi pada kluster ASN di Banten")]
    assert "penularan" not in rewrite("Kapan dia menyorotinya?", long_lead)  # a phrase, not a referent


def test_followup_query_carries_the_earlier_answer(assistant):
    chat = assistant.conversation()
    first = chat.ask("Siapa Kalapas Amuntai?")
    assert first.found and first.lead and "Dwi Hartono" in first.lead
    assert chat.history[-1].lead == first.lead
    assert first.lead in chat.ask("Dia berterima kasih kepada siapa?").query
    declined = assistant.conversation()
    declined.ask("Siapa Bupati Lebak?")  # not in the articles: no lead to carry
    assert declined.history[-1].lead == ""


@pytest.mark.parametrize("q,kind", [
    ("Berapa dosis vaksin?", "number"), ("How many doses?", "number"), ("Siapa Kalapas?", "person"),
    ("Kapan rapat digelar?", "date"), ("Tanggal berapa rapat itu?", "date"), ("Di mana kluster terjadi?", "place"),
    ("Mengapa kluster terjadi?", "reason"), ("Why did it happen?", "reason"), ("Apa itu PPKM?", None),
])
def test_question_type(q, kind):
    assert question_type(q) == kind


def test_language_detection():
    assert detect_lang("Who is the head of the prison?") == "en"
    assert detect_lang("Siapa kepala lapasnya?") == "id"
    assert detect_lang("") == "id"
    # titles and names in another language do not make the question English (dev questions, all Indonesian)
    assert detect_lang("Kapan novel We Need to Talk About Kevin dirilis?") == "id"
    assert detect_lang('Siapa penulis novel "The Chronicles of Narnia"?') == "id"
    assert detect_lang("Kapan Fly to the Sky mulai debut ?") == "id"
    assert detect_lang("Dimanakah letak Inna Muara Hotel, tempat pameran lukisan Spirit of Natura") == "id"
    assert detect_lang("Which West Sumatra cities are under emergency PPKM?") == "en"
    assert detect_lang("Besides inmates, who should be vaccinated according to the West Sumatra regional head?") == "en"


def test_a_question_in_another_language_is_not_held_to_the_selector_floor(assistant):
    """The selector weighs the question's words found in the text; an English question over Indonesian
    articles shares only names with them, so its selector probability falls below the floor that was
    set on Indonesian questions even where the reader reads the answer: the calibrated threshold decides.
    Asked without the English word list (translate_questions off) and with it."""
    plain = type(assistant)(assistant.store, assistant.config.replace(translate_questions=False),
                            embedder=assistant.embedder, index_dir=assistant.index_dir)
    ans = plain.answerer
    q = "Who is the governor of East Java?"
    _, selector_p, readings, p, threshold = ans.assess(q, plain.retrieve(q, k=plain.config.answer_k))
    assert ans.cross_lingual(q) and not ans.cross_lingual("Siapa gubernur Jawa Timur?")
    assert selector_p < ans.answerability.selector_floor  # the floor would decline it ...
    assert not ans.answerability.passes_floor(selector_p, [r.span for r in readings])
    assert threshold == ans.threshold and p >= threshold  # ... the threshold does not
    for who in (plain, assistant):
        got = who.ask(q)
        assert got.found and "Khofifa" in (got.lead or "")
        for other in ("Who is the mayor of Bukittinggi?", "Who is the president of France?"):  # the articles do not say
            assert not who.ask(other).found, other


def test_empty_question(assistant):
    ans = assistant.ask("   ")
    assert not ans.found and ans.text == "Silakan tulis pertanyaan."
