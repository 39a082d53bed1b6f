"""The package's layout: no module imports another that imports it back, however long
the way round, and no subpackage imports anything heavy when it is imported."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "src" / "pytest_ptycho_fixture"
NAME = PACKAGE.name
#: What a subpackage's import must not bring in: the imports that cost seconds.
HEAVY = ("numpy", "torch", "h5py", "hdf5plugin", "fsspec", "matplotlib", "tqdm")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node but those under ``if TYPE_CHECKING:``, which never run."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for branch in node.orelse:
                yield branch
                yield from _runtime_nodes(branch)
            continue
        yield node
        yield from _runtime_nodes(node)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` imports at run time, at module level or inside
    a function: ``from . import x`` counts as ``x`` where ``x`` is a module."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            submodules = {f"{target}.{alias.name}" for alias in node.names} & modules
            if submodules:
                found.update(submodules)
            if target in modules and len(submodules) < len(node.names):
                found.add(target)
    return found - {name}


def import_graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(path) for path in files}
    return {module_name(path): imports_of(path, modules) for path in files}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected parts of ``graph`` with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            part = []
            while True:
                member = stack.pop()
                part.append(member)
                if member == node:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_modules_of_the_package_import_each_other_in_a_circle() -> None:
    graph = import_graph()
    assert len(graph) > 30 and f"{NAME}.sources.registry" in graph
    assert cycles(graph) == []


def test_the_walk_finds_a_circle_through_a_function_level_import() -> None:
    graph = import_graph()
    # The circle the sources once had: the HDF5 scan importing its layouts back.
    graph[f"{NAME}.sources.hdf5"] = graph[f"{NAME}.sources.hdf5"] | {f"{NAME}.sources.cxi"}
    assert [f"{NAME}.sources.cxi", f"{NAME}.sources.hdf5"] in cycles(graph)


def test_it_reads_relative_imports_at_every_depth(tmp_path: Path) -> None:
    modules = {module_name(path) for path in PACKAGE.rglob("*.py")}
    assert imports_of(PACKAGE / "sources" / "registry.py", modules) >= {
        f"{NAME}.contract",
        f"{NAME}.spec",
        f"{NAME}.sources.cxi",
        f"{NAME}.sources.keys",
        f"{NAME}.sources.hdf5read",
        f"{NAME}.npz.reader",
    }
    assert f"{NAME}.npz.writer" in imports_of(PACKAGE / "npz" / "reader.py", modules)
    # Under TYPE_CHECKING only: never run, so no edge.
    assert f"{NAME}.cli.progress" not in imports_of(PACKAGE / "generate.py", modules)


SUBPACKAGES = sorted(
    module_name(path) for path in PACKAGE.rglob("__init__.py") if path.parent != PACKAGE
)


@pytest.mark.parametrize("subpackage", SUBPACKAGES)
def test_importing_a_subpackage_imports_nothing_heavy(subpackage: str) -> None:
    program = (
        f"import sys, {subpackage}\n"
        f"print(sorted(name for name in {HEAVY!r} if name in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_each_family_is_a_subpackage() -> None:
    families = ("cli", "export", "npz", "sources", "store")
    assert SUBPACKAGES == [f"{NAME}.{family}" for family in families]
