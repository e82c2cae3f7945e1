"""One autocast helper, and the front-end rule: STFT/log-mel stay float32 under bf16 autocast."""

from __future__ import annotations

import copy

import pytest
import torch

from panns_core.models import create_model
from panns_core.precision import PRECISIONS, autocast, front_end_fp32


def test_autocast_rejects_unknown_precision_and_fp16_on_cpu():
    with pytest.raises(ValueError, match="precision must be one of"):
        autocast("cpu", "int8")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        autocast("cpu", "fp16")
    assert PRECISIONS == ("fp32", "bf16", "fp16")


def test_autocast_bf16_on_cpu_runs_matmul_in_bf16_and_fp32_is_a_no_op():
    a = torch.randn(4, 4)
    with autocast("cpu", "bf16"):
        assert (a @ a).dtype == torch.bfloat16
        with front_end_fp32() as suspended:
            assert suspended and (a @ a).dtype == torch.float32
        assert (a @ a).dtype == torch.bfloat16  # autocast is back after the front end
    with autocast(torch.device("cpu"), "fp32"), front_end_fp32() as suspended:
        assert not suspended and (a @ a).dtype == torch.float32


@torch.no_grad()
def _front_end_error(model, waveform, rule: bool) -> float:
    reference = model._logmel(waveform)
    with autocast("cpu", "bf16"):
        if rule:
            got = model._logmel(waveform)
        else:  # the same chain without the rule: what evaluation did before
            got = model.logmel_extractor(model.spectrogram_extractor(waveform))
            got = model.bn0(got.transpose(1, 3)).transpose(1, 3)
    return float((got.float() - reference).abs().max())


def test_models_keep_the_log_mel_front_end_in_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    model = create_model("Cnn6").eval()
    waveform = 0.1 * torch.randn(2, 32000)
    with_rule = _front_end_error(model, waveform, rule=True)
    without_rule = _front_end_error(model, waveform, rule=False)
    assert with_rule == 0.0  # bn0 with fresh statistics runs in fp32 under autocast too
    assert without_rule > 0.05  # a bf16 STFT taken to dB is visibly off: the rule matters
    # The rule lives in the model's code, so a copy (transfer strategies deep-copy the base) keeps it.
    assert _front_end_error(copy.deepcopy(model), waveform, rule=True) == 0.0
