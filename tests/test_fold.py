"""Duplicate-story folding (issue 17 item 4): near-duplicate groups found by ``build_index``, kept in the
index folder and updated incrementally, folded by retrieval into one member's passages with
``also_reported_by``, and cited from the most complete version. Real E5 embedder, FAISS and BM25.

Fixture: the five bundled articles plus ``fixtures/fold_copies.jsonl``: the ANTARA story of corpus/002
as lightly edited by "Banjarmasin Post" (its own title and dateline, two wordings changed, the last
paragraph dropped: the ANTARA version is the most complete) and an unrelated flood story.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import CORPUS, FIXTURES
from qa import Assistant, Config, build_index
from qa.answer.extractive import most_complete
from qa.errors import ConfigError
from qa.ingest.neardup import JSON_NAME, SHINGLE_NAME, SKETCH_NAME, NearDupIndex
from qa.stores.embedded_index import duplicates as dup_files
from qa.stores.embedded_index.files import OPTIONAL_FILES
from qa.types import Article, Chunk, Hit

ORIGINAL = "002_c05e6eef8739556f"  # ANTARA
COPY = "bpost-amuntai-booster"  # Banjarmasin Post
FLOOD = "tribun-banjir-dayeuhkolot"
QUESTION = "Berapa warga binaan dan tahanan di Lapas Amuntai yang sudah mengikuti vaksin booster?"


def _corpus(folder: Path) -> Path:
    shutil.copytree(CORPUS, folder)
    shutil.copy(FIXTURES / "fold_copies.jsonl", folder / "copies.jsonl")
    return folder


def _data(index: Path) -> Path:
    return index / json.loads((index / "manifest.json").read_text())["data_dir"]


@pytest.fixture(scope="module")
def built(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("fold")
    corpus, index = _corpus(root / "corpus"), root / "index"
    build_index(corpus, index, progress=False, embedder=embedder)
    return corpus, index


@pytest.fixture(scope="module")
def folded(built, embedder):
    return Assistant.load(built[1], embedder=embedder)


def test_groups_are_found_at_build_time_and_stored_as_files(built, folded):
    _, index = built
    m = json.loads((index / "manifest.json").read_text())
    assert m["counts"]["duplicate_groups"] == 1 and m["counts"]["duplicate_articles"] == 2
    assert m["counts"]["near_dup_sketched"] == 7
    assert set(dup_files.FILES) <= set(m["files"]) and set(dup_files.FILES) <= set(OPTIONAL_FILES)
    assert dup_files.FILES[:3] == (JSON_NAME, SKETCH_NAME, SHINGLE_NAME)
    doc = json.loads((_data(index) / dup_files.GROUPS_FILE).read_text())
    assert [g["members"] for g in doc["groups"]] == [[ORIGINAL, COPY]]  # the most complete version first
    assert len(NearDupIndex.load(_data(index))) == 7
    group = folded.store.duplicates(COPY)
    assert group is not None and group.representative == ORIGINAL and group.others == (COPY,)
    assert folded.store.duplicates(ORIGINAL) == group and folded.store.duplicates(FLOOD) is None


def test_retrieve_folds_the_copies_into_one_member_with_also_reported_by(folded):
    hits = folded.retrieve(QUESTION, k=5)
    assert len(hits) == 5
    story = [h for h in hits if h.article.id in (ORIGINAL, COPY)]
    assert story and len({h.article.id for h in story}) == 1  # one member's passages only
    top = story[0]
    assert [a.source for a in top.also_reported_by] == (["ANTARA"] if top.article.id == COPY else ["Banjarmasin Post"])
    assert top.representative_id == ORIGINAL and top.representative.id == ORIGINAL
    d = top.to_dict()
    assert d["also_reported_by"][0]["source"] == top.also_reported_by[0].source and d["representative_id"] == ORIGINAL
    assert all(h.also_reported_by == () and h.representative_id is None for h in hits if h not in story)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]

    plain = folded.retrieve(QUESTION, k=5, fold_duplicates=False)
    assert {ORIGINAL, COPY} <= {h.article.id for h in plain}  # both outlets' copies
    assert all(h.also_reported_by == () for h in plain)
    with pytest.raises(ConfigError, match="fold_duplicates"):
        folded.retrieve(QUESTION, fold_duplicates="yes")


def test_folding_fetches_deeper_so_that_k_hits_still_come_back(folded):
    # dense candidates exactly k deep: the other member's passages among them fold away, so the
    # pipeline has to look deeper for the 20 passages that remain (31 chunks, 6 of them folded)
    hits = folded.retrieve(QUESTION, k=20, mode="dense", candidates=20)
    assert len(hits) == 20
    shown = {h.article.id for h in hits} & {ORIGINAL, COPY}
    assert len(shown) == 1
    assert len({h.chunk.id for h in hits}) == 20


def test_the_answer_cites_the_most_complete_version_verbatim(folded):
    hits = folded.retrieve(QUESTION, k=5)
    assert hits[0].article.id == COPY  # its own title puts the copy first: the path under test
    ans = folded.ask(QUESTION)
    assert ans.found and ans.citations
    c = ans.citations[0]
    assert c.article.id == ORIGINAL
    assert c.article.text[c.start:c.end] == c.quote and "100 warga binaan" in c.quote
    assert c.passage_start <= c.start < c.end <= c.passage_end
    for c in ans.citations:
        assert c.article.text[c.start:c.end] == c.quote
    plain = folded.ask(QUESTION, fold_duplicates=False)
    assert plain.citations[0].article.id == COPY and plain.citations[0].quote == ans.citations[0].quote


def test_evaluate_scores_a_folded_story_as_its_gold_article_as_ask_shows_it(folded):
    from qa.evaluation import evaluate
    from qa.evaluation.questions import Question

    # the copy ranks first; the question was written from the ANTARA version (its gold)
    q = [Question(id="q1", question=QUESTION, articles=(ORIGINAL,), answers=("100 warga binaan",))]
    story = evaluate(folded, q, k=5, reader_only=False)
    by_id = evaluate(folded, q, k=5, reader_only=False, config=folded.config.replace(fold_duplicates=False))
    r, plain = story.results[0], by_id.results[0]
    assert plain.top_articles["hybrid"][:2] == [COPY, ORIGINAL] and plain.gold_rank["hybrid"] == 2
    assert by_id.retrieval["hybrid"].metrics["recall@1"] == 0.0 and not any("near-duplicates" in n for n in by_id.notes)
    # folded: one story under its representative's id, ranked where its best member ranks
    assert r.top_articles["hybrid"][0] == ORIGINAL and COPY not in r.top_articles["hybrid"]
    assert r.gold_rank["hybrid"] == 1 and story.retrieval["hybrid"].metrics["recall@1"] == 1.0
    assert any("1 question(s) have a gold article with near-duplicates" in n for n in story.notes)
    # the report gives the article-id figures beside the story ones, from the same run
    for name, scores in story.retrieval.items():
        assert scores.by_article_id == pytest.approx(by_id.retrieval[name].metrics)
        assert by_id.retrieval[name].by_article_id is None
    assert "scoring article ids alone" in story.tables() and "scoring article ids alone" not in by_id.tables()
    # the answer reads folded hits, as ask() does: quoted from the most complete version
    assert r.answer["quotes"][0]["article_id"] == ORIGINAL and r.answer["contains_gold"]
    assert plain.answer["quotes"][0]["article_id"] == COPY


def test_most_complete_moves_a_quote_only_when_the_representative_holds_it():
    rep = Article(id="a", title=None, text="Intro.\n\nSatu dua tiga empat lima. Enam tujuh.", source="A")
    copy = Article(id="b", title=None, text="Satu dua tiga empat lima. Enam delapan.", source="B")
    hit = Hit(chunk=Chunk(0, "b", 0, len(copy.text), copy.text), article=copy, score=1.0, rank=1,
              also_reported_by=(rep,), representative_id="a")
    s, e = 0, len("Satu dua tiga empat lima.")
    art, cs, ce, ps, pe = most_complete(copy, s, e, 0, len(copy.text), [hit])
    assert art is rep and rep.text[cs:ce] == copy.text[s:e] and (ps, pe) == (8, len(rep.text))
    s2 = copy.text.index("Enam")
    assert most_complete(copy, s2, len(copy.text), 0, len(copy.text), [hit])[:3] == (copy, s2, len(copy.text))
    unfolded = Hit(chunk=hit.chunk, article=copy, score=1.0, rank=1)
    assert most_complete(copy, s, e, 0, 9, [unfolded]) == (copy, s, e, 0, 9)


def test_incremental_rebuild_updates_the_groups(built, tmp_path, embedder):
    corpus, index = _corpus(tmp_path / "corpus"), tmp_path / "index"
    shutil.copytree(built[1], index)  # the previous index: embeddings and sketches are reused
    rows = [json.loads(line) for line in (corpus / "copies.jsonl").read_text().splitlines()]
    rows[1]["text"] += "\n\nHujan diperkirakan masih turun hingga akhir pekan."  # the flood story changes
    (corpus / "copies.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    build_index(corpus, index, progress=False, embedder=embedder)
    m = json.loads((index / "manifest.json").read_text())
    assert m["counts"]["near_dup_sketched"] == 1 and m["counts"]["duplicate_groups"] == 1

    (corpus / "copies.jsonl").write_text(json.dumps(rows[1], ensure_ascii=False) + "\n")  # the copy is removed
    build_index(corpus, index, progress=False, embedder=embedder)
    m = json.loads((index / "manifest.json").read_text())
    assert m["counts"]["near_dup_sketched"] == 0 and m["counts"]["duplicate_groups"] == 0
    a = Assistant.load(index, embedder=embedder)
    assert a.store.duplicates(ORIGINAL) is None and COPY not in NearDupIndex.load(_data(index))
    assert all(h.also_reported_by == () for h in a.retrieve(QUESTION, k=5))


def test_an_index_without_the_files_loads_and_does_not_fold(built, tmp_path, embedder):
    index = tmp_path / "index"
    shutil.copytree(built[1], index)
    m = json.loads((index / "manifest.json").read_text())
    for name in dup_files.FILES:  # as an index built before duplicate detection
        (_data(index) / name).unlink()
        del m["files"][name]
    for key in ("duplicate_groups", "duplicate_articles", "near_dup_sketched"):
        del m["counts"][key]
    del m["config"]["near_duplicates"], m["config"]["fold_duplicates"]
    (index / "manifest.json").write_text(json.dumps(m))
    a = Assistant.load(index, embedder=embedder)
    assert a.store.duplicates(COPY) is None
    hits = a.retrieve(QUESTION, k=5)
    assert len(hits) == 5 and all(h.also_reported_by == () for h in hits)
    # the next build sketches every article (no previous sketches) and finds the group again
    build_index(built[0], index, progress=False, embedder=embedder, force=True)
    m = json.loads((index / "manifest.json").read_text())
    assert m["counts"]["near_dup_sketched"] == 7 and m["counts"]["duplicate_groups"] == 1


def test_near_duplicates_false_writes_no_files(built, tmp_path, embedder):
    index = tmp_path / "index"
    shutil.copytree(built[1], index)
    build_index(built[0], index, Config(near_duplicates=False), progress=False, embedder=embedder)
    m = json.loads((index / "manifest.json").read_text())
    assert not set(dup_files.FILES) & set(m["files"]) and "duplicate_groups" not in m["counts"]
    a = Assistant.load(index, embedder=embedder)
    assert a.store.duplicates(COPY) is None


def test_qa_search_shows_also_reported_by_in_text_and_json(built, capsys):
    from qa.cli import main

    index = str(built[1])
    assert main(["search", QUESTION, "--index", index, "-k", "3", "--mode", "bm25"]) == 0
    out = capsys.readouterr().out
    assert "    also reported by: ANTARA" in out and out.count("also reported by") >= 1
    assert main(["search", QUESTION, "--index", index, "-k", "3", "--mode", "bm25", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits[0]["article_id"] == COPY and hits[0]["also_reported_by"][0]["source"] == "ANTARA"
    assert hits[0]["representative_id"] == ORIGINAL
    assert main(["search", QUESTION, "--index", index, "-k", "10", "--mode", "bm25", "--no-fold"]) == 0
    out = capsys.readouterr().out
    assert "also reported by" not in out and ORIGINAL in out and COPY in out
