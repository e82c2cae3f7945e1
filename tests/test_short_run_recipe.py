"""Short-run recipe options: SpecAugment widths scaled to the clip, learning-rate warm-up."""

import pytest
import torch

from panns_core.models import create_model
from panns_core.models.frontend import scaled_time_drop_width, set_spec_augment
from panns_core.train import load_training_state, read_statistics, run_loop, train
from train_doubles import in_memory_data, stable_statistics, killing_factory, tiny_config, tiny_net_factory


def test_scaled_time_drop_width_keeps_the_papers_fraction():
    assert scaled_time_drop_width(1001) == 64  # the paper: 10-s clip, hop 320
    assert scaled_time_drop_width(101) == 6    # 1-s clip
    assert scaled_time_drop_width(501) == 32
    assert scaled_time_drop_width(3) == 1      # never zero
    assert scaled_time_drop_width(101, paper_width=128) == 13
    with pytest.raises(ValueError, match="clip_frames"):
        scaled_time_drop_width(0)


def test_set_spec_augment_changes_the_model_in_place():
    model = create_model("Cnn6", classes_num=3)
    keys = list(model.state_dict())
    set_spec_augment(model, time_drop_width=6, freq_drop_width=4, freq_stripes_num=1)
    aug = model.spec_augmenter
    assert (aug.time_dropper.drop_width, aug.time_dropper.stripes_num) == (6, 2)
    assert (aug.freq_dropper.drop_width, aug.freq_dropper.stripes_num) == (4, 1)
    assert list(model.state_dict()) == keys  # no new parameters or buffers
    # A 20-frame input trains now (the paper's 64-frame stripes refuse it).
    model.train()
    out = model(torch.randn(2, 320 * 19))
    assert out["clipwise_output"].shape == (2, 3)


def test_set_spec_augment_rejects_models_without_it_and_bad_widths():
    with pytest.raises(ValueError, match="LeeNet11 has no SpecAugment"):
        set_spec_augment(create_model("LeeNet11", classes_num=3), time_drop_width=6)
    with pytest.raises(ValueError, match="time_drop_width must be an integer >= 1"):
        set_spec_augment(create_model("Cnn6", classes_num=3), time_drop_width=0)


def test_short_clip_error_names_the_configured_width():
    model = create_model("Cnn6", classes_num=3).train()
    with pytest.raises(ValueError, match="up to 64 frames"):
        model(torch.randn(2, 320 * 19))


def test_the_loop_applies_the_configured_width_and_keeps_the_model_default_otherwise(tmp_path):
    data = in_memory_data()
    factory = lambda config, n: create_model("Cnn6", classes_num=n)  # noqa: E731
    short = dict(iterations=1, eval_every=1)
    model = run_loop(tiny_config(tmp_path / "a", spec_augment_time_width=6, **short), data=data, model_factory=factory)["model"]
    assert model.spec_augmenter.time_dropper.drop_width == 6
    assert model.spec_augmenter.freq_dropper.drop_width == 8  # the model's own frequency stripes stay
    # No step: the paper's 64-frame stripes cannot train on these short clips, only build.
    model = run_loop(tiny_config(tmp_path / "b", iterations=0, eval_every=1), data=data, model_factory=factory)["model"]
    assert model.spec_augmenter.time_dropper.drop_width == 64


def test_warmup_scales_the_learning_rate_linearly(tmp_path):
    run = tmp_path / "run"
    train(tiny_config(run, iterations=3, eval_every=3, warmup_iterations=4, learning_rate=1e-3), data=in_memory_data())
    state = load_training_state(run / "checkpoints" / "latest.pt")
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3 * 3 / 4)  # third step


def test_warmup_run_resumes_exactly(tmp_path):
    data = in_memory_data()
    full, broken = tmp_path / "full", tmp_path / "broken"
    train(tiny_config(full, warmup_iterations=5), data=data)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(broken, warmup_iterations=5), data=data, model_factory=killing_factory(5))
    train(tiny_config(broken, warmup_iterations=5), data=data)
    assert stable_statistics(read_statistics(broken)) == stable_statistics(read_statistics(full))


def test_bad_recipe_values_name_the_field(tmp_path):
    with pytest.raises(ValueError, match="warmup_iterations must be an integer >= 0"):
        tiny_config(tmp_path, warmup_iterations=-1).validate()
    with pytest.raises(ValueError, match="spec_augment_time_width must be an integer >= 1"):
        tiny_config(tmp_path, spec_augment_time_width=0).validate()


def test_default_profile_is_a_paired_design():
    """Every arm: seeds 1-3 at least (the arms of a claim the same seeds), the whole eval split, an evaluation at the control's budget;
    every claim the profile does not arm has its reason in ``dropped``."""
    import re

    from panns_core.study import findings
    from panns_core.study.profiles import load_profile

    profile = load_profile("default")
    runs, defaults = profile["runs"], profile["train"]
    arms = {}
    for name, spec in runs.items():
        arms.setdefault(re.sub(r"_seed\d+$", "", name), set()).add(spec["seed"])
    assert all(len(seeds) >= findings.MIN_SEEDS and {1, 2, 3} <= seeds for seeds in arms.values()), arms
    assert arms["sr_8k"] == arms["sr_16k"]  # the arms of one claim: the same seeds
    assert profile["reference_run"] == "control_seed1" and "max_eval_clips" not in defaults
    budget = defaults["iterations"]
    for name, spec in runs.items():
        config = {**defaults, **spec}
        evaluated = set(range(0, config["iterations"] + 1, config["eval_every"])) | {config["iterations"]}
        assert budget in evaluated, name  # every arm has a same-iteration partner in the control
        assert config.get("max_eval_clips") is None, name
    dropped = profile["dropped"]
    armed = {"balanced_sampling", "mixup", "more_data", "full_vs_balanced_set", "sample_rate"}
    for claim in findings.CLAIMS:
        assert (claim.id in armed) != (claim.id in dropped), claim.id
