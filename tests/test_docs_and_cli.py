"""The README's Python example runs as written; the CLI works end to end in a subprocess."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import CORPUS, ROOT


def _python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def test_readme_python_examples_run(seed_index, tmp_path, monkeypatch):
    blocks = _python_blocks(ROOT / "README.md")
    assert blocks
    (tmp_path / "index").symlink_to(seed_index)
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})


def _qa(*args, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "qa", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_cli_index_and_search(tmp_path):
    index = tmp_path / "index"
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    (corpus / "broken.txt").write_bytes(b"\x00\x01 not an article")
    r = _qa("index", "--corpus", str(corpus), "--index", str(index), "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "indexed 5 articles" in r.stdout and "1 file(s) skipped" in r.stdout
    assert r.stderr.count("broken.txt") == 1, r.stderr  # named once, with its reason
    assert "binary file" in r.stderr
    r = _qa("index", "--corpus", str(corpus), "--index", str(index), cwd=tmp_path)
    assert r.returncode == 0 and "up to date" in r.stdout
    r = _qa("search", "Siapa Kalapas Kelas IIB Amuntai?", "--index", str(index), "--json", "-k", "3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    hits = json.loads(r.stdout)
    assert len(hits) == 3 and "Dwi Hartono" in hits[0]["text"] and hits[0]["source"] == "ANTARA"
    r = _qa("search", "vaksin booster", "--index", str(index), "--mode", "bm25", cwd=tmp_path)
    assert r.returncode == 0 and "[1]" in r.stdout


def test_cli_version_pipes_and_busy_ports_give_no_traceback(seed_index, tmp_path):
    import socket

    from qa import __version__

    r = _qa("--version", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == f"qa {__version__}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run(f"'{sys.executable}' -m qa config --show --json | head -1", shell=True, cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "{" and "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = _qa("serve", "--index", str(seed_index), "--port", str(port), cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error:"), r.stderr[-2000:]
    assert "Traceback" not in r.stderr


def test_cli_chat_answers_follow_ups_from_standard_input(seed_index, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    lines = ["Siapa Kalapas Amuntai?", "Dia berterima kasih kepada siapa?", "", "   ", "/new",
             "Siapa Gubernur Banten?", "/quit", "Siapa Bupati Lebak?"]
    r = subprocess.run([sys.executable, "-m", "qa", "chat", "--index", str(seed_index)], input="\n".join(lines) + "\n",
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    turns = r.stdout.split("\n> ")
    assert turns[0].startswith("> Siapa Kalapas Amuntai?") and "Dwi Hartono [1]" in turns[0]
    # the follow-up is read with the first turn: "dia" is Dwi Hartono, who thanks BIN Kalsel
    assert turns[1].startswith("Dia berterima kasih kepada siapa?") and "BIN Kalsel" in turns[1].split("[1]")[0]
    assert turns[1].rstrip().endswith("(a new conversation)")  # blank lines are skipped
    assert turns[2].startswith("Siapa Gubernur Banten?") and "Wahidin Halim [1]" in turns[2]
    assert len(turns) == 3 and "Lebak" not in r.stdout  # /quit stops before the last line
    assert r.stdout.count("answered by: extractive") == 3
    r = _qa("chat", "--index", str(seed_index), "-k", "0", cwd=tmp_path)
    assert r.returncode == 2 and "-k must be a positive integer" in r.stderr


def test_ask_refuses_k_0_like_retrieve(assistant):
    with pytest.raises(ValueError, match="k must be a positive integer"):
        assistant.ask("Siapa Kalapas Kelas IIB Amuntai?", k=0)


def test_cli_errors_name_the_fix(tmp_path):
    r = _qa("search", "apa", "--index", str(tmp_path / "none"), cwd=tmp_path)
    assert r.returncode == 2 and "run `qa index" in r.stderr and "Traceback" not in r.stderr
    for cmd in ("ask", "search"):  # an empty question is an error, not an answer with exit status 0
        r = _qa(cmd, "  ", "--index", str(tmp_path / "none"), cwd=tmp_path)
        assert r.returncode == 2 and "empty question" in r.stderr
    r = _qa("index", "--corpus", str(tmp_path / "missing"), "--index", str(tmp_path / "i"), cwd=tmp_path)
    assert r.returncode == 2 and "corpus folder not found" in r.stderr
    r = _qa("ask", "apa", "--bogus", cwd=tmp_path)  # the command's usage, not the top level's
    assert r.returncode == 2 and r.stderr.startswith("usage: qa ask") and "unrecognized arguments: --bogus" in r.stderr
    r = _qa("config", "--show", "--json", "--index", str(tmp_path / "none"), cwd=tmp_path)  # moved to cli_tools: still runs
    assert r.returncode == 0 and json.loads(r.stdout)
