"""Train and evaluate one (task, strategy, fold, training subset, seed).

Two loops share the evaluation code:

* **frozen** strategies train only the head, on cached embeddings
  (:class:`~panns_core.transfer.strategies.EmbeddingCache`): every training
  segment is a sample; the backbone never runs in training mode.
* **trainable** strategies (scratch, fine-tune) train backbone and head on
  waveforms: each step draws ``batch_size`` training clips (seeded), a random
  ``segment_seconds`` crop for segmented tasks or the clip padded/cut to
  ``clip_seconds`` otherwise. The backbone keeps its own augmentation
  (SpecAugment, dropout) in training mode; mixup is not used.

Evaluation averages the softmax over a clip's segments and scores with the
task metric: accuracy, or mAP@3 for DCASE 2018 Task 2. Loss: softmax
cross-entropy (every task is single-label).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from panns_core.audio_io import pad_or_truncate
from panns_core.transfer.audio import ClipAudio, clip_segments, random_crop
from panns_core.transfer.base import TransferData
from panns_core.transfer.strategies import (EmbeddingCache, base_of, check_strategy, fresh_copy, head_of,
                                            is_frozen, logits_of, make_backbone, state_hash, transfer_model)


@dataclass
class TransferConfig:
    """Hyper-parameters of one transfer run (the notebook's parameters map onto these).

    ``iterations`` are optimiser steps for scratch/fine-tune (official GTZAN
    recipe: Adam lr 1e-4, batch 32); ``head_iterations`` the steps of the head on
    cached embeddings (lr ``head_learning_rate``). ``clip_seconds`` /
    ``segment_seconds`` override the task's own (the smoke profile uses 1 s).
    """

    backbone: str = "Cnn14"
    checkpoint: str | None = None
    backbone_overrides: dict = field(default_factory=dict)
    iterations: int = 2000
    head_iterations: int = 2000
    batch_size: int = 32
    learning_rate: float = 1e-4
    head_learning_rate: float = 1e-3
    eval_batch_size: int = 32
    clip_seconds: float | None = None
    segment_seconds: float | None = None
    threads: int | None = None

    def geometry(self, data: TransferData) -> tuple[float, float | None]:
        """(clip_seconds, segment_seconds) after overrides; segments only for segmented tasks."""
        clip = self.clip_seconds if self.clip_seconds is not None else data.clip_seconds
        segment = None
        if data.segment_seconds is not None:
            segment = self.segment_seconds if self.segment_seconds is not None else data.segment_seconds
        return float(clip), (None if segment is None else float(segment))

    def to_dict(self) -> dict:
        return asdict(self)


def score(metric: str, labels: np.ndarray, probabilities: np.ndarray) -> float:
    """The task metric through :mod:`panns_core.metrics`."""
    from panns_core import metrics

    if metric == "accuracy":
        return metrics.accuracy(labels, probabilities)
    if metric.lower() in ("map@3", "map_at_3"):
        return metrics.map_at_k(labels, probabilities, k=3)
    raise ValueError(f"unknown transfer metric {metric!r}")


# ----------------------------------------------------------------------------
# Frozen strategies: the head on cached embeddings
# ----------------------------------------------------------------------------


def cross_entropy_step(optimizer: torch.optim.Optimizer, logits: torch.Tensor, targets: torch.Tensor) -> float:
    """One optimiser step on the softmax cross-entropy; returns the loss (shared by heads and whole models)."""
    loss = F.cross_entropy(logits, targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def train_head(head: nn.Module, features: np.ndarray, labels: np.ndarray, cfg: TransferConfig,
               seed: int) -> list[float]:
    """Adam on minibatches of (embedding, label); returns the loss of each step."""
    g = torch.Generator().manual_seed(seed)
    x_all = torch.from_numpy(features)
    y_all = torch.from_numpy(labels.astype(np.int64))
    optimizer = torch.optim.Adam(head.parameters(), lr=cfg.head_learning_rate)
    head.train()
    losses = []
    for _ in range(cfg.head_iterations):
        idx = torch.randint(0, len(x_all), (min(cfg.batch_size, len(x_all)),), generator=g)
        losses.append(cross_entropy_step(optimizer, logits_of(head(x_all[idx])), y_all[idx]))
    head.eval()
    return losses


@torch.no_grad()
def predict_head(head: nn.Module, table: dict, clip_ids: list[str]) -> np.ndarray:
    """Clip probabilities: softmax of the head on each segment embedding, averaged per clip."""
    head.eval()
    out = []
    for cid in clip_ids:
        logits = logits_of(head(torch.from_numpy(table[cid])))
        out.append(torch.softmax(logits, dim=-1).mean(0).numpy())
    return np.stack(out)


# ----------------------------------------------------------------------------
# Trainable strategies: the whole model on waveforms
# ----------------------------------------------------------------------------


def training_batch(data: TransferData, audio: ClipAudio, indices: np.ndarray, clip_seconds: float,
                   segment_seconds: float | None, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    sr = audio.sample_rate
    waves, labels = [], []
    for i in indices:
        clip = data.clips[int(i)]
        x = audio[clip.clip_id]
        if segment_seconds is None:
            waves.append(pad_or_truncate(x, int(round(clip_seconds * sr))))
        else:
            waves.append(random_crop(x[:int(round(clip_seconds * sr))], int(round(segment_seconds * sr)), rng))
        labels.append(clip.label)
    return torch.from_numpy(np.stack(waves).astype(np.float32)), torch.tensor(labels, dtype=torch.int64)


def train_model(model: nn.Module, data: TransferData, audio: ClipAudio, train_idx: np.ndarray,
                cfg: TransferConfig, seed: int) -> list[float]:
    """Adam over the trainable parameters for ``cfg.iterations`` steps; returns the losses."""
    rng = np.random.default_rng(seed)
    clip_seconds, segment_seconds = cfg.geometry(data)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.learning_rate, amsgrad=True)
    model.train()
    losses = []
    for _ in range(cfg.iterations):
        batch = rng.choice(train_idx, size=min(cfg.batch_size, len(train_idx)), replace=len(train_idx) < cfg.batch_size)
        x, y = training_batch(data, audio, batch, clip_seconds, segment_seconds, rng)
        losses.append(cross_entropy_step(optimizer, logits_of(model(x)), y))
    model.eval()
    return losses


@torch.no_grad()
def predict_model(model: nn.Module, data: TransferData, audio: ClipAudio, indices: np.ndarray,
                  cfg: TransferConfig) -> np.ndarray:
    """Clip probabilities from the full model in eval mode, averaged over segments."""
    model.eval()
    clip_seconds, segment_seconds = cfg.geometry(data)
    segs = [clip_segments(audio[data.clips[int(i)].clip_id], audio.sample_rate, clip_seconds, segment_seconds)
            for i in indices]
    flat = np.concatenate(segs)
    probs = []
    for start in range(0, len(flat), cfg.eval_batch_size):
        x = torch.from_numpy(flat[start:start + cfg.eval_batch_size].astype(np.float32))
        probs.append(torch.softmax(logits_of(model(x)), dim=-1).numpy())
    probs = np.concatenate(probs)
    bounds = np.cumsum([0] + [len(s) for s in segs])
    return np.stack([probs[bounds[i]:bounds[i + 1]].mean(0) for i in range(len(segs))])


# ----------------------------------------------------------------------------
# One run
# ----------------------------------------------------------------------------


class TransferRunner:
    """Holds the pretrained backbone, decoded audio and embedding cache for one task.

    ``run(strategy, fold, train_idx=None, seed=0)`` trains from the same
    starting weights every time (fresh copies), so folds, shot counts and seeds
    are independent; frozen strategies reuse one embedding table.
    """

    def __init__(self, data: TransferData, audio: ClipAudio, cfg: TransferConfig,
                 embedding_cache: EmbeddingCache | None = None):
        self.data, self.audio, self.cfg = data, audio, cfg
        self.cache = embedding_cache or EmbeddingCache()
        self._pretrained = None
        self._pretrained_hash = None

    def pretrained(self) -> nn.Module:
        if self._pretrained is None:
            torch.manual_seed(0)  # without a checkpoint the "pretrained" weights are a fixed random init
            self._pretrained = make_backbone(self.cfg.backbone, self.cfg.checkpoint, **self.cfg.backbone_overrides)
            self._pretrained.eval()
            self._pretrained_hash = state_hash(self._pretrained)
        return self._pretrained

    def scratch_backbone(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return make_backbone(self.cfg.backbone, None, **self.cfg.backbone_overrides)

    def build(self, strategy: str, seed: int) -> nn.Module:
        """The TransferModel of ``strategy`` with its starting weights (head seeded by ``seed``)."""
        check_strategy(strategy)
        base = self.scratch_backbone(seed) if strategy == "scratch" else fresh_copy(self.pretrained())
        torch.manual_seed(seed)
        return transfer_model(strategy, base, len(self.data.classes))

    def embeddings(self) -> dict:
        clip_seconds, segment_seconds = self.cfg.geometry(self.data)
        base = self.pretrained()
        return self.cache.get(base, self.data, self.audio, clip_seconds, segment_seconds,
                              self.cfg.eval_batch_size, weights_hash=self._pretrained_hash)

    def check_geometry(self, base: nn.Module, trained: bool = True) -> None:
        """Clips/segments must be long enough for the backbone (and its SpecAugment stripes when trained)."""
        clip_seconds, segment_seconds = self.cfg.geometry(self.data)
        samples = int(round((segment_seconds or clip_seconds) * self.audio.sample_rate))
        needed = getattr(base, "min_samples", 0)
        try:
            needed = int(needed)
        except (TypeError, NotImplementedError):
            needed = 0
        if samples < needed:
            raise ValueError(f"{self.data.task}: {samples} samples per clip/segment but {type(base).__name__} needs "
                             f">= {needed}; raise clip_seconds/segment_seconds")
        from panns_core.models.frontend import SPEC_AUG_TIME_DROP_WIDTH as sa_frames

        hop = getattr(getattr(base, "audio_config", None), "hop_size", None)
        has_spec_augment = getattr(base, "spec_augmenter", None) is not None
        if trained and has_spec_augment and hop and samples // hop + 1 <= sa_frames:
            raise ValueError(f"{self.data.task}: {samples // hop + 1} frames per clip/segment; training with "
                             f"SpecAugment needs more than {sa_frames} (use >= 1 s at 32 kHz)")

    def run(self, strategy: str, fold, train_idx: np.ndarray | None = None, seed: int = 0,
            return_model: bool = False):
        """Train on ``train_idx`` (default: the fold's whole training side), test on the fold; a result row.

        With ``return_model`` also the trained TransferModel (its head works on
        waveforms, also when it was trained on cached embeddings).
        """
        t0 = time.perf_counter()
        fold_train, test_idx = self.data.split(fold)
        train_idx = fold_train if train_idx is None else np.asarray(train_idx, dtype=np.int64)
        leaked = set(train_idx.tolist()) & set(test_idx.tolist())
        if leaked:
            raise ValueError(f"{self.data.task} fold {fold}: {len(leaked)} training clips are test clips")
        if len(train_idx) == 0:
            raise ValueError(f"{self.data.task} fold {fold}: no training clips")
        model = self.build(strategy, seed)
        self.check_geometry(base_of(model), trained=not is_frozen(strategy))
        labels = self.data.labels
        test_ids = [self.data.clips[int(i)].clip_id for i in test_idx]
        if is_frozen(strategy):
            table = self.embeddings()
            feats, ys = [], []
            for i in train_idx:
                e = table[self.data.clips[int(i)].clip_id]
                feats.append(e)
                ys.append(np.full(len(e), labels[int(i)]))
            losses = train_head(head_of(model), np.concatenate(feats), np.concatenate(ys), self.cfg, seed)
            probs = predict_head(head_of(model), table, test_ids)
        else:
            losses = train_model(model, self.data, self.audio, train_idx, self.cfg, seed)
            probs = predict_model(model, self.data, self.audio, test_idx, self.cfg)
        counts = self.data.class_counts(train_idx)
        row = {
            "task": self.data.task, "strategy": strategy, "fold": str(fold), "seed": int(seed),
            "train_clips": int(len(train_idx)), "test_clips": int(len(test_idx)),
            "max_clips_per_class": int(counts.max()), "min_clips_per_class": int(counts.min()),
            "metric": self.data.metric, "score": score(self.data.metric, labels[test_idx], probs),
            "first_loss": float(losses[0]) if losses else float("nan"),
            "last_loss": float(np.mean(losses[-max(1, len(losses) // 10):])) if losses else float("nan"),
            "steps": len(losses), "wall_s": round(time.perf_counter() - t0, 3),
        }
        return (row, model) if return_model else row
