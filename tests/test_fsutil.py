"""Atomic writes: the destination holds the old content or the whole new one, never a part."""

from __future__ import annotations

import json

import numpy as np
import pytest

from panns_core.fsutil import atomic_path, atomic_write, write_json, write_text


def test_write_text_and_json_replace_the_file_and_leave_no_temporary(tmp_path):
    path = tmp_path / "sub" / "record.json"  # the folder is created
    write_json({"b": 1, "a": [1, 2]}, path)
    assert json.loads(path.read_text()) == {"b": 1, "a": [1, 2]}
    assert path.read_text().endswith("\n")
    write_text(path, "new")
    assert path.read_text() == "new"
    assert sorted(p.name for p in path.parent.iterdir()) == ["record.json"]


def test_failure_inside_the_block_keeps_the_old_file(tmp_path):
    path = tmp_path / "statistics.jsonl"
    path.write_text("old\n")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_write(path) as f:
            f.write("half of the new")
            raise RuntimeError("killed while writing")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["statistics.jsonl"]


def test_atomic_path_serves_writers_that_want_a_file_name(tmp_path):
    path = tmp_path / "cache.npy"
    with atomic_path(path, suffix=".npy") as tmp:
        assert tmp.endswith(".npy") and not path.exists()
        np.save(tmp, np.arange(3))
    np.testing.assert_array_equal(np.load(path), np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["cache.npy"]


def test_atomic_write_refuses_append_mode(tmp_path):
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb'"):
        with atomic_write(tmp_path / "x", "a"):
            pass


# ----------------------------------------------------------------------- issue 24 case 12: litter of killed writers


def killed_writer_leaves(path, size: int = 4096) -> list[str]:
    """Run a writer of ``path`` that is SIGKILLed inside ``atomic_path``; the temporary names it leaves behind."""
    import subprocess
    import sys

    code = ("import os, signal, sys\n"
            "from panns_core.fsutil import atomic_path\n"
            "block = atomic_path(sys.argv[1])\n"
            "tmp = block.__enter__()\n"
            "open(tmp, 'wb').write(b'x' * int(sys.argv[2]))\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", code, str(path), str(size)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == -9, done.stderr
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name + ".") and ".tmp" in p.name)


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    import os

    path = tmp_path / "latest.pt"
    left = killed_writer_leaves(path)
    assert len(left) == 1 and left[0].endswith(".tmp")  # what SIGKILL leaves: before the fix it stayed forever
    # temporaries of live writers are never touched: this process, and a writer on another host
    live = tmp_path / f"latest.pt.{fsutil_host()}-{os.getpid()}.abcdefgh.tmp"
    remote = tmp_path / "latest.pt.otherhost-1.abcdefgh.tmp"
    live.write_bytes(b"writing")
    remote.write_bytes(b"writing")
    # a temporary of an older version (no writer id): stale after an hour
    old, recent = tmp_path / "latest.pt.k3j4h5g6.tmp", tmp_path / "latest.pt.a1b2c3d4.tmp"
    old.write_bytes(b"x")
    recent.write_bytes(b"x")
    os.utime(old, (0, 0))
    write_text(path, "new")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["latest.pt", live.name, remote.name, recent.name])


def fsutil_host() -> str:
    from panns_core.fsutil import _host_tag

    return _host_tag()


def test_save_torch_reports_the_real_reason_of_a_failed_write(tmp_path):
    """torch.save says `inline_container.cc ... file write failed`; the user needs `File too large` / `No space`."""
    import subprocess
    import sys

    code = ("import resource, signal, sys, torch\n"
            "from panns_core.fsutil import save_torch\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (100000, 100000))\n"  # like a full disk at 100 kB
            "try:\n"
            "    save_torch({'w': torch.zeros(1000000)}, sys.argv[1])\n"
            "except OSError as exc:\n"
            "    print(exc.errno, exc.filename, exc.strerror)\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "model.pth")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    import errno

    assert done.stdout.strip() == f"{errno.EFBIG} {tmp_path / 'model.pth'} File too large"
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary


def test_written_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    write_text(tmp_path / "result.json", "{}")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(tmp_path / "result.json").st_mode) == 0o666 & ~mask  # not mkstemp's 0600
