"""No import cycles inside the package, function-local imports included (they hide a cycle, not remove it)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# folder → import name, as pyproject.toml's package-dir maps them
FOLDERS = {"mobiledeploy": "mobiledeploy", "models": "mobiledeploy.models", "exporters": "mobiledeploy.exporters",
           "devicebench": "mobiledeploy.devicebench"}
# The Core ML interpreter's op modules register themselves into its registry, which imports them to fill it:
# the registry pattern the architecture allows (coremltools' op registry works the same way).
ALLOWED = {"mobiledeploy.exporters.mlinterp"}


def _modules() -> dict[str, Path]:
    mods = {}
    for folder, name in FOLDERS.items():
        for p in (ROOT / folder).rglob("*.py"):
            rel = p.relative_to(ROOT / folder).with_suffix("")
            parts = [] if rel.parts == ("__init__",) else list(rel.parts)
            if parts and parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join([name, *parts])] = p
    return mods


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Package modules `name` imports anywhere in its file (resolved: relative imports, `from pkg import mod`)."""
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text())
    # Imports under `if TYPE_CHECKING:` never run: type names only.
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", getattr(block.test, "attr", None)) == "TYPE_CHECKING"
                   for stmt in block.body for n in ast.walk(stmt)}
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:  # `import a.b.c` imports a.b.c; a missing leaf is an attribute
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph = {m: _imports(m, p, set(mods)) for m, p in mods.items()}
    # A package's __init__ importing its own submodules is how a package exposes them, not a cycle.
    return {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}


def test_no_import_cycles():
    bad = [c for c in _cycles(_graph()) if not all(any(m.startswith(a) for a in ALLOWED) for m in c)]
    assert not bad, "import cycles: " + "; ".join(" ↔ ".join(c) for c in bad)


def test_the_cycle_check_sees_function_local_imports(tmp_path):
    """The checker finds a cycle closed only by an import inside a function (the kind that hid the old one)."""
    a = tmp_path / "a.py"
    a.write_text("import x.b\n")
    b = tmp_path / "b.py"
    b.write_text("def f():\n    from x import a\n")
    known = {"x.a", "x.b"}
    graph = {"x.a": _imports("x.a", a, known), "x.b": _imports("x.b", b, known)}
    assert _cycles(graph) == [["x.a", "x.b"]]
