"""Atomic file writes: a reader, or a run killed half-way, never sees a half-written file.

Every writer of a result, record, index or checkpoint goes through here: the
data goes to a temporary file in the destination's folder (so the rename never
crosses file systems), is flushed to disk with ``fsync``, and then replaces the
destination with :func:`os.replace` (atomic on POSIX and Windows). On an
exception the temporary file is removed and the destination is untouched.

A writer killed outright (SIGKILL, power loss) cannot remove its temporary file.
Temporary names carry the writer's host and process id
(``<name>.<host>-<pid>.<random>.tmp``), so the next write of the same destination
removes the ones whose writer is gone (:func:`remove_stale_temporaries`) and a
resumed run does not keep a dead run's half-written checkpoint beside its own.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import tempfile
import time
from typing import IO, Iterator

_UMASK = os.umask(0)
os.umask(_UMASK)

LEGACY_TEMPORARY_AGE_S = 3600.0
"""A temporary file without a writer id (written before ids were added) counts as stale after this long."""


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "", socket.gethostname())[:32] or "host"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else (or cannot be asked): keep its file
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[str]:
    """Remove temporary files of ``path`` left by writers that no longer run; returns their names.

    A temporary file of this host whose process is gone is stale; one of another
    host (a shared file system) is left alone, since its writer cannot be asked;
    one without a writer id (older versions) is stale after
    :data:`LEGACY_TEMPORARY_AGE_S`. Only POSIX can ask whether a process runs.
    """
    path = os.fspath(path)
    folder, base = os.path.split(os.path.abspath(path))
    if os.name != "posix" or not os.path.isdir(folder):
        return []
    ours = re.compile(re.escape(base) + r"\.(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)\.[^.]+\.tmp(\.\w+)?$")
    legacy = re.compile(re.escape(base) + r"\.[A-Za-z0-9_]{8}\.tmp(\.\w+)?$")
    host, removed = _host_tag(), []
    for entry in os.scandir(folder):
        match, stale = ours.match(entry.name), False
        if match:
            stale = match["host"] == host and not _process_alive(int(match["pid"]))
        elif legacy.match(entry.name):
            with contextlib.suppress(OSError):
                stale = time.time() - entry.stat(follow_symlinks=False).st_mtime > LEGACY_TEMPORARY_AGE_S
        else:
            continue
        if stale and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.remove(entry.path)
                removed.append(entry.name)
    return removed


def fsync_folder(folder: str) -> None:
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
    remove_stale_temporaries(path)
    writer = f"{_host_tag()}-{os.getpid()}"
    fd, tmp = tempfile.mkstemp(prefix=f"{os.path.basename(path)}.{writer}.", suffix=".tmp" + suffix, dir=folder)
    os.close(fd)
    with contextlib.suppress(OSError):  # mkstemp's 0600 would make every result private: the umask decides, as for open()
        os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    fsync_folder(folder)


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


class _WriteErrorRecorder:
    """A file object that remembers the ``OSError`` of a failed write.

    ``torch.save`` turns every write failure into a ``RuntimeError`` about its zip
    writer (``inline_container.cc ... file write failed``); this keeps the real
    reason (no space left, file too large, quota) so the user is told that.
    """

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data):
        try:
            return self.f.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self):
        self.f.flush()


def save_torch(obj, path: str | os.PathLike) -> str:
    """``torch.save(obj, path)`` atomically; a failed write raises the ``OSError`` (naming ``path``)."""
    import torch

    path = os.fspath(path)
    with atomic_write(path, "wb") as f:
        recorder = _WriteErrorRecorder(f)
        try:
            torch.save(obj, recorder)
        except RuntimeError as exc:
            if recorder.error is None:
                raise
            error = recorder.error
            raise OSError(error.errno or errno.EIO, error.strerror or str(error), path) from exc
    return path


__all__ = ["atomic_path", "atomic_write", "fsync_folder", "remove_stale_temporaries", "save_torch", "write_text",
           "write_json", "LockHeld", "exclusive_lock"]


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
