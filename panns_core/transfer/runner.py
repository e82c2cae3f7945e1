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
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from panns_core.audio_io import PAD_MODES
from panns_core.runtime import collecting_batchnorm_statistics
from panns_core.transfer.audio import ClipAudio, clip_segments, random_crop
from panns_core.transfer.base import TransferData
from panns_core.transfer.strategies import (EmbeddingCache, base_of, check_strategy, fresh_copy, head_of,
                                            is_frozen, logits_of, make_backbone, state_hash, transfer_model)


SCHEDULES = ("constant", "cosine")
SPEC_AUGMENT_MODES = ("official", "scaled", "off")


def rate_multiplier(step: int, total: int, warmup_fraction: float, schedule: str) -> float:
    """Learning-rate factor at ``step`` (0-based): linear warm-up, then constant or cosine decay to 0."""
    warmup = int(round(warmup_fraction * total))
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + float(np.cos(np.pi * progress)))


def make_scheduler(optimizer: torch.optim.Optimizer, total: int, cfg: "TransferConfig"):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: rate_multiplier(step, total, cfg.warmup_fraction, cfg.schedule))


@dataclass
class TransferConfig:
    """Hyper-parameters of one transfer run (the notebook's parameters map onto these).

    ``iterations`` are optimiser steps for scratch/fine-tune (official GTZAN
    recipe: Adam lr 1e-4, batch 32); ``head_iterations`` the steps of the head on
    cached embeddings (lr ``head_learning_rate``). ``clip_seconds`` /
    ``segment_seconds`` override the task's own (the smoke profile uses 1 s).

    ``warmup_fraction`` (share of the steps with a linear warm-up of the rate) and
    ``schedule`` (``"constant"`` or ``"cosine"`` decay after the warm-up) default to
    the paper runs' constant rate; ``spec_augment`` is ``"official"`` (the model's
    own 64-frame time stripes), ``"scaled"`` (stripes scaled to the clip length,
    :func:`panns_core.models.frontend.scaled_time_drop_width`) or ``"off"``.
    ``device`` is where models train and embeddings are computed (``"cuda"`` on a
    GPU machine); results come back to the CPU. ``precise_bn`` recomputes the
    BatchNorm statistics of a trained backbone over the training clips before each
    evaluation (:func:`recalibrate_batchnorm`; off for the paper runs, on for
    ``panns finetune``). ``pad`` brings clips shorter than ``clip_seconds`` to
    length in training, BatchNorm recalibration, evaluation and embeddings alike:
    ``"zeros"`` (silence, the official code and the paper runs) or ``"repeat"`` (the
    clip repeated end to end; ``panns finetune``'s default, see docs/transfer.md).
    ``new_head_learning_rate``: when backbone and new head train together
    (scratch, fine-tune), the head's rate; ``None`` (the paper runs) trains
    everything at ``learning_rate``. ``panns finetune`` fine-tunes a pretrained
    backbone at 1e-4 and its new, randomly initialised head at 1e-3 (measured in
    docs/transfer.md).
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
    warmup_fraction: float = 0.0
    schedule: str = "constant"
    spec_augment: str = "official"
    device: str = "cpu"
    precise_bn: bool = False
    pad: str = "zeros"
    new_head_learning_rate: float | None = None

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.spec_augment not in SPEC_AUGMENT_MODES:
            raise ValueError(f"spec_augment must be one of {SPEC_AUGMENT_MODES}, got {self.spec_augment!r}")
        if self.pad not in PAD_MODES:
            raise ValueError(f"pad must be one of {PAD_MODES}, got {self.pad!r}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        for name in ("learning_rate", "head_learning_rate", "new_head_learning_rate"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")

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


def cross_entropy_step(optimizer: torch.optim.Optimizer, logits: torch.Tensor, targets: torch.Tensor,
                       scheduler=None) -> float:
    """One optimiser step on the softmax cross-entropy; returns the loss (shared by heads and whole models)."""
    loss = F.cross_entropy(logits, targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return float(loss.detach())


StepCallback = Callable[[int, float], None]
"""``on_step(step, loss)`` after each optimiser step (1-based step): progress bars, evaluations."""

SnapshotCallback = Callable[[int, Callable[[], dict]], None]
"""``on_snapshot(step, snapshot)`` after each step (and its ``on_step``): ``snapshot()`` returns the loop's
whole state (weights, optimiser, schedule, random generators, losses) for a later ``resume``."""

LOOP_STATE_FORMAT = "panns_transfer_loop_v1"


def loop_snapshot(step: int, module: nn.Module, optimizer, scheduler, losses: list[float],
                  rng: np.random.Generator | None = None, generator: torch.Generator | None = None) -> dict:
    """Everything a training loop needs to continue after ``step`` exactly as if never stopped.

    Plain types and tensors only (``torch.load(..., weights_only=True)`` reads it back).
    """
    return {"format": LOOP_STATE_FORMAT, "step": int(step),
            "weights": {k: v.detach().cpu().clone() for k, v in module.state_dict().items()},
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "losses": [float(x) for x in losses], "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy_rng": rng.bit_generator.state if rng is not None else None,
            "generator": generator.get_state() if generator is not None else None}


def restore_loop(state: dict, module: nn.Module, optimizer, scheduler, rng: np.random.Generator | None = None,
                 generator: torch.Generator | None = None) -> tuple[int, list[float]]:
    """Load a :func:`loop_snapshot` into the loop's objects; returns ``(step, losses)`` to continue from."""
    if state.get("format") != LOOP_STATE_FORMAT:
        raise ValueError(f"not a transfer training state (format {state.get('format')!r})")
    module.load_state_dict(state["weights"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    if rng is not None:
        rng.bit_generator.state = state["numpy_rng"]
    if generator is not None:
        generator.set_state(state["generator"])
    return int(state["step"]), list(state["losses"])


def train_head(head: nn.Module, features: np.ndarray, labels: np.ndarray, cfg: TransferConfig,
               seed: int, on_step: StepCallback | None = None, *, resume: dict | None = None,
               on_snapshot: SnapshotCallback | None = None) -> list[float]:
    """Adam on minibatches of (embedding, label); returns the loss of each step.

    ``resume``: a :func:`loop_snapshot` to continue from; ``on_snapshot`` is offered
    one after every step (see :data:`SnapshotCallback`).
    """
    g = torch.Generator().manual_seed(seed)
    device = next(head.parameters()).device
    x_all = torch.from_numpy(features).to(device)
    y_all = torch.from_numpy(labels.astype(np.int64)).to(device)
    optimizer = torch.optim.Adam(head.parameters(), lr=cfg.head_learning_rate)
    scheduler = make_scheduler(optimizer, cfg.head_iterations, cfg)
    start, losses = (0, []) if resume is None else restore_loop(resume, head, optimizer, scheduler, generator=g)
    head.train()
    for step in range(start, cfg.head_iterations):
        idx = torch.randint(0, len(x_all), (min(cfg.batch_size, len(x_all)),), generator=g).to(device)
        losses.append(cross_entropy_step(optimizer, logits_of(head(x_all[idx])), y_all[idx], scheduler))
        if on_step is not None:
            on_step(step + 1, losses[-1])
            head.train()  # the callback may have evaluated
        if on_snapshot is not None:
            on_snapshot(step + 1, lambda n=step + 1: loop_snapshot(n, head, optimizer, scheduler, losses,
                                                                   generator=g))
    head.eval()
    return losses


@torch.no_grad()
def predict_head(head: nn.Module, table: dict, clip_ids: list[str]) -> np.ndarray:
    """Clip probabilities: softmax of the head on each segment embedding, averaged per clip."""
    head.eval()
    device = next(head.parameters()).device
    out = []
    for cid in clip_ids:
        logits = logits_of(head(torch.from_numpy(table[cid]).to(device)))
        out.append(torch.softmax(logits, dim=-1).mean(0).cpu().numpy())
    return np.stack(out)


# ----------------------------------------------------------------------------
# Trainable strategies: the whole model on waveforms
# ----------------------------------------------------------------------------


def training_batch(data: TransferData, audio: ClipAudio, indices: np.ndarray, clip_seconds: float,
                   segment_seconds: float | None, rng: np.random.Generator,
                   pad: str = "zeros") -> tuple[torch.Tensor, torch.Tensor]:
    sr = audio.sample_rate
    waves, labels = [], []
    for i in indices:
        clip = data.clips[int(i)]
        x = audio[clip.clip_id]
        if segment_seconds is None:
            waves.append(clip_segments(x, sr, clip_seconds, None, pad)[0])
        else:
            waves.append(random_crop(x[:int(round(clip_seconds * sr))], int(round(segment_seconds * sr)), rng,
                                     pad))
        labels.append(clip.label)
    return torch.from_numpy(np.stack(waves).astype(np.float32)), torch.tensor(labels, dtype=torch.int64)


def parameter_groups(model: nn.Module, cfg: TransferConfig) -> list[dict]:
    """The trainable parameters as Adam groups: one at ``learning_rate``, or backbone and new head apart."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if cfg.new_head_learning_rate is None:
        return [{"params": trainable}]
    head_ids = {id(p) for p in head_of(model).parameters()}
    return [{"params": [p for p in trainable if id(p) not in head_ids]},
            {"params": [p for p in trainable if id(p) in head_ids], "lr": cfg.new_head_learning_rate}]


def train_model(model: nn.Module, data: TransferData, audio: ClipAudio, train_idx: np.ndarray,
                cfg: TransferConfig, seed: int, on_step: StepCallback | None = None, *,
                resume: dict | None = None, on_snapshot: SnapshotCallback | None = None) -> list[float]:
    """Adam over the trainable parameters for ``cfg.iterations`` steps; returns the losses.

    ``resume``/``on_snapshot``: as in :func:`train_head`; a resumed loop draws the
    same batches, crops, dropout and SpecAugment masks as an uninterrupted one.
    """
    rng = np.random.default_rng(seed)
    clip_seconds, segment_seconds = cfg.geometry(data)
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(parameter_groups(model, cfg), lr=cfg.learning_rate, amsgrad=True)
    scheduler = make_scheduler(optimizer, cfg.iterations, cfg)
    start, losses = (0, []) if resume is None else restore_loop(resume, model, optimizer, scheduler, rng=rng)
    model.train()
    for step in range(start, cfg.iterations):
        batch = rng.choice(train_idx, size=min(cfg.batch_size, len(train_idx)), replace=len(train_idx) < cfg.batch_size)
        x, y = training_batch(data, audio, batch, clip_seconds, segment_seconds, rng, cfg.pad)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        losses.append(cross_entropy_step(optimizer, logits_of(model(x)), y, scheduler))
        if on_step is not None:
            on_step(step + 1, losses[-1])
            model.train()  # the callback may have evaluated
        if on_snapshot is not None:
            on_snapshot(step + 1, lambda n=step + 1: loop_snapshot(n, model, optimizer, scheduler, losses, rng=rng))
    model.eval()
    return losses


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, data: TransferData, audio: ClipAudio, train_idx: np.ndarray,
                          cfg: TransferConfig, progress: Callable[[int], None] | None = None) -> int:
    """Set every BatchNorm's running statistics to their mean over the training clips; returns the count.

    Why: the running statistics are an exponential average (momentum 0.1) of the
    batches of the last few steps, taken while the weights were still moving fast
    and with dropout and SpecAugment on. After a short run on short, zero-padded
    clips they no longer describe what the finished model computes, and the model
    in eval mode misclassifies even its own training clips (measured in
    docs/transfer.md). Here the model runs in eval mode (no dropout, no
    SpecAugment) with only its BatchNorm layers collecting a cumulative average
    (``momentum=None``) over one pass of the training clips, as they are evaluated.
    ``progress(n)`` is called after each batch of ``n`` segments.
    """
    device = next(model.parameters()).device
    clip_seconds, segment_seconds = cfg.geometry(data)
    with collecting_batchnorm_statistics(model) as count:
        if not count:
            return 0
        segs = np.concatenate([clip_segments(audio[data.clips[int(i)].clip_id], audio.sample_rate, clip_seconds,
                                             segment_seconds, cfg.pad) for i in train_idx])
        for start in range(0, len(segs), cfg.eval_batch_size):
            batch = segs[start:start + cfg.eval_batch_size]
            model(torch.from_numpy(batch.astype(np.float32)).to(device))
            if progress is not None:
                progress(len(batch))
    return count


@torch.no_grad()
def predict_model(model: nn.Module, data: TransferData, audio: ClipAudio, indices: np.ndarray,
                  cfg: TransferConfig, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Clip probabilities from the full model in eval mode, averaged over segments (``progress(n)`` per batch)."""
    model.eval()
    device = next(model.parameters()).device
    clip_seconds, segment_seconds = cfg.geometry(data)
    segs = [clip_segments(audio[data.clips[int(i)].clip_id], audio.sample_rate, clip_seconds, segment_seconds,
                          cfg.pad) for i in indices]
    flat = np.concatenate(segs)
    probs = []
    for start in range(0, len(flat), cfg.eval_batch_size):
        x = torch.from_numpy(flat[start:start + cfg.eval_batch_size].astype(np.float32)).to(device)
        probs.append(torch.softmax(logits_of(model(x)), dim=-1).float().cpu().numpy())
        if progress is not None:
            progress(len(x))
    probs = np.concatenate(probs)
    bounds = np.cumsum([0] + [len(s) for s in segs])
    return np.stack([probs[bounds[i]:bounds[i + 1]].mean(0) for i in range(len(segs))])


# ----------------------------------------------------------------------------
# One run
# ----------------------------------------------------------------------------


@dataclass
class HeldOutEvaluation:
    """What ``TransferRunner.run`` hands to ``on_step``: ``evaluate(progress=None)`` gives the held-out
    probabilities now; ``segments`` is how many segments it runs (``progress(n)`` counts them)."""

    evaluate: Callable
    segments: int

    def __call__(self, progress: Callable[[int], None] | None = None) -> np.ndarray:
        return self.evaluate(progress)


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
            self._pretrained_hash = state_hash(self._pretrained)  # of the weights, before moving them
            self._pretrained.to(self.cfg.device)
        return self._pretrained

    def scratch_backbone(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return make_backbone(self.cfg.backbone, None, **self.cfg.backbone_overrides)

    def build(self, strategy: str, seed: int) -> nn.Module:
        """The TransferModel of ``strategy`` with its starting weights (head seeded by ``seed``)."""
        check_strategy(strategy)
        base = self.scratch_backbone(seed) if strategy == "scratch" else fresh_copy(self.pretrained())
        if not is_frozen(strategy):
            self.configure_spec_augment(base)
        torch.manual_seed(seed)
        return transfer_model(strategy, base, len(self.data.classes)).to(self.cfg.device)

    def clip_frames(self, base: nn.Module) -> int | None:
        """STFT frames of one training clip/segment (``None`` for a backbone without a hop)."""
        clip_seconds, segment_seconds = self.cfg.geometry(self.data)
        hop = getattr(getattr(base, "audio_config", None), "hop_size", None)
        if not hop:
            return None
        return int(round((segment_seconds or clip_seconds) * self.audio.sample_rate)) // hop + 1

    def configure_spec_augment(self, base: nn.Module) -> None:
        """Apply ``cfg.spec_augment`` to a backbone that will be trained (no-op without SpecAugment)."""
        from panns_core.models.frontend import scaled_time_drop_width, set_spec_augment

        augmenter = getattr(base, "spec_augmenter", None)
        if augmenter is None or self.cfg.spec_augment == "official":
            return
        if self.cfg.spec_augment == "off":
            base.spec_augmenter = None
            return
        frames = self.clip_frames(base)
        if frames is not None:
            set_spec_augment(base, time_drop_width=scaled_time_drop_width(frames),
                             freq_drop_width=augmenter.freq_dropper.drop_width)

    def embeddings(self) -> dict:
        clip_seconds, segment_seconds = self.cfg.geometry(self.data)
        base = self.pretrained()
        return self.cache.get(base, self.data, self.audio, clip_seconds, segment_seconds,
                              self.cfg.eval_batch_size, weights_hash=self._pretrained_hash, pad=self.cfg.pad)

    def segment_count(self, indices) -> int:
        """How many segments an evaluation of ``indices`` runs through the model (one per clip unless segmented)."""
        clip_seconds, segment_seconds = self.cfg.geometry(self.data)
        if segment_seconds is None:
            return len(indices)
        keep, seg = int(round(clip_seconds * self.audio.sample_rate)), int(round(segment_seconds * self.audio.sample_rate))
        return int(sum(max(1, -(-min(len(self.audio[self.data.clips[int(i)].clip_id]), keep) // seg))
                       for i in indices))

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
        augmenter = getattr(base, "spec_augmenter", None)
        frames = self.clip_frames(base)
        if trained and augmenter is not None and frames is not None:
            sa_frames = augmenter.time_dropper.drop_width
            if frames <= sa_frames:
                raise ValueError(f"{self.data.task}: {frames} frames per clip/segment; training with "
                                 f"{sa_frames}-frame SpecAugment stripes needs more (use longer clips, or "
                                 "spec_augment='scaled' for stripes scaled to the clip length)")

    def run(self, strategy: str, fold, train_idx: np.ndarray | None = None, seed: int = 0,
            return_model: bool = False, on_step=None, *, resume: dict | None = None,
            on_snapshot: SnapshotCallback | None = None):
        """Train on ``train_idx`` (default: the fold's whole training side), test on the fold; a result row.

        With ``return_model`` also the trained TransferModel (its head works on
        waveforms, also when it was trained on cached embeddings). ``on_step(step,
        loss, evaluate)`` is called after every optimiser step; ``evaluate(progress=None)``
        (a :class:`HeldOutEvaluation`) returns the current model's test-side
        probabilities (for progress bars and monitoring; nothing is selected on them).
        When it was called after the last step, its result is the run's result (the
        final evaluation is not repeated, so the last number shown is the one reported).
        ``resume`` / ``on_snapshot``: continue a stopped loop / offer its state after each
        step (:func:`train_model`). The test indices, probabilities and step losses of the
        last run stay in ``last_test_idx``, ``last_probabilities`` and ``last_losses``.
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
        last = {}  # step -> probabilities of an evaluation after that step
        if is_frozen(strategy):
            table = self.embeddings()
            feats, ys = [], []
            for i in train_idx:
                e = table[self.data.clips[int(i)].clip_id]
                feats.append(e)
                ys.append(np.full(len(e), labels[int(i)]))

            def predict(progress=None):
                return predict_head(head_of(model), table, test_ids)

            predict_segments = 0
        else:
            def predict(progress=None):
                if self.cfg.precise_bn:
                    recalibrate_batchnorm(model, self.data, self.audio, train_idx, self.cfg, progress)
                return predict_model(model, self.data, self.audio, test_idx, self.cfg, progress)

            predict_segments = 0 if on_step is None else (
                self.segment_count(test_idx) + (self.segment_count(train_idx) if self.cfg.precise_bn else 0))

        def evaluation(step: int) -> HeldOutEvaluation:
            def evaluate(progress=None):
                last.clear()
                last[step] = predict(progress)
                return last[step]
            return HeldOutEvaluation(evaluate, predict_segments)

        callback = None if on_step is None else (lambda step, loss: on_step(step, loss, evaluation(step)))
        if is_frozen(strategy):
            losses = train_head(head_of(model), np.concatenate(feats), np.concatenate(ys), self.cfg, seed,
                                on_step=callback, resume=resume, on_snapshot=on_snapshot)
        else:
            losses = train_model(model, self.data, self.audio, train_idx, self.cfg, seed, on_step=callback,
                                 resume=resume, on_snapshot=on_snapshot)
        probs = last[len(losses)] if len(losses) in last else predict()
        self.last_test_idx, self.last_probabilities, self.last_losses = test_idx, probs, losses
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
