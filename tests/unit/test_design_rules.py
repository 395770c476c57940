"""Rules of the design that a reader relies on (ARCHITECTURE.md): no import loop between modules
or between rooms (imports inside functions and under TYPE_CHECKING count); `launcher` and
`eotoolkit` import each other in neither direction, and `eoshared` imports neither; no module
of `launcher/` much over 600 lines; and no branch on a batch system's name outside its own file
in `eoshared/batchsystem/` ("Adding a batch system")."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("launcher", "eoshared", "eotoolkit")


def modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the packages by dotted name, with its file and whether it is a package."""
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def import_graph() -> dict[str, set[str]]:
    """Which of the modules each module imports (``from pkg import sub`` imports pkg.sub)."""
    known = modules()

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, (path, is_package) in known.items():
        here = module.split(".") if is_package else module.split(".")[:-1]
        names: list[str] = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    prefix = ".".join(here[: len(here) - node.level + 1])
                    base = f"{prefix}.{base}" if base else prefix
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    names.append(sub if sub in known else base)
        graph[module] = {r for r in map(resolve, names) if r and r != module}
    return graph


def loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_loop() -> None:
    graph = import_graph()
    assert "launcher.config" in graph["launcher.sites.fit"]  # the graph sees imports at all
    assert loops(graph) == []


def test_no_branch_on_a_batch_systems_name_outside_its_file() -> None:
    branch = re.compile(r'(name|section|system)[^=]*== *"(slurm|pbs|htcondor)"')
    found = []
    for module, (path, _) in modules().items():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = branch.search(line)
            if match and module != f"eoshared.batchsystem.{match.group(2)}":
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert found == []


def room(module: str) -> str:
    """The room of a module: a subpackage of `launcher` or `eoshared` (``launcher.sites``), a
    top-level module of either (``launcher.cli``), or the whole of `eotoolkit`."""
    parts = module.split(".")
    if parts[0] == "eotoolkit":
        return "eotoolkit"
    return ".".join(parts[:2])


def room_graph() -> dict[str, set[str]]:
    """Which rooms each room imports."""
    graph: dict[str, set[str]] = {}
    for module, imported in import_graph().items():
        here = room(module)
        graph.setdefault(here, set()).update(room(m) for m in imported if room(m) != here)
    return graph


def test_no_loop_between_rooms() -> None:
    graph = room_graph()
    assert "launcher.config" in graph["launcher.sites"]  # the rooms see imports at all
    assert loops(graph) == []


def test_the_packages_share_only_eoshared() -> None:
    crossing = {
        (module, other)
        for module, imported in import_graph().items()
        for other in imported
        if (top := module.partition(".")[0]) != (top_other := other.partition(".")[0])
        and not (top != "eoshared" and top_other == "eoshared")
    }
    assert crossing == set()
    assert any(m.startswith("eoshared.") for m in import_graph()["eotoolkit.cluster"])


def test_no_launcher_module_over_600_lines() -> None:
    long = {
        str(path.relative_to(REPO)): count
        for module, (path, _) in modules().items()
        if module.startswith("launcher")
        and (count := len(path.read_text(encoding="utf-8").splitlines())) > 620
    }
    assert long == {}
