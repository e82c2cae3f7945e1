"""Index HDF5 files: which clip of which waveform file carries which target.

Layout (official ``create_indexes.py``, but with absolute paths):
``audio_name`` S20 (N,), ``target`` bool (N, classes), ``hdf5_path`` S200 (N,)
absolute path of the waveform file, ``index_in_hdf5`` int32 (N,).
Samplers read only index files; the reader opens the waveform files they point to.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import h5py
import numpy as np


class IndexFileError(ValueError):
    """An index file is malformed (the message names the file)."""


@dataclass
class IndexTable:
    """The content of one index file, in memory."""

    audio_names: list  # str, e.g. "Y--PJHxphWEs.wav"
    hdf5_paths: list  # str, absolute
    index_in_hdf5: np.ndarray  # int
    targets: np.ndarray  # bool (N, classes)

    def __post_init__(self):
        n = len(self.audio_names)
        self.index_in_hdf5 = np.asarray(self.index_in_hdf5, dtype=np.int64)
        self.targets = np.asarray(self.targets).astype(bool)
        if self.targets.ndim != 2:
            raise IndexFileError(f"targets must be (N, classes), got shape {self.targets.shape}")
        if not (len(self.hdf5_paths) == len(self.index_in_hdf5) == len(self.targets) == n):
            raise IndexFileError(
                f"index columns differ in length: audio_name {n}, hdf5_path {len(self.hdf5_paths)}, "
                f"index_in_hdf5 {len(self.index_in_hdf5)}, target {len(self.targets)}"
            )

    def __len__(self) -> int:
        return len(self.audio_names)

    @property
    def classes_num(self) -> int:
        return self.targets.shape[1]

    def subset(self, positions) -> "IndexTable":
        positions = np.asarray(positions, dtype=np.int64)
        return IndexTable(
            [self.audio_names[i] for i in positions],
            [self.hdf5_paths[i] for i in positions],
            self.index_in_hdf5[positions],
            self.targets[positions],
        )

    @staticmethod
    def concatenate(tables) -> "IndexTable":
        tables = list(tables)
        if not tables:
            raise IndexFileError("nothing to concatenate")
        classes = {t.classes_num for t in tables}
        if len(classes) != 1:
            raise IndexFileError(f"index files disagree on the number of classes: {sorted(classes)}")
        return IndexTable(
            [n for t in tables for n in t.audio_names],
            [p for t in tables for p in t.hdf5_paths],
            np.concatenate([t.index_in_hdf5 for t in tables]),
            np.concatenate([t.targets for t in tables]),
        )


def _decode(values) -> list:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def read_index(path: str) -> IndexTable:
    """Load an index file; errors name the file and the missing dataset."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"index file not found: {path}")
    try:
        with h5py.File(path, "r") as hf:
            missing = [k for k in ("audio_name", "target", "hdf5_path", "index_in_hdf5") if k not in hf]
            if missing:
                raise IndexFileError(f"{path}: missing dataset(s) {missing}")
            return IndexTable(
                _decode(hf["audio_name"][:]),
                _decode(hf["hdf5_path"][:]),
                hf["index_in_hdf5"][:],
                hf["target"][:],
            )
    except OSError as e:
        raise IndexFileError(f"{path}: not a readable HDF5 file ({e})") from e


def write_index(path: str, table: IndexTable) -> str:
    """Write ``table`` atomically (temporary file, then rename)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    for p in table.hdf5_paths:
        if not os.path.isabs(p):
            raise IndexFileError(f"{path}: hdf5_path must be absolute, got {p!r}")
    from panns_core.fsutil import atomic_path

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as hf:
        hf.create_dataset("audio_name", data=np.array(table.audio_names, dtype="S20"), dtype="S20")
        hf.create_dataset("target", data=table.targets, dtype=bool)
        hf.create_dataset("hdf5_path", data=np.array(table.hdf5_paths, dtype="S200"), dtype="S200")
        hf.create_dataset("index_in_hdf5", data=table.index_in_hdf5.astype(np.int32), dtype=np.int32)
    return path
