"""The package's shape stays as designed: layers (import-linter contract in pyproject.toml), no import
circles even through imports inside functions, every module placed in a layer, no module over 420 lines."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import maest

SRC = Path(maest.__file__).resolve().parents[1]  # the tree under test (a worktree or an install)
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
MAX_LINES = 420


def module_files(src: Path = SRC) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package under ``src`` (a package is its __init__)."""
    modules = {}
    for path in sorted((src / "maest").rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its source (top level, functions, TYPE_CHECKING)."""

    def known(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(known(alias.name) for alias in node.names if alias.name.split(".")[0] == "maest")
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                if base.split(".")[0] != "maest":
                    continue
                for alias in node.names:  # `from maest import plots` imports the module maest.plots
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in modules else known(base))
        targets.discard(name)
        targets.discard("")
        graph[name] = targets
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_no_import_circle_counting_imports_inside_functions():
    graph = import_graph(module_files())
    found = circles(graph)
    detail = "\n".join(" <-> ".join(group) + "\n  " + "\n  ".join(f"{m} -> {sorted(graph[m] & set(group))}" for m in group)
                       for group in found)
    assert not found, f"import circles (move the shared part down a layer, or the call up into the caller):\n{detail}"


def test_circle_finder_sees_a_circle_through_a_function_level_import(tmp_path):
    """The check above can fail: two modules importing each other, one of them inside a function."""
    package = tmp_path / "maest"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("def f():\n    from maest.high import g\n    return g\n")
    (package / "high.py").write_text("from maest import low\n")
    (package / "other.py").write_text("from . import low\n")
    graph = import_graph(module_files(tmp_path))
    assert graph["maest.other"] == {"maest.low"}
    assert circles(graph) == [["maest.high", "maest.low"]]


def test_layers_contract_is_kept():
    """import-linter's layers contract (pyproject.toml): no import runs back up a layer."""
    pytest.importorskip("importlinter")
    script = Path(sysconfig.get_path("scripts")) / "lint-imports"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "importlinter.cli"]
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run([*command, "--no-cache", str(PYPROJECT)], capture_output=True, text=True, env=env,
                            cwd=PYPROJECT.parent, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout


def test_every_module_has_a_layer():
    """A new top-level module or subpackage is placed in the contract, else its arrows go unchecked."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["importlinter"]
    layered = {name.strip().strip("()") for contract in config["contracts"] if contract["type"] == "layers"
               for layer in contract["layers"] for name in layer.replace(":", "|").split("|")}
    tops = {".".join(name.split(".")[:2]) for name in module_files() if name.count(".") >= 1}
    assert tops - layered == set(), "add these to a layer of [tool.importlinter] in pyproject.toml"


def test_no_module_over_420_lines():
    long = {str(path.relative_to(SRC)): n for path in module_files().values()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"
