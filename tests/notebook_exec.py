"""Run a notebook's code in this process with chosen parameters (no kernel), for tests of its tables/figures.

The py:percent file is read with jupytext; its parameters cell runs first, then
the given parameters override it (as papermill's injected cell does), then every
other code cell in order. Returns the notebook's namespace, so a test can look
at the DataFrames and matplotlib figures it built. ``solutions=True`` first
replaces every exercise cell by its solution (course/solutions/<stem>.py).
"""

from __future__ import annotations

from pathlib import Path

import jupytext

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def run_notebook(stem: str, *, solutions: bool = False, **parameters) -> dict:
    from IPython.display import display

    nb = jupytext.read(NOTEBOOKS / f"{stem}.py")
    if solutions:
        from panns_core.study.exercises import with_solutions

        nb = with_solutions(nb, stem)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    namespace: dict = {"__name__": "__main__", "display": display}
    assert "parameters" in cells[0].metadata.get("tags", []), f"{stem}: first code cell is not the parameters cell"
    exec(compile(cells[0].source, f"{stem}:parameters", "exec"), namespace)
    unknown = set(parameters) - set(namespace)
    assert not unknown, f"{stem} declares no parameter(s) {sorted(unknown)}"
    namespace.update(parameters)
    for i, cell in enumerate(cells[1:], 1):
        exec(compile(cell.source, f"{stem}:cell{i}", "exec"), namespace)
    return namespace
