"""No import cycle in panns_core: every import counts, also those inside functions and relative ones."""

from __future__ import annotations

import textwrap

import pytest

from panns_core.study import codegraph

def test_panns_core_has_no_import_cycle():
    cycles = codegraph.find_cycles(codegraph.import_graph())
    assert not cycles, "import cycle(s) in panns_core: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_train_and_evaluate_share_runtime_helpers_not_each_other():
    graph = codegraph.import_graph()
    assert "panns_core.train" not in graph["panns_core.evaluate"]
    assert "panns_core.data.reader" in graph["panns_core.train"]  # imported inside build_run_data


def test_released_table_and_registry_point_one_way():
    graph = codegraph.import_graph()
    assert graph["panns_core.released"] == set()  # data only
    assert "panns_core.released" in graph["panns_core.models.registry"]
    assert "panns_core.released" in graph["panns_core.checkpoints"]
    models = {m for m in graph if m == "panns_core.models" or m.startswith("panns_core.models.")}
    assert all("panns_core.checkpoints" not in graph[m] for m in models)


def _write_package(root, files: dict[str, str]):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "panns_core"


def test_cycle_through_an_import_inside_a_function_is_found(tmp_path):
    pkg = _write_package(tmp_path, {
        "panns_core/__init__.py": "",
        "panns_core/a.py": "from panns_core.b import f\n",
        "panns_core/b.py": "def f():\n    from panns_core import a\n    return a\n",
        "panns_core/c.py": "import panns_core.a\n",
    })
    graph = codegraph.import_graph(pkg)
    assert graph["panns_core.c"] == {"panns_core.a"}
    assert codegraph.find_cycles(graph) == [["panns_core.a", "panns_core.b"]]


def test_relative_imports_resolve_to_modules_not_to_the_parent_package(tmp_path):
    pkg = _write_package(tmp_path, {
        "panns_core/__init__.py": "",
        "panns_core/sub/__init__.py": "from .reg import build\n",
        "panns_core/sub/reg.py": "from . import leaf\nfrom ..top import VALUE\n",
        "panns_core/sub/leaf.py": "def g():\n    from .reg import build\n",
        "panns_core/top.py": "VALUE = 1\n",
    })
    graph = codegraph.import_graph(pkg)
    assert graph["panns_core.sub"] == {"panns_core.sub.reg"}
    assert graph["panns_core.sub.reg"] == {"panns_core.sub.leaf", "panns_core.top"}
    # `from . import leaf` is not a dependency on sub/__init__, so no false cycle sub <-> reg;
    # leaf's in-function import of reg is a real cycle.
    assert codegraph.find_cycles(graph) == [["panns_core.sub.leaf", "panns_core.sub.reg"]]


@pytest.mark.parametrize("source, expected", [
    ("from panns_core.metrics import audio_tagging_metrics", {"panns_core", "panns_core.metrics"}),
    ("import panns_core.sub.leaf as leaf", {"panns_core", "panns_core.sub", "panns_core.sub.leaf",
                                            "panns_core.sub.reg", "panns_core.top"}),
    ("import numpy\nfrom .local import x", set()),
])
def test_modules_used_by_follows_imports_transitively(tmp_path, source, expected):
    pkg = _write_package(tmp_path, {
        "panns_core/__init__.py": "",
        "panns_core/metrics.py": "import numpy\n",
        "panns_core/sub/__init__.py": "from .reg import build\n",
        "panns_core/sub/reg.py": "from ..top import VALUE\n",
        "panns_core/sub/leaf.py": "",
        "panns_core/top.py": "",
    })
    assert codegraph.modules_used_by(source, pkg) == expected
