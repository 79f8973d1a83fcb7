"""Near-duplicate groups (qa/ingest/neardup.py) on hand-written stories with syndicated copies, same-topic
different stories, and the five real seed articles (different stories: they must not group)."""
from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import CORPUS, FIXTURES, ROOT, read_jsonl
from qa.ingest import load_corpus
from qa.ingest.neardup import JSON_NAME, SHINGLE_NAME, SKETCH_NAME, NearDupIndex, find_groups, shingles
from qa.types import Article

STORIES = FIXTURES / "neardup_stories.jsonl"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The fixture stories read and cleaned by the ingestion path, plus the five seed articles."""
    folder = tmp_path_factory.mktemp("stories")
    shutil.copy(STORIES, folder / STORIES.name)
    stories = load_corpus(folder)
    seeds = load_corpus(CORPUS)
    assert not stories.problems and not seeds.problems and len(seeds.articles) == 5
    return stories.articles + seeds.articles


def expected_groups() -> set[frozenset[str]]:
    labels: dict[str, set[str]] = {}
    for r in read_jsonl(STORIES):
        if r["group"]:
            labels.setdefault(r["group"], set()).add(r["id"])
    return {frozenset(m) for m in labels.values()}


def as_sets(groups) -> set[frozenset[str]]:
    return {frozenset(g.members) for g in groups}


def test_groups_are_the_syndicated_copies(corpus):
    groups = find_groups(corpus)
    assert as_sets(groups) == expected_groups()
    seed_ids = {a.id for a in corpus if a.path and a.path.startswith(str(CORPUS))}
    assert len(seed_ids) == 5 and not seed_ids & {m for g in groups for m in g.members}
    for g in groups:
        assert len(g.pairs) == len(g.members) * (len(g.members) - 1) // 2
        assert any(p.linked for p in g.pairs)
        for p in g.pairs:
            assert 0.0 <= p.jaccard <= p.containment <= 1.0 and 0.0 <= p.jaccard_estimate <= 1.0
            if p.linked:
                assert p.jaccard >= 0.5 or p.containment >= 0.8
                assert abs(p.jaccard_estimate - p.jaccard) < 0.2  # MinHash estimate close to the exact value


def test_same_topic_stories_stay_apart(corpus):
    """The flood, food-price and Persib stories share vocabulary with the copies' originals but not text."""
    by_id = {a.id: a for a in corpus}
    for a, b in [("banjir-dayeuhkolot", "banjir-kampung-melayu"), ("cabai-surabaya", "beras-makassar"),
                 ("persib-persija", "persib-rekrut-gelandang")]:
        assert find_groups([by_id[a], by_id[b]]) == []


def test_representative_is_the_longest_text(corpus):
    by_id = {a.id: a for a in corpus}
    for g in find_groups(corpus):
        lengths = [len(by_id[m].text) for m in g.members]
        assert g.representative == g.members[0] and lengths[0] == max(lengths)
        assert lengths == sorted(lengths, reverse=True)
        assert g.others == g.members[1:]


def test_representative_ties_go_to_earliest_date_then_id(corpus):
    base = next(a for a in corpus if a.id == "persib-persija")
    assert "Sabtu" in base.text
    twin = base.text.replace("Sabtu", "Senin", 1)  # same length, near-identical
    arts = [dataclasses.replace(base, id="c", text=twin, date="2024-04-21"),
            dataclasses.replace(base, id="b", date="2024-04-20"),
            dataclasses.replace(base, id="a", date=None)]
    (g,) = find_groups(arts)
    assert g.members == ("b", "c", "a")  # dated before undated; earliest date first
    arts = [dataclasses.replace(a, date="2024-04-20") for a in arts]
    assert find_groups(arts)[0].members == ("a", "b", "c")  # same date: smallest id


def test_incremental_add_remove_matches_batch(corpus):
    rng = random.Random(7)
    order = corpus[:]
    rng.shuffle(order)
    idx = NearDupIndex()
    idx.add_many(order)
    assert [g.to_dict() for g in idx.groups()] == [g.to_dict() for g in find_groups(corpus)]
    gone = ["banjir-dayeuhkolot", "cabai-surabaya-ulang"]
    for aid in gone:
        idx.remove(aid)
    rest = [a for a in corpus if a.id not in gone]
    assert len(idx) == len(rest) and "banjir-dayeuhkolot" not in idx
    assert [g.to_dict() for g in idx.groups()] == [g.to_dict() for g in find_groups(rest)]
    assert frozenset({"banjir-dayeuhkolot-antara", "banjir-dayeuhkolot-singkat"}) in as_sets(idx.groups())
    assert idx.group_of("cabai-surabaya") is None
    idx.add(next(a for a in corpus if a.id == "banjir-dayeuhkolot"))
    idx.add(next(a for a in corpus if a.id == "cabai-surabaya-ulang"))
    assert [g.to_dict() for g in idx.groups()] == [g.to_dict() for g in find_groups(corpus)]
    with pytest.raises(ValueError, match="already"):
        idx.add(corpus[0])
    with pytest.raises(KeyError, match="not in the near-duplicate index"):
        idx.remove("no-such-article")


def test_save_load_round_trip(corpus, tmp_path):
    held_out = next(a for a in corpus if a.id == "persib-persija-beritasatu")
    idx = NearDupIndex(shingle=4, num_perm=128)
    idx.add_many(a for a in corpus if a is not held_out)
    idx.save(tmp_path / "nd")
    loaded = NearDupIndex.load(tmp_path / "nd")
    assert loaded.params == idx.params and len(loaded) == len(idx)
    assert [g.to_dict() for g in loaded.groups()] == [g.to_dict() for g in idx.groups()]
    # plain JSON and .npy, no pickle
    json.loads((tmp_path / "nd" / JSON_NAME).read_text(encoding="utf-8"))
    assert np.load(tmp_path / "nd" / SKETCH_NAME, allow_pickle=False).shape == (len(corpus) - 1, 128)
    # a loaded index keeps working incrementally
    loaded.add(held_out)
    batch = find_groups(corpus, shingle=4, num_perm=128)
    assert [g.to_dict() for g in loaded.groups()] == [g.to_dict() for g in batch]
    again = NearDupIndex.load(tmp_path / "nd")  # remove before the LSH is rebuilt, then add
    again.remove("persib-persija")
    again.add(held_out)
    again.add(next(a for a in corpus if a.id == "persib-persija"))
    assert [g.to_dict() for g in again.groups()] == [g.to_dict() for g in batch]
    assert frozenset({"persib-persija", "persib-persija-beritasatu"}) in as_sets(batch)


def test_load_reports_damage(corpus, tmp_path):
    idx = NearDupIndex()
    idx.add_many(corpus[:4])
    idx.save(tmp_path)
    np.save(tmp_path / SHINGLE_NAME, np.zeros(3, dtype=np.uint32))
    with pytest.raises(ValueError, match=SHINGLE_NAME):
        NearDupIndex.load(tmp_path)
    (tmp_path / SKETCH_NAME).unlink()
    with pytest.raises(FileNotFoundError, match=SKETCH_NAME):
        NearDupIndex.load(tmp_path)
    idx.save(tmp_path)
    doc = json.loads((tmp_path / JSON_NAME).read_text(encoding="utf-8"))
    for field, value in [("dates", doc["dates"][:-1]), ("minhash", "datasketch legacy"), ("ids", doc["ids"][:1] * 4)]:
        (tmp_path / JSON_NAME).write_text(json.dumps(dict(doc, **{field: value})), encoding="utf-8")
        with pytest.raises(ValueError, match=f"'{field}'"):
            NearDupIndex.load(tmp_path)


def test_empty_and_single_article_corpora(corpus, tmp_path):
    assert find_groups([]) == []
    assert find_groups(corpus[:1]) == []
    blank = Article(id="blank", title=None, text="— … !!!")
    assert len(shingles(blank.text, 3)) == 0
    idx = NearDupIndex()
    idx.add_many([blank, dataclasses.replace(blank, id="blank2")])
    assert idx.groups() == [] and idx.group_of("blank") is None
    idx.remove("blank")
    idx.save(tmp_path / "one")
    assert NearDupIndex.load(tmp_path / "one").groups() == []
    NearDupIndex().save(tmp_path / "empty")
    empty = NearDupIndex.load(tmp_path / "empty")
    assert len(empty) == 0 and empty.groups() == []


def test_deterministic(corpus, tmp_path):
    """Same groups and estimates in any input order and in another process with another hash seed."""
    first = [g.to_dict() for g in find_groups(corpus)]
    assert [g.to_dict() for g in find_groups(list(reversed(corpus)))] == first
    out = tmp_path / "groups.json"
    code = ("import json, sys; from qa.types import Article; from qa.ingest.neardup import find_groups; "
            "arts = [Article(**d) for d in json.load(open(sys.argv[1]))]; "
            "json.dump([g.to_dict() for g in find_groups(arts)], open(sys.argv[2], 'w'))")
    (tmp_path / "arts.json").write_text(json.dumps([a.to_dict() for a in corpus]), encoding="utf-8")
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "arts.json"), str(out)], env=env, check=True,
                   cwd=ROOT, timeout=120)
    assert json.loads(out.read_text(encoding="utf-8")) == json.loads(json.dumps(first))


def test_shingles_normalise_case_width_and_punctuation():
    assert np.array_equal(shingles("Harga CABAI naik, kata pedagang.", 3),
                          shingles("harga cabai naik kata pedagang", 3))
    assert np.array_equal(shingles("ＨＡＲＧＡ cabai naik", 3), shingles("harga cabai naik", 3))  # NFKC
    assert np.array_equal(shingles("Harga naik.\nBaca juga: Berita lain di sini\nKata pedagang.", 2),
                          shingles("harga naik kata pedagang", 2))
    assert len(shingles("dua kata", 3)) == 1 and len(shingles("satu dua tiga empat", 3)) == 2


@pytest.mark.parametrize("kw", [{"threshold": 0}, {"threshold": 1.5}, {"num_perm": 8}, {"num_perm": 64.0},
                                {"shingle": 0}, {"containment": "high"}, {"lsh_threshold": 2}, {"min_shingles": 0}])
def test_bad_parameters_are_refused(kw):
    name = next(iter(kw))
    with pytest.raises(ValueError, match=rf"{name} must be .* in \["):
        NearDupIndex(**kw)
