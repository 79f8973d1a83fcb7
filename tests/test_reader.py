"""The trained span reader (qa/answer/reader.py): the shipped weights on the real base model, on
passages written for these tests (not from the training or valid sets), and in the answerer."""
from __future__ import annotations

import sys
import threading
import pytest

from qa.answer.reader import MODEL, Reader, native_bf16, similar_lengths, windows
from qa.config import Config

THRESHOLD = Config().reader_threshold  # the answerer's default

CASES = [  # question, passage, the answer's words
    ("Berapa sekolah dasar yang direnovasi tahun ini?",
     "Dinas Pendidikan Kabupaten Sleman menyatakan bahwa 42 sekolah dasar telah direnovasi tahun ini dengan "
     "anggaran sebesar Rp 15 miliar dari pemerintah provinsi.", "42"),
    ("Siapa yang meresmikan jembatan gantung di Desa Sukamaju?",
     "Jembatan gantung di Desa Sukamaju akhirnya diresmikan oleh Bupati Garut Rudy Gunawan pada Senin pagi, "
     "disaksikan ratusan warga yang selama ini harus menyeberangi sungai dengan perahu.", "Rudy Gunawan"),
    ("Kapan Pasar Cikurubuk yang baru dibuka untuk pedagang?",
     "Setelah dibangun selama dua tahun, Pasar Cikurubuk yang baru dibuka untuk pedagang pada 12 Maret 2024, "
     "kata kepala dinas perdagangan setempat.", "12 Maret 2024"),
]
UNRELATED = ("Siapa pelatih tim nasional sepak bola Brasil?",
             "Harga cabai rawit di pasar tradisional Kota Bandung naik menjadi Rp 80.000 per kilogram karena "
             "hujan deras merusak panen petani di Lembang.")


@pytest.fixture(scope="module")
def reader():
    return Reader.load()


def test_weights_are_small_and_safetensors():
    assert MODEL.is_file() and MODEL.stat().st_size < 50e6
    assert MODEL.read_bytes()[8:9] == b"{"  # a safetensors header, not a pickle


@pytest.mark.parametrize("question,text,answer", CASES)
def test_finds_the_span(reader, question, text, answer):
    span = reader.read(question, text)
    assert span is not None
    assert text[span.start:span.end] == span.text  # offsets verbatim
    assert answer in span.text and len(span.text) <= len(answer) + 20
    assert span.probability >= THRESHOLD > span.null


def test_unrelated_passage_is_not_confident(reader):
    """(An expected failure up to the 6-layer reader, which gave a span 0.15 here; the 9-layer one does not.)"""
    span = reader.read(*UNRELATED)
    assert span is None or span.probability < THRESHOLD


def test_lone_surrogates_are_read_not_refused(reader):
    """Lone surrogates (as ``surrogateescape`` decoding leaves them) in the question or the text: the
    tokenizer refuses them, so they are read as U+FFFD and the offsets still point into the text."""
    text = "Kepala lapas \udcff adalah Dwi Hartono sejak 2020."
    span = reader.read("Siapa kepala lapas \ud800?", text)
    assert span is not None and text[span.start:span.end] == span.text == "Dwi Hartono"
    reader.read("\ud800 lapas \udcff", "\ud800")  # no error


def test_long_text_read_in_windows(reader):
    question, text, answer = CASES[0]
    filler = " ".join(["Warga berharap pembangunan jalan desa segera dilanjutkan tahun depan."] * 40)
    long = filler + " " + text + " " + filler
    assert len(windows(reader.tokenizer, question, long)) > 2
    span = reader.read(question, long)
    assert span is not None and long[span.start:span.end] == span.text and answer in span.text


def test_read_many_matches_read_and_threads_agree(reader):
    texts = [t for _, t, _ in CASES]
    texts.append(" ".join(texts * 4))  # a paragraph-long one: batched apart from the short ones
    one = [reader.read(CASES[0][0], t) for t in texts]
    many = reader.read_many(CASES[0][0], texts)  # batches (padded): the same spans and probabilities
    assert [(s.start, s.end) for s in many] == [(s.start, s.end) for s in one]
    # padding a batch moves bfloat16 arithmetic a little (rounding), float32 not at all
    tol = 1e-4 if reader.precision == "float32" else 5e-3
    assert [s.probability for s in many] == pytest.approx([s.probability for s in one], abs=tol)
    results: dict[int, list] = {}

    def work(n: int) -> None:
        results[n] = [reader.read(q, t) for q, t, _ in CASES]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first = [(s.start, s.end) for s in results[0]]
    assert all([(s.start, s.end) for s in results[n]] == first for n in range(4))
    assert Reader.load() is reader  # loaded once per process


def test_a_text_given_twice_is_read_once(reader, monkeypatch):
    """A one-sentence paragraph and its sentence are the same text: read_many reads it once and gives
    both positions its span; the other texts keep theirs."""
    texts = [t for _, t, _ in CASES]
    want = reader.read_many(CASES[0][0], texts)
    rows = []
    logits = Reader.logits

    def counting(self, batch):
        rows.extend(batch)
        return logits(self, batch)

    monkeypatch.setattr(Reader, "logits", counting)
    got = reader.read_many(CASES[0][0], [texts[0], texts[1], texts[0], texts[2], texts[1]])
    assert len(rows) == 3  # three texts, one window each
    assert got[0] == got[2] and got[1] == got[4]
    assert [(s.start, s.end) for s in (got[0], got[1], got[3])] == [(s.start, s.end) for s in want[:3]]


def test_precisions_read_the_same_spans(reader):
    """bfloat16 (auto's pick on a CPU with native bfloat16) against float32: the same spans, probabilities
    within a few hundredths; each precision is loaded once and holds the dtype it names."""
    import torch
    f32, b16 = Reader.load(precision="float32"), Reader.load(precision="bfloat16")
    assert f32 is not b16 and Reader.load(precision="float32") is f32
    assert next(f32.bert.parameters()).dtype == torch.float32 and f32.head.weight.dtype == torch.float32
    assert next(b16.bert.parameters()).dtype == torch.bfloat16 and b16.head.weight.dtype == torch.bfloat16
    assert reader is (b16 if native_bf16() else f32)  # auto
    for question, text in [c[:2] for c in CASES] + [UNRELATED]:
        a, b = f32.read(question, text), b16.read(question, text)
        assert (a.start, a.end) == (b.start, b.end)
        assert b.probability == pytest.approx(a.probability, abs=0.03) and b.null == pytest.approx(a.null, abs=0.03)
        assert isinstance(b.probability, float)


def test_inference_encoder_equals_the_transformers_layers():
    """The reader's inference path (qa.answer.bert_inference, fused query/key/value, plain tensor
    operations) gives the hidden states transformers' BertLayer gives, on real padded windows of the
    real model in both precisions; a layer it does not implement is refused by name."""
    import torch
    from transformers import BertConfig
    from transformers.models.bert.modeling_bert import BertLayer

    from qa.answer.bert_inference import FastEncoder
    from qa.answer.reader import attention_bias, embed, pad_batch, run_layers
    for precision, tol in (("float32", 1e-4), ("bfloat16", 0.05)):
        r = Reader.load(precision=precision)
        rows = [w.ids for q, t, _ in CASES for w in windows(r.tokenizer, q, t)]
        assert len({len(x) for x in rows}) > 1  # padding is exercised
        ids, mask = pad_batch(rows)
        bias = attention_bias(mask, getattr(torch, precision))
        with torch.inference_mode():
            h = embed(r.bert, ids)
            want, got = run_layers(r.bert.encoder.layer, h, bias), r.encoder(h, bias)
        real = mask.bool()
        assert got.dtype == want.dtype and got.shape == want.shape
        assert (got.float() - want.float())[real].abs().max().item() <= tol, precision
    relu = BertLayer(BertConfig(hidden_size=8, num_attention_heads=2, intermediate_size=16, hidden_act="relu")).eval()
    with pytest.raises(ValueError, match="GELU.*ReLU"):
        FastEncoder([relu])


def test_precision_auto_follows_the_cpu_and_bad_values_are_named(monkeypatch):
    from qa.answer import reader as mod
    monkeypatch.setattr(mod, "native_bf16", lambda: False)
    assert mod.resolve_precision("auto") == "float32"
    monkeypatch.setattr(mod, "native_bf16", lambda: True)
    assert mod.resolve_precision("auto") == "bfloat16" and mod.resolve_precision("float32") == "float32"
    with pytest.raises(ValueError, match="auto, float32, bfloat16.*'fp16'"):
        Reader.load(precision="fp16")
    from qa.errors import ConfigError
    with pytest.raises(ConfigError, match="reader_precision must be one of auto, float32, bfloat16"):
        Config(reader_precision="int8")


def test_windows_batched_by_similar_length():
    assert similar_lengths([10, 100, 11, 12, 200, 13]) == [[0, 2, 3], [5], [1], [4]]
    assert similar_lengths([]) == [] and similar_lengths([7]) == [[0]]


def test_missing_torch_names_what_to_install(monkeypatch):
    from qa.answer import reader as mod
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match="pip install"):
        mod._require()


def test_answer_leads_with_the_reader_span(assistant):
    ans = assistant.ask("Berapa vaksin yang dialokasikan untuk relawan Tagana?")
    assert ans.found and ans.lead and ans.text.startswith(ans.lead)
    assert "350" in ans.lead
    c = ans.citations[0]
    assert ans.lead in c.quote and c.article.text[c.start:c.end] == c.quote  # verbatim, inside quote 1


def test_not_confident_means_no_lead(assistant):
    cautious = type(assistant)(assistant.store, assistant.config.replace(reader_threshold=1.0),
                               embedder=assistant.embedder, index_dir=assistant.index_dir)
    ans = cautious.ask("Berapa vaksin yang dialokasikan untuk relawan Tagana?")
    assert ans.found and ans.lead is None and ans.text.startswith("“")


def test_config_picks_the_reader_precision(assistant):
    f32 = type(assistant)(assistant.store, assistant.config.replace(reader_precision="float32"),
                          embedder=assistant.embedder, index_dir=assistant.index_dir)
    assert f32.answerer.reader.precision == "float32"
    ans = f32.ask("Berapa vaksin yang dialokasikan untuk relawan Tagana?")
    assert ans.found and "350" in ans.lead


def test_reader_off_falls_back_to_patterns(assistant):
    off = type(assistant)(assistant.store, assistant.config.replace(reader="off"),
                          embedder=assistant.embedder, index_dir=assistant.index_dir)
    assert off.answerer.reader is None
    ans = off.ask("Berapa vaksin yang dialokasikan untuk relawan Tagana?")
    assert ans.found and ans.text.startswith("350")


def test_reader_that_cannot_load_falls_back_to_patterns(assistant):
    from qa.answer.extractive import ExtractiveAnswerer

    def broken():
        raise ImportError("no torch here")

    a = assistant.answerer
    patterns = ExtractiveAnswerer(a.analyzer, a.idf, a.encoder, sentences=a.sentences, query_vector=a.query_vector,
                                  selector=a.selector, threshold=a.threshold, max_idf=a.max_idf,
                                  corpus_lang=a.corpus_lang, reader=broken)
    hits = assistant.retrieve("Berapa vaksin yang dialokasikan untuk relawan Tagana?", 5)
    ans = patterns.answer("Berapa vaksin yang dialokasikan untuk relawan Tagana?", hits)
    assert patterns.reader is None and ans.text.startswith("350")


def _write_bad(path, like):
    """A copy of reader weights ``like`` whose metadata claims 13 layers (its path)."""
    import json

    from safetensors.numpy import load_file, save_file
    from safetensors import safe_open

    with safe_open(str(like), "np") as f:
        meta = json.loads(f.metadata()["reader"])
    save_file(load_file(str(like)), str(path), metadata={"reader": json.dumps({**meta, "layers": 13})})
    return path


def test_training_goes_on_from_given_weights(tmp_path):
    """`qa train-reader --init W` starts from W's layers and head: with a zero learning rate the
    written weights are W's (a fresh head would not be); a W of fewer layers goes on top of the base's,
    one of more layers keeps its lower ones frozen under those trained."""
    import json

    from safetensors.numpy import load_file

    from qa.adaptation.reader import train

    rows = [{"question": f"Berapa petugas yang divaksin di lapas {n}?",
             "context": f"Sebanyak {100 + n} petugas divaksin di lapas {n} pada Rabu pagi.",
             "answers": [{"text": f"{100 + n} petugas", "start": 8}]} for n in range(6)]
    rows.append({"question": "Siapa gubernur Mars?", "context": "Vaksinasi berjalan lancar.", "is_impossible": True})
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    kw = dict(layers=1, epochs=1, batch=4, cache_dir=tmp_path / "cache", threads=1)
    first = tmp_path / "a.safetensors"
    train([data], out=first, lr=1e-3, **kw)
    again = tmp_path / "b.safetensors"
    report = train([data], out=again, lr=0.0, init=first, **kw)
    assert report["init"] == "a.safetensors" and report["rows"] == len(rows)
    a, b = load_file(str(first)), load_file(str(again))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    fresh = tmp_path / "c.safetensors"
    train([data], out=fresh, lr=0.0, **kw)
    assert not (load_file(str(fresh))["head.weight"] == a["head.weight"]).all()
    # more layers on top of W: W's layer is the top one, the one under it is the base's
    deeper = tmp_path / "d.safetensors"
    report = train([data], out=deeper, lr=0.0, init=first, **{**kw, "layers": 2})
    d = load_file(str(deeper))
    assert report["layers"] == 2 and d["head.weight"].tolist() == a["head.weight"].tolist()
    assert all((d["upper.1." + k[len("upper.0."):]] == a[k]).all() for k in a if k.startswith("upper.0."))
    train([data], out=tmp_path / "e.safetensors", lr=0.0, **{**kw, "layers": 2})
    base_layer = load_file(str(tmp_path / "e.safetensors"))
    assert all((d[k] == v).all() for k, v in base_layer.items() if k.startswith("upper.0."))
    # fewer layers than W trained: W's lower layer stays frozen as W has it, only the top one learns, and
    # both are written (the lower layers' cache is W's, not the base's)
    top = tmp_path / "f.safetensors"
    report = train([data], out=top, lr=1e-2, init=deeper, **kw)
    f = load_file(str(top))
    assert report["layers"] == 2 and report["trained_layers"] == 1 and f.keys() == d.keys()
    assert all((f[k] == d[k]).all() for k in d if k.startswith("upper.0."))
    assert not all((f[k] == d[k]).all() for k in d if k.startswith("upper.1."))
    assert len(list((tmp_path / "cache").glob("reader-lower-11-*.npy"))) == 2  # the base's and W's
    broken = _write_bad(tmp_path / "broken.safetensors", first)
    with pytest.raises(ValueError, match="allowed: 1..12"):  # metadata claiming more layers than the model has
        train([data], out=tmp_path / "g.safetensors", lr=0.0, init=broken, **kw)


def test_train_reader_command_shows_progress_and_writes_the_card(tmp_path, capsys):
    """`qa train-reader` (the command): progress bars for the cached lower layers and the training
    steps on stderr, the weights and their card beside them."""
    import json

    from qa.cli import main

    rows = [{"question": f"Berapa petugas yang divaksin di lapas {n}?",
             "context": f"Sebanyak {100 + n} petugas divaksin di lapas {n} pada Rabu pagi.",
             "answers": [{"text": f"{100 + n} petugas", "start": 8}]} for n in range(4)]
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    out = tmp_path / "mine.safetensors"
    assert main(["train-reader", "--train", str(data), "--layers", "1", "--epochs", "1", "--threads", "1",
                 "--out", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    err = capsys.readouterr().err
    assert "reader: lower 11 layers" in err and "reader: training 1 layers" in err and "4/4" in err
    assert out.is_file() and "qa train-reader --train" in (tmp_path / "mine.md").read_text(encoding="utf-8")


def test_an_abbreviation_the_text_writes_is_read_as_written(assistant):
    from qa.synonyms import spell_out

    q = "Siapa Kepala Binda Kalsel?"
    chunk = next(h.chunk.text for h in assistant.retrieve(q) if "Kepala Binda Kalsel Brigjen" in h.chunk.text)
    start = chunk.index("Kepala Binda Kalsel Brigjen")
    text = chunk[start:chunk.index("Indonesia.", start) + len("Indonesia.")]  # the sentence, as the chooser reads it
    assert spell_out(q) == "Siapa Kepala bin daerah kalimantan selatan?"
    assert spell_out(q, text) == q  # the sentence writes "Binda" and "Kalsel", never their long forms
    assert spell_out(q, chunk) == "Siapa Kepala bin daerah Kalsel?"  # its paragraph also writes "BIN Daerah (Binda)"
    assert spell_out("Siapa Kadivpas Banten?", "Kepala Divisi Pemasyarakatan Banten ... Kata Nirhono, Kadivpas "
                     "Banten.") == "Siapa kepala divisi pemasyarakatan Banten?"  # it writes both: written out
    reader = assistant.answerer.reader
    [as_written], [spelt] = reader.read_many(spell_out(q, text), [text]), reader.read_many(spell_out(q), [text])
    assert "Heri Armanto" in as_written.text and as_written.probability > max(0.5, 3 * spelt.probability)
    # one batch, a wording per text: the same readings as read apart
    both = reader.read_many([spell_out(q, text), spell_out(q)], [text, text])
    assert [s.text for s in both] == [as_written.text, spelt.text]
    assert [s.probability for s in both] == pytest.approx([as_written.probability, spelt.probability], abs=0.01)
    with pytest.raises(ValueError, match="one per text"):
        reader.read_many([q], [text, text])
    # read as "kepala dinas sosial jawa timur" the question was declined; the article writes "Kepala Dinsos
    # Jatim Dr Alwi MHum": read as "kepala dinas sosial Jatim" it is answered
    ans = assistant.ask("Siapa Kadinsos Jatim?")
    assert ans.found and "Alwi" in (ans.lead or "")


def test_the_reader_reads_abbreviations_written_out(assistant):
    from qa.synonyms import spell_out

    assert spell_out("Siapa Kadivpas Kemenkumham Banten?") == \
        "Siapa kepala divisi pemasyarakatan kementerian hukum dan ham Banten?"
    assert spell_out("Mengapa Faisal bin Musaid membunuh Faisal Bin Abdul?") == \
        "Mengapa Faisal bin Musaid membunuh Faisal Bin Abdul?"  # a name particle, not the agency
    assert spell_out("Siapa kepala BIN Kalsel?") == "Siapa kepala badan intelijen negara kalimantan selatan?"
    # the article writes "Kepala Divisi Pemasyarakatan Banten, Nirhono Jatmokoadi": read with "Kadivpas" the
    # 6-layer reader was unsure (0.65) and the question declined; the 12-layer one finds the name either
    # way, surer written out (0.81 -> 0.98 here)
    q = "Siapa Kadivpas Kemenkumham Banten?"
    ans = assistant.ask(q)
    assert ans.found and ans.question == q  # the user's words stay as asked
    passage = next(h.chunk.text for h in ans.hits if "Nirhono Jatmokoadi" in h.chunk.text)
    reader = assistant.answerer.reader
    [asked], [written] = reader.read_many(q, [passage]), reader.read_many(spell_out(q), [passage])
    assert written.text == "Nirhono Jatmokoadi" and written.probability > max(0.9, asked.probability)
    # the assistant reads it written out: its own reading of that paragraph holds the name. Which paragraph
    # the answer then comes from rests on a near tie of the selector (0.36 against 0.32 on an AMD EPYC, where
    # the chooser keeps the first; reversed on the Xeon where this test was written), so it is not asserted
    # here: benchmarks/answer_eval.py counts it
    _, _, readings, _, _ = assistant.answerer.assess(q, ans.hits)
    assert any(r.span is not None and r.span.text == "Nirhono Jatmokoadi" and r.span.probability > 0.9
               for r in readings)
    c = ans.citations[0]
    assert c.article.text[c.start:c.end] == c.quote and (ans.lead or "") in c.quote
