"""Model zoo against the official interface spec and against independent re-derivations.

* Spec: for every one of the 30 official classes, state_dict keys/shapes/dtypes in
  order, trainable parameters, buffers, frozen front-end parameters and output
  keys/shapes (a 1-s batch for all, 10 s for the cheap ones).
* Equivalence: the official forward of Cnn14, ResNet22, MobileNetV1, Res1dNet31,
  DaiNet19, Wavegram_Logmel_Cnn14 and the DecisionLevel heads is re-derived below
  with plain torch ops on the model's own state_dict (BatchNorm statistics set
  from a real batch first) and compared to float32 round-off.
* Behaviour: mixup halves the batch at the official place, SpecAugment only in
  training, bad inputs raise ValueError, 1/10/30-s inputs.
"""

import json
import math
import os

import librosa
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from panns_core.config import AUDIO_32K
from panns_core.models import (Cnn14, TransferModel, create_model, do_mixup, list_models)

SR = 32000
SPEC_NAMES = sorted(json.load(open(os.path.join(os.path.dirname(__file__), "data", "official_models.json"))))
RTOL, ATOL = 1e-4, 1e-5


def _audio(batch, samples, seed=0):
    """Band-limited noise bursts with different levels per clip, so outputs differ between clips."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, samples, generator=g)
    envelope = torch.linspace(0.05, 1.0, samples)[None, :] ** torch.rand(batch, 1, generator=g).mul(3)
    return (0.3 * x * envelope * torch.rand(batch, 1, generator=g)).float()


def _spec_kwargs(official_spec, name):
    return dict(official_spec[name]["kwargs"])


# ----------------------------------------------------------------------------- spec, every class
SHORT_SECONDS = 1.0
TEN_SECOND_SUBSET = {"Cnn6", "MobileNetV2", "LeeNet11", "DaiNet19"}


def _expected_outputs(rec, seconds):
    """Official output shapes for a 2-clip batch of ``seconds`` (frames scale with the length)."""
    kw = rec["kwargs"]
    samples = int(kw["sample_rate"] * seconds)
    out = {}
    for key, shape in rec["outputs"].items():
        shape = list(shape)
        if key == "framewise_output":
            shape[1] = samples // kw["hop_size"] + 1
        out[key] = shape
    return out, samples


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_every_class_matches_official_spec(official_spec, name):
    rec = official_spec[name]
    model = create_model(name, **rec["kwargs"])
    got = [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in model.state_dict().items()]
    assert got == [[k, list(s), t] for k, s, t in rec["state_dict"]]
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == rec["params"]
    assert sum(p.numel() for p in model.parameters()) == rec["params_total"]
    assert len(list(model.buffers())) == rec["n_buffers"]
    assert [k for k, p in model.named_parameters() if not p.requires_grad] == rec["nontrainable_param_keys"]

    seconds = 10.0 if name in TEN_SECOND_SUBSET else SHORT_SECONDS
    expected, samples = _expected_outputs(rec, seconds)
    model.eval()
    with torch.no_grad():
        out = model(_audio(2, samples))
    assert list(out) == list(expected)
    assert {k: list(v.shape) for k, v in out.items()} == expected
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in out.values())


def test_frames_formula_matches_the_spec_for_ten_seconds(official_spec):
    rec = official_spec["Cnn14_DecisionLevelMax"]
    assert _expected_outputs(rec, 10.0)[0] == rec["outputs"]


def test_spec_covers_the_registry(official_spec):
    assert sorted(list_models()) == sorted(official_spec)


# ----------------------------------------------------------------------------- init
def test_initialisation_is_the_official_one():
    model = create_model("ResNet22")
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.requires_grad:
            fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight)
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            assert m.weight.abs().max() <= bound + 1e-7, name
            if m.bias is not None:
                assert torch.all(m.bias == 0), name
    zero_bns = {n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d) and torch.all(m.weight == 0)}
    # exactly the last BN of each of the 8 basic blocks
    assert zero_bns == {f"resnet.layer{i}.{j}.bn2" for i in range(1, 5) for j in range(2)}
    other = [m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d) and n not in zero_bns]
    assert all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in other)


# ----------------------------------------------------------------------------- equivalence helpers
def calibrate_batchnorm(model, waveform, seed=0):
    """Random BN affine parameters, then running stats from one real (training-mode) batch."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for bn in bns:
            bn.weight.copy_(0.5 + torch.rand(bn.weight.shape, generator=g))
            bn.bias.copy_(0.1 * torch.randn(bn.bias.shape, generator=g))
            bn.momentum = 1.0
        model.train()
        torch.manual_seed(seed)
        model(waveform)
        for bn in bns:
            bn.momentum = 0.1
    model.eval()


def _bn(x, sd, p):
    return F.batch_norm(x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"],
                        sd[p + ".bias"], False, 0.0, 1e-5)


def ref_logmel(sd, wav, cfg):
    """torchlibrosa's chain written out: reflect pad, STFT as conv, power, mel, dB, bn0 per mel bin."""
    x = F.pad(wav[:, None, :], (cfg.window_size // 2, cfg.window_size // 2), mode="reflect")
    re = F.conv1d(x, sd["spectrogram_extractor.stft.conv_real.weight"], stride=cfg.hop_size)
    im = F.conv1d(x, sd["spectrogram_extractor.stft.conv_imag.weight"], stride=cfg.hop_size)
    mel = torch.matmul((re ** 2 + im ** 2).transpose(1, 2), sd["logmel_extractor.melW"])
    logmel = 10.0 * torch.log10(torch.clamp(mel, min=1e-10))
    return _bn(logmel.transpose(1, 2), sd, "bn0").transpose(1, 2)[:, None]  # (B, 1, T, mels)


def ref_conv_block(x, sd, p, pool):
    x = F.relu(_bn(F.conv2d(x, sd[p + ".conv1.weight"], padding=1), sd, p + ".bn1"))
    x = F.relu(_bn(F.conv2d(x, sd[p + ".conv2.weight"], padding=1), sd, p + ".bn2"))
    return F.avg_pool2d(x, pool)


def ref_head(x, sd):
    """x (B, C, T): max+mean over time, fc1 + ReLU, sigmoid classifier on the un-dropped fc1."""
    h = F.relu(F.linear(x.max(dim=-1).values + x.mean(dim=-1), sd["fc1.weight"], sd["fc1.bias"]))
    return {"clipwise_output": torch.sigmoid(F.linear(h, sd["fc_audioset.weight"], sd["fc_audioset.bias"])),
            "embedding": h}


def ref_cnn14_trunk(sd, wav, cfg):
    x = ref_logmel(sd, wav, cfg)
    for i in range(1, 7):
        x = ref_conv_block(x, sd, f"conv_block{i}", (2, 2) if i < 6 else (1, 1))
    return x.mean(dim=3)


def ref_cnn14(sd, wav, cfg):
    return ref_head(ref_cnn14_trunk(sd, wav, cfg), sd)


def ref_resnet22(sd, wav, cfg):
    x = ref_conv_block(ref_logmel(sd, wav, cfg), sd, "conv_block1", (2, 2))
    for stage in range(1, 5):
        for j in range(2):
            p = f"resnet.layer{stage}.{j}"
            strided = stage > 1 and j == 0
            out = F.avg_pool2d(x, 2) if strided else x
            out = F.relu(_bn(F.conv2d(out, sd[p + ".conv1.weight"], padding=1), sd, p + ".bn1"))
            out = _bn(F.conv2d(out, sd[p + ".conv2.weight"], padding=1), sd, p + ".bn2")
            if strided:
                x = _bn(F.conv2d(F.avg_pool2d(x, 2), sd[p + ".downsample.1.weight"]), sd, p + ".downsample.2")
            x = F.relu(out + x)
    x = ref_conv_block(F.avg_pool2d(x, 2), sd, "conv_block_after1", (1, 1))
    return ref_head(x.mean(dim=3), sd)


def ref_mobilenet_v1(sd, wav, cfg):
    x = ref_logmel(sd, wav, cfg)
    x = F.relu(_bn(F.avg_pool2d(F.conv2d(x, sd["features.0.0.weight"], padding=1), 2), sd, "features.0.2"))
    strides = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    for i, s in enumerate(strides, start=1):
        p = f"features.{i}"
        x = F.conv2d(x, sd[p + ".0.weight"], padding=1, groups=x.shape[1])
        x = F.relu(_bn(F.avg_pool2d(x, s), sd, p + ".2"))
        x = F.relu(_bn(F.conv2d(x, sd[p + ".4.weight"]), sd, p + ".5"))
    return ref_head(x.mean(dim=3), sd)


def ref_res1dnet31(sd, wav, cfg):
    x = _bn(F.conv1d(wav[:, None], sd["conv0.weight"], stride=5, padding=5), sd, "bn0")
    for stage in range(1, 8):
        for j in range(2):
            p = f"resnet.layer{stage}.{j}"
            strided = stage > 1 and j == 0
            out = F.max_pool1d(x, 4) if strided else x
            out = F.relu(_bn(F.conv1d(out, sd[p + ".conv1.weight"], padding=1), sd, p + ".bn1"))
            out = _bn(F.conv1d(out, sd[p + ".conv2.weight"], padding=2, dilation=2), sd, p + ".bn2")
            if strided:
                x = _bn(F.conv1d(F.avg_pool1d(x, 4), sd[p + ".downsample.1.weight"]), sd, p + ".downsample.2")
            x = F.relu(out + x)
    return ref_head(x, sd)


def ref_dainet19(sd, wav, cfg):
    x = _bn(F.conv1d(wav[:, None], sd["conv0.weight"], stride=4), sd, "bn0")
    for i in range(1, 5):
        p = f"conv_block{i}"
        out = x
        for k in range(1, 4):
            out = F.relu(_bn(F.conv1d(out, sd[f"{p}.conv{k}.weight"], padding=1), sd, f"{p}.bn{k}"))
        out = _bn(F.conv1d(out, sd[f"{p}.conv4.weight"], padding=1), sd, f"{p}.bn4")
        if out.shape != x.shape:
            x = _bn(F.conv1d(x, sd[f"{p}.downsample.weight"]), sd, f"{p}.bn_downsample")
        x = F.relu(out + x)
        if i < 4:
            x = F.max_pool1d(x, 4)
    return ref_head(x, sd)


def ref_wavegram_logmel(sd, wav, cfg):
    a = F.relu(_bn(F.conv1d(wav[:, None], sd["pre_conv0.weight"], stride=5, padding=5), sd, "pre_bn0"))
    for k in (1, 2, 3):
        p = f"pre_block{k}"
        a = F.relu(_bn(F.conv1d(a, sd[p + ".conv1.weight"], padding=1), sd, p + ".bn1"))
        a = F.relu(_bn(F.conv1d(a, sd[p + ".conv2.weight"], padding=2, dilation=2), sd, p + ".bn2"))
        a = F.max_pool1d(a, 4)
    a = a.reshape(a.shape[0], -1, 32, a.shape[-1]).transpose(2, 3)
    a = ref_conv_block(a, sd, "pre_block4", (2, 1))
    x = torch.cat((ref_conv_block(ref_logmel(sd, wav, cfg), sd, "conv_block1", (2, 2)), a), dim=1)
    for i in range(2, 7):
        x = ref_conv_block(x, sd, f"conv_block{i}", (2, 2) if i < 6 else (1, 1))
    return ref_head(x.mean(dim=3), sd)


def _framewise(segmentwise, frames):
    up = segmentwise.repeat_interleave(32, dim=1)
    return torch.cat((up, up[:, -1:].expand(-1, frames - up.shape[1], -1)), dim=1)


def _sed_trunk(sd, wav, cfg):
    x = ref_cnn14_trunk(sd, wav, cfg)
    x = F.max_pool1d(x, 3, 1, 1) + F.avg_pool1d(x, 3, 1, 1)
    return F.relu(F.linear(x.transpose(1, 2), sd["fc1.weight"], sd["fc1.bias"]))


def ref_decision_max(sd, wav, cfg):
    seg = torch.sigmoid(F.linear(_sed_trunk(sd, wav, cfg), sd["fc_audioset.weight"], sd["fc_audioset.bias"]))
    return {"framewise_output": _framewise(seg, cfg.frames(wav.shape[1])), "clipwise_output": seg.max(dim=1).values}


def ref_decision_att(sd, wav, cfg):
    h = _sed_trunk(sd, wav, cfg).transpose(1, 2)
    att = torch.softmax(torch.clamp(F.conv1d(h, sd["att_block.att.weight"], sd["att_block.att.bias"]), -10, 10), -1)
    cla = torch.sigmoid(F.conv1d(h, sd["att_block.cla.weight"], sd["att_block.cla.bias"]))
    return {"framewise_output": _framewise(cla.transpose(1, 2), cfg.frames(wav.shape[1])),
            "clipwise_output": (att * cla).sum(dim=2)}


EQUIVALENCE = {
    "Cnn14": (ref_cnn14, 1.0),
    "ResNet22": (ref_resnet22, 1.0),
    "MobileNetV1": (ref_mobilenet_v1, 1.0),
    "Res1dNet31": (ref_res1dnet31, 1.0),
    "DaiNet19": (ref_dainet19, 1.0),
    "Wavegram_Logmel_Cnn14": (ref_wavegram_logmel, 1.0),
    "Cnn14_DecisionLevelMax": (ref_decision_max, 1.5),
    "Cnn14_DecisionLevelAtt": (ref_decision_att, 1.5),
}


@pytest.mark.parametrize("name", sorted(EQUIVALENCE))
def test_forward_equals_independent_rederivation(name):
    ref, seconds = EQUIVALENCE[name]
    torch.manual_seed(0)
    model = create_model(name)
    wav = _audio(4, int(SR * seconds), seed=1)
    calibrate_batchnorm(model, _audio(4, int(SR * seconds), seed=2))
    with torch.no_grad():
        out = model(wav)
        expected = ref({k: v for k, v in model.state_dict().items()}, wav, model.audio_config)
    assert list(out) == list(expected)
    for key in expected:
        # float32 round-off accumulates through up to 30 layers: tolerance relative to the tensor's scale
        scale = expected[key].abs().max().item()
        torch.testing.assert_close(out[key], expected[key], rtol=RTOL, atol=ATOL * max(scale, 1.0),
                                   msg=f"{name} {key}")
    # discriminative: the clips get clearly different outputs
    spread = out["clipwise_output"].std(dim=0).max().item()
    assert spread > 1e-3, f"{name}: outputs are nearly constant across clips ({spread})"


def test_frontend_weights_are_hann_dft_and_slaney_mel():
    """The frozen STFT kernels are a periodic-Hann-windowed DFT, melW is librosa's Slaney mel bank."""
    model = Cnn14()
    cfg = AUDIO_32K
    n = np.arange(cfg.window_size)
    k = np.arange(cfg.window_size // 2 + 1)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / cfg.window_size)
    dft = np.exp(-2j * np.pi * k * n / cfg.window_size) * window
    sd = model.state_dict()
    np.testing.assert_allclose(sd["spectrogram_extractor.stft.conv_real.weight"][:, 0].numpy(), dft.real, atol=1e-6)
    np.testing.assert_allclose(sd["spectrogram_extractor.stft.conv_imag.weight"][:, 0].numpy(), dft.imag, atol=1e-6)
    mel = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.window_size, n_mels=cfg.mel_bins,
                              fmin=cfg.fmin, fmax=cfg.fmax).T
    np.testing.assert_allclose(sd["logmel_extractor.melW"].numpy(), mel, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- mixup and SpecAugment
def _capture(module, store, key, output=True):
    if output:
        return module.register_forward_hook(lambda m, i, o: store.__setitem__(key, o))
    return module.register_forward_pre_hook(lambda m, i: store.__setitem__(key, i[0]))


LAM = torch.tensor([0.7, 0.3, 0.2, 0.8])


@pytest.mark.parametrize("name,where", [
    ("Cnn10", "logmel"), ("MobileNetV2", "logmel"), ("Cnn14_mixup_time_domain", "waveform"),
    ("LeeNet11", "waveform"), ("DaiNet19", "waveform"), ("Wavegram_Logmel_Cnn14", "both"),
])
def test_mixup_halves_the_batch_at_the_official_place(name, where):
    model = create_model(name).train()
    wav = _audio(4, SR)
    seen, hooks = {}, []
    if where in ("logmel", "both"):
        # bn0's output is then augmented in place by SpecAugment; mixing follows it.
        trunk = model.features if hasattr(model, "features") else model.conv_block1
        hooks += [_capture(model.bn0, seen, "bn0"), _capture(trunk, seen, "cb1_in", output=False)]
    if where == "waveform":
        first = model.spectrogram_extractor if hasattr(model, "spectrogram_extractor") else (
            model.conv0 if hasattr(model, "conv0") else model.conv_block1)
        hooks.append(_capture(first, seen, "first_in", output=False))
    if where == "both":
        hooks += [_capture(model.pre_block4, seen, "wavegram"), _capture(model.conv_block2, seen, "cb2_in", output=False)]
    out = model(wav, mixup_lambda=LAM)
    for h in hooks:
        h.remove()
    assert out["clipwise_output"].shape == (2, 527) and out["embedding"].shape[0] == 2
    if where in ("logmel", "both"):
        torch.testing.assert_close(seen["cb1_in"], do_mixup(seen["bn0"].transpose(1, 3), LAM))
    if where == "waveform":
        expected = do_mixup(wav, LAM)
        got = seen["first_in"]
        torch.testing.assert_close(got.reshape(expected.shape), expected)
    if where == "both":
        assert seen["wavegram"].shape[0] == 4 and seen["cb2_in"].shape[0] == 2


def test_do_mixup_pairs_consecutive_clips():
    x = torch.arange(8.0).reshape(4, 2)
    lam = torch.tensor([0.25, 0.75, 1.0, 0.0])
    torch.testing.assert_close(do_mixup(x, lam), torch.tensor([[0.25 * 0 + 0.75 * 2, 0.25 * 1 + 0.75 * 3], [4.0, 5.0]]))


def test_mixup_is_ignored_in_eval_and_validated_in_training():
    model = create_model("Cnn6").eval()
    wav = _audio(4, SR)
    with torch.no_grad():
        assert model(wav, mixup_lambda=LAM)["clipwise_output"].shape == (4, 527)
    model.train()
    with pytest.raises(ValueError, match="mixup_lambda must have shape"):
        model(wav, mixup_lambda=LAM[:2])
    with pytest.raises(ValueError, match="even batch"):
        model(wav[:3], mixup_lambda=torch.tensor([0.5, 0.5, 1.0]))


def test_specaugment_only_in_training_with_the_per_model_widths():
    calls = []
    model = create_model("Cnn6")
    model.spec_augmenter.register_forward_hook(lambda m, i, o: calls.append(m.training))
    wav = _audio(2, SR)
    model.eval()
    with torch.no_grad():
        a, b = model(wav), model(wav)
    torch.testing.assert_close(a["clipwise_output"], b["clipwise_output"], rtol=0, atol=0)
    assert calls == []
    model.train()
    model(wav)
    assert calls == [True]
    drop = model.spec_augmenter
    assert (drop.time_dropper.drop_width, drop.time_dropper.stripes_num) == (64, 2)
    assert (drop.freq_dropper.drop_width, drop.freq_dropper.stripes_num) == (8, 2)


@pytest.mark.parametrize("name,freq_width", [("Cnn14_mel32", 4), ("Cnn14_mel128", 16),
                                             ("Wavegram_Logmel128_Cnn14", 16), ("ResNet22", 8)])
def test_specaugment_frequency_width_per_model(name, freq_width):
    model = create_model(name)
    assert model.spec_augmenter.freq_dropper.drop_width == freq_width
    assert model.spec_augmenter.time_dropper.drop_width == 64


def test_no_specaug_variant_has_no_augmenter():
    assert create_model("Cnn14_no_specaug").spec_augmenter is None


def test_clipwise_output_uses_the_undropped_embedding():
    """In training the returned embedding is dropped out, clipwise_output is computed without it."""
    model = create_model("Cnn6")
    calibrate_batchnorm(model, _audio(2, SR))
    seen = {}
    model.fc_audioset.register_forward_pre_hook(lambda m, i: seen.__setitem__("x", i[0]))
    model.train()
    torch.manual_seed(0)
    out = model(_audio(2, SR))
    emb, fc_in = out["embedding"], seen["x"]
    dropped = emb == 0
    assert dropped.any() and not (fc_in[dropped] == 0).all()
    torch.testing.assert_close(emb[~dropped], 2 * fc_in[~dropped])


# ----------------------------------------------------------------------------- lengths and bad input
@pytest.mark.parametrize("name", ["Cnn6", "MobileNetV1", "LeeNet11"])
@pytest.mark.parametrize("seconds", [1, 10, 30])
def test_forward_on_1_10_30_second_clips(name, seconds):
    model = create_model(name).eval()
    with torch.no_grad():
        out = model(_audio(1, SR * seconds))
    assert out["clipwise_output"].shape == (1, 527)
    assert torch.isfinite(out["clipwise_output"]).all()


def test_sed_framewise_output_has_one_row_per_stft_frame_for_10_seconds():
    model = create_model("Cnn14_DecisionLevelMax").eval()
    with torch.no_grad():
        out = model(_audio(1, SR * 10))
    assert out["framewise_output"].shape == (1, 1001, 527)
    # the 9 padded frames repeat the last upsampled segment (31 segments x 32 = 992)
    assert torch.equal(out["framewise_output"][0, 992:], out["framewise_output"][0, 991:992].expand(9, -1))


def test_wavegram_logmel_accepts_lengths_the_official_code_cannot_concatenate():
    model = create_model("Wavegram_Logmel_Cnn14").eval()
    wav = _audio(1, 93 * 320 + 100)  # an odd number of 320-sample hops
    with torch.no_grad():
        wavegram_steps = model._wavegram(wav).shape[2]
        logmel_steps = model.conv_block1(model._logmel(wav)).shape[2]
        out = model(wav)
    assert (wavegram_steps, logmel_steps) == (46, 47)  # torch.cat would fail in the official code
    assert out["clipwise_output"].shape == (1, 527)


@pytest.mark.parametrize("name", ["Cnn14", "Cnn6", "ResNet38", "MobileNetV2", "DaiNet19",
                                  "Res1dNet51", "Wavegram_Cnn14", "Cnn14_16k", "Cnn14_8k"])
def test_shortest_accepted_input_is_exact(name):
    """min_samples works; one sample less raises ValueError (and really breaks the official stack)."""
    model = create_model(name).eval()
    n = model.min_samples
    with torch.no_grad():
        assert model(_audio(1, n))["clipwise_output"].shape == (1, 527)
        with pytest.raises(ValueError, match=f"shorter than the {n} samples"):
            model(_audio(1, n - 1))
        with pytest.raises(RuntimeError):
            model._forward(_audio(1, n - 1), None)


@pytest.mark.parametrize("bad,match", [
    (torch.zeros(SR), "shape \\(batch, samples\\)"),
    (torch.zeros(1, 1, SR), "shape \\(batch, samples\\)"),
    (torch.zeros(0, SR), "empty"),
    (torch.zeros(2, 0), "empty"),
    (torch.full((1, SR), float("nan")), "NaN"),
    (torch.full((1, SR), float("inf")), "NaN or infinite"),
    (torch.zeros(1, SR, dtype=torch.int16), "floating point"),
    (torch.zeros(1, 500), "shorter than"),
])
def test_bad_inputs_raise_clear_errors(bad, match):
    model = create_model("Cnn6").eval()
    with pytest.raises(ValueError, match=match):
        model(bad)


def test_float64_input_is_cast_to_the_model_dtype():
    model = create_model("LeeNet11").eval()
    wav = _audio(2, 8000)
    with torch.no_grad():
        torch.testing.assert_close(model(wav.double())["clipwise_output"], model(wav)["clipwise_output"])


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="sample_rate=16000"):
        create_model("Cnn14_16k", sample_rate=32000)
    with pytest.raises(ValueError, match="hop_size must be 320"):
        create_model("Wavegram_Logmel_Cnn14", sample_rate=16000, window_size=512, hop_size=160, fmax=8000)
    with pytest.raises(ValueError, match="mel_bins >= 32"):
        create_model("Cnn14", mel_bins=16)
    with pytest.raises(ValueError, match="classes_num"):
        create_model("Cnn6", classes_num=0)


# ----------------------------------------------------------------------------- transfer
def test_transfer_model_frozen_base_stays_in_eval_and_trains_only_the_head():
    base = create_model("Cnn6")
    model = TransferModel(base, classes_num=5, freeze_base=True, hidden_layers=2)
    model.train()
    assert not base.training and model.head.training
    assert all(not p.requires_grad for p in base.parameters())
    assert [m.out_features for m in model.head if isinstance(m, nn.Linear)] == [512, 512, 5]
    wav = _audio(4, SR)
    out = model(wav, mixup_lambda=LAM)
    assert out["clipwise_output"].shape == (2, 5)
    torch.testing.assert_close(out["clipwise_output"].exp().sum(-1), torch.ones(2))
    out["clipwise_output"].sum().backward()
    assert all(p.grad is not None for p in model.head.parameters())
    assert all(p.grad is None for p in base.parameters())
    before = {k: v.clone() for k, v in base.state_dict().items() if "running" in k}
    model(wav)
    assert all(torch.equal(v, base.state_dict()[k]) for k, v in before.items())


def test_transfer_model_fine_tunes_and_loss_goes_down():
    torch.manual_seed(0)
    model = TransferModel(create_model("LeeNet11"), classes_num=2, hidden_layers=0)
    wav, target = _audio(4, 8000, seed=3), torch.tensor([0, 1, 0, 1])
    wav[1::2] *= 4  # louder clips are class 1
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    losses = []
    for _ in range(15):
        loss = F.nll_loss(model(wav)["clipwise_output"], target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.5


def test_transfer_model_rejects_sed_bases_and_bad_arguments():
    with pytest.raises(ValueError, match="no 'embedding'"):
        TransferModel(create_model("Cnn14_DecisionLevelMax"), classes_num=3)
    with pytest.raises(ValueError, match="output must be"):
        TransferModel(create_model("LeeNet11"), classes_num=3, output="relu")


def test_official_transfer_cnn14_outputs_log_softmax_from_the_base_embedding():
    model = create_model("Transfer_Cnn14", classes_num=10, freeze_base=True).eval()
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 2048 * 10 + 10
    wav = _audio(2, SR)
    with torch.no_grad():
        out = model(wav)
        base = model.base(wav)
    torch.testing.assert_close(out["embedding"], base["embedding"])
    torch.testing.assert_close(out["clipwise_output"], torch.log_softmax(model.fc_transfer(base["embedding"]), -1))


def test_training_on_clips_shorter_than_a_specaugment_stripe_is_a_clear_error():
    model = create_model("Cnn6", sample_rate=8000, window_size=256, hop_size=80, fmax=4000).train()
    with pytest.raises(ValueError, match="too short to train with SpecAugment"):
        model(torch.randn(2, 4000))  # 51 frames < 64-frame stripes
    model.eval()
    assert model(torch.randn(2, 4000))["clipwise_output"].shape == (2, 527)  # eval needs no stripes
