"""Training: the config, the production loop and the helpers it calls.

The recipe of one step (balanced-sampler batch -> mixup lambdas ->
``model(x, mixup_lambda)`` -> mixed targets -> BCE -> ``loss.backward()`` ->
Adam(amsgrad) step, evaluation every N steps) is written out for students in
notebook 03 (``notebooks/03_train_system.py``, about 30 lines, one fp32
process). :func:`run_loop` is the production loop the pipeline, :func:`train`
and the command line run: the same recipe plus :class:`TrainConfig`, the data
it reads (:class:`RunData`), process/device setup (:func:`start_run`), exact
resume (:func:`resume`, RNG states, :class:`TrackedBatches`), statistics lines
(:func:`evaluate_and_log`), checkpoints (:func:`save_checkpoints`), DDP,
gradient accumulation and autocast. ``tests/test_recipe_loop.py`` proves the
two loops give the same statistics for the same fp32 single-process config.

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
from panns_core.evaluate import evaluate
from panns_core.fsutil import exclusive_lock, save_torch
from panns_core.jsonl import append_jsonl, read_jsonl, write_jsonl
from panns_core.precision import PRECISIONS
from panns_core.runtime import MODEL_OVERRIDES, TensorCollate, ids_sha256
from panns_core.runtime import model_spec as _model_spec
from panns_core.mixup import Mixup
from panns_core.models.frontend import compile_model

log = logging.getLogger("panns_core.train")

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
    keep_snapshots: bool = False  # True: also keep iter_<N>.pt every checkpoint_every (about 1.3 GB each for Cnn14)
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
    log_every_s: float = 0.0  # > 0 and progress off: one progress line (iteration, loss, clips/s, ETA) this often

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
        return _model_spec(self.to_dict())

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
        raise FileNotFoundError(f"training set {name!r}: index file {path} not found "
                                "(notebook 02_pack_and_index, or the pipeline's data stages, make it)")
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
            raise FileNotFoundError(f"evaluation split {split!r}: index file {path} not found "
                                    "(notebook 02_pack_and_index makes it)")
    return out


def build_run_data(config: TrainConfig) -> RunData:
    """Index tables and HDF5 readers for a config (the official on-disk layout)."""
    from panns_core.data.index import check_waveform_files, read_index
    from panns_core.data.reader import AudioSetDataset, collate_fn
    from panns_core.evaluate import load_table

    train_path = resolve_train_index(config)
    eval_paths = resolve_eval_indexes(config)
    sample_rate = _model_audio_config(config).sample_rate
    dataset = AudioSetDataset(sample_rate=sample_rate, resample_mode=config.resample_mode)
    train_table = read_index(train_path)
    eval_tables = {s: load_table(p, config.max_eval_clips) for s, p in eval_paths.items()}
    # Every waveform file must exist before iteration 0, not be found missing hours in.
    check_waveform_files({train_path: train_table, **{eval_paths[s]: t for s, t in eval_tables.items()}})
    return RunData(
        train_table=train_table,
        train_dataset=dataset,
        eval_tables=eval_tables,
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


class TrackedBatches:
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
    return read_jsonl(Path(run_dir) / "statistics.jsonl")


def _truncate_statistics(path: Path, iteration: int) -> None:
    """Drop lines written after the checkpoint we resume from (they will be rewritten)."""
    if not path.exists():
        return
    write_jsonl(path, [r for r in read_jsonl(path) if r["iteration"] <= iteration])


# ---------------------------------------------------------------------------- run context


@dataclass
class RunContext:
    """What the loop's helpers share: config, process, data, files, counters. Holds no model.

    Built by :func:`start_run` at the start of :func:`run_loop`.
    """

    config: TrainConfig
    device: torch.device
    dist: D.DistInfo
    data: RunData
    selection_split: Optional[str]
    eval_sha: dict
    progress: Progress = field(default_factory=Progress)
    resumed_at: Optional[int] = None
    loss_sum: Optional[torch.Tensor] = None  # float64 on the device: no host sync per step
    # step losses already reset by evaluations (sum, count): progress lines between evaluations stay exact
    loss_flushed: tuple = (0.0, 0)
    clock_start: float = field(default_factory=time.perf_counter)

    @property
    def run_dir(self) -> Path:
        return Path(self.config.run_dir)

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def statistics_path(self) -> Path:
        return self.run_dir / "statistics.jsonl"

    @property
    def clips_per_rank(self) -> int:
        """This process's share of the clips read per step (the batch, doubled with mixup)."""
        return self.config.clips_per_step // self.dist.world_size

    def wall_time(self) -> float:
        return self.progress.wall_time_s + (time.perf_counter() - self.clock_start)

    def is_checkpoint_iteration(self, i: int) -> bool:
        c = self.config
        return i % c.eval_every == 0 or i % c.checkpoint_every == 0 or i >= c.iterations


def start_run(config: TrainConfig, data: Optional[RunData] = None) -> RunContext:
    """Join the torchrun process group (if any), pick this rank's device, read the indexes.

    Validates the config for the number of processes, and chooses the split on
    which ``best.pt`` is selected: validation when present, else eval.
    """
    config.validate()
    info = D.env_dist_info()
    device = D.device_for_rank(config.device, info)
    dist = D.init_distributed(device)
    config.validate(world_size=dist.world_size)
    if config.precision == "fp16" and device.type != "cuda":
        raise ValueError("precision 'fp16' needs a CUDA device; use 'bf16' on CPU")
    data = data if data is not None else build_run_data(config)
    for split, table in data.eval_tables.items():
        if table.targets.shape[1] != data.classes_num:
            raise ValueError(f"split {split!r} has {table.targets.shape[1]} classes, "
                             f"the training index has {data.classes_num}")
    selection = "validation" if "validation" in data.eval_tables else "eval"
    if selection not in data.eval_tables:
        selection = None
    eval_sha = {s: ids_sha256(t.audio_names) for s, t in data.eval_tables.items()}
    if dist.is_main:
        hold_run_folder(config.run_dir)
    run = RunContext(config, device, dist, data, selection, eval_sha)
    run.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    return run


_held_run_folders: dict = {}  # absolute run folder -> ExitStack holding its lock


def hold_run_folder(run_dir: str) -> None:
    """Lock ``<run_dir>/.lock`` for this process: a second trainer of the same run folder stops with a
    sentence naming this one (host, pid, since when) instead of writing ``latest.pt`` beside it."""
    key = os.path.abspath(run_dir)
    if key in _held_run_folders:  # this process already trains it (a notebook cell run again)
        return
    stack = contextlib.ExitStack()
    stack.enter_context(exclusive_lock(os.path.join(key, ".lock"), f"run folder {run_dir}"))
    _held_run_folders[key] = stack


def release_run_folders(keep=()) -> None:
    """Release the run-folder locks this process holds (except ``keep``); a process's exit releases them too."""
    for key in [k for k in _held_run_folders if k not in keep]:
        _held_run_folders.pop(key).close()


def resume(run: RunContext, *, model, optimizer, scaler, sampler, mixup=None) -> Optional[dict]:
    """Load ``latest.pt`` (or ``config.resume``) into the objects; returns the RNG state to restore.

    The RNG state must be set only after the data loader exists (creating it must
    not consume the restored stream), so the loop restores it itself. ``None``
    when the run starts fresh.
    """
    path = _resume_path(run.config, run.checkpoint_dir)
    if path is None:
        return None
    state = load_training_state(path)
    _check_same_run(state["config"], run.config, path)
    finished = state["iteration"] >= run.config.iterations
    if len(state["rng"]) != run.dist.world_size and not finished:
        raise ValueError(f"{path}: saved by {len(state['rng'])} process(es), this run has "
                         f"{run.dist.world_size}; resume with the same number of processes")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    sampler.load_state_dict(state["sampler"])
    if mixup is not None:
        mixup.load_state_dict(state["mixup"])
    run.progress = Progress(**state["progress"])
    mine = state["rng"][min(run.dist.rank, len(state["rng"]) - 1)]
    run.progress.loss_sum = float(mine["loss_sum"])
    run.progress.loss_count = int(mine["loss_count"])
    run.loss_sum.fill_(run.progress.loss_sum)
    run.resumed_at = run.progress.iteration
    if run.dist.is_main:
        log.info("resuming %s from %s at iteration %d", run.run_dir, path, run.resumed_at)
    return mine["rng"]


def distribute(model: torch.nn.Module, run: RunContext):
    """``(net, ddp)``: the module the loop calls (DDP-wrapped under torchrun, compiled if asked)
    and the DDP wrapper itself (``None`` for one process) for :func:`gradient_sync`."""
    net = model
    if run.dist.enabled:
        ids = [run.device.index] if run.device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    ddp = net if run.dist.enabled else None
    if run.config.compile:
        net = compile_model(net)
    return net, ddp


def gradient_sync(ddp, last_micro_batch: bool):
    """Under DDP only the last micro-batch of an accumulated step all-reduces gradients."""
    if ddp is None or last_micro_batch:
        return contextlib.nullcontext()
    return ddp.no_sync()


def train_loader(run: RunContext, batch_sampler) -> torch.utils.data.DataLoader:
    """Batches of the training set in the sampler's order (tensors, pinned on CUDA)."""
    c = run.config
    return torch.utils.data.DataLoader(
        run.data.train_dataset, batch_sampler=batch_sampler, collate_fn=TensorCollate(run.data.collate_fn),
        num_workers=c.num_workers, pin_memory=run.device.type == "cuda",
        # Private generator: creating the loader must not touch the global RNG.
        generator=torch.Generator().manual_seed(c.seed),
    )


def mixup_lambdas(mixup, run: RunContext) -> Optional[torch.Tensor]:
    """This rank's slice of the step's lambdas (one per clip read; pairs share one), or None."""
    if mixup is None:
        return None
    start = run.dist.rank * run.clips_per_rank
    lam = mixup.get_lambda(run.config.clips_per_step)[start:start + run.clips_per_rank]
    return torch.from_numpy(lam).to(run.device, non_blocking=True)


# ---------------------------------------------------------------------------- run files


def write_run_files(run: RunContext, model: torch.nn.Module) -> None:
    """config.json (fields + run facts) and a statistics file consistent with the checkpoint."""
    if not run.dist.is_main:
        return
    run.run_dir.mkdir(parents=True, exist_ok=True)
    record = run.config.to_dict()
    record["eval_set_sha256"] = run.eval_sha.get("eval")
    record["run_info"] = {
        "classes_num": run.data.classes_num,
        "model_class": type(model).__name__,
        "audio_config": dataclasses.asdict(model.audio_config) if hasattr(model, "audio_config") else None,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "world_size": run.dist.world_size,
        "device": str(run.device),
        "clips_per_step": run.config.clips_per_step,
        "train_index": run.data.train_index_path,
        "train_clips": len(run.data.train_table.audio_names),
        "eval_indexes": run.data.eval_index_paths,
        "eval_clips": {s: len(t.audio_names) for s, t in run.data.eval_tables.items()},
        "eval_set_sha256": run.eval_sha,
        "selection_split": run.selection_split,
        "torch_version": torch.__version__,
    }
    with open(run.run_dir / "config.json", "w") as f:
        json.dump(record, f, indent=1)
    if run.resumed_at is None:
        run.statistics_path.write_text("")
    else:
        _truncate_statistics(run.statistics_path, run.resumed_at)


def evaluate_and_log(run: RunContext, model: torch.nn.Module, iteration: int) -> bool:
    """Score every eval split, append one statistics line per split; True when the selection mAP improved.

    Also resets the train-loss and throughput counters of the period just ended.
    """
    c, p = run.config, run.progress
    p.loss_sum = float(run.loss_sum.item())
    mean_loss = p.loss_sum / p.loss_count if p.loss_count else None
    train_loss = D.mean_over_ranks(mean_loss, run.dist) if mean_loss is not None else None
    cps = p.clips_since_eval / p.train_seconds_since_eval if p.train_seconds_since_eval > 0 else None
    improved = False
    for split, table in run.data.eval_tables.items():
        started = time.perf_counter()
        result = evaluate(model, table, dataset=run.data.eval_dataset,
                          batch_size=c.eval_batch_size or c.batch_size, device=run.device,
                          precision=c.precision, num_workers=c.num_workers,
                          collate_fn=run.data.collate_fn, rank=run.dist.rank,
                          world_size=run.dist.world_size)
        line = {
            "iteration": iteration, "split": split,
            "mAP": result["mAP"], "mAUC": result["mAUC"], "d_prime": result["d_prime"],
            "d_prime_mean_per_class": result["d_prime_mean_per_class"],
            "AP": result["AP"], "AUC": result["AUC"],
            "classes_evaluated": result["classes_evaluated"],
            "classes_without_positives": result["classes_without_positives"],
            "num_clips": result["num_clips"],
            "train_loss": train_loss,
            "wall_time_s": run.wall_time(),
            "clips_per_second": cps,
            "eval_seconds": round(time.perf_counter() - started, 3),  # what this evaluation cost
            "eval_set_sha256": result["eval_set_sha256"],
            "resample_mode": c.resample_mode,
            "selection": split == run.selection_split,
        }
        if run.dist.is_main:
            append_jsonl(run.statistics_path, line)
            log.info("iteration %d  %-14s mAP %s  AUC %s  d' %s  loss %s  (%d clips scored in %.1f s)", iteration,
                     split, _fmt(line["mAP"]), _fmt(line["mAUC"]), _fmt(line["d_prime"]), _fmt(train_loss),
                     result["num_clips"], line["eval_seconds"])
        if split == run.selection_split and result["mAP"] is not None:
            if p.best_metric is None or result["mAP"] > p.best_metric:
                p.best_metric, p.best_iteration, improved = result["mAP"], iteration, True
    if run.selection_split is not None:
        p.evals_without_improvement = 0 if improved else p.evals_without_improvement + 1
    run.loss_flushed = (run.loss_flushed[0] + p.loss_sum, run.loss_flushed[1] + p.loss_count)
    run.loss_sum.zero_()
    p.loss_count = p.clips_since_eval = 0
    p.train_seconds_since_eval = 0.0
    return improved


def should_stop_early(run: RunContext, iteration: int) -> bool:
    """True when ``early_stop`` evaluations in a row brought no gain on the selection split."""
    c, p = run.config, run.progress
    if not c.early_stop or p.evals_without_improvement < c.early_stop:
        return False
    if run.dist.is_main:
        log.info("early stop at iteration %d: no %s mAP gain in %d evaluations (best %s at %s)",
                 iteration, run.selection_split, c.early_stop, _fmt(p.best_metric), p.best_iteration)
    return True


def save_checkpoints(run: RunContext, *, model, optimizer, scaler, sampler_state: dict, mixup=None,
                     improved: bool = False) -> None:
    """``latest.pt`` (everything an exact resume needs), ``iter_N.pt`` every ``checkpoint_every`` (with ``keep_snapshots``),
    ``best.pt`` (weights) when the selection mAP improved. Collective: every rank calls it."""
    p = run.progress
    p.loss_sum = float(run.loss_sum.item())
    mine = {"rng": rng_states(run.device), "loss_sum": p.loss_sum, "loss_count": p.loss_count}
    per_rank = D.all_gather_objects(mine, run.dist)
    progress = dataclasses.asdict(p)
    progress["loss_sum"], progress["loss_count"] = 0.0, 0  # per rank, stored under "rng"
    progress["wall_time_s"] = run.wall_time()
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "sampler": sampler_state,
        "mixup": mixup.state_dict() if mixup is not None else None,
        "progress": progress,
        "rng": per_rank,
        "iteration": p.iteration,
        "config": run.config.to_dict(),
        "selection_split": run.selection_split,
    }
    if run.dist.is_main:
        run.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        i = p.iteration
        save_torch(state, run.checkpoint_dir / "latest.pt")
        if run.config.keep_snapshots and i > 0 and i % run.config.checkpoint_every == 0:
            save_torch(state, run.checkpoint_dir / f"iter_{i}.pt")
        if improved:
            best = {"model": state["model"], "iteration": i, "config": state["config"],
                    "selection": {"split": run.selection_split, "mAP": p.best_metric}}
            save_torch(best, run.checkpoint_dir / "best.pt")
    D.barrier(run.dist)


def learning_rate_at(config: TrainConfig, iteration: int) -> float:
    """The step's learning rate: constant (the paper), after a linear warm-up when ``warmup_iterations`` > 0."""
    if not config.warmup_iterations:
        return config.learning_rate
    return config.learning_rate * min(1.0, (iteration + 1) / config.warmup_iterations)


def set_time_stripe_width(model: torch.nn.Module, width: int) -> None:
    """SpecAugment time stripes of at most ``width`` frames; stripe counts and frequency stripes unchanged."""
    from panns_core.models.frontend import set_spec_augment

    augmenter = getattr(model, "spec_augmenter", None)
    if augmenter is None:
        return
    set_spec_augment(model, time_drop_width=width, time_stripes_num=augmenter.time_dropper.stripes_num,
                     freq_drop_width=augmenter.freq_dropper.drop_width,
                     freq_stripes_num=augmenter.freq_dropper.stripes_num)


def count_step(run: RunContext, step_loss: torch.Tensor, seconds: float) -> None:
    """Add one step's loss, time and clips to the counters reported at the next evaluation."""
    p = run.progress
    run.loss_sum += step_loss.double()
    p.loss_count += 1
    p.train_seconds_since_eval += seconds
    p.clips_since_eval += run.config.batch_size
    p.iteration += 1


PROGRESS_PREFIX = "[progress] "
"""Start of the periodic progress lines (``log_every_s``); the study's job runner echoes them to the console."""


class ProgressLines:
    """A progress "bar" for logs: at most one line every ``every_s`` seconds, with the iteration, the mean
    training loss since the last line, training clips/s and the time left at that rate (same ``update``/``close``
    as tqdm, so the loop does not care which it has)."""

    def __init__(self, run: RunContext, every_s: float, clock=time.monotonic):
        self.run, self.every_s, self.clock = run, every_s, clock
        self.start_iteration = run.progress.iteration
        self.last_time = self.start_time = clock()
        self.last_iteration = run.progress.iteration
        self.last_loss = self.loss_so_far()

    def loss_so_far(self) -> tuple[float, int]:
        """(sum, count) of every step loss this process has seen, across evaluation resets."""
        flushed_sum, flushed_count = self.run.loss_flushed
        return flushed_sum + float(self.run.loss_sum.item()), flushed_count + self.run.progress.loss_count

    def update(self, n: int = 1) -> None:
        now = self.clock()
        if now - self.last_time >= self.every_s:
            self.emit(now)

    def emit(self, now: float) -> None:
        c, p = self.run.config, self.run.progress
        loss_sum, loss_count = self.loss_so_far()
        steps = p.iteration - self.last_iteration
        d_sum, d_count = loss_sum - self.last_loss[0], loss_count - self.last_loss[1]
        loss = f"{d_sum / d_count:.4f}" if d_count > 0 else "n/a"
        rate = steps / max(now - self.last_time, 1e-9)
        left = (c.iterations - p.iteration) / rate if rate > 0 else float("inf")
        print(f"{PROGRESS_PREFIX}iteration {p.iteration}/{c.iterations} ({100 * p.iteration / c.iterations:.1f} %), "
              f"loss {loss}, {rate * c.batch_size:.1f} clips/s, ETA {_duration(left)}", flush=True)
        self.last_time, self.last_iteration, self.last_loss = now, p.iteration, (loss_sum, loss_count)

    def close(self) -> None:
        if self.run.progress.iteration != self.last_iteration:
            self.emit(self.clock())


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "unknown"
    minutes = int(round(seconds / 60))
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else (
        f"{minutes} min" if minutes else f"{int(round(seconds))} s")


def progress_bar(run: RunContext):
    """A tqdm bar on the main process when ``config.progress``, else progress lines every ``log_every_s``
    (for logs: the study's stage logs), else None."""
    c = run.config
    if not run.dist.is_main:
        return None
    if not c.progress:
        return ProgressLines(run, c.log_every_s) if c.log_every_s > 0 else None
    from tqdm.auto import tqdm

    return tqdm(total=c.iterations, initial=run.progress.iteration, desc=f"train {c.model}", unit="it",
                dynamic_ncols=True)


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"


# ---------------------------------------------------------------------------- the production loop


def run_loop(config: TrainConfig, data: Optional[RunData] = None,
             model_factory: Optional[Callable] = None) -> dict:
    """The production training loop on ``config``; returns its objects (``run``, ``model``, ``optimizer`` ...).

    The recipe of every step is the one notebook 03 writes out in a few lines
    (balanced-sampler batch -> mixup lambdas -> ``model(x, mixup_lambda)`` ->
    mixed targets -> BCE -> ``loss.backward()`` -> Adam(amsgrad) step, evaluation
    every ``eval_every`` iterations); this loop adds what a real run needs around
    it: exact resume, checkpoints and statistics lines, DDP under torchrun,
    gradient accumulation, autocast and fp16 loss scaling, an optional warm-up,
    early stop. ``tests/test_recipe_loop.py`` proves that both loops give the same
    statistics for one fp32 process. ``data`` and ``model_factory(config,
    classes_num)`` replace the on-disk data and the model registry (tests,
    custom corpora).
    """
    held_before = set(_held_run_folders)
    try:
        return _production_loop(config, data, model_factory)
    finally:
        release_run_folders(keep=held_before)  # the run folder's lock: another process may train it next


def _production_loop(config: TrainConfig, data: Optional[RunData], model_factory: Optional[Callable]) -> dict:
    from panns_core.models.frontend import do_mixup
    from panns_core.precision import autocast
    from panns_core.samplers import create_train_sampler

    run = start_run(config, data)
    seed_everything(config.seed + run.dist.rank)
    make_model = model_factory or create_model_from_config
    model = make_model(config, run.data.classes_num).to(run.device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if config.spec_augment_time_width is not None:  # short clips: 64-frame stripes would hide most of a 1-s clip
        set_time_stripe_width(model, config.spec_augment_time_width)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, betas=(0.9, 0.999), eps=1e-8,
                                 weight_decay=0.0, amsgrad=True)
    scaler = torch.amp.GradScaler(run.device.type, enabled=config.precision == "fp16")  # loss scaling for fp16 only
    sampler = create_train_sampler(config.balanced, run.data.train_table, run.clips_per_rank,
                                   random_seed=config.seed, rank=run.dist.rank, world_size=run.dist.world_size,
                                   black_list_csv=config.black_list_csv)
    mixup = Mixup(config.mixup_alpha, random_seed=config.seed) if config.mixup else None
    saved_rng = resume(run, model=model, optimizer=optimizer, scaler=scaler, sampler=sampler, mixup=mixup)
    net, ddp = distribute(model, run)  # DDP wrapper under torchrun, torch.compile when asked
    if run.dist.is_main:
        log.info("%s: %s parameters on %s, %d process(es); %s", config.model,
                 f"{sum(p.numel() for p in model.parameters()):,}", run.device, run.dist.world_size,
                 f"resumed at {run.resumed_at}" if run.resumed_at is not None else "fresh start")

    write_run_files(run, model)
    D.barrier(run.dist)
    # Loader workers read ahead: TrackedBatches remembers the sampler state right after each batch
    # a checkpoint needs.
    batches_seen = TrackedBatches(sampler, run.progress.iteration, run.is_checkpoint_iteration)
    initial_sampler_state = sampler.state_dict() if run.resumed_at is None else None
    batches = iter(train_loader(run, batches_seen))
    if saved_rng is not None:  # after the loader exists, so that nothing consumes the restored stream first
        set_rng_states(saved_rng)
    bar = progress_bar(run)
    run.clock_start = time.perf_counter()
    steps = config.accumulation_steps
    try:
        while True:
            i = run.progress.iteration
            stop = False
            if i != run.resumed_at:
                evaluated = i % config.eval_every == 0 or i >= config.iterations
                improved = evaluate_and_log(run, model, i) if evaluated else False
                stop = evaluated and should_stop_early(run, i)
                if evaluated or i % config.checkpoint_every == 0:
                    sampler_state = initial_sampler_state if i == 0 else batches_seen.take(i)
                    save_checkpoints(run, model=model, optimizer=optimizer, scaler=scaler,
                                     sampler_state=sampler_state, mixup=mixup, improved=improved)
            if i >= config.iterations or stop:
                break

            # one step of the recipe
            batch = next(batches)  # this rank's clips_per_rank clips, drawn by the balanced sampler
            started = time.perf_counter()
            waveform = batch["waveform"].to(run.device, non_blocking=True)
            target = batch["target"].to(run.device, non_blocking=True)
            lam = mixup_lambdas(mixup, run)  # one lambda per clip; clips 2k and 2k+1 are mixed together
            for group in optimizer.param_groups:  # linear warm-up when asked; a function of i only, so resume is exact
                group["lr"] = learning_rate_at(config, i)
            net.train()
            optimizer.zero_grad(set_to_none=True)
            step_loss = torch.zeros((), device=run.device)
            micro = waveform.shape[0] // steps  # gradient accumulation: micro-batches of whole pairs
            for k in range(steps):
                part = slice(k * micro, (k + 1) * micro)
                lam_k = None if lam is None else lam[part]
                with gradient_sync(ddp, last_micro_batch=k == steps - 1):
                    with autocast(run.device, config.precision):
                        output = net(waveform[part], lam_k)
                    clipwise = output["clipwise_output"].float()  # BCE in fp32, outside autocast
                    target_k = target[part] if lam_k is None else do_mixup(target[part], lam_k)
                    loss = F.binary_cross_entropy(clipwise, target_k) / steps
                    scaler.scale(loss).backward()
                step_loss += loss.detach()
            scaler.step(optimizer)  # Adam(amsgrad); a plain optimizer.step() unless fp16 loss scaling is on
            scaler.update()
            if run.device.type == "cuda":
                torch.cuda.synchronize(run.device)
            count_step(run, step_loss, time.perf_counter() - started)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        del batches  # stops loader workers
    return {"run": run, "model": model, "optimizer": optimizer, "scaler": scaler, "sampler": sampler,
            "mixup": mixup}


def train(config: TrainConfig, data: Optional[RunData] = None, model_factory: Optional[Callable] = None) -> str:
    """Run (or resume) one training run with the production loop and return its run folder."""
    return str(run_loop(config, data, model_factory)["run"].run_dir)


def launch_processes(config: TrainConfig, nproc_per_node: int) -> None:
    """Run this config under ``torchrun`` on ``nproc_per_node`` processes (each runs :func:`run_loop`).

    The config goes to ``<run_dir>/launch_config.json``; the command is an
    argument list (no shell). Raises when torchrun fails.
    """
    import subprocess

    os.makedirs(config.run_dir, exist_ok=True)
    path = os.path.join(config.run_dir, "launch_config.json")
    config.to_json(path)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={int(nproc_per_node)}",
           "-m", "panns_core.train", "--config", path]
    completed = subprocess.run(cmd, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with status {completed.returncode} (run folder {config.run_dir})")


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
        kind, example = ("list", '\'["eval", "validation"]\'') if isinstance(default, list) else ("object", "'{}'")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, type(default)):
            raise ValueError(f"expects a JSON {kind}, e.g. {example}; got {text!r}")
        return value
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
    # Under ``python -m`` this file is ``__main__``, a second copy of the module: run the imported
    # module's main so that every class (TrainConfig ...) is the one the rest of the package sees.
    from panns_core import train as _train_module

    try:
        _train_module.main()
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
