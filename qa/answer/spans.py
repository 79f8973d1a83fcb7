"""Question kinds and the spans that answer them: counts, dates, names, places, reasons.

Regular expressions for Indonesian and English news text; the selector uses them as features
(does the sentence hold a span of the kind the question asks for?) and the answer leads with such
a span when one stands next to the question's words.
"""
from __future__ import annotations

import re
from typing import Optional


def strip_clitic(word: str) -> str:
    """``lapasnya`` -> ``lapas`` (possessive/definite clitic), keeping words such as ``hanya``."""
    low = word.lower().rstrip("?!.,")
    if low.endswith("nya") and len(low) > 5 and low not in _NYA_KEEP:
        return word[: len(low) - 3] + word[len(low):]
    return word


_NYA_KEEP = {"hanya", "bahwasanya", "sebenarnya", "biasanya", "akhirnya", "selanjutnya", "sebelumnya",
             "sesungguhnya", "seharusnya", "misalnya", "lainnya", "karenanya", "adanya", "katanya", "punya"}


QTYPES = {
    "number": r"\bberapa(kah)?\b|\bhow (many|much)\b|\bjumlah\b|\bwhat (number|percentage)\b|\bberapa persen\b",
    "date": r"\bkapan(kah)?\b|\bwhen\b|\btanggal berapa\b|\btahun berapa\b|\bwhat (date|year|day)\b|\bhari apa\b",
    "person": r"\bsiapa(kah)?\b|\bwho(m|se)?\b",
    "place": r"\bdi ?mana(kah)?\b|\bke ?mana\b|\bdari ?mana\b|\bwhere\b|\bwhich (city|province|place|region)\b",
    "reason": r"\bmengapa\b|\bkenapa\b|\bwhy\b|\bapa (sebab|alasan)\b|\balasan\b|\bfor what reason\b",
}
_QTYPE_RE = {k: re.compile(v, re.I) for k, v in QTYPES.items()}
QUESTION_WORDS = {
    "apa", "apakah", "siapa", "siapakah", "berapa", "berapakah", "kapan", "kapankah", "mana", "dimana",
    "manakah", "mengapa", "kenapa", "bagaimana", "bagaimanakah", "what", "who", "whom", "whose", "how", "many",
    "much", "when", "where", "why", "which", "jumlah", "nama", "name", "disebut", "called",
}

_NUM = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?:\s?%|\s?persen)?(?:\s+(?:ribu|juta|miliar|triliun))?"
                  r"(?:\s+[a-zA-Z][\w-]*){0,1}")
_MONTHS = (r"Januari|Februari|Maret|April|Mei|Juni|Juli|Agustus|September|Oktober|November|Desember|January|"
           r"February|March|May|June|July|August|October|December")
_DATE = re.compile(rf"(?:(?:Senin|Selasa|Rabu|Kamis|Jumat|Sabtu|Minggu),?\s+)?\d{{1,2}}\s+(?:{_MONTHS})(?:\s+\d{{4}})?|"
                   rf"(?:{_MONTHS})\s+\d{{4}}|\(\d{{1,2}}/\d{{1,2}}(?:/\d{{2,4}})?\)|"
                   r"\b(?:Senin|Selasa|Rabu|Kamis|Jumat|Sabtu|Minggu)\b(?:\s+(?:pagi|siang|sore|malam))?|\b(?:19|20)\d{2}\b")
_NAME = re.compile(r"\b(?:[A-Z][a-z]+\.?\s)?(?:[A-Z][a-z']+(?:\s+|$)){1,4}")
_PLACE = re.compile(r"\b(?:di|ke|dari|in|at)\s+((?:[A-Z][\w-]*\s?){1,4})")
_REASON = re.compile(r"\b(karena|sebab|akibat|lantaran|agar|supaya|sehingga|because|due to|so that|since)\b", re.I)
_TITLES = {"Kepala", "Kalapas", "Gubernur", "Bupati", "Walikota", "Presiden", "Menteri", "Kakanwil", "Sekjen",
           "Koordinator", "Brigjen", "Pol", "Dr", "Prof", "Jend", "Kadivpas", "Sekdinsos", "Kadinsos", "Kata",
           "Sementara", "Selain", "Untuk", "Dengan", "Pada", "Dalam", "Sebagai", "Sesuai", "Seperti", "Hal", "Di"}


def _matches(term: str, toks: set[str]) -> bool:
    """``term`` is in ``toks``, or shares a stem-like prefix with one of them ("vaksin" ~ "vaksinasi")."""
    if term in toks:
        return True
    if len(term) < 5 or not term.isalpha():
        return False
    return any(len(u) >= 5 and u.isalpha() and (u.startswith(term) or term.startswith(u)) for u in toks)


def question_type(question: str) -> Optional[str]:
    """``number``, ``date``, ``person``, ``place``, ``reason`` or ``None``."""
    for kind in ("number", "date", "person", "place", "reason"):
        if _QTYPE_RE[kind].search(question):
            # "tanggal berapa" is a date question, not a number question
            if kind == "number" and _QTYPE_RE["date"].search(question):
                return "date"
            return kind
    return None


_NOT_NAMES = {
    "Kelas", "Lapas", "Rutan", "Dinas", "Provinsi", "Prov", "Kabupaten", "Kab", "Kota", "Kantor", "Wilayah",
    "Badan", "Lembaga", "Pemasyarakatan", "Kementerian", "Hukum", "HAM", "Covid", "COVID", "Virus", "Corona",
    "Disease", "Daerah", "Negara", "Intelijen", "Sosial", "Kesehatan", "Satgas", "Pemprov", "Pemkab", "Tahun",
    "Hari", "Bakti", "Darurat", "PPKM", "ASN", "UPT", "WBP", "Warga", "Binaan", "Organisasi", "Perangkat",
    "Aparatur", "Sipil", "Unit", "Pelaksana", "Teknis", "Divisi", "Jenderal", "Sekretaris", "Gubernur",
    "Peraturan", "Seluruh", "Pandemi", "Rapat", "Virtual", "Data", "Foto", "Humas", "Online", "Pimpinan",
}
_COVID_BEFORE = re.compile(r"covid\s*-?\s*$", re.I)


def _spans(kind: Optional[str], text: str) -> list[tuple[int, int]]:
    if kind == "number":
        return [(m.start(), m.end()) for m in _NUM.finditer(text) if not _COVID_BEFORE.search(text[max(0, m.start() - 8):m.start()])]
    if kind == "date":
        return [(m.start(), m.end()) for m in _DATE.finditer(text)]
    if kind == "person":
        out = []
        for m in _NAME.finditer(text):
            words = [w for w in m.group(0).split() if w.rstrip(".") not in _TITLES]
            if any(w.rstrip(".,") in _NOT_NAMES for w in words):
                continue
            if len(words) >= 2 or (len(words) == 1 and m.start() > 0 and len(words[0]) > 3):
                s = text.index(words[0], m.start())
                e = s + len(" ".join(words)) if " ".join(words) in text[s:m.end() + 1] else m.end()
                out.append((s, min(e, m.end())))
        return out
    if kind == "place":
        return [(m.start(1), m.start(1) + len(m.group(1).rstrip())) for m in _PLACE.finditer(text)]
    if kind == "reason":
        return [(m.start(), m.end()) for m in _REASON.finditer(text)]
    return []
