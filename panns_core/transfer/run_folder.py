"""The output folder of one ``panns finetune`` run: checked first, one writer, resumable, published whole.

* **Checked before any work**: a file where the folder should be, a folder that
  cannot be created or written, a folder holding a finished run (``result.json``)
  or someone else's files are refused with one line saying what to do (another
  ``--output``, or ``--overwrite`` to replace a finished run).
* **One writer**: the folder is locked (``flock`` on the folder itself, so nothing
  is left behind) while a run writes it; a second run into it is refused.
* **Resumable**: training saves its state to ``resume.pt`` now and then, on Ctrl-C
  and when training ends; a rerun with the same settings continues from it (one
  with other settings is refused, naming them, unless ``--overwrite``).
* **Published whole**: the report is written into ``.incomplete/`` and moved into
  place only when every file is written, ``result.json`` last (it marks a finished
  run); a full disk leaves the folder as it was. ``resume.pt`` is removed last.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil

RESULT_FILE = "result.json"
STATE_FILE = "resume.pt"
STAGING_FOLDER = ".incomplete"
REPORT_FILES = ("predictions.csv", "per_class.csv", "confusion_matrix.png", "training_curve.png", "model.pth",
                RESULT_FILE)
"""Every file a finished run leaves in its folder."""

STATE_FORMAT = "panns_finetune_state_v1"

_OUR_TEMPORARY = re.compile(r"^(" + "|".join(re.escape(n) for n in REPORT_FILES + (STATE_FILE,)) + r")\..+\.tmp")


class OutputFolderError(ValueError):
    """The output folder cannot take this run; the message names it and what to do."""


def describe_differences(saved: dict, now: dict) -> list[str]:
    """``name (X there, Y now)`` for every setting that differs between two fingerprints."""
    out = []
    for key in sorted(set(saved) | set(now)):
        if saved.get(key) != now.get(key):
            if key == "clips":
                out.append("the clips (the CSV or the audio files changed)")
            else:
                out.append(f"{key} ({saved.get(key)!r} there, {now.get(key)!r} now)")
    return out


class RunFolder:
    """``with RunFolder(path, overwrite) as folder:`` checks and locks ``path`` for one run."""

    def __init__(self, path: str | os.PathLike, overwrite: bool = False):
        self.path = os.fspath(path)
        self.overwrite = bool(overwrite)
        self._lock_fd: int | None = None
        self._created = False

    # -- paths ----------------------------------------------------------------

    @property
    def state_path(self) -> str:
        return os.path.join(self.path, STATE_FILE)

    @property
    def staging_path(self) -> str:
        return os.path.join(self.path, STAGING_FOLDER)

    # -- opening -------------------------------------------------------------------

    def __enter__(self) -> "RunFolder":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        """Create and lock the folder; refuse one that cannot take this run (see the module docstring)."""
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise OutputFolderError(f"--output {self.path} is a file; give the name of a folder (it is created)")
        self._created = not os.path.exists(self.path)
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as exc:
            raise OutputFolderError(f"--output {self.path}: cannot create the folder ({exc.strerror}); "
                                    "choose a writable location") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise OutputFolderError(f"--output {self.path}: the folder is not writable; choose a writable location")
        self._lock()
        try:
            self._check_contents()
        except BaseException:
            self.close()
            raise

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OutputFolderError(f"--output {self.path} is being written by another run (a panns finetune "
                                    "still running?); wait for it to finish or choose another --output") from None
        self._lock_fd = fd

    def close(self) -> None:
        """Release the lock; a folder this run created and left empty (a refused input) is removed."""
        if self._created:
            with contextlib.suppress(OSError):
                os.rmdir(self.path)  # only succeeds when empty
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    def _check_contents(self) -> None:
        # what a killed earlier writer left (we hold the lock, so no one is writing it)
        shutil.rmtree(self.staging_path, ignore_errors=True)
        names = sorted(n for n in os.listdir(self.path) if not _OUR_TEMPORARY.match(n))
        if STATE_FILE in names:
            return  # an interrupted run: resumed if its settings match (resume_state)
        ours = [n for n in names if n in REPORT_FILES]
        foreign = [n for n in names if n not in REPORT_FILES]
        if self.overwrite:
            return
        if RESULT_FILE in ours:
            raise OutputFolderError(f"--output {self.path} holds a finished run ({self._finished_summary()}); "
                                    "choose another --output, or pass --overwrite to replace it")
        if ours:
            raise OutputFolderError(f"--output {self.path} holds files of an earlier run ({', '.join(ours)}) but no "
                                    f"{RESULT_FILE}; choose another --output, or pass --overwrite to replace them")
        if foreign:
            shown = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
            raise OutputFolderError(f"--output {self.path} is not empty ({shown}) and not a panns finetune run; "
                                    "choose a new or empty folder")

    def _finished_summary(self) -> str:
        try:
            with open(os.path.join(self.path, RESULT_FILE), encoding="utf-8") as f:
                result = json.load(f)
            return (f"{RESULT_FILE}: {result.get('strategy')} {result.get('backbone')}, held-out accuracy "
                    f"{float(result.get('accuracy')):.3f}")
        except (OSError, ValueError, TypeError):
            return RESULT_FILE

    # -- resume ---------------------------------------------------------------

    def resume_state(self, fingerprint: dict) -> dict | None:
        """The saved training state when it belongs to a run with ``fingerprint``; None to start afresh.

        A state of a run with other settings is refused (naming them) unless
        ``overwrite``; then it is ignored and replaced by this run's first save.
        """
        if not os.path.exists(self.state_path):
            return None
        import torch

        try:
            state = torch.load(self.state_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file: name it
            if self.overwrite:
                return None
            raise OutputFolderError(f"{self.state_path}: the saved training state cannot be read ({type(exc).__name__}); "
                                    "pass --overwrite to start the run again") from None
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            if self.overwrite:
                return None
            raise OutputFolderError(f"{self.state_path} is not a panns finetune training state; pass --overwrite "
                                    "to start the run again")
        differences = describe_differences(state.get("fingerprint") or {}, fingerprint)
        if differences:
            if self.overwrite:
                return None
            raise OutputFolderError(
                f"--output {self.path} holds an interrupted run with other settings: {'; '.join(differences)}. "
                "Rerun with its settings to resume it, or pass --overwrite to start over")
        return state

    def write_state(self, fingerprint: dict, **content) -> None:
        """Save the training state (atomically); a failed write says what is kept."""
        from panns_core.fsutil import save_torch

        kept = os.path.exists(self.state_path)
        try:
            save_torch({"format": STATE_FORMAT, "fingerprint": fingerprint, **content}, self.state_path)
        except OSError as exc:
            raise OutputFolderError(
                f"cannot save the training state to {self.state_path} ({exc.strerror}); "
                + ("the state saved before is kept: " if kept else "")
                + "free some space and rerun the same command") from None

    # -- the report ---------------------------------------------------------------

    def new_staging(self) -> str:
        """An empty ``.incomplete/`` for the report files."""
        shutil.rmtree(self.staging_path, ignore_errors=True)
        os.makedirs(self.staging_path)
        return self.staging_path

    def discard_staging(self) -> None:
        shutil.rmtree(self.staging_path, ignore_errors=True)

    def publish(self) -> None:
        """Move the staged report into the folder (``result.json`` last), then drop the training state."""
        from panns_core.fsutil import fsync_folder

        names = sorted(os.listdir(self.staging_path))
        if RESULT_FILE not in names:
            raise RuntimeError(f"{self.staging_path}: no {RESULT_FILE} to publish")
        # The old result.json goes first: the folder never claims a finished run while its files are mixed.
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(self.path, RESULT_FILE))
        for name in [n for n in names if n != RESULT_FILE] + [RESULT_FILE]:
            os.replace(os.path.join(self.staging_path, name), os.path.join(self.path, name))
        fsync_folder(self.path)
        os.rmdir(self.staging_path)
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.state_path)
