"""The package's shape: no import cycle, and imports run one way (docs/design.md, "Layout").

Every import of a vidtldr_deploy module counts, at module level or inside a function: a function-level
import only hides a cycle until the function runs."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "vidtldr_deploy"

# Lower layers never import higher ones (equal ranks may import each other, without cycles).
LAYERS = {
    "errors": 0, "constants": 0, "files": 0,
    "core": 1,
    "models": 2, "clips": 2,
    "export": 3,
    "runtime": 4,
    "target": 5, "validate": 5, "profile": 5,
    "evaluate": 6, "tune": 6, "pipelines": 6, "serve": 6,
    "report": 7,
    "cli": 8,
}  # fmt: skip


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1]
                    + ([base] if base else [])
                )
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("vidtldr_deploy"):
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph = {name: _imports(path, name, known) for name, path in modules.items()}
    # `from vidtldr_deploy.x import y` names the package x when y is not a module: keep only the
    # most specific module per import (the package __init__ is an edge only when it is the target).
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def _package_edges(graph):
    """Edges to a package's own __init__ from inside it are how packages re-export: not cycles."""
    return {
        a: {
            b
            for b in targets
            if not (
                a.startswith(b + ".")
                and (PACKAGE.parent / b.replace(".", "/") / "__init__.py").exists()
            )
        }
        for a, targets in graph.items()
    }


def test_no_import_cycle():
    assert _cycles(_package_edges(_graph())) == []


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_folder_has_a_layer():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    files = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert (folders | files) - set(LAYERS) == set()


def test_imports_run_one_way():
    upward = []
    for module, targets in _graph().items():
        mine = _layer(module)
        for target in targets:
            theirs = _layer(target)
            if mine is not None and theirs is not None and theirs > mine:
                upward.append(f"{module} -> {target}")
    assert upward == []
