"""Issue 24: `panns finetune` under bad input: nothing lost, nothing silently wrong.

One test (or a few) per numbered case of the issue that concerns fine-tuning; each
reproduces the fault and checks what the user sees and what is kept.
docs/failures.md tables the same cases. Runs use a small generated folder, a small
backbone and one thread.
"""

import csv
import errno
import importlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from panns_core.cli import main
from panns_core.transfer import runner as runner_mod
from panns_core.transfer.audio import ClipAudio
from panns_core.transfer.base import DatasetLayoutError
from panns_core.transfer.folder import parse_folder
from panns_core.transfer.run_folder import REPORT_FILES, STATE_FILE

from test_transfer_finetune import CLASSES, _sound

SR = 16000
BACKBONE = "MobileNetV2"  # the fastest registered backbone per training step on a CPU
FAST = ["--strategy", "scratch", "--backbone", BACKBONE, "--batch-size", "4", "--threads", "1", "-q"]


def small_folder(root, per_class=4, seed=0, rows_extra=(), fold=None):
    """labels.csv + 0.3-0.7-s clips of three classes at 16 kHz; returns the CSV path."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, name in enumerate(CLASSES):
        for i in range(per_class):
            fname = f"{name}_{i}.wav"
            sf.write(root / fname, _sound(label, float(rng.uniform(0.3, 0.7)), SR, rng), SR)
            rows.append([fname, name] + ([fold(label, i)] if fold else []))
    rows.extend(rows_extra)
    with open(root / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "label"] + (["fold"] if fold else []))
        writer.writerows(rows)
    return root / "labels.csv"


def run(csv_path, out, *extra, iterations=4):
    return main(["finetune", str(csv_path), *FAST, "--iterations", str(iterations), "--evaluations", "2",
                 "-o", str(out), *extra])


def no_traceback(captured):
    assert "Traceback" not in captured.err and "Traceback" not in captured.out


# ----------------------------------------------------------------------- 2. one long file sets the clip length


def test_a_two_hour_recording_is_reported_not_decoded_and_clips_stay_short(tmp_path, capsys, monkeypatch):
    csv_path = small_folder(tmp_path / "d", per_class=6)
    # A 12-minute WAV (8 kHz mono, 11 MB): over the 10-minute limit for one clip; its header says so.
    sf.write(tmp_path / "d" / "recording.wav", np.zeros(12 * 60 * 8000, np.float32), 8000)
    # A 30-s file: under the limit, an outlier among 0.3-0.7-s clips.
    sf.write(tmp_path / "d" / "long.wav", 0.1 * np.ones(30 * SR, np.float32), SR)
    with open(csv_path, "a", newline="") as f:
        f.write("recording.wav,hum\nlong.wav,hum\n")
    import panns_core.transfer.audio as audio_mod

    decoded = []
    real_load = audio_mod.load_audio
    monkeypatch.setattr(audio_mod, "load_audio", lambda path, sr: decoded.append(os.path.basename(path))
                        or real_load(path, sr))
    assert run(csv_path, tmp_path / "run") == 0
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert "recording.wav" not in decoded  # refused from its header: memory stays bounded
    assert [os.path.basename(p) for p, _ in result["skipped"]] == ["recording.wav"]
    assert "too long for one clip (0:12:00, over the 600-s limit)" in result["skipped"][0][1]
    assert result["clip_seconds"] <= 0.72  # was the length of the longest file
    assert "1 longer outlier(s)" in result["clip_seconds_from"]
    assert any("1 of 19 clips are longer than clip_seconds" in w and "up to 30.0 s" in w for w in result["warnings"])


def test_clip_audio_keeps_only_what_training_uses_and_records_the_whole_length(tmp_path):
    sf.write(tmp_path / "long.wav", 0.1 * np.ones(30 * SR, np.float32), SR)
    sf.write(tmp_path / "short.wav", 0.1 * np.ones(SR // 2, np.float32), SR)
    (tmp_path / "labels.csv").write_text("filename,label\nlong.wav,a\nshort.wav,b\n")
    audio = ClipAudio(SR)
    data = audio.load(parse_folder(str(tmp_path / "labels.csv")), max_seconds=10.0, max_file_seconds=20.0)
    assert [c.clip_id for c in data.clips] == ["short.wav"] and "20-s limit" in data.skipped[0][1]
    audio = ClipAudio(SR)
    data = audio.load(parse_folder(str(tmp_path / "labels.csv")), max_seconds=10.0)
    assert audio["long.wav"].shape == (10 * SR,) and audio.durations["long.wav"] == pytest.approx(30.0)


# ----------------------------------------------------------------------- 3. trained work thrown away or overwritten


def test_an_output_that_is_a_file_is_refused_before_training(tmp_path, capsys, monkeypatch):
    csv_path = small_folder(tmp_path / "d")
    existing = tmp_path / "notes.txt"
    existing.write_text("mine")
    monkeypatch.setattr(runner_mod.TransferRunner, "run", lambda *a, **k: pytest.fail("trained anyway"))
    assert run(csv_path, existing) == 2
    captured = capsys.readouterr()
    assert f"--output {existing} is a file; give the name of a folder" in captured.err
    no_traceback(captured)
    assert existing.read_text() == "mine"


def test_a_finished_run_is_never_replaced_silently(tmp_path, capsys):
    csv_path = small_folder(tmp_path / "d")
    out = tmp_path / "run"
    assert run(csv_path, out) == 0
    before = {n: (out / n).read_bytes() for n in REPORT_FILES}
    assert run(csv_path, out, "--seed", "1") == 2
    captured = capsys.readouterr()
    assert f"--output {out} holds a finished run (result.json: scratch {BACKBONE}, held-out accuracy" in captured.err
    assert "pass --overwrite to replace it" in captured.err
    no_traceback(captured)
    assert {n: (out / n).read_bytes() for n in REPORT_FILES} == before
    assert run(csv_path, out, "--seed", "1", "--overwrite") == 0
    assert json.loads((out / "result.json").read_text())["settings"]["seed"] == 1
    assert (out / "model.pth").read_bytes() != before["model.pth"]
    assert sorted(os.listdir(out)) == sorted(REPORT_FILES)  # no state, staging or temporary file left


def test_a_folder_with_other_files_is_refused(tmp_path, capsys):
    csv_path = small_folder(tmp_path / "d")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    assert run(csv_path, tmp_path / "mine") == 2
    assert "is not empty (thesis.tex) and not a panns finetune run" in capsys.readouterr().err


def test_a_full_disk_while_writing_the_report_changes_nothing_and_keeps_the_model(tmp_path, capsys, monkeypatch):
    finetune_mod = importlib.import_module("panns_core.transfer.finetune")

    csv_path = small_folder(tmp_path / "d")
    out = tmp_path / "run"
    assert run(csv_path, out) == 0
    before = {n: (out / n).read_bytes() for n in REPORT_FILES}

    def disk_full(path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(finetune_mod, "save_transfer_checkpoint", disk_full)
    assert run(csv_path, out, "--seed", "1", "--overwrite") == 2
    captured = capsys.readouterr()
    no_traceback(captured)
    assert (f"cannot write the report into {out} (No space left on device); nothing in {out} was changed, and the "
            f"trained model is kept in {out / STATE_FILE}") in captured.err
    assert {n: (out / n).read_bytes() for n in REPORT_FILES} == before  # the earlier run, whole
    assert sorted(os.listdir(out)) == sorted(REPORT_FILES + (STATE_FILE,))  # nothing new beside it
    monkeypatch.undo()
    # space freed: the rerun writes the report from the saved state without training again
    monkeypatch.setattr(runner_mod, "train_model", _no_more_steps(runner_mod.train_model))
    assert main(["finetune", str(csv_path), *FAST[:-1], "--iterations", "4", "--evaluations", "2", "-o", str(out),
                 "--seed", "1", "--overwrite"]) == 0
    assert "resuming the interrupted run" in capsys.readouterr().out
    assert sorted(os.listdir(out)) == sorted(REPORT_FILES)


def _no_more_steps(train_model):
    def wrapped(*args, on_step=None, **kwargs):
        def refuse(step, loss):
            pytest.fail(f"step {step} trained again")
        return train_model(*args, on_step=refuse, **kwargs)
    return wrapped


def test_a_state_write_on_a_full_disk_is_one_line(tmp_path, capsys, monkeypatch):
    import panns_core.fsutil as fsutil

    csv_path = small_folder(tmp_path / "d")

    class Full:
        def __init__(self, f):
            self.f, self.error = f, None

        def write(self, data):
            self.error = OSError(errno.ENOSPC, "No space left on device")
            raise self.error

        def flush(self):
            pass

    monkeypatch.setattr(fsutil, "_WriteErrorRecorder", Full)  # torch.save's writes fail as on a full disk
    assert run(csv_path, tmp_path / "run", "--save-every", "0") == 2
    captured = capsys.readouterr()
    no_traceback(captured)
    assert f"cannot save the training state to {tmp_path / 'run' / STATE_FILE} (No space left on device)" in captured.err
    assert not (tmp_path / "run").exists()  # no temporary file left (and the empty folder it made is gone)


def test_a_second_run_into_the_same_folder_is_refused(tmp_path):
    from panns_core.transfer.run_folder import OutputFolderError, RunFolder

    with RunFolder(tmp_path / "run"):
        with pytest.raises(OutputFolderError, match="is being written by another run"):
            RunFolder(tmp_path / "run").open()
    with RunFolder(tmp_path / "run"):  # released when the first run ends
        pass


# ----------------------------------------------------------------------- 4. resume after SIGINT / SIGKILL


def _report(out):
    result = json.loads((out / "result.json").read_text())
    for key in ("train_s", "wall_s", "resumed_from_step"):
        result.pop(key)
    state = torch.load(out / "model.pth", map_location="cpu", weights_only=True)
    return result, (out / "predictions.csv").read_text(), state["state_dict"]


@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
def test_an_interrupted_finetune_resumes_to_the_uninterrupted_result(tmp_path, capsys, how):
    from panns_core.checkpoints import save_checkpoint
    from panns_core.models import create_model

    csv_path = small_folder(tmp_path / "d")
    torch.manual_seed(0)
    pretrained = save_checkpoint(tmp_path / "pretrained.pth", create_model(BACKBONE))
    args = ["finetune", str(csv_path), "--strategy", "finetune", "--checkpoint", str(pretrained),
            "--batch-size", "4", "--iterations", "6", "--evaluations", "2", "--threads", "1", "-q"]
    assert main(args + ["-o", str(tmp_path / "whole")]) == 0

    out = tmp_path / "stopped"
    # the state after every step, so the signal can come mid-run (how often it is saved is no setting of the run)
    proc = subprocess.Popen([sys.executable, "-m", "panns_core.cli", *args, "--save-every", "0", "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 60
    while not (out / STATE_FILE).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(getattr(signal, how))
    stdout, stderr = proc.communicate(timeout=60)
    if how == "SIGINT":
        assert proc.returncode == 130, stderr
        assert "Traceback" not in stderr
        [line] = [ln for ln in stderr.splitlines() if ln.startswith("panns:")]
        assert "interrupted after step" in line and "rerun the same command to continue from there" in line
    else:
        assert proc.returncode == -signal.SIGKILL
    assert not (out / "result.json").exists()

    assert main(args + ["-o", str(out)]) == 0  # the same command again
    resumed = json.loads((out / "result.json").read_text())["resumed_from_step"]
    assert 1 <= resumed < 6
    whole, stopped = _report(tmp_path / "whole"), _report(out)
    assert whole[0] == stopped[0] and whole[1] == stopped[1]  # every number, every prediction
    assert all(torch.equal(whole[2][k], stopped[2][k]) for k in whole[2])  # bit-identical weights
    assert sorted(os.listdir(out)) == sorted(REPORT_FILES)  # no state, temporary or staging file left


def test_a_rerun_with_other_settings_does_not_resume(tmp_path, capsys, monkeypatch):
    csv_path = small_folder(tmp_path / "d")
    out = tmp_path / "run"

    def stop_after_two(*args, on_snapshot=None, **kwargs):
        def snap(step, snapshot):
            on_snapshot(step, snapshot)
            if step == 2:
                raise KeyboardInterrupt  # a second Ctrl-C: stop at once
        return real(*args, on_snapshot=snap, **kwargs)

    real = runner_mod.train_model
    monkeypatch.setattr(runner_mod, "train_model", stop_after_two)
    assert run(csv_path, out, "--save-every", "0", iterations=6) == 130
    assert f"the training state saved last is in {out / STATE_FILE}: rerun the same command" in capsys.readouterr().err
    monkeypatch.undo()
    assert run(csv_path, out, "--save-every", "0", iterations=8) == 2
    err = capsys.readouterr().err
    assert "holds an interrupted run with other settings: iterations (6 there, 8 now)" in err
    assert "pass --overwrite to start over" in err
    assert run(csv_path, out, "--save-every", "0", "--overwrite", iterations=8) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["resumed_from_step"] is None and result["settings"]["iterations"] == 8


def test_a_frozen_strategy_resumes_to_the_uninterrupted_result(tmp_path, capsys, monkeypatch):
    """The head-on-embeddings loop (freeze_l1/l3) resumes like the whole-model loop above."""
    from panns_core.checkpoints import save_checkpoint
    from panns_core.models import create_model

    csv_path = small_folder(tmp_path / "d")
    torch.manual_seed(0)
    pretrained = save_checkpoint(tmp_path / "pretrained.pth", create_model(BACKBONE))
    args = ["finetune", str(csv_path), "--strategy", "freeze_l3", "--checkpoint", str(pretrained), "--batch-size", "4",
            "--iterations", "20", "--evaluations", "2", "--threads", "1", "-q", "--save-every", "0"]
    assert main(args + ["-o", str(tmp_path / "whole")]) == 0

    def stop_at_13(*a, on_snapshot=None, **k):
        def snap(step, snapshot):
            on_snapshot(step, snapshot)
            if step == 13:
                raise KeyboardInterrupt
        return real(*a, on_snapshot=snap, **k)

    real = runner_mod.train_head
    monkeypatch.setattr(runner_mod, "train_head", stop_at_13)
    assert main(args + ["-o", str(tmp_path / "stopped")]) == 130
    monkeypatch.undo()
    assert main(args + ["-o", str(tmp_path / "stopped")]) == 0
    whole, stopped = _report(tmp_path / "whole"), _report(tmp_path / "stopped")
    assert json.loads((tmp_path / "stopped" / "result.json").read_text())["resumed_from_step"] == 13
    assert whole[0] == stopped[0] and whole[1] == stopped[1]
    assert all(torch.equal(whole[2][k], stopped[2][k]) for k in whole[2])


# ----------------------------------------------------------------------- 5. held-out clips leak into training


def test_one_file_listed_twice_is_one_clip(tmp_path):
    csv_path = small_folder(tmp_path / "d", rows_extra=[["./chirp_0.wav", "chirp"], ["sub/../hum_1.wav", "hum"]])
    (tmp_path / "d" / "sub").mkdir()
    os.symlink(tmp_path / "d" / "knock_2.wav", tmp_path / "d" / "link.wav")
    with open(csv_path, "a") as f:
        f.write("link.wav,knock\n")
    data = parse_folder(str(csv_path))
    assert len(data.clips) == 12
    assert [r for _, r in data.skipped] == [
        "listed again on line 14 (first on line 2 as 'chirp_0.wav'); used once",
        "listed again on line 15 (first on line 7 as 'hum_1.wav'); used once",
        "listed again on line 16 (first on line 12 as 'knock_2.wav'); used once"]


def test_one_file_on_both_sides_of_the_split_is_refused(tmp_path, capsys):
    csv_path = small_folder(tmp_path / "d", fold=lambda label, i: "test" if i == 0 else "train",
                            rows_extra=[["./chirp_1.wav", "chirp", "test"]])
    with pytest.raises(DatasetLayoutError, match=r"line 14 lists './chirp_1.wav', the same file as line 3 "
                                                  r"\('chirp_1.wav'\) in another fold \('test', there 'train'\)"):
        parse_folder(str(csv_path))
    assert run(csv_path, tmp_path / "run") == 2
    captured = capsys.readouterr()
    assert "it would be trained on and tested; list each file once" in captured.err
    no_traceback(captured)


def test_one_file_with_two_labels_is_refused(tmp_path):
    csv_path = small_folder(tmp_path / "d", rows_extra=[["./chirp_1.wav", "hum"]])
    with pytest.raises(DatasetLayoutError, match=r"with another label \('hum', there 'chirp'\)"):
        parse_folder(str(csv_path))


# ----------------------------------------------------------------------- 6. one class, or a class never trained on


def test_a_single_class_is_refused(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    for i in range(3):
        sf.write(tmp_path / "d" / f"x{i}.wav", np.full(SR // 2, 0.1, np.float32), SR)
    (tmp_path / "d" / "labels.csv").write_text("filename,label\n" + "".join(f"x{i}.wav,dog\n" for i in range(3)))
    assert run(tmp_path / "d" / "labels.csv", tmp_path / "run") == 2
    captured = capsys.readouterr()
    assert "every row has the label 'dog'; a classifier needs at least two classes" in captured.err
    no_traceback(captured)


def test_a_class_with_one_clip_is_trained_on_and_a_class_without_training_clips_is_warned(tmp_path, capsys):
    csv_path = small_folder(tmp_path / "d")
    sf.write(tmp_path / "d" / "bell.wav", _sound(0, 0.5, SR, np.random.default_rng(9)), SR)
    with open(csv_path, "a") as f:
        f.write("bell.wav,bell\n")
    data = parse_folder(str(csv_path))
    train, _ = data.split(data.folds[0])
    assert data.classes.index("bell") in data.labels[train]  # its only clip is trained on, not held out

    csv_path = small_folder(tmp_path / "e", fold=lambda label, i: "test" if label == 2 or i == 0 else "train")
    assert main(["finetune", str(csv_path), *FAST[:-1], "--iterations", "2", "--evaluations", "1",
                 "-o", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "WARNING: 1 class(es) have no training clip, so the model cannot predict them: 'knock'" in out
    assert any("no training clip" in w for w in json.loads((tmp_path / "run" / "result.json").read_text())["warnings"])


# ----------------------------------------------------------------------- 11. sentences, not tracebacks


def test_fold_columns_without_a_held_out_or_training_side_are_explained(tmp_path, capsys):
    csv_path = small_folder(tmp_path / "d", fold=lambda label, i: "train")
    assert run(csv_path, tmp_path / "run") == 2
    captured = capsys.readouterr()
    assert "no held-out clips in fold 'test' (nothing to evaluate on); mark some rows 'test'" in captured.err
    no_traceback(captured)
    csv_path = small_folder(tmp_path / "e", fold=lambda label, i: 3)
    assert run(csv_path, tmp_path / "run") == 2
    assert "give the clips at least two different fold numbers" in capsys.readouterr().err


def test_a_latin1_csv_is_named_with_its_line(tmp_path, capsys):
    csv_path = small_folder(tmp_path / "d")
    with open(csv_path, "ab") as f:
        f.write("caf\u00e9.wav,hum\n".encode("latin-1"))
    assert run(csv_path, tmp_path / "run") == 2
    captured = capsys.readouterr()
    assert f"{csv_path}: line 14: byte 0xe9 is not UTF-8 text; save the file as UTF-8" in captured.err
    no_traceback(captured)


@pytest.mark.parametrize("option, message", [
    (["--clip-seconds", "-1"], "argument --clip-seconds: must be > 0, got -1"),
    (["--clip-seconds", "nan"], "argument --clip-seconds: must be > 0, got nan"),
    (["--evaluations", "0"], "argument --evaluations: must be > 0, got 0"),
    (["--threads", "0"], "argument --threads: must be > 0, got 0"),
    (["--iterations", "0"], "argument --iterations: must be > 0, got 0"),
    (["--device", "tpu9"], "--device tpu9: 'tpu9' is not a torch device; use auto, cpu, cuda, cuda:N or mps"),
])
def test_bad_options_are_one_line_before_anything_runs(tmp_path, capsys, option, message):
    csv_path = small_folder(tmp_path / "d", per_class=1)
    try:
        status = run(csv_path, tmp_path / "run", *option)
    except SystemExit as exc:  # argparse
        status = exc.code
    assert status == 2
    captured = capsys.readouterr()
    assert message in captured.err
    no_traceback(captured)
    assert not (tmp_path / "run").exists()


def test_an_unwritable_output_is_refused_before_training(tmp_path, capsys, monkeypatch):
    import panns_core.transfer.run_folder as run_folder

    csv_path = small_folder(tmp_path / "d")

    def read_only(path, exist_ok=False):
        raise PermissionError(errno.EROFS, "Read-only file system", path)

    monkeypatch.setattr(run_folder.os, "makedirs", read_only)
    assert run(csv_path, tmp_path / "ro" / "run") == 2
    captured = capsys.readouterr()
    assert f"--output {tmp_path / 'ro' / 'run'}: cannot create the folder (Read-only file system)" in captured.err
    no_traceback(captured)


def test_a_finetuned_model_can_be_finetuned_again(tmp_path, capsys):
    csv_path = small_folder(tmp_path / "d")
    assert run(csv_path, tmp_path / "first") == 0
    first = tmp_path / "first" / "model.pth"
    again = ["finetune", str(csv_path), "--strategy", "finetune", "--checkpoint", str(first), "--batch-size", "4",
             "--iterations", "2", "--evaluations", "1", "--threads", "1", "-q"]
    assert main(again + ["--backbone", BACKBONE, "-o", str(tmp_path / "second")]) == 0  # was "another architecture"
    assert json.loads((tmp_path / "second" / "result.json").read_text())["backbone"] == BACKBONE
    assert main(again + ["--backbone", "Cnn6", "-o", str(tmp_path / "third")]) == 2
    captured = capsys.readouterr()
    assert f"{first} is a fine-tuned {BACKBONE} (written by panns finetune), not a Cnn6: leave out --backbone" \
        in captured.err
    no_traceback(captured)


# ----------------------------------------------------------------------- 13. the last number shown is the one reported


def test_the_final_evaluation_is_shown_once_and_is_the_reported_accuracy(tmp_path, capsys, monkeypatch):
    calls = []
    real = runner_mod.recalibrate_batchnorm
    monkeypatch.setattr(runner_mod, "recalibrate_batchnorm", lambda *a, **k: calls.append(1) or real(*a, **k))
    csv_path = small_folder(tmp_path / "d")
    status = main(["finetune", str(csv_path), *FAST[:-1], "--iterations", "6", "--evaluations", "3",
                   "-o", str(tmp_path / "run")])
    assert status == 0
    captured = capsys.readouterr()
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert [h["step"] for h in result["history"]] == [2, 4, 6]
    assert len(calls) == 3  # one BatchNorm pass per evaluation; the one after step 6 is not repeated
    assert "evaluating after step 6" in captured.err  # the evaluation phase shows progress
    shown = [float(v) for v in __import__("re").findall(r"val_acc=([0-9.]+)", captured.err)]
    assert shown[-1] == pytest.approx(result["accuracy"], abs=5e-4) == result["history"][-1]["accuracy"]
    assert f"held-out accuracy {result['accuracy']:.3f}" in captured.out and "the last val_acc shown" in captured.out
    predictions = pd.read_csv(tmp_path / "run" / "predictions.csv")
    assert result["accuracy"] == pytest.approx(float((predictions["true"] == predictions["predicted"]).mean()))
