"""Text analyzer for the lexical (BM25) index, fit for Indonesian and English.

Lower-cases and NFKC-normalises; keeps numbers findable with and without separators
("10.575" -> ``10.575`` and ``10575``); keeps hyphenated words whole and in parts
("Covid-19" -> ``covid-19``, ``covid``, ``19``); drops stopwords; optionally stems Indonesian
with PySastrawi (extra ``stem``).
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Callable, Optional

# Function words of Indonesian (and a few of English), never content-bearing on their own.
STOPWORDS_ID = frozenset("""
ada adalah adanya agar akan akankah akhirnya aku amat anda antara apa apabila apakah apalagi atas
atau ataukah ataupun bagai bagaimana bagaimanakah bagi bahkan bahwa bahwasanya baik banyak
beberapa begini begitu belum berapa berbagai bersama beserta betapa biasa bila bilamana bisa boleh
bukan bukankah cukup dalam dan dapat dari daripada demi demikian dengan di dia diri dirinya
ia ialah ini inilah itu itulah jadi jika jikalau juga kah kalau kami kamu kan kapan karena
katanya ke kecuali kemudian kenapa kepada kepadanya ketika kini kita lagi lah lain lalu maka
mana manakah masih maupun melainkan melalui mengapa mereka meski meskipun mungkin namun nanti
nya oleh pada padahal para pernah pula pun saat saja saling sambil sampai sana sangat
sebab sebagai sebelum sedang sedangkan sehingga sejak sekali sekitar selain selama seluruh
semua sementara seperti serta sesudah setelah setiap siapa siapakah sini situ suatu sudah supaya
tadi tanpa tapi telah tentang tentu terhadap tersebut tetapi tiap untuk yaitu yakni yang
""".split())
STOPWORDS_EN = frozenset("""
a an and are as at be been by did do does for from had has have how i in is it its of on or
that the their them there these they this those to was were what when where which who whom
whose why will with would
""".split())
STOPWORDS = STOPWORDS_ID | STOPWORDS_EN

_TOKEN = re.compile(r"\d+(?:[.,]\d+)+|\w+(?:[-‐]\w+)*", re.UNICODE)


@lru_cache(maxsize=1)
def _sastrawi() -> Callable[[str], str]:
    try:
        from Sastrawi.Stemmer.StemmerFactory import StemmerFactory
    except ImportError:
        raise ImportError(
            "stemming=true needs PySastrawi: pip install 'article-qa[stem]'"
        ) from None
    stemmer = StemmerFactory().create_stemmer()
    return lru_cache(maxsize=200_000)(stemmer.stem)


class Analyzer:
    """Turns text into BM25 tokens. Settings are recorded in the index manifest."""

    def __init__(self, *, stopwords: bool = True, stemming: bool = False):
        self.stopwords = stopwords
        self.stemming = stemming
        self._stem: Optional[Callable[[str], str]] = _sastrawi() if stemming else None

    def settings(self) -> dict:
        return {"stopwords": self.stopwords, "stemming": self.stemming, "version": 1}

    def tokens(self, text: str) -> list[str]:
        """Analyzed tokens of ``text`` (with the extra forms of numbers and compounds)."""
        text = unicodedata.normalize("NFKC", text).lower()
        out: list[str] = []
        for m in _TOKEN.finditer(text):
            tok = m.group(0).replace("_", "")
            if not tok:
                continue
            if tok[0].isdigit() and ("." in tok or "," in tok):
                out.append(tok)
                out.append(re.sub(r"[.,]", "", tok))
                continue
            if "-" in tok or "‐" in tok:
                parts = [p for p in re.split(r"[-‐]", tok) if p]
                out.append("-".join(parts))
                out.extend(self._word(p) for p in parts if self._keep(p))
                continue
            if self._keep(tok):
                out.append(self._word(tok))
        return [t for t in out if t]

    __call__ = tokens

    def _keep(self, tok: str) -> bool:
        return not (self.stopwords and tok in STOPWORDS)

    def _word(self, tok: str) -> str:
        if self._stem is not None and tok.isalpha():
            return self._stem(tok)
        return tok
