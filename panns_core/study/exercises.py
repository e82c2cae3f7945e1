"""Exercises with checks: the convention of the course notebooks (see docs/course.md).

An exercise is two cells of a notebook and one cell of its solutions file:

* the **student cell** (cell tag ``exercise``) opens with ``# Exercise 06.1: <what to do>``
  and holds a stub: a function whose body is ``raise NotImplementedError`` or a value
  left as ``...``;
* the **check cell** (tag ``check``) is a ``with check("06.1"):`` block of plain
  ``assert`` statements that compare the answer with the library, the data or
  scikit-learn, each assert with a message that says what is wrong and what to look at;
* the **solution** is the cell of ``course/solutions/<notebook>.py`` that opens with
  the same ``# Exercise 06.1`` line (outside ``notebooks/``, so students working in
  JupyterLab do not see it unless they look for it).

This is the nbgrader / otter-grader scheme without a generated student copy: the
committed notebooks *are* the student version, the solutions live beside them.

A check never stops "Run All" for an exercise still blank: it shows "not done yet"
(with the hint) and the notebook goes on, so the pipeline and the course site can
execute the blank notebooks. A wrong answer shows what is wrong. Set
``PANNS_EXERCISES=strict`` to make both raise instead (grading, and the test that
runs every solution). Every result is also kept in :data:`RESULTS` and in the output's
metadata (``{"exercise": {"id", "status"}}``) for tests and graders.

``python -m panns_core.study.exercises solve notebooks/06_metrics.ipynb out.ipynb``
writes a copy with the solutions filled in (a teacher's copy).
"""

from __future__ import annotations

import html
import os
import re
import sys
from pathlib import Path

EXERCISE_TAG = "exercise"
CHECK_TAG = "check"
STRICT_ENV = "PANNS_EXERCISES"
EXERCISE_LINE = re.compile(r"^#\s*Exercise\s+(\d\d\.\d+)\b")
CHECK_CALL = re.compile(r"""check\(\s*["'](\d\d\.\d+)["']""")
SOLUTIONS_DIR = Path(__file__).resolve().parents[2] / "course" / "solutions"

PASSED, NOT_DONE, WRONG = "passed", "not done", "wrong"
RESULTS: dict[str, str] = {}
"""Exercise id -> status of its last check in this process."""


class NotDone(Exception):
    """The exercise is still blank."""


class ExerciseFailed(AssertionError):
    """Strict mode: a check did not pass."""


def answered(value):
    """``value`` unless it is still the blank ``...`` (then the check says "not done yet")."""
    if value is Ellipsis:
        raise NotDone("the answer is still `...`")
    return value


def _strict() -> bool:
    return os.environ.get(STRICT_ENV, "").lower() == "strict"


def _show(exercise: str, status: str, text: str) -> None:
    colour = {PASSED: "#1b7f3b", NOT_DONE: "#8a6d00", WRONG: "#b00020"}[status]
    mark = "✓" if status == PASSED else "✗"
    plain = f"{mark} Exercise {exercise}: {text}"
    metadata = {"exercise": {"id": exercise, "status": status}}
    try:
        from IPython.display import display

        display({"text/plain": plain,
                 "text/html": f'<div style="border-left:4px solid {colour};padding:4px 10px">'
                              f"<b>{mark} Exercise {html.escape(exercise)}</b>: {html.escape(text)}</div>"},
                raw=True, metadata=metadata)
    except ImportError:  # pragma: no cover - IPython is a dependency
        print(plain)


class check:  # noqa: N801 - used as ``with check("06.1"):``, like a statement
    """Context manager around an exercise's asserts; see the module docstring."""

    def __init__(self, exercise: str, hint: str = ""):
        self.exercise, self.hint = exercise, hint
        self.status: str | None = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        hint = f" Hint: {self.hint}" if self.hint else ""
        if exc_type is None:
            self.status, text = PASSED, "correct."
        elif issubclass(exc_type, (NotImplementedError, NotDone)):
            self.status, text = NOT_DONE, f"not done yet (fill in the cell above and run it, then this one).{hint}"
        elif issubclass(exc_type, AssertionError):
            self.status, text = WRONG, f"not yet right: {exc}{hint}"
        else:
            return False  # a bug in the answer: show its traceback
        RESULTS[self.exercise] = self.status
        _show(self.exercise, self.status, text)
        if self.status != PASSED and _strict():
            raise ExerciseFailed(f"Exercise {self.exercise}: {text}") from exc
        return True


# ---------------------------------------------------------------------------- solutions


def exercise_id(source: str) -> str | None:
    """The id of a student or solution cell (its first line ``# Exercise NN.k: ...``), else None."""
    first = source.lstrip().splitlines()[0] if source.strip() else ""
    match = EXERCISE_LINE.match(first)
    return match.group(1) if match else None


def solutions_file(stem: str, folder: str | os.PathLike | None = None) -> Path:
    return Path(folder or SOLUTIONS_DIR) / f"{stem}.py"


def read_solutions(stem: str, folder: str | os.PathLike | None = None) -> dict[str, str]:
    """Exercise id -> solution cell source, from ``course/solutions/<stem>.py`` (py:percent cells)."""
    path = solutions_file(stem, folder)
    if not path.exists():
        return {}
    cells, current = [], []
    for line in path.read_text().splitlines():
        if line.startswith("# %%"):
            cells.append("\n".join(current))
            current = []
        else:
            current.append(line)
    cells.append("\n".join(current))
    out = {}
    for cell in cells:
        ident = exercise_id(cell)
        if ident:
            if ident in out:
                raise ValueError(f"{path}: exercise {ident} has two solution cells")
            out[ident] = cell.strip("\n")
    return out


def exercises_of(notebook) -> list[str]:
    """Ids of the student cells of a notebook (nbformat or jupytext object), in order."""
    return [exercise_id(c.source) for c in notebook.cells
            if c.cell_type == "code" and EXERCISE_TAG in c.metadata.get("tags", [])]


def checks_of(notebook) -> list[str]:
    return [m.group(1) for c in notebook.cells
            if c.cell_type == "code" and CHECK_TAG in c.metadata.get("tags", [])
            for m in [CHECK_CALL.search(c.source)] if m]


def with_solutions(notebook, stem: str, folder: str | os.PathLike | None = None):
    """The notebook with every student cell replaced by its solution (a new object; KeyError if one is missing)."""
    import copy

    solutions = read_solutions(stem, folder)
    solved = copy.deepcopy(notebook)
    for cell in solved.cells:
        if cell.cell_type == "code" and EXERCISE_TAG in cell.metadata.get("tags", []):
            ident = exercise_id(cell.source)
            if ident not in solutions:
                raise KeyError(f"exercise {ident} of {stem} has no solution in {solutions_file(stem, folder)}")
            cell.source = solutions[ident]
    return solved


def main(argv=None) -> int:
    import argparse

    import nbformat

    parser = argparse.ArgumentParser(prog="python -m panns_core.study.exercises",
                                     description="A teacher's copy of a notebook with the solutions filled in.")
    sub = parser.add_subparsers(dest="command", required=True)
    solve = sub.add_parser("solve", help="write NOTEBOOK with its solutions to OUTPUT")
    solve.add_argument("notebook")
    solve.add_argument("output")
    args = parser.parse_args(argv)
    path = Path(args.notebook)
    if path.suffix == ".py":
        import jupytext

        notebook = jupytext.read(path)
    else:
        notebook = nbformat.read(path, as_version=4)
    try:
        solved = with_solutions(notebook, path.stem)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    nbformat.write(solved, args.output)
    print(f"{args.output}: {len(exercises_of(solved))} exercise(s) filled in")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
