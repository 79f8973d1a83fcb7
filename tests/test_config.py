"""Settings in sections, merged per key with provenance: defaults < manifest < qa.toml < CLI flags."""
from __future__ import annotations

import json
import logging
import sys
import types
from dataclasses import fields

import pytest

from conftest import CORPUS
from qa.config import (BUILD_KEYS, BUILD_MANIFEST_SECTIONS, GENERATION_KEYS, SECTION_KEYS, SECTIONS, Config,
                       load_config, read_toml, resolve_config, settings_doc)
from qa.errors import ConfigError

BRIEF_SECTIONS = {
    "index": ["model", "chunk_size", "chunk_overlap", "stopwords", "stemming", "title_in_index", "batch_size",
              "device", "lexical_engine", "lexical_threshold", "dense_index", "dense_threshold", "hnsw_m",
              "hnsw_ef_construction", "vector_dtype", "sentence_vectors", "near_duplicates"],
    "retrieval": ["mode", "fusion", "dense_weight", "fusion_pool", "fusion_model", "rerank", "rrf_k", "candidates", "bm25_k1",
                  "bm25_b", "hnsw_ef_search", "expand_abbreviations", "translate_questions", "fold_duplicates"],
    "ui": ["host", "port", "share", "allow_upload", "upload_max_files", "upload_max_mb"],
}


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


# -- the settings table ----------------------------------------------------------------------------
def test_every_setting_has_one_section_and_the_derived_key_lists_are_unchanged():
    for s, names in BRIEF_SECTIONS.items():
        assert list(SECTION_KEYS[s]) == names
    assert set(SECTION_KEYS["answer"]) == {"answer_k", "abstain_threshold", "selector", "reader", "reader_threshold", "reader_precision",
                                           "reader_paragraphs",
                                           *GENERATION_KEYS}
    assert all(n == "store" or n.startswith("milvus_") for n in SECTION_KEYS["milvus"])
    assert sorted(n for s in SECTIONS for n in SECTION_KEYS[s]) == sorted(f.name for f in fields(Config))
    # the corpus fingerprint hashes the build settings: a change rebuilds every index (sentence_vectors and
    # near_duplicates did, on purpose: indexes gained their sentence vectors, then their duplicate groups;
    # the embeddings come from the previous index, so the rebuild is cheap)
    assert set(BUILD_KEYS) == {"model", "chunk_size", "chunk_overlap", "stopwords", "stemming", "title_in_index",
                               "lexical_engine", "lexical_threshold", "dense_index", "dense_threshold", "hnsw_m",
                               "hnsw_ef_construction", "vector_dtype", "sentence_vectors", "near_duplicates"}
    assert GENERATION_KEYS[0] == "answerer" and all(n.startswith("llm_") for n in GENERATION_KEYS[1:])
    for f in fields(Config):  # the annotation and the default's type agree
        assert f.type == f.metadata["spec"].kind.__name__, f.name


def test_grouped_access_manifest_dict_and_docs():
    c = Config(dense_weight=0.3, port=8000)
    assert c.section("retrieval")["dense_weight"] == 0.3 and c.section("ui") == {
        "host": "127.0.0.1", "port": 8000, "share": False, "allow_upload": False, "upload_max_files": 50,
        "upload_max_mb": 8.0}
    with pytest.raises(ValueError, match="index, retrieval, answer, ui, milvus"):
        c.section("search")
    recorded = c.manifest_dict()
    assert "dense_weight" in recorded and "store" in recorded and "answer_k" in recorded
    assert not set(recorded) & {*GENERATION_KEYS, "host", "port", "share", "allow_upload", "upload_max_mb"}
    doc = settings_doc()
    for f in fields(Config):
        assert f"  {f.name} = " in doc
    assert "[retrieval]" in Config.__doc__ and "hybrid | bm25 | dense" in doc and "integer 50..20000" in doc
    for bad in (dict(port=0), dict(share="yes"), dict(host=" ")):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            Config(**bad)


# -- qa.toml ---------------------------------------------------------------------------------------
def test_sections_at_top_level_or_under_qa(tmp_path, caplog):
    text = ('[index]\nchunk_size = 500\n[retrieval]\nmode = "bm25"\ndense_weight = 0.35\n[answer]\nanswer_k = 3\n'
            '[ui]\nport = 8080\nshare = true\n[milvus]\nmilvus_collection = "news"\n')
    nested = text.replace("[", "[qa.")
    with caplog.at_level(logging.WARNING, logger="qa"):
        for body in (text, nested):
            c = Config.from_toml(_write(tmp_path / "qa.toml", body))
            assert (c.chunk_size, c.mode, c.dense_weight, c.answer_k, c.port, c.share, c.milvus_collection) == \
                (500, "bm25", 0.35, 3, 8080, True, "news")
    assert not caplog.records  # the sectioned form warns about nothing


def test_flat_form_keeps_working_with_a_one_time_warning(tmp_path, caplog):
    flat = _write(tmp_path / "flat.toml", 'mode = "bm25"\nchunk_size = 500\nport = 9000\n')
    under_qa = _write(tmp_path / "underqa.toml", '[qa]\nmode = "dense"\n[qa.retrieval]\ndense_weight = 0.5\n')
    with caplog.at_level(logging.WARNING, logger="qa"):
        c = load_config(flat, dense_weight=0.4)
        assert (c.mode, c.chunk_size, c.port, c.dense_weight) == ("bm25", 500, 9000, 0.4)
        assert read_toml(flat) == {"mode": "bm25", "chunk_size": 500, "port": 9000}
        assert read_toml(under_qa) == {"mode": "dense", "dense_weight": 0.5}  # flat and sections mixed
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2  # once per file, not once per read
    assert str(flat) in warnings[0] and '[index]\nchunk_size = 500\n\n[retrieval]\nmode = "bm25"\n\n[ui]\nport = 9000' \
        in warnings[0]
    assert str(under_qa) in warnings[1] and '[retrieval]\nmode = "dense"' in warnings[1]


@pytest.mark.parametrize("body, message", [
    ('[index]\nchunk_size = 500\nmode = "bm25"\n', r":3: mode belongs in \[retrieval\], not in \[index\]"),
    ('[qa.answer]\ndense_weight = 0.3\n', r":2: dense_weight belongs in \[qa.retrieval\], not in \[qa.answer\]"),
    ('[retrieval]\ncolour = "blue"\n', r":2: unknown setting 'colour' in \[retrieval\]; allowed there: mode, fusion, "
                                       "dense_weight"),
    ('\n[search]\nmode = "bm25"\n', r":2: unknown section \[search\]; allowed sections: \[index\], \[retrieval\], "
                                    r"\[answer\], \[ui\], \[milvus\]"),
    ('colour = "blue"\n', r":1: unknown setting 'colour'; allowed: the sections \[index\].*holding model, chunk_size"),
    ('mode = "bm25"\n[retrieval]\nmode = "dense"\n', r":1: mode is set twice.*keep the one in \[retrieval\]"),
    ('[retrieval]\nfusion = "max"\n', r":2: fusion must be one of convex, rrf, adaptive; got 'max'"),
    ('[ui]\nport = 70000\n', r":2: port must be between 1 and 65535"),
    ('retrieval = 3\n', r":1: retrieval must be a section"),
    ('[qa]\nmode = "bm25"\n[index]\nchunk_size = 500\n', r": index outside \[qa\]"),
    ('mode = ', r": invalid TOML"),
])
def test_errors_name_the_file_line_key_and_the_right_section(tmp_path, body, message):
    p = _write(tmp_path / "conf.toml", body)
    with pytest.raises(ConfigError, match=message) as e:
        Config.from_toml(p)
    assert str(e.value).startswith(str(p))
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.toml")


# -- merging per key -------------------------------------------------------------------------------
def test_precedence_per_key_with_provenance(tmp_path):
    toml = _write(tmp_path / "qa.toml", '[retrieval]\nmode = "bm25"\nfusion = "rrf"\n[index]\nchunk_size = 500\n')
    manifest = {**Config().manifest_dict(), "dense_weight": 0.45, "fusion": "convex", "mode": "dense", "rrf_k": 30}
    r = resolve_config(manifest=manifest, toml_path=toml, cli={"fusion": "convex", "candidates": 50, "answer_k": None})
    c, src = r.config, r.sources
    assert (c.dense_weight, src["dense_weight"]) == (0.45, "manifest")      # manifest over default
    assert (c.mode, src["mode"]) == ("bm25", str(toml))                     # toml over manifest
    assert (c.fusion, src["fusion"]) == ("convex", "cli")                   # cli over toml over manifest
    assert (c.candidates, src["candidates"]) == (50, "cli")
    assert (c.chunk_size, src["chunk_size"]) == (500, str(toml))
    assert (c.answer_k, src["answer_k"]) == (5, "manifest")  # None on the command line means "not given"
    assert (c.port, src["port"]) == (7860, "default")
    assert resolve_config().sources == {f.name: "default" for f in fields(Config)}
    shown = r.show()
    assert "dense_weight = 0.45" in shown and 'mode = "bm25"' in shown and "# cli" in shown
    assert r.to_dict()["retrieval"]["rrf_k"] == {"value": 30, "source": "manifest"}


def test_manifest_never_gives_llm_or_ui_settings_and_only_retrieval_for_a_build(tmp_path):
    manifest = {"answerer": "openai", "llm_base_url": "http://evil:1/v1", "llm_model": "x", "port": 1,
                "dense_weight": 0.45, "chunk_size": 400, "store": "embedded"}
    r = resolve_config(manifest=manifest)
    assert r.config.answerer == "extractive" and r.config.llm_base_url == "" and r.config.port == 7860
    assert r.source("answerer") == r.source("port") == "default" and r.source("chunk_size") == "manifest"
    build = resolve_config(manifest=manifest, manifest_sections=BUILD_MANIFEST_SECTIONS)
    assert (build.config.dense_weight, build.config.chunk_size) == (0.45, 700)
    assert build.source("chunk_size") == "default" and build.source("store") == "default"
    with pytest.raises(ConfigError, match="index manifest: dense_weight must be between"):
        resolve_config(manifest={"dense_weight": 2.0})
    with pytest.raises(ConfigError, match="index manifest: unknown setting.*colour"):
        resolve_config(manifest={"colour": 1})
    with pytest.raises(ConfigError, match="command line: chunk_size must be"):
        resolve_config(cli={"chunk_size": 1})
    with pytest.raises(ValueError, match="allowed: index, retrieval, answer, milvus"):
        resolve_config(manifest_sections=("ui",))


def test_load_config_finds_qa_toml_in_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config() == Config()
    _write(tmp_path / "qa.toml", '[retrieval]\ndense_weight = 0.3\n')
    assert load_config().dense_weight == 0.3 and load_config(dense_weight=0.6).dense_weight == 0.6


# -- end to end: a tuned index, a qa.toml setting only mode, and the CLI ---------------------------
def test_tuned_weight_survives_a_qa_toml_that_sets_only_mode(tmp_path, monkeypatch, capsys):
    from qa import assistant as assistant_mod
    from qa.cli import main
    from qa.stores import update_config

    index = tmp_path / "index"
    assert main(["index", "--corpus", str(CORPUS), "--index", str(index), "--no-progress"]) == 0
    update_config(index, dense_weight=0.45)  # as `qa tune` writes it
    work = tmp_path / "work"
    work.mkdir()
    _write(work / "qa.toml", '[retrieval]\nmode = "hybrid"\n')
    monkeypatch.chdir(work)
    capsys.readouterr()

    assert main(["config", "--show", "--index", str(index), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["retrieval"]["dense_weight"] == {"value": 0.45, "source": "manifest"}
    assert shown["retrieval"]["mode"] == {"value": "hybrid", "source": "qa.toml"}
    assert shown["index"]["chunk_size"]["source"] == "manifest" and shown["answer"]["answerer"]["source"] == "default"
    assert main(["config", "--show", "--index", str(index)]) == 0
    text = capsys.readouterr().out
    assert "[retrieval]" in text and "dense_weight = 0.45" in text and "# qa.toml" in text

    loaded = []
    real_load = assistant_mod.Assistant.load.__func__

    def spy(cls, index_dir="index", config=None, **kw):
        loaded.append(config)
        return real_load(cls, index_dir, config, **kw)

    monkeypatch.setattr(assistant_mod.Assistant, "load", classmethod(spy))
    assert main(["search", "Siapa Kalapas Kelas IIB Amuntai?", "--index", str(index), "--json", "-k", "2"]) == 0
    assert "Dwi Hartono" in json.loads(capsys.readouterr().out)[0]["text"]
    assert main(["ask", "Siapa Kalapas Kelas IIB Amuntai?", "--index", str(index), "--mode", "bm25", "-k", "3"]) == 0
    assert "Dwi Hartono" in capsys.readouterr().out
    (search_cfg, ask_cfg) = loaded
    assert (search_cfg.dense_weight, search_cfg.mode) == (0.45, "hybrid")
    assert (ask_cfg.dense_weight, ask_cfg.mode) == (0.45, "bm25")

    # qa index: build settings from defaults < qa.toml < flags; the tuned retrieval settings are kept
    _write(work / "qa.toml", '[index]\nchunk_size = 500\n[retrieval]\nmode = "hybrid"\n')
    assert main(["index", "--corpus", str(CORPUS), "--index", str(index), "--no-progress"]) == 0
    recorded = json.loads((index / "manifest.json").read_text(encoding="utf-8"))["config"]
    assert (recorded["chunk_size"], recorded["dense_weight"], recorded["mode"]) == (500, 0.45, "hybrid")
    assert main(["index", "--corpus", str(CORPUS), "--index", str(index), "--no-progress", "--chunk-size", "600"]) == 0
    recorded = json.loads((index / "manifest.json").read_text(encoding="utf-8"))["config"]
    assert (recorded["chunk_size"], recorded["dense_weight"]) == (600, 0.45)

    _write(work / "qa.toml", '[retrieval]\nmode = "hybrid"\ndense_weight = 1.5\n')
    assert main(["config", "--show", "--index", str(index)]) == 2
    assert "qa.toml:3: dense_weight must be between" in capsys.readouterr().err


def test_serve_reads_the_ui_section_and_its_flags_override(tmp_path, monkeypatch):
    from qa.cli import main

    calls = []
    fake = types.ModuleType("qa.ui")
    fake.launch = lambda **kw: calls.append(kw)
    monkeypatch.setitem(sys.modules, "qa.ui", fake)
    monkeypatch.chdir(tmp_path)
    assert main(["serve"]) == 0
    assert (calls[-1]["host"], calls[-1]["port"], calls[-1]["share"]) == ("127.0.0.1", 7860, False)
    _write(tmp_path / "qa.toml", '[ui]\nhost = "0.0.0.0"\nport = 8000\nshare = true\n')
    assert main(["serve"]) == 0
    assert (calls[-1]["host"], calls[-1]["port"], calls[-1]["share"]) == ("0.0.0.0", 8000, True)
    assert main(["serve", "--port", "9000", "--no-share", "--index", "ix"]) == 0
    assert (calls[-1]["host"], calls[-1]["port"], calls[-1]["share"], calls[-1]["index_dir"]) == \
        ("0.0.0.0", 9000, False, "ix")
    other = _write(tmp_path / "other.toml", '[ui]\nport = 8100\n')
    assert main(["serve", "--config", str(other)]) == 0  # the chat loads its settings from that file too
    assert (calls[-1]["host"], calls[-1]["port"], calls[-1]["config_path"]) == ("127.0.0.1", 8100, str(other))


def test_readme_configuration_block_is_sectioned_and_shows_the_defaults(tmp_path, caplog):
    from conftest import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```toml\n", 1)[1].split("```", 1)[0]
    with caplog.at_level(logging.WARNING, logger="qa"):
        shown = read_toml(_write(tmp_path / "qa.toml", block))
    assert not caplog.records and set(shown) >= {"model", "mode", "dense_weight", "host", "port", "share", "store"}
    assert Config.from_dict(shown) == Config()  # every value shown is the default
    assert "qa config --show" in section and "qa config --show" in readme.split("## Command line", 1)[1]


def test_an_older_default_in_a_manifest_gives_way_to_todays(seed_index, tmp_path, caplog):
    """An index built by an older version recorded that version's abstain_threshold, calibrated for
    another model; it is read as today's default (logged), while a value set by hand stays."""
    import shutil

    from qa import Assistant
    from qa.config import FORMER_DEFAULTS
    from qa.stores import resolve_settings

    d = tmp_path / "index"
    shutil.copytree(seed_index, d)
    manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["config"]["abstain_threshold"] == Config().abstain_threshold
    for value, expected, source in [(0.74, Config().abstain_threshold, "default"), (0.8, 0.8, "manifest")]:
        assert (value in FORMER_DEFAULTS["abstain_threshold"]) == (source == "default")
        manifest["config"]["abstain_threshold"] = value
        (d / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="qa"):
            resolved = resolve_settings(d)
            loaded = Assistant.load(d, verify=False)
        assert resolved.config.abstain_threshold == expected and resolved.source("abstain_threshold") == source
        assert loaded.config.abstain_threshold == expected
        assert ("older version" in caplog.text) == (source == "default")
        loaded.close()
    manifest["config"]["abstain_threshold"] = Config().abstain_threshold
    for value, expected, source in [(2, Config().reader_paragraphs, "default"), (4, Config().reader_paragraphs, "default"),
                                    (3, 3, "manifest")]:
        manifest["config"]["reader_paragraphs"] = value  # 2 before the chooser read four, 4 before it read six
        (d / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        resolved = resolve_settings(d)
        assert resolved.config.reader_paragraphs == expected == (6 if source == "default" else 3)
        assert resolved.source("reader_paragraphs") == source
