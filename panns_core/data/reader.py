"""The dataset reader: one clip per sampler meta, from packed waveform HDF5 files.

Each worker process opens each HDF5 file once (lazily, cached by path) instead
of once per item as the official reader does; the cache is dropped when the
object is pickled (spawned workers) or used from a new process id (forked
workers), because HDF5 handles must not be shared across processes.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from panns_core.data.resample import check_mode, resample

INT16_SCALE = 32767.0
"""Official int16 <-> float scale (``x / 32767.``)."""


def int16_to_float32(x: np.ndarray) -> np.ndarray:
    return (x / INT16_SCALE).astype(np.float32)


def float32_to_int16(x: np.ndarray) -> np.ndarray:
    """Official conversion: clip to [-1, 1], scale by 32767, truncate."""
    return (np.clip(x, -1.0, 1.0) * INT16_SCALE).astype(np.int16)


class AudioSetDataset:
    """Map-style dataset indexed by ``{'hdf5_path', 'index_in_hdf5'}`` dicts.

    Returns ``{'audio_name': str, 'waveform': float32 (samples,), 'target':
    float32 (classes,)}``. The waveform is read at the file's ``sample_rate``
    attribute and resampled to ``sample_rate`` with ``resample_mode``.
    """

    def __init__(self, sample_rate: int = 32000, resample_mode: str = "antialias"):
        self.sample_rate = int(sample_rate)
        self.resample_mode = check_mode(resample_mode)
        self._files = {}
        self._pid = os.getpid()
        self.opened = 0  # files opened by this process (tests check "once per worker")

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_files"] = {}
        state["opened"] = 0
        return state

    def _file(self, path: str) -> h5py.File:
        if os.getpid() != self._pid:
            # Forked worker: the parent's handles are not ours to use.
            self._files, self._pid, self.opened = {}, os.getpid(), 0
        hf = self._files.get(path)
        if hf is None:
            try:
                hf = h5py.File(path, "r")
            except OSError as e:
                raise OSError(f"cannot open waveform file {path}: {e}") from e
            self._files[path] = hf
            self.opened += 1
        return hf

    def close(self) -> None:
        for hf in self._files.values():
            try:
                hf.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        self._files = {}

    def __getitem__(self, meta: dict) -> dict:
        path, row = meta["hdf5_path"], int(meta["index_in_hdf5"])
        hf = self._file(path)
        if row < 0 or row >= hf["waveform"].shape[0]:
            raise IndexError(f"{path}: row {row} out of range (0..{hf['waveform'].shape[0] - 1})")
        name = hf["audio_name"][row]
        waveform = int16_to_float32(hf["waveform"][row])
        file_sr = int(hf.attrs.get("sample_rate", 32000))
        waveform = resample(waveform, file_sr, self.sample_rate, self.resample_mode)
        return {
            "audio_name": name.decode() if isinstance(name, bytes) else str(name),
            "waveform": waveform,
            "target": hf["target"][row].astype(np.float32),
        }


def collate_fn(items: list) -> dict:
    """Stack a list of dataset items key by key into numpy arrays (official ``collate_fn``)."""
    if not items:
        raise ValueError("collate_fn got an empty batch")
    return {key: np.array([item[key] for item in items]) for key in items[0]}

