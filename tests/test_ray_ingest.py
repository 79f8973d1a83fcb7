"""Bulk ingestion with Ray Data into Milvus: a tiny local Ray (one CPU, one embedding actor)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("ray", reason="needs the ray extra: pip install 'article-qa[ray]'")
pytest.importorskip("pymilvus", reason="needs the milvus extra: pip install 'article-qa[milvus]'")
pytest.importorskip("milvus_lite", reason="needs the milvus extra: pip install 'article-qa[milvus]'")

from conftest import CORPUS  # noqa: E402
from qa import Assistant, Config, build_index  # noqa: E402
from qa.errors import ConfigError  # noqa: E402
from qa.stores.milvus_io.client import MilvusCollections as MilvusStore  # noqa: E402

AMUNTAI = "002_c05e6eef8739556f"


def test_ray_ingest_matches_in_process_build(tmp_path, embedder):
    from qa.stores.milvus_io.ray_ingest import ray_ingest

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in (f"{AMUNTAI}.txt", "001_4b26eca18300fe70.txt"):
        shutil.copy(CORPUS / name, corpus / name)
    ray_cfg = Config(store="milvus", milvus_uri=str(tmp_path / "m.db"), milvus_collection="ray")
    report = ray_ingest(corpus, ray_cfg, index_dir=tmp_path, actors=1, batch_size=4, num_cpus=1, threads=1,
                        progress=False)
    assert report.articles == 2 and report.embedded == report.chunks > 2
    local_cfg = ray_cfg.replace(milvus_collection="local")
    assert build_index(corpus, tmp_path, local_cfg, progress=False, embedder=embedder).chunks == report.chunks

    store = MilvusStore(str(tmp_path / "m.db"), "ray")
    rows = {r["id"]: r["vector"] for r in store.client.query(store.chunks, filter="", output_fields=["vector"],
                                                            limit=1000)}
    local = {r["id"]: r["vector"] for r in store.client.query("local_chunks", filter="", output_fields=["vector"],
                                                             limit=1000)}
    assert rows.keys() == local.keys()
    for pk, vec in rows.items():  # the actors embedded exactly what the in-process build did
        assert np.allclose(vec, local[pk], atol=1e-4)
    a = Assistant.load(tmp_path, ray_cfg, embedder=embedder)
    try:
        hits = a.retrieve("Siapa Kalapas Kelas IIB Amuntai?", k=3)
        assert hits[0].article.id == AMUNTAI and any("Dwi Hartono" in h.text for h in hits)
    finally:
        a.close()
    # Unchanged corpus: nothing to do, Ray is not even needed for the work.
    again = ray_ingest(corpus, ray_cfg, index_dir=tmp_path, num_cpus=1, progress=False)
    assert again.skipped


def test_ray_ingest_needs_milvus_store(tmp_path):
    from qa.stores.milvus_io.ray_ingest import ray_ingest, ray_embedder

    with pytest.raises(ConfigError, match='store = "milvus"'):
        ray_ingest(tmp_path, Config())
    with pytest.raises(ConfigError, match="actors"):
        ray_embedder(Config(store="milvus"), actors=0)
