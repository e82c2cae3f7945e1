"""Reading checkpoint files, and what may go into one; knows nothing of the model registry.

The layer under :mod:`panns_core.checkpoints` (which adds downloads, the
registry-aware diagnosis and ``save_checkpoint``): model code that only needs
a file's weights (``Transfer_Cnn14.load_from_pretrain``) imports this module,
so ``models`` never imports ``checkpoints`` and the import graph has no cycle.

Every file is read with ``torch.load(..., weights_only=True)``; see
:mod:`panns_core.checkpoints` for the accepted formats.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

OUR_FORMAT = "panns_core.checkpoint/1"
"""Value of the ``'format'`` key in files written by :func:`panns_core.checkpoints.save_checkpoint`."""


class CheckpointError(ValueError):
    """A checkpoint cannot be read, or its weights do not fit the model."""


def _numpy_allow_list() -> list:
    """numpy globals needed to rebuild plain arrays and scalars, under both module names.

    The official ``'sampler'`` entry holds index arrays. Files written with
    numpy 1.x name ``numpy.core.multiarray``, numpy 2 names ``numpy._core``;
    array and dtype reconstructors cannot run arbitrary code, so they are the
    only globals admitted beyond torch's own weights-only set.
    """
    import importlib

    multiarray = importlib.import_module("numpy._core.multiarray" if hasattr(np, "_core")
                                         else "numpy.core.multiarray")
    allowed: list = [np.ndarray, np.dtype]
    for fn in ("_reconstruct", "scalar"):
        obj = getattr(multiarray, fn)
        allowed += [(obj, f"numpy.core.multiarray.{fn}"), (obj, f"numpy._core.multiarray.{fn}")]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        for name in dir(dtypes):
            if name.endswith("DType") and name != "ObjectDType":
                allowed.append((getattr(dtypes, name), f"numpy.dtypes.{name}"))
    return allowed


def _torch_load(path: Path):
    """``torch.load(weights_only=True)`` with numpy arrays admitted through an allow-list."""
    try:
        with torch.serialization.safe_globals(_numpy_allow_list()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.findall(r"GLOBAL ([\w.]+)", str(err))
        what = f"the Python object {found[0]}" if found else "Python objects"
        raise CheckpointError(
            f"{path}: refusing to load: the file needs {what}, which a weights-only load "
            "does not allow (unpickling it could run code). "
            "Re-save the weights as a plain state_dict in a trusted environment."
        ) from err


def _is_state_dict(obj) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def _strip_module_prefix(state: Mapping) -> dict:
    """Remove the ``module.`` prefix that ``nn.DataParallel`` puts on every key."""
    keys = list(state)
    if keys and all(k.startswith("module.") for k in keys):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict]:
    """``(state_dict, metadata)`` from any accepted format; metadata is everything else.

    For the official format the metadata holds ``iteration`` (and whatever else
    the file has, ``sampler`` included); for ours, the extras given to
    :func:`save_checkpoint` plus ``class_name``/``model_name``/``config``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes); download or copy it again")
    try:
        obj = _torch_load(path)
    except CheckpointError:
        raise
    except Exception as err:
        why = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({why}); it may be "
                              f"truncated, download or copy it again") from err
    if isinstance(obj, Mapping) and obj.get("format") == OUR_FORMAT:
        state, meta = obj.get("state_dict"), {k: v for k, v in obj.items() if k != "state_dict"}
        meta.update(meta.pop("extra", {}) or {})
    elif isinstance(obj, Mapping) and _is_state_dict(obj.get("model")):
        state, meta = obj["model"], {k: v for k, v in obj.items() if k != "model"}
    elif isinstance(obj, Mapping) and _is_state_dict(obj.get("state_dict")):
        state, meta = obj["state_dict"], {k: v for k, v in obj.items() if k != "state_dict"}
    elif _is_state_dict(obj):
        state, meta = obj, {}
    else:
        what = f"a dict with keys {sorted(map(str, obj))[:10]}" if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(
            f"{path}: not a PANNs checkpoint: expected a state_dict, {{'model': state_dict, ...}} "
            f"or a file from save_checkpoint(), found {what}"
        )
    if not _is_state_dict(state):
        raise CheckpointError(f"{path}: the weights entry is not a state_dict of tensors")
    return _strip_module_prefix(state), meta


_SAFE_SCALARS = (int, float, str, bool, type(None), torch.Tensor, torch.Size, torch.dtype)


def check_weights_only_safe(value, where: str) -> None:
    """Extras must load under ``weights_only=True``; reject anything else at save time."""
    if isinstance(value, _SAFE_SCALARS):
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"save_checkpoint: key {k!r} in {where} must be str or int")
            check_weights_only_safe(v, f"{where}[{k!r}]")
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_weights_only_safe(v, f"{where}[{i}]")
        return
    raise TypeError(
        f"save_checkpoint: {where} is a {type(value).__name__}, which a weights_only load "
        "cannot read back; convert it to tensors, numbers, strings, lists or dicts"
    )
