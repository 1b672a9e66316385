"""The tree is the pipeline: stages import only the stages below them, and no module imports in a cycle.

Every ``import`` and ``from ... import`` in ``exporter/`` is read with ``ast`` (imports inside functions
too), and each module is placed in its stage by its path. The allowed direction is the order of
``STAGES``: a module may import its own stage and any stage listed before it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "exporter"

STAGES = (
    ("base", ("exporter", "exporter.model", "exporter.logging", "exporter.derive", "exporter.economics")),
    ("config", ("exporter.config",)),
    ("sources.servers", ("exporter.sources", "exporter.sources.servers")),
    ("sources.upstream", ("exporter.sources.upstream",)),
    ("sources.gpu", ("exporter.sources.gpu",)),
    ("fakes", ("exporter.fakes",)),
    ("attribution", ("exporter.attribution",)),
    ("poll", ("exporter.poll",)),
    ("exposition", ("exporter.exposition",)),
    ("serve", ("exporter.serve",)),
    ("commands", ("exporter.demo", "exporter.inspector", "exporter.cli", "exporter.__main__")),
)
"""Stages in the order data flows; each names the module prefixes that belong to it."""
SIDEWAYS = {("sources.gpu", "sources.servers"), ("sources.gpu", "sources.upstream"), ("fakes", "sources.upstream")}
"""Pairs (importer, imported) of stages that are independent: neither may import the other."""
ROOT_FILES_LIMIT = 8


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "podresources" not in p.parts}


def stage_of(module: str) -> int:
    """The index in ``STAGES`` of the longest prefix that ``module`` falls under."""
    best, length = -1, -1
    for index, (_name, prefixes) in enumerate(STAGES):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
                best, length = index, len(prefix)
    assert best >= 0, f"{module} is in no stage: add it to STAGES"
    return best


def imports_of(module: str) -> set[str]:
    """The ``exporter`` modules that ``module`` imports (a package's ``__init__`` when a name is not a module)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: set[str] = set()
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in MODULES else base)
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: imports_of(module) for module in MODULES}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_its_own_stage_and_the_stages_below(module: str) -> None:
    mine = stage_of(module)
    for imported in sorted(GRAPH[module]):
        theirs = stage_of(imported)
        pair = (STAGES[mine][0], STAGES[theirs][0])
        assert theirs <= mine, f"{module} ({pair[0]}) imports {imported} ({pair[1]}), a later stage"
        assert pair not in SIDEWAYS, f"{module} ({pair[0]}) imports {imported} ({pair[1]}): independent stages"


def test_no_exporter_modules_import_each_other_in_a_cycle() -> None:
    cycles = [component for component in strongly_connected(GRAPH) if len(component) > 1]
    assert cycles == [], f"import cycles: {cycles}"


def test_the_package_root_keeps_only_the_command_line_logging_model_derive_and_economics() -> None:
    files = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(files) <= ROOT_FILES_LIMIT, files


def test_the_layout_check_sees_a_forbidden_import() -> None:
    assert stage_of("exporter.sources.servers.vllm") < stage_of("exporter.poll.poller")
    assert "exporter.config.model" in GRAPH["exporter.config.load"]
    assert "exporter.sources.servers.vllm" in GRAPH["exporter.sources.servers.triton"]


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the strongly connected components of ``graph``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components
