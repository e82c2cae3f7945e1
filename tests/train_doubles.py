"""Test doubles for the training tests: an in-memory AudioSet-shaped corpus and a tiny config.

The corpus follows the reader's interface (``dataset[{'hdf5_path', 'index_in_hdf5'}]``
-> ``{'audio_name', 'waveform', 'target'}``) and uses real :class:`IndexTable`
objects, so the real samplers, collate function and evaluation code run on it.
Each class is a tone at its own frequency; a clip holds one or two classes.
"""

from __future__ import annotations

import numpy as np

from panns_core.data.index import IndexTable
from panns_core.data.reader import collate_fn
from panns_core.train import RunData, TrainConfig

SAMPLE_RATE = 8000
CLIP_SAMPLES = 8000  # 1 s
FREQS = (300.0, 700.0, 1300.0, 2100.0)

TINY_MODEL = dict(model="Cnn6", sample_rate=SAMPLE_RATE, window_size=256, hop_size=80, mel_bins=32,
                  fmin=50, fmax=4000)


class InMemoryDataset:
    def __init__(self, clips: dict):
        self.clips = clips  # (hdf5_path, row) -> item

    def __getitem__(self, meta):
        return self.clips[(meta["hdf5_path"], int(meta["index_in_hdf5"]))]


def _make_split(name: str, n: int, rng: np.random.RandomState, clips: dict) -> IndexTable:
    classes = len(FREQS)
    path = f"/in-memory/{name}.h5"
    t = np.arange(CLIP_SAMPLES) / SAMPLE_RATE
    names, targets = [], np.zeros((n, classes), bool)
    for i in range(n):
        labels = {i % classes} | ({int(rng.randint(classes))} if rng.rand() < 0.3 else set())
        wave = 0.05 * rng.randn(CLIP_SAMPLES)
        for k in labels:
            targets[i, k] = True
            wave += 0.3 * np.sin(2 * np.pi * FREQS[k] * t + rng.rand() * 6.28)
        audio_name = f"Y{name[:2]}{i:09d}.wav"
        names.append(audio_name)
        clips[(path, i)] = {"audio_name": audio_name, "waveform": wave.astype(np.float32),
                            "target": targets[i].astype(np.float32)}
    return IndexTable(names, [path] * n, np.arange(n), targets)


def in_memory_data(train_clips=48, eval_clips=16, validation=False, seed=0) -> RunData:
    rng = np.random.RandomState(seed)
    clips = {}
    train = _make_split("train", train_clips, rng, clips)
    evals = {"eval": _make_split("eval", eval_clips, rng, clips)}
    if validation:
        evals["validation"] = _make_split("validation", eval_clips, rng, clips)
    dataset = InMemoryDataset(clips)
    return RunData(train_table=train, train_dataset=dataset, eval_tables=evals, eval_dataset=dataset,
                   collate_fn=collate_fn)


def tiny_config(run_dir, **changes) -> TrainConfig:
    base = dict(TINY_MODEL, training_set="/in-memory/train.h5", batch_size=8, iterations=6,
                eval_every=3, checkpoint_every=3, eval_splits=["eval"], run_dir=str(run_dir),
                progress=False, device="cpu")
    base.update(changes)
    return TrainConfig(**base)


class TinyNet(__import__("torch").nn.Module):
    """No BatchNorm, no dropout: results do not depend on how a batch is split (accumulation, DDP).

    Band energies of the waveform -> linear -> sigmoid, with mixup on the features.
    """

    def __init__(self, classes_num: int, bands: int = 40):
        import torch

        super().__init__()
        self.bands = bands
        self.fc = torch.nn.Linear(bands, classes_num)

    def forward(self, waveform, mixup_lambda=None):
        import torch

        from panns_core.models.frontend import do_mixup

        b, n = waveform.shape
        spec = torch.fft.rfft(waveform).abs()[:, : (n // 2) // self.bands * self.bands]
        x = torch.log1p(spec.reshape(b, self.bands, -1).mean(-1))
        if self.training and mixup_lambda is not None:
            x = do_mixup(x, mixup_lambda)
        return {"clipwise_output": torch.sigmoid(self.fc(x)), "embedding": x}


class ConstantNet(TinyNet):
    """Scores that ignore the input: the evaluation mAP can never improve (early-stop test)."""

    def forward(self, waveform, mixup_lambda=None):
        out = super().forward(waveform, mixup_lambda)
        clip = out["clipwise_output"]
        return {"clipwise_output": clip * 0 + __import__("torch").sigmoid(self.fc.bias), "embedding": out["embedding"]}


def tiny_net_factory(config, classes_num):
    return TinyNet(classes_num)


def constant_net_factory(config, classes_num):
    return ConstantNet(classes_num)


def killing_factory(kill_at_step: int):
    """A Cnn/registry model factory whose model raises at its ``kill_at_step``-th training forward."""

    def factory(config, classes_num):
        from panns_core.train import create_model_from_config

        model = create_model_from_config(config, classes_num)
        calls = {"n": 0}

        def hook(module, args):
            if module.training:
                calls["n"] += 1
                if calls["n"] == kill_at_step:
                    raise KeyboardInterrupt("simulated kill")

        model.register_forward_pre_hook(hook)
        return model

    return factory


def make_corpus(root) -> str:
    """A tiny generated AudioSet-shaped corpus, packed and indexed (about 3 s): 5 classes, 1-s clips at 8 kHz."""
    from panns_core.data.pack import pack_dataset
    from panns_core.data.synthetic import generate_corpus

    root = str(root)
    generate_corpus(root, num_classes=5, sample_rate=SAMPLE_RATE, clip_seconds=1.0, balanced_per_class=10,
                    eval_per_class=5, unbalanced_clips=0, splits=("balanced_train", "eval"), difficulty="easy")
    results = pack_dataset(root, splits=("eval", "balanced_train"), sample_rate=SAMPLE_RATE, clip_seconds=1.0)
    assert all(r.complete for r in results.values()), results
    return root


VOLATILE_STATISTICS = ("wall_time_s", "clips_per_second", "eval_seconds")
"""Statistics keys that measure time: they differ between two otherwise identical runs."""


def stable_statistics(lines):
    """Statistics lines without their timing keys (what resume equality compares)."""
    return [{k: v for k, v in line.items() if k not in VOLATILE_STATISTICS} for line in lines]
