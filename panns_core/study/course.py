"""The course: its reading order (``course/course.yml``), the README's copy of it, and the course site.

``course/course.yml`` declares the notebooks in reading order, in parts; this module
is the only reader. The README's reading order is generated from it (``readme``
below; ``tests/test_course.py`` fails when the two disagree) and the course site's
table of contents is built from it.

The site (``make book`` = ``python -m panns_core.study.course book``) is a static
HTML book made with Sphinx, MyST-NB and the Sphinx Book Theme (what Jupyter Book 1
is built on; pure Python, no Node.js) from the *executed* notebooks of the last
profile run (``runs/last_profile.json``): outputs and figures included, nothing is
re-executed by Sphinx. A course notebook that the profile did not execute (the
teaching notebooks 05-07 are not stages of every profile; 03's stages train run
lines, not the lesson) is executed once with papermill, with the profile's
parameters, into ``runs/<profile>/book/executed/`` and reused while its code and
parameters are unchanged. The site lands in ``runs/<profile>/book/html/``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COURSE_FILE = REPO / "course" / "course.yml"
NOTEBOOKS_DIR = REPO / "notebooks"
README = REPO / "README.md"
README_START = "<!-- course-order:start (generated from course/course.yml by `python -m panns_core.study.course readme`) -->"
README_END = "<!-- course-order:end -->"
LESSON_ONLY = ("03_train_system",)
"""Course notebooks whose pipeline copies are not the lesson (03's stages train run lines): executed for the book."""


@dataclass(frozen=True)
class Part:
    caption: str
    notebooks: tuple[str, ...]


@dataclass(frozen=True)
class Course:
    title: str
    parts: tuple[Part, ...]
    with_exercises: tuple[str, ...]

    @property
    def order(self) -> list[str]:
        return [stem for part in self.parts for stem in part.notebooks]


def load_course(path: str | os.PathLike = COURSE_FILE) -> Course:
    """``course/course.yml`` as a :class:`Course`; ValueError naming the file for a malformed one."""
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    try:
        parts = tuple(Part(str(p["caption"]), tuple(p["notebooks"])) for p in data["parts"])
        course = Course(str(data["title"]), parts, tuple(data.get("with_exercises") or ()))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: needs 'title' and 'parts' (each with 'caption' and 'notebooks'): {exc}") from None
    seen = course.order
    dupes = sorted({s for s in seen if seen.count(s) > 1})
    missing = [s for s in seen + list(course.with_exercises) if not (NOTEBOOKS_DIR / f"{s}.py").exists()]
    if dupes or missing:
        raise ValueError(f"{path}: notebooks listed twice {dupes}, not in notebooks/ {missing}")
    return course


def notebook_title(stem: str) -> str:
    """The notebook's first level-1 heading, e.g. ``03 · The training loop``."""
    for line in (NOTEBOOKS_DIR / f"{stem}.py").read_text().splitlines():
        match = re.match(r"^# #{1,2} (.+)$", line)
        if match:
            return match.group(1).strip()
    return stem


def readme_block(course: Course | None = None) -> str:
    """The README's reading order, generated from the course file."""
    course = course or load_course()
    lines = [README_START, ""]
    for part in course.parts:
        titles = ", ".join(f"[{notebook_title(s)}](notebooks/{s}.ipynb)" for s in part.notebooks)
        lines.append(f"1. **{part.caption}**: {titles}")
    lines += ["", README_END]
    return "\n".join(lines)


def readme_with_course(text: str, course: Course | None = None) -> str:
    """``text`` (the README) with its course-order block replaced by the generated one."""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"README.md has no course-order block ({README_START} ... {README_END})")
    return text[:start] + readme_block(course) + text[end + len(README_END):]


# ---------------------------------------------------------------------------- the course site


def _fingerprint(stem: str, parameters: dict, started: str | None) -> str:
    h = hashlib.sha256((NOTEBOOKS_DIR / f"{stem}.ipynb").read_bytes())
    h.update(json.dumps(parameters, sort_keys=True, default=str).encode())
    h.update(str(started).encode())
    return h.hexdigest()


def book_parameters(opened, stem: str) -> dict:
    """What the pipeline would give ``stem`` in this profile: the common and data parameters and the
    profile's own settings for the notebook, limited to the parameters the notebook declares."""
    from panns_core.study.notebook_inputs import profile_notebook_parameters
    from panns_core.study.profiles import declared_parameters

    declared = declared_parameters(str(NOTEBOOKS_DIR / f"{stem}.ipynb"))
    given = {"profile": opened.profile, "run_root": opened.run_root, "figures_dir": opened.figures_dir,
             "data_root": opened.data_root, "data_source": opened.data_source,
             **profile_notebook_parameters(opened, stem)}
    return {k: v for k, v in given.items() if k in declared and v is not None}


def executed_notebook(run_root: str, stem: str) -> Path | None:
    """The pipeline's executed copy of ``stem`` (``<run_root>/notebooks/<NN>_<stage>.ipynb``), if any."""
    if stem in LESSON_ONLY:
        return None
    from panns_core.study.profiles import stage_name_for

    number = stem.split("_", 1)[0]
    path = Path(run_root) / "notebooks" / f"{number}_{stage_name_for(stem)}.ipynb"
    return path if path.exists() else None


def _execute(stem: str, parameters: dict, output: Path, log) -> None:
    import papermill as pm

    log(f"executing {stem} for the book -> {output}")
    output.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(str(NOTEBOOKS_DIR / f"{stem}.ipynb"), str(output), parameters=parameters, cwd=os.getcwd(),
                        kernel_name="python3", progress_bar=False, log_output=False)


SPHINX_CONF = '''# Generated by panns_core.study.course: the course site's Sphinx configuration.
project = {title!r}
html_title = {title!r}
extensions = ["myst_nb"]
html_theme = "sphinx_book_theme"
html_theme_options = {{"show_toc_level": 2, "use_download_button": True}}
nb_execution_mode = "off"            # the notebooks were executed by the pipeline (or by the book builder)
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
suppress_warnings = ["mystnb.unknown_mime_type", "misc.highlighting_failure"]
'''


def _index_page(course: Course, opened, sources: dict) -> str:
    lines = [f"# {course.title}", "",
             f"The notebooks of this course as the profile **{opened.profile}** ran them "
             f"(`{opened.run_root}`), outputs and figures included. Each lesson opens with what you will learn "
             "and what the paper did, has exercises with checks (their solutions are with the teacher) and "
             "ends with questions.", ""]
    for part in course.parts:
        lines += ["```{toctree}", f":caption: {part.caption}", ":maxdepth: 1", ""]
        lines += [f"notebooks/{stem}" for stem in part.notebooks if stem in sources]
        lines += ["```", ""]
    skipped = [s for s in course.order if s not in sources]
    if skipped:
        lines += [f"Not in this build (the profile did not run them): {', '.join(skipped)}.", ""]
    return "\n".join(lines)


def build_book(profile: str | None = None, *, output: str | os.PathLike | None = None, log=print) -> Path:
    """Build the course site from the last profile run (or ``profile``); returns the path of its index.html."""
    from panns_core.study.notebook_inputs import open_profile

    opened = open_profile(profile, quiet=True)
    course = load_course()
    book = Path(opened.run_root) / "book"
    source = book / "src"
    html = Path(output) if output else book / "html"
    started = None
    try:
        with open(os.path.join("runs", "last_profile.json")) as f:
            started = json.load(f).get("started")
    except (OSError, ValueError):
        pass
    sources: dict[str, Path] = {}
    for stem in course.order:
        executed = executed_notebook(opened.run_root, stem)
        if executed is None:
            parameters = book_parameters(opened, stem)
            executed = book / "executed" / f"{stem}.ipynb"
            stamp = executed.with_suffix(".json")
            fingerprint = _fingerprint(stem, parameters, started)
            if not (executed.exists() and stamp.exists() and json.loads(stamp.read_text()) == fingerprint):
                try:
                    _execute(stem, parameters, executed, log)
                except Exception as exc:  # noqa: BLE001 - one failing lesson must not lose the site
                    log(f"{stem}: not in the book, its execution failed: {type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}")
                    continue
                stamp.write_text(json.dumps(fingerprint))
        sources[stem] = executed
    if source.exists():
        shutil.rmtree(source)
    (source / "notebooks").mkdir(parents=True)
    import nbformat

    for stem, path in sources.items():  # the parameter cells stay in the notebooks, off the pages
        notebook = nbformat.read(str(path), as_version=4)
        for cell in notebook.cells:
            tags = cell.metadata.get("tags", [])
            if "parameters" in tags or "injected-parameters" in tags:
                cell.metadata["tags"] = [*tags, "remove-cell"]
        nbformat.write(notebook, str(source / "notebooks" / f"{stem}.ipynb"))
    (source / "conf.py").write_text(SPHINX_CONF.format(title=course.title))
    (source / "index.md").write_text(_index_page(course, opened, sources))
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-d", str(book / "doctrees"), str(source),
               str(html)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"sphinx-build failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    index = html / "index.html"
    log(f"course site of profile {opened.profile}: {len(sources)} notebook(s) -> {index}")
    return index


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m panns_core.study.course",
                                     description="The course: its site and the README's reading order.")
    sub = parser.add_subparsers(dest="command", required=True)
    book = sub.add_parser("book", help="build the course site from the last profile run")
    book.add_argument("--profile", help="a profile other than the last one run")
    book.add_argument("--output", help="HTML folder (default: runs/<profile>/book/html)")
    sub.add_parser("readme", help="rewrite the README's reading order from course/course.yml")
    args = parser.parse_args(argv)
    if args.command == "readme":
        README.write_text(readme_with_course(README.read_text()))
        print(f"{README}: reading order rewritten from {COURSE_FILE.relative_to(REPO)}")
        return 0
    try:
        build_book(args.profile, output=args.output)
    except (RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
