"""Which run a notebook opens on, and what it does when its inputs do not exist yet.

**The profile a notebook opens on.** Every notebook's parameters cell leaves
``profile``, ``run_root``, ``figures_dir`` (and ``data_root``, ``data_source``)
at ``None``; its first code cell calls :func:`open_profile`, which fills them in:

1. a value given to the notebook (papermill, the pipeline) wins;
2. else ``$PANNS_PROFILE`` (``make lab PROFILE=smoke`` sets it);
3. else ``runs/last_profile.json``, which the pipeline writes at every start
   (after ``make reproduce``: the ``default`` profile, ``runs/default``);
4. else ``default``, the profile ``make reproduce`` runs.

It also moves the kernel to the project folder (JupyterLab starts kernels in
``notebooks/``), so that ``runs/...`` and ``data/...`` mean what they mean for
the pipeline.

**Missing inputs.** Every notebook runs top to bottom with its default parameters. When what it
reads (packed data, training runs, a manifest) is not there, it calls
:func:`stop` with a message naming the notebook or command that makes it,
instead of failing deep inside a library call:

* in a Jupyter kernel (JupyterLab, papermill) the cell shows the message alone,
  no traceback, and "Run All" stops there (the pipeline records the message as
  the stage's error);
* run as a script (``python notebooks/10_tables_audioset.py``) it prints the
  message and exits with status 0.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

PROFILE_ENV = "PANNS_PROFILE"
"""Environment variable naming the profile notebooks open on (``make lab PROFILE=NAME`` sets it)."""

FALLBACK_PROFILE = "default"
"""The profile notebooks open on when no pipeline has run yet: the one ``make reproduce`` makes."""

LAST_PROFILE_FILE = os.path.join("runs", "last_profile.json")
"""Written by the pipeline at every start: ``{"profile", "run_root", "profile_file", "started"}``."""


class MissingInputs(Exception):
    """A notebook's inputs are not there yet; the message says what makes them."""

    def _render_traceback_(self):  # IPython shows these lines instead of a traceback
        return [f"Missing inputs: {self}"]


def _in_kernel() -> bool:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and hasattr(shell, "kernel")


def pipeline_hint(profile: str) -> str:
    return f"python -m panns_core.study --profile {profile}"


def stop(message: str) -> None:
    """End the notebook here with ``message`` (see the module docstring for how)."""
    if _in_kernel():
        raise MissingInputs(message)
    print(f"Missing inputs: {message}", flush=True)
    raise SystemExit(0)


def require_packed_data(data_root: str, profile: str, index: str = "full_train") -> None:
    """Stop unless ``<data_root>/hdf5s/indexes/<index>.h5`` exists (made by notebooks 01 and 02)."""
    path = os.path.join(data_root, "hdf5s", "indexes", f"{index}.h5")
    if not os.path.exists(path):
        stop(f"{path} does not exist: make the data with notebooks 01_download_audioset and 02_pack_and_index "
             f"(or `{pipeline_hint(profile)} --only download_audioset --only pack_and_index`)")


def require_runs(runs: dict, run_root: str, profile: str) -> None:
    """Stop when no training run with statistics exists under ``<run_root>/train``."""
    if not runs:
        stop(f"no training run with statistics under {run_root}/train: run notebook 03_train_system first "
             f"(or the whole study: `{pipeline_hint(profile)}`)")


# ---------------------------------------------------------------------------- the profile a notebook opens on


def project_root(start: str | os.PathLike | None = None) -> Path | None:
    """The project folder (holds ``notebooks/`` and ``pyproject.toml``): the start folder or one above it."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "notebooks").is_dir() and (folder / "pyproject.toml").is_file():
            return folder
    return None


@dataclass
class OpenedProfile:
    """What :func:`open_profile` chose: the names a notebook's parameters hold, and why."""

    profile: str
    run_root: str
    figures_dir: str
    data_root: str | None
    data_source: str | None
    chosen_by: str
    """``parameter``, ``$PANNS_PROFILE``, ``runs/last_profile.json`` or ``fallback``."""
    profile_file: str | None = None
    spec: dict = field(default_factory=dict, repr=False)
    """The profile as run (``<run_root>/profile.json``), else as its YAML file says ({} if unreadable)."""

    def line(self) -> str:
        why = {"parameter": "given to the notebook", "$PANNS_PROFILE": f"${PROFILE_ENV}",
               "runs/last_profile.json": "the last pipeline run, runs/last_profile.json",
               "fallback": f"no pipeline has run yet: `make reproduce` makes {self.run_root}"}[self.chosen_by]
        data = f", data {self.data_root}" if self.data_root else ""
        return f"profile {self.profile} ({why}): run folder {self.run_root}{data}"


def _read_last_profile() -> dict | None:
    try:
        with open(LAST_PROFILE_FILE) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("profile") else None


def _profile_spec(name: str, run_root: str, profile_file: str | None) -> dict:
    snapshot = os.path.join(run_root, "profile.json")
    if os.path.exists(snapshot):
        try:
            with open(snapshot) as f:
                return json.load(f)
        except (OSError, ValueError):
            pass
    from panns_core.study.profiles import ProfileError, load_profile

    for source in (profile_file, name):
        if not source:
            continue
        try:
            return load_profile(source)
        except (ProfileError, OSError, ValueError):
            continue
    return {}


def open_profile(profile: str | None = None, *, run_root: str | None = None, figures_dir: str | None = None,
                 data_root: str | None = None, data_source: str | None = None, quiet: bool = False) -> OpenedProfile:
    """Fill in the profile parameters a notebook was not given (see the module docstring) and print one line
    saying which run it opens on. Values given win; the rest come from that profile."""
    root = project_root()
    if root is not None and Path.cwd().resolve() != root:
        os.chdir(root)  # JupyterLab runs kernels in notebooks/; the pipeline runs them in the project folder
    profile_file = None
    if profile is not None:
        chosen_by = "parameter"
    elif os.environ.get(PROFILE_ENV):
        profile, chosen_by = os.environ[PROFILE_ENV], "$PANNS_PROFILE"
    elif (last := _read_last_profile()) is not None:
        profile, chosen_by = str(last["profile"]), "runs/last_profile.json"
        run_root = run_root or last.get("run_root")
        profile_file = last.get("profile_file")
    else:
        profile, chosen_by = FALLBACK_PROFILE, "fallback"
    if chosen_by == "$PANNS_PROFILE" and (profile.endswith((".yaml", ".yml")) or os.sep in profile):
        profile_file = profile  # a profile file given by path: its name says where its runs are
    spec = _profile_spec(profile, run_root or f"runs/{profile}", profile_file)  # {} when unreadable
    if profile_file:
        profile = spec.get("name", profile)
    run_root = run_root or f"runs/{profile}"
    figures_dir = figures_dir or f"figures/{profile}"
    data = spec.get("data") or {}
    data_root = data_root or data.get("packed") or data.get("root")
    data_source = data_source or spec.get("data_source")
    opened = OpenedProfile(profile, run_root, figures_dir, data_root, data_source, chosen_by, profile_file, spec)
    if not quiet:
        print(opened.line(), flush=True)
    return opened


@dataclass
class OpenedRuns:
    """What :func:`open_runs` read: the profile's names and its training runs."""

    profile: str
    run_root: str
    figures_dir: str
    runs: dict
    """run name -> its statistics (:func:`panns_core.study.tables.load_runs`)."""
    snapshot: dict
    """The profile as run (reference run, class-wise run, ...)."""
    source: dict
    """Where the data came from (:func:`panns_core.study.tables.data_source_note`)."""


def open_runs(profile: str | None = None, *, run_root: str | None = None,
              figures_dir: str | None = None) -> OpenedRuns:
    """:func:`open_profile`, then read its training runs and say how many there are; stop with the command
    that makes them when there are none (the table and figure notebooks start here)."""
    from panns_core.study import tables as T

    here = open_profile(profile, run_root=run_root, figures_dir=figures_dir)
    runs = T.load_runs(here.run_root)
    opened = OpenedRuns(here.profile, here.run_root, here.figures_dir, runs,
                        T.read_profile_snapshot(here.run_root), T.data_source_note(here.run_root))
    print(f"profile {opened.profile}: {len(runs)} run(s) with statistics; "
          f"data source: {opened.source['data_source']}", flush=True)
    require_runs(runs, opened.run_root, opened.profile)
    return opened


# ---------------------------------------------------------------------------- the lessons' small example

EXAMPLE_DATA = os.path.join("data", "example")
"""A small generated corpus the lessons build when the profile's data are not there yet (a fresh clone)."""
EXAMPLE_RUNS = os.path.join("runs", "example")
EXAMPLE_PROFILE = FALLBACK_PROFILE
"""Whose ``data`` and ``train`` settings the example uses (10 classes of 1-s clips: seconds to make)."""


def _packed(data_root: str | None, index: str) -> bool:
    if not data_root:
        return False
    indexes = os.path.join(data_root, "hdf5s", "indexes")
    return all(os.path.exists(os.path.join(indexes, f"{name}.h5")) for name in (index, "eval"))


def _locked(path: str):
    import contextlib
    import fcntl

    @contextlib.contextmanager
    def hold():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    return hold()


def example_data() -> tuple[str, dict]:
    """``(data_root, train defaults)`` of the lessons' example corpus, generated and packed on first use."""
    from panns_core.study.profiles import load_profile

    spec = load_profile(EXAMPLE_PROFILE)
    train = dict(spec.get("train") or {})
    index = train.get("training_set", "full_train")
    with _locked(EXAMPLE_DATA + ".lock"):
        if not _packed(EXAMPLE_DATA, index):
            import time

            from panns_core.data.synthetic import generate_corpus
            from panns_core.study.stages import prepare_indexes

            started = time.perf_counter()
            generate_corpus(EXAMPLE_DATA, **(spec["data"].get("generate") or {}))
            prepare_indexes(EXAMPLE_DATA, **(spec["data"].get("pack") or {}))
            print(f"made the example corpus under {EXAMPLE_DATA} in {time.perf_counter() - started:.0f} s "
                  f"(the {EXAMPLE_PROFILE} profile's data settings)", flush=True)
    return EXAMPLE_DATA, train


def lesson_data(opened: OpenedProfile) -> tuple[str, dict]:
    """``(data_root, train defaults)`` a lesson trains or samples from: the profile's packed data when they
    exist, else the example corpus (made in seconds), with a line saying which."""
    train = dict(opened.spec.get("train") or {})
    index = train.get("training_set", "full_train")
    if _packed(opened.data_root, index):
        return opened.data_root, train
    print(f"{opened.data_root}/hdf5s/indexes/{index}.h5 is not there yet (`make reproduce` or notebooks 01-02 "
          f"make it): this lesson uses the small example corpus under {EXAMPLE_DATA}", flush=True)
    return example_data()


def example_run(iterations: int = 10) -> str:
    """Run folder of a short training run on the example corpus (the production loop), trained on first use."""
    from panns_core import train as T

    data_root, train = example_data()
    run_dir = os.path.join(EXAMPLE_RUNS, "train", "base")
    config = T.TrainConfig.from_dict({**train, "iterations": iterations, "eval_every": max(1, iterations // 2),
                                      "eval_splits": ["eval", "validation"], "data_root": data_root,
                                      "run_dir": run_dir, "progress": False}, source="example run")
    with _locked(run_dir + ".lock"):
        if not os.path.exists(os.path.join(run_dir, "checkpoints", "best.pt")):
            print(f"training a short example run ({config.model}, {iterations} iterations) under {run_dir}",
                  flush=True)
        T.train(config)  # resumes a finished run at its end: nothing to train
    return run_dir


def profile_notebook_parameters(opened: OpenedProfile, stem: str) -> dict:
    """The parameters the profile's ``notebooks`` list gives notebook ``stem`` ({} when it names none)."""
    for item in opened.spec.get("notebooks") or []:
        if isinstance(item, str) and item == stem:
            return {}
        if isinstance(item, dict) and stem in item:
            return dict(item[stem] or {})
    return {}
