"""Reader: int16/32767 floats, one open per file per process, resampling modes, DataLoader workers."""

import h5py
import numpy as np
import pytest
import torch

from panns_core.data.reader import AudioSetDataset, collate_fn
from panns_core.data.resample import resample


def write_waveforms(path, waves, targets, sr=32000):
    with h5py.File(path, "w") as hf:
        hf.create_dataset("audio_name", data=np.array([f"Y{i:011d}.wav" for i in range(len(waves))], dtype="S20"))
        hf.create_dataset("waveform", data=np.asarray(waves, np.int16))
        hf.create_dataset("target", data=np.asarray(targets, bool))
        hf.attrs["sample_rate"] = np.int32(sr)
    return str(path)


def tone(f, n=32000, sr=32000, amp=0.5):
    return (amp * 32767 * np.sin(2 * np.pi * f * np.arange(n) / sr)).astype(np.int16)


def test_item_values_and_single_open(tmp_path):
    rng = np.random.default_rng(0)
    waves = rng.integers(-32768, 32767, size=(3, 320), dtype=np.int16)
    a = write_waveforms(tmp_path / "a.h5", waves, np.eye(3))
    b = write_waveforms(tmp_path / "b.h5", waves[::-1], np.eye(3))
    ds = AudioSetDataset(sample_rate=32000)
    item = ds[{"hdf5_path": a, "index_in_hdf5": 1}]
    assert item["audio_name"] == "Y00000000001.wav"
    np.testing.assert_array_equal(item["waveform"], (waves[1] / 32767.0).astype(np.float32))
    assert item["waveform"].dtype == np.float32 and item["target"].tolist() == [0.0, 1.0, 0.0]
    for _ in range(5):
        ds[{"hdf5_path": a, "index_in_hdf5": 2}]
        ds[{"hdf5_path": b, "index_in_hdf5": 0}]
    assert ds.opened == 2
    batch = collate_fn([ds[{"hdf5_path": a, "index_in_hdf5": i}] for i in range(3)])
    assert batch["waveform"].shape == (3, 320) and batch["target"].shape == (3, 3)
    with pytest.raises(IndexError, match="a.h5: row 3 out of range"):
        ds[{"hdf5_path": a, "index_in_hdf5": 3}]


def test_decimate_is_official_and_antialias_removes_aliases(tmp_path):
    path = write_waveforms(tmp_path / "t.h5", [tone(12000)], [[1]])
    meta = {"hdf5_path": path, "index_in_hdf5": 0}
    full = AudioSetDataset(32000)[meta]["waveform"]
    dec = AudioSetDataset(16000, "decimate")[meta]["waveform"]
    np.testing.assert_array_equal(dec, full[0::2])
    anti = AudioSetDataset(16000, "antialias")[meta]["waveform"]
    assert dec.shape == anti.shape == (16000,)
    # a 12 kHz tone aliases to 4 kHz when decimated; the anti-alias filter removes it
    assert np.sqrt(np.mean(dec ** 2)) > 0.3
    assert np.sqrt(np.mean(anti[1000:-1000] ** 2)) < 0.01
    # an in-band 1 kHz tone survives both
    x = tone(1000) / 32767.0
    for mode in ("antialias", "decimate"):
        y = resample(x.astype(np.float32), 32000, 8000, mode)
        assert y.shape == (8000,) and np.sqrt(np.mean(y[500:-500] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)
    with pytest.raises(ValueError, match="resample_mode"):
        AudioSetDataset(16000, "linear")


def test_dataloader_with_workers_opens_once_per_worker(tmp_path):
    rng = np.random.default_rng(1)
    path = write_waveforms(tmp_path / "w.h5", rng.integers(-999, 999, size=(8, 64), dtype=np.int16), np.eye(8))

    class Counting(AudioSetDataset):
        def __getitem__(self, meta):
            item = super().__getitem__(meta)
            item["opened"] = self.opened
            return item

    ds = Counting()
    ds[{"hdf5_path": path, "index_in_hdf5": 0}]  # parent holds an open handle before forking
    batch_sampler = [[{"hdf5_path": path, "index_in_hdf5": i} for i in (j, j + 1)] for j in range(0, 8, 2)]
    loader = torch.utils.data.DataLoader(ds, batch_sampler=batch_sampler, collate_fn=collate_fn, num_workers=2)
    batches = list(loader)
    names = [n for b in batches for n in b["audio_name"]]
    assert names == [f"Y{i:011d}.wav" for i in range(8)]
    assert all(b["opened"].max() == 1 for b in batches)
