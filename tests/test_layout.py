"""The package's layout: no module of aiwf_assets imports itself back through others."""

import ast
from pathlib import Path

import aiwf_assets

PACKAGE_ROOT = Path(aiwf_assets.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def local_imports(path: Path, modules: set[str]) -> set[str]:
    """The aiwf_assets modules `path` imports, wherever the import statement is (a deferred
    import inside a function still closes a cycle when that function runs)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importing module's package
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            for alias in node.names:  # `from pkg import module` imports the module itself
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {name for name in found if name in modules and name != module_name(path)}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE_ROOT.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): local_imports(p, modules) for p in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}  # "open" while on the DFS stack, "done" after
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def domain_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same imports between top-level modules and packages (`aiwf_assets.ml`, ...)."""

    def top(name: str) -> str:
        return ".".join(name.split(".")[:2])

    domains: dict[str, set[str]] = {}
    for module, imported in graph.items():
        domains.setdefault(top(module), set()).update(
            top(name) for name in imported if top(name) != top(module)
        )
    return domains


def test_no_import_cycles_among_aiwf_assets_modules() -> None:
    graph = import_graph()
    assert graph["aiwf_assets.ingest.assets"] >= {"aiwf_assets.ingest.landing"}  # edges are seen
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_import_cycles_between_domains() -> None:
    """Landing code is one domain's (ingest), resources one module's: automation may use
    ingest, ml may use resources, never both ways."""
    domains = domain_graph(import_graph())
    assert "aiwf_assets.ingest" in domains["aiwf_assets.automation"]
    cycle = find_cycle(domains)
    assert cycle is None, "import cycle between domains: " + " -> ".join(cycle or [])


# the entry points that read the settings at import: the code location and the dbt packaging
ENTRY_POINTS = {"aiwf_assets.definitions", "aiwf_assets.marts.prepare"}
NO_SETTINGS_AT_IMPORT = """
import importlib, json, sys
import aiwf_assets.settings as settings

def refuse():
    raise RuntimeError("get_settings() called at import")

settings.get_settings = refuse
failures = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except Exception as exc:
        failures[name] = repr(exc)
print(json.dumps(failures))
"""


def test_no_module_reads_the_settings_at_import() -> None:
    """Only the entry points read the settings when imported: everything else (partitions,
    sources, assets, thresholds) is built from a Settings value by `build_definitions`, so
    import order does not matter and two Settings give two independent Definitions."""
    import json
    import subprocess
    import sys

    modules = sorted(set(import_graph()) - ENTRY_POINTS)
    assert "aiwf_assets.partitions" in modules and "aiwf_assets.cleaning.assets" in modules

    def imports_failing(names: list[str]) -> dict[str, str]:
        done = subprocess.run(
            [sys.executable, "-c", NO_SETTINGS_AT_IMPORT, json.dumps(names)],
            capture_output=True, text=True, check=True, cwd=PACKAGE_ROOT.parent,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])

    failing = imports_failing([*modules, "aiwf_assets.definitions"])
    assert list(failing) == ["aiwf_assets.definitions"]  # the check can fail
    assert "get_settings() called at import" in failing["aiwf_assets.definitions"]
