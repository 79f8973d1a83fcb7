"""An English question over Indonesian articles: its query gains the Indonesian words for its own.

BM25 finds no English word in Indonesian news and the selector's lexical features see none, so an
English question rests on the dense encoder alone. A word list induced from that encoder
(multilingual-e5-small; :mod:`qa.adaptation.lexicon`, card ``qa/answer/models/LEXICON.md``) maps
"governor" to "gubernur", "doses" to "dosis", "zones" to "zona": :func:`widen` adds those words to
the retrieval query (``Answer.query`` shows them), as a follow-up's rewrite adds the earlier turn's.
The question itself is read as asked. ``[retrieval] translate_questions`` turns it off.
:meth:`~qa.Assistant.ask` and ``qa eval`` widen the query; :meth:`~qa.Assistant.retrieve` searches with
the text as given (call :func:`widen` first for the same search).
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .errors import ConfigError
from .linear import read_json

PATH = Path(__file__).parent / "answer" / "models" / "lexicon_en_id.json"
FORMAT = "qa-lexicon/1"


@dataclass(frozen=True)
class Lexicon:
    """Words of ``source`` (a language code) -> a word of ``target`` with the same meaning."""

    source: str
    target: str
    pairs: dict[str, str]

    @classmethod
    def load(cls, path: str | Path) -> "Lexicon":
        """The lexicon in ``path``; ConfigError (a ValueError) naming the file and the field."""
        p = Path(path)
        d = read_json(p, "lexicon")
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ConfigError(f"{p}: field 'format' must be {FORMAT!r}")
        for field in ("source", "target"):
            if not isinstance(d.get(field), str):
                raise ConfigError(f"{p}: field {field!r} must be a language code")
        pairs = d.get("pairs")
        if not isinstance(pairs, dict) or not all(isinstance(v, list) and v and isinstance(v[0], str)
                                                   for v in pairs.values()):
            raise ConfigError(f"{p}: field 'pairs' must map words to [word, cosine, score]")
        return cls(d["source"], d["target"], {k: v[0] for k, v in pairs.items()})

    def terms(self, text: str) -> list[str]:
        """The target-language words for ``text``'s words, each once, in the order of the text (names
        too: "West Sumatra" gains "sumatera"; acronyms not)."""
        out: list[str] = []
        for m in re.finditer(r"[A-Za-z]+", text):
            if len(m.group(0)) > 1 and m.group(0).isupper():
                continue  # an acronym ("BIN", "PPKM") is written the same in both languages
            t = self.pairs.get(m.group(0).lower())
            if t is not None and t not in out:
                out.append(t)
        return out


@functools.lru_cache(maxsize=1)
def packaged() -> Optional[Lexicon]:
    """The packaged English -> Indonesian lexicon (None when the file is missing)."""
    return Lexicon.load(PATH) if PATH.is_file() else None


def widen(query: str, question: str, lang: str, corpus_lang: str) -> str:
    """``query`` plus the ``corpus_lang`` words for ``question``'s when it is asked in ``lang`` and a
    lexicon between the two is packaged (else ``query`` unchanged)."""
    lex = packaged() if lang != corpus_lang else None
    if lex is None or (lex.source, lex.target) != (lang, corpus_lang):
        return query
    have = set(re.findall(r"\w+", query.lower()))
    extra = [t for t in lex.terms(question) if t not in have]
    return f"{query} {' '.join(extra)}" if extra else query


__all__ = ["Lexicon", "PATH", "packaged", "widen"]
