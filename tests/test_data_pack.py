"""Packing: official layout, exclusions with reasons, resume after interruption, indexes."""

import hashlib
import json
import os

import h5py
import numpy as np
import pytest
import soundfile as sf

from panns_core.data.audioset import Segment, write_class_labels, write_segments_csv
from panns_core.data.index import read_index
from panns_core.data.pack import (
    apply_black_list, combine_full_train, create_index, eval_set_sha256, index_path, pack_dataset,
    pack_segments, partial_subset, validation_split, waveform_path, write_eval_manifest,
)

SR, SECONDS = 8000, 0.5
N = int(SR * SECONDS)
MIDS = ["/m/09x0r", "/m/05zppz", "/m/02zsn"]


def _tone(n, f=440.0, sr=SR, amp=0.5):
    return (amp * np.sin(2 * np.pi * f * np.arange(n) / sr)).astype(np.float32)


def make_root(tmp_path, split="eval", extra_ok=0):
    """A tiny data root: good, short, long, stereo/16 kHz, missing (+failure), corrupt, NaN, clipping."""
    root = tmp_path / "data"
    (root / "metadata").mkdir(parents=True)
    audios = root / "audios" / split
    audios.mkdir(parents=True)
    write_class_labels(str(root / "metadata" / "class_labels_indices.csv"), MIDS, ["Speech", "Male", "Female"])
    specs = [("good0000000", "ok"), ("short000000", "short"), ("long0000000", "long"), ("stereo16k00", "stereo"),
             ("missing0000", "missing"), ("failed00000", "failed"), ("corrupt0000", "corrupt"),
             ("nan00000000", "nan"), ("clipping000", "clipping")]
    specs += [(f"extra{i:06d}", "ok") for i in range(extra_ok)]
    segs = []
    for i, (ytid, kind) in enumerate(specs):
        segs.append(Segment(ytid, 0.0, 10.0, (MIDS[i % 3],) if i % 4 else (MIDS[0], MIDS[2])))
        path = audios / f"Y{ytid}.wav"
        if kind == "ok":
            sf.write(path, _tone(N, 200 + 10 * i), SR, subtype="PCM_16")
        elif kind == "short":
            sf.write(path, _tone(N // 3), SR, subtype="PCM_16")
        elif kind == "long":
            sf.write(path, _tone(3 * N), SR, subtype="PCM_16")
        elif kind == "stereo":
            sf.write(path, np.stack([_tone(2 * N, sr=2 * SR)] * 2, axis=1), 2 * SR, subtype="PCM_16")
        elif kind == "corrupt":
            path.write_bytes(b"RIFF\x00\x00garbage-not-audio" * 10)
        elif kind == "nan":
            x = _tone(N)
            x[10] = np.nan
            sf.write(path, x, SR, subtype="FLOAT")
        elif kind == "clipping":
            sf.write(path, _tone(N, amp=3.0), SR, subtype="FLOAT")
    (audios / "failures.csv").write_text("youtube_id,reason,message\nfailed00000,private,Private video\n")
    write_segments_csv(str(root / "metadata" / f"{split}_segments.csv"), segs)
    return root, segs


def test_pack_layout_and_exclusions(tmp_path):
    root, _ = make_root(tmp_path)
    res = pack_dataset(str(root), splits=("eval",), sample_rate=SR, clip_seconds=SECONDS)["eval.h5"]
    assert res.complete and res.packed == 4 and res.excluded == 5
    assert res.reasons == {"missing": 1, "failed:private": 1, "decode": 1, "nan": 1, "clipping": 1}
    with h5py.File(waveform_path(str(root), "eval"), "r") as hf:
        assert hf["audio_name"].dtype == np.dtype("S20") and hf["waveform"].dtype == np.int16
        assert hf["target"].dtype == bool and hf["waveform"].shape == (4, N) and hf["target"].shape == (4, 3)
        assert int(hf.attrs["sample_rate"]) == SR
        assert [n.decode() for n in hf["audio_name"][:]] == [
            "Ygood0000000.wav", "Yshort000000.wav", "Ylong0000000.wav", "Ystereo16k00.wav"]
        short = hf["waveform"][1]
        assert np.all(short[N // 3:] == 0) and np.any(short[: N // 3] != 0)  # zero-padded at the end
        expected = (np.clip(_tone(N), -1, 1) * 32767).astype(np.int16)
        assert np.abs(hf["waveform"][2].astype(int) - expected.astype(int)).max() <= 2  # truncated
        assert np.abs(hf["waveform"][3] / 32767.0 - _tone(N)).max() < 0.02  # 16 kHz stereo -> 8 kHz mono
        assert hf["target"][0].tolist() == [True, False, True]
    manifest = json.load(open(res.manifest_path))
    by_name = {e["audio_name"]: e for e in manifest["excluded_clips"]}
    assert by_name["Ycorrupt0000.wav"]["reason"] == "decode" and "corrupt0000" in by_name["Ycorrupt0000.wav"]["message"]
    assert by_name["Yfailed00000.wav"]["message"] == "Private video"
    index = read_index(index_path(str(root), "eval"))
    assert len(index) == 4 and os.path.isabs(index.hdf5_paths[0])


def test_resume_after_interruption_equals_uninterrupted(tmp_path):
    root, segs = make_root(tmp_path, extra_ok=6)
    from panns_core.data.audioset import read_class_labels

    labels = read_class_labels(str(root / "metadata" / "class_labels_indices.csv"))
    audios = str(root / "audios" / "eval")
    kw = dict(sample_rate=SR, clip_seconds=SECONDS, chunk_size=3)
    ref = pack_segments(segs, labels, audios, str(tmp_path / "ref.h5"), **kw)
    out = str(tmp_path / "out.h5")
    first = pack_segments(segs, labels, audios, out, max_chunks=2, **kw)
    assert not first.complete and not os.path.exists(out) and os.path.exists(out + ".partial")
    assert first.decoded_this_call == 6
    # simulate a crash after rows were appended but before progress was recorded
    with h5py.File(out + ".partial", "a") as hf:
        n = hf["waveform"].shape[0]
        for k in ("audio_name", "waveform", "target"):
            hf[k].resize(n + 2, axis=0)
        hf["audio_name"][n:] = [b"Ybogus.wav", b"Ybogus2.wav"]
    second = pack_segments(segs, labels, audios, out, workers=2, **kw)
    assert second.complete and second.decoded_this_call == len(segs) - 6
    assert not os.path.exists(out + ".partial") and not os.path.exists(out + ".progress.json")
    with h5py.File(ref.out_path, "r") as a, h5py.File(out, "r") as b:
        for key in ("audio_name", "waveform", "target"):
            np.testing.assert_array_equal(a[key][:], b[key][:])
    assert json.load(open(ref.manifest_path))["excluded_clips"] == json.load(open(second.manifest_path))["excluded_clips"]


def _official_file(path, names, targets, samples=16):
    with h5py.File(path, "w") as hf:
        hf.create_dataset("audio_name", data=np.array(names, dtype="S20"), dtype="S20")
        hf.create_dataset("waveform", data=np.zeros((len(names), samples), np.int16))
        hf.create_dataset("target", data=np.asarray(targets, bool))
        hf.attrs["sample_rate"] = np.int32(32000)


def test_index_from_official_copy_skips_placeholder_rows(tmp_path):
    wav = tmp_path / "eval.h5"
    _official_file(wav, ["Ya.wav", "", "Yb.wav"], [[1, 0], [0, 0], [0, 1]])
    table = create_index(str(wav), str(tmp_path / "idx.h5"))
    assert table.audio_names == ["Ya.wav", "Yb.wav"] and table.index_in_hdf5.tolist() == [0, 2]
    with h5py.File(tmp_path / "idx.h5", "r") as hf:
        assert hf["hdf5_path"].dtype == np.dtype("S200") and hf["index_in_hdf5"].dtype == np.int32
        assert hf["hdf5_path"][0].decode() == str(wav)


def test_full_train_subsets_validation_black_list(tmp_path):
    root = tmp_path / "d"
    wdir = root / "hdf5s" / "waveforms"
    wdir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = lambda n: rng.random((n, 4)) < 0.4  # noqa: E731
    _official_file(wdir / "balanced_train.h5", [f"Yb{i:010d}.wav" for i in range(20)], t(20))
    _official_file(wdir / "unbalanced_train_part01.h5", [f"Yu{i:010d}.wav" for i in range(30, 60)], t(30))
    _official_file(wdir / "unbalanced_train_part00.h5",
                   [f"Yu{i:010d}.wav" for i in range(30)] + ["Yb0000000000.wav"], t(31))
    for name in ("balanced_train", "unbalanced_train_part00", "unbalanced_train_part01"):
        create_index(str(wdir / f"{name}.h5"), index_path(str(root), name))
    full = combine_full_train(str(root))
    assert len(full) == 80  # the duplicate balanced clip is kept once
    assert full.audio_names[:20] == [f"Yb{i:010d}.wav" for i in range(20)]
    assert full.audio_names[20:] == [f"Yu{i:010d}.wav" for i in range(60)]
    full_path = index_path(str(root), "full_train")
    half = partial_subset(full_path, 0.5, seed=0)
    assert len(half) == 40 and os.path.exists(index_path(str(root), "full_train_frac0.5_seed0"))
    assert partial_subset(full_path, 0.5, seed=0, out_h5=str(tmp_path / "again.h5")).audio_names == half.audio_names
    assert partial_subset(full_path, 0.5, seed=1, out_h5=str(tmp_path / "other.h5")).audio_names != half.audio_names
    train, val = validation_split(full_path, 0.1, seed=0)
    assert len(train) + len(val) == 80 and not set(train.audio_names) & set(val.audio_names)
    assert val.targets.sum(axis=0).min() >= 1  # every class represented
    assert os.path.exists(index_path(str(root), "validation"))
    bl = tmp_path / "bl.csv"
    bl.write_text("b0000000000\nYu0000000000.wav\n")  # bare id and file name
    kept = apply_black_list(full_path, str(bl), str(tmp_path / "nobl.h5"))
    assert len(kept) == 80 - 2


def test_eval_set_sha256(tmp_path):
    wav = tmp_path / "eval.h5"
    _official_file(wav, ["Yb.wav", "Ya.wav", "Yc.wav"], np.eye(3))
    create_index(str(wav), str(tmp_path / "eval_index.h5"))
    expected = hashlib.sha256(b"Ya.wav\nYb.wav\nYc.wav").hexdigest()
    assert eval_set_sha256(str(tmp_path / "eval_index.h5")) == expected
    manifest = write_eval_manifest(str(tmp_path / "eval_index.h5"))
    assert manifest["num_clips"] == 3 and manifest["sha256_sorted_ids"] == expected
    assert json.load(open(tmp_path / "eval_index.manifest.json"))["sha256_sorted_ids"] == expected


def test_not_a_waveform_file(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="bad.h5: not a readable HDF5 file"):
        create_index(str(bad), str(tmp_path / "i.h5"))


def test_pack_command_takes_clip_seconds_and_sample_rate(tmp_path, capsys):
    from panns_core.data.__main__ import main

    root, _ = make_root(tmp_path)
    assert main(["pack", str(root), "--splits", "eval", "--clip-seconds", "0.25", "--sample-rate", "4000"]) == 0
    assert "clips of 0.25 s at 4000 Hz" in capsys.readouterr().out
    with h5py.File(waveform_path(str(root), "eval"), "r") as f:
        assert f["waveform"].shape[1] == 1000  # 0.25 s x 4000 Hz, not 10 s x 32 kHz
    with pytest.raises(SystemExit):
        main(["pack", str(root), "--clip-seconds", "0"])
    assert "must be > 0" in capsys.readouterr().err
