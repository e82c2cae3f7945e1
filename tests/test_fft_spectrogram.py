"""The FFT spectrogram computes torchlibrosa's Conv1d STFT power, with the same modules and keys."""

import pytest
import torch
from torchlibrosa.stft import Spectrogram

from panns_core.models import create_model
from panns_core.models.frontend import FFTSpectrogram, check_stft_weights, set_stft_backend


def _pair(n_fft, hop):
    kwargs = dict(n_fft=n_fft, hop_length=hop, win_length=n_fft, window="hann", center=True,
                  pad_mode="reflect", freeze_parameters=True)
    return Spectrogram(**kwargs), FFTSpectrogram(**kwargs)


def _conv_calls(module):
    calls = []
    hooks = [m.register_forward_hook(lambda *_: calls.append(1)) for m in (module.stft.conv_real, module.stft.conv_imag)]
    return calls, hooks


@pytest.mark.parametrize("n_fft,hop,samples", [(1024, 320, 32000), (512, 160, 16000), (256, 80, 8000),
                                               (2048, 320, 32000), (1024, 500, 24001)])
def test_fft_power_equals_the_official_conv_stft(n_fft, hop, samples):
    torch.manual_seed(0)
    official, fast = _pair(n_fft, hop)
    x = torch.randn(3, samples) * 0.3
    x[1, samples // 2:] = 0.0  # zero padding, as short clips get it
    x[2] *= 1e-4  # a quiet clip
    with torch.no_grad():
        a, b = official(x), fast(x)
    assert a.shape == b.shape == (3, 1, samples // hop + 1, n_fft // 2 + 1)
    assert ((a - b).abs().amax(dim=(1, 2, 3)) / a.abs().amax(dim=(1, 2, 3))).max() < 1e-5
    # Frames inside the silent half are exactly silent in both (no FFT leakage floor).
    assert a[1, 0, -2:].abs().max() == 0 and b[1, 0, -2:].abs().max() == 0


def test_fft_path_skips_the_conv_modules_and_conv_backend_uses_them():
    _, fast = _pair(1024, 320)
    calls, hooks = _conv_calls(fast)
    x = torch.randn(2, 32000)
    with torch.no_grad():
        fast(x)
        assert calls == []
        set_stft_backend(fast, "conv")
        fast(x)
        assert len(calls) == 2
    for hook in hooks:
        hook.remove()


def test_weights_that_are_not_a_windowed_dft_fall_back_to_the_conv():
    official, fast = _pair(512, 160)
    state = official.state_dict()
    state["stft.conv_real.weight"] = state["stft.conv_real.weight"] * 1.5  # e.g. a front end trained further
    official.load_state_dict(state)
    fast.load_state_dict(state)
    calls, _ = _conv_calls(fast)
    x = torch.randn(2, 8000)
    with torch.no_grad():
        assert torch.allclose(official(x), fast(x), rtol=1e-6, atol=1e-6)
    assert len(calls) == 2
    # Restoring the DFT weights (a new weight version) brings the FFT back.
    fast.load_state_dict(_pair(512, 160)[0].state_dict())
    calls.clear()
    with torch.no_grad():
        fast(x)
    assert calls == []


def test_trainable_front_end_and_bf16_input_use_the_conv():
    _, fast = _pair(512, 160)
    calls, _ = _conv_calls(fast)
    for p in fast.parameters():
        p.requires_grad_(True)
    out = fast(torch.randn(2, 8000))
    out.sum().backward()
    assert len(calls) == 2 and fast.stft.conv_real.weight.grad is not None
    for p in fast.parameters():
        p.requires_grad_(False)
    calls.clear()
    with torch.no_grad():
        fast.to(torch.bfloat16)(torch.randn(2, 8000, dtype=torch.bfloat16))
    assert len(calls) == 2


def test_bad_backend_name_is_rejected():
    with pytest.raises(ValueError, match="'fft' or 'conv'"):
        set_stft_backend(torch.nn.Linear(1, 1), "cufft")


@pytest.mark.parametrize("name", ["Cnn14", "Cnn14_16k", "Wavegram_Logmel_Cnn14"])
def test_models_give_the_same_output_with_either_backend(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    assert isinstance(model.spectrogram_extractor, FFTSpectrogram)
    assert "spectrogram_extractor.stft.conv_real.weight" in model.state_dict()
    rate = model.audio_config.sample_rate
    x = torch.randn(2, rate) * 0.1
    x[1, rate // 2:] = 0.0
    with torch.no_grad():
        fft = model(x)["clipwise_output"]
        conv = set_stft_backend(model, "conv")(x)["clipwise_output"]
    assert (fft - conv).abs().max() < 1e-5


def test_frontend_benchmark_runs_and_reports_both_backends(tmp_path, capsys, load_benchmark):
    import json

    bench = load_benchmark("bench_frontend")
    out = tmp_path / "frontend.json"
    (row,) = bench.main(["--models", "Cnn6", "--batch", "1", "--seconds", "1", "--repeats", "1",
                         "--json", str(out)])
    assert json.loads(out.read_text())[0]["model"] == "Cnn6"
    assert row["spectrogram_conv_s"] > 0 and row["spectrogram_fft_s"] > 0 and row["forward_fft_s"] > 0
    assert row["max_clipwise_difference"] < 1e-5
    assert "| Cnn6 |" in capsys.readouterr().out


def test_a_copy_with_new_weight_tensors_still_takes_the_fft_path():
    import copy

    _, fast = _pair(1024, 320)
    replica = copy.deepcopy(fast)  # as DataParallel's replicas: same values, new tensors
    assert replica.stft.conv_real.weight.data_ptr() != fast.stft.conv_real.weight.data_ptr()
    calls, _ = _conv_calls(replica)
    x = torch.randn(2, 16000)
    with torch.no_grad():
        assert torch.allclose(replica(x), fast(x))
    assert calls == []


def test_while_compiling_the_answer_of_check_stft_weights_decides(monkeypatch):
    """dynamo cannot run the weight check, so traced code takes the FFT only where
    check_stft_weights said yes before compiling, and the official conv otherwise."""
    _, fast = _pair(1024, 320)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    calls, hooks = _conv_calls(fast)
    x = torch.randn(1, 32000)
    with torch.inference_mode():
        fast(x)
        assert len(calls) == 2  # never checked: conv
        check_stft_weights(torch.nn.Sequential(fast))
        fast(x)
        assert len(calls) == 2  # checked and a windowed DFT: FFT
    with torch.no_grad():
        fast.stft.conv_real.weight.mul_(1.5)  # no longer a windowed DFT
    check_stft_weights(fast)
    with torch.inference_mode():
        fast(x)
    assert len(calls) == 4
    for hook in hooks:
        hook.remove()
