"""The package's shape, read from the source: no import circle, no file over 400 lines, and layers
that import only downward (docs/architecture.md draws them)."""
from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PKG = ROOT / "qa"
# lowest first; a module may import from its own layer or below
LAYERS = [
    ("base", ["qa.errors", "qa.hashing", "qa.types", "qa.filters", "qa.settings", "qa.config", "qa.analyzer", "qa.chunking", "qa.synonyms", "qa.lexicon",
              "qa.fusion", "qa.fusion_adaptive", "qa.rerank", "qa.linear", "qa.trees", "qa.ingest"]),
    ("backends", ["qa.lexical", "qa.encoders"]),
    ("stores", ["qa.stores"]),
    ("retrieval and answers", ["qa.retrieval", "qa.answer"]),
    ("assistant", ["qa.assistant"]),
    ("tools", ["qa.conversation", "qa.evaluation", "qa.adaptation", "qa.library"]),
    ("entry points", ["qa.ui", "qa.cli", "qa.cli_tools", "qa.__main__", "qa"]),
]
# the one convenience that reaches up: Assistant.conversation() builds the layer above it (lazily)
ALLOWED_UP = {("qa.assistant", "qa.conversation")}


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


def _imports(mod: str, path: Path, mods: dict[str, Path]) -> set[str]:
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = mod.split(".") if is_pkg else mod.split(".")[:-1]
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for n in names:
            while n and n not in mods:
                n = n.rpartition(".")[0]
            if n and n != mod and n.startswith("qa"):
                found.add(n)
    return found


def _layer(mod: str) -> int:
    best = None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if mod == p or mod.startswith(p + "."):
                if best is None or len(p) > best[1]:
                    best = (i, len(p))
    assert best is not None, f"{mod} is in no layer of tests/test_architecture.py (and docs/architecture.md)"
    return best[0]


def test_layers_only_import_downward():
    mods = _modules()
    wrong = []
    for mod, path in mods.items():
        for dep in _imports(mod, path, mods):
            if _layer(dep) > _layer(mod) and (mod, dep) not in ALLOWED_UP:
                wrong.append(f"{mod} ({LAYERS[_layer(mod)][0]}) imports {dep} ({LAYERS[_layer(dep)][0]})")
    assert not wrong, "\n".join(wrong)


def test_no_import_circle_and_no_oversized_file():
    mods = _modules()
    graph = {m: _imports(m, p, mods) for m, p in mods.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not circles, circles
    big = {str(p.relative_to(ROOT)): n for p in mods.values()
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert not big, big
    assert len(mods) > 40  # the walk found the package


def test_every_module_imports():
    import importlib

    for mod in _modules():
        if mod.startswith("qa.ui") or mod == "qa.__main__":  # the ui extra (UI tests import it); __main__ runs the CLI
            continue
        if mod.endswith("ray_ingest"):
            continue  # imports Ray lazily; tested in test_ray_ingest.py
        importlib.import_module(mod)
