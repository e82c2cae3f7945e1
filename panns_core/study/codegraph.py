"""Which ``panns_core`` modules a piece of code imports, read with :mod:`ast` (nothing is executed).

Two users: the pipeline hashes the sources of every module a notebook reaches
into the stage fingerprint (so a fix to ``metrics.py`` reruns what depends on
it), and ``tests/test_import_graph.py`` checks that the package has no import
cycle. Every ``import`` statement counts, also those inside functions, and
relative imports are resolved against the importing module.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path
from typing import Iterable

PACKAGE = "panns_core"
PACKAGE_DIR = Path(__file__).resolve().parent.parent


def package_modules(package_dir: Path = PACKAGE_DIR, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> source file, for every ``.py`` file of the package."""
    modules = {}
    for path in sorted(Path(package_dir).rglob("*.py")):
        parts = list(path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join([package, *parts])] = path
    return modules


def imported_names(source: str, module: str | None = None, is_package: bool = False) -> list[str]:
    """Dotted names named by every import statement of ``source`` (any depth).

    ``from a import b`` yields ``a.b``: whether ``b`` is a submodule or an
    attribute of ``a`` is decided by :func:`resolve`, which knows the modules.
    Relative imports need ``module`` (the importer's dotted name).
    """
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                if module is None:
                    continue  # a relative import outside a package (e.g. a notebook) imports nothing of ours
                anchor = module.split(".")
                if not is_package:
                    anchor = anchor[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join(anchor + ([base] if base else []))
            names += [base if alias.name == "*" else f"{base}.{alias.name}" for alias in node.names]
    return names


def resolve(names: Iterable[str], modules: dict[str, Path]) -> set[str]:
    """The package modules among ``names`` (``a.b`` when it is a module, else ``a``: an attribute of it)."""
    found = set()
    for name in names:
        if name in modules:
            found.add(name)
        elif name.rpartition(".")[0] in modules:
            found.add(name.rpartition(".")[0])
    return found


def import_graph(package_dir: Path = PACKAGE_DIR, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package modules it imports directly (self-imports dropped)."""
    modules = package_modules(package_dir, package)
    graph = {}
    for name, path in modules.items():
        names = imported_names(path.read_text(), name, is_package=path.name == "__init__.py")
        graph[name] = resolve(names, modules) - {name}
    return graph


def _with_parents(name: str, modules: dict[str, Path]) -> set[str]:
    """Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & set(modules)


def closure(start: Iterable[str], graph: dict[str, set[str]], modules: dict[str, Path]) -> set[str]:
    """Every package module that importing ``start`` executes (parent packages included)."""
    seen: set[str] = set()
    todo = [m for name in start for m in _with_parents(name, modules)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for dep in graph.get(name, ()):
            todo += sorted(_with_parents(dep, modules) - seen)
    return seen


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (each one is an import cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:  # Tarjan; the package is small enough for recursion
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


def modules_used_by(source: str, package_dir: Path = PACKAGE_DIR, graph: dict[str, set[str]] | None = None) -> set[str]:
    """Package modules that running ``source`` (a notebook's code, a script) imports, transitively.

    ``graph`` (from :func:`import_graph`) saves re-reading the package when
    several notebooks are resolved in a row.
    """
    modules = package_modules(package_dir)
    graph = import_graph(package_dir) if graph is None else graph
    direct = resolve(imported_names(source), modules)
    return closure(direct, graph, modules)


def source_hash(module_names: Iterable[str], package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 over the named modules' names and source bytes (read fresh: edits count at once)."""
    modules = package_modules(package_dir)
    h = hashlib.sha256()
    for name in sorted(module_names):
        h.update(name.encode() + b"\0" + modules[name].read_bytes() + b"\0")
    return h.hexdigest()
