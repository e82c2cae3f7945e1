"""Short clips repeated instead of zero-padded: in training, in the checkpoint, and in `panns tag`."""

import numpy as np
import pytest
import soundfile as sf
import torch

from panns_core.audio_io import fit_to_length, load_audio, pad_or_truncate
from panns_core.transfer.audio import clip_segments, split_segments

TINY_FRONT_END = {"sample_rate": 16000, "window_size": 512, "hop_size": 320, "mel_bins": 32, "fmax": 8000}


def test_repeat_fills_the_length_with_copies_of_the_clip():
    x = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    assert fit_to_length(x, 8, "repeat").tolist() == [1, 2, 3, 1, 2, 3, 1, 2]
    assert fit_to_length(x, 8, "zeros").tolist() == [1, 2, 3, 0, 0, 0, 0, 0]
    assert fit_to_length(x, 2, "repeat").tolist() == [1, 2]  # longer clips are cut either way
    assert fit_to_length(np.zeros(0, np.float32), 4, "repeat").tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="pad must be one of"):
        fit_to_length(x, 8, "reflect")


def test_clip_and_segment_geometry_follow_the_pad_mode():
    x = np.arange(1, 4, dtype=np.float32)
    assert clip_segments(x, 10, 0.7, None, "repeat").tolist() == [[1, 2, 3, 1, 2, 3, 1]]
    assert clip_segments(x, 10, 0.7, None).tolist() == [[1, 2, 3, 0, 0, 0, 0]]  # default: the official zeros
    assert split_segments(x, 5, "repeat").tolist() == [[1, 2, 3, 1, 2]]  # shorter than one segment
    long = np.arange(1, 8, dtype=np.float32)
    assert split_segments(long, 5, "repeat").tolist() == [[1, 2, 3, 4, 5], [6, 7, 0, 0, 0]]  # tail of a long clip


def test_transfer_config_rejects_an_unknown_pad_mode():
    from panns_core.transfer import TransferConfig

    assert TransferConfig().pad == "zeros"  # paper runs keep the official padding
    with pytest.raises(ValueError, match="pad must be one of"):
        TransferConfig(pad="mirror")


def test_training_batches_and_embedding_cache_use_the_pad_mode(tmp_path):
    from panns_core.transfer.audio import ClipAudio
    from panns_core.transfer.base import Clip, TransferData
    from panns_core.transfer.runner import training_batch
    from panns_core.transfer.strategies import EmbeddingCache, make_backbone

    sr = 16000
    rng = np.random.default_rng(0)
    clips = []
    for i, seconds in enumerate((0.3, 0.45)):
        path = tmp_path / f"c{i}.wav"
        sf.write(path, (0.3 * rng.standard_normal(int(seconds * sr))).astype(np.float32), sr)
        clips.append(Clip(clip_id=f"c{i}", path=str(path), label=i, fold="train"))
    data = TransferData(task="t", classes=["a", "b"], clips=clips, protocol="holdout", clip_seconds=1.0)
    audio = ClipAudio(sr)
    data = audio.load(data)
    x, y = training_batch(data, audio, np.array([0, 1]), 1.0, None, rng, "repeat")
    for row, clip in zip(x.numpy(), data.clips):
        assert np.array_equal(row, fit_to_length(audio[clip.clip_id], sr, "repeat"))
    assert y.tolist() == [0, 1]

    base = make_backbone("Cnn6", None, **TINY_FRONT_END)
    zeros_key = EmbeddingCache.key(base, data, 1.0, None, "w")
    assert zeros_key == EmbeddingCache.key(base, data, 1.0, None, "w", "zeros")  # caches on disk stay valid
    assert zeros_key != EmbeddingCache.key(base, data, 1.0, None, "w", "repeat")


def _finetuned_checkpoint(tmp_path, pad):
    from panns_core.models import TransferModel
    from panns_core.transfer.strategies import make_backbone
    from panns_core.transfer.finetune import save_transfer_checkpoint

    torch.manual_seed(0)
    model = TransferModel(make_backbone("Cnn6", None, **TINY_FRONT_END), 3, hidden_layers=0,
                          output="softmax").eval()
    path = str(tmp_path / f"model_{pad}.pth")
    save_transfer_checkpoint(path, model, backbone="Cnn6", backbone_overrides=TINY_FRONT_END, strategy="scratch",
                             classes=["a", "b", "c"], clip_seconds=1.0, pad=pad)
    return path, model


def _short_file(tmp_path):
    rng = np.random.default_rng(3)
    t = np.arange(int(0.3 * 16000)) / 16000
    x = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    path = tmp_path / "short.wav"
    sf.write(path, x, 16000)
    return str(path), load_audio(str(path), 16000)


@torch.no_grad()
def _probabilities(model, wave):
    return model(torch.from_numpy(wave[None].astype(np.float32)))["clipwise_output"][0].numpy()


def test_a_repeat_trained_checkpoint_tags_short_files_on_the_repeated_clip(tmp_path):
    from panns_core.inference import Pretrained

    torch.set_num_threads(1)
    path, model = _finetuned_checkpoint(tmp_path, "repeat")
    assert torch.load(path, map_location="cpu", weights_only=True)["extra"]["pad"] == "repeat"
    audio_path, wave = _short_file(tmp_path)
    loaded = Pretrained.load(path)
    assert loaded.pad == "repeat" and loaded.window_samples == 16000
    tagged = loaded.tag(audio_path)[0].clipwise
    repeated = _probabilities(model, fit_to_length(wave, 16000, "repeat"))
    silent = _probabilities(model, pad_or_truncate(wave, 16000))
    assert np.allclose(tagged, repeated, atol=1e-4)
    assert not np.allclose(tagged, silent, atol=1e-3)  # the two paddings give different outputs here


def test_checkpoints_without_the_pad_key_keep_zero_padding(tmp_path):
    from panns_core.inference import Pretrained

    torch.set_num_threads(1)
    path, model = _finetuned_checkpoint(tmp_path, "zeros")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    del payload["extra"]["pad"]  # as written before the key existed
    torch.save(payload, path)
    audio_path, wave = _short_file(tmp_path)
    loaded = Pretrained.load(path)
    assert loaded.pad == "zeros"
    assert np.allclose(loaded.tag(audio_path)[0].clipwise, _probabilities(model, pad_or_truncate(wave, 16000)),
                       atol=1e-4)


def test_finetune_cli_passes_pad_and_precise_bn(tmp_path, monkeypatch):
    import importlib

    from panns_core.cli import main

    finetune_module = importlib.import_module("panns_core.transfer.finetune")  # the package exports the function

    seen = []
    monkeypatch.setattr(finetune_module, "finetune", lambda *a, **kw: seen.append(kw))
    common = ["finetune", str(tmp_path / "labels.csv"), "--strategy", "scratch", "-o", str(tmp_path / "out")]
    assert main(common) == 0
    assert main(common + ["--pad", "zeros", "--no-precise-bn"]) == 0
    assert main(common + ["--precise-bn"]) == 0
    assert [(kw["pad"], kw["precise_bn"]) for kw in seen] == [("repeat", None), ("zeros", False), ("repeat", True)]
