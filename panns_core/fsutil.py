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
