"""Every notebook's parameters cell is readable by papermill, line by line.

papermill silently drops a parameter whose line it cannot parse (e.g. a comment
containing '=' or ';') and then warns that the value passed for it is unknown.
"""

import ast
import glob
import os

import nbformat
import papermill as pm
import pytest

NOTEBOOKS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "notebooks", "*.ipynb")))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_every_parameter_is_seen_by_papermill(path):
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assigned = {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    assert assigned, "the parameters cell assigns nothing"
    assert set(pm.inspect_notebook(path)) == assigned
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "committed with outputs"
