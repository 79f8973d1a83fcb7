"""Question language (Indonesian or English) and the fixed phrases of answers in each."""
from __future__ import annotations

import re

_ID = set("""apa apakah siapa siapakah berapa berapakah kapan kapankah dimana dimanakah mana manakah kemana
kemanakah darimana darimanakah mengapa mengapakah kenapa bagaimana bagaimanakah
yang dan di ke dari untuk dengan pada adalah ini itu tersebut ada tidak sudah akan oleh dalam nya saja juga
bisa para kepala jumlah vaksin""".split())
_EN = set("""what who whom whose how many much when where why which is are was were the a an of in on to
for did does do has have with by from that this there their his her its they he she it about""".split())

PHRASES = {
    "id": {
        "not_found": "Maaf, artikel-artikel yang ada tidak memuat jawaban atas pertanyaan ini.",
        "closest": "Artikel yang paling dekat",
        "sources": "Sumber",
        "empty": "Silakan tulis pertanyaan.",
        "no_match": "Tidak ada artikel dengan filter ini ({filter}) yang cocok dengan pertanyaan; coba perluas filternya.",
        "too_long": "Pertanyaan terlalu panjang; dipotong menjadi {n} karakter.",
        "answer_is": "Jawaban",
        "no_index": "Belum ada indeks.",
        "source": "sumber",
        "date": "tanggal",
        "unknown": "tidak diketahui",
        "unsupported": "(⚠ tidak didukung sumber)",
        "llm_fallback": "Server LLM tidak dapat dipakai; ini jawaban ekstraktif.",
        "answered_by": "Dijawab oleh",
        "also_reported": "juga diberitakan oleh",
    },
    "en": {
        "not_found": "Sorry, the articles do not contain an answer to this question.",
        "closest": "Closest articles",
        "sources": "Sources",
        "empty": "Please type a question.",
        "no_match": "No article passing the filter ({filter}) matches this question; try a wider filter.",
        "too_long": "The question was too long; it was cut to {n} characters.",
        "answer_is": "Answer",
        "no_index": "There is no index yet.",
        "source": "source",
        "date": "date",
        "unknown": "unknown",
        "unsupported": "(⚠ not supported by the sources)",
        "llm_fallback": "The LLM server could not be used; this is the extractive answer.",
        "answered_by": "Answered by",
        "also_reported": "also reported by",
    },
}


_QUOTED = re.compile(r'"[^"]*"|“[^”]*”')


def detect_lang(text: str) -> str:
    """``"en"`` or ``"id"`` (the default) by counting function words of each language. Words in double
    quotes and capitalised words after the first are left out (titles and names: "Kapan novel We Need to
    Talk About Kevin dirilis?" is Indonesian); the first word counts twice (a question opens with its
    question word)."""
    words = re.findall(r"[A-Za-z]+", _QUOTED.sub(" ", text))
    kept = [w.lower() for i, w in enumerate(words) if i == 0 or not w[0].isupper()]
    kept += kept[:1]
    en = sum(w in _EN for w in kept)
    idn = sum(w in _ID or w.endswith("nya") for w in kept)
    return "en" if en > idn else "id"


def phrase(lang: str, key: str) -> str:
    return PHRASES.get(lang, PHRASES["id"])[key]


def quoted(span: str) -> str:
    """``span`` in quotation marks: “…”, or ‘…’ when it holds double quotes itself (a quoted remark:
    ‘“Kami siap,” kata Kepala Lapas.’ rather than ““Kami siap,” kata Kepala Lapas.”)."""
    return f"‘{span}’" if any(m in span for m in '“”"') else f"“{span}”"
