"""The package's rooms and layers (ARCHITECTURE.md, "Layers"): every import of an Intercept
module, lazy ones inside functions included, goes to its own layer or one below, and the
imports that run at import time form no cycle. Read from the source with `ast`; nothing is
imported."""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "intercept"

LAYERS = [
    ("leaves", ["intercept.errors", "intercept.resources", "intercept.logscrub",
                "intercept.config"]),
    ("rules", ["intercept.rules", "intercept.rules.*"]),
    ("package", ["intercept"]),  # __version__, load_rules
    ("research", ["intercept.research", "intercept.research.counting",
                  "intercept.research.counters", "intercept.research.metricfiles",
                  "intercept.research.spool", "intercept.research.variants",
                  "intercept.research.forks",
                  "intercept.research.ledger", "intercept.research.ledger.*",
                  "intercept.preflight", "intercept.hugepages"]),
    ("core", ["intercept.extract", "intercept.messagefile", "intercept.pages",
              "intercept.tokens", "intercept.core"]),
    ("assembly", ["intercept.served", "intercept.compiling", "intercept.reload",
                  "intercept.assembly"]),
    ("doors", ["intercept.doors", "intercept.doors.*", "intercept.wsgi", "intercept.asgi",
               "intercept.aiohttp_middleware", "intercept.searxng"]),
    ("server", ["intercept.server", "intercept.server.*", "intercept.serve"]),
    ("commands", ["intercept.research.report", "intercept.research.report.*",
                  "intercept.curation", "intercept.curation.*", "intercept.demo",
                  "intercept.configshow", "intercept.cli", "intercept.__main__"]),
]  # fmt: skip
"""From the bottom. A room is one subpackage; the top-level modules sit where their imports
put them."""


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = ast.parse(path.read_text(), str(path))
    return found


MODULES = _modules()


def _layer(module: str) -> int:
    for number, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch.fnmatchcase(module, pattern) for pattern in patterns):
            return number
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and ARCHITECTURE.md")


def _imports(tree: ast.AST, *, at_import_time: bool) -> set[str]:
    """The Intercept modules `tree` imports (`from package import module` names the module).
    `at_import_time`: only the statements that run when the module is imported (not inside
    a function, nor under `if TYPE_CHECKING`)."""
    found: set[str] = set()
    nodes = _top_level(tree) if at_import_time else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "intercept")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("intercept"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in MODULES else str(node.module))
    return found


def _top_level(tree: ast.AST) -> list[ast.AST]:
    out: list[ast.AST] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        out.append(node)
        out.extend(_top_level(node))
    return out


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        _layer(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down(module: str) -> None:
    upward = [
        f"{target} ({LAYERS[_layer(target)][0]})"
        for target in sorted(_imports(MODULES[module], at_import_time=False))
        if _layer(target) > _layer(module)
    ]
    assert not upward, f"{module} ({LAYERS[_layer(module)][0]}) imports a layer above: {upward}"


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` (module -> the modules it imports), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = 1
        for target in sorted(graph.get(name, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target, [*path, target])):
                return found
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state and (found := visit(name, [name])):
            return found
    return None


def test_no_import_cycles() -> None:
    graph = {name: _imports(tree, at_import_time=True) - {name} for name, tree in MODULES.items()}
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checks_see_an_upward_import_and_a_cycle() -> None:
    """The checks on made-up modules: a lazy import of the server is seen (and is not one at
    import time), and a ring of three modules is a cycle."""
    upward = ast.parse("def f():\n    from intercept.server.serve import run\n")
    assert _imports(upward, at_import_time=False) == {"intercept.server.serve"}
    assert _imports(upward, at_import_time=True) == set()  # lazy: not at import time
    assert _layer("intercept.server.serve") > _layer("intercept.rules.ruleset")
    module_level = ast.parse("from intercept.rules import lexicon\nimport intercept.core\n")
    assert _imports(module_level, at_import_time=True) == {
        "intercept.rules.lexicon",
        "intercept.core",
    }
    ring = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycle(ring) == ["a", "b", "c", "a"]
    assert _cycle({**ring, "c": set()}) is None
