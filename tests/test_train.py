"""Training engine: config, exact resume, checkpoints, statistics, accumulation, early stop."""

import json

import numpy as np
import pytest
import torch

from panns_core.train import (
    TrainConfig,
    config_from_args,
    load_training_state,
    read_statistics,
    train,
)
from test_fsutil import killed_writer_leaves
from train_doubles import (
    stable_statistics,
    constant_net_factory,
    in_memory_data,
    killing_factory,
    tiny_config,
    tiny_net_factory,
)


# ----------------------------------------------------------------------------- config


def test_config_json_round_trip(tmp_path):
    config = tiny_config(tmp_path / "run", balanced="alternate", augmentation="none",
                         model_kwargs={"classes_num": 3}, eval_indexes={"eval": "/x/eval.h5"})
    path = tmp_path / "cfg.json"
    config.to_json(path)
    assert TrainConfig.from_json(path) == config
    assert config.model_spec() == {"name": "Cnn6", "kwargs": {
        "sample_rate": 8000, "window_size": 256, "hop_size": 80, "mel_bins": 32, "fmin": 50,
        "fmax": 4000, "classes_num": 3}}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"balanced": "sometimes"}, "balanced='sometimes' is not one of"),
        ({"augmentation": "specmix"}, "augmentation"),
        ({"precision": "fp8"}, "precision"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"batch_size": 6, "accumulation_steps": 5}, "accumulation_steps=5"),
        ({"batch_size": 6, "accumulation_steps": 4}, "whole pairs"),
        ({"mixup_alpha": 0}, "mixup_alpha"),
        ({"training_set": "full_train", "data_root": None}, "data_root"),
        ({"resume": ""}, "resume"),
    ],
)
def test_bad_config_values_raise_naming_the_field(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(tmp_path, **changes).validate()


def test_bad_config_file_names_file_and_field(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"model": "Cnn6", "data_root": "d", "batch_sise": 3}))
    with pytest.raises(ValueError, match=r"cfg\.json: unknown field\(s\) \['batch_sise'\]"):
        TrainConfig.from_json(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"cfg\.json: not valid JSON"):
        TrainConfig.from_json(path)


def test_command_line_overrides_config_file(tmp_path):
    path = tmp_path / "cfg.json"
    tiny_config(tmp_path / "run").to_json(path)
    config = config_from_args(["--config", str(path), "--iterations", "5", "--eval-splits",
                               '["eval", "balanced_train"]', "--channels-last", "true",
                               "--early-stop", "4", "--mixup-alpha", "0.5", "--quiet"])
    assert (config.iterations, config.eval_splits, config.channels_last) == (5, ["eval", "balanced_train"], True)
    assert (config.early_stop, config.mixup_alpha, config.batch_size) == (4, 0.5, 8)


def test_missing_index_files_are_named(tmp_path):
    config = tiny_config(tmp_path / "run", training_set="balanced_train", data_root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"balanced_train.*hdf5s/indexes/balanced_train\.h5 not found"):
        train(config)


# ----------------------------------------------------------------------------- the run


def test_run_folder_statistics_and_checkpoints(tmp_path):
    run = tmp_path / "run"
    train(tiny_config(run, keep_snapshots=True), data=in_memory_data())
    lines = read_statistics(run)
    assert [(l["iteration"], l["split"]) for l in lines] == [(0, "eval"), (3, "eval"), (6, "eval")]
    first = lines[0]
    assert first["train_loss"] is None and first["clips_per_second"] is None
    for line in lines[1:]:
        assert line["train_loss"] > 0 and line["clips_per_second"] > 0 and line["eval_seconds"] > 0
    expected_keys = {"iteration", "split", "mAP", "mAUC", "d_prime", "d_prime_mean_per_class", "AP", "AUC",
                     "classes_evaluated", "classes_without_positives", "train_loss", "wall_time_s",
                     "clips_per_second", "eval_seconds", "eval_set_sha256", "resample_mode", "num_clips", "selection"}
    assert set(first) == expected_keys
    assert len(first["AP"]) == 4 and first["num_clips"] == 16 and first["selection"] is True

    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["best.pt", "iter_3.pt", "iter_6.pt", "latest.pt"]
    latest = load_training_state(run / "checkpoints" / "latest.pt")
    assert latest["iteration"] == 6 and latest["progress"]["iteration"] == 6
    assert set(latest) >= {"model", "optimizer", "sampler", "mixup", "rng", "scaler", "progress", "config"}
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    maps = [l["mAP"] for l in lines]
    assert best["selection"] == {"split": "eval", "mAP": max(maps)}
    assert best["iteration"] == lines[int(np.argmax(maps))]["iteration"]

    saved = json.loads((run / "config.json").read_text())
    assert TrainConfig.from_dict(saved) == tiny_config(run, keep_snapshots=True)
    assert saved["eval_set_sha256"] == first["eval_set_sha256"]
    assert saved["run_info"]["classes_num"] == 4 and saved["run_info"]["clips_per_step"] == 16


def test_killed_and_resumed_run_equals_uninterrupted_run(tmp_path):
    """Kill during step 5 of 6 (last checkpoint at 3), resume: identical statistics and weights."""
    data, balanced = in_memory_data(), "balanced"
    full = tmp_path / "full"
    train(tiny_config(full, balanced=balanced), data=data)

    # The interrupted run loads with a worker process, which prefetches batches
    # beyond the checkpoint: the saved sampler state must still be the one at 3.
    broken = tmp_path / "broken"
    with pytest.raises(KeyboardInterrupt, match="simulated kill"):
        train(tiny_config(broken, balanced=balanced, num_workers=1), data=data, model_factory=killing_factory(5))
    assert [l["iteration"] for l in read_statistics(broken)] == [0, 3]
    # issue 24 case 12: a run SIGKILLed while writing latest.pt leaves latest.pt.<writer>.tmp behind
    assert len(killed_writer_leaves(broken / "checkpoints" / "latest.pt")) == 1
    train(tiny_config(broken, balanced=balanced, num_workers=1), data=data)  # auto-resume from latest.pt
    assert not [p.name for p in (broken / "checkpoints").iterdir() if ".tmp" in p.name]  # removed, not kept

    assert stable_statistics(read_statistics(broken)) == stable_statistics(read_statistics(full))
    a = torch.load(full / "checkpoints" / "latest.pt", weights_only=True)
    b = torch.load(broken / "checkpoints" / "latest.pt", weights_only=True)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert a["sampler"] == b["sampler"] and a["mixup"] == b["mixup"]


def test_resume_extends_a_finished_run_and_rejects_a_changed_recipe(tmp_path):
    data = in_memory_data()
    full = tmp_path / "full"
    train(tiny_config(full, iterations=6, balanced="alternate"), data=data)
    part = tmp_path / "part"
    train(tiny_config(part, iterations=3, balanced="alternate"), data=data)
    train(tiny_config(part, iterations=6, balanced="alternate"), data=data)
    # Iteration 3 was the final evaluation of the short run and is an evaluation
    # point of the long one too, so the files agree line for line.
    assert stable_statistics(read_statistics(part)) == stable_statistics(read_statistics(full))
    with pytest.raises(ValueError, match="batch_size=8, this config has 4"):
        train(tiny_config(part, iterations=9, batch_size=4, balanced="alternate"), data=data)
    with pytest.raises(ValueError, match="resume='never'"):
        train(tiny_config(part, resume="never", balanced="alternate"), data=data)


def test_gradient_accumulation_keeps_the_effective_batch(tmp_path):
    data = in_memory_data()
    one = torch.load(_final(train(tiny_config(tmp_path / "a", iterations=2), data=data,
                                  model_factory=tiny_net_factory)), weights_only=True)
    acc = torch.load(_final(train(tiny_config(tmp_path / "b", iterations=2, accumulation_steps=4), data=data,
                                  model_factory=tiny_net_factory)), weights_only=True)
    for key in one["model"]:
        torch.testing.assert_close(one["model"][key], acc["model"][key], rtol=1e-5, atol=1e-6)
    la = read_statistics(tmp_path / "a")[-1]["train_loss"]
    lb = read_statistics(tmp_path / "b")[-1]["train_loss"]
    assert lb == pytest.approx(la, rel=1e-5)


def _final(run_dir):
    return f"{run_dir}/checkpoints/latest.pt"


def test_best_checkpoint_uses_validation_split_when_present(tmp_path):
    run = tmp_path / "run"
    train(tiny_config(run, eval_splits=["eval", "validation"]), data=in_memory_data(validation=True),
          model_factory=tiny_net_factory)
    lines = read_statistics(run)
    assert [l["split"] for l in lines[:2]] == ["eval", "validation"]
    assert [l["selection"] for l in lines[:2]] == [False, True]
    val = [l for l in lines if l["split"] == "validation"]
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert best["selection"]["split"] == "validation"
    assert best["selection"]["mAP"] == max(l["mAP"] for l in val)


def test_early_stop_after_patience_without_improvement(tmp_path):
    run = tmp_path / "run"
    train(tiny_config(run, iterations=30, eval_every=3, checkpoint_every=100, early_stop=2), data=in_memory_data(),
          model_factory=constant_net_factory)
    assert [l["iteration"] for l in read_statistics(run)] == [0, 3, 6]
    assert load_training_state(run / "checkpoints" / "latest.pt")["iteration"] == 6


def test_bf16_autocast_on_cpu_and_fp16_refused(tmp_path):
    run = tmp_path / "run"
    train(tiny_config(run, iterations=2, eval_every=2, precision="bf16", channels_last=True), data=in_memory_data())
    lines = read_statistics(run)
    assert np.isfinite(lines[-1]["train_loss"]) and lines[-1]["mAP"] is not None
    with pytest.raises(ValueError, match="fp16.*CUDA"):
        train(tiny_config(tmp_path / "fp16", precision="fp16"), data=in_memory_data())


def test_no_mixup_and_uniform_sampler(tmp_path):
    run = tmp_path / "run"
    train(tiny_config(run, iterations=2, eval_every=2, augmentation="none", balanced="none"), data=in_memory_data())
    state = load_training_state(run / "checkpoints" / "latest.pt")
    assert state["mixup"] is None and state["sampler"]["kind"] == "train"
    assert state["sampler"]["pointer"] == 2 * 8  # 8 clips per step without mixup


# ----------------------------------------------------------------------------- on the generated corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from train_doubles import make_corpus

    return make_corpus(tmp_path_factory.mktemp("corpus"))


def test_loss_decreases_on_the_generated_corpus(corpus, tmp_path):
    """The paper's recipe (balanced sampler, mixup, Adam 1e-3) on packed HDF5 data via the real reader."""
    from train_doubles import TINY_MODEL

    run = tmp_path / "run"
    config = TrainConfig(**TINY_MODEL, data_root=corpus, training_set="balanced_train", eval_splits=["eval"],
                         batch_size=8, iterations=20, eval_every=10, checkpoint_every=1000, run_dir=str(run),
                         progress=False, device="cpu")
    train(config)
    lines = read_statistics(run)
    assert [l["iteration"] for l in lines] == [0, 10, 20]
    assert lines[2]["train_loss"] < lines[1]["train_loss"]
    assert lines[2]["mAP"] > lines[0]["mAP"]
    assert lines[0]["num_clips"] == 25 and lines[0]["classes_evaluated"] == 5
    from panns_core.data.pack import eval_set_sha256

    assert lines[0]["eval_set_sha256"] == eval_set_sha256(f"{corpus}/hdf5s/indexes/eval.h5")
    saved = json.loads((run / "config.json").read_text())
    assert saved["run_info"]["classes_num"] == 5  # from the index, not the 527 constant


def test_the_command_line_trains_the_config_it_is_given(corpus, tmp_path):
    """`python -m panns_core.train --config` runs the notebook's loop on that config, not the notebook's defaults."""
    import subprocess
    import sys

    from train_doubles import TINY_MODEL

    run = tmp_path / "cli_run"
    config = dict(TINY_MODEL, data_root=str(corpus), training_set="balanced_train", eval_splits=["eval"],
                  batch_size=4, iterations=2, eval_every=2, checkpoint_every=1000, run_dir=str(run),
                  progress=False, device="cpu")
    (tmp_path / "cfg.json").write_text(json.dumps(config))
    done = subprocess.run([sys.executable, "-m", "panns_core.train", "--config", str(tmp_path / "cfg.json")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [l["iteration"] for l in read_statistics(run)] == [0, 2]
    assert json.loads((run / "config.json").read_text())["data_root"] == str(corpus)


def test_iteration_snapshots_are_opt_in(tmp_path):
    train(tiny_config(tmp_path / "run"), data=in_memory_data())
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["best.pt", "latest.pt"]


def test_progress_lines_say_iteration_loss_rate_and_time_left(tmp_path, capsys):
    from panns_core.train import PROGRESS_PREFIX

    train(tiny_config(tmp_path / "run", iterations=4, eval_every=4, log_every_s=1e-9), data=in_memory_data())
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith(PROGRESS_PREFIX)]
    assert [l.split(",")[0] for l in lines] == [f"{PROGRESS_PREFIX}iteration {i}/4 ({25 * i:.1f} %)" for i in (1, 2, 3, 4)]
    loss = float(lines[0].split("loss ")[1].split(",")[0])
    assert loss > 0 and "clips/s" in lines[0] and "ETA " in lines[0]


def test_a_progress_line_after_evaluations_averages_every_step_since_the_last_line(tmp_path, capsys):
    """Evaluations reset the loss counters; a line spanning them still has the loss (was "loss n/a")."""
    from panns_core.train import PROGRESS_PREFIX

    train(tiny_config(tmp_path / "run", iterations=4, eval_every=2, log_every_s=1e9), data=in_memory_data())
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith(PROGRESS_PREFIX)]
    assert len(lines) == 1 and lines[0].startswith(f"{PROGRESS_PREFIX}iteration 4/4 (100.0 %), loss ")
    stats = [json.loads(l) for l in (tmp_path / "run" / "statistics.jsonl").read_text().splitlines()]
    period_losses = {s["iteration"]: s["train_loss"] for s in stats if s.get("train_loss") is not None}
    assert sorted(period_losses) == [2, 4]
    shown = float(lines[0].split("loss ")[1].split(",")[0])
    assert shown == pytest.approx(sum(period_losses.values()) / 2, abs=1e-4)


def test_a_second_trainer_of_one_run_folder_stops_naming_the_first(tmp_path):
    import subprocess
    import sys

    from panns_core.fsutil import LockHeld
    from panns_core.train import hold_run_folder, release_run_folders

    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from panns_core.train import hold_run_folder; hold_run_folder(sys.argv[1]); "
        "print('held', flush=True); time.sleep(60)"), str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockHeld, match=rf"run folder {run} is being written by pid {holder.pid} on host "):
            train(tiny_config(run), data=in_memory_data())
        assert not (run / "checkpoints").exists()
    finally:
        holder.kill()
        holder.wait()
    # The killed holder leaves no lock behind: the run trains, and the same process may train it again.
    train(tiny_config(run, iterations=3), data=in_memory_data())
    train(tiny_config(run, iterations=6), data=in_memory_data())
    hold_run_folder(str(run))
    release_run_folders()
