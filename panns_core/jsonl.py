"""Crash-safe JSON-lines files (``statistics.jsonl``): whole-line appends, tolerant reads.

A run killed while appending can leave a *torn* last line (half a JSON object, no
newline). :func:`append_jsonl` writes each record as one ``write`` of a complete
line, then flushes and fsyncs, so a line is either entirely on disk or cut only at
the very end; before appending it drops a torn tail left by an earlier crash, so new
lines never glue onto a fragment. :func:`read_jsonl` drops a torn *final* line and
reports it once (a damaged line in the middle is real corruption and raises,
naming the file and line).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

_REPORTED: set = set()  # (path, size) of torn tails already reported in this process


class JsonlError(ValueError):
    """A JSON-lines file is damaged before its last line (the message names file and line)."""


def _report_torn(path: Path, size: int, fragment: str) -> None:
    key = (str(path.resolve()), size)
    if key not in _REPORTED:
        _REPORTED.add(key)
        log.warning("%s: ignoring a torn last line (%d bytes, an interrupted write): %.60r",
                    path, len(fragment.encode()), fragment)


def read_jsonl(path) -> list:
    """The records of ``path`` in order; ``[]`` when it does not exist.

    A final line that does not parse (or lacks its newline and does not parse) is
    dropped with one warning; an unparsable line elsewhere raises :class:`JsonlError`.
    """
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    records = []
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == last:
                _report_torn(path, len(text), line)
                break
            raise JsonlError(f"{path}, line {i + 1}: not valid JSON ({e}); the file is damaged before "
                             f"its last line") from e
    return records


def _drop_torn_tail(path: Path) -> None:
    """Cut a file back to its last newline if it ends in an unterminated fragment."""
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        keep = data.rfind(b"\n") + 1
        _report_torn(path, size, data[keep:].decode("utf-8", "replace"))
        f.truncate(keep)


def append_jsonl(path, record) -> None:
    """Append ``record`` as one line: one write, flush, fsync (NaN/inf refused)."""
    path = Path(path)
    line = json.dumps(record, allow_nan=False) + "\n"
    if path.exists():
        _drop_torn_tail(path)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def write_jsonl(path, records) -> None:
    """Replace ``path`` with ``records`` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("".join(json.dumps(r, allow_nan=False) + "\n" for r in records))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
