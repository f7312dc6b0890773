"""The folders are the architecture: imports point one way, and no module imports itself back.

Every ``import`` counts, the ones inside functions too: a lazy import is still a dependency (it
only hides a cycle until the day it runs).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import congruence

ROOT = Path(congruence.__file__).parent
# each package may import only the packages before it (and itself); one rank, no imports between
ORDER: tuple[frozenset[str], ...] = tuple(
    frozenset(rank.split())
    for rank in (
        "core",
        "store",
        "encoders ray",
        "indexer",
        "training",  # deploy keeps the head's derived space and index in step (indexer)
        "engagement",  # saved and versioned as the head is (training.lifecycle)
        "safety",  # the image screen names concepts as the engagement model does
        "search",
        "datasets",
        "api",
        "cli",  # serve starts the API
    )
)


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def _type_only(tree: ast.Module) -> set[ast.AST]:
    """The nodes under ``if TYPE_CHECKING:``: imports for annotations, never run."""
    return {
        n
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
        for stmt in node.body
        for n in ast.walk(stmt)
    }


def _imports(path: Path, annotations: bool = True) -> set[str]:
    """The congruence modules (or packages) ``path`` imports, anywhere in it (with
    ``annotations``, those under ``if TYPE_CHECKING:`` too)."""
    out: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = set() if annotations else _type_only(tree)
    for node in ast.walk(tree):
        if node in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("congruence."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("congruence"):
            for a in node.names:  # `from congruence.store import records` imports a module
                sub = f"{node.module}.{a.name}"
                where = ROOT.parent / Path(*sub.split("."))
                is_module = where.with_suffix(".py").exists() or (where / "__init__.py").exists()
                out.add(sub if is_module else node.module)
    return out


def _rank(module: str) -> int | None:
    top = module.split(".")[1] if module.count(".") else ""
    return next((i for i, r in enumerate(ORDER) if top in r), None)


def test_every_package_has_a_rank() -> None:
    tops = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert tops == set().union(*ORDER)


def test_imports_point_one_way() -> None:
    wrong = []
    for module, path in _modules():
        mine = _rank(module)
        if mine is None:  # congruence/__init__.py, __main__.py: the entry points
            continue
        for dep in _imports(path):
            if dep == "congruence":  # the package itself: what a module needs has its own name
                wrong.append(f"{module} imports congruence")
            theirs = _rank(dep)
            if theirs is not None and dep.split(".")[1] != module.split(".")[1] and theirs >= mine:
                wrong.append(f"{module} imports {dep}")
    assert wrong == []


def test_no_import_cycles() -> None:
    # an import for annotations only never runs, so it cannot close a cycle
    graph = {module: {d for d in _imports(path, annotations=False) if d != module} for module, path in _modules()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, trail: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                cycles.append([*trail[trail.index(d) :], d])
            elif d not in state:
                visit(d, [*trail, d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == []
