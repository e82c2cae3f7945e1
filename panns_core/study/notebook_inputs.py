"""What a notebook does when its inputs do not exist yet: say which stage makes them, and stop.

Every notebook runs top to bottom with its default parameters. When what it
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

import os
import sys


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
