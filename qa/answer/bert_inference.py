"""The reader's BERT encoder for inference, as plain tensor operations.

transformers' ``BertLayer`` is written for training and for every configuration at once: each call
goes through deprecation and checkpointing wrappers, an ``inspect.signature`` lookup and three
separate query / key / value projections. At inference on a CPU that Python work is up to a fifth
of a reading (cProfile, one thread), and it holds the interpreter lock, so it also keeps parallel chat
sessions from reading at the same time (four threads answered 10-12 % more questions a second without
it). :class:`FastEncoder` holds the same weights (query, key and value fused into one projection) and
runs each layer as eight tensor operations, which release the lock while they compute. Results equal
``BertLayer``'s up to float rounding (tested against it in float32 and bfloat16). Training keeps using the transformers modules (:func:`qa.answer.reader.run_layers`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class _Layer:
    qkv_w: Any
    qkv_b: Any
    out_w: Any
    out_b: Any
    ln1: tuple[Any, Any, float]
    up_w: Any
    up_b: Any
    down_w: Any
    down_b: Any
    ln2: tuple[Any, Any, float]


class FastEncoder:
    """``layers`` (a sequence of transformers ``BertLayer`` in eval mode, post-LayerNorm, GELU)
    as a function ``(hidden (B, L, H), additive bias (B, 1, 1, L)) -> hidden``. The weights are
    taken as they are when it is made (the fused projection is a copy: 3·H² numbers a layer)."""

    def __init__(self, layers: Sequence[Any]):
        import torch
        self.layers: list[_Layer] = []
        self.heads = 0
        with torch.no_grad():
            for layer in layers:
                att, out = layer.attention.self, layer.attention.output
                act = type(layer.intermediate.intermediate_act_fn).__name__
                if act != "GELUActivation":
                    raise ValueError(f"FastEncoder supports BERT layers with the GELU activation, not {act}")
                self.heads = att.num_attention_heads
                self.layers.append(_Layer(
                    torch.cat([att.query.weight, att.key.weight, att.value.weight]).contiguous(),
                    torch.cat([att.query.bias, att.key.bias, att.value.bias]).contiguous(),
                    out.dense.weight, out.dense.bias,
                    (out.LayerNorm.weight, out.LayerNorm.bias, out.LayerNorm.eps),
                    layer.intermediate.dense.weight, layer.intermediate.dense.bias,
                    layer.output.dense.weight, layer.output.dense.bias,
                    (layer.output.LayerNorm.weight, layer.output.LayerNorm.bias, layer.output.LayerNorm.eps)))

    def __call__(self, hidden, bias):
        import torch.nn.functional as F
        b, n, h = hidden.shape
        heads = self.heads
        for p in self.layers:
            qkv = F.linear(hidden, p.qkv_w, p.qkv_b).view(b, n, 3, heads, h // heads).permute(2, 0, 3, 1, 4)
            ctx = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=bias)
            ctx = ctx.transpose(1, 2).reshape(b, n, h)
            hidden = F.layer_norm(F.linear(ctx, p.out_w, p.out_b) + hidden, (h,), *p.ln1)
            up = F.gelu(F.linear(hidden, p.up_w, p.up_b))
            hidden = F.layer_norm(F.linear(up, p.down_w, p.down_b) + hidden, (h,), *p.ln2)
        return hidden


__all__ = ["FastEncoder"]
