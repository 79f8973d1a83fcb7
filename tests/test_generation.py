"""Generative answers against a real OpenAI-compatible HTTP server on localhost with scripted replies,
over the real seed index (real model, FAISS, BM25): streaming and not, the citation checks catching
wrong citations and invented facts, markers pointing at nothing, timeouts, retries, an unreachable
server (extractive fallback), the CLI, and the docs' examples."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest

from conftest import FIXTURES, ROOT, read_jsonl
from llm_server import ScriptedLLM
from qa import Assistant, Config
from qa.answer import ChatClient, CitationChecker
from qa.answer.lang import phrase
from qa.answer.verify import _one_edit, markers_of, split_generated, strip_markers
from qa.errors import ConfigError, LLMResponseError, LLMUnavailableError
from qa.types import Hit

QUESTION = "Siapa Kalapas Kelas IIB Amuntai?"
FLAG_ID = phrase("id", "unsupported")


@pytest.fixture(scope="module")
def llm():
    server = ScriptedLLM().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def make(seed_index, embedder, llm):
    """An Assistant over the seed index whose answers come from the scripted server's ``model``."""
    def _make(model: str, **settings) -> Assistant:
        base = Assistant.load(seed_index, embedder=embedder, verify=False).config.to_dict()
        cfg = Config.from_dict({**base, "answerer": "openai", "llm_base_url": llm.url, "llm_model": model,
                                "llm_retries": 1, "llm_timeout": 20.0, **settings})
        return Assistant.load(seed_index, cfg, embedder=embedder, verify=False)
    return _make


def check_answer(ans):
    """Quotes verbatim at their offsets; every marker in the text points at a citation."""
    for c in ans.citations:
        assert c.quote and c.article.text[c.start:c.end] == c.quote
        assert c.passage_start <= c.start < c.end <= c.passage_end
        assert f"[{c.n}]" in ans.text
    assert set(markers_of(ans.text)) <= {c.n for c in ans.citations}
    assert [c.n for c in ans.citations] == list(range(1, len(ans.citations) + 1))
    assert ans.found == bool(ans.citations)


def _stream(assistant, question=QUESTION):
    items = list(assistant.ask_stream(question))
    assert items and not isinstance(items[-1], str)
    assert all(isinstance(i, str) for i in items[:-1])
    return items[:-1], items[-1]


def test_correct_answer_streamed_and_not(make, llm, assistant):
    a = make("correct")
    n0 = len(llm.requests)
    pieces, streamed = _stream(a)
    plain = a.ask(QUESTION)
    for ans in (streamed, plain):
        check_answer(ans)
        assert ans.found and ans.answerer == "openai" and ans.model == "correct"
        assert ans.answerer_label == "LLM: correct" and not ans.notice
        assert "Dwi Hartono [1]" in ans.text
        assert [c.status for c in ans.checks] == ["supported"]
        assert "Dwi Hartono" in ans.citations[0].quote
    assert len(pieces) > 3 and "".join(pieces).startswith("Kalapas Kelas IIB Amuntai adalah Dwi Hartono")
    sent = [r["body"] for r in llm.requests[n0:]]
    assert [b["stream"] for b in sent] == [True, False] and sent[0]["model"] == "correct"
    system, user = sent[0]["messages"]
    assert "NO_ANSWER" in system["content"] and "bahasa Indonesia" in system["content"]
    hits = assistant.retrieve(QUESTION, k=5)
    for n, h in enumerate(hits, start=1):  # the passages, numbered, verbatim
        assert f"[{n}] {h.article.display_title}" in user["content"] and h.text in user["content"]
    assert user["content"].endswith(f"Pertanyaan: {QUESTION}")
    # an English question gets English instructions, and an English answer is checked on names
    english = a.ask("Who is the head of Amuntai prison?")
    assert "in English" in llm.requests[-1]["body"]["messages"][0]["content"]
    assert english.found


def test_two_sentences_renumbered_and_marker_after_full_stop(make):
    ans = make("correct-two").ask(QUESTION)
    check_answer(ans)
    assert [c.status for c in ans.checks] == ["supported", "supported"]
    assert ans.text.startswith("Kalapas Kelas IIB Amuntai adalah Dwi Hartono [1].")
    assert "vaksin booster [" in ans.text
    assert any("100 warga binaan" in c.quote for c in ans.citations)


@pytest.mark.parametrize("mode", ["flag", "remove"])
def test_wrong_citation_is_caught(make, mode):
    ans = make("wrong-citation", llm_unsupported=mode).ask(QUESTION)
    check_answer(ans)
    (chk,) = ans.checks
    assert not chk.supported and chk.status == ("flagged" if mode == "flag" else "removed")
    assert "Dwi" in chk.missing and "wrong citation" in chk.reason
    assert not ans.found and not ans.citations  # nothing supported: not presented as an answer
    assert ans.text.startswith(phrase("id", "not_found"))
    if mode == "flag":
        assert f"Kalapas Kelas IIB Amuntai adalah Dwi Hartono. {FLAG_ID}" in ans.text
    else:
        assert "adalah Dwi Hartono" not in ans.text


@pytest.mark.parametrize("mode", ["flag", "remove"])
def test_invented_fact_is_caught(make, mode):
    ans = make("invented", llm_unsupported=mode).ask(QUESTION)
    check_answer(ans)
    good, bad = ans.checks
    assert good.status == "supported" and good.citation == 1
    assert not bad.supported and {"2015", "Yasonna", "Laoly"} <= set(bad.missing)
    assert ans.found and len(ans.citations) == 1
    if mode == "flag":
        assert bad.status == "flagged"
        assert ans.text == f"Kalapas Kelas IIB Amuntai adalah Dwi Hartono [1]. " \
                           f"Dwi Hartono menjabat sejak 2015 bersama Menteri Yasonna Laoly. {FLAG_ID}"
    else:
        assert bad.status == "removed" and ans.text == "Kalapas Kelas IIB Amuntai adalah Dwi Hartono [1]."


def test_marker_pointing_at_nothing_is_dropped(make):
    ans = make("bad-marker").ask(QUESTION)
    check_answer(ans)
    assert "[9]" not in ans.text and ans.checks[0].dropped == [9] and ans.checks[0].supported


def test_uncited_sentence_gets_the_supporting_passage(make):
    ans = make("no-marker").ask(QUESTION)
    check_answer(ans)
    assert ans.checks[0].marker_added and ans.text.endswith("Dwi Hartono [1].")


def test_all_invented_and_no_answer_are_not_found(make):
    ans = make("all-invented").ask(QUESTION)
    check_answer(ans)
    assert not ans.found and ans.checks[0].status == "flagged" and FLAG_ID in ans.text
    none = make("no-answer").ask(QUESTION)
    assert not none.found and none.text.startswith(phrase("id", "not_found")) and none.hits
    assert none.answerer == "openai"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_down_falls_back_to_extractive_with_a_clear_message(make, assistant):
    a = make("correct", llm_base_url=f"http://127.0.0.1:{_closed_port()}/v1", llm_retries=1)
    expected = assistant.ask(QUESTION)
    pieces, streamed = _stream(a)
    plain = a.ask(QUESTION)
    assert not pieces
    for ans in (streamed, plain):
        assert ans.answerer == "extractive" and ans.text == expected.text and ans.found
        assert "cannot reach the LLM server at http://127.0.0.1:" in ans.notice and "Is it running?" in ans.notice
        assert ans.notice.startswith(phrase("id", "llm_fallback"))
        check_answer(ans)


def test_slow_reply_times_out_to_extractive(make, llm, assistant):
    llm.slow_seconds = 10.0
    a = make("slow", llm_timeout=0.5)
    expected = assistant.ask(QUESTION).text  # first: the reader's loading (seconds) stays out of the timing
    started = time.monotonic()
    ans = a.ask(QUESTION)
    # gave up after the timeout, did not wait for the reply (the margin covers the extractive answer on a
    # busy machine: with 4 s and 3.5 it failed once while another process held both cores)
    assert time.monotonic() - started < 8.0
    assert ans.answerer == "extractive" and ans.text == expected
    assert "did not answer within 0.5s" in ans.notice


def test_http_500_is_retried_then_succeeds(make, llm):
    n0 = len(llm.requests)
    ans = make("flaky", llm_retries=2).ask(QUESTION)
    assert ans.answerer == "openai" and ans.found and len(llm.requests) - n0 == 2
    n0 = len(llm.requests)
    broken = make("broken", llm_retries=2).ask(QUESTION)
    assert len(llm.requests) - n0 == 3 and broken.answerer == "extractive" and "HTTP 500" in broken.notice


def test_stream_cut_off_falls_back(make):
    pieces, ans = _stream(make("drop"))
    assert pieces and ans.answerer == "extractive" and "closed the stream" in ans.notice


def test_unknown_model_names_the_fix(llm):
    client = ChatClient(llm.url, "no-such-model", retries=0)
    with pytest.raises(LLMResponseError, match="HTTP 404.*llm_model 'no-such-model'.*models lists them"):
        client.chat([{"role": "user", "content": "Potongan artikel:\n\n[1] x\ny\n\nPertanyaan: z"}])
    assert "correct" in client.models()
    with pytest.raises(LLMUnavailableError, match="cannot reach"):
        ChatClient(f"http://127.0.0.1:{_closed_port()}/v1", "m", retries=0).models()


def test_api_key_comes_from_the_environment(make, llm, monkeypatch):
    monkeypatch.setenv("QA_TEST_LLM_KEY", "sk-local-123")
    a = make("correct", llm_api_key_env="QA_TEST_LLM_KEY")
    a.ask(QUESTION)
    assert llm.requests[-1]["auth"] == "Bearer sk-local-123"
    assert "sk-local-123" not in json.dumps(a.config.to_dict())
    monkeypatch.delenv("QA_TEST_LLM_KEY")
    make("correct", llm_api_key_env="QA_TEST_LLM_KEY").ask(QUESTION)
    assert llm.requests[-1]["auth"] is None


def test_conversation_streams_and_keeps_history(make):
    chat = make("correct").conversation()
    items = list(chat.ask_stream(QUESTION))
    assert isinstance(items[-1].text, str) and len(chat.history) == 1
    assert chat.history[0].article_ids == [c.article.id for c in items[-1].citations]


def test_config_is_validated_early():
    with pytest.raises(ConfigError, match="needs llm_base_url and llm_model"):
        Config(answerer="openai")
    with pytest.raises(ConfigError, match="answerer must be one of extractive, openai"):
        Config(answerer="gpt")
    with pytest.raises(ConfigError, match="http://"):
        Config(llm_base_url="localhost:11434")
    with pytest.raises(ConfigError, match="NAME of an environment variable"):
        Config(llm_api_key_env="sk-abc-123")
    with pytest.raises(ConfigError, match="llm_unsupported must be one of flag, remove"):
        Config(llm_unsupported="hide")
    with pytest.raises(ConfigError, match="llm_timeout"):
        Config(llm_timeout=0)
    assert Config().answerer == "extractive"


# -- the checks on their own -------------------------------------------------------------------
def test_sentence_splitting_and_markers():
    s = split_generated("Dwi Hartono adalah Kalapas. [1] Ada 100 orang [2, 3].\n- Dr. Alwi memimpin [4][4].")
    assert [x.markers for x in s] == [[1], [2, 3], [4]]
    assert [x.body for x in s] == ["Dwi Hartono adalah Kalapas.", "Ada 100 orang.", "Dr. Alwi memimpin."]
    assert strip_markers("Ya [1] .") == "Ya." and markers_of("[12] [x] [3;1]") == [12, 3, 1]
    assert _one_edit("kemenkumham", "kemenkukham") and _one_edit("abc", "abcd") and not _one_edit("abc", "axd")


CLAIMS = read_jsonl(FIXTURES / "generated_claims.jsonl")


def test_claims_fixture_is_classified(assistant):
    """Hand-written generated sentences with the passage they cite: paraphrases are supported; changed
    numbers, names from elsewhere, invented content and wrong passages are not."""
    checker = CitationChecker(assistant.answerer)
    wrong = []
    for r in CLAIMS:
        chunk = next(c for c in assistant.store.chunks if r["passage"] in c.text)
        hit = Hit(chunk=chunk, article=assistant.articles[chunk.article_id], score=1.0, rank=1)
        (chk,) = checker.verify(r["sentence"] + " [1]", [hit]).checks
        if chk.supported != r["supported"]:
            wrong.append((r["sentence"], chk))
    assert sum(not r["supported"] for r in CLAIMS) >= 12 and sum(r["supported"] for r in CLAIMS) >= 12
    assert not wrong


def test_two_passages_together_support_what_neither_does_alone(assistant):
    checker = CitationChecker(assistant.answerer)
    sentence = "UPT Pemasyarakatan di Padang, Bukittinggi, dan Padang Panjang tetap WFO 100% karena sektor vital"
    hits = [Hit(chunk=c, article=assistant.articles[c.article_id], score=1.0, rank=i + 1) for i, c in enumerate(
        [next(c for c in assistant.store.chunks if "sektor vital, sehingga" in c.text),
         next(c for c in assistant.store.chunks if "Padang, Bukittinggi" in c.text)])]
    assert not checker.verify(sentence + " [1].", hits).checks[0].supported
    v = checker.verify(sentence + " [1][2].", hits)
    assert v.checks[0].supported and len(v.citations) == 2 and v.text.endswith("[1][2].")
    for c in v.citations:
        assert c.article.text[c.start:c.end] == c.quote


# -- command line and docs ---------------------------------------------------------------------
def test_cli_ask_with_the_llm(seed_index, llm, tmp_path, monkeypatch, capsys):
    from qa.cli import main

    args = ["ask", QUESTION, "--index", str(seed_index), "--answerer", "openai", "--llm-base-url", llm.url,
            "--llm-model", "invented"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "qa", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Dwi Hartono [1]" in r.stdout and FLAG_ID in r.stdout and "answered by: LLM: invented" in r.stdout
    assert "“Kalapas kelas IIB Amuntai, Dwi Hartono" in r.stdout  # the verbatim quote under [1]
    monkeypatch.chdir(tmp_path)
    assert main(args + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["answerer"] == "openai" and out["model"] == "invented"
    assert [c["status"] for c in out["checks"]] == ["supported", "flagged"]
    assert main(args[:-4] + ["--llm-base-url", "nohost"]) == 2
    assert "llm_base_url must start with http://" in capsys.readouterr().err


def test_docs_examples_run_against_the_scripted_server(seed_index, llm, tmp_path, monkeypatch):
    doc = (ROOT / "docs" / "generation.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Generated answers", 1)[1].split("\n## ", 1)[0]
    for block in re.findall(r"```toml\n(.*?)```", doc + section, flags=re.S):
        (tmp_path / "qa.toml").write_text(block, encoding="utf-8")
        assert Config.from_toml(tmp_path / "qa.toml").answerer == "openai"
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    assert blocks
    (tmp_path / "index").symlink_to(seed_index)
    monkeypatch.chdir(tmp_path)
    for code in blocks:  # the Ollama URL and model name point at the scripted server here
        code = code.replace("http://localhost:11434/v1", llm.url).replace('"qwen2.5:3b"', '"invented"')
        exec(compile(code, "docs/generation.md", "exec"), {"__name__": "__docs__"})


def test_llm_settings_are_not_recorded_in_the_index(tmp_path, embedder, llm):
    from qa import build_index
    from qa.stores import read_manifest

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Judul\n\nKota - Budi Santoso menjadi kepala dinas baru pada Senin.\n",
                                  encoding="utf-8")
    cfg = Config(answerer="openai", llm_base_url=llm.url, llm_model="correct")
    build_index(corpus, tmp_path / "index", cfg, progress=False, embedder=embedder)
    assert not any(k.startswith("llm_") or k == "answerer" for k in read_manifest(tmp_path / "index")["config"])
    assert Assistant.load(tmp_path / "index", embedder=embedder).generator.name == "extractive"
