"""Training engine: the paper's AudioSet recipe, exact resume, mixed precision, torchrun.

The recipe (official ``pytorch/main.py``): balanced sampler (``balanced``,
``none`` or ``alternate``), ``2 * batch_size`` clips per step with mixup (alpha 1,
consecutive pairs mixed at the model's official place, targets mixed alike),
SpecAugment inside the model, Adam(lr 1e-3, amsgrad), clip-level BCE, constant
learning rate. Loop order per iteration ``i``: evaluate when ``i % eval_every ==
0`` (so at 0) or at the last iteration, save checkpoints, stop if ``i ==
iterations``, then take one training step.

What the official loop did not do and this one does: a checkpoint holds the
optimizer, sampler, mixup, grad-scaler, loss-accumulator and every RNG state, so
a run killed and resumed writes exactly the statistics of an uninterrupted run;
``best.pt`` is chosen on the validation split (on eval only when no validation
split exists, and labelled so); optional early stop; bf16/fp16 autocast,
channels_last, ``torch.compile``; DistributedDataParallel under ``torchrun``
(every rank takes its slice of the one-process batch, so the effective batch and
the sample stream do not depend on the number of GPUs); gradient accumulation
that splits each batch into micro-batches (same effective batch of 32).

    python -m panns_core.train --config cfg.json
    python -m panns_core.train --model Cnn6 --data-root data --training-set balanced_train \\
        --iterations 10000 --eval-every 1000 --run-dir runs/mine/train/Cnn6
    torchrun --nproc_per_node=4 -m panns_core.train --config cfg.json
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import random
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from panns_core import distributed as D
from panns_core.evaluate import PRECISIONS, TensorCollate, autocast_context, evaluate, ids_sha256
from panns_core.mixup import Mixup

log = logging.getLogger("panns_core.train")

MODEL_OVERRIDES = ("sample_rate", "window_size", "hop_size", "mel_bins", "fmin", "fmax")
BALANCED = ("balanced", "none", "alternate")
AUGMENTATIONS = ("none", "mixup")
RESAMPLE_MODES = ("antialias", "decimate")
SPLITS = ("eval", "balanced_train", "validation")
OPTIONAL_SPLITS = ("validation",)
"""Splits skipped (with a log line) when their index file is absent."""

IDENTITY_FIELDS = (
    "model", *MODEL_OVERRIDES, "model_kwargs", "training_set", "train_index", "balanced",
    "augmentation", "mixup_alpha", "resample_mode", "black_list_csv", "batch_size",
    "learning_rate", "seed",
)
"""Fields that must not change when a run is resumed (they define the statistics)."""

CONFIG_EXTRA_KEYS = ("eval_set_sha256", "run_info")
"""Keys that ``config.json`` adds to the TrainConfig fields (ignored when read back)."""


@dataclass
class TrainConfig:
    """Every knob of a training run; every ablation of the paper is a value here.

    Model: ``model`` (class name) and optional front-end overrides; other
    constructor keywords in ``model_kwargs``. Data: ``data_root`` (official
    layout) with ``training_set`` = ``balanced_train`` | ``full_train`` | an index
    name (e.g. ``full_train_frac0.5_seed0``) | an ``.h5`` path (``train_index``
    overrides it), and ``eval_splits`` whose index files are
    ``<data_root>/hdf5s/indexes/<split>.h5`` unless given in ``eval_indexes``.
    ``early_stop`` is a patience in evaluations of the selection split (None: off).
    ``resume`` is ``auto`` (continue from ``checkpoints/latest.pt`` when present),
    ``never`` (refuse a run folder holding checkpoints) or a checkpoint path.
    """

    model: str = "Cnn14"
    sample_rate: Optional[int] = None
    window_size: Optional[int] = None
    hop_size: Optional[int] = None
    mel_bins: Optional[int] = None
    fmin: Optional[int] = None
    fmax: Optional[int] = None
    model_kwargs: dict = field(default_factory=dict)
    data_root: Optional[str] = None
    training_set: str = "full_train"
    train_index: Optional[str] = None
    eval_splits: list = field(default_factory=lambda: list(SPLITS))
    eval_indexes: dict = field(default_factory=dict)
    max_eval_clips: Optional[int] = None
    balanced: str = "balanced"
    augmentation: str = "mixup"
    mixup_alpha: float = 1.0
    # Short-run recipe options (official behaviour by default): SpecAugment time-stripe
    # width (None: the model's own, 64 frames; see models.frontend.scaled_time_drop_width)
    # and a linear learning-rate warm-up over the first iterations (0: none).
    spec_augment_time_width: Optional[int] = None
    warmup_iterations: int = 0
    resample_mode: str = "antialias"
    black_list_csv: Optional[str] = None
    batch_size: int = 32
    accumulation_steps: int = 1
    learning_rate: float = 1e-3
    iterations: int = 600_000
    eval_every: int = 2000
    checkpoint_every: int = 100_000
    early_stop: Optional[int] = None
    seed: int = 1234
    device: str = "auto"
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    num_workers: int = 0
    eval_batch_size: Optional[int] = None
    run_dir: str = "runs/default/train/Cnn14"
    resume: str = "auto"
    progress: bool = True

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "TrainConfig":
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known - set(CONFIG_EXTRA_KEYS))
        if unknown:
            raise ValueError(f"{source}: unknown field(s) {unknown}; known fields: {sorted(known)}")
        config = cls(**{k: v for k, v in data.items() if k in known})
        config.validate(source=source)
        return config

    @classmethod
    def from_json(cls, path) -> "TrainConfig":
        try:
            with open(path) as f:
                data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
        return cls.from_dict(data, source=str(path))

    def to_json(self, path) -> None:
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=1)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ derived values
    def model_spec(self) -> dict:
        """``{"name", "kwargs"}`` for :func:`panns_core.models.create_model` (without classes_num)."""
        kwargs = {k: getattr(self, k) for k in MODEL_OVERRIDES if getattr(self, k) is not None}
        kwargs.update(self.model_kwargs)
        return {"name": self.model, "kwargs": kwargs}

    @property
    def mixup(self) -> bool:
        return self.augmentation == "mixup"

    @property
    def clips_per_step(self) -> int:
        """Clips read per iteration: the batch, doubled with mixup (official main.py:150)."""
        return self.batch_size * (2 if self.mixup else 1)

    def validate(self, world_size: int = 1, source: str = "config") -> None:
        """Raise ValueError naming the field for every inconsistent value."""

        def bad(msg):
            raise ValueError(f"{source}: {msg}")

        def choice(name, options):
            if getattr(self, name) not in options:
                bad(f"{name}={getattr(self, name)!r} is not one of {list(options)}")

        def positive(name, allow_none=False, minimum=1):
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                bad(f"{name} must be an integer >= {minimum}, got {v!r}")

        if not isinstance(self.model, str) or not self.model:
            bad(f"model must be a model class name, got {self.model!r}")
        choice("balanced", BALANCED)
        choice("augmentation", AUGMENTATIONS)
        choice("resample_mode", RESAMPLE_MODES)
        choice("precision", PRECISIONS)
        for name in MODEL_OVERRIDES:
            positive(name, allow_none=True, minimum=0 if name == "fmin" else 1)
        for name in ("batch_size", "accumulation_steps", "eval_every", "checkpoint_every"):
            positive(name)
        positive("iterations", minimum=0)
        positive("num_workers", minimum=0)
        positive("warmup_iterations", minimum=0)
        positive("spec_augment_time_width", allow_none=True)
        for name in ("early_stop", "max_eval_clips", "eval_batch_size"):
            positive(name, allow_none=True)
        if not (isinstance(self.mixup_alpha, (int, float)) and self.mixup_alpha > 0):
            bad(f"mixup_alpha must be > 0, got {self.mixup_alpha!r}")
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            bad(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not isinstance(self.model_kwargs, dict) or not isinstance(self.eval_indexes, dict):
            bad("model_kwargs and eval_indexes must be JSON objects")
        if not isinstance(self.eval_splits, (list, tuple)) or not all(isinstance(s, str) for s in self.eval_splits):
            bad(f"eval_splits must be a list of split names, got {self.eval_splits!r}")
        if self.train_index is None and self.data_root is None and not str(self.training_set).endswith(".h5"):
            bad("set data_root (official layout), or train_index / training_set to an index .h5 path")
        if not isinstance(self.resume, str) or not self.resume:
            bad(f"resume must be 'auto', 'never' or a checkpoint path, got {self.resume!r}")
        if self.clips_per_step % world_size:
            bad(f"{self.clips_per_step} clips per step do not split over {world_size} processes")
        per_rank = self.clips_per_step // world_size
        if per_rank % self.accumulation_steps:
            bad(f"{per_rank} clips per process do not split into accumulation_steps={self.accumulation_steps}")
        if self.mixup and (per_rank // self.accumulation_steps) % 2:
            bad("with mixup every micro-batch must hold whole pairs; change batch_size, "
                "accumulation_steps or the number of processes")


# ---------------------------------------------------------------------------- data


@dataclass
class RunData:
    """What training reads: the train index, the eval indexes (already capped), the readers.

    Built from the config by :func:`build_run_data`; tests may pass an in-memory one.
    """

    train_table: object  # panns_core.data.index.IndexTable
    train_dataset: object  # dataset[meta] -> {'audio_name', 'waveform', 'target'}
    eval_tables: dict  # split -> IndexTable
    eval_dataset: object
    collate_fn: Callable
    train_index_path: Optional[str] = None
    eval_index_paths: dict = field(default_factory=dict)

    @property
    def classes_num(self) -> int:
        return int(self.train_table.targets.shape[1])


def indexes_dir(config: TrainConfig) -> Path:
    if config.data_root is None:
        raise ValueError("data_root is not set; give explicit index paths (train_index, eval_indexes)")
    return Path(config.data_root) / "hdf5s" / "indexes"


def resolve_train_index(config: TrainConfig) -> str:
    """Path of the training index: ``train_index``, an ``.h5`` ``training_set`` or ``<data_root>/hdf5s/indexes/<name>.h5``."""
    name = config.train_index or config.training_set
    path = Path(name) if str(name).endswith(".h5") else indexes_dir(config) / f"{name}.h5"
    if not path.exists():
        raise FileNotFoundError(f"training set {name!r}: index file {path} not found")
    return str(path)


def resolve_eval_indexes(config: TrainConfig) -> dict:
    """``split -> index path`` for the configured eval splits; an absent optional split is skipped."""
    out = {}
    for split in config.eval_splits:
        given = config.eval_indexes.get(split)
        path = Path(given) if given else indexes_dir(config) / f"{split}.h5"
        if path.exists():
            out[split] = str(path)
        elif split in OPTIONAL_SPLITS and not given:
            log.info("no %s split (%s absent): best.pt is chosen on eval", split, path)
        else:
            raise FileNotFoundError(f"evaluation split {split!r}: index file {path} not found")
    return out


def build_run_data(config: TrainConfig) -> RunData:
    """Index tables and HDF5 readers for a config (the official on-disk layout)."""
    from panns_core.data.index import read_index
    from panns_core.data.reader import AudioSetDataset, collate_fn
    from panns_core.evaluate import load_table

    train_path = resolve_train_index(config)
    eval_paths = resolve_eval_indexes(config)
    sample_rate = _model_audio_config(config).sample_rate
    dataset = AudioSetDataset(sample_rate=sample_rate, resample_mode=config.resample_mode)
    return RunData(
        train_table=read_index(train_path),
        train_dataset=dataset,
        eval_tables={s: load_table(p, config.max_eval_clips) for s, p in eval_paths.items()},
        eval_dataset=dataset,
        collate_fn=collate_fn,
        train_index_path=train_path,
        eval_index_paths=eval_paths,
    )


def _model_audio_config(config: TrainConfig):
    from panns_core.models import model_info

    overrides = {k: getattr(config, k) for k in MODEL_OVERRIDES if getattr(config, k) is not None}
    return model_info(config.model).config.replace(**overrides)


def create_model_from_config(config: TrainConfig, classes_num: int) -> torch.nn.Module:
    from panns_core.models import create_model

    spec = config.model_spec()
    return create_model(spec["name"], classes_num=classes_num, **spec["kwargs"])


# ---------------------------------------------------------------------------- state


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_states(device: torch.device) -> dict:
    """torch (CPU and CUDA), numpy and python RNG states, loadable with ``weights_only=True``."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss_next],
    }


def set_rng_states(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


@dataclass
class Progress:
    """Loop counters saved in every checkpoint (all needed for an exact resume)."""

    iteration: int = 0
    loss_sum: float = 0.0  # this rank's sum of step losses since the last evaluation
    loss_count: int = 0
    clips_since_eval: int = 0
    train_seconds_since_eval: float = 0.0
    wall_time_s: float = 0.0
    best_metric: Optional[float] = None
    best_iteration: Optional[int] = None
    evals_without_improvement: int = 0


class _TrackedBatches:
    """``batch_sampler`` wrapper that snapshots the sampler state after chosen batches.

    DataLoader workers prefetch, so at iteration ``i`` the sampler itself is
    already a few batches ahead; the snapshot taken right after batch ``i`` was
    drawn is the state a resumed run must start from.
    """

    def __init__(self, sampler, start: int, wanted: Callable[[int], bool]):
        self.sampler, self.count, self.wanted = sampler, start, wanted
        self.snapshots = {}

    def __iter__(self):
        for batch in self.sampler:
            self.count += 1
            if self.wanted(self.count):
                self.snapshots[self.count] = self.sampler.state_dict()
            yield batch

    def take(self, iteration: int) -> dict:
        for k in [k for k in self.snapshots if k < iteration]:
            del self.snapshots[k]
        return self.snapshots.pop(iteration)


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".partial")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_training_state(path) -> dict:
    """A training checkpoint (``latest.pt`` / ``iter_N.pt``), read with ``weights_only=True``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure names the file
        raise ValueError(f"{path}: not a readable training checkpoint ({e})") from e
    missing = [k for k in ("model", "optimizer", "sampler", "progress", "rng", "config") if k not in state]
    if missing:
        raise ValueError(f"{path}: not a resumable training checkpoint (missing {missing}); "
                         "weights-only files such as best.pt or released checkpoints cannot be resumed")
    return state


def _check_same_run(saved: dict, config: TrainConfig, path) -> None:
    for name in IDENTITY_FIELDS:
        if saved.get(name) != getattr(config, name):
            raise ValueError(
                f"{path}: written by a run with {name}={saved.get(name)!r}, this config has "
                f"{getattr(config, name)!r}; use another run_dir or resume='never' in a fresh folder"
            )


def _resume_path(config: TrainConfig, ckpt_dir: Path) -> Optional[Path]:
    latest = ckpt_dir / "latest.pt"
    if config.resume == "auto":
        return latest if latest.exists() else None
    if config.resume == "never":
        if latest.exists():
            raise ValueError(f"{latest} exists and resume='never'; remove the run folder or choose another run_dir")
        return None
    path = Path(config.resume)
    if not path.exists():
        raise FileNotFoundError(f"resume checkpoint {path} not found")
    return path


# ---------------------------------------------------------------------------- statistics


def read_statistics(run_dir) -> list:
    """The statistics lines of a run folder, as dicts, in file order."""
    path = Path(run_dir) / "statistics.jsonl"
    if not path.exists():
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _truncate_statistics(path: Path, iteration: int) -> None:
    """Drop lines written after the checkpoint we resume from (they will be rewritten)."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["iteration"] <= iteration]
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- the loop


class Trainer:
    """One training run; :func:`train` is the entry point."""

    def __init__(self, config: TrainConfig, data: Optional[RunData] = None,
                 model_factory: Optional[Callable] = None):
        config.validate()
        self.config = config
        info = D.env_dist_info()
        self.device = D.device_for_rank(config.device, info)
        self.dist = D.init_distributed(self.device)
        config.validate(world_size=self.dist.world_size)
        if config.precision == "fp16" and self.device.type != "cuda":
            raise ValueError("precision 'fp16' needs a CUDA device; use 'bf16' on CPU")
        self.run_dir = Path(config.run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.stats_path = self.run_dir / "statistics.jsonl"
        self.data = data if data is not None else build_run_data(config)
        for split, table in self.data.eval_tables.items():
            if table.targets.shape[1] != self.data.classes_num:
                raise ValueError(f"split {split!r} has {table.targets.shape[1]} classes, "
                                 f"the training index has {self.data.classes_num}")
        self.selection_split = "validation" if "validation" in self.data.eval_tables else "eval"
        if self.selection_split not in self.data.eval_tables:
            self.selection_split = None
        self.eval_sha = {s: ids_sha256(t.audio_names) for s, t in self.data.eval_tables.items()}

        seed_everything(config.seed + self.dist.rank)
        factory = model_factory or create_model_from_config
        self.model = factory(config, self.data.classes_num).to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        augmenter = getattr(self.model, "spec_augmenter", None)
        if config.spec_augment_time_width is not None and augmenter is not None:
            from panns_core.models.frontend import set_spec_augment

            set_spec_augment(self.model, time_drop_width=config.spec_augment_time_width,
                             time_stripes_num=augmenter.time_dropper.stripes_num,
                             freq_drop_width=augmenter.freq_dropper.drop_width,
                             freq_stripes_num=augmenter.freq_dropper.stripes_num)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate,
                                          betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=True)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.precision == "fp16")
        from panns_core.samplers import create_train_sampler

        self.per_rank_clips = config.clips_per_step // self.dist.world_size
        self.sampler = create_train_sampler(
            config.balanced, self.data.train_table, self.per_rank_clips, random_seed=config.seed,
            rank=self.dist.rank, world_size=self.dist.world_size, black_list_csv=config.black_list_csv)
        self.mixup = Mixup(config.mixup_alpha, random_seed=config.seed) if config.mixup else None
        self.progress = Progress()
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self.pending_rng = None
        self.resumed_at = None
        self._resume()

        self.net = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.ddp = self.net if self.dist.enabled else None
        if config.compile:
            self.net = torch.compile(self.net)

    # -------------------------------------------------------------- resume / checkpoints
    def _resume(self) -> None:
        path = _resume_path(self.config, self.ckpt_dir)
        if path is None:
            return
        state = load_training_state(path)
        _check_same_run(state["config"], self.config, path)
        if len(state["rng"]) != self.dist.world_size:
            raise ValueError(f"{path}: saved by {len(state['rng'])} process(es), this run has "
                             f"{self.dist.world_size}; resume with the same number of processes")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])
        if self.mixup is not None:
            self.mixup.load_state_dict(state["mixup"])
        self.progress = Progress(**state["progress"])
        mine = state["rng"][self.dist.rank]
        self.progress.loss_sum = float(mine["loss_sum"])
        self.progress.loss_count = int(mine["loss_count"])
        self.loss_sum.fill_(self.progress.loss_sum)
        self.pending_rng = mine["rng"]
        self.resumed_at = self.progress.iteration
        if self.dist.is_main:
            log.info("resuming %s from %s at iteration %d", self.run_dir, path, self.resumed_at)

    def _is_checkpoint_iteration(self, i: int) -> bool:
        c = self.config
        return i % c.eval_every == 0 or i % c.checkpoint_every == 0 or i >= c.iterations

    def _training_state(self, sampler_state: dict) -> dict:
        p = self.progress
        p.loss_sum = float(self.loss_sum.item())
        mine = {"rng": rng_states(self.device), "loss_sum": p.loss_sum, "loss_count": p.loss_count}
        per_rank = D.all_gather_objects(mine, self.dist)
        progress = dataclasses.asdict(p)
        progress["loss_sum"], progress["loss_count"] = 0.0, 0  # per rank, stored under "rng"
        progress["wall_time_s"] = p.wall_time_s + (time.perf_counter() - self._t0)
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": sampler_state,
            "mixup": self.mixup.state_dict() if self.mixup else None,
            "progress": progress,
            "rng": per_rank,
            "iteration": p.iteration,
            "config": self.config.to_dict(),
            "selection_split": self.selection_split,
        }

    def _save(self, sampler_state: dict, improved: bool) -> None:
        state = self._training_state(sampler_state)  # collective: every rank takes part
        if not self.dist.is_main:
            return
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        i = self.progress.iteration
        _atomic_save(state, self.ckpt_dir / "latest.pt")
        if i > 0 and i % self.config.checkpoint_every == 0:
            _atomic_save(state, self.ckpt_dir / f"iter_{i}.pt")
        if improved:
            best = {"model": state["model"], "iteration": i, "config": state["config"],
                    "selection": {"split": self.selection_split, "mAP": self.progress.best_metric}}
            _atomic_save(best, self.ckpt_dir / "best.pt")

    def _write_run_files(self) -> None:
        """config.json (fields + run facts) and a statistics file consistent with the checkpoint."""
        if not self.dist.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        record = self.config.to_dict()
        record["eval_set_sha256"] = self.eval_sha.get("eval")
        record["run_info"] = {
            "classes_num": self.data.classes_num,
            "model_class": type(self.model).__name__,
            "audio_config": dataclasses.asdict(self.model.audio_config) if hasattr(self.model, "audio_config") else None,
            "parameters": int(sum(p.numel() for p in self.model.parameters())),
            "world_size": self.dist.world_size,
            "device": str(self.device),
            "clips_per_step": self.config.clips_per_step,
            "train_index": self.data.train_index_path,
            "train_clips": len(self.data.train_table.audio_names),
            "eval_indexes": self.data.eval_index_paths,
            "eval_clips": {s: len(t.audio_names) for s, t in self.data.eval_tables.items()},
            "eval_set_sha256": self.eval_sha,
            "selection_split": self.selection_split,
            "torch_version": torch.__version__,
        }
        with open(self.run_dir / "config.json", "w") as f:
            json.dump(record, f, indent=1)
        if self.resumed_at is None:
            self.stats_path.write_text("")
        else:
            _truncate_statistics(self.stats_path, self.resumed_at)

    # -------------------------------------------------------------- evaluation
    def _evaluate_all(self, iteration: int) -> bool:
        """Score every split, write the statistics lines; True when the selection mAP improved."""
        c, p = self.config, self.progress
        p.loss_sum = float(self.loss_sum.item())
        mean_loss = p.loss_sum / p.loss_count if p.loss_count else None
        train_loss = D.mean_over_ranks(mean_loss, self.dist) if mean_loss is not None else None
        cps = p.clips_since_eval / p.train_seconds_since_eval if p.train_seconds_since_eval > 0 else None
        improved = False
        for split, table in self.data.eval_tables.items():
            result = evaluate(self.model, table, dataset=self.data.eval_dataset,
                              batch_size=c.eval_batch_size or c.batch_size, device=self.device,
                              precision=c.precision, num_workers=c.num_workers,
                              collate_fn=self.data.collate_fn, rank=self.dist.rank,
                              world_size=self.dist.world_size)
            line = {
                "iteration": iteration, "split": split,
                "mAP": result["mAP"], "mAUC": result["mAUC"], "d_prime": result["d_prime"],
                "d_prime_mean_per_class": result["d_prime_mean_per_class"],
                "AP": result["AP"], "AUC": result["AUC"],
                "classes_evaluated": result["classes_evaluated"],
                "classes_without_positives": result["classes_without_positives"],
                "num_clips": result["num_clips"],
                "train_loss": train_loss,
                "wall_time_s": p.wall_time_s + (time.perf_counter() - self._t0),
                "clips_per_second": cps,
                "eval_set_sha256": result["eval_set_sha256"],
                "resample_mode": c.resample_mode,
                "selection": split == self.selection_split,
            }
            if self.dist.is_main:
                with open(self.stats_path, "a") as f:
                    f.write(json.dumps(line, allow_nan=False) + "\n")
                log.info("iteration %d  %-14s mAP %s  AUC %s  d' %s  loss %s", iteration, split,
                         _fmt(line["mAP"]), _fmt(line["mAUC"]), _fmt(line["d_prime"]), _fmt(train_loss))
            if split == self.selection_split and result["mAP"] is not None:
                if p.best_metric is None or result["mAP"] > p.best_metric:
                    p.best_metric, p.best_iteration, improved = result["mAP"], iteration, True
        if self.selection_split is not None:
            p.evals_without_improvement = 0 if improved else p.evals_without_improvement + 1
        self.loss_sum.zero_()
        p.loss_count = p.clips_since_eval = 0
        p.train_seconds_since_eval = 0.0
        return improved

    # -------------------------------------------------------------- training
    def _train_step(self, batch) -> None:
        c = self.config
        waveform = torch.as_tensor(batch["waveform"]).to(self.device, non_blocking=True)
        target = torch.as_tensor(batch["target"]).to(self.device, non_blocking=True)
        lam = None
        if self.mixup is not None:
            r = self.dist.rank * self.per_rank_clips
            lam = self.mixup.get_lambda(c.clips_per_step)[r:r + self.per_rank_clips]
            lam = torch.from_numpy(lam).to(self.device, non_blocking=True)
        if c.warmup_iterations:  # a function of the iteration only, so a resumed run is exact
            scale = min(1.0, (self.progress.iteration + 1) / c.warmup_iterations)
            for group in self.optimizer.param_groups:
                group["lr"] = c.learning_rate * scale
        loss = train_step(self.net, self.optimizer, self.scaler, waveform, target, lam, device=self.device,
                          precision=c.precision, accumulation_steps=c.accumulation_steps, ddp=self.ddp)
        self.loss_sum += loss.double()
        self.progress.loss_count += 1

    def run(self) -> str:
        c, p = self.config, self.progress
        self._write_run_files()
        D.barrier(self.dist)
        tracker = _TrackedBatches(self.sampler, p.iteration, self._is_checkpoint_iteration)
        initial_sampler_state = self.sampler.state_dict() if self.resumed_at is None else None
        loader = torch.utils.data.DataLoader(
            self.data.train_dataset, batch_sampler=tracker, collate_fn=TensorCollate(self.data.collate_fn),
            num_workers=c.num_workers, pin_memory=self.device.type == "cuda",
            # Private generator: creating the loader must not touch the global RNG.
            generator=torch.Generator().manual_seed(c.seed),
        )
        batches = iter(loader)
        if self.pending_rng is not None:  # after the loader exists, so nothing consumes it first
            set_rng_states(self.pending_rng)
        bar = _progress_bar(c, p.iteration, self.dist.is_main)
        self._t0 = time.perf_counter()
        stop = False
        try:
            while True:
                i = p.iteration
                if i != self.resumed_at:
                    evaluated = i % c.eval_every == 0 or i >= c.iterations
                    improved = self._evaluate_all(i) if evaluated else False
                    if evaluated and c.early_stop and p.evals_without_improvement >= c.early_stop:
                        stop = True
                        if self.dist.is_main:
                            log.info("early stop at iteration %d: no %s mAP gain in %d evaluations (best %s at %s)",
                                     i, self.selection_split, c.early_stop, _fmt(p.best_metric), p.best_iteration)
                    if evaluated or i % c.checkpoint_every == 0:
                        sampler_state = initial_sampler_state if i == 0 else tracker.take(i)
                        self._save(sampler_state, improved)
                        D.barrier(self.dist)
                if i >= c.iterations or stop:
                    break
                batch = next(batches)
                t = time.perf_counter()
                self._train_step(batch)
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                p.train_seconds_since_eval += time.perf_counter() - t
                p.clips_since_eval += c.batch_size
                p.iteration += 1
                if bar is not None:
                    bar.update(1)
                    if p.iteration % 10 == 0 and p.loss_count:
                        bar.set_postfix(loss=f"{self.loss_sum.item() / p.loss_count:.4f}")
        finally:
            if bar is not None:
                bar.close()
            del batches
        return str(self.run_dir)


def train_step(net, optimizer, scaler, waveform, target, mixup_lambda=None, *, device, precision="fp32",
               accumulation_steps=1, ddp=None) -> torch.Tensor:
    """One optimiser step of the recipe on a batch already on ``device``; returns the (detached) loss.

    ``waveform`` holds the clips read for the step (2B with mixup), ``mixup_lambda``
    their pairwise lambdas; the model mixes inputs, the targets are mixed here.
    The batch is split into ``accumulation_steps`` micro-batches (whole pairs)
    whose gradients add up to the full-batch gradient; under DDP only the last
    one synchronises. The BCE is computed in fp32 outside autocast.
    """
    net.train()
    optimizer.zero_grad(set_to_none=True)
    size = waveform.shape[0] // accumulation_steps
    total = torch.zeros((), device=waveform.device)
    for k in range(accumulation_steps):
        part = slice(k * size, (k + 1) * size)
        lam_k = None if mixup_lambda is None else mixup_lambda[part]
        last = k == accumulation_steps - 1
        sync = ddp.no_sync() if ddp is not None and not last else contextlib.nullcontext()
        with sync:
            with autocast_context(device, precision):
                output = net(waveform[part], lam_k)
            clipwise = output["clipwise_output"].float()
            tgt = target[part] if lam_k is None else _mix_targets(target[part], lam_k)
            loss = F.binary_cross_entropy(clipwise, tgt) / accumulation_steps
            scaler.scale(loss).backward()
        total += loss.detach()
    scaler.step(optimizer)
    scaler.update()
    return total


def _mix_targets(target: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    from panns_core.models.frontend import do_mixup

    return do_mixup(target, lam)


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _progress_bar(config: TrainConfig, start: int, is_main: bool):
    if not (config.progress and is_main):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=config.iterations, initial=start, desc=f"train {config.model}", unit="it", dynamic_ncols=True)


def train(config: TrainConfig, data: Optional[RunData] = None, model_factory: Optional[Callable] = None) -> str:
    """Run (or resume) one training run and return its run folder.

    ``data`` and ``model_factory(config, classes_num)`` replace the on-disk data
    and the model registry (tests, custom corpora).
    """
    return Trainer(config, data=data, model_factory=model_factory).run()


# ---------------------------------------------------------------------------- command line


def _parse_value(text: str, default):
    """Command-line text -> the type of the field's default (JSON for lists/dicts/None)."""
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true/false, got {text!r}")
    if isinstance(default, (list, dict)):
        return json.loads(text)
    if isinstance(default, int) and not isinstance(default, bool):
        return int(text)
    if isinstance(default, float):
        return float(text)
    if default is None:
        if text.lower() in ("none", "null"):
            return None
        try:
            return int(text)
        except ValueError:
            return text
    return text


def config_from_args(argv=None) -> TrainConfig:
    """``--config FILE`` then ``--field value`` overrides (``--run-dir``, ``--eval-splits '["eval"]'`` ...)."""
    defaults = TrainConfig()
    p = argparse.ArgumentParser(prog="python -m panns_core.train",
                                description="Train one PANNs system (see docs/training.md).")
    p.add_argument("--config", help="TrainConfig JSON file")
    p.add_argument("--quiet", action="store_true", help="only warnings")
    for f in fields(TrainConfig):
        p.add_argument("--" + f.name.replace("_", "-"), dest=f.name, metavar=f.name.upper(),
                       help=f"default {getattr(defaults, f.name)!r}")
    args = p.parse_args(argv)
    base = {}
    if args.config:
        base = TrainConfig.from_json(args.config).to_dict()
    for f in fields(TrainConfig):
        text = getattr(args, f.name)
        if text is None:
            continue
        try:
            base[f.name] = _parse_value(text, getattr(defaults, f.name))
        except (ValueError, json.JSONDecodeError) as e:
            p.error(f"--{f.name.replace('_', '-')}: {e}")
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    return TrainConfig.from_dict(base, source=args.config or "command line")


def main(argv=None) -> str:
    config = config_from_args(argv)
    try:
        run_dir = train(config)
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if D.env_dist_info().is_main:
        print(f"run folder: {run_dir}")
    return run_dir


if __name__ == "__main__":  # pragma: no cover
    try:
        main()
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
