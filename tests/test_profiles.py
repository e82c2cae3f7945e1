"""Every packaged profile is runnable as written: its stages pass only parameters their
notebooks declare, and every training run line is a valid TrainConfig.

The tiny profile is executed end to end in test_study_workflow.py; smoke and full are too
long (or need AudioSet) for the suite, so they are checked statically here.
"""

import os
import re

import pytest

from panns_core.study.profiles import ProfileError, declared_parameters, derive_stages, load_profile
from panns_core.models import list_models
from panns_core.train import TrainConfig

NOTEBOOKS = os.path.join(os.path.dirname(__file__), "..", "notebooks")


@pytest.mark.parametrize("name", ["smoke", "full", "tiny", "default"])
def test_profile_stages_match_their_notebooks_and_configs(name):
    profile = load_profile(name)
    stages = derive_stages(profile)
    assert stages[-2].name == "manifest" and stages[-1].name == "build_report"
    for stage in stages:
        if not stage.notebook:
            continue
        declared = declared_parameters(os.path.join(NOTEBOOKS, f"{stage.notebook}.ipynb"))
        assert set(stage.parameters) <= declared, (stage.name, set(stage.parameters) - declared)
        config = stage.parameters.get("config")
        if stage.name.startswith("train_"):
            # The notebook adds the data root and run folder of the profile.
            config = {**config, "data_root": stage.parameters["data_root"],
                      "run_dir": os.path.join(stage.parameters["run_root"], "train", stage.parameters["run_name"])}
            train_config = TrainConfig.from_dict(config, source=f"{name}:{stage.name}")
            assert train_config.model in list_models()


def test_smoke_exercises_every_ablation_axis_and_full_has_every_paper_run():
    smoke, full = load_profile("smoke"), load_profile("full")
    groups = {"architectures", "balancing_augmentation", "hop_size", "embedding_size",
              "data_amount", "sample_rate", "mel_bins"}
    for profile in (smoke, full):
        used = {g for run in profile["runs"].values() for g in run.get("groups", [])}
        assert used == groups, profile["name"]
    full_models = {run.get("model", full["train"].get("model")) for run in full["runs"].values()}
    # The 15 architectures of Table XI are all trained in the full profile.
    assert set(list_models()[:15]) <= full_models


# --------------------------------------------------------------------------- strict reading (a typo never runs)


def _tiny_text():
    with open(load_profile("tiny")["_path"]) as f:
        return f.read()


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("\ntrain:\n", "\ntrian:\n"), "unknown key 'trian'; did you mean 'train'?"),
    (lambda t: t.replace("  iterations: 2\n", "  iteratons: 2\n"), "unknown key train.'iteratons'; did you mean 'iterations'?"),
    (lambda t: t.replace("  generate: {", "  generat: {"), "unknown key data.'generat'; did you mean 'generate'?"),
    (lambda t: t.replace("num_classes: 6", "num_clases: 6"), "unknown key data.generate.'num_clases'; did you mean 'num_classes'?"),
    (lambda t: t.replace("validation_fraction: 0.2", "validaton_fraction: 0.2"), "unknown key data.pack.'validaton_fraction'"),
    (lambda t: t.replace("mel_32: {mel_bins: 32", "mel_32: {mel_bin: 32"), "unknown key runs.mel_32.'mel_bin'; did you mean 'mel_bins'?"),
    (lambda t: t.replace("      max_clips: 8", "      max_clip: 8"), "unknown key notebooks.04_evaluate_system.'max_clip'; did you mean 'max_clips'?"),
    (lambda t: t + "cluster: {train: {runtime: 60}}\n", "unknown key cluster.train.'runtime'; did you mean 'runtime_minutes'?"),
    (lambda t: t.replace("\njobs: 2", "\njobs: 2\njobs: 1"), "key 'jobs' appears twice in one mapping"),
    (lambda t: t.replace("  iterations: 2\n", "  iterations: two\n"), "run 'base'"),
])
def test_a_typo_anywhere_in_a_profile_is_refused_before_anything_runs(tmp_path, edit, message):
    path = tmp_path / "typo.yaml"
    path.write_text(edit(_tiny_text()))
    with pytest.raises(ProfileError, match=re.escape(message)) as info:
        load_profile(str(path))
    assert str(path) in str(info.value)


def test_the_acquire_section_is_checked_against_its_source(tmp_path):
    text = _tiny_text().replace("data_source: generated", "data_source: audioset")
    path = tmp_path / "hf.yaml"
    path.write_text(text.replace("  pack: {", "  acquire: {source: hf, workers: 2, cookies: c.txt}\n  pack: {"))
    with pytest.raises(ProfileError, match=r"unknown key data.acquire \(source hf\).'cookies'"):
        load_profile(str(path))
    path.write_text(text.replace("  pack: {", "  acquire: {source: yt-dlp, workers: 2, cookies: c.txt}\n  pack: {"))
    assert load_profile(str(path))["data"]["acquire"]["cookies"] == "c.txt"


def test_the_command_line_refuses_a_misspelt_profile_in_one_line(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "typo.yaml"
    path.write_text(_tiny_text().replace("\ntrain:\n", "\ntrian:\n"))
    for extra in (["--list"], ["--only", "train_base"]):
        done = subprocess.run([sys.executable, "-m", "panns_core.study", "--profile", str(path), "--root",
                               str(tmp_path), *extra], capture_output=True, text=True)
        assert done.returncode == 2 and "did you mean 'train'?" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()  # nothing ran, nothing was written
