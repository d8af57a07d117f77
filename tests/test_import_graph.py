"""bambupi's import graph, read from the source with ``ast``: no cycles between modules or between packages.

A cycle makes import order matter (a module half-initialised when the other needs it) and ties two parts that should
be understood one after the other. The printer links reach the hub only through ``bambupi.printer.sink``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import bambupi

ROOT = Path(bambupi.__file__).parent
# A part's wiring (its component and routes) joins it to the hub and the web on purpose: it is what sits on top.
WIRING = frozenset({"component", "routes"})


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def module_graph() -> dict[str, set[str]]:
    """module -> the bambupi modules it imports (at any level of the file: a function's import still ties them)."""
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # ``from a import b``: b is a module of a, or a name in a.
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            for target in targets:
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def package_graph(graph: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """bambupi.<part> -> the other parts it imports; a part's wiring modules left out (see WIRING)."""

    def part(module: str) -> str:
        return ".".join(module.split(".")[:2])

    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        if module.rpartition(".")[2] in WIRING:
            continue
        packages.setdefault(part(module), set()).update(
            part(t) for t in targets if part(t) not in (part(module), "bambupi")
        )
    return packages


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_two_modules_import_each_other() -> None:
    assert cycles(module_graph()) == []


def test_the_printer_side_reaches_the_hub_only_through_its_sink() -> None:
    graph = module_graph()
    printer_side = [m for m in graph if m.startswith("bambupi.printer.") and m.rpartition(".")[2] not in WIRING]
    reaching = sorted(module for module in printer_side if "bambupi.state_hub" in graph[module])
    assert reaching == []
    assert "bambupi.printer.sink" in graph["bambupi.printer.link"]


def test_no_two_packages_import_each_other() -> None:
    assert cycles(package_graph(module_graph())) == []
