"""Notebooks are their own source: each is a jupytext pair kept in sync and without outputs.

``notebooks/NN_name.py`` (py:percent) is what git reviews and what runs as a
script; ``notebooks/NN_name.ipynb`` is what JupyterLab opens and papermill
executes. Saving in JupyterLab (jupytext installed) writes both; these tests
fail when one was edited without the other, or when outputs were committed.
"""

from pathlib import Path

import jupytext
import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
STEMS = sorted({p.stem for p in NOTEBOOKS.glob("*.ipynb")} | {p.stem for p in NOTEBOOKS.glob("*.py")})


def _cells(notebook):
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in notebook.cells]


def test_the_pairing_is_configured_at_the_repository_root():
    text = (REPO / "jupytext.toml").read_text()
    assert 'formats = "ipynb,py:percent"' in text


@pytest.mark.parametrize("stem", STEMS)
def test_pair_exists_and_is_in_sync(stem):
    ipynb, script = NOTEBOOKS / f"{stem}.ipynb", NOTEBOOKS / f"{stem}.py"
    assert ipynb.exists() and script.exists(), f"{stem}: both {ipynb.name} and {script.name} must be committed"
    from_ipynb = jupytext.read(ipynb)
    from_script = jupytext.read(script, fmt="py:percent")
    assert _cells(from_ipynb) == _cells(from_script), (
        f"{stem}: {ipynb.name} and {script.name} differ; run `jupytext --sync notebooks/{script.name}`")


@pytest.mark.parametrize("stem", STEMS)
def test_ipynb_carries_no_outputs(stem):
    notebook = jupytext.read(NOTEBOOKS / f"{stem}.ipynb")
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, (
                f"{stem}.ipynb: committed with outputs; clear them (Edit > Clear Outputs of All Cells)")


@pytest.mark.parametrize("stem", STEMS)
def test_every_notebook_has_parameters_and_the_paper_cell(stem):
    notebook = jupytext.read(NOTEBOOKS / f"{stem}.py", fmt="py:percent")
    assert any("parameters" in c.metadata.get("tags", []) for c in notebook.cells if c.cell_type == "code")
    markdown = [c.source.lower() for c in notebook.cells if c.cell_type == "markdown"]
    assert any("what the paper did" in m and "what we do" in m and "where we differ" in m for m in markdown), (
        f"{stem}: needs the 'What the paper did / What we do / Where we differ' markdown cell")


def test_no_notebook_generator_scripts():
    assert not (REPO / "tools").exists() or not list((REPO / "tools").glob("build_*notebook*.py"))


@pytest.mark.parametrize("stem", STEMS)
def test_every_notebook_names_the_project_kernel(stem):
    """papermill and JupyterLab pick the kernel from the notebook's kernelspec."""
    assert jupytext.read(NOTEBOOKS / f"{stem}.ipynb").metadata.get("kernelspec", {}).get("name") == "python3"
