"""Dependencies inside panns_core point one way: train and evaluate share panns_core.runtime.

Every import is read from the source (including those inside functions), so a
lazy import cannot hide a cycle.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "panns_core"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def reaches(graph: dict, start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        for dep in graph.get(node, ()):
            if dep == goal:
                return True
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return False


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "panns_core.data.reader" in graph["panns_core.train"]  # imported inside build_run_data


def test_train_and_evaluate_are_in_no_import_cycle():
    graph = import_graph()
    for module in ("panns_core.train", "panns_core.evaluate", "panns_core.runtime"):
        assert not reaches(graph, module, module), f"{module} imports itself through a cycle"
    assert not reaches(graph, "panns_core.evaluate", "panns_core.train")
    assert graph["panns_core.runtime"] == set()
