"""Every module imports, and no module imports itself through others (issue 18: no import circles).

The graph is read statically with ``ast``: every ``import`` and ``from ... import`` in a module
counts, also those inside functions (imported late, they still close a circle when they run) and
under ``if TYPE_CHECKING``.  An edge goes to the most specific module of this repository the
statement names (``from smilecore import decode`` -> ``smilecore.decode``; ``from smilecore import
smile`` -> ``smilecore``), not to the packages above it.
"""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Import name -> folder, as pyproject.toml installs them (plus training and the benchmarks, run from the checkout).
PACKAGES = {"smilecore": "smilecore", "smile_cli": "cli", "training": "training", "benchmarks": "benchmarks",
            "smile_plugins": "plugins"}


def modules() -> dict[str, Path]:
    """Every module of the packages: dotted name -> file."""
    out = {}
    for name, folder in PACKAGES.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = [name, *path.relative_to(REPO / folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom, known: dict[str, Path]) -> set[str]:
    """The modules of ``known`` that one import statement of ``module`` loads."""
    if isinstance(node, ast.Import):
        found = set()
        for alias in node.names:
            name = alias.name
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
        return found
    if node.level:
        base = module.split(".")
        if path.name != "__init__.py":
            base.pop()
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    found = set()
    for alias in node.names:
        if f"{source}.{alias.name}" in known:
            found.add(f"{source}.{alias.name}")
        elif source in known:
            found.add(source)
    return found


def import_graph(known: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of ``known`` it imports anywhere in its text."""
    graph = {}
    for module, path in known.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= _targets(module, path, node, known)
        edges.discard(module)
        graph[module] = edges
    return graph


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                circle = visit(nxt)
                if circle:
                    return circle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            circle = visit(start)
            if circle:
                return circle
    return None


def test_find_circle_finds_one_and_only_one():
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]


def test_the_graph_sees_late_and_relative_imports(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "run.py").write_text("from . import report as rep\n\ndef go():\n    from .parallel import pool\n")
    (pkg / "parallel.py").write_text("def pool():\n    from pkg.run import go\n")
    (pkg / "report.py").write_text("import json\n")
    known = {"pkg": pkg / "__init__.py", **{f"pkg.{n}": pkg / f"{n}.py" for n in ("run", "parallel", "report")}}
    graph = import_graph(known)
    assert graph == {"pkg": set(), "pkg.run": {"pkg.report", "pkg.parallel"}, "pkg.parallel": {"pkg.run"},
                     "pkg.report": set()}
    assert find_circle(graph) == ["pkg.parallel", "pkg.run", "pkg.parallel"]


def test_no_import_circles():
    known = modules()
    assert len(known) > 80
    circle = find_circle(import_graph(known))
    assert circle is None, "import circle: " + " -> ".join(circle or [])


#: Modules that import only inside their host program or with optional extras.
NEEDS_HOST = ("smile_plugins.gimp", "smile_plugins.krita")
OPTIONAL = {"training": "torch", "benchmarks": "torch"}


@pytest.mark.parametrize("module", sorted(m for m in modules() if not m.startswith(NEEDS_HOST)))
def test_every_module_imports(module):
    extra = OPTIONAL.get(module.split(".")[0])
    if extra:
        pytest.importorskip(extra)
    importlib.import_module(module)


@pytest.mark.parametrize("folder", ["smilecore", "cli", "plugins"])
def test_the_shipped_modules_are_small_and_each_is_in_the_architecture_page(folder):
    """CONTRIBUTING's rule for the engine, the command and the plug-ins: no module over 500 lines; and
    docs/architecture.md names each (``video_*.py`` names the video modules)."""
    page = (REPO / "docs" / "architecture.md").read_text()
    big, unnamed = [], []
    for path in sorted((REPO / folder).rglob("*.py")):
        lines = path.read_text().count("\n")
        if lines > 500:
            big.append(f"{path.relative_to(REPO)} ({lines})")
        named = f"`{path.name}`" in page or (path.name.startswith("video_") and "`video_*.py`" in page)
        if not named and path.name not in ("__init__.py", "__main__.py") and folder != "plugins":
            unnamed.append(str(path.relative_to(REPO)))
    assert not big, f"over 500 lines: {big}"
    assert not unnamed, f"not in docs/architecture.md: {unnamed}"
