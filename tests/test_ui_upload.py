"""The chat's Articles panel in a real browser (Debian chromium via Playwright): upload files, see
the per-file results, ask about the new article, delete it; and no writing without a login or
--allow-upload. ``QA_SCREENSHOTS=1`` saves the panel to docs/img/ for the docs."""
from __future__ import annotations

import os
import shutil

import pytest

from conftest import CORPUS, ROOT

gr = pytest.importorskip("gradio")
from test_ui import _ask, _open, _serve, browser  # noqa: E402,F401 - the browser fixture and helpers

pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")

NEW = ("Petani Desa Lembahhijau di Kabupaten Rimbaraya memanen 4.200 kilogram kopi arabika pada pekan lalu. "
       "Ketua Kelompok Tani Lembahhijau, Ibu Sumarni Wulandari, mengatakan panen kopi tahun ini naik dua kali "
       "lipat.\n\nKopi itu dijual ke koperasi di ibu kota kabupaten.")
OTHER = ("# Festival Layang-layang Pantai Pasirputih\n\nSebanyak 300 layang-layang diterbangkan di Pantai "
         "Pasirputih, Kabupaten Lautbiru, pada hari Sabtu. Panitia festival, Bapak Gilang Saputra, mengatakan "
         "festival diikuti peserta dari 12 provinsi.\n")
QUESTION = "Siapa Ketua Kelompok Tani Lembahhijau?"


def _live(tmp_path, embedder, writable):
    from qa import Assistant, build_index
    from qa.library import LiveAssistant

    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    build_index(corpus, tmp_path / "index", progress=False, embedder=embedder)
    return LiveAssistant(Assistant.load(tmp_path / "index", embedder=embedder), corpus, writable=writable)


def _shot(page, name: str) -> None:
    if os.environ.get("QA_SCREENSHOTS") == "1":
        (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
        page.locator("#qa-articles-panel").screenshot(path=str(ROOT / "docs" / "img" / name))


def test_upload_ask_delete_in_the_browser(tmp_path, embedder, browser):  # noqa: F811
    live = _live(tmp_path, embedder, writable=True)
    files = tmp_path / "upload"
    files.mkdir()
    (files / "kopi.txt").write_text(NEW, encoding="utf-8")
    (files / "layang.md").write_text(OTHER, encoding="utf-8")
    (files / "rusak.html").write_bytes(b"\x00\x01binary\x00" * 20)
    app, url = _serve(live)
    assert {"upload", "delete"} <= {getattr(f, "name", "") for f in app.fns.values()}  # vs. the read-only app
    page = _open(browser, url)
    try:
        page.get_by_text("Articles", exact=True).click()
        page.wait_for_selector("#qa-article-list", timeout=10_000)
        assert "5 articles in the index" in page.locator("#qa-articles-status").inner_text()
        page.locator("#qa-upload input[type=file]").set_input_files(
            [str(files / n) for n in ("kopi.txt", "layang.md", "rusak.html")])
        page.wait_for_function("() => (document.querySelector('#qa-articles-status')?.innerText || '')"
                               ".includes('7 articles')", timeout=120_000)
        results = page.locator("#qa-upload-results").inner_text()
        assert "kopi.txt" in results and "layang.md" in results and "added" in results
        assert "rusak.html" in results and "skipped" in results and "binary file" in results
        assert "2 added, 1 skipped" in page.locator("#qa-articles-status").inner_text()
        assert "kopi" in page.locator("#qa-article-list").inner_text()
        _shot(page, "upload.png")

        expected = live.current.ask(QUESTION, k=5, mode="hybrid")
        assert expected.found and expected.citations[0].article.id == "kopi" and "Sumarni" in expected.text
        _ask(page, QUESTION, expected.text)

        page.locator("#qa-delete-ids textarea, #qa-delete-ids input").first.fill("kopi")
        page.locator("#qa-delete").click()
        page.wait_for_function("() => (document.querySelector('#qa-articles-status')?.innerText || '')"
                               ".includes('6 articles')", timeout=120_000)
        assert "Deleted kopi" in page.locator("#qa-articles-status").inner_text()
        listed = [r.split("\t")[0].strip() for r in page.locator("#qa-article-list").inner_text().splitlines()]
        assert "kopi" not in listed and "layang" in " ".join(listed)
        _shot(page, "upload-deleted.png")
        after = live.current.ask(QUESTION, k=5, mode="hybrid")
        assert all(c.article.id != "kopi" for c in after.citations)
        _ask(page, QUESTION, after.text)
        assert any(p.name.endswith("kopi.txt") for p in (live.corpus_dir / ".trash").iterdir())
    finally:
        page.close()
        app.close()


def test_no_upload_without_login_or_allow_upload(tmp_path, assistant, embedder, browser, monkeypatch):  # noqa: F811
    import qa.ui.serve as serve
    from qa.library import LiveAssistant, UploadError
    from qa.ui.articles import ArticleHandlers

    app, url = _serve(assistant)  # a plain Assistant: read-only
    page = _open(browser, url)
    try:
        page.get_by_text("Articles", exact=True).click()
        page.wait_for_selector("#qa-upload-off", timeout=10_000)
        assert page.locator("#qa-upload, #qa-delete").count() == 0
        assert "5 articles in the index" in page.locator("#qa-articles-status").inner_text()
    finally:
        page.close()
        app.close()
    assert not [f for f in app.fns.values() if getattr(f, "name", "") in ("upload", "delete")]
    ro = LiveAssistant(assistant, tmp_path / "corpus")
    with pytest.raises(gr.Error, match="--allow-upload"):
        ArticleHandlers(ro).upload([str(CORPUS / "002_c05e6eef8739556f.txt")])
    with pytest.raises(UploadError):
        ro.remove(["002_c05e6eef8739556f"])
    assert not (tmp_path / "corpus").exists()
    # `qa serve`: writing follows --allow-upload, else the [ui] setting, else a login
    built = []
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, *a, **kw: built.append((self, kw)))
    monkeypatch.setattr(serve, "load_or_build", lambda *a, **kw: assistant)
    monkeypatch.delenv("QA_USERNAME", raising=False)
    monkeypatch.delenv("QA_PASSWORD", raising=False)
    seen = []
    import qa.ui.app as app_mod
    real = app_mod.build_app
    monkeypatch.setattr(app_mod, "build_app", lambda live, **kw: (seen.append(live.writable), real(live, **kw))[1])
    serve.launch()
    serve.launch(auth=("ana", "pw"))
    serve.launch(auth=("ana", "pw"), allow_upload=False)
    serve.launch(allow_upload=True)
    assert seen == [False, True, False, True]
    assert "max_file_size" in built[-1][1] and "max_file_size" not in built[0][1]


def test_cli_login_and_add_remove(tmp_path, embedder, monkeypatch, capsys):
    import types
    import sys

    from qa.cli import main

    calls = []
    fake = types.ModuleType("qa.ui")
    fake.launch = lambda **kw: calls.append(kw)
    monkeypatch.setitem(sys.modules, "qa.ui", fake)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QA_PASSWORD", raising=False)
    assert main(["serve", "--login", "ana:pw"]) == 0 and calls[-1]["auth"] == ("ana", "pw")
    assert calls[-1]["allow_upload"] is None
    assert main(["serve", "--allow-upload"]) == 0 and calls[-1]["allow_upload"] is True and calls[-1]["auth"] is None
    assert main(["serve", "--login", "ana"]) == 2 and "QA_PASSWORD" in capsys.readouterr().err
    monkeypatch.setenv("QA_PASSWORD", "from-env")
    assert main(["serve", "--login", "ana"]) == 0 and calls[-1]["auth"] == ("ana", "from-env")
    assert "from-env" not in capsys.readouterr().out
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    shutil.copytree(CORPUS, tmp_path / "corpus")
    (tmp_path / "kopi.txt").write_text(NEW, encoding="utf-8")
    (tmp_path / "x.exe").write_bytes(b"MZ")
    assert main(["add", "kopi.txt", "x.exe", "--no-index"]) == 1
    out = capsys.readouterr()
    assert "kopi.txt: added (kopi)" in out.out and "x.exe: skipped - unsupported file type .exe" in out.err
    assert main(["remove", "kopi", "--no-index"]) == 0 and "kopi: removed (kept in .trash/" in capsys.readouterr().out


def test_source_filter_offers_an_uploaded_outlet(tmp_path, embedder):
    from qa.ui.app import ChatHandlers

    live = _live(tmp_path, embedder, True)
    h = ChatHandlers(live)
    assert "Kompas" not in h.sources
    live.add([("gempa.txt", "Gempa Cianjur\n\nCianjur (Kompas) - Gempa bermagnitudo 5,6 mengguncang Cianjur pada "
                            "Senin 21 November 2022. Ratusan rumah rusak.\n\nWarga mengungsi ke lapangan.".encode())])
    update = h.source_choices()
    assert "Kompas" in update["choices"] and "Kompas" in h.sources
