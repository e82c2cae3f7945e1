"""Atomic file writes: a reader, or a run killed half-way, never sees a half-written file.

Every writer of a result, record, index or checkpoint goes through here: the
data goes to a temporary file in the destination's folder (so the rename never
crosses file systems), is flushed to disk with ``fsync``, and then replaces the
destination with :func:`os.replace` (atomic on POSIX and Windows). On an
exception the temporary file is removed and the destination is untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import IO, Iterator


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path next to ``path``; when the block succeeds it replaces ``path``.

    For writers that want a file name (``h5py.File``, ``np.save``, ``torch.save``,
    a subprocess). ``suffix`` is the temporary name's ending, for writers that
    add or need an extension (``np.save`` appends ``.npy`` unless it is there).
    The folder is created if needed.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp" + suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    _fsync_folder(folder)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """``open(path, mode)`` that only lands at ``path`` when the block finishes without error.

    ``mode`` is ``"w"`` or ``"wb"`` (plus ``open``'s keywords: ``encoding``,
    ``newline``). Text defaults to UTF-8.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes a whole new file: mode must be 'w' or 'wb', got {mode!r}")
    if mode == "w":
        open_kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def write_text(path: str | os.PathLike, text: str, **open_kwargs) -> str:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_write(path, "w", **open_kwargs) as f:
        f.write(text)
    return os.fspath(path)


def write_json(obj, path: str | os.PathLike, *, indent: int | None = 2, sort_keys: bool = False,
               trailing_newline: bool = True) -> str:
    """Write ``obj`` as JSON atomically (non-JSON values through ``str``); returns the path."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, default=str)
    return write_text(path, text + ("\n" if trailing_newline else ""))


__all__ = ["atomic_path", "atomic_write", "write_text", "write_json"]


# ----------------------------------------------------------------------------- one writer at a time


class LockHeld(RuntimeError):
    """Another live process holds the lock (the message names it: host, pid, since when, command)."""


def _holder_text(info: dict) -> str:
    if not info:
        return "another process (no details recorded)"
    return (f"pid {info.get('pid')} on host {info.get('host')} since {info.get('since')}"
            + (f" ({info['command']})" if info.get("command") else ""))


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, what: str, *, wait: bool = False,
                   command: str | None = None, log=None) -> Iterator[dict]:
    """Hold an exclusive lock on ``path`` (created if needed) while the block runs.

    The lock is an OS file lock (``flock``): it dies with its process, so a holder killed
    with SIGKILL never leaves a lock behind that blocks the next run; what stays is only
    the file's note of that holder, which the next holder reports as cleared (``log``) and
    overwrites. A second process gets :class:`LockHeld` naming the live holder (host, pid,
    since when, its command), or with ``wait=True`` blocks until the holder is done.
    ``what`` names the thing protected in messages, e.g. ``"run folder runs/default"``.
    """
    import datetime
    import fcntl
    import socket
    import sys

    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_lock_note(fd)
            if not wait:
                raise LockHeld(f"{what} is being written by {_holder_text(holder)}; wait for it to finish or stop "
                               f"it (lock file {path})") from None
            if log:
                log(f"waiting for {what}: held by {_holder_text(holder)}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        stale = _read_lock_note(fd)
        if stale and log:
            log(f"cleared a stale lock on {what} left by {_holder_text(stale)} (that process is gone)")
        note = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "command": command if command is not None else " ".join(os.path.basename(a) for a in sys.argv[:3])}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(note).encode(), 0)
        os.fsync(fd)
        try:
            yield note
        finally:
            os.ftruncate(fd, 0)  # released cleanly: no note left for the next holder to report
    finally:
        os.close(fd)  # closing releases the flock


def _read_lock_note(fd: int) -> dict:
    try:
        raw = os.pread(fd, 4096, 0)
        return json.loads(raw) if raw.strip() else {}
    except (OSError, ValueError):
        return {}


__all__ += ["LockHeld", "exclusive_lock"]
