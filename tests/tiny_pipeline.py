"""One end-to-end run of the tiny profile, shared by the tests that read its executed notebooks.

Under pytest-xdist several files may ask for it from different workers; a file lock
makes the second caller wait, and Snakemake's up-to-date check then makes its run a
no-op, so the notebooks are executed once per test session.
"""

from __future__ import annotations

import fcntl
import os

from panns_core.study.workflow import run_study


def shared_dir(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def tiny_run(tmp_path_factory):
    """(root, StudyResult, ok, log lines) of the tiny profile run in a session-shared folder."""
    shared = shared_dir(tmp_path_factory)
    root = shared / "tiny_pipeline"
    log: list[str] = []
    with open(shared / "tiny_pipeline.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            result = run_study("tiny", root=str(root), log=log.append)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return root, result, result.ok, log
