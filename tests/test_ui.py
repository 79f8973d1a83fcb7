"""The chat UI: served on localhost, driven in a real browser (Debian chromium via Playwright),
and called through its named API with gradio_client."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

gr = pytest.importorskip("gradio")
from qa.ui import UI_TEXT  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")  # pandas deprecations inside Gradio

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
QUESTION = "Siapa Kalapas Kelas IIB Amuntai?"
FOLLOWUP = "Siapa kepala lapasnya?"
ARTIFACTS = ROOT / "artifacts"

# True once there are n bot bubbles and the last one reads the expected answer (whitespace-insensitive).
LAST_BOT_IS = """([expected, n]) => {
  const bots = document.querySelectorAll('#qa-chat [data-testid="bot"]');
  if (bots.length !== n) return false;
  return bots[n - 1].innerText.split(/\\s+/).join(' ').trim() === expected;
}"""
# The question box is empty and the first bot bubble (the "thinking" placeholder) is shown.
BOX_CLEARED = """() => document.querySelector('#qa-input textarea').value === ''
  && document.querySelectorAll('#qa-chat [data-testid="bot"]').length === 1"""
# Records every distinct text of the last bot bubble (to see the answer stream in).
WATCH_STREAM = """() => {
  window.__qaTexts = new Set();
  const chat = document.querySelector('#qa-chat');
  new MutationObserver(() => {
    const bots = chat.querySelectorAll('[data-testid="bot"]');
    if (bots.length) window.__qaTexts.add(bots[bots.length - 1].innerText);
  }).observe(chat, {subtree: true, childList: true, characterData: true});
}"""


def _norm(text: str) -> str:
    return " ".join(text.split())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(assistant, **kw):
    from qa.ui import build_app

    app = build_app(assistant, **kw)
    app.queue()
    port = _free_port()
    app.launch(prevent_thread_lock=True, server_port=port, quiet=True)  # server_name left to the app
    return app, f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def served(assistant):
    app, url = _serve(assistant)
    yield app, url
    app.close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium (/usr/bin/chromium) is not installed: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _open(browser, url):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector("#qa-input textarea", timeout=30_000)
    page.wait_for_selector("#qa-chat", state="attached", timeout=30_000)  # WATCH_STREAM observes it
    return page


def _ask(page, question: str, expected_text: str) -> None:
    """Ask in the chat and wait until the answer has streamed in completely."""
    n = page.locator('#qa-chat [data-testid="bot"]').count() + 1
    box = page.locator("#qa-input textarea")
    box.fill(question)
    box.press("Enter")
    page.wait_for_function(LAST_BOT_IS, arg=[_norm(expected_text), n], timeout=60_000)


def test_chat_answers_with_sources_and_follow_ups(served, assistant, browser, monkeypatch):
    app, url = served
    expected = assistant.ask(QUESTION, k=5, mode="hybrid")
    chat = assistant.conversation()
    chat.ask(QUESTION, k=5, mode="hybrid")
    expected_followup = chat.ask(FOLLOWUP, k=5, mode="hybrid")
    assert expected_followup.query != FOLLOWUP  # the follow-up is rewritten with the first turn
    fresh_followup = assistant.ask(FOLLOWUP, k=5, mode="hybrid")

    page = _open(browser, url)
    try:
        assert page.title() == "article-qa"
        assert "article-qa" in page.locator("#qa-header").inner_text()
        assert page.locator("#qa-chat .example").count() == 3  # example questions from the corpus

        page.evaluate(WATCH_STREAM)
        _ask(page, QUESTION, expected.text)
        page.wait_for_selector("#qa-sources .qa-card mark", timeout=30_000)
        assert len(page.evaluate("[...window.__qaTexts]")) > 3  # streamed, not dropped in at once
        chat_text = page.locator("#qa-chat").inner_text()
        assert "Dwi Hartono" in chat_text and "[1]" in chat_text
        sources = _norm(page.locator("#qa-sources").inner_text())
        cite = expected.citations[0]
        assert _norm(cite.quote) in sources
        assert _norm(page.locator("#qa-sources mark").first.inner_text()) == _norm(cite.quote)
        assert "ANTARA" in sources and _norm(cite.article.display_title) in sources
        if cite.article.date is None:
            assert "tidak diketahui" in sources  # the question is Indonesian
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ui.png"))

        # a follow-up in the same session uses the conversation's history
        _ask(page, FOLLOWUP, expected_followup.text)
        assert page.locator('#qa-chat [data-testid="user"]').count() == 2
        page.wait_for_selector("#qa-sources .qa-card", timeout=30_000)

        # "New conversation" forgets it: the same words now get the stateless answer
        page.locator("#qa-new").click()
        page.wait_for_function("() => !document.querySelector('#qa-chat [data-testid=\"bot\"]')", timeout=15_000)
        assert "qa-card" not in page.locator("#qa-sources").inner_html()
        _ask(page, FOLLOWUP, fresh_followup.text)

        # a failure inside the assistant shows a short message, never a traceback
        def boom(*a, **kw):
            raise RuntimeError("internal detail that must not leak")

        monkeypatch.setattr(assistant, "ask", boom)
        monkeypatch.setattr(assistant, "ask_stream", boom)
        _ask(page, "Kapan vaksinasi dilakukan?", UI_TEXT["id"]["error"])
        content = page.content()
        assert "Traceback" not in content and "internal detail" not in content
    finally:
        page.close()


def test_question_sent_while_an_answer_streams_is_answered_after_it(served, assistant, browser, monkeypatch):
    """Enter pressed while the previous answer is still being made queues the question (Gradio's
    default for submit drops it silently, which also made the chat test flaky)."""
    import threading
    import time

    first, second = QUESTION, "Kapan vaksinasi dilakukan?"
    expected = assistant.conversation()
    want_first = expected.ask(first, k=5, mode="hybrid").text
    want_second = expected.ask(second, k=5, mode="hybrid").text
    started = threading.Event()
    real = type(assistant).ask_stream

    def slow(*a, **kw):  # the real answer, a second late: time for the second Enter to arrive
        started.set()
        time.sleep(1.0)
        yield from real(assistant, *a, **kw)

    monkeypatch.setattr(assistant, "ask_stream", slow)
    page = _open(browser, url=served[1])
    try:
        box = page.locator("#qa-input textarea")
        box.fill(first)
        box.press("Enter")
        assert started.wait(30)
        # the server cleared the box before it began the answer, but the browser may apply that
        # update later (a loaded machine): typing first would be wiped by it, as a user's typing would
        page.wait_for_function(BOX_CLEARED, timeout=30_000)
        box.fill(second)
        box.press("Enter")  # while the first answer is still being made
        page.wait_for_function(LAST_BOT_IS, arg=[_norm(want_second), 2], timeout=60_000)
        bots = page.locator('#qa-chat [data-testid="bot"]')
        assert _norm(bots.nth(0).inner_text()) == _norm(want_first)
        users = page.locator('#qa-chat [data-testid="user"]')
        assert [_norm(users.nth(i).inner_text()) for i in range(2)] == [first, second]
    finally:
        page.close()


XSS_ARTICLE = {
    "id": "uji-xss",
    "title": "Pelantikan <script>window.__pwned=1</script> Kepala Dinas Perikanan Kota Contoh",
    "source": '<img src=x onerror="window.__pwned=3">Warta Contoh',
    "url": "javascript:window.__pwned=4",
    "text": ("Kota Contoh - Wali Kota Contoh melantik pejabat baru pada Senin pagi di balai kota.\n\n"
             "Kepala Dinas Perikanan Kota Contoh yang baru adalah Budi Santoso <script>window.__pwned=1</script> "
             'menurut surat keputusan wali kota. Ia menggantikan pejabat lama <img src=x onerror="window.__pwned=2"> '
             "yang pensiun ${window.__pwned=5} tahun ini.\n\n"
             "Acara pelantikan dihadiri oleh para camat dan lurah se-Kota Contoh."),
}
FILLERS = {
    "cabai.txt": "Harga Cabai Naik di Pasar Induk\n\nKota Lain - Harga cabai rawit di pasar induk naik menjadi "
                 "Rp80.000 per kilogram karena pasokan dari petani berkurang akibat hujan.\n",
    "banjir.txt": "Banjir Rendam Ratusan Rumah\n\nKota Sungai - Banjir merendam 350 rumah warga di tiga kecamatan "
                  "setelah hujan deras mengguyur sejak Minggu malam.\n",
}


def test_article_html_is_shown_as_text_never_run(tmp_path, embedder, browser):
    from qa.ui import load_or_build

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "uji.json").write_text(json.dumps(XSS_ARTICLE), encoding="utf-8")
    for name, text in FILLERS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    assistant = load_or_build(tmp_path / "index", corpus, embedder=embedder)  # no index yet: built first
    assert (tmp_path / "index" / "manifest.json").is_file()
    question = "Siapa Kepala Dinas Perikanan Kota Contoh?"
    expected = assistant.ask(question, k=5, mode="hybrid")
    app, url = _serve(assistant)
    page = _open(browser, url)
    try:
        assert page.locator("#qa-chat .example").count() == 0  # the default examples do not fit this corpus
        _ask(page, question, expected.text)
        page.wait_for_selector("#qa-sources .qa-card", timeout=30_000)
        page.wait_for_timeout(300)
        chat, sources = page.locator("#qa-chat").inner_text(), page.locator("#qa-sources").inner_text()
        assert "<script>" in sources  # the title, and the quote when one was found
        assert "<img src=x onerror=" in sources
        if expected.found:
            assert "<script>window.__pwned=1</script>" in chat and "${window.__pwned=5}" in sources
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.locator("#qa-chat img, #qa-sources img, #qa-sources script").count() == 0
        assert page.locator('a[href^="javascript"]').count() == 0
    finally:
        page.close()
        app.close()


def test_named_api_with_gradio_client(served, monkeypatch):
    from gradio_client import Client

    _, url = served
    client = Client(url, verbose=False)
    result = client.predict(QUESTION, 5, "hybrid", api_name="/ask")
    assert isinstance(result, dict) and result["found"] is True
    assert "Dwi Hartono" in result["text"]
    assert result["citations"] and result["citations"][0]["source"] == "ANTARA"
    json.dumps(result)
    api = client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/ask"}  # the chat's own handlers are not exposed
    long = client.predict(QUESTION + " " + "x" * 5000, 3, "bm25", api_name="/ask")  # cut, still answered
    assert isinstance(long, dict) and "text" in long


def test_binds_localhost_by_default_and_auth_from_env(served, assistant, monkeypatch):
    import qa.ui as ui
    import qa.ui.serve as serve

    app, _ = served
    assert app.server_name == "127.0.0.1"
    calls = []
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, *a, **kw: calls.append(kw))
    monkeypatch.setattr(serve, "load_or_build", lambda *a, **kw: assistant)
    monkeypatch.delenv("QA_USERNAME", raising=False)
    monkeypatch.delenv("QA_PASSWORD", raising=False)
    ui.launch()
    assert calls[-1]["server_name"] == "127.0.0.1" and calls[-1]["server_port"] == 7860
    assert calls[-1]["share"] is False and calls[-1]["auth"] is None
    monkeypatch.setenv("QA_USERNAME", "ana")
    monkeypatch.setenv("QA_PASSWORD", "s3cret")
    ui.launch(host="0.0.0.0", port=9000)
    assert calls[-1]["auth"] == ("ana", "s3cret") and calls[-1]["server_name"] == "0.0.0.0"


def test_serve_command_and_app_script_parse():
    for cmd in ([sys.executable, "-m", "qa", "serve", "--help"], [sys.executable, str(ROOT / "app.py"), "--help"]):
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        for opt in ("--host", "--port", "--share", "--index", "--corpus"):
            assert opt in r.stdout
        assert "127.0.0.1" in r.stdout


def test_generated_answer_streams_then_shows_checks_and_answerer(seed_index, embedder, browser):
    """An LLM answer (scripted server on localhost) streams into the chat, then its checked text replaces
    it: the invented sentence flagged in bold, the answerer named, the quote verbatim in the sources."""
    from llm_server import ScriptedLLM
    from qa import Assistant, Config

    llm = ScriptedLLM(piece_delay=0.08).start()
    base = Assistant.load(seed_index, embedder=embedder, verify=False).config.to_dict()
    cfg = Config.from_dict({**base, "answerer": "openai", "llm_base_url": llm.url, "llm_model": "invented"})
    assistant = Assistant.load(seed_index, cfg, embedder=embedder, verify=False)
    expected = assistant.ask(QUESTION, k=5, mode="hybrid")
    assert expected.found and [c.status for c in expected.checks] == ["supported", "flagged"]
    app, url = _serve(assistant)
    page = _open(browser, url)
    try:
        page.evaluate(WATCH_STREAM)
        box = page.locator("#qa-input textarea")
        box.fill(QUESTION)
        box.press("Enter")
        page.wait_for_selector("#qa-sources .qa-answerer", timeout=60_000)
        bubble = page.locator('#qa-chat [data-testid="bot"]').last
        final = _norm(bubble.inner_text())
        assert final.startswith("Kalapas Kelas IIB Amuntai adalah Dwi Hartono [1].")
        assert "(⚠ tidak didukung sumber)" in final and final.endswith("Dijawab oleh: LLM: invented")
        assert "⚠" in bubble.locator("strong").first.inner_text()  # the flag is bold
        drafts = [_norm(t) for t in page.evaluate("[...window.__qaTexts]")]
        assert any(d.startswith("Kalapas Kelas") and "[1]" not in d for d in drafts)  # streamed word by word
        assert any("Laoly [1]" in d for d in drafts)  # the draft, before the checks replaced it
        assert "LLM: invented" in page.locator("#qa-sources .qa-answerer").inner_text()
        assert _norm(page.locator("#qa-sources mark").first.inner_text()) == _norm(expected.citations[0].quote)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ui-llm.png"))
    finally:
        page.close()
        app.close()
        llm.stop()
