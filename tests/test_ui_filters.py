"""The chat's filter settings (source, from/to date) in a real browser against a real Gradio server,
and through the named ``/ask`` API."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from test_ui import ROOT, _ask, _open, _serve, browser  # noqa: F401 - browser is a fixture

QUESTION = "Berapa warga binaan yang divaksin?"


@pytest.fixture(scope="module")
def served_filters(assistant):
    app, url = _serve(assistant)
    yield app, url
    app.close()


def test_chat_filters_by_source_and_date(served_filters, assistant, browser):  # noqa: F811
    _, url = served_filters
    assert ("ANTARA", 1) in assistant.sources()
    want = assistant.ask(QUESTION, k=5, mode="hybrid", filter={"source": "ANTARA"})
    assert want.citations and all(c.article.source == "ANTARA" for c in want.citations)
    other = assistant.ask(QUESTION, k=5, mode="hybrid", filter={"source": "Bhirawa"})
    assert other.hits and {h.article.source for h in other.hits} == {"Bhirawa"}  # the filter decides the passages
    page = _open(browser, url)
    try:
        page.locator("#qa-settings").get_by_text("Settings").click()
        source = page.locator("#qa-source input")
        source.wait_for(timeout=15_000)
        source.click()
        page.get_by_role("option", name="ANTARA").click()  # the index's outlets are offered
        page.locator("#qa-k").click()  # close the list
        _ask(page, QUESTION, "Hanya dari artikel: sumber ANTARA\n\n" + want.text)
        page.wait_for_selector("#qa-sources .qa-card", timeout=30_000)
        cards = page.locator("#qa-sources .qa-card")
        assert cards.count() >= 1
        for i in range(cards.count()):
            assert "ANTARA" in cards.nth(i).inner_text()
        if os.environ.get("QA_SCREENSHOTS"):
            (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ROOT / "docs" / "img" / "filters.png"), full_page=True)

        # a date range no article falls in: a plain "not found", with the filter named
        page.locator("#qa-from textarea, #qa-from input").first.fill("2030")
        none = assistant.ask(QUESTION, k=5, mode="hybrid", filter={"source": "ANTARA", "date_from": "2030"})
        assert not none.found
        _ask(page, QUESTION, "Hanya dari artikel: sumber ANTARA · 2030-01-01..…\n\n" + none.text)

        # a wrong date is named, not a traceback
        page.locator("#qa-from textarea, #qa-from input").first.fill("2021-13")
        _ask(page, QUESTION, "From date '2021-13' is not a valid date")
    finally:
        page.close()


def test_api_ask_takes_filters(served_filters, monkeypatch):
    from gradio_client import Client

    _, url = served_filters
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    client = Client(url, verbose=False)
    got = client.predict(QUESTION, 5, "hybrid", "antara", "", "", api_name="/ask")
    assert got["citations"] and {c["source"] for c in got["citations"]} == {"ANTARA"}
    plain = client.predict(QUESTION, 5, "hybrid", api_name="/ask")  # the filters default to none
    assert plain["found"]
    with pytest.raises(Exception, match="not a valid date"):
        client.predict(QUESTION, 5, "hybrid", "", "2021-13", "", api_name="/ask")


def test_render_filter_helpers():
    from qa.ui.render import chat_filter, filter_note

    assert chat_filter([], "", None) is None and chat_filter(["", " "], " ", "") is None
    f = chat_filter(["ANTARA"], "2021", "2021-06")
    assert f.source == ("ANTARA",) and (f.date_from, f.date_to) == ("2021-01-01", "2021-06-30")
    assert filter_note(f, "en") == "Only from articles: source ANTARA · 2021-01-01..2021-06-30"
    assert filter_note(None, "id") is None
    with pytest.raises(ValueError, match="To date"):
        chat_filter([], "", "soon")
    assert Path(ROOT / "qa").is_dir()
