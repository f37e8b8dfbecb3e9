"""The package's import graph has no cycle and no edge from a lower layer to a higher one.

Every ``import`` of every module under ``src/anaus_pl`` counts, wherever it
stands: at the top, inside a function or under ``TYPE_CHECKING`` (a deferred
import hides a cycle from the interpreter, not from the reader).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "anaus_pl"

# Bottom to top. A module may import from its own layer or below; its top-level component
# (``anaus_pl.<name>``) decides its layer. ``anaus_pl`` itself is the package root (``__version__``).
LAYERS: tuple[frozenset[str], ...] = (
    frozenset(
        {"anaus_pl", "atomic", "randomness", "run_name", "checkpoints", "requeue", "logs", "preflight", "schedules"}
    ),
    frozenset({"data", "losses"}),
    frozenset({"models"}),
    frozenset({"tasks"}),
    frozenset({"evaluation"}),
    frozenset({"lightning_cli", "cli", "study"}),
)


def module_name(path: Path) -> str:
    parts = ("anaus_pl", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The ``anaus_pl`` modules ``name`` imports (``from package import module`` names the module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {target for target in found if target in known and target != name}


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported(name, path, set(found)) for name, path in found.items()}


def layer(name: str) -> int:
    component = name.split(".")[1] if "." in name else name
    for rank, members in enumerate(LAYERS):
        if component in members:
            return rank
    raise AssertionError(f"{name}: anaus_pl.{component} is in no layer; add it to LAYERS in {Path(__file__).name}")


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_every_module_has_a_layer():
    for name in modules():
        layer(name)


def find_cycles(graph: dict[str, set[str]], limit: int = 20) -> list[list[str]]:
    """Import cycles, each found after cutting the closing edge of the ones before (so each names a new edge)."""
    graph = {node: set(targets) for node, targets in graph.items()}
    cycles = []
    while len(cycles) < limit and (cycle := find_cycle(graph)):
        cycles.append(cycle)
        graph[cycle[-2]].discard(cycle[-1])
    return cycles


def test_no_import_cycle():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_no_import_from_a_lower_layer_to_a_higher_one():
    upward = sorted(
        f"{source} (layer {layer(source)}) imports {target} (layer {layer(target)})"
        for source, targets in import_graph().items()
        for target in targets
        if layer(target) > layer(source)
    )
    assert not upward, "upward imports:\n" + "\n".join(upward)


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b"}, "b": {"b2"}, "b2": {"b"}}, ["b", "b2", "b"]),
    ],
)
def test_find_cycle_on_small_graphs(graph, expected):
    assert find_cycle(graph) == expected


def test_relative_and_function_level_imports_are_edges(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("from . import sibling\n\ndef f():\n    from anaus_pl.top import thing\n")
    known = {"anaus_pl.pkg.sibling", "anaus_pl.top", "anaus_pl.pkg.mod"}
    assert imported("anaus_pl.pkg.mod", source, known) == {"anaus_pl.pkg.sibling", "anaus_pl.top"}


def test_find_cycles_names_each_cycle():
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": {"d"}, "d": {"c"}}
    assert find_cycles(graph) == [["a", "b", "a"], ["c", "d", "c"]]
