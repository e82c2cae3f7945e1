"""Every teaching notebook has exercises with checks; each check fails blank and passes with its solution.

Blank: the tiny profile's pipeline executes the committed (student) notebooks; every check
cell there must report "not done" (03's checks run in its training stages too). Solved:
each notebook runs in this process with every student cell replaced by its solution from
``course/solutions/`` and ``PANNS_EXERCISES=strict`` (a check that does not pass raises),
with the tiny profile's parameters and outputs written to a temporary folder.
"""

import json
import os
import shutil
from pathlib import Path

import jupytext
import nbformat
import pytest

from panns_core.study import exercises as E
from panns_core.study.course import load_course
from panns_core.study.profiles import stage_name_for
from notebook_exec import run_notebook
from tiny_pipeline import tiny_run

REPO = Path(__file__).resolve().parent.parent
TEACHING = load_course().with_exercises


def _notebook(stem):
    return jupytext.read(REPO / "notebooks" / f"{stem}.py")


@pytest.mark.parametrize("stem", TEACHING)
def test_every_exercise_has_a_check_after_it_and_a_solution(stem):
    nb = _notebook(stem)
    ids = E.exercises_of(nb)
    assert ids and None not in ids, f"{stem}: needs an exercise cell opening with '# Exercise NN.k: ...'"
    assert all(i.startswith(stem[:2] + ".") for i in ids) and len(set(ids)) == len(ids)
    assert E.checks_of(nb) == ids, f"{stem}: one check cell per exercise, in the same order"
    cells = [c for c in nb.cells if c.cell_type == "code"]
    for ident in ids:
        student = next(i for i, c in enumerate(cells) if E.exercise_id(c.source) == ident)
        assert "check" in cells[student + 1].metadata.get("tags", []), f"{stem}: exercise {ident}'s check must follow it"
        assert "NotImplementedError" in cells[student].source or "..." in cells[student].source
    assert set(E.read_solutions(stem)) == set(ids), f"{stem}: course/solutions/{stem}.py must solve exactly {ids}"


def test_every_solutions_file_belongs_to_a_teaching_notebook():
    assert sorted(p.stem for p in E.SOLUTIONS_DIR.glob("*.py")) == sorted(TEACHING)


def test_check_reports_not_done_wrong_and_passed_and_strict_mode_raises(monkeypatch):
    monkeypatch.delenv(E.STRICT_ENV, raising=False)
    with E.check("99.1"):
        raise NotImplementedError
    assert E.RESULTS["99.1"] == E.NOT_DONE
    with E.check("99.2") as result:
        assert 1 + 1 == 3, "one plus one is two"
    assert result.status == E.WRONG
    with E.check("99.3"):
        assert E.answered(4) == 4
    assert E.RESULTS["99.3"] == E.PASSED
    with pytest.raises(ZeroDivisionError):  # a bug in the answer is shown, not swallowed
        with E.check("99.4"):
            1 / 0
    monkeypatch.setenv(E.STRICT_ENV, "strict")
    with pytest.raises(E.ExerciseFailed, match="99.5: not done yet"):
        with E.check("99.5"):
            E.answered(...)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_run(tmp_path_factory)


def _executed(root, stem):
    name = "train_base" if stem == "03_train_system" else stage_name_for(stem)
    return root / "runs" / "tiny" / "notebooks" / f"{stem[:2]}_{name}.ipynb"


@pytest.mark.parametrize("stem", TEACHING)
def test_blank_exercises_fail_their_checks(tiny, stem):
    root = tiny[0]
    executed = nbformat.read(_executed(root, stem), as_version=4)
    statuses = {o["metadata"]["exercise"]["id"]: o["metadata"]["exercise"]["status"]
                for c in executed.cells if "check" in c.metadata.get("tags", [])
                for o in c.get("outputs", []) if "exercise" in o.get("metadata", {})}
    assert statuses == {i: E.NOT_DONE for i in E.exercises_of(_notebook(stem))}


def _solved_parameters(stem, root, tmp):
    record = json.loads((root / "runs" / "tiny" / "stages" / f"{'train_base' if stem.startswith('03') else stage_name_for(stem)}.json").read_text())
    params = dict(record["parameters"])
    params["run_root"] = str(tmp / "runs")
    if stem.startswith(("01", "02")):  # they make data: a fresh corpus of the tiny profile's size
        params["data_root"] = str(tmp / "data")
    if stem.startswith("03"):
        params.update(run_name=None, config={}, lesson={"iterations": 2, "eval_every": 1})
    if stem.startswith("04"):
        shutil.copytree(root / "runs" / "tiny" / "train" / "base", tmp / "runs" / "train" / "base")
    if stem.startswith("07"):
        params["seconds"] = 2.0
    if stem.startswith("20"):
        params.update(strategies=["freeze_l1"], shots=["all"], checkpoint=str(root / params["checkpoint"]))
    return params


@pytest.mark.parametrize("stem", TEACHING)
def test_solved_exercises_pass_their_checks(tiny, stem, tmp_path, monkeypatch):
    root = tiny[0]
    monkeypatch.chdir(root)  # the notebooks' relative paths (data/tiny ...) are the pipeline's
    monkeypatch.setenv(E.STRICT_ENV, "strict")
    E.RESULTS.clear()
    if stem.startswith("02"):  # 02 packs what 01 makes
        run_notebook("01_download_audioset", solutions=True, **_solved_parameters("01_download_audioset", root, tmp_path))
    run_notebook(stem, solutions=True, **_solved_parameters(stem, root, tmp_path))
    ids = E.exercises_of(_notebook(stem))
    assert {i: E.RESULTS.get(i) for i in ids} == {i: E.PASSED for i in ids}
