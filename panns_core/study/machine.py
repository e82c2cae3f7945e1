"""What a stage needs from the machine: GPUs of its own, free disk, and what a profile will cost.

**GPUs.** Snakemake counts GPUs (a ``gpu`` resource per job, ``--resources gpu=N``) but does
not say *which* ones a job gets. On one box, :func:`gpu_slots` hands a stage ``k`` distinct
GPU ids from the ones the study was given (``--gpus 0,1,2,3``): one lock file per id, held
while the stage runs and released by the OS when the stage's process ends, however it ends.
The stage then runs with ``CUDA_VISIBLE_DEVICES`` set to its ids, so concurrent training runs
(and each torchrun's ``k`` processes) never share a GPU. Under SLURM, the job's own
assignment (SLURM sets ``CUDA_VISIBLE_DEVICES``) is kept.

**Disk.** :func:`stage_disk_need` estimates what a stage writes (checkpoints from the model's
parameter count, packed audio from the clip count), :func:`check_free_space` refuses to start
a stage that would fill the disk.

**Cost.** :func:`gpu_hours` estimates a training run's GPU time from one measured point
(CNN14, batch 32 with mixup: 490 training clips/s in fp32 eager on one NVIDIA H200,
docs/training.md), scaled by each model's multiply-adds; an estimate, and printed as one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import time
from typing import Callable, Iterator, Sequence

GIB = 1024 ** 3
ADAM_AMSGRAD_COPIES = 4
"""``latest.pt`` holds the weights and Adam's three amsgrad buffers: 4 float32 copies of the parameters."""
AUDIOSET_CLIPS = {"eval": 20371, "balanced_train": 22160, "unbalanced_train": 2041789}
"""Rows of the AudioSet segment CSVs (the paper's Table I), for the disk estimate before the CSVs exist."""
REFERENCE_CLIPS_PER_S = 490.0
"""Measured: CNN14 training clips/s, batch 32 + mixup, fp32 eager, one H200 (docs/training.md)."""
REFERENCE_MULT_ADDS = 42.2e9
"""CNN14's multiply-adds per 10-s clip (the paper's Table XII)."""


# ----------------------------------------------------------------------------- GPUs


def parse_gpu_ids(text: str | Sequence | None) -> list[str]:
    """``"0,1,2"`` / ``[0, 1, 2]`` -> ``["0", "1", "2"]``; ``None``/``""`` -> ``[]``."""
    if text is None:
        return []
    items = text.split(",") if isinstance(text, str) else list(text)
    ids = [str(i).strip() for i in items if str(i).strip()]
    if len(set(ids)) != len(ids):
        raise ValueError(f"GPU ids listed twice: {ids}")
    return ids


def detect_gpus() -> list[str]:
    """The CUDA devices this process can see (respects an outer ``CUDA_VISIBLE_DEVICES``)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return parse_gpu_ids(visible)
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    except Exception:  # noqa: BLE001 - no torch, no driver: no GPUs
        return []


@contextlib.contextmanager
def gpu_slots(count: int, gpu_ids: Sequence[str], slot_dir: str, *, log: Callable[[str], None] = print,
              poll_s: float = 1.0) -> Iterator[list[str]]:
    """Hold ``count`` distinct ids of ``gpu_ids`` while the block runs (waits until they are free).

    Each id is a lock file ``<slot_dir>/gpu<id>.lock``; a stage that cannot get all it needs
    releases what it took and retries after a short random pause, so two stages never
    deadlock holding half each.
    """
    import fcntl

    if count <= 0:
        yield []
        return
    if os.environ.get("SLURM_JOB_ID"):
        assigned = parse_gpu_ids(os.environ.get("CUDA_VISIBLE_DEVICES"))  # SLURM's own assignment
        if len(assigned) < count:
            raise RuntimeError(f"this stage needs {count} GPU(s) and SLURM job {os.environ['SLURM_JOB_ID']} was given "
                               f"{len(assigned)} (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')!r}): "
                               f"check the partition has GPUs (the profile's cluster.partition) and that the cluster "
                               f"sets CUDA_VISIBLE_DEVICES for --gpus requests")
        yield assigned
        return
    if count > len(gpu_ids):
        raise RuntimeError(f"this stage needs {count} GPU(s), the study was given {len(gpu_ids)} "
                           f"({','.join(gpu_ids) or 'none'}): pass --gpus with more ids, or lower nproc_per_node")
    os.makedirs(slot_dir, exist_ok=True)
    waited = False
    while True:
        held: list[tuple[str, int]] = []
        for gid in gpu_ids:
            fd = os.open(os.path.join(slot_dir, f"gpu{gid}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            held.append((gid, fd))
            if len(held) == count:
                break
        if len(held) == count:
            break
        for _, fd in held:
            os.close(fd)
        if not waited:
            log(f"waiting for {count} free GPU(s) of {','.join(gpu_ids)}")
            waited = True
        time.sleep(poll_s * (0.5 + random.random()))
    try:
        yield [gid for gid, _ in held]
    finally:
        for _, fd in held:
            os.close(fd)


# ----------------------------------------------------------------------------- disk


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"


def model_parameters(model_name: str, overrides: dict | None = None) -> int:
    """Parameter count of a registered model: the paper's Table XII count when it has one and no
    front-end overrides apply, else counted on a CPU build (an estimate's input; classes_num moves it <1 %)."""
    from panns_core.models import create_model, model_info

    paper = model_info(model_name).paper or {}
    if paper.get("params") and not overrides:
        return int(paper["params"])
    model = create_model(model_name, **(overrides or {}))
    return sum(p.numel() for p in model.parameters())


def _train_need(config: dict, run_dir: str) -> tuple[int, str]:
    from panns_core.train import TrainConfig

    cfg = TrainConfig.from_dict({**config, "data_root": "-", "run_dir": run_dir})
    spec = cfg.model_spec()
    kwargs = {k: v for k, v in spec["kwargs"].items() if k != "classes_num"}
    weights = 4 * model_parameters(spec["name"], kwargs)
    latest = ADAM_AMSGRAD_COPIES * weights
    snapshots = 0
    if getattr(cfg, "keep_snapshots", False) and cfg.checkpoint_every > 0:
        snapshots = (cfg.iterations // cfg.checkpoint_every) * latest
    # best.pt + latest.pt, and room for one more latest.pt while it is replaced atomically
    need = weights + 2 * latest + snapshots
    what = (f"checkpoints of {spec['name']} ({weights // 4 / 1e6:.1f}M parameters): best.pt "
            f"{human_bytes(weights)}, latest.pt {human_bytes(latest)} (+ a copy while it is rewritten)"
            + (f", iteration snapshots {human_bytes(snapshots)}" if snapshots else ""))
    return need, what


def _audio_need(clips: int, clip_seconds: float, sample_rate: int) -> int:
    return int(clips * clip_seconds * sample_rate * 2)  # int16 mono


def stage_disk_need(stage, data_root: str) -> tuple[int, str, str] | None:
    """``(bytes, folder, what)`` a stage will write, or None when it writes little.

    ``stage`` is a :class:`panns_core.study.profiles.Stage`; ``folder`` is where the
    bytes land (checked for free space).
    """
    params = stage.parameters
    if stage.role == "train":
        run_dir = os.path.join(params["run_root"], "train", params["run_name"])
        need, what = _train_need(params["config"], run_dir)
        return need, run_dir, what
    if stage.role in ("acquire", "pack") and params.get("data_source") == "audioset" and not params.get("packed"):
        section = params.get("acquire" if stage.role == "acquire" else "pack") or {}
        splits = section.get("splits") or list(AUDIOSET_CLIPS)
        clips = sum(AUDIOSET_CLIPS.get(s, 0) for s in splits)
        rate = int(section.get("sample_rate", 32000))
        seconds = float(section.get("clip_seconds", 10.0))
        need = _audio_need(clips, seconds, rate)
        folder = os.path.join(data_root, "audios" if stage.role == "acquire" else "hdf5s")
        return need, folder, f"{clips:,} clips of {seconds:g} s at {rate} Hz, 16-bit"
    return None


def existing_bytes(folder: str) -> int:
    """Bytes already in ``folder`` (a resumed stage rewrites them in place)."""
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(dirpath, name))
    return total


def free_bytes(folder: str) -> int:
    """Free bytes on the file system that holds ``folder`` (its nearest existing parent)."""
    probe = os.path.abspath(folder)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    return shutil.disk_usage(probe).free


class NotEnoughDisk(OSError):
    def __init__(self, message: str):
        super().__init__(errno.ENOSPC, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def check_free_space(stage_name: str, need: int, folder: str, what: str, *, margin: float = 0.05,
                     shown_as: str | None = None) -> None:
    """Raise :class:`NotEnoughDisk` when ``folder``'s file system lacks ``need`` bytes (plus ``margin``);
    ``shown_as`` is how the message names the folder (default: ``folder``)."""
    pending = max(0, need - existing_bytes(folder)) if os.path.isdir(folder) else need
    free = free_bytes(folder)
    if pending * (1 + margin) > free:
        raise NotEnoughDisk(
            f"stage {stage_name} needs about {human_bytes(pending)} in {shown_as or folder} ({what}), and only "
            f"{human_bytes(free)} is free there: free some space, point the profile's folders at a larger disk, "
            f"or set `disk_check: false` in the profile to start anyway")


# ----------------------------------------------------------------------------- GPU time


def gpu_hours(config: dict) -> float | None:
    """Estimated GPU hours of one training run on one H200-class GPU (None for CPU runs)."""
    from panns_core.models import model_info

    if not str(config.get("device", "cuda")).startswith("cuda"):
        return None
    name = config.get("model", "Cnn14")
    try:
        mult_adds = (model_info(name).paper or {}).get("mult_adds") or REFERENCE_MULT_ADDS
    except KeyError:
        mult_adds = REFERENCE_MULT_ADDS
    clips_per_s = REFERENCE_CLIPS_PER_S * REFERENCE_MULT_ADDS / mult_adds
    clips = int(config.get("iterations", 600000)) * int(config.get("batch_size", 32))
    return clips / clips_per_s / 3600.0
