"""Index HDF5 files: which clip of which waveform file carries which target.

Layout (official ``create_indexes.py``, but with absolute paths):
``audio_name`` S20 (N,), ``target`` bool (N, classes), ``hdf5_path`` S200 (N,)
absolute path of the waveform file, ``index_in_hdf5`` int32 (N,).
Samplers read only index files; the reader opens the waveform files they point to.

A data root copied or moved elsewhere keeps its old absolute paths in the index
files. :func:`read_index` therefore re-points a recorded path to the waveform file of
the same name under the index's *own* data root (``<root>/hdf5s/indexes/x.h5`` ->
``<root>/hdf5s/waveforms/...``) when the recorded file is missing or when that
local file exists, and says so once per index file; an index whose recorded files
lie outside its data root (and have no local copy) gets a warning once.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import h5py
import numpy as np

log = logging.getLogger(__name__)

_SAID: set = set()  # (index path, message kind) already reported in this process


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


def data_root_of_index(index_path: str):
    """``<root>`` for an index at ``<root>/hdf5s/indexes/<name>.h5``; None for other layouts."""
    folder = os.path.dirname(os.path.abspath(index_path))
    if os.path.basename(folder) == "indexes" and os.path.basename(os.path.dirname(folder)) == "hdf5s":
        return os.path.dirname(os.path.dirname(folder))
    return None


def _local_counterpart(recorded: str, root: str) -> str:
    """Where ``recorded`` would sit under ``<root>/hdf5s/waveforms`` (sub-folders kept)."""
    marker = "/hdf5s/waveforms/"
    norm = recorded.replace("\\", "/")
    tail = norm.rsplit(marker, 1)[1] if marker in norm else os.path.basename(norm)
    return os.path.join(root, "hdf5s", "waveforms", *tail.split("/"))


def _say_once(index_path: str, kind: str, message: str) -> None:
    key = (os.path.abspath(index_path), kind)
    if key not in _SAID:
        _SAID.add(key)
        log.warning(message)


def relocate_paths(index_path: str, hdf5_paths: list) -> list:
    """The waveform paths an index should read, given where the index itself lies.

    A recorded path is replaced by the same-named file under the index's own data
    root when that file exists and the recorded one is missing or is a different
    file (a copied root must not silently read the original). Reported once per index.
    """
    root = data_root_of_index(index_path)
    if root is None:
        return hdf5_paths
    mapping, moved, outside = {}, [], []
    for recorded in dict.fromkeys(hdf5_paths):
        local = _local_counterpart(recorded, root)
        if os.path.exists(local) and (not os.path.exists(recorded)
                                      or os.path.realpath(local) != os.path.realpath(recorded)):
            mapping[recorded] = local
            moved.append(recorded)
        elif os.path.commonpath([os.path.realpath(root), os.path.realpath(recorded)]) != os.path.realpath(root):
            outside.append(recorded)
    if moved:
        _say_once(index_path, "moved",
                  f"{index_path}: reading {len(moved)} waveform file(s) from this data root ({root}/hdf5s/waveforms) "
                  f"instead of the recorded path(s), e.g. {moved[0]} (the data root was copied or moved)")
    if outside:
        _say_once(index_path, "outside",
                  f"{index_path}: points to {len(outside)} waveform file(s) outside its data root {root}, "
                  f"e.g. {outside[0]}; these are read from there")
    return [mapping.get(p, p) for p in hdf5_paths] if mapping else hdf5_paths


def missing_waveform_files(tables: dict) -> dict:
    """``{waveform path: index path}`` for every waveform file that ``{index path: table}`` names but is absent."""
    missing = {}
    for index_path, table in tables.items():
        for p in dict.fromkeys(table.hdf5_paths):
            if p not in missing and not os.path.isfile(p):
                missing[p] = index_path
    return missing


def check_waveform_files(tables: dict) -> None:
    """Raise :class:`IndexFileError` listing every absent waveform file (before any work starts).

    ``tables``: ``{index path: IndexTable}``. Training calls this before iteration 0,
    so a file removed or never packed stops the run at once, not hours later.
    """
    missing = missing_waveform_files(tables)
    if missing:
        lines = "\n".join(f"  {p}  (listed in {i})" for p, i in list(missing.items())[:10])
        more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise IndexFileError(f"{len(missing)} waveform HDF5 file(s) named by the index files do not exist:\n"
                             f"{lines}{more}\nPack them again (python -m panns_core.data pack ROOT) or point the "
                             f"run at the data root that holds them.")


def read_index(path: str) -> IndexTable:
    """Load an index file; errors name the file and the missing dataset.

    Waveform paths are re-pointed into the index's own data root when that root
    was copied or moved (see :func:`relocate_paths`).
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"index file not found: {path}")
    try:
        with h5py.File(path, "r") as hf:
            missing = [k for k in ("audio_name", "target", "hdf5_path", "index_in_hdf5") if k not in hf]
            if missing:
                raise IndexFileError(f"{path}: missing dataset(s) {missing}")
            return IndexTable(
                _decode(hf["audio_name"][:]),
                relocate_paths(path, _decode(hf["hdf5_path"][:])),
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
