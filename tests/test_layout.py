"""The package's layout: no import cycle between its modules (every import counts, also ones inside functions or
``TYPE_CHECKING``), no folder importing a folder that imports it back, and no module over 400 lines."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "rethink"


def _module(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Module -> the rethink modules it imports (``from rethink.x import y`` counts ``rethink.x.y`` when that is a
    module of its own)."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rethink"):
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    found.add(target if target in modules else node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("rethink")}
        graph[name] = {m for m in found if m in modules and m != name and not name.startswith(m + ".")}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_between_modules() -> None:
    assert _cycle(_imports()) is None


def test_no_two_folders_import_each_other() -> None:
    def folder(module: str) -> str:
        return ".".join(module.split(".")[:2])

    folders: dict[str, set[str]] = {}
    for module, targets in _imports().items():
        folders.setdefault(folder(module), set()).update(folder(t) for t in targets if folder(t) != folder(module))
    assert _cycle(folders) is None


def test_modules_stay_small() -> None:
    sizes = {_module(p): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert max(sizes.values()) <= 400, sorted(sizes.items(), key=lambda item: -item[1])[:3]


def test_the_check_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_engine_imports_nothing_of_the_results_side() -> None:
    """``rethink.pipeline`` (and what it is built on) runs a cell without the report's code: the run-status writer is
    ``rethink.pipeline.status``, the names of pruned settings ``rethink.pruning.naming``."""
    engine = ("rethink.pipeline", "rethink.training", "rethink.pruning", "rethink.arch", "rethink.data")
    found = {
        (module, target)
        for module, targets in _imports().items()
        if module.startswith(engine)
        for target in targets
        if target.startswith("rethink.results")
    }
    assert found == set()


def test_a_family_module_inside_the_package_can_import_the_public_names() -> None:
    """A family module of ``rethink.arch`` (as a user's in-tree family would be) runs while the package is still being
    imported; ``from rethink.arch import ArchSpec, Family, ...`` must work there, as it does outside."""
    hook = (
        "import importlib.abc, sys\n"
        "class Hook(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'rethink.arch.cifar_vgg':\n"
        "            from rethink.arch import ArchSpec, Family, register_family, register_model\n"
        "            print('imported inside')\n"
        "sys.meta_path.insert(0, Hook())\n"
        "import rethink.arch\n"
    )
    proc = subprocess.run([sys.executable, "-c", hook], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout == "imported inside\n", proc.stderr[-2000:]
