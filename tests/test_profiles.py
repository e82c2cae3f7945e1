"""Every packaged profile is runnable as written: its stages pass only parameters their
notebooks declare, and every training run line is a valid TrainConfig.

The tiny profile is executed end to end in test_pipeline.py; smoke and full are too
long (or need AudioSet) for the suite, so they are checked statically here.
"""

import os

import pytest

from panns_core.study.profiles import declared_parameters, derive_stages, load_profile
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
