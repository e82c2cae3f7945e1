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
