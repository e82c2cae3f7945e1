"""Transfer datasets: every parser on its synthetic stand-in, fold protocols, the folder dataset."""

import os

import numpy as np
import pytest
import soundfile as sf

from panns_core.transfer import (ClipAudio, DatasetLayoutError, check_disjoint, make_standin, parse_folder,
                                 parse_task)
from panns_core.transfer.datasets import TASKS, gtzan_fold, ravdess_fold
from panns_core.transfer.synthetic import STANDIN_TASKS

EXPECTED = {  # (clips, classes, folds, train clips of the first fold) of the default stand-ins
    "esc50": (50, 5, [1, 2, 3, 4, 5], 40),
    "dcase2019_task1": (36, 4, ["test"], 24),
    "dcase2018_task2": (36, 4, ["test"], 24),
    "msos": (45, 5, ["test"], 30),
    "gtzan": (41, 4, list(range(1, 11)), 37),
    "ravdess": (64, 8, [1, 2, 3, 4], 48),
}


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    root = tmp_path_factory.mktemp("standins")
    return {t: make_standin(t, str(root / t)) for t in STANDIN_TASKS}


@pytest.mark.parametrize("task", STANDIN_TASKS)
def test_parser_reads_standin_layout_with_paper_protocol(standins, task):
    data = parse_task(task, standins[task])
    clips, classes, folds, first_train = EXPECTED[task]
    assert (len(data.clips), len(data.classes), data.folds) == (clips, classes, folds)
    assert data.protocol == TASKS[task].protocol and data.metric == TASKS[task].metric
    train, test = data.split(data.folds[0])
    assert len(train) == first_train and len(train) + len(test) == len(data.clips)
    check_disjoint(data)  # no clip (and no actor / source recording) on both sides of any fold
    for fold in data.folds:
        train, test = data.split(fold)
        assert not set(train) & set(test)
    if data.protocol == "cross_validation":  # every clip is tested exactly once
        tested = np.concatenate([data.split(f)[1] for f in data.folds])
        assert sorted(tested.tolist()) == list(range(len(data.clips)))


def test_standin_files_keep_native_format(standins):
    tau = parse_task("dcase2019_task1", standins["dcase2019_task1"])
    info = sf.info(tau.clips[0].path)
    assert (info.samplerate, info.channels) == (48000, 2)
    assert sf.info(parse_task("gtzan", standins["gtzan"]).clips[0].path).samplerate == 22050
    esc = parse_task("esc50", standins["esc50"])
    assert all(os.path.basename(c.path).split("-")[0] == str(c.fold) for c in esc.clips)  # {FOLD}-... names


def test_gtzan_corrupt_file_reported_and_skipped(standins):
    data = parse_task("gtzan", standins["gtzan"])
    assert any(c.clip_id == "jazz/jazz.00054.wav" for c in data.clips)
    loaded = ClipAudio().load(data)
    assert len(loaded.clips) == len(data.clips) - 1
    assert [os.path.basename(p) for p, _ in loaded.skipped] == ["jazz.00054.wav"]
    assert "unreadable" in loaded.skipped[0][1]


def test_stereo_48k_is_averaged_to_32k_mono(standins):
    data = parse_task("dcase2019_task1", standins["dcase2019_task1"])
    audio = ClipAudio(32000)
    audio.load(data.subset([0]))
    x = audio[data.clips[0].clip_id]
    stereo, sr = sf.read(data.clips[0].path, dtype="float32")
    assert x.ndim == 1 and len(x) == round(len(stereo) * 32000 / sr)


def test_protocol_fold_rules():
    assert [gtzan_fold(n) for n in (0, 9, 10, 54, 99)] == [1, 10, 1, 5, 10]
    assert [ravdess_fold(a) for a in (1, 6, 7, 12, 13, 19, 24)] == [1, 1, 2, 2, 3, 4, 4]
    with pytest.raises(ValueError):
        ravdess_fold(25)


def test_ravdess_folds_are_actor_disjoint(standins):
    data = parse_task("ravdess", standins["ravdess"])
    for fold in data.folds:
        train, test = data.split(fold)
        assert not {data.clips[i].meta["actor"] for i in train} & {data.clips[i].meta["actor"] for i in test}


def test_missing_metadata_and_bad_columns_name_the_file(tmp_path):
    with pytest.raises(DatasetLayoutError, match="esc50.csv"):
        parse_task("esc50", str(tmp_path))
    meta = tmp_path / "meta"
    meta.mkdir()
    (meta / "esc50.csv").write_text("filename,fold\na.wav,1\n")
    with pytest.raises(DatasetLayoutError, match=r"esc50.csv: missing column\(s\) \['target', 'category'\]"):
        parse_task("esc50", str(tmp_path))


def test_listed_but_missing_audio_is_skipped(tmp_path):
    root = make_standin("msos", str(tmp_path / "msos"))
    victim = parse_task("msos", root).clips[0]
    os.remove(victim.path)
    data = parse_task("msos", root)
    assert len(data.clips) == 44 and data.skipped[0][0].endswith(os.path.basename(victim.path))


def _folder(tmp_path, with_fold=True):
    rng = np.random.default_rng(0)
    rows = ["filename,label" + (",fold" if with_fold else "")]
    for i in range(8):
        label = "bird" if i % 2 else "engine"
        sr, channels = [(44100, 1), (16000, 2), (48000, 2), (8000, 1)][i % 4]
        name = f"clip{i}.{'flac' if i == 3 else 'wav'}"
        sf.write(tmp_path / name, 0.1 * rng.standard_normal((sr // 2, channels)).astype(np.float32), sr)
        rows.append(f"{name},{label}" + (f",{i // 4 + 1}" if with_fold else ""))
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    rows.append("broken.wav,bird" + (",2" if with_fold else ""))
    rows.append("not_there.wav,engine" + (",1" if with_fold else ""))
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "labels.csv"


def test_folder_dataset_mixed_rates_stereo_and_corrupt_file(tmp_path):
    data = parse_folder(str(_folder(tmp_path)))
    assert data.classes == ["bird", "engine"] and data.folds == [1, 2]
    assert len(data.clips) == 9 and data.skipped[0][0].endswith("not_there.wav")
    audio = ClipAudio(32000)
    loaded = audio.load(data)
    assert len(loaded.clips) == 8 and loaded.skipped[-1][0].endswith("broken.wav")
    for clip in loaded.clips:  # every file is 0.5 s, whatever its rate and channels
        assert audio[clip.clip_id].shape == (16000,)
    check_disjoint(loaded)


def test_folder_dataset_without_fold_column_gets_stratified_folds(tmp_path):
    data = parse_folder(str(_folder(tmp_path, with_fold=False)), folds=2)
    assert data.folds == [1, 2]
    for fold in data.folds:
        _, test = data.split(fold)
        assert set(data.labels[test]) == {0, 1}


def test_folder_dataset_rejects_bad_rows(tmp_path):
    (tmp_path / "labels.csv").write_text("filename,label\na.wav,\n")
    with pytest.raises(DatasetLayoutError, match="line 2: empty label"):
        parse_folder(str(tmp_path / "labels.csv"))
    (tmp_path / "labels.csv").write_text("filename,label,fold\na.wav,x,one\n")
    with pytest.raises(DatasetLayoutError, match="fold 'one'"):
        parse_folder(str(tmp_path / "labels.csv"))


def test_download_task_uses_checksums_and_safe_extraction(tmp_path, monkeypatch):
    from panns_core import download as dl
    from panns_core.transfer import datasets

    calls = []
    monkeypatch.setattr(dl, "download", lambda url, dest, **kw: (calls.append(("download", url, kw)),
                                                                 open(dest, "wb").write(b"x"))[0])
    monkeypatch.setattr(dl, "safe_extract", lambda archive, dest: calls.append(("safe_extract", archive)))
    report = datasets.download_task("ravdess", str(tmp_path))
    assert calls[0][0] == "download" and calls[0][2]["md5"] == "bc696df654c87fed845eb13823edef8a"
    assert calls[0][2]["resume"] is True
    assert calls[1] == ("safe_extract", str(tmp_path / "Audio_Speech_Actors_01-24.zip"))
    assert len(report.archives["Audio_Speech_Actors_01-24.zip"]["sha256"]) == 64
    manual = datasets.download_task("msos", str(tmp_path / "m"))
    assert len(manual.manual) == 3  # no stable URL known: the user is told where to get them


def test_real_safe_extract_rejects_traversal(tmp_path):
    import zipfile

    from panns_core.download import UnsafeArchiveError, safe_extract

    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("../escape.txt", "x")
    with pytest.raises(UnsafeArchiveError):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()
