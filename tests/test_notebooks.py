"""Every notebook in notebooks/ is executed by papermill with tiny parameters.

The executions are those of the tiny profile's end-to-end run (shared with
test_study_workflow.py, see tests/tiny_pipeline.py): a notebook that the tiny profile
does not execute fails here, so a new notebook cannot slip in untested.
"""

import json
import os
from pathlib import Path

import nbformat
import pytest

from panns_core.study import jobs
from panns_core.study.profiles import declared_parameters
from tiny_pipeline import tiny_run

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb"))
COMMON = {"profile", "run_root", "figures_dir"}


def test_there_are_notebooks_for_every_stage():
    for stem in ("00_environment_and_data", "01_download_audioset", "02_pack_and_index", "03_train_system",
                 "04_evaluate_system", "10_tables_audioset", "11_table_complexity", "19_build_report"):
        assert stem in NOTEBOOKS


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_notebook_conventions(stem):
    """Tagged parameters cell first (with the shared parameters), narrative next, no outputs committed."""
    nb = nbformat.read(str(REPO / "notebooks" / f"{stem}.ipynb"), as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "code" and "parameters" in first.metadata.get("tags", [])
    assert COMMON <= declared_parameters(str(REPO / "notebooks" / f"{stem}.ipynb"))
    assert nb.cells[1].cell_type == "markdown"
    text = " ".join(c.source for c in nb.cells if c.cell_type == "markdown").lower()
    assert "what the paper did" in text and "what we do" in text and "where we differ" in text
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{stem}: committed with outputs"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_run(tmp_path_factory)


EXECUTED_ELSEWHERE = {
    # the released profile's notebooks need a Zenodo-shaped server and a Hub-mirror copy (fixtures)
    "08_score_released_checkpoints": "tests/test_released_profile.py",
    "16_released_tables_figures": "tests/test_released_profile.py",
}


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_notebook_executes_with_tiny_parameters(tiny, stem):
    if stem in EXECUTED_ELSEWHERE:
        pytest.skip(f"executed end to end by {EXECUTED_ELSEWHERE[stem]}")
    root, result, _, log = tiny
    stages = [s for s in result.plan["stages"] if s["notebook"] == stem]
    assert stages, f"{stem} is not executed by the tiny profile: add it to panns_core/profiles/tiny.yaml"
    for stage in stages:
        rec = json.loads((root / "runs" / "tiny" / "stages" / f"{stage['name']}.json").read_text())
        assert rec["status"] == "completed", f"{stage['name']}: {rec.get('error')}"
        executed = nbformat.read(jobs.output_notebook(str(root / "runs" / "tiny"), stage), as_version=4)
        injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and "run_root = \"runs/tiny\"" in injected[0].source
        errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, f"{stem}: {errors[0]['ename']}: {errors[0]['evalue']}"
        assert os.path.getsize(jobs.output_notebook(str(root / "runs" / "tiny"), stage)) > 0
