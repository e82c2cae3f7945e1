"""Notebooks are their own source: each is a jupytext pair kept in sync and without outputs.

``notebooks/NN_name.py`` (py:percent) is what git reviews and what runs as a
script; ``notebooks/NN_name.ipynb`` is what JupyterLab opens and papermill
executes. Saving in JupyterLab (jupytext installed) writes both; these tests
fail when one was edited without the other, or when outputs were committed.
"""

import re
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


TEACHING = __import__("panns_core.study.course", fromlist=["load_course"]).load_course().with_exercises
FRAMED = sorted(set(TEACHING) | {"21_transfer_tables_figures"})


def _paper_paragraph(stem) -> str:
    text = "\n".join(c.source for c in jupytext.read(NOTEBOOKS / f"{stem}.py", fmt="py:percent").cells
                     if c.cell_type == "markdown")
    start = text.index("**What the paper did.**")
    return text[start:text.index("**What we do.**", start)]


@pytest.mark.parametrize("stem", FRAMED)
def test_teaching_notebooks_have_the_course_frame(stem):
    """You will learn (first), What to notice, Questions (last): docs/course.md."""
    markdown = [c.source for c in jupytext.read(NOTEBOOKS / f"{stem}.py", fmt="py:percent").cells
                if c.cell_type == "markdown"]
    assert "**You will learn**" in markdown[0], f"{stem}: the first markdown cell opens with 'You will learn'"
    assert any("**What to notice.**" in m for m in markdown), f"{stem}: needs a 'What to notice' paragraph"
    assert "## Questions" in markdown[-1], f"{stem}: its last markdown cell holds the questions (## Questions)"


# Choices of the official code that the paper does not state (or states otherwise): they belong under
# "What we do", never in "What the paper did" (the paper's text says Hamming, gives no Beta parameter ...).
OFFICIAL_CODE_ONLY = ("Beta(1", "Hann", "amsgrad", "scikit-learn", "youtube-dl", "yt-dlp", "HDF5", "2 x 32",
                      "64 frames", "every 2,000", "after each block")


@pytest.mark.parametrize("stem", FRAMED)
def test_what_the_paper_did_says_only_what_the_paper_says(stem):
    paragraph = _paper_paragraph(stem)
    found = [term for term in OFFICIAL_CODE_ONLY
             if re.search(r"(?<!\w)" + re.escape(term.lower()) + r"(?!\w)", paragraph.lower())]
    assert not found, f"{stem}: 'What the paper did' names the official code's {found}; move them to 'What we do'"
