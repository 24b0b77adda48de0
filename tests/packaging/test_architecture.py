"""The package's shape, checked on every run so it cannot drift back (issue 16):

- the core, the CLI and its commands stay headless, and the core imports none of the front ends: the static
  import contracts in pyproject.toml (``[tool.importlinter]``, through import-linter) and, at run time, what
  importing them actually loads;
- no import cycle between modules, counting the imports inside functions and under ``TYPE_CHECKING`` (a lazy
  import that closes a loop is still a loop: the two modules can no longer be understood, or moved, apart);
- no module over 600 lines, and ``gui/main_window.py`` under 400 (it builds and connects; the work lives in
  the modules it wires).

The graph comes from grimp, the library import-linter builds its graph with, so this test and ``lint-imports``
see the same imports.
"""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
from helpers.photos import REPO

import vitfeat_desktop

PACKAGE = "vitfeat_desktop"
PACKAGE_DIR = Path(vitfeat_desktop.__file__).parent
MAX_MODULE_LINES = 600
MAX_MAIN_WINDOW_LINES = 400


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    # The checkout's package, not an installed copy: grimp finds the package the way `import` does.
    assert PACKAGE_DIR == REPO / PACKAGE, f"{PACKAGE} imported from {PACKAGE_DIR}, not from this checkout"
    return grimp.build_graph(PACKAGE, cache_dir=None)


def _strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's strongly connected components of the module graph (iterative: no recursion limit); a component of
    two or more modules, or one module importing itself, is an import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = []
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work.append((root, sorted(graph.find_modules_directly_imported_by(root))))
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.find_modules_directly_imported_by(nxt))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or graph.direct_import_exists(importer=node, imported=node):
                    found.append(sorted(component))
    return found


def _describe(graph: grimp.ImportGraph, component: list[str]) -> str:
    """One loop through the component, each step with the line that makes it, so the failure says what to cut."""
    members = set(component)
    start = component[0]
    steps: list[str] = []
    for importer in component:
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & members):
            details = graph.get_import_details(importer=importer, imported=imported)
            where = ", ".join(f"line {d['line_number']}: {d['line_contents']}" for d in details[:2])
            steps.append(f"    {importer} -> {imported}  ({where})")
    back = [m for m in component if m != start and graph.chain_exists(importer=m, imported=start)]
    loop = ""
    if back:
        there = graph.find_shortest_chain(importer=start, imported=back[0]) or (start, back[0])
        home = graph.find_shortest_chain(importer=back[0], imported=start) or (back[0], start)
        loop = " -> ".join([*there, *home[1:]])
    return f"  cycle of {len(component)} modules: {loop}\n" + "\n".join(steps)


def test_import_graph_covers_the_whole_package(graph: grimp.ImportGraph) -> None:
    """Every source file is in the graph (a folder without ``__init__.py`` would be silently left out)."""
    on_disk = set()
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        on_disk.add(".".join(parts))
    assert on_disk - set(graph.modules) == set()


def test_no_import_cycles(graph: grimp.ImportGraph) -> None:
    cycles = _strongly_connected(graph)
    if cycles:
        pytest.fail("import cycles between modules:\n" + "\n".join(_describe(graph, c) for c in cycles), pytrace=False)


def test_import_contracts_hold() -> None:
    """The contracts in pyproject.toml's ``[tool.importlinter]``, as ``lint-imports`` checks them."""
    code = (
        "import sys\n"
        "from importlinter.cli import lint_imports\n"
        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", "COLUMNS": "200"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_no_module_is_over_600_lines() -> None:
    sizes = {str(p.relative_to(REPO)): len(p.read_text(encoding="utf-8").splitlines())
             for p in sorted(PACKAGE_DIR.rglob("*.py"))}
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_main_window_only_builds_and_connects() -> None:
    lines = len((PACKAGE_DIR / "gui" / "main_window.py").read_text(encoding="utf-8").splitlines())
    assert lines < MAX_MAIN_WINDOW_LINES


def _headless_modules() -> list[str]:
    names = ["vitfeat_desktop", "vitfeat_desktop.cli", "vitfeat_desktop.config"]
    for sub in ("core", "commands"):
        for info in pkgutil.walk_packages([str(PACKAGE_DIR / sub)], prefix=f"vitfeat_desktop.{sub}."):
            names.append(info.name)
    return names


def test_core_and_cli_never_import_qt() -> None:
    """At run time too: what the static contract cannot see (``importlib.import_module`` of a computed name, a
    plugin entry point) would show here, as a module loaded by importing the headless side."""
    modules = _headless_modules()
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "from vitfeat_desktop.cli import build_parser\n"
        "build_parser()\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('PySide6', 'shiboken6', 'vitfeat_desktop.gui')))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"headless modules imported Qt: {result.stdout}"


def test_importing_the_package_is_cheap() -> None:
    """``vitfeat --help`` must be instant: onnxruntime and hnswlib load only when a model or index is used."""
    code = (
        "import sys, vitfeat_desktop.cli\n"
        "vitfeat_desktop.cli.build_parser()\n"
        "print(','.join(m for m in ('onnxruntime', 'hnswlib', 'PySide6') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
