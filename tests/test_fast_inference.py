"""The inference copy: BatchNorm folding is exact, bf16 stays close, precision follows the hardware."""

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from panns_core import fast_inference
from panns_core.demo_audio import synthetic_signal
from panns_core.fast_inference import (
    top10_agreement,
    FoldError, calibrate_batchnorm, conv_bn_pairs, default_precision, fold_batchnorm, prepare_for_inference,
    probe_input,
)
from panns_core.inference import Pretrained
from panns_core.labels import labels_for
from panns_core.models import create_model, model_info


def realistic_batch(sample_rate=32000, seconds=1.0, seed=0):
    kinds = ("tone", "chirp", "bursts", "clicks")
    return torch.from_numpy(np.stack([synthetic_signal(k, sample_rate, seconds, seed=seed + i)
                                      for i, k in enumerate(kinds)]).astype(np.float32))


def calibrated(name):
    torch.manual_seed(0)
    model = create_model(name)
    rate = model.audio_config.sample_rate
    return calibrate_batchnorm(model, [realistic_batch(rate, 1.0, seed=s) for s in (10, 20)])


@pytest.mark.parametrize("name", ["Cnn6", "MobileNetV1", "LeeNet11"])
def test_folded_model_equals_unfolded_in_eval_mode(name):
    model = calibrated(name)
    # every BatchNorm of the trunk follows a convolution; only the log-mel bn0 does not
    norms = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    pairs = len(norms) - (1 if hasattr(model, "logmel_extractor") else 0)
    x = realistic_batch(model.audio_config.sample_rate)
    with torch.no_grad():
        want = model(x)
    found = conv_bn_pairs(model, x)
    assert len(found) == pairs
    folded = fold_batchnorm(prepare_for_inference(model, fold=False, channels_last=False))
    assert sum(isinstance(m, nn.Identity) for m in folded.modules()) == pairs
    with torch.no_grad():
        got = folded(x)
    for key in want:  # float32 rounding only: within 1e-4 of each output's own scale
        scale = want[key].abs().max()
        assert (got[key] - want[key]).abs().max() <= 1e-4 * scale, key
    # the original keeps its BatchNorms (its state_dict still matches the checkpoints)
    assert set(model.state_dict()) == set(create_model(name).state_dict())


def test_folding_refuses_a_conv_output_with_another_consumer():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.conv(x[:, None, :, None])
            return {"out": self.bn(y) + y}  # y is used twice: folding would change the sum

    model = Branchy()
    with torch.no_grad():
        model.bn.running_mean.fill_(0.5)
        model.bn.running_var.fill_(4.0)
    model.eval()
    with pytest.raises(FoldError, match="kept unfolded"):
        fold_batchnorm(model, torch.randn(2, 16))
    assert isinstance(model.bn, nn.BatchNorm2d)  # restored


def test_bf16_copy_keeps_front_end_fp32_and_stays_close():
    model = calibrated("Cnn6")
    fast = prepare_for_inference(model, "bf16")
    assert fast.logmel_extractor.melW.dtype == torch.float32 and fast.bn0.weight.dtype == torch.float32
    assert fast.conv_block1.conv1.weight.dtype == torch.float32  # FP32_MODULES["LogmelCnn"]
    assert fast.conv_block2.conv1.weight.dtype == torch.bfloat16
    assert fast.fc_audioset.weight.dtype == torch.float32  # the head stays fp32
    x = realistic_batch(seed=5)
    with torch.inference_mode():
        want = model(x)["clipwise_output"]
        got = fast(x)["clipwise_output"].float()
    assert (got - want).abs().max() <= 0.03
    assert model.conv_block1.conv1.weight.dtype == torch.float32  # the original is untouched


@pytest.mark.slow(11)
def test_cnn14_bf16_copy_within_0_03_and_same_top10(load_benchmark):
    """The issue's accuracy target on Cnn14 (calibrated random weights, 2 clips x 3 s).

    Same weights recipe as benchmarks/bench_inference_bf16.py (BatchNorm and output
    scale calibrated on its synthetic clips), so the outputs spread like a trained
    model's instead of sitting at 0.5.
    """
    bench = load_benchmark("bench_inference_bf16")
    torch.manual_seed(0)
    model = create_model("Cnn14")
    calib = bench.synthetic_clips(8, 32000, 3.0, seed=1)
    bench.calibrate_batchnorm(model, calib)
    bench.calibrate_head(model, calib)
    fast = prepare_for_inference(model, "bf16")
    # what stays float32: the front end, the first conv block, the fully connected layers
    fp32 = {name for name, p in fast.named_parameters() if p.dtype == torch.float32}
    assert fp32 == {name for name, _ in fast.named_parameters()
                    if name.startswith(("spectrogram_extractor", "logmel_extractor", "bn0", "conv_block1.",
                                        "fc1", "fc_audioset"))}
    assert all(p.dtype == torch.bfloat16 for name, p in fast.named_parameters() if name not in fp32)
    assert fast_inference.trunk_output_module(fast) == "conv_block6"
    x = torch.from_numpy(bench.synthetic_clips(2, 32000, 3.0, seed=0))
    with torch.inference_mode():
        want = prepare_for_inference(model, "fp32")(x)["clipwise_output"]
        got = fast(x)["clipwise_output"].float()
    assert want.std(dim=1).min() > 0.05  # a real spread of probabilities, not a constant
    assert (got - want).abs().max() <= 0.03
    # top-10 unchanged, except that labels tied with fp32's 10th (within NEAR_TIE) may trade places
    # (here the second clip's 10th and 11th are 0.0017 apart, below bf16's typical error)
    changed, same_up_to_ties = top10_agreement(got.numpy(), want.numpy())
    assert same_up_to_ties == 2 and changed <= 1


@pytest.mark.parametrize("native, cpu_choice", [(True, "bf16"), (False, "fp32")])
def test_default_precision_follows_cpu_bf16_support(monkeypatch, native, cpu_choice):
    monkeypatch.setattr(fast_inference, "cpu_has_native_bf16", lambda: native)
    assert default_precision("cpu") == cpu_choice
    model = Pretrained(create_model("Cnn6"), "Cnn6", model_info("Cnn6").config,
                       labels_for(527),
                       precision="auto")
    assert model.precision == cpu_choice


def test_pretrained_runs_on_the_fast_copy_and_matches_plain_model():
    model = calibrated("Cnn6")
    wave = realistic_batch(seed=7)[0].numpy()
    fast = Pretrained(model, "Cnn6", model_info("Cnn6").config, labels_for(527), precision="fp32")
    plain = Pretrained(model, "Cnn6", model_info("Cnn6").config, labels_for(527), precision="fp32",
                       optimize=False)
    (a,), (b,) = fast.tag(wave), plain.tag(wave)
    np.testing.assert_allclose(a.clipwise, b.clipwise, rtol=1e-4, atol=1e-5)
    assert fast.fast_model is not model and plain.fast_model is model
    assert probe_input(model).shape == (2, 32000)


@pytest.mark.parametrize("whole_model", [False, True])
def test_batchnorm_statistics_are_the_average_of_what_ran_and_modes_come_back(whole_model):
    from panns_core.runtime import collecting_batchnorm_statistics

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.5), torch.nn.BatchNorm1d(4))
    net.eval()
    net[2].momentum = 0.3
    batches = [torch.randn(5, 3) for _ in range(3)]
    with collecting_batchnorm_statistics(net, whole_model_in_train_mode=whole_model) as count:
        assert count == 1 and net[2].training and net[1].training == whole_model
        for b in batches:
            net(b)
    assert not any(m.training for m in net.modules()) and net[2].momentum == 0.3
    if not whole_model:  # dropout off: the statistics are exactly those of the linear layer's outputs
        with torch.no_grad():
            outs = [net[0](b) for b in batches]
        assert torch.allclose(net[2].running_mean, torch.stack([o.mean(0) for o in outs]).mean(0), atol=1e-6)
        assert torch.allclose(net[2].running_var, torch.stack([o.var(0) for o in outs]).mean(0), atol=1e-6)


@pytest.mark.slow(12)
def test_inference_benchmark_times_the_compiled_copies(load_benchmark, monkeypatch, tmp_path):
    """``bench_inference_bf16.py --compile`` in a reduced run; torch.compile is replaced by a
    recorder (a real inductor build of a CNN takes minutes on a small CPU)."""
    bench = load_benchmark("bench_inference_bf16")
    compiled = []

    def record(module, *args, **kwargs):
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", record)
    out = tmp_path / "bench.json"
    assert bench.main(["--models", "Cnn6", "--batch-size", "1", "--clips", "1", "--repeats", "1",
                       "--compile", "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())["results"]
    # the fp32 and bf16 inference copies (BatchNorm folded, channels_last) are what gets compiled
    assert [next(m.parameters()).dtype for m in compiled] == [torch.float32, torch.float32]
    assert [m.conv_block2.conv1.weight.dtype for m in compiled] == [torch.float32, torch.bfloat16]
    assert all(not any(isinstance(x, torch.nn.BatchNorm2d) for x in m.conv_block2.modules())
               for m in compiled)
    for key in ("compiled", "bf16_compiled"):
        assert row[f"{key}_first_call_s"] > 0 and row[f"{key}_clips_per_s"] > 0
        assert row[f"{key}_max_abs_diff_vs_uncompiled"] == 0.0  # the recorder compiles nothing


@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-5), ("bf16", 2e-3)])
def test_compiled_copy_runs_under_inference_mode_and_matches(precision, tolerance):
    """``compile=True`` as ``panns tag --compile`` uses it (a real inductor build of Cnn6, 2-s clips):
    the FFT front end's weight check must not break tracing under ``inference_mode``, and the
    compiled copy computes what the uncompiled one of the same precision does (bf16: up to
    inductor's different fusion and rounding order)."""
    torch.manual_seed(0)
    model = create_model("Cnn6").eval()
    x = torch.randn(2, 64000) * 0.1
    with torch.inference_mode():
        want = prepare_for_inference(model, precision)(x)["clipwise_output"].float()
        compiled = prepare_for_inference(model, precision, compile=True)
        got = compiled(x)["clipwise_output"].float()
    assert (got - want).abs().max() <= tolerance
    assert compiled._orig_mod.spectrogram_extractor._checked[1]  # the compiled code took the FFT


def test_compiled_pretrained_only_ever_sees_the_real_batches(monkeypatch):
    """The output-key probe (a 1-s silent clip) runs on the plain model: with ``compile=True`` it
    would otherwise compile that shape first and force a dynamic-shape recompile for the windows."""
    shapes = []

    def record(module, *args, **kwargs):
        def call(x, *a, **k):
            shapes.append(tuple(x.shape))
            return module(x, *a, **k)
        return call

    monkeypatch.setattr(torch, "compile", record)
    model = Pretrained(create_model("Cnn6"), "Cnn6", model_info("Cnn6").config, labels_for(527),
                       precision="fp32", compile=True)
    waves = [synthetic_signal(kind, 32000, 3.0) for kind in ("tone", "chirp")]
    model.tag(waves)
    assert shapes == [(2, 96000)]
