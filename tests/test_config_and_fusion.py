"""Config validation and fusion arithmetic (fusion checked with hand-made ranked lists)."""
from __future__ import annotations

import pytest

from qa.analyzer import Analyzer
from qa.config import Config, load_config
from qa.errors import ConfigError
from qa.fusion import convex, minmax, rrf


def test_defaults_and_validation():
    c = Config()
    assert c.mode == "hybrid" and c.fusion == "convex"
    with pytest.raises(ConfigError, match="convex, rrf"):
        Config(fusion="max")
    with pytest.raises(ConfigError, match="dense_weight"):
        Config(dense_weight=1.5)
    with pytest.raises(ConfigError, match="allowed: "):
        Config.from_dict({"chunk_sise": 5})


def test_toml(tmp_path):
    p = tmp_path / "qa.toml"
    p.write_text('[qa]\nmode = "bm25"\nchunk_size = 500\n', encoding="utf-8")
    c = load_config(p, dense_weight=0.4)
    assert (c.mode, c.chunk_size, c.dense_weight) == ("bm25", 500, 0.4)
    p.write_text("mode = ", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(p)


def test_rrf():
    fused = rrf([[(1, 9.0), (2, 5.0)], [(2, 0.9), (3, 0.8)]], k=60)
    assert fused[0][0] == 2
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)


def test_convex():
    assert minmax([(1, 2.0), (2, 4.0)]) == {1: 0.0, 2: 1.0}
    fused = dict(convex([(1, 10.0), (2, 0.0)], [(2, 0.9), (3, 0.1)], dense_weight=0.3))
    assert fused[1] == pytest.approx(0.7) and fused[2] == pytest.approx(0.3) and fused[3] == pytest.approx(0.0)
    assert dict(convex([(1, 1.0)], [], dense_weight=0.0)) == {1: 1.0}


def test_analyzer_keeps_numbers_and_compounds():
    a = Analyzer()
    toks = a("Vaksinasi 10.575 dosis Covid-19 yang di Kab. Banten")
    assert {"10.575", "10575", "covid-19", "covid", "19", "vaksinasi", "banten"} <= set(toks)
    assert "yang" not in toks and "di" not in toks
    assert "yang" in Analyzer(stopwords=False)("yang")


def test_stemming_extra():
    pytest.importorskip("Sastrawi")
    assert Analyzer(stemming=True)("vaksinasinya menyampaikan") == ["vaksinasi", "sampai"]


def test_convex_candidates_are_bm25s_list_padded_with_dense_only_when_short():
    from qa.fusion import convex_candidates

    lex, den = [(3, 9.0), (1, 4.0)], [(1, 0.9), (7, 0.8), (3, 0.7), (8, 0.1)]
    assert convex_candidates(lex, den, 2) == [3, 1]          # BM25 found k: dense adds nothing
    assert convex_candidates(lex, den, 3) == [3, 1, 7, 8]    # BM25 short: dense joins, no repeats
    assert convex_candidates([], den, 1) == [1, 7, 3, 8]     # no shared word: dense alone
    assert convex_candidates([], [], 5) == []
