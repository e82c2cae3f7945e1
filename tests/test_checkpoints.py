"""Checkpoint formats, weights-only loading, mismatch diagnosis and the release registry."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
import torch
import torch.nn as nn
from torchlibrosa.stft import LogmelFilterBank, Spectrogram

from panns_core import checkpoints as ck
from panns_core.config import AUDIO_16K, AUDIO_32K, AudioConfig


class TinyLogmel(nn.Module):
    """A small model with the official front-end key layout and an fc1/fc_audioset head."""

    def __init__(self, config: AudioConfig = AUDIO_32K, classes_num: int = 527, emb: int = 16):
        super().__init__()
        self.audio_config = config
        self.classes_num = classes_num
        self.spectrogram_extractor = Spectrogram(n_fft=config.window_size, hop_length=config.hop_size,
                                                 freeze_parameters=True)
        self.logmel_extractor = LogmelFilterBank(sr=config.sample_rate, n_fft=config.window_size,
                                                 n_mels=config.mel_bins, fmin=config.fmin,
                                                 fmax=config.fmax, freeze_parameters=True)
        self.bn0 = nn.BatchNorm2d(config.mel_bins)
        self.fc1 = nn.Linear(config.mel_bins, emb)
        self.fc_audioset = nn.Linear(emb, classes_num)

    def forward(self, x):
        x = self.logmel_extractor(self.spectrogram_extractor(x))
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        return torch.sigmoid(self.fc_audioset(torch.relu(self.fc1(x.mean(dim=(1, 2))))))


def _randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g))
        model.bn0.running_mean.copy_(torch.randn(model.bn0.running_mean.shape, generator=g))
    return model


def _assert_same_weights(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# --------------------------------------------------------------------------- formats


def test_round_trip_our_format(tmp_path):
    src = _randomise(TinyLogmel())
    opt = torch.optim.Adam(src.parameters(), lr=1e-3)
    src(torch.rand(2, 4000)).sum().backward()
    opt.step()
    path = ck.save_checkpoint(tmp_path / "run" / "latest.pt", src, iteration=12,
                              optimizer=opt.state_dict(), note="x")
    assert path.exists() and not list(path.parent.glob("*.tmp"))
    dst = TinyLogmel()
    meta = ck.load_checkpoint(dst, path)
    _assert_same_weights(src, dst)
    assert meta["iteration"] == 12 and meta["note"] == "x"
    assert meta["class_name"] == "TinyLogmel" and meta["config"]["sample_rate"] == 32000
    assert meta["model_name"] is None  # not a registered model
    opt2 = torch.optim.Adam(dst.parameters(), lr=1e-3)
    opt2.load_state_dict(meta["optimizer"])
    a, b = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert a.keys() == b.keys() and len(a) > 0
    for i in a:
        assert torch.equal(a[i]["exp_avg"], b[i]["exp_avg"]) and torch.equal(a[i]["step"], b[i]["step"])
    src.eval(), dst.eval()
    x = torch.rand(1, 4000)
    assert torch.equal(src(x), dst(x))


def test_save_rejects_extras_a_weights_only_load_cannot_read(tmp_path):
    with pytest.raises(TypeError, match="extra_obj"):
        ck.save_checkpoint(tmp_path / "x.pt", TinyLogmel(), extra_obj=object())
    with pytest.raises(ValueError, match="reserved"):
        ck.save_checkpoint(tmp_path / "x.pt", TinyLogmel(), state_dict={})
    assert not list(tmp_path.iterdir())


def test_official_format_with_numpy_sampler(tmp_path):
    src = _randomise(TinyLogmel())
    official = {
        "iteration": 660000,
        "model": src.state_dict(),
        # what main.py stores: BalancedTrainSampler.state_dict() holds numpy arrays
        "sampler": {"indexes_per_class": [np.arange(5), np.array([3, 9])],
                    "queue": [np.int64(4), np.int64(1)], "pointers_of_classes": [0, 1]},
    }
    path = tmp_path / "660000_iterations.pth"
    torch.save(official, path)
    dst = TinyLogmel()
    meta = ck.load_checkpoint(dst, path)
    _assert_same_weights(src, dst)
    assert meta["iteration"] == 660000
    assert np.array_equal(meta["sampler"]["indexes_per_class"][1], [3, 9])


def test_plain_and_dataparallel_state_dicts(tmp_path):
    src = _randomise(TinyLogmel())
    torch.save(src.state_dict(), tmp_path / "plain.pth")
    torch.save({"module." + k: v for k, v in src.state_dict().items()}, tmp_path / "dp.pth")
    torch.save({"model": {"module." + k: v for k, v in src.state_dict().items()}, "iteration": 1},
               tmp_path / "dp_official.pth")
    for name in ("plain.pth", "dp.pth", "dp_official.pth"):
        dst = TinyLogmel()
        ck.load_checkpoint(dst, tmp_path / name)
        _assert_same_weights(src, dst)


def test_untrusted_pickle_is_refused(tmp_path):
    import fractions

    path = tmp_path / "evil.pth"
    torch.save({"model": TinyLogmel().state_dict(), "payload": fractions.Fraction(1, 3)}, path)
    with pytest.raises(ck.CheckpointError, match=r"evil\.pth.*fractions\.Fraction.*weights-only"):
        ck.load_checkpoint(TinyLogmel(), path)


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(ck.CheckpointError, match="text.pth"):
        ck.load_checkpoint(TinyLogmel(), tmp_path / "text.pth")
    torch.save({"epoch": 3, "weights": [1, 2]}, tmp_path / "odd.pth")
    with pytest.raises(ck.CheckpointError, match=r"odd\.pth: not a PANNs checkpoint.*epoch"):
        ck.load_checkpoint(TinyLogmel(), tmp_path / "odd.pth")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        ck.load_checkpoint(TinyLogmel(), tmp_path / "missing.pth")


# --------------------------------------------------------------------------- mismatches


def test_16k_checkpoint_into_32k_model_names_the_fitting_config(tmp_path):
    path = tmp_path / "tiny16k.pth"
    torch.save({"model": TinyLogmel(AUDIO_16K).state_dict(), "iteration": 0}, path)
    with pytest.raises(ck.CheckpointError) as info:
        ck.load_checkpoint(TinyLogmel(AUDIO_32K), path)
    msg = str(info.value)
    assert "tiny16k.pth" in msg
    assert "window_size=512 (model has 1024)" in msg
    assert "sample_rate=16000 (model has 32000)" in msg and "fmax=8000 (model has 14000)" in msg
    assert "hop_size=160" in msg
    assert "torch.Size" not in msg and "size mismatch for" not in msg


def test_wrong_class_count_and_mel_bins(tmp_path):
    torch.save(TinyLogmel(classes_num=10).state_dict(), tmp_path / "c10.pth")
    with pytest.raises(ck.CheckpointError, match=r"classes_num=10 \(model has 527\)"):
        ck.load_checkpoint(TinyLogmel(), tmp_path / "c10.pth")
    torch.save(TinyLogmel(AUDIO_32K.replace(mel_bins=128)).state_dict(), tmp_path / "m128.pth")
    with pytest.raises(ck.CheckpointError, match=r"mel_bins=128 \(model has 64\)"):
        ck.load_checkpoint(TinyLogmel(), tmp_path / "m128.pth")
    # strict=False tolerates missing keys but never wrong shapes
    with pytest.raises(ck.CheckpointError):
        ck.load_checkpoint(TinyLogmel(), tmp_path / "c10.pth", strict=False)


def test_strict_false_allows_missing_head(tmp_path):
    src = _randomise(TinyLogmel())
    state = {k: v for k, v in src.state_dict().items() if not k.startswith("fc_audioset")}
    torch.save(state, tmp_path / "nohead.pth")
    with pytest.raises(ck.CheckpointError):
        ck.load_checkpoint(TinyLogmel(), tmp_path / "nohead.pth")
    dst = TinyLogmel()
    ck.load_checkpoint(dst, tmp_path / "nohead.pth", strict=False)
    assert torch.equal(dst.fc1.weight, src.fc1.weight)


def test_infer_config_reads_the_weights():
    cfg = ck.infer_config(TinyLogmel(AUDIO_16K, classes_num=7, emb=24).state_dict())
    assert cfg == {"window_size": 512, "mel_bins": 64, "sample_rate": 16000, "fmin": 50,
                   "fmax": 8000, "hop_size": 160, "classes_num": 7, "embedding_size": 24}


# --------------------------------------------------------------------------- registry


BRIEF_MD5 = {"Cnn6": "e25e26b84585b14c7754c91e48efc9be", "Cnn10": "bfb1f1f9968938fa8ef4012b8471f5f6",
             "Cnn14": "541141fa2ee191a88f24a3219fff024e",
             "MobileNetV1": "a419303e1c88aa1b9d2ac3811563d371"}


def test_release_registry():
    assert len(ck.RELEASED_CHECKPOINTS) == 22
    for filename, entry in ck.RELEASED_CHECKPOINTS.items():
        assert entry.filename == filename
        assert re.fullmatch(r"\w+_mAP=0\.\d{3}\.pth", filename)
        assert entry.url == ("https://zenodo.org/record/3987831/files/"
                             + filename.replace("=", "%3D") + "?download=1")
        assert entry.md5 is None or re.fullmatch(r"[0-9a-f]{32}", entry.md5)
    for model, md5 in BRIEF_MD5.items():
        assert ck.released_checkpoint(model).md5 == md5
    assert ck.released_checkpoint("cnn14_map=0.431.pth").model_name == "Cnn14"
    assert ck.released_checkpoint("Cnn14_emb128").filename == "CNN14_emb128_mAP=0.412.pth"
    with pytest.raises(KeyError, match="Cnn99"):
        ck.released_checkpoint("Cnn99")


def test_download_checkpoint_end_to_end(tmp_path, monkeypatch):
    """A released-checkpoint entry served by a local HTTP server: download, verify, load."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    served = tmp_path / "zenodo"
    served.mkdir()
    src = _randomise(TinyLogmel())
    filename = "Tiny_mAP=0.123.pth"
    torch.save({"model": src.state_dict(), "iteration": 5}, served / filename)
    md5 = hashlib.md5((served / filename).read_bytes()).hexdigest()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = ck.zenodo_url(filename).replace("https://zenodo.org/record/3987831/files",
                                              f"http://127.0.0.1:{httpd.server_address[1]}")
        monkeypatch.setitem(ck.RELEASED_CHECKPOINTS, filename,
                            ck.ReleasedCheckpoint(filename, url, "TinyLogmel", None, md5))
        monkeypatch.setenv("PANNS_CACHE", str(tmp_path / "cache"))
        path = ck.download_checkpoint("tiny_map=0.123.pth", progress=False)
        assert path == tmp_path / "cache" / filename
        dst = TinyLogmel()
        assert ck.load_checkpoint(dst, path)["iteration"] == 5
        _assert_same_weights(src, dst)
        other = ck.download_checkpoint(filename, cache_dir=tmp_path / "other", progress=False)
        assert other.parent == tmp_path / "other" and other.read_bytes() == path.read_bytes()
        # a wrong registry checksum is caught and nothing is left in the cache
        monkeypatch.setitem(ck.RELEASED_CHECKPOINTS, filename,
                            ck.ReleasedCheckpoint(filename, url, "TinyLogmel", None, "f" * 32))
        with pytest.raises(ck._download.ChecksumError, match="f" * 32):
            ck.download_checkpoint(filename, cache_dir=tmp_path / "bad", progress=False)
        assert not list((tmp_path / "bad").iterdir())
    finally:
        httpd.shutdown()
        httpd.server_close()


# --------------------------------------------------------------------------- real models


def test_fake_official_checkpoint_into_registered_model(tmp_path):
    """A checkpoint in the released format loads into the registered class, outputs equal."""
    from panns_core.models import create_model

    torch.manual_seed(0)
    src = create_model("MobileNetV1").eval()
    with torch.no_grad():
        src.bn0.running_mean.uniform_(-1, 1)  # make the weights differ from a fresh model
    path = tmp_path / "MobileNetV1_mAP=0.389.pth"
    torch.save({"iteration": 560000, "model": src.state_dict(),
                "sampler": {"indexes_per_class": [np.arange(3)]}}, path)
    torch.manual_seed(1)
    dst = create_model("MobileNetV1").eval()
    assert ck.load_checkpoint(dst, path)["iteration"] == 560000
    x = torch.rand(2, 32000) * 2 - 1
    with torch.no_grad():
        a, b = src(x), dst(x)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ours = ck.save_checkpoint(tmp_path / "ours.pt", src, iteration=3)
    assert ck.read_checkpoint(ours)[1]["model_name"] == "MobileNetV1"
    # load_pretrained on a local file picks the model from the released file name
    model = ck.load_pretrained(path)
    assert type(model).__name__ == "MobileNetV1" and not model.training
    assert torch.equal(model.fc_audioset.weight, src.fc_audioset.weight)


def test_registered_model_named_for_a_16k_checkpoint():
    """The upstream issues #16/#18 case: a 16 kHz CNN14 checkpoint into the 32 kHz Cnn14."""
    from panns_core.models import create_model

    with ck.skip_weight_init():
        cnn14, cnn14_16k = create_model("Cnn14"), create_model("Cnn14_16k")
    msg = ck.mismatch_message(cnn14, cnn14_16k.state_dict(), "Cnn14_16k_mAP=0.438.pth")
    assert "window_size=512 (model has 1024)" in msg and "sample_rate=16000 (model has 32000)" in msg
    assert "create_model('Cnn14_16k')" in msg
    # and the reverse direction names the 32 kHz model
    msg = ck.mismatch_message(cnn14_16k, cnn14.state_dict(), "weights.pth")
    assert "create_model('Cnn14')" in msg and "window_size=1024 (model has 512)" in msg


def test_registered_model_named_for_wrong_class_count():
    from panns_core.models import create_model

    with ck.skip_weight_init():
        cnn6, cnn6_ft = create_model("Cnn6"), create_model("Cnn6", classes_num=10)
    msg = ck.mismatch_message(cnn6, cnn6_ft.state_dict(), "finetuned.pth")
    assert "classes_num=10 (model has 527)" in msg
    assert "create_model('Cnn6', classes_num=10)" in msg


def test_registry_agrees_with_model_info():
    from panns_core.models import list_models, model_info

    for name in list_models():
        filename = model_info(name).checkpoint
        if filename is not None:
            assert filename in ck.RELEASED_CHECKPOINTS, name
            assert ck.RELEASED_CHECKPOINTS[filename].model_name == name
    for entry in ck.RELEASED_CHECKPOINTS.values():
        assert entry.model_name in list_models()


def test_transfer_cnn14_load_from_pretrain_reads_a_cnn14_file_and_refuses_another(tmp_path):
    # Transfer_Cnn14 reads files through checkpoint_io (no import of checkpoints from models).
    from panns_core.models import create_model

    with ck.skip_weight_init():
        source = create_model("Cnn14")
        transfer = create_model("Transfer_Cnn14", classes_num=3)
    with torch.no_grad():
        for p in source.parameters():
            p.normal_()
    path = ck.save_checkpoint(tmp_path / "cnn14.pth", source)
    transfer.load_from_pretrain(str(path))
    for key, value in source.state_dict().items():
        assert torch.equal(transfer.base.state_dict()[key], value), key
    other = ck.save_checkpoint(tmp_path / "cnn6.pth", create_model("Cnn6"))
    with pytest.raises(ck.CheckpointError, match="cnn6.pth: not an AudioSet Cnn14 checkpoint"):
        transfer.load_from_pretrain(str(other))
