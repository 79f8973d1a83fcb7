"""Query-side expansion of common Indonesian government and news abbreviations.

News writes "Kalapas" where a reader asks "kepala lapas", "WBP" where a reader asks "warga
binaan". Expansion adds the other form to the BM25 query (never to the index), both ways
(:func:`expand`); the span reader reads the question with its abbreviations written out
(:func:`spell_out`: it learnt from Wikipedia questions, where "Kadivpas" or "WFH" hardly occur).
"""
from __future__ import annotations

import re
from typing import Optional

# abbreviation -> long form (lower case)
ABBREVIATIONS: dict[str, str] = {
    "kalapas": "kepala lapas",
    "karutan": "kepala rutan",
    "kakanwil": "kepala kantor wilayah",
    "kanwil": "kantor wilayah",
    "kadivpas": "kepala divisi pemasyarakatan",
    "kadinsos": "kepala dinas sosial",
    "kadinkes": "kepala dinas kesehatan",
    "sekdinsos": "sekretaris dinas sosial",
    "lapas": "lembaga pemasyarakatan",
    "rutan": "rumah tahanan",
    "wbp": "warga binaan",
    "asn": "aparatur sipil negara",
    "pns": "pegawai negeri sipil",
    "ptt": "pegawai tidak tetap",
    "dinkes": "dinas kesehatan",
    "dinsos": "dinas sosial",
    "satker": "satuan kerja",
    "satgas": "satuan tugas",
    "upt": "unit pelaksana teknis",
    "kemenkumham": "kementerian hukum dan ham",
    "kemenkes": "kementerian kesehatan",
    "pemprov": "pemerintah provinsi",
    "pemkab": "pemerintah kabupaten",
    "pemkot": "pemerintah kota",
    "binda": "bin daerah",
    "bin": "badan intelijen negara",
    "ppkm": "pemberlakuan pembatasan kegiatan masyarakat",
    "psbb": "pembatasan sosial berskala besar",
    "prokes": "protokol kesehatan",
    "nakes": "tenaga kesehatan",
    "wfh": "work from home",
    "wfo": "work from office",
    "opd": "organisasi perangkat daerah",
    "jatim": "jawa timur",
    "jateng": "jawa tengah",
    "jabar": "jawa barat",
    "sumbar": "sumatera barat",
    "kalsel": "kalimantan selatan",
}
#: abbreviations that are also ordinary words or name particles ("Faisal bin Musaid"): spelt out only
#: when written in capitals ("BIN")
AMBIGUOUS = frozenset({"bin"})
_LONG = {v: k for k, v in ABBREVIATIONS.items()}
_LONG_RE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _LONG), key=len, reverse=True)) + r")\b")


def expand(query: str) -> str:
    """``query`` plus the other form of every known abbreviation or long form it contains."""
    low = query.lower()
    extra: list[str] = []
    for word in re.findall(r"\w+", low):
        if word in ABBREVIATIONS:
            extra.append(ABBREVIATIONS[word])
    for m in _LONG_RE.finditer(low):
        extra.append(_LONG[m.group(1)])
    extra = [e for e in dict.fromkeys(extra) if e not in low]
    return query if not extra else query + " " + " ".join(extra)


def spell_out(question: str, text: Optional[str] = None) -> str:
    """``question`` with every known abbreviation replaced by its long form ("Siapa Kadivpas
    Kemenkumham Banten?" -> "Siapa kepala divisi pemasyarakatan kementerian hukum dan ham Banten?");
    those in :data:`AMBIGUOUS` only when written in capitals. Given the ``text`` to be read, an
    abbreviation that it writes as such and never in its long form stays as asked ("Siapa Kepala Binda
    Kalsel?" over "Kepala Binda Kalsel Brigjen Pol Dr Heri Armanto ..."): the reader matches the
    question's words to the text's."""
    low_text = text.lower() if text is not None else None

    def long_form(m: re.Match) -> str:
        word = m.group(0)
        low = word.lower()
        if low not in ABBREVIATIONS or (low in AMBIGUOUS and not word.isupper()):
            return word
        if low_text is not None and re.search(rf"\b{re.escape(low)}\b", low_text) \
                and not re.search(rf"\b{re.escape(ABBREVIATIONS[low])}\b", low_text):
            return word
        return ABBREVIATIONS[low]
    return re.sub(r"\w+", long_form, question)
