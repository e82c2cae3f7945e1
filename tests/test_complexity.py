"""Parameter and operation counts: the official count_flops convention and Table XII."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from panns_core import complexity as cx
from panns_core.checkpoints import skip_weight_init
from panns_core.models import create_model
from panns_core.paper import TABLE_XII


def _build(name: str, spec: dict) -> nn.Module:
    """The registered model with the spec's constructor arguments (weights left uninitialised:
    counts depend only on shapes)."""
    kwargs = dict(spec[name]["kwargs"])
    with skip_weight_init():
        return create_model(name, **kwargs)


def _clip_samples(spec: dict, name: str) -> int:
    return spec[name]["kwargs"]["sample_rate"] * 10


# --------------------------------------------------------------------------- the convention


class HandCounted(nn.Module):
    """Every rule of the official counter once, with sizes small enough to count by hand."""

    def __init__(self):
        super().__init__()
        self.conv2d = nn.Conv2d(1, 4, 3, padding=1, bias=True)
        self.bn2d = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.pool2d = nn.AvgPool2d(2)
        self.conv1d = nn.Conv1d(4, 4, 3, padding=1, groups=2, bias=False)
        self.pool1d = nn.MaxPool1d(2)
        self.bn1d = nn.BatchNorm1d(4)
        self.relu6 = nn.ReLU6()
        self.fc = nn.Linear(16, 3)
        self.frozen = nn.Linear(3, 3)
        self.frozen.requires_grad_(False)

    def forward(self, x):  # x: (1, 64)
        x = x.view(1, 1, 8, 8)
        x = self.pool2d(self.relu(self.bn2d(self.conv2d(x))))  # (1, 4, 4, 4)
        x = F.relu_(x)  # functional: not counted
        x = self.conv1d(x.reshape(1, 4, 16))  # (1, 4, 16)
        x = self.bn1d(self.pool1d(x))  # (1, 4, 8)
        x = self.relu6(x)  # ReLU6: not counted
        y2 = self.fc(x.reshape(1, 32)[:, :16])  # 2-D input
        y3 = self.fc(x.reshape(1, 2, 16))  # 3-D input: official quirk counts it once
        return self.frozen(y2 + y3.sum(1))


def test_count_multiply_adds_follows_the_official_rules():
    expected = {
        "Conv2d": 4 * 8 * 8 * (2 * 9 * 1 + 1),  # per output: 2 * k*k * C_in/groups + bias
        "BatchNorm2d": 2 * 4 * 8 * 8,
        "ReLU": 2 * 4 * 8 * 8,
        "AvgPool2d": 4 * 4 * 4 * (2 * 2),  # k*k per output
        "Conv1d": 4 * 16 * (2 * 3 * 2),  # groups=2: C_in/groups = 2, no bias
        "MaxPool1d": 4 * 8 * 2,
        "BatchNorm1d": 2 * 4 * 8,
        "Linear": (2 * 16 * 3 + 3) * 2 + (2 * 3 * 3 + 3),  # fc twice (3-D once), frozen once
    }
    breakdown = {}
    total = cx.count_multiply_adds(HandCounted(), 64, breakdown)
    assert breakdown == expected
    assert total == sum(expected.values())


def test_count_macs_is_plain_conv_and_linear():
    breakdown = {}
    total = cx.count_macs(HandCounted(), 64, breakdown)
    expected = {"Conv2d": 4 * 8 * 8 * 9, "Conv1d": 4 * 16 * 3 * 2,
                "Linear": 16 * 3 + 2 * 16 * 3 + 3 * 3}  # every time step of the 3-D call counts
    assert breakdown == expected and total == sum(expected.values())


def test_count_parameters_trainable_only():
    model = HandCounted()
    frozen = sum(p.numel() for p in model.frozen.parameters())
    assert cx.count_parameters(model) == sum(p.numel() for p in model.parameters()) - frozen


def test_hooks_removed_modes_restored_rng_untouched():
    model = HandCounted().train()
    model.bn2d.eval()  # a mixed state must come back exactly
    modes = {n: m.training for n, m in model.named_modules()}
    rng = torch.get_rng_state()
    cx.count_multiply_adds(model, 64)
    cx.count_macs(model, 64)
    assert all(not m._forward_hooks for m in model.modules())
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert torch.equal(torch.get_rng_state(), rng)
    # a failing forward (wrong length for the view) still removes every hook
    with pytest.raises(RuntimeError):
        cx.count_multiply_adds(model, 63)
    assert all(not m._forward_hooks for m in model.modules())
    assert {n: m.training for n, m in model.named_modules()} == modes


@pytest.mark.parametrize("bad", [0, -5, 1.5, "100", True])
def test_num_samples_is_validated(bad):
    with pytest.raises(ValueError, match="num_samples"):
        cx.count_multiply_adds(HandCounted(), bad)


# --------------------------------------------------------------------------- Table XII


@pytest.mark.slow(11)
def test_table_xii_reproduces_the_paper_and_the_official_counter(official_spec):
    df = cx.table_xii(with_macs=False)
    assert list(df["class"]) == [c for _, c in cx.TABLE_XI_MODELS] and len(df) == 15
    for _, row in df.iterrows():
        spec = official_spec[row["class"]]
        assert row["mult_adds"] == spec["mult_adds"], row["class"]  # exact official integer
        assert row["mult_adds_e9"] == round(TABLE_XII[row["class"]]["mult_adds"] / 1e9, 3)
        assert row["params"] == spec["params"] == TABLE_XII[row["class"]]["params"]
        assert row["mult_adds_match"] and row["params_match"]


# count_macs on a representative subset in the default run: a plain CNN, the
# separable MobileNet, a 1-D waveform model, an SED model (3-D Linear), a 16 kHz
# model and the transfer wrapper. The full sweep of all 30 classes is marked slow.
SUBSET = ["Cnn6", "MobileNetV2", "LeeNet11", "Cnn14_DecisionLevelAtt", "Cnn14_16k", "Transfer_Cnn14"]


def _check_against_spec(name, spec):
    model = _build(name, spec)
    n = _clip_samples(spec, name)
    assert cx.count_macs(model, n) == spec[name]["macs_conv_linear"]
    assert cx.count_multiply_adds(model, n) == spec[name]["mult_adds"]
    assert cx.count_parameters(model) == spec[name]["params"]
    assert all(not m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("name", SUBSET)
def test_counts_equal_the_spec(name, official_spec):
    _check_against_spec(name, official_spec)


@pytest.mark.slow(40)
def test_counts_equal_the_spec_for_every_class(official_spec):
    for name in official_spec:
        _check_against_spec(name, official_spec)


def test_counts_scale_with_input_and_sample_rate(official_spec):
    """Any length works; the official count for Cnn14_16k fed 320,000 samples (what main.py did)."""
    model = _build("Cnn14_16k", official_spec)
    assert cx.count_multiply_adds(model, 320_000) == official_spec["Cnn14_16k"]["mult_adds_with_320000_samples"]
    one_second = cx.count_macs(model, 16_000)
    assert 0 < one_second < official_spec["Cnn14_16k"]["macs_conv_linear"] / 9


def test_main_prints_the_table(capsys):
    assert cx.main(["--models", "MobileNetV1", "LeeNet11"]) == 0
    out = capsys.readouterr().out
    assert "| MobileNetV1 | MobileNetV1 | 3.614 | 3.614 | yes | 4,796,303 | 4,796,303 | yes | 1.791 |" in out
    assert "| LeeNet11 | LeeNet11 | 4.741 | 4.741 | yes | 748,367 | 748,367 | yes | 2.352 |" in out
    assert "all rows match the paper" in out
