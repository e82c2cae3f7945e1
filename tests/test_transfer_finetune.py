"""`panns finetune` on a folder of real-looking audio: progress, report folder, checkpoint for `panns tag`."""

import csv
import json
import math
import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from panns_core.cli import main
from panns_core.transfer.finetune import data_clip_seconds, diagnose

CLASSES = ("chirp", "hum", "knock")
RATES = (8000, 16000, 22050, 44100, 48000)


def _sound(label: int, seconds: float, sr: int, rng) -> np.ndarray:
    """Class-typical sounds with random pitch, level and noise (not pure tones)."""
    t = np.arange(max(1, int(seconds * sr))) / sr
    if label == 0:  # rising chirp
        f0 = rng.uniform(1500, 2500)
        x = np.sin(2 * np.pi * (f0 * t + 800 * t ** 2))
    elif label == 1:  # low harmonic hum
        f0 = rng.uniform(90, 140)
        x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
    else:  # knocks: decaying noise bursts
        x = np.zeros_like(t)
        for start in np.arange(0, seconds, 0.12):
            n = int(start * sr)
            burst = rng.standard_normal(min(len(t) - n, int(0.05 * sr)))
            x[n:n + len(burst)] += burst * np.exp(-np.arange(len(burst)) / (0.01 * sr))
    x = x / (np.abs(x).max() + 1e-9) * rng.uniform(0.2, 0.8)
    return (x + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def make_real_looking_folder(root, per_class: int = 8, seed: int = 0):
    """labels.csv + files at mixed rates, 0.2-12 s, some stereo, one corrupt; returns the CSV path."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows, n = [], 0
    for label, name in enumerate(CLASSES):
        for i in range(per_class):
            seconds = 12.0 if (label, i) == (1, 0) else float(rng.uniform(0.2, 0.8))
            sr = RATES[n % len(RATES)]
            x = _sound(label, seconds, sr, rng)
            if n % 3 == 0:
                x = np.stack([x, 0.8 * x], axis=1)  # stereo
            fname = f"{name}_{i:02d}.{'flac' if n % 4 == 0 else 'wav'}"
            sf.write(root / fname, x, sr)
            rows.append((fname, name))
            n += 1
    (root / "broken.wav").write_bytes(b"RIFF\x24\x80\x00\x00WAVEfmt " + bytes(40))
    rows.append(("broken.wav", "hum"))
    with open(root / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "label"])
        writer.writerows(rows)
    return root / "labels.csv"


def test_clip_seconds_is_the_95th_percentile_of_the_clips_rounded_up_to_whole_hops():
    spread = np.linspace(0.3, 1.2, 40)  # no outliers: the 38th of 40 durations covers 95 % of the clips
    assert data_clip_seconds(spread, 32000, 320) == pytest.approx(math.ceil(spread[37] * 100) / 100)
    assert data_clip_seconds([0.3021], 32000, 320) == pytest.approx(0.31)  # rounded up, never down
    assert data_clip_seconds([0.05], 32000, 320, min_samples=9600) == pytest.approx(0.3)  # backbone minimum
    with pytest.raises(ValueError, match="no clip durations"):
        data_clip_seconds([], 32000, 320)


def test_one_long_recording_does_not_set_the_clip_length():
    # issue 24 case 2: 18 clips of 0.3-0.7 s and one 2-hour recording gave clip_seconds = 720.6
    durations = np.concatenate([np.linspace(0.3, 0.7, 18), [7200.0]])
    seconds, note = data_clip_seconds(durations, 32000, 320, explain=True)
    assert seconds == pytest.approx(0.7)
    assert "1 longer outlier(s)" in note and "of 18 clip durations" in note
    # a corpus of long clips is capped at AudioSet's 10 s (an explicit --clip-seconds may ask for more)
    seconds, note = data_clip_seconds(np.full(40, 30.0), 32000, 320, explain=True)
    assert seconds == pytest.approx(10.0) and "capped at 10 s" in note


def test_chance_and_uniform_loss_warnings_say_what_to_change():
    labels = np.repeat(np.arange(4), 25)
    always_zero = np.zeros(100, dtype=int)
    stuck = diagnose(0.25, labels, always_zero, [math.log(4) + 0.01] * 50, 4, "scratch")
    assert len(stuck) == 3
    assert "chance level" in stuck[0] and "after 50 steps" in stuck[0] and "freeze_l3" in stuck[0]
    assert "--iterations" in stuck[0] and "--learning-rate" not in stuck[0]  # the default rate was used
    low_rate = diagnose(0.25, labels, always_zero, [math.log(4) + 0.01] * 50, 4, "scratch", learning_rate=1e-4)
    assert "--learning-rate 0.0001 is below the scratch default 0.001" in low_rate[0]
    assert "one class for 100%" in stuck[1]
    assert "uniform-guess loss ln 4" in stuck[2]
    # With the passes known, the advice names the step count the measurement suggests (20 passes).
    few = diagnose(0.25, labels, always_zero, [math.log(4) + 0.01] * 50, 4, "scratch", passes=5.0)
    assert "This run made 5.0 passes: raise --iterations to about 200" in few[0]
    good = diagnose(0.9, labels, labels, list(np.linspace(1.4, 0.1, 50)), 4, "finetune")
    assert good == []
    # 0.32 on 100 clips of 4 balanced classes is within two standard errors of 0.25: still chance
    assert "chance level" in diagnose(0.32, labels, labels, [0.5], 4, "finetune")[0]


def test_panns_finetune_writes_report_and_its_checkpoint_tags_with_user_labels(tmp_path, capsys):
    torch.set_num_threads(1)
    csv_path = make_real_looking_folder(tmp_path / "sounds")
    out = tmp_path / "run"
    status = main(["finetune", str(csv_path), "--strategy", "scratch", "--backbone", "MobileNetV1",
                   "--iterations", "6", "--batch-size", "4", "--evaluations", "3", "--output", str(out)])
    assert status == 0
    captured = capsys.readouterr()
    assert "6/6" in captured.err and "val_acc=" in captured.err and "loss=" in captured.err  # tqdm bar
    assert "skipped" in captured.out and "broken.wav" in captured.out
    assert "clip_seconds = " in captured.out and "95th percentile of 23 clip durations" in captured.out
    assert "1 longer outlier(s)" in captured.out  # the 12-s clip

    result = json.loads((out / "result.json").read_text())
    assert result["classes"] == list(CLASSES)
    assert len(result["skipped"]) == 1 and result["skipped"][0][0].endswith("broken.wav")
    assert [h["step"] for h in result["history"]] == [2, 4, 6]
    assert result["train_clips"] + result["test_clips"] == 24
    assert 0.2 <= result["clip_seconds"] < 12.0
    assert math.isclose(result["clip_seconds"] * 32000 / 320, round(result["clip_seconds"] * 100))  # whole hops

    predictions = pd.read_csv(out / "predictions.csv")
    assert list(predictions.columns) == ["file", "true", "predicted"] + [f"p_{c}" for c in CLASSES]
    assert len(predictions) == result["test_clips"]
    assert np.allclose(predictions[[f"p_{c}" for c in CLASSES]].sum(axis=1), 1.0, atol=1e-5)
    assert result["accuracy"] == pytest.approx(float((predictions["true"] == predictions["predicted"]).mean()))
    per_class = pd.read_csv(out / "per_class.csv")
    assert list(per_class["class"]) == list(CLASSES) and per_class["support"].sum() == len(predictions)
    for png in ("confusion_matrix.png", "training_curve.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    state = torch.load(out / "model.pth", map_location="cpu", weights_only=True)  # plain, safe to load
    assert state["extra"]["labels"] == list(CLASSES) and state["extra"]["backbone"] == "MobileNetV1"
    assert state["extra"]["clip_seconds"] == result["clip_seconds"]
    assert state["extra"]["pad"] == result["settings"]["pad"] == "repeat"  # short clips repeated, by default

    new = tmp_path / "new.wav"
    sf.write(new, _sound(0, 0.7, 44100, np.random.default_rng(5)), 44100)
    tags_csv = tmp_path / "tags.csv"
    assert main(["tag", str(new), "--checkpoint", str(out / "model.pth"), "-k", "3", "-o", str(tags_csv)]) == 0
    tags = pd.read_csv(tags_csv)
    assert sorted(tags["label"]) == sorted(CLASSES)
    assert tags["score"].sum() == pytest.approx(1.0, abs=1e-5)  # softmax over the user's classes

    from panns_core.inference import Pretrained

    model = Pretrained.load(str(out / "model.pth"))
    assert model.labels.names == CLASSES
    assert model.window_samples == round(result["clip_seconds"] * 32000)
    assert model.pad == "repeat"  # tagging fills short files the way training did
    # the same model as the report: the held-out probabilities come back through Pretrained
    first = predictions[predictions["file"] != "hum_00.wav"].iloc[0]  # hum_00 is the 12-s clip
    tagged = model.tag(os.path.join(tmp_path / "sounds", first["file"]))[0]
    assert len(tagged.chunk_starts_s) == 1  # held-out clips are at most clip_seconds long
    assert np.allclose(tagged.clipwise, first[[f"p_{c}" for c in CLASSES]].to_numpy(float), atol=1e-4)


def test_finetune_needs_a_checkpoint_unless_scratch(tmp_path, capsys):
    csv_path = make_real_looking_folder(tmp_path / "sounds", per_class=2)
    status = main(["finetune", str(csv_path), "--strategy", "freeze_l1", "--backbone", "Cnn6",
                   "--output", str(tmp_path / "run")])
    assert status == 2
    assert "give checkpoint=" in capsys.readouterr().err


def test_finetune_on_a_missing_gpu_is_a_clear_error(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    csv_path = make_real_looking_folder(tmp_path / "sounds", per_class=2)
    status = main(["finetune", str(csv_path), "--strategy", "scratch", "--backbone", "MobileNetV1",
                   "--device", "cuda", "--output", str(tmp_path / "run")])
    assert status == 2
    assert "CUDA is not available" in capsys.readouterr().err


TINY_FRONT_END = {"sample_rate": 16000, "window_size": 512, "hop_size": 320, "mel_bins": 32, "fmax": 8000}


def _logmel_statistics(base, waves: np.ndarray):
    """Per-mel-bin mean and unbiased variance of the backbone's log-mel over ``waves`` (what bn0 normalises)."""
    with torch.no_grad():
        x = base.logmel_extractor(base.spectrogram_extractor(torch.from_numpy(waves)))  # (B, 1, T, mel)
    flat = x[:, 0].reshape(-1, x.shape[3])
    return flat.mean(0), flat.var(0, unbiased=True)


def test_recalibrated_batchnorm_holds_the_training_clips_statistics(tmp_path):
    from panns_core.transfer.audio import ClipAudio, clip_segments
    from panns_core.transfer.folder import parse_folder
    from panns_core.transfer.runner import TransferConfig, TransferRunner, recalibrate_batchnorm
    from panns_core.transfer.strategies import base_of

    torch.set_num_threads(1)
    data = parse_folder(str(make_real_looking_folder(tmp_path / "sounds", per_class=4)))
    audio = ClipAudio(16000)
    data = audio.load(data)
    cfg = TransferConfig(backbone="Cnn6", backbone_overrides=TINY_FRONT_END, clip_seconds=0.7, eval_batch_size=64)
    runner = TransferRunner(data, audio, cfg)
    model = runner.build("scratch", 0)
    train_idx, _ = data.split(data.folds[0])
    bn0 = base_of(model).bn0
    bn0.running_mean.fill_(123.0)  # stale statistics, e.g. from the last batches of a short run
    bn0.running_var.fill_(1e-3)
    model.train()

    assert recalibrate_batchnorm(model, data, audio, train_idx, cfg) == 5  # bn0 + one per 5x5 conv block
    waves = np.concatenate([clip_segments(audio[data.clips[int(i)].clip_id], 16000, 0.7, None)
                            for i in train_idx]).astype(np.float32)
    mean, var = _logmel_statistics(base_of(model), waves)
    assert len(train_idx) < 64  # one batch: running statistics = the training clips' exact statistics
    assert torch.allclose(bn0.running_mean, mean, rtol=1e-4, atol=1e-3)
    assert torch.allclose(bn0.running_var, var, rtol=1e-3)
    assert model.training and bn0.momentum == 0.1  # mode and momentum restored
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recalibrate_batchnorm(model, data, audio, train_idx, cfg)  # no dropout / SpecAugment: deterministic
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())



def test_new_head_rate_is_refused_for_a_frozen_strategy(tmp_path, capsys):
    csv_path = make_real_looking_folder(tmp_path / "sounds", per_class=2)
    (tmp_path / "never_read.pth").write_bytes(b"")  # refused before the checkpoint or the audio is read
    status = main(["finetune", str(csv_path), "--strategy", "freeze_l3", "--backbone", "Cnn6",
                   "--checkpoint", str(tmp_path / "never_read.pth"), "--new-head-learning-rate", "1e-3",
                   "--output", str(tmp_path / "run")])
    assert status == 2
    assert "freeze_l3 trains only its head: use learning_rate" in capsys.readouterr().err
