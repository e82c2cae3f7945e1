"""Issue 12: nothing lost on bad input, every failure names its file and its fix.

One test (or a few) per numbered case of the issue; each reproduces the fault and
checks what the user sees and what is kept. docs/failures.md tables the same cases.
"""

import io
import json
import logging
import os
import shutil
import tarfile

import h5py
import numpy as np
import pytest
import soundfile as sf

from panns_core import audio_io
from panns_core import download as dl
from panns_core.audio_io import AudioReadError, load_audio, waveform_from_array
from panns_core.data import index as index_mod
from panns_core.data.__main__ import main as data_main
from panns_core.data.audioset import Segment, write_class_labels, write_segments_csv
from panns_core.data.index import IndexFileError, check_waveform_files, read_index
from panns_core.data.pack import index_path, load_clip, pack_dataset, pack_segments, waveform_path
from panns_core.jsonl import JsonlError, append_jsonl, read_jsonl

from test_inference import probe

SR = 8000
MIDS = ["/m/09x0r", "/m/05zppz"]


def _tone(n, sr=SR, amp=0.5):
    return (amp * np.sin(2 * np.pi * 440 * np.arange(n) / sr)).astype(np.float32)


def _root(tmp_path, clips: dict, seconds=1.0):
    """A data root with an eval split; ``clips``: ytid -> float array, bytes, or None (absent)."""
    root = tmp_path / "data"
    audios = root / "audios" / "eval"
    audios.mkdir(parents=True)
    (root / "metadata").mkdir()
    write_class_labels(str(root / "metadata" / "class_labels_indices.csv"), MIDS, ["Speech", "Male"])
    segs = []
    for i, (ytid, content) in enumerate(clips.items()):
        segs.append(Segment(ytid, 0.0, seconds, (MIDS[i % 2],)))
        path = audios / f"Y{ytid}.wav"
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            sf.write(path, content, SR, subtype="PCM_16")
    write_segments_csv(str(root / "metadata" / "eval_segments.csv"), segs)
    return root, segs


# ----------------------------------------------------------------------- 1. inference on mixed lists


def test_bad_array_is_a_recorded_failure_and_the_other_inputs_are_processed(tmp_path):
    wav = tmp_path / "good.wav"
    sf.write(wav, _tone(1500, sr=1000), 1000)
    bad = np.full(1200, 0.1, np.float32)
    bad[7] = np.nan
    good = np.full(1200, 0.25, np.float32)
    model = probe()
    for run in (model.tag, model.embed, model.sed):
        results = run([str(wav), bad, good])
        assert [r.path for r in results] == [str(wav), "array_2"]
        assert [(f.path, f.kind) for f in model.last_failures] == [("array_1", "nonfinite")]
        assert "NaN or infinite" in model.last_failures[0].reason
    streamed = list(model.run([bad, good]))
    assert [type(x).__name__ for x in streamed] == ["Failure", "AudioResult"]


@pytest.mark.parametrize("dtype, full_scale", [(np.int16, 2 ** 15), (np.int32, 2 ** 31)])
def test_integer_pcm_arrays_are_scaled_like_a_wav_reader(dtype, full_scale):
    pcm = (np.linspace(-0.5, 0.5, 1000) * full_scale).astype(dtype)  # one 1-s probe window
    [result] = probe().tag([pcm])
    # Probe: clipwise[0] = max sample, clipwise[1] = min sample of the window.
    assert result.clipwise[0] == pytest.approx(pcm.max() / full_scale, abs=1e-6)
    assert result.clipwise[1] == pytest.approx(pcm.min() / full_scale, abs=1e-6)
    assert np.abs(result.clipwise[:2]).max() <= 0.5


def test_unsigned_8bit_is_centred_and_odd_dtypes_are_refused_with_a_how_to():
    x = waveform_from_array(np.array([0, 128, 255], np.uint8))
    assert x.tolist() == pytest.approx([-1.0, 0.0, 127 / 128])
    with pytest.raises(AudioReadError, match=r"unsupported array dtype uint16: pass float32 .*astype"):
        waveform_from_array(np.zeros(10, np.uint16), "mine")
    model = probe()
    assert model.tag([np.zeros(1200, np.uint16)]) == []
    assert model.last_failures[0].kind == "bad_array"


# ----------------------------------------------------------------------- 2. archives


def _tar(path, entries):
    """``entries``: (name, 'file' content | ('sym', target) | ('dir',))."""
    with tarfile.open(path, "w") as tf:
        for name, what in entries:
            info = tarfile.TarInfo(name)
            if isinstance(what, bytes):
                info.size = len(what)
                tf.addfile(info, io.BytesIO(what))
            elif what[0] == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, what[1]
                tf.addfile(info)
            elif what[0] == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, what[1]
                tf.addfile(info)
            else:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
    return path


CHAINED = [("ok.txt", b"fine"), ("a", ("sym", ".")), ("b", ("sym", "a/..")), ("b/escaped.txt", b"pwned")]


@pytest.mark.parametrize("data_filter", [True, False], ids=["with-data-filter", "without-filter"])
def test_chained_symlinks_are_refused_before_anything_is_written(tmp_path, monkeypatch, data_filter):
    if not data_filter:
        # What Python < 3.11.4 / 3.10.12 does: no filter at all ("fully_trusted").
        monkeypatch.setattr(dl, "_tar_filter", lambda: "fully_trusted")
    work = tmp_path / "work"
    work.mkdir()
    archive = _tar(tmp_path / "evil.tar", CHAINED)
    dest = work / "dest"
    # Refused at the link b itself (b -> a/.. leaves the destination once a -> . is followed).
    with pytest.raises(dl.UnsafeArchiveError, match=r"evil\.tar: member 'b': symlink to 'a/\.\.' points outside"):
        dl.safe_extract(archive, dest)
    assert not dest.exists()  # not even ok.txt or the link a
    assert sorted(os.listdir(work)) == [] and not (tmp_path / "escaped.txt").exists()


@pytest.mark.parametrize("entries, member", [
    ([("a", ("sym", "x/../..")), ("a/f", b"1")], "a"),
    ([("d", ("dir",)), ("d/l", ("sym", "../..")), ("d/l/f", b"1")], "d/l"),
    ([("a", ("sym", "b")), ("b", ("sym", "..")), ("a/f", b"1")], "a"),  # a -> b -> ..
    ([("l", ("sym", "l2")), ("l2", ("sym", "l")), ("l/f", b"1")], "l"),  # a link loop
    ([("a", ("sym", ".")), ("h", ("hard", "a/../outside"))], "h"),
])
def test_other_link_tricks_are_refused_without_the_filter(tmp_path, monkeypatch, entries, member):
    monkeypatch.setattr(dl, "_tar_filter", lambda: "fully_trusted")
    archive = _tar(tmp_path / "t.tar", entries)
    with pytest.raises(dl.UnsafeArchiveError, match=f"t\\.tar: member '{member}'"):
        dl.safe_extract(archive, tmp_path / "dest")
    assert sorted(os.listdir(tmp_path)) == ["t.tar"]


@pytest.mark.parametrize("data_filter", [True, False])
def test_safe_links_extract_and_merge_into_an_existing_folder(tmp_path, monkeypatch, data_filter):
    if not data_filter:
        monkeypatch.setattr(dl, "_tar_filter", lambda: "fully_trusted")
    archive = _tar(tmp_path / "ok.tar", [("d", ("dir",)), ("d/f.txt", b"x"), ("d/link", ("sym", "f.txt")),
                                         ("top", ("sym", "d"))])
    dest = tmp_path / "dest"
    (dest / "d").mkdir(parents=True)
    (dest / "keep.txt").write_text("mine")
    written = dl.safe_extract(archive, dest)
    assert (dest / "d" / "link").read_text() == "x" and (dest / "top" / "f.txt").read_text() == "x"
    assert (dest / "keep.txt").read_text() == "mine" and len(written) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "ok.tar"]  # no staging folder left


def test_a_truncated_archive_leaves_nothing_and_names_the_archive(tmp_path):
    archive = tmp_path / "cut.tar"
    _tar(archive, [("a.txt", b"a" * 5000), ("b.txt", b"b" * 5000)])
    archive.write_bytes(archive.read_bytes()[:3000])  # a.txt cut in the middle
    with pytest.raises((dl.UnsafeArchiveError, ValueError), match="cut.tar"):
        dl.safe_extract(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


# ----------------------------------------------------------------------- 3. statistics.jsonl


def test_torn_last_line_is_dropped_reported_once_and_appends_continue(tmp_path, caplog):
    path = tmp_path / "statistics.jsonl"
    append_jsonl(path, {"iteration": 0, "mAP": 0.1})
    append_jsonl(path, {"iteration": 3, "mAP": 0.2})
    with open(path, "a") as f:
        f.write('{"iteration": 6, "mAP": 0.')  # killed mid-write
    with caplog.at_level(logging.WARNING, logger="panns_core.jsonl"):
        assert [r["iteration"] for r in read_jsonl(path)] == [0, 3]
        assert [r["iteration"] for r in read_jsonl(path)] == [0, 3]
    torn = [r for r in caplog.records if "torn last line" in r.getMessage()]
    assert len(torn) == 1 and "statistics.jsonl" in torn[0].getMessage()
    append_jsonl(path, {"iteration": 6, "mAP": 0.3})
    assert [r["iteration"] for r in read_jsonl(path)] == [0, 3, 6]
    assert path.read_text().endswith("\n") and path.read_text().count("\n") == 3


def test_damage_before_the_last_line_names_file_and_line(tmp_path):
    path = tmp_path / "statistics.jsonl"
    path.write_text('{"iteration": 0}\n{"iter\n{"iteration": 6}\n')
    with pytest.raises(JsonlError, match=r"statistics.jsonl, line 2"):
        read_jsonl(path)


def test_training_resumes_over_a_torn_statistics_line(tmp_path):
    from panns_core.train import read_statistics, train
    from train_doubles import in_memory_data, killing_factory, tiny_config

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt, match="simulated kill"):
        train(tiny_config(run), data=in_memory_data(), model_factory=killing_factory(5))
    assert [l["iteration"] for l in read_statistics(run)] == [0, 3]
    with open(run / "statistics.jsonl", "a") as f:
        f.write('{"iteration": 6, "split": "ev')
    train(tiny_config(run), data=in_memory_data())  # resume="auto", the same (registry) model
    assert [l["iteration"] for l in read_statistics(run)] == [0, 3, 6]


# ----------------------------------------------------------------------- 4. corrupt .partial


def test_corrupt_partial_from_an_interrupted_pack_is_named_and_the_part_restarts(tmp_path):
    root, segs = _root(tmp_path, {f"clip{i:07d}": _tone(SR) for i in range(6)})
    from panns_core.data.audioset import read_class_labels

    labels = read_class_labels(str(root / "metadata" / "class_labels_indices.csv"))
    out = tmp_path / "out.h5"
    audios = str(root / "audios" / "eval")
    first = pack_segments(segs, labels, audios, str(out), sample_rate=SR, clip_seconds=1.0, chunk_size=2,
                          max_chunks=2)
    assert not first.complete and first.packed == 4
    partial = str(out) + ".partial"
    data = open(partial, "rb").read()
    open(partial, "wb").write(data[: len(data) // 3])  # a crash mid-write of the HDF5 file
    again = pack_segments(segs, labels, audios, str(out), sample_rate=SR, clip_seconds=1.0, chunk_size=2)
    assert again.complete and again.packed == 6 and again.decoded_this_call == 6
    assert len(again.notes) == 1 and "out.h5.partial" in again.notes[0] and "packed again" in again.notes[0]
    with h5py.File(out, "r") as hf:
        assert [n.decode() for n in hf["audio_name"][:]] == [s.audio_name for s in segs]


# ----------------------------------------------------------------------- 5. truncated and empty WAVs


def test_truncated_wav_is_excluded_and_empty_file_is_empty_not_decode(tmp_path):
    sf.write(tmp_path / "full.wav", _tone(SR), SR, subtype="PCM_16")
    whole = (tmp_path / "full.wav").read_bytes()
    cut = whole[: len(whole) // 2]
    root, segs = _root(tmp_path, {"good0000000": _tone(SR), "cut00000000": cut, "empty000000": b"",
                                  "short000000": _tone(SR // 4)})
    res = pack_dataset(str(root), splits=("eval",))["eval.h5"]
    assert res.packed == 2 and res.reasons == {"truncated": 1, "empty": 1}
    manifest = json.loads(open(res.manifest_path).read())
    by_name = {c["audio_name"]: c for c in manifest["excluded_clips"]}
    assert "Ycut00000000.wav" in by_name["Ycut00000000.wav"]["message"]
    assert "header declares 8000 frames" in by_name["Ycut00000000.wav"]["message"]
    # A complete but short file is packed (zero-padded, as officially) and listed as short.
    assert manifest["short_clips"] == [{"audio_name": "Yshort000000.wav", "seconds": 0.25, "expected_seconds": 1.0}]
    assert res.short == 1


def test_truncated_wav_is_also_refused_by_inference_and_resampled_reads(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, _tone(2 * SR, sr=2 * SR), 2 * SR, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:-5000])
    with pytest.raises(AudioReadError) as info:
        load_audio(path, SR)
    assert info.value.kind == "truncated" and str(path) in str(info.value)
    assert load_clip(str(path), SR, SR).status == "truncated"


# ----------------------------------------------------------------------- 6. sentences, not tracebacks


def test_pack_on_a_nonexistent_root_is_one_sentence(tmp_path, capsys):
    assert data_main(["pack", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "nowhere" in err and "Traceback" not in err
    (tmp_path / "empty").mkdir()
    assert data_main(["pack", str(tmp_path / "empty")]) == 2
    assert "no segment CSV" in capsys.readouterr().err


def test_interrupted_pack_says_how_to_resume(tmp_path, monkeypatch, capsys):
    import panns_core.data.pack as pack_mod

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pack_mod, "pack_dataset", interrupted)
    assert data_main(["pack", str(tmp_path)]) == 130
    assert "interrupted; rerun the same command to resume" in capsys.readouterr().err


def test_missing_waveform_file_stops_training_before_iteration_0(tmp_path):
    from panns_core.train import build_run_data
    from train_doubles import tiny_config

    root, _ = _root(tmp_path, {f"clip{i:07d}": _tone(SR) for i in range(4)})
    pack_dataset(str(root), splits=("eval",))
    shutil.copy(index_path(str(root), "eval"), index_path(str(root), "balanced_train"))
    os.remove(waveform_path(str(root), "eval"))
    config = tiny_config(tmp_path / "run", data_root=str(root), training_set="balanced_train",
                         eval_splits=["eval"])
    with pytest.raises(IndexFileError, match=r"(?s)1 waveform HDF5 file\(s\).*eval\.h5.*listed in .*balanced_train\.h5"):
        build_run_data(config)


def test_eval_splits_must_be_a_json_list(capsys):
    from panns_core.train import config_from_args

    with pytest.raises(SystemExit):
        config_from_args(["--eval-splits", "eval"])
    assert "--eval-splits: expects a JSON list, e.g. '[\"eval\", \"validation\"]'; got 'eval'" in capsys.readouterr().err


def test_empty_checkpoint_and_missing_checkpoint_messages(tmp_path, capsys):
    from panns_core.cli import main as cli_main

    wav = tmp_path / "x.wav"
    sf.write(wav, _tone(SR), SR)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    assert cli_main(["tag", "-c", str(empty), str(wav)]) == 2
    err = capsys.readouterr().err
    assert "empty.pth: the file is empty (0 bytes)" in err and not err.rstrip().endswith("()")
    assert cli_main(["tag", "-c", "missing.pth", "--offline", str(wav)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("panns: error: checkpoint missing.pth: no such file") and "'" not in err.split("(")[0]


def test_download_error_mentions_a_part_file_only_when_one_exists(tmp_path, monkeypatch):
    import urllib.error

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("connection refused")

    monkeypatch.setattr(dl.urllib.request, "urlopen", refuse)
    monkeypatch.setattr(dl.time, "sleep", lambda s: None)
    with pytest.raises(dl.DownloadError) as info:
        dl.download("https://example.invalid/x.bin", tmp_path / "x.bin", retries=1, progress=False)
    message = str(info.value)
    assert "nothing was received" in message and ".part" not in message
    assert "connection refused" in message and not (tmp_path / "x.bin.part").exists()


# ----------------------------------------------------------------------- 7. copied / moved data root


def test_copied_data_root_reads_its_own_waveforms_and_says_so_once(tmp_path, caplog):
    root, _ = _root(tmp_path, {f"clip{i:07d}": _tone(SR) for i in range(3)})
    pack_dataset(str(root), splits=("eval",))
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    index_mod._SAID.clear()
    with caplog.at_level(logging.WARNING, logger="panns_core.data.index"):
        table = read_index(index_path(str(copy), "eval"))
        read_index(index_path(str(copy), "eval"))
    assert set(table.hdf5_paths) == {waveform_path(str(copy), "eval")}
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "copied or moved" in said[0]
    # Moved (the original is gone): same.
    shutil.rmtree(root)
    assert set(read_index(index_path(str(copy), "eval")).hdf5_paths) == {waveform_path(str(copy), "eval")}


def test_index_pointing_outside_its_data_root_is_warned_about(tmp_path, caplog):
    root, _ = _root(tmp_path, {f"clip{i:07d}": _tone(SR) for i in range(3)})
    pack_dataset(str(root), splits=("eval",))
    elsewhere = tmp_path / "elsewhere.h5"
    os.replace(waveform_path(str(root), "eval"), elsewhere)
    from panns_core.data.index import IndexTable, write_index

    table = read_index(index_path(str(root), "eval"))
    write_index(index_path(str(root), "eval"), IndexTable(table.audio_names, [str(elsewhere)] * len(table),
                                                          table.index_in_hdf5, table.targets))
    index_mod._SAID.clear()
    with caplog.at_level(logging.WARNING, logger="panns_core.data.index"):
        assert set(read_index(index_path(str(root), "eval")).hdf5_paths) == {str(elsewhere)}
    assert any("outside its data root" in r.getMessage() for r in caplog.records)
    check_waveform_files({index_path(str(root), "eval"): read_index(index_path(str(root), "eval"))})


# ----------------------------------------------------------------------- 8. names and links


def test_colliding_output_names_get_a_mapping_and_broken_links_are_skipped(tmp_path, monkeypatch, capsys):
    from panns_core import cli

    folder = tmp_path / "in"
    folder.mkdir()
    sf.write(folder / "x.wav", _tone(1500, sr=1000), 1000)
    sf.write(folder / "x.flac", _tone(1500, sr=1000), 1000)
    os.symlink(folder / "gone.wav", folder / "dangling.wav")
    assert audio_io.expand_inputs([folder]) == [str(folder / n) for n in ("dangling.wav", "x.flac", "x.wav")]

    monkeypatch.setattr(cli, "_load_model", lambda args, task: probe())
    out = tmp_path / "frames"
    status = cli.main(["sed", str(folder), "--framewise-dir", str(out)])
    err = capsys.readouterr().err
    assert f"skipped {folder / 'dangling.wav'}: broken symbolic link" in err
    assert "collided" in err and status == 3  # dangling.wav skipped, the others written
    import pandas as pd

    mapping = pd.read_csv(out / "outputs.csv")
    assert mapping.values.tolist() == [[str(folder / "x.flac"), "x"], [str(folder / "x.wav"), "x_2"]]
    assert sorted(os.listdir(out)) == ["outputs.csv", "x.framewise.npy", "x_2.framewise.npy"]


def test_a_broken_installation_stops_packing_instead_of_excluding_every_clip(tmp_path, monkeypatch):
    """A decoder that cannot be imported is the environment's fault: every clip would be 'decode'."""
    from panns_core import audio_io
    from panns_core.data import pack

    path = tmp_path / "ok.wav"
    sf.write(path, np.zeros(SR, dtype=np.float32), SR // 2)  # not at the target rate: full decode path

    def no_backend(*args, **kwargs):
        raise ModuleNotFoundError("No module named '_cffi_backend'")

    monkeypatch.setattr(audio_io, "_read_soundfile", no_backend)
    monkeypatch.setattr(pack, "read_native_int16", lambda *a, **k: None)
    with pytest.raises(ModuleNotFoundError, match="_cffi_backend"):
        load_clip(str(path), SR, SR)
