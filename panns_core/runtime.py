"""Runtime helpers shared by training, evaluation and the command lines.

Kept apart so that :mod:`panns_core.train` and :mod:`panns_core.evaluate` both
import from here and never from each other (dependencies point one way).
"""

from __future__ import annotations

import contextlib
import hashlib

import numpy as np
import torch
from torch import nn

MODEL_OVERRIDES = ("sample_rate", "window_size", "hop_size", "mel_bins", "fmin", "fmax")
"""Front-end constructor keywords a training config may override."""


def resolve_device(spec: str) -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1`` ...; a missing GPU or a name torch
    does not know (``tpu9``) is a ``ValueError`` naming it."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError):
        raise ValueError(f"{spec!r} is not a torch device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} requested but CUDA is not available")
    return device


def ids_sha256(audio_names) -> str:
    """sha256 of the newline-joined sorted clip names: identifies *which* clips were scored.

    Same definition as :func:`panns_core.data.pack.eval_set_sha256` (which reads
    an index file); here it applies to the clips actually scored, straight from the names.
    """
    text = "\n".join(sorted(str(n) for n in audio_names))
    return hashlib.sha256(text.encode()).hexdigest()


class TensorCollate:
    """Wrap a numpy ``collate_fn`` so arrays become tensors: DataLoader can then pin them
    (``pin_memory``), which makes the later ``.to(device, non_blocking=True)`` asynchronous."""

    def __init__(self, collate_fn):
        self.collate_fn = collate_fn

    def __call__(self, items):
        batch = self.collate_fn(items)
        return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) and v.dtype.kind in "fiub" else v
                for k, v in batch.items()}


def model_spec(fields: dict) -> dict:
    """``{"name", "kwargs"}`` for :func:`panns_core.models.create_model` from training-config fields.

    The front-end overrides that are set, then ``model_kwargs``; ``fields`` is a
    ``TrainConfig`` as a dict (also the ``config`` stored in our checkpoints).
    """
    kwargs = {k: fields[k] for k in MODEL_OVERRIDES if fields.get(k) is not None}
    kwargs.update(fields.get("model_kwargs") or {})
    return {"name": fields["model"], "kwargs": kwargs}


def saved_model_spec(state) -> dict:
    """Model name and constructor keywords stored in one of our training checkpoints, or ``{}``.

    Released checkpoints and ``save_checkpoint`` files carry no training config.
    """
    config = state.get("config") if isinstance(state, dict) else None
    if not (isinstance(config, dict) and "model" in config and "batch_size" in config):
        return {}
    return model_spec(config)


@contextlib.contextmanager
def collecting_batchnorm_statistics(model: nn.Module, *, whole_model_in_train_mode: bool = False):
    """Inside the block, every BatchNorm of ``model`` starts afresh and averages what runs through it.

    The running statistics are reset and collected as a cumulative average
    (``momentum=None``) over all batches the caller runs through ``model``. With
    ``whole_model_in_train_mode`` the whole model is in training mode (dropout and
    augmentation on: how random weights are calibrated for benchmarks); otherwise the
    model is in eval mode with only its BatchNorm layers collecting (the statistics
    of the model as it will be evaluated). Afterwards the momenta and every module's
    mode are restored. Yields the number of BatchNorm layers.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    modes = {m: m.training for m in model.modules()}
    momenta = [m.momentum for m in norms]
    model.train(whole_model_in_train_mode)
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:
        with torch.no_grad():
            yield len(norms)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        for m, mode in modes.items():
            m.training = mode
