"""The direction of dependencies, read from the source with ``ast`` (every import, at module level or
inside a function): no import cycle among trtgen's modules (through imports that run, so not those
under ``if TYPE_CHECKING:``); the runtime reaches the TensorFlow side only through
``trtgen.commands.export``; the exporter (``trtgen_export``, the folder ``export/``) uses only the
runtime's engine, corpora and helper modules, never the commands, evaluation or command line."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"trtgen": REPO / "trtgen", "trtgen_export": REPO / "export"}

TENSORFLOW_SIDE = ("trtgen_export", "tensorflow", "tf2onnx", "onnx")
"""Top-level packages only the exporter may need (``onnx`` the package; ``onnxruntime`` is the runtime's)."""
EXPORT_DOOR = "trtgen.commands.export"
"""The one runtime module that imports the exporter, lazily, for ``trtgen export`` and ``eval --compare-random``."""
EXPORTER_MAY_USE = ("trtgen.engine", "trtgen.corpora", "trtgen.errors", "trtgen.fileio", "trtgen.progress")
"""What of ``trtgen`` the exporter may import; ``trtgen.commands``, ``trtgen.evaluation``, ``trtgen.cli``
and ``trtgen.console`` sit above it."""


@dataclass(frozen=True)
class Import:
    target: str
    """The imported module: a known module when the name resolves to one, else the name as written."""
    line: int
    type_only: bool = False
    """Under ``if TYPE_CHECKING:``: seen by type checkers, never run."""


def _module_files() -> dict[str, Path]:
    """Every module of both packages by dotted name; a package's name stands for its ``__init__.py``."""
    modules = {}
    for package, root in PACKAGES.items():
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    return modules


MODULES = _module_files()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, source: str | None = None) -> list[Import]:
    """The modules ``name`` imports (its file, or ``source`` written as if it were that module), in
    source order. ``from a import b`` is an import of ``a.b`` when that is a module, else of ``a``;
    relative imports are resolved against the module's package."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source, filename=str(path))
    package = name if _is_package(name) else name.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, node.lineno, type_only) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join([*base, node.module] if node.module else base)
            else:
                origin = node.module or ""
            for alias in node.names:
                submodule = f"{origin}.{alias.name}"
                found.append(Import(submodule if submodule in MODULES else origin, node.lineno, type_only))
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_only)
        else:
            for child in ast.iter_child_nodes(node):
                visit(child, type_only)

    visit(tree, False)
    return found


IMPORTS = {name: _imports(name) for name in MODULES}


def _within(target: str, prefixes: tuple[str, ...]) -> bool:
    return any(target == p or target.startswith(p + ".") for p in prefixes)


def _where(module: str, imported: Import) -> str:
    return f"{MODULES[module].relative_to(REPO)}:{imported.line} imports {imported.target}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of ``graph`` (Tarjan), each as its modules in import order
    with the first repeated at the end: every knot is reported at once, not only the first found."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph[node]:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_cycle_in(graph, group) for group in groups]


def _cycle_in(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A shortest cycle through the group's first module, found breadth first inside the group."""
    start = min(group)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & group):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if nxt not in parents:
                    parents[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"{sorted(group)} is not strongly connected")


def test_the_walk_sees_both_packages_and_imports_inside_functions() -> None:
    assert "trtgen.engine.voice" in MODULES and "trtgen_export.quantize" in MODULES and "trtgen" in MODULES
    door = {i.target for i in IMPORTS[EXPORT_DOOR]}
    assert "trtgen_export.pipeline" in door  # imported inside run_export_command


def test_imports_are_resolved_to_modules() -> None:
    source = (
        "import numpy as np\n"
        "from . import generate\n"
        "from ..engine import voice, shipped\n"
        "from ..errors import UsageError\n"
        "def later():\n"
        "    from trtgen import Voice\n"
        "    import trtgen.engine\n"
        "    from onnx import helper\n"
        "if typing.TYPE_CHECKING:\n"
        "    from trtgen.cli import app\n"
        "else:\n"
        "    import trtgen.console\n"
    )
    found = _imports("trtgen.commands.demo", source)
    assert [i.target for i in found] == [
        "numpy", "trtgen.commands.generate", "trtgen.engine.voice", "trtgen.engine.shipped", "trtgen.errors",
        "trtgen", "trtgen.engine", "onnx", "trtgen.cli", "trtgen.console",
    ]
    assert [i.target for i in found if i.type_only] == ["trtgen.cli"]
    assert [i.target for i in _imports("trtgen.engine", "from . import voice\nfrom .text import TextEncoder\n")] == [
        "trtgen.engine.voice", "trtgen.engine.text",
    ]


def test_trtgen_has_no_import_cycle() -> None:
    """Imports that run count (at module level or in a function); ``if TYPE_CHECKING:`` ones never run."""
    graph = {
        name: {i.target for i in imports if i.target in MODULES and _within(i.target, ("trtgen",)) and not i.type_only}
        for name, imports in IMPORTS.items()
        if _within(name, ("trtgen",))
    }
    cycles = _cycles(graph)
    assert not cycles, "import cycles among trtgen modules:\n" + "\n".join(str(cycle) for cycle in cycles)


def test_only_the_export_command_reaches_the_tensorflow_side() -> None:
    offending = [
        _where(name, i)
        for name, imports in IMPORTS.items()
        if _within(name, ("trtgen",)) and name != EXPORT_DOOR
        for i in imports
        if _within(i.target, TENSORFLOW_SIDE)
    ]
    offending = list(dict.fromkeys(offending))  # one line per import statement, not per imported name
    assert not offending, "the runtime must not need TensorFlow or the exporter:\n" + "\n".join(offending)


def test_the_exporter_uses_only_the_engine_corpora_and_helpers_of_trtgen() -> None:
    offending = [
        _where(name, i)
        for name, imports in IMPORTS.items()
        if _within(name, ("trtgen_export",))
        for i in imports
        if _within(i.target, ("trtgen",)) and not _within(i.target, EXPORTER_MAY_USE)
    ]
    offending = list(dict.fromkeys(offending))
    assert not offending, f"the exporter may import only {', '.join(EXPORTER_MAY_USE)} of trtgen:\n" + "\n".join(offending)
