"""The shape of the house, checked: the core's import graph has no cycle, the core never imports Streamlit,
no source file is over 500 lines, and pages stay thin.

``python tests/test_layout.py`` prints the graph's modules, edges and largest files (the figures the
redesign's closing note quotes)."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 500
FOLDERS = ("vae", "ui", "app_pages", "bench", "labkit", "tests")
SOURCES = [p for d in FOLDERS for p in (ROOT / d).rglob("*.py")] + [ROOT / "app.py"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (a lazy import inside a function is still an edge)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)      # `from . import x` imports module x
    return out


def core_graph() -> dict[str, set[str]]:
    """Module -> the vae modules it imports. The root package is left out: every import of a vae module
    runs vae/__init__.py first, so an edge to it says nothing."""
    files = sorted((ROOT / "vae").rglob("*.py"))
    mods = {module_name(p): p for p in files if p != ROOT / "vae" / "__init__.py"}
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        deps = {d for d in imports_of(path) if d in mods and d != mod}
        # importing vae.x.y runs vae/x/__init__.py first: a real edge of the import graph
        for d in list(deps):
            parent = d.rpartition(".")[0]
            while parent and parent != "vae" and not mod.startswith(parent):
                deps.add(parent)
                parent = parent.rpartition(".")[0]
        graph[mod] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]


def test_the_core_import_graph_has_no_cycle():
    graph = core_graph()
    assert len(graph) > 30 and sum(map(len, graph.values())) > 60, "the graph was not read"
    assert cycles(graph) == []


def test_the_core_never_imports_streamlit():
    offenders = [module_name(p) for p in (ROOT / "vae").rglob("*.py")
                 if any(d.split(".")[0] == "streamlit" for d in imports_of(p))]
    assert offenders == []


def test_no_source_file_is_over_500_lines():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines()) for p in SOURCES}
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}


def test_pages_are_thin():
    """Pages draw; caching and session-state keys live in ui/, and the model is never touched directly."""
    for page in (ROOT / "app_pages").glob("*.py"):
        text = page.read_text(encoding="utf-8")
        for banned in ("st.cache_data", "st.cache_resource", ".to(device", "torch.no_grad", "model.encoder",
                       "model.decoder"):
            assert banned not in text, f"{page.name} uses {banned}"


if __name__ == "__main__":
    g = core_graph()
    print(f"{len(g)} modules in vae/, {sum(map(len, g.values()))} import edges, cycles: {cycles(g) or 'none'}")
    sizes = sorted(((len(p.read_text().splitlines()), str(p.relative_to(ROOT))) for p in SOURCES), reverse=True)
    for n, p in sizes[:8]:
        print(f"{n:6d}  {p}")
