"""The import structure: core at the bottom, the board agent on core alone, no new import cycles.

Imports are read from the source (every `import` and `from ... import`, inside functions too), so
a lazy import counts as much as one at the top of a file.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "splitter", "orchestrator", "board_agent", "cli")
# The stack, bottom up (docs/architecture.md): a package imports only packages on lower floors. The
# board agent and the splitter share a floor and import neither each other nor anything above.
FLOOR = {"core": 0, "board_agent": 1, "splitter": 1, "orchestrator": 2, "cli": 3}
# Imports that run up the stack today and are to go. A new one fails.
KNOWN_UPWARD: set[tuple[str, str]] = set()
# What a board has besides the standard library (board_agent/, docs/board-setup.md).
BOARD_THIRD_PARTY = {"aiomqtt", "yaml"}
# Cycles between files that exist today and are to go. A new one fails.
KNOWN_CYCLES: list[set[str]] = []
# The manifest is read and written by core.manifest alone (docs/bundle.md#reading-and-writing-a-manifest);
# everyone else uses its types' attributes. A JSON key read of a manifest outside it:
MANIFEST_KEY_READ = re.compile(r'manifest(\.get\(|\[")|\["partitions"\]|\.get\("partitions"')


def _module_of(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _files() -> dict[str, Path]:
    return {_module_of(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}


def _imports(path: Path, module: str) -> set[str]:
    """Every module name `path` imports (absolute; relative imports resolved)."""
    out: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def _graph() -> dict[str, set[str]]:
    """File -> the files of this repository it imports."""
    files = _files()
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets = {name for name in _imports(path, module) if name in files and name != module}
        graph[str(path.relative_to(REPO))] = {str(files[t].relative_to(REPO)) for t in targets}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one file (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[set[str]] = []
    sys.setrecursionlimit(10_000)

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_core_imports_nothing_above_it() -> None:
    for module, path in _files().items():
        if module.split(".")[0] == "core":
            ours = {n.split(".")[0] for n in _imports(path, module)} & set(PACKAGES)
            assert ours <= {"core"}, f"{path.relative_to(REPO)} imports {sorted(ours - {'core'})}"


def test_the_board_agent_stands_on_core_alone() -> None:
    allowed = {"core", "board_agent", *BOARD_THIRD_PARTY, *sys.stdlib_module_names}
    for module, path in _files().items():
        if module.split(".")[0] == "board_agent":
            tops = {n.split(".")[0] for n in _imports(path, module) if n}
            assert tops <= allowed, f"{path.relative_to(REPO)} imports {sorted(tops - allowed)}"


def test_nothing_imports_up_the_stack() -> None:
    upward = set()
    for module, path in _files().items():
        here = module.split(".")[0]
        for name in _imports(path, module):
            there = name.split(".")[0]
            if there in FLOOR and there != here and FLOOR[there] >= FLOOR[here]:
                upward.add((str(path.relative_to(REPO)), there))
    assert upward <= KNOWN_UPWARD, f"imports up the stack: {sorted(upward - KNOWN_UPWARD)}"


def test_only_the_board_agent_imports_the_board_agent() -> None:
    """What the laptop and a board share is in core; the agent is what only a board runs."""
    for module, path in _files().items():
        if module.split(".")[0] != "board_agent":
            tops = {n.split(".")[0] for n in _imports(path, module)}
            assert "board_agent" not in tops, f"{path.relative_to(REPO)} imports the board agent"


def test_no_import_cycle_beyond_the_known_ones() -> None:
    for cycle in _cycles(_graph()):
        assert any(cycle <= known for known in KNOWN_CYCLES), f"a new import cycle: {sorted(cycle)}"


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def _outside_core_manifest() -> dict[str, Path]:
    files = {str(p.relative_to(REPO)): p for p in _files().values()}
    files.update({str(p.relative_to(REPO)): p for p in (REPO / "benchmarks").rglob("*.py")})
    return {rel: p for rel, p in files.items() if not rel.startswith("core/manifest/")}


def test_nothing_outside_core_reads_manifest_json_keys() -> None:
    readers = {rel for rel, path in _outside_core_manifest().items() if MANIFEST_KEY_READ.search(path.read_text())}
    assert not readers, f"read the manifest's attributes, not its JSON keys: {sorted(readers)}"


def _writes_a_manifest(tree: ast.AST) -> bool:
    """True if a call writes a file whose path or arguments name manifest.json (or MANIFEST), or serialises
    something called `manifest` (json.dump, json.dumps)."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in ("dump", "dumps") and any(isinstance(sub, ast.Name) and "manifest" in sub.id.lower()
                                             for arg in node.args[:1] for sub in ast.walk(arg)):
            return True
        if name not in ("write_text", "write_bytes", "open", "replace", "rename", "dump"):
            continue
        if name == "open" and not any(isinstance(a, ast.Constant) and str(a.value).startswith(("w", "a"))
                                      for a in [*node.args[1:], *(k.value for k in node.keywords)]):
            continue
        parts = [func.value] if isinstance(func, ast.Attribute) else []
        for part in [*parts, *node.args]:
            for sub in ast.walk(part):
                if (isinstance(sub, ast.Constant) and sub.value == "manifest.json") or \
                        (isinstance(sub, ast.Name) and sub.id == "MANIFEST"):
                    return True
    return False


def test_one_manifest_writer() -> None:
    writers = {rel for rel, path in _outside_core_manifest().items() if _writes_a_manifest(ast.parse(path.read_text()))}
    assert not writers, f"manifest.json is written by core.manifest.write_manifest alone: {sorted(writers)}"
    assert _writes_a_manifest(ast.parse('(root / "manifest.json").write_text(text)'))
    assert _writes_a_manifest(ast.parse('open(root / MANIFEST, "w")'))
    assert _writes_a_manifest(ast.parse('path.write_text(json.dumps(manifest, indent=2))'))
    assert not _writes_a_manifest(ast.parse('json.loads((root / "manifest.json").read_text())'))
