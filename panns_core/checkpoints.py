"""Reading, writing and fetching PANNs checkpoints.

Three on-disk formats are accepted by :func:`load_checkpoint`:

* the official one written by ``pytorch/main.py`` and published on Zenodo,
  ``{'model': state_dict, 'iteration': int, ...}``, possibly with a
  ``'sampler'`` entry that holds numpy arrays;
* a plain ``state_dict`` (optionally with the ``module.`` prefix that
  ``torch.nn.DataParallel`` adds to every key);
* our own format written by :func:`save_checkpoint`.

Every file is read with ``torch.load(..., weights_only=True)``: a checkpoint
is untrusted input and full unpickling would run arbitrary code. Numpy arrays
in the official ``'sampler'`` entry are admitted through a short allow-list of
numpy's array/dtype reconstructors; anything else is refused with a message
naming the file and the offending globals.

When the weights do not fit the model, the error says which configuration
*would* fit (window from the STFT kernels, mel bins and sample rate from the
mel filterbank, classes from the last layer, embedding size from ``fc1``)
and which registered model has that layout, instead of dumping shapes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from panns_core import download as _download
from panns_core.checkpoint_io import OUR_FORMAT, CheckpointError, check_weights_only_safe, read_checkpoint
from panns_core.fsutil import save_torch
from panns_core.released import (RELEASED_CHECKPOINTS, ZENODO_RECORD, ReleasedCheckpoint, released_checkpoint,
                                 zenodo_url)

__all__ = ["OUR_FORMAT", "CheckpointError", "RELEASED_CHECKPOINTS", "ZENODO_RECORD", "ReleasedCheckpoint",
           "released_checkpoint", "zenodo_url", "read_checkpoint", "download_checkpoint",
           "load_pretrained", "infer_config", "skip_weight_init", "registered_matches", "mismatch_message",
           "load_checkpoint", "save_checkpoint"]


STFT_KEY = "spectrogram_extractor.stft.conv_real.weight"
MEL_KEY = "logmel_extractor.melW"
# Last layer of the clip head, in order of preference: AudioSet head, transfer
# head, attention-pooling classifier of Cnn14_DecisionLevelAtt.
_HEAD_KEYS = ("fc_audioset.weight", "fc_transfer.weight", "att_block.cla.weight")


def download_checkpoint(name: str, cache_dir: str | os.PathLike | None = None,
                        progress: bool = True) -> Path:
    """Download (or find in the cache) a released checkpoint and return its path.

    The cache is ``cache_dir`` if given, else :func:`panns_core.download.cache_dir`
    (``$PANNS_CACHE`` or ``~/.cache/panns``). Files with a known md5 are
    verified; for the others the sha256 seen is printed and recorded.
    """
    ckpt = released_checkpoint(name)
    root = Path(cache_dir).expanduser() if cache_dir is not None else _download.cache_dir()
    return _download.download(ckpt.url, root / ckpt.filename, md5=ckpt.md5, size=ckpt.size,
                              progress=progress)


def load_pretrained(name_or_path: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                    model_name: str | None = None, progress: bool = True) -> torch.nn.Module:
    """A registered model with released (or local) weights, in eval mode.

    ``name_or_path`` is a released checkpoint (model or file name, downloaded
    on first use) or a local file; for a local file the model is ``model_name``
    if given, else the registered model whose layout and front end fit the
    weights (see :func:`infer_config`).
    """
    from panns_core.models import create_model

    path = Path(name_or_path).expanduser()
    if path.is_file():
        state, _ = read_checkpoint(path)
        if model_name is None and path.name in RELEASED_CHECKPOINTS:
            model_name = RELEASED_CHECKPOINTS[path.name].model_name
        if model_name is None:
            matches = registered_matches(state, path.name, first_only=True)
            if not matches:
                raise CheckpointError(
                    f"{path}: no registered model has this checkpoint's layout; "
                    "pass model_name=... and load with load_checkpoint()"
                )
            model_name = matches[0]
    else:
        ckpt = released_checkpoint(str(name_or_path))
        path = download_checkpoint(ckpt.filename, cache_dir=cache_dir, progress=progress)
        model_name = model_name or ckpt.model_name
    model = create_model(model_name)
    load_checkpoint(model, path)
    return model.eval()


# --------------------------------------------------------------------------- diagnosis


def _mel_front_end(melw: torch.Tensor, n_fft: int) -> dict | None:
    """Sample rate, fmin and fmax whose librosa mel filterbank equals ``melW``.

    The filterbank is a deterministic function of (sr, n_fft, n_mels, fmin,
    fmax), so comparing it against the candidate front ends (the paper's
    presets and every registered model's) pins the checkpoint's sample rate.
    """
    import librosa

    from panns_core.config import PRESETS

    candidates = {(c.sample_rate, c.fmin, c.fmax) for c in PRESETS.values()}
    try:
        from panns_core.models import list_models, model_info

        for name in list_models():
            c = model_info(name).config
            candidates.add((c.sample_rate, c.fmin, c.fmax))
    except Exception:  # the registry is optional for this diagnosis
        pass
    mel = melw.detach().to(torch.float64).numpy()
    for sr, fmin, fmax in sorted(candidates, reverse=True):
        if fmax > sr / 2:
            continue
        ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=mel.shape[1], fmin=fmin, fmax=fmax).T
        if ref.shape == mel.shape and np.allclose(ref, mel, rtol=1e-4, atol=1e-7):
            return {"sample_rate": sr, "fmin": fmin, "fmax": fmax}
    return None


def infer_config(state: Mapping) -> dict:
    """What the weights say about the model that produced them.

    Keys (present when they can be read off the tensors): ``window_size``
    (STFT kernel length), ``mel_bins`` (mel filterbank columns),
    ``sample_rate``/``fmin``/``fmax`` (the filterbank matched against known
    front ends), ``hop_size`` (the paper's preset for that rate; the stride is
    not stored), ``classes_num`` (rows of the last layer), ``embedding_size``
    (rows of ``fc1``).
    """
    cfg: dict = {}
    if STFT_KEY in state:
        cfg["window_size"] = int(state[STFT_KEY].shape[-1])
    if MEL_KEY in state:
        cfg["mel_bins"] = int(state[MEL_KEY].shape[1])
        if "window_size" in cfg:
            front = _mel_front_end(state[MEL_KEY], cfg["window_size"])
            if front:
                cfg.update(front)
                from panns_core.config import PRESETS

                preset = PRESETS.get(front["sample_rate"])
                if preset is not None and preset.window_size == cfg["window_size"]:
                    cfg["hop_size"] = preset.hop_size
    for key in _HEAD_KEYS:
        if key in state:
            cfg["classes_num"] = int(state[key].shape[0])
            break
    if "fc1.weight" in state:
        cfg["embedding_size"] = int(state["fc1.weight"].shape[0])
    return cfg


_LAYOUT_CACHE: dict[str, dict[str, tuple]] = {}
_INIT_FUNCTIONS = ("uniform_", "normal_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
                   "kaiming_normal_", "constant_", "zeros_", "ones_", "trunc_normal_", "orthogonal_")


@contextlib.contextmanager
def skip_weight_init():
    """Make ``torch.nn.init`` a no-op while a model is built only for its shapes.

    Random initialisation dominates the construction time of the large models
    (about 10x); the layout (keys and shapes) and the operation counts do not
    depend on it. Weights built inside are uninitialised: never train or
    publish such a model. The functions are restored on exit, also after an
    exception.
    """
    saved = {name: getattr(torch.nn.init, name) for name in _INIT_FUNCTIONS}
    try:
        for name in _INIT_FUNCTIONS:
            setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.nn.init, name, fn)


def _registered_layout(name: str) -> dict[str, tuple]:
    """``key -> shape`` of a registered model's state_dict (built once, cached)."""
    if name not in _LAYOUT_CACHE:
        from panns_core.models import create_model

        with skip_weight_init():
            model = create_model(name)
        _LAYOUT_CACHE[name] = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return _LAYOUT_CACHE[name]


def _plausible(name: str, cfg: Mapping) -> bool:
    """Cheap pre-filter from registry metadata: front end and embedding size must agree."""
    from panns_core.models import model_info

    info = model_info(name)
    for field in ("sample_rate", "window_size", "mel_bins", "fmin", "fmax"):
        if field in cfg and getattr(info.config, field) != cfg[field]:
            return False
    emb = getattr(info, "embedding_size", None)
    return not ("embedding_size" in cfg and emb and emb != cfg["embedding_size"])


def registered_matches(state: Mapping, hint: str = "", cfg: Mapping | None = None,
                       first_only: bool = False, prefer: str = "") -> list[str]:
    """Registered models whose keys and shapes (heads excepted) equal the checkpoint's.

    The head's class count may differ (a fine-tuned model), so head rows are
    not compared. Candidates are pre-filtered with the configuration read off
    the weights, so only a few models are built. Names that prefix ``hint``
    (the file name) come first, so ``Cnn14_16k_mAP=0.438.pth`` prefers
    ``Cnn14_16k``.
    """
    try:
        from panns_core.models import list_models
    except ImportError:
        return []
    cfg = infer_config(state) if cfg is None else cfg
    ours = {k: tuple(v.shape) for k, v in state.items()}
    skip = {k for k in ours if k.split(".")[0] in ("fc_audioset", "fc_transfer")
            or k.startswith("att_block.")}
    hint = hint.lower()

    def preference(name: str):
        if hint.startswith(name.lower() + "_"):
            return (0, -len(name))  # longest file-name prefix: Cnn14_16k before Cnn14
        return (1 if name == prefer else 2, len(name))  # then the model asked for, then base names

    names = sorted(list_models(), key=preference)
    matches = []
    for name in names:
        try:
            if not _plausible(name, cfg):
                continue
            layout = _registered_layout(name)
        except Exception:  # a model that cannot be built is simply not a candidate
            continue
        if set(layout) == set(ours) and all(layout[k] == ours[k] for k in ours if k not in skip):
            matches.append(name)
            if first_only:
                break
    return matches


def _describe(cfg: Mapping) -> str:
    order = ("sample_rate", "window_size", "hop_size", "mel_bins", "fmin", "fmax", "classes_num",
             "embedding_size")
    return ", ".join(f"{k}={cfg[k]}" for k in order if k in cfg)


def _model_config(model: torch.nn.Module) -> dict:
    cfg = {}
    audio = getattr(model, "audio_config", None)
    if audio is not None:
        cfg.update(dataclasses.asdict(audio))
    for attr in ("classes_num", "embedding_size"):
        if isinstance(getattr(model, attr, None), int):
            cfg[attr] = getattr(model, attr)
    return cfg


def mismatch_message(model: torch.nn.Module, state: Mapping, path: str | os.PathLike) -> str:
    """Explain why ``state`` does not fit ``model`` and which configuration would fit it."""
    model_state = model.state_dict()
    missing = [k for k in model_state if k not in state]
    unexpected = [k for k in state if k not in model_state]
    wrong = [k for k in state if k in model_state and tuple(state[k].shape) != tuple(model_state[k].shape)]
    ckpt_cfg = infer_config(state)
    have_cfg = _model_config(model)
    cls = type(model).__name__
    lines = [f"checkpoint {path} does not fit {cls}({_describe(have_cfg) or '...'})."]
    differ = [k for k in ckpt_cfg if k in have_cfg and k != "hop_size" and ckpt_cfg[k] != have_cfg[k]]
    if differ:
        lines.append("Its weights were trained with " + ", ".join(
            f"{k}={ckpt_cfg[k]} (model has {have_cfg[k]})" for k in differ) + ".")
    if missing or unexpected:
        lines.append(f"Its layers differ ({len(missing)} of the model's tensors are missing, "
                     f"{len(unexpected)} are extra, e.g. {(unexpected or missing)[0]!r}): "
                     "it comes from another architecture.")
    matches = registered_matches(state, Path(str(path)).name, ckpt_cfg, prefer=cls)
    if matches:
        extra = ""
        if ckpt_cfg.get("classes_num") and ckpt_cfg["classes_num"] != _registered_classes(matches[0]):
            extra = f", classes_num={ckpt_cfg['classes_num']}"
        others = f" (same layout: {', '.join(matches[1:])})" if len(matches) > 1 else ""
        lines.append(f"It fits the registered model {matches[0]}: "
                     f"create_model({matches[0]!r}{extra}){others}.")
    elif ckpt_cfg:
        note = (" (hop_size is the paper's value for that sample rate; the stride is not stored "
                "in the weights)" if "hop_size" in ckpt_cfg else "")
        lines.append(f"A model that fits needs {_describe(ckpt_cfg)}{note}.")
    if not differ and not missing and not unexpected and wrong:
        k = wrong[0]
        lines.append(f"{len(wrong)} tensors differ in shape, e.g. {k}: checkpoint "
                     f"{tuple(state[k].shape)} vs model {tuple(model_state[k].shape)}.")
    return " ".join(lines)


def _registered_classes(name: str) -> int | None:
    layout = _registered_layout(name)
    for key in _HEAD_KEYS:
        if key in layout:
            return layout[key][0]
    return None


# --------------------------------------------------------------------------- load / save


def load_checkpoint(model: torch.nn.Module, path: str | os.PathLike, strict: bool = True) -> dict:
    """Load weights from any accepted format into ``model``; return the metadata.

    Shape mismatches always raise :class:`CheckpointError` with the
    configuration that would fit (``strict=False`` only tolerates missing or
    extra keys, as in :meth:`torch.nn.Module.load_state_dict`). The returned
    dict holds everything in the file except the weights (e.g. ``iteration``,
    ``optimizer``).
    """
    state, meta = read_checkpoint(path)
    load_state_checked(model, state, path, strict=strict)
    return meta


def load_state_checked(model: torch.nn.Module, state: Mapping, path: str | os.PathLike, strict: bool = True) -> None:
    """``model.load_state_dict(state)`` with :func:`load_checkpoint`'s checks; ``path`` names the source."""
    model_state = model.state_dict()
    shape_ok = all(tuple(v.shape) == tuple(model_state[k].shape)
                   for k, v in state.items() if k in model_state)
    keys_ok = set(state) == set(model_state)
    if not shape_ok or (strict and not keys_ok):
        raise CheckpointError(mismatch_message(model, state, path))
    model.load_state_dict(state, strict=strict)


def _registered_name(model: torch.nn.Module) -> str | None:
    """The registry name of the model's class (registered names are the official class names)."""
    try:
        from panns_core.models import list_models
    except ImportError:
        return None
    name = type(model).__name__
    return name if name in list_models() else None


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, **extra) -> Path:
    """Write ``model``'s weights and ``extra`` (iteration, optimizer state, ...) atomically.

    The file is written next to ``path`` under a temporary name and renamed, so
    a crash never leaves a truncated checkpoint under the final name. The
    model's class, registered name (if any) and audio configuration are stored
    so that the file documents itself.
    """
    path = Path(path)
    for key, value in extra.items():
        if key in ("format", "state_dict"):
            raise ValueError(f"save_checkpoint: {key!r} is reserved")
        check_weights_only_safe(value, key)
    payload = {
        "format": OUR_FORMAT,
        "class_name": type(model).__name__,
        "model_name": _registered_name(model),
        "config": _model_config(model),
        "state_dict": model.state_dict(),
        "extra": extra,
    }
    save_torch(payload, path)  # a failed write (disk full) raises the OSError naming path
    return path


def infer_model_name(state: Mapping[str, torch.Tensor], meta: Mapping | None = None,
                     filename: str = "") -> str | None:
    """Registered model a local checkpoint belongs to, or ``None`` when nothing fits.

    Cheap evidence first: the model name stored in the file (``save_checkpoint``
    records it), then the longest registered name that prefixes the file name
    (``Cnn6_mAP=0.343.pth``, the official naming); the strict ``load_state_dict``
    that follows confirms it (a mismatch names the model that would fit). Without
    such evidence the checkpoints module compares the layout with every registered
    model, which builds each once (tens of seconds on a CPU).
    """
    from panns_core.models import list_models

    known = list_models()
    for key in ("model_name", "class_name"):
        value = (meta or {}).get(key)
        if isinstance(value, str) and value in known:
            return value
    base = os.path.basename(filename).lower()
    by_prefix = [n for n in known if base.startswith(n.lower() + "_") or base == n.lower() + ".pth"]
    if by_prefix:
        return max(by_prefix, key=len)
    matches = registered_matches(state, base)
    return matches[0] if matches else None
