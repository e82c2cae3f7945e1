"""Pretrained PANNs for users: audio tagging, embeddings and sound event detection.

Two lines tag a file::

    from panns_core.inference import Pretrained
    print(Pretrained.load("Cnn14").tag("dog.wav")[0].top(5))

and two lines detect its events::

    model = Pretrained.load("Cnn14_DecisionLevelMax")
    print(model.sed("dog.wav")[0].events(threshold=0.3))

How a file becomes model input (the choices the official ``inference.py`` leaves
to the user):

* **Decoding**: :func:`panns_core.audio_io.load_audio`: any format, channels
  averaged, resampled to the checkpoint's own rate (from the model registry, so a
  16 kHz checkpoint gets 16 kHz audio).
* **Chunking**: files longer than ``chunk_seconds`` (10 s, the AudioSet clip
  length the models were trained on) are cut into windows every ``hop_seconds``
  (default: the window, i.e. no overlap); the last window is aligned to the end
  of the file (its start rounded up to a whole STFT hop, the few overhanging
  samples zero-padded) so that no window is mostly padding. Shorter files are
  processed whole at their own length, like the official script, zero-padded only
  up to ``min_seconds`` (1 s) so that every architecture's pooling stack has
  enough frames. A `panns finetune` checkpoint sets both to its training clip
  length, and a file shorter than that is filled the way training filled it
  (its ``pad`` metadata: silence, or the clip repeated end to end).
* **Aggregation over windows**: clipwise probabilities take the **maximum** over
  windows (a sound present in any window is present in the file, matching the
  max-over-time pooling of the models); embeddings take the **mean**; framewise
  SED outputs are **concatenated**: each window supplies the frames from its own
  start up to the next window's start, so the file gets exactly
  ``samples // hop_size + 1`` frames at ``sample_rate / hop_size`` frames/s
  (100 /s for the 32 kHz models).
* **Batching**: windows of equal length from many files share a forward pass
  (``batch_size`` windows at a time); results come back in input order.
* **Bad files**: a file that cannot be decoded becomes a :class:`Failure`
  (file + reason) and the others are still processed.
* **Speed**: forwards run under ``torch.inference_mode()`` on an inference copy of
  the model (:mod:`panns_core.fast_inference`: BatchNorm folded into the
  convolutions, channels_last, and with ``precision="bf16"`` bfloat16 weights with
  the STFT/log-mel front end kept in float32; ``precision="auto"`` picks bf16 where
  the hardware runs it natively). ``self.model`` keeps the original weights. See
  ``benchmarks/bench_inference_bf16.py`` for the speed and the accuracy cost.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from .audio_io import AudioReadError, expand_inputs, fit_to_length, load_audio, waveform_from_array
from .config import CLASSES_NUM, AudioConfig
from .fast_inference import default_precision, prepare_for_inference
from .labels import LabelSet, labels_for, load_labels
from .precision import autocast

DEFAULT_CHUNK_SECONDS = 10.0
DEFAULT_MIN_SECONDS = 1.0
PRECISIONS = ("fp32", "bf16", "auto")


class InferenceError(RuntimeError):
    """A model or checkpoint cannot do what was asked (message says what to use instead)."""


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


@dataclass
class Failure:
    """An input that was skipped, and why."""

    path: str
    reason: str
    kind: str = "decode"  # one of audio_io.FAILURE_KINDS


@dataclass
class AudioResult:
    """Outputs for one input file (or array), aggregated over its windows."""

    path: str
    duration_s: float
    sample_rate: int
    hop_size: int
    labels: LabelSet
    chunk_starts_s: list[float]
    clipwise: np.ndarray | None = None  # (classes,), max over windows
    chunk_clipwise: np.ndarray | None = None  # (windows, classes)
    embedding: np.ndarray | None = None  # (D,), mean over windows
    framewise: np.ndarray | None = None  # (frames, classes)
    waveform: np.ndarray | None = field(default=None, repr=False)  # kept only when asked

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_size

    def top(self, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` most probable labels with their clipwise probability, best first."""
        if self.clipwise is None:
            raise InferenceError(f"{self.path}: no clipwise output was computed")
        order = top_k_indices(self.clipwise, k)
        return [(self.labels.names[i], float(self.clipwise[i])) for i in order]

    def events(self, threshold=0.5, *, min_duration: float = 0.0, min_gap: float = 0.0,
               classes: Sequence[str] | None = None):
        """Event table (``pandas.DataFrame``) from the framewise output; see :func:`detect_events`."""
        if self.framewise is None:
            raise InferenceError(f"{self.path}: no framewise output (use a DecisionLevel model and sed())")
        table = detect_events(self.framewise, self.labels, self.frames_per_second,
                              threshold=threshold, min_duration=min_duration, min_gap=min_gap,
                              classes=classes, duration_s=self.duration_s)
        table.insert(0, "file", self.path)
        return table


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores, best first (ties broken by lower index)."""
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    scores = np.asarray(scores)
    order = np.lexsort((np.arange(scores.size), -scores))
    return order[: min(k, scores.size)]


def tags_table(results: Iterable[AudioResult], k: int = 10):
    """Long-format top-k table: one row per (file, rank) with label, mid, index and score."""
    import pandas as pd

    rows = []
    for result in results:
        for rank, index in enumerate(top_k_indices(result.clipwise, k), start=1):
            rows.append({"file": result.path, "rank": rank, "label": result.labels.names[index],
                         "mid": result.labels.ids[index], "index": int(index),
                         "score": float(result.clipwise[index])})
    return pd.DataFrame(rows, columns=["file", "rank", "label", "mid", "index", "score"])


# ---------------------------------------------------------------------------
# Sound event detection: thresholds -> event table
# ---------------------------------------------------------------------------


def class_thresholds(threshold, labels: LabelSet) -> np.ndarray:
    """Per-class threshold vector from a float, a ``{label or mid: value}`` mapping or an array.

    A mapping overrides the default (``threshold.get("default", 0.5)``) for the classes
    it names; unknown names raise ``KeyError`` listing them (a typo must not silently
    leave a class at the default).
    """
    n = len(labels)
    if isinstance(threshold, Mapping):
        values = np.full(n, float(threshold.get("default", 0.5)), dtype=np.float64)
        by_name = {name: i for i, name in enumerate(labels.names)}
        by_id = {mid: i for i, mid in enumerate(labels.ids)}
        unknown = []
        for key, value in threshold.items():
            if key == "default":
                continue
            index = by_name.get(key, by_id.get(key))
            if index is None:
                unknown.append(key)
            else:
                values[index] = float(value)
        if unknown:
            raise KeyError(f"unknown class name(s) in thresholds: {unknown}")
        return values
    values = np.asarray(threshold, dtype=np.float64)
    if values.ndim == 0:
        return np.full(n, float(values))
    if values.shape != (n,):
        raise ValueError(f"threshold array must have shape ({n},), got {values.shape}")
    return values


def _active_runs(active: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` frame ranges where a boolean vector is True."""
    padded = np.concatenate([[False], active, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def _merge_runs(runs: list[tuple[int, int]], max_gap_frames: float) -> list[tuple[int, int]]:
    """Join consecutive runs separated by at most ``max_gap_frames`` inactive frames."""
    merged: list[tuple[int, int]] = []
    for start, end in runs:
        if merged and start - merged[-1][1] <= max_gap_frames:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def detect_events(framewise: np.ndarray, labels: LabelSet, frames_per_second: float, *,
                  threshold=0.5, min_duration: float = 0.0, min_gap: float = 0.0,
                  classes: Sequence[str] | None = None, duration_s: float | None = None):
    """Turn framewise probabilities ``(frames, classes)`` into an event table.

    Frame ``i`` is centred at ``i / frames_per_second`` s (centred STFT). A class is
    active where its probability is ``>= threshold`` (per class, see
    :func:`class_thresholds`). Active runs separated by gaps of at most ``min_gap``
    seconds are merged, then events shorter than ``min_duration`` seconds dropped.
    An event covering frames ``[s, e)`` has ``onset = s / fps`` and
    ``offset = e / fps`` (clipped to ``duration_s``), and ``score`` = its peak
    probability. Rows are sorted by onset, then label.
    """
    import pandas as pd

    framewise = np.asarray(framewise)
    if framewise.ndim != 2 or framewise.shape[1] != len(labels):
        raise ValueError(f"framewise must be (frames, {len(labels)}), got {framewise.shape}")
    thresholds = class_thresholds(threshold, labels)
    if classes is not None:
        by_name = {name: i for i, name in enumerate(labels.names)}
        missing = [c for c in classes if c not in by_name]
        if missing:
            raise KeyError(f"unknown class name(s): {missing}")
        indices = [by_name[c] for c in classes]
    else:
        indices = range(len(labels))
    rows = []
    gap_frames = min_gap * frames_per_second
    for index in indices:
        active = framewise[:, index] >= thresholds[index]
        if not active.any():
            continue
        for start, end in _merge_runs(_active_runs(active), gap_frames):
            onset, offset = start / frames_per_second, end / frames_per_second
            if duration_s is not None:
                offset = min(offset, duration_s)
            if offset - onset + 1e-9 < min_duration:
                continue
            rows.append({"onset": onset, "offset": offset, "label": labels.names[index],
                         "index": int(index), "score": float(framewise[start:end, index].max())})
    table = pd.DataFrame(rows, columns=["onset", "offset", "label", "index", "score"])
    return table.sort_values(["onset", "label"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------
# Chunking
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkPlan:
    """Where the windows of a file start, and how long each one is (in samples)."""

    starts: tuple[int, ...]
    length: int
    num_samples: int


def plan_chunks(num_samples: int, window: int, hop: int, align: int, min_samples: int) -> ChunkPlan:
    """Window starts for a file of ``num_samples`` (see the module docstring for the rule).

    ``window`` and ``hop`` are multiples of ``align`` (the STFT hop), so every window
    starts on a frame boundary and framewise outputs can be stitched exactly.
    """
    if num_samples <= 0:
        raise ValueError("cannot plan chunks for an empty signal")
    if num_samples <= window:
        return ChunkPlan(starts=(0,), length=max(num_samples, min_samples), num_samples=num_samples)
    starts = list(range(0, num_samples - window + 1, hop))
    if starts[-1] + window < num_samples:
        last = -(-(num_samples - window) // align) * align  # ceil to a frame boundary
        starts.append(last)
    return ChunkPlan(starts=tuple(starts), length=window, num_samples=num_samples)


def cut_chunks(waveform: np.ndarray, plan: ChunkPlan, pad: str = "zeros") -> list[np.ndarray]:
    """The windows of ``plan``, each exactly ``plan.length`` samples (zero-padded at the end).

    With ``pad="repeat"`` (a `panns finetune` model trained that way) a file shorter
    than its one window is repeated end to end to fill it instead.
    """
    fill = pad if len(plan.starts) == 1 else "zeros"  # only a file that fits one window is repeated
    return [np.ascontiguousarray(fit_to_length(waveform[start:start + plan.length], plan.length, fill),
                                 dtype=np.float32) for start in plan.starts]


def stitch_framewise(chunk_frames: Sequence[np.ndarray], plan: ChunkPlan, hop_size: int) -> np.ndarray:
    """Concatenate per-window framewise outputs into ``num_samples // hop_size + 1`` frames.

    Window ``i`` supplies global frames ``[start_i, start_{i+1})`` (in frames); the
    last window supplies everything from its start to the end of the file.
    """
    total = plan.num_samples // hop_size + 1
    offsets = [s // hop_size for s in plan.starts] + [total]
    pieces = []
    for i, frames in enumerate(chunk_frames):
        need = offsets[i + 1] - offsets[i]
        if frames.shape[0] < need:
            raise InferenceError(f"window {i} has {frames.shape[0]} frames, {need} needed")
        pieces.append(frames[:need])
    return np.concatenate(pieces, axis=0)


# ---------------------------------------------------------------------------
# Checkpoint resolution
# ---------------------------------------------------------------------------


def released_entry(name: str):
    """The ``RELEASED_CHECKPOINTS`` entry for a file or model name (any case), or ``None``."""
    from .checkpoints import released_checkpoint

    try:
        return released_checkpoint(name)
    except KeyError:
        return None


def _cache_dir(cache_dir) -> str:
    if cache_dir is not None:
        return os.fspath(cache_dir)
    from .download import cache_dir as default_cache_dir

    return os.fspath(default_cache_dir())


def fetch_released(name: str, cache_dir=None, *, download: bool = True, progress: bool = True) -> str:
    """Path of a released checkpoint, downloaded once into the cache and checksum-verified.

    A file already in the cache is verified and used without any network access.
    When it is missing and cannot be fetched (offline, or ``download=False``) the
    error says where it was looked for and how to provide it.
    """
    from .checkpoints import download_checkpoint

    entry = released_entry(name)
    if entry is None:
        raise InferenceError(f"no released checkpoint named {name!r}")
    target = os.path.join(_cache_dir(cache_dir), entry.filename)
    if not download:
        if not os.path.isfile(target):
            raise InferenceError(
                f"checkpoint {entry.filename} is not in the cache ({target}) and downloading is "
                f"disabled; run `panns download {entry.model_name}` where there is network access "
                "and copy the file there, or pass a local checkpoint path")
    try:
        return os.fspath(download_checkpoint(entry.filename, cache_dir=cache_dir, progress=progress))
    except Exception as exc:  # noqa: BLE001 - network and checksum errors come in many types
        raise InferenceError(
            f"checkpoint {entry.filename} is not in the cache ({target}) and could not be "
            f"downloaded from {entry.url}: {exc}. Check the network, point PANNS_CACHE / "
            "--cache-dir at a folder holding the file, or pass a local checkpoint path."
        ) from exc


# ---------------------------------------------------------------------------
# The model wrapper
# ---------------------------------------------------------------------------


def _autocast_module(model: torch.nn.Module, device: torch.device, precision: str):
    """``model`` called under bf16 autocast (the ``optimize=False`` path; the models keep
    their log-mel front end in float32 themselves, see :mod:`panns_core.precision`)."""
    if precision == "fp32":
        return model

    def run(x):
        with autocast(device, precision):
            return model(x)

    return run


def bf16_supported(device="cpu") -> bool:
    """Whether bfloat16 autocast runs on this device (CPU: ops exist; speed needs AVX512-BF16/AMX)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.functional.conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 2, 2))
        return True
    except Exception:  # noqa: BLE001
        return False


@dataclass
class _Job:
    """Book-keeping for one input while its windows are in flight."""

    path: str
    plan: ChunkPlan | None = None
    outputs: list | None = None
    failure: Failure | None = None
    waveform: np.ndarray | None = None

    @property
    def done(self) -> bool:
        return self.failure is not None or all(o is not None for o in self.outputs)


class Pretrained:
    """A PANNs model ready for inference, with its front-end config and label names.

    Build it with :meth:`load` (released checkpoint name or local file) or
    :meth:`untrained` (random weights, for demos and tests). All methods accept file
    paths, folders (their audio files), or 1-D numpy arrays already at
    ``config.sample_rate``.
    """

    def __init__(self, model: torch.nn.Module, model_name: str, config: AudioConfig,
                 labels: LabelSet, *, checkpoint: str | None = None, precision: str = "fp32",
                 device="cpu", batch_size: int = 8, chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
                 hop_seconds: float | None = None, min_seconds: float = DEFAULT_MIN_SECONDS,
                 optimize: bool = True, compile: bool = False):
        if precision == "auto":
            precision = default_precision(device)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if precision == "bf16" and not bf16_supported(device):
            raise InferenceError(f"bfloat16 autocast is not supported on device {device!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        # the inference copy is built on the first forward (optimize=False: the model itself)
        self._fast_options = {"optimize": optimize, "compile": compile}
        self._fast_model = None
        self.model_name = model_name
        self.config = config
        self.labels = labels
        self.checkpoint = checkpoint
        self.precision = precision
        self.batch_size = int(batch_size)
        self.pad = "zeros"  # how a file shorter than min_seconds is filled; "repeat" for some fine-tuned models
        self.set_chunking(chunk_seconds, hop_seconds, min_seconds)

    # -- construction -------------------------------------------------------

    @classmethod
    def load(cls, checkpoint: str, *, model: str | None = None, cache_dir=None, download: bool = True,
             labels_path: str | None = None, allow_generic_labels: bool = False,
             progress: bool = True, **options) -> "Pretrained":
        """Load a released checkpoint by name (cached, checksum-verified) or a local file.

        ``checkpoint`` is a released file name (``"Cnn14_mAP=0.431.pth"``), a model name
        with a released checkpoint (``"Cnn14"``), or a path to a local file. The model
        class comes from the registry entry; for a local file it is ``model`` if given,
        else inferred from the state_dict layout, else an error asking for ``model``.
        The front end (rate, window, hop, mel bins) always comes from the model registry,
        so a 16 kHz checkpoint gets 16 kHz input. The class count is read off the weights.
        """
        from .checkpoints import infer_config, infer_model_name, mismatch_message, read_checkpoint
        from .models import create_model, list_models, model_info

        path, model_name = cls._resolve(checkpoint, model, cache_dir, download, progress)
        try:
            state, meta = read_checkpoint(path)
        except Exception as exc:  # noqa: BLE001
            raise InferenceError(str(exc)) from None
        if meta.get("kind") == "panns_transfer":  # written by `panns finetune`: the user's own labels
            return cls._load_finetuned(path, state, meta, labels_path, options)
        if model_name is None:
            model_name = infer_model_name(state, meta, os.path.basename(path))
            if model_name is None:
                raise InferenceError(
                    f"{path}: cannot tell which model this checkpoint belongs to; pass the model "
                    f"name (--model / model=...), one of: {', '.join(list_models())}")
        if model_name not in list_models():
            raise InferenceError(f"unknown model {model_name!r}; known: {', '.join(list_models())}")
        classes = infer_config(state).get("classes_num")
        if not classes:
            raise InferenceError(f"{path}: cannot read the number of output classes from the weights")
        net = create_model(model_name, classes_num=classes)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError:
            raise InferenceError(mismatch_message(net, state, path)) from None
        labels = labels_for(classes, path=labels_path, allow_generic=allow_generic_labels)
        return cls(net, model_name, model_info(model_name).config, labels, checkpoint=path, **options)

    @classmethod
    def _load_finetuned(cls, path: str, state: dict, meta: dict, labels_path, options: dict) -> "Pretrained":
        """A `panns finetune` checkpoint: its label names, windows of its training clip length."""
        from .transfer.finetune import load_transfer_model, transfer_checkpoint_pad

        try:
            net, backbone, config, names, clip_seconds = load_transfer_model(state, meta)
            pad = transfer_checkpoint_pad(meta)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise InferenceError(f"{path}: not a loadable fine-tuned checkpoint ({exc})") from None
        labels = (load_labels(labels_path, expected=len(names)) if labels_path
                  else LabelSet(ids=tuple(names), names=tuple(names), source=path))
        # Short files are padded to the training clip length the way training padded them (silence, or the
        # clip repeated; files without the key were trained with silence); long ones cut into such windows.
        options = {"chunk_seconds": clip_seconds, "min_seconds": clip_seconds, **options}
        name = f"{backbone} fine-tuned ({meta.get('strategy', '?')}, {len(names)} classes)"
        loaded = cls(net, name, config, labels, checkpoint=path, **options)
        loaded.pad = pad
        return loaded

    @staticmethod
    def _resolve(checkpoint, model: str | None, cache_dir, download: bool,
                 progress: bool) -> tuple[str, str | None]:
        checkpoint = os.fspath(checkpoint)
        if os.path.isfile(checkpoint):
            return checkpoint, model
        entry = released_entry(checkpoint)
        if entry is None:
            from .checkpoints import RELEASED_CHECKPOINTS

            known = ", ".join(sorted(c.model_name for c in RELEASED_CHECKPOINTS.values()))
            raise InferenceError(
                f"checkpoint {checkpoint}: no such file, and not the name of a released checkpoint "
                f"(released: {known})")
        path = fetch_released(entry.filename, cache_dir, download=download, progress=progress)
        return path, model or entry.model_name

    @classmethod
    def untrained(cls, model_name: str, *, seed: int = 0, classes_num: int | None = None,
                  allow_generic_labels: bool = False, **options) -> "Pretrained":
        """A randomly initialised model: its outputs are meaningless (demos and tests only)."""
        from .models import create_model, model_info

        torch.manual_seed(seed)
        overrides = {} if classes_num is None else {"classes_num": classes_num}
        net = create_model(model_name, **overrides)
        classes = int(getattr(net, "classes_num", classes_num or CLASSES_NUM))
        labels = labels_for(classes, allow_generic=allow_generic_labels)
        return cls(net, model_name, model_info(model_name).config, labels, checkpoint=None, **options)

    def set_chunking(self, chunk_seconds: float = DEFAULT_CHUNK_SECONDS, hop_seconds: float | None = None,
                     min_seconds: float = DEFAULT_MIN_SECONDS) -> None:
        """Window length / hop in seconds, rounded to whole STFT hops (see module docstring)."""
        hop_size, sr = self.config.hop_size, self.config.sample_rate
        hop_seconds = chunk_seconds if hop_seconds is None else hop_seconds
        if not 0 < hop_seconds <= chunk_seconds:
            raise ValueError(f"need 0 < hop_seconds <= chunk_seconds, got {hop_seconds}, {chunk_seconds}")
        self.window_samples = max(1, round(chunk_seconds * sr / hop_size)) * hop_size
        self.hop_samples = max(1, round(hop_seconds * sr / hop_size)) * hop_size
        model_min = int(getattr(self.model, "min_samples", 0) or 0)
        self.min_samples = min(self.window_samples, max(int(round(min_seconds * sr)), model_min))
        if model_min > self.window_samples:
            raise ValueError(f"{self.model_name} needs windows of at least {model_min} samples")

    # -- forward --------------------------------------------------------------

    def forward(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """One forward pass of a ``(batch, samples)`` float32 array; outputs as float32 numpy."""
        x = torch.as_tensor(np.asarray(batch, dtype=np.float32), device=self.device)
        with torch.inference_mode():
            out = self.fast_model(x)
        return {k: v.float().cpu().numpy() for k, v in out.items() if isinstance(v, torch.Tensor)}

    @property
    def fast_model(self) -> torch.nn.Module:
        """The module forwards run on (see :func:`panns_core.fast_inference.prepare_for_inference`)."""
        if self._fast_model is None:
            from .models.blocks import PannsModel

            # only the package's own models are known to survive folding and dtype changes
            ours = any(isinstance(m, PannsModel) for m in self.model.modules())
            if self._fast_options["optimize"] and ours:
                self._fast_model = prepare_for_inference(self.model, self.precision, device=self.device,
                                                         compile=self._fast_options["compile"])
            else:  # the plain model, autocast for bf16
                self._fast_model = _autocast_module(self.model, self.device, self.precision)
        return self._fast_model

    def output_keys(self) -> set[str]:
        """Output names of the model (one forward of a short silent clip, cached)."""
        if not hasattr(self, "_output_keys"):
            # the plain model, not the inference copy: a compiled copy would compile for this
            # one-off shape first and then recompile with dynamic shapes for the real batches
            with torch.inference_mode():
                out = self.model(torch.zeros((1, self.min_samples), device=self.device))
            self._output_keys = {k for k, v in out.items() if isinstance(v, torch.Tensor)}
        return self._output_keys

    def _require(self, key: str, task: str) -> None:
        if key not in self.output_keys():
            hint = ("use a DecisionLevel model such as Cnn14_DecisionLevelMax"
                    if key == "framewise_output" else "use a model that returns an embedding, e.g. Cnn14")
            raise InferenceError(f"{self.model_name} has no {key!r} output, needed for {task}; {hint}")

    # -- batch engine -----------------------------------------------------------

    def _load_input(self, item, position: int) -> tuple[str, np.ndarray]:
        if isinstance(item, np.ndarray):
            name = f"array_{position}"
            return name, waveform_from_array(item, name)
        path = os.fspath(item)
        return path, load_audio(path, self.config.sample_rate)

    def run(self, inputs, *, keep_waveform: bool = False) -> Iterator[AudioResult | Failure]:
        """Process inputs in order, yielding an :class:`AudioResult` or :class:`Failure` for each.

        ``inputs``: one path/array or a sequence of them; folders expand to their audio
        files. Windows of equal length from consecutive files are batched together;
        at most ``4 * batch_size`` windows wait in memory (beyond that the bucket
        holding the oldest window runs, even if not full).
        """
        items = self._as_items(inputs)
        queue: list[_Job] = []
        pending: dict[int, list[tuple[int, _Job, int, np.ndarray]]] = {}
        sequence = 0
        for position, item in enumerate(items):
            job = _Job(path=item if isinstance(item, str) else f"array_{position}")
            queue.append(job)
            try:
                job.path, wave = self._load_input(item, position)
            except AudioReadError as exc:
                job.failure = Failure(exc.path, exc.reason, exc.kind)
            else:
                job.plan = plan_chunks(wave.shape[0], self.window_samples, self.hop_samples,
                                       self.config.hop_size, self.min_samples)
                job.outputs = [None] * len(job.plan.starts)
                job.waveform = wave if keep_waveform else None
                bucket = pending.setdefault(job.plan.length, [])
                for index, chunk in enumerate(cut_chunks(wave, job.plan, self.pad)):
                    bucket.append((sequence, job, index, chunk))
                    sequence += 1
                while len(bucket) >= self.batch_size:
                    self._flush(bucket)
                while sum(map(len, pending.values())) > 4 * self.batch_size:
                    self._flush(min((b for b in pending.values() if b), key=lambda b: b[0][0]))
            yield from self._pop_done(queue)
        for bucket in sorted((b for b in pending.values() if b), key=lambda b: b[0][0]):
            while bucket:
                self._flush(bucket)
        yield from self._pop_done(queue)

    @staticmethod
    def _as_items(inputs) -> list:
        if isinstance(inputs, (str, os.PathLike, np.ndarray)):
            inputs = [inputs]
        items: list = []
        for item in inputs:
            if isinstance(item, np.ndarray):
                items.append(item)
            else:
                items.extend(expand_inputs([item]))
        return items

    def _flush(self, bucket: list) -> None:
        """Run up to ``batch_size`` windows from the front of a bucket and file their outputs."""
        batch = bucket[: self.batch_size]
        del bucket[: self.batch_size]
        outputs = self.forward(np.stack([chunk for _, _, _, chunk in batch]))
        for row, (_, job, index, _) in enumerate(batch):
            job.outputs[index] = {k: v[row] for k, v in outputs.items()}

    def _pop_done(self, queue: list[_Job]) -> Iterator[AudioResult | Failure]:
        while queue and queue[0].done:
            job = queue.pop(0)
            yield job.failure if job.failure is not None else self._finish(job)

    def _finish(self, job: _Job) -> AudioResult:
        outs, plan = job.outputs, job.plan
        result = AudioResult(
            path=job.path, duration_s=plan.num_samples / self.config.sample_rate,
            sample_rate=self.config.sample_rate, hop_size=self.config.hop_size, labels=self.labels,
            chunk_starts_s=[s / self.config.sample_rate for s in plan.starts], waveform=job.waveform)
        if "clipwise_output" in outs[0]:
            result.chunk_clipwise = np.stack([o["clipwise_output"] for o in outs])
            result.clipwise = result.chunk_clipwise.max(axis=0)
        if "embedding" in outs[0]:
            result.embedding = np.stack([o["embedding"] for o in outs]).mean(axis=0)
        if "framewise_output" in outs[0]:
            result.framewise = stitch_framewise([o["framewise_output"] for o in outs], plan,
                                                self.config.hop_size)
        return result

    # -- tasks -------------------------------------------------------------------

    def _collect(self, inputs, keep_waveform: bool = False) -> tuple[list[AudioResult], list[Failure]]:
        results, failures = [], []
        for item in self.run(inputs, keep_waveform=keep_waveform):
            (failures if isinstance(item, Failure) else results).append(item)
        self.last_failures = failures
        return results, failures

    def tag(self, inputs) -> list[AudioResult]:
        """Clipwise probabilities (max over windows); skipped files are in ``last_failures``."""
        self._require("clipwise_output", "tagging")
        return self._collect(inputs)[0]

    def embed(self, inputs) -> list[AudioResult]:
        """Embeddings (mean over windows) and clipwise outputs; failures in ``last_failures``."""
        self._require("embedding", "embeddings")
        return self._collect(inputs)[0]

    def sed(self, inputs, *, keep_waveform: bool = False) -> list[AudioResult]:
        """Framewise probabilities (concatenated over windows); failures in ``last_failures``."""
        self._require("framewise_output", "sound event detection")
        return self._collect(inputs, keep_waveform=keep_waveform)[0]

    def describe(self) -> str:
        c = self.config
        return (f"{self.model_name} ({self.checkpoint or 'untrained, random weights'}), "
                f"{c.sample_rate} Hz, window {c.window_size}, hop {c.hop_size}, {c.mel_bins} mels, "
                f"{len(self.labels)} classes, {self.precision}, windows of "
                f"{self.window_samples / c.sample_rate:g} s every {self.hop_samples / c.sample_rate:g} s")


# ---------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------


def save_vectors(names: Sequence[str], matrix: np.ndarray, path, *, dataset: str = "embedding",
                 attrs: Mapping | None = None) -> list[str]:
    """Write one vector per input as ``.npy`` (+ ``<stem>.names.txt``) or HDF5 (``.h5``/``.hdf5``).

    HDF5 holds ``<dataset>`` (N, D) float32 and ``audio_name`` (N,) UTF-8 strings, plus
    ``attrs``. The ``.npy`` form keeps the names in a text file next to it, one per
    line, in row order. Returns the files written.
    """
    path = os.fspath(path)
    if len(names) == 0:
        raise ValueError(f"{path}: nothing to save (every input failed)")
    matrix = np.asarray(matrix, dtype=np.float32)
    ext = os.path.splitext(path)[1].lower()
    from .fsutil import atomic_path, atomic_write

    if ext in (".h5", ".hdf5"):
        import h5py

        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset(dataset, data=matrix)
            f.create_dataset("audio_name", data=np.array(list(names), dtype=object),
                             dtype=h5py.string_dtype("utf-8"))
            for key, value in (attrs or {}).items():
                f.attrs[key] = value
        return [path]
    if ext != ".npy":
        raise ValueError(f"{path}: vectors are saved as .npy or .h5/.hdf5")
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, matrix)
    names_path = path[:-4] + ".names.txt"
    with atomic_write(names_path) as f:
        f.writelines(name + "\n" for name in names)
    return [path, names_path]


def save_embeddings(results: Sequence[AudioResult], path, *, model_name: str = "",
                    checkpoint: str | None = None) -> list[str]:
    """Embeddings (mean over windows) of ``results``; see :func:`save_vectors` for the layout."""
    attrs = {"model": model_name, "checkpoint": checkpoint or "untrained (random weights)",
             "aggregation": "mean over windows"}
    return save_vectors([r.path for r in results], [r.embedding for r in results], path,
                        dataset="embedding", attrs=attrs)


def save_probabilities(results: Sequence[AudioResult], path, *, model_name: str = "",
                       checkpoint: str | None = None) -> list[str]:
    """All clipwise probabilities (max over windows); HDF5 also stores the label names."""
    attrs = {"model": model_name, "checkpoint": checkpoint or "untrained (random weights)",
             "aggregation": "max over windows"}
    written = save_vectors([r.path for r in results], [r.clipwise for r in results], path,
                           dataset="clipwise_output", attrs=attrs)
    if path.lower().endswith((".h5", ".hdf5")) and results:
        import h5py

        with h5py.File(path, "a") as f:
            f.create_dataset("labels", data=np.array(results[0].labels.names, dtype=object),
                             dtype=h5py.string_dtype("utf-8"))
    return written


def load_vectors(path, dataset: str = "embedding") -> tuple[list[str], np.ndarray]:
    """Read back what :func:`save_vectors` wrote: ``(names, matrix)``."""
    path = os.fspath(path)
    if path.lower().endswith((".h5", ".hdf5")):
        import h5py

        with h5py.File(path, "r") as f:
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["audio_name"][()]]
            return names, f[dataset][()]
    matrix = np.load(path, allow_pickle=False)
    with open(path[:-4] + ".names.txt", encoding="utf-8") as f:
        names = [line.rstrip("\n") for line in f]
    return names, matrix


def load_embeddings(path) -> tuple[list[str], np.ndarray]:
    """``(names, matrix)`` from a file written by :func:`save_embeddings`."""
    return load_vectors(path, "embedding")


# ---------------------------------------------------------------------------
# Plot
# ---------------------------------------------------------------------------


def plot_sed(result: AudioResult, path=None, *, top_k: int = 10, waveform: np.ndarray | None = None,
             title: str | None = None):
    """The official README figure: log-magnitude spectrogram over the top-k classes' framewise curves.

    The classes are the ``top_k`` with the highest framewise maximum. The STFT uses the
    model's own window and hop so both panels share the frame axis. Saved to ``path``
    (PNG) when given; returns the figure.
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import librosa

    wave = waveform if waveform is not None else result.waveform
    if wave is None:
        raise InferenceError(f"{result.path}: plot_sed needs the waveform (sed(..., keep_waveform=True))")
    if result.framewise is None:
        raise InferenceError(f"{result.path}: no framewise output to plot")
    hop = result.hop_size
    n_fft = 2 ** int(np.ceil(np.log2(3.2 * hop)))  # 1024 for hop 320, as the official figure
    stft = np.abs(librosa.stft(y=np.asarray(wave, np.float32), n_fft=n_fft, hop_length=hop, center=True))
    frames = result.framewise.shape[0]
    order = np.argsort(-result.framewise.max(axis=0), kind="stable")[:top_k]
    fig, axes = plt.subplots(2, 1, sharex=True, figsize=(10, 6))
    axes[0].matshow(np.log(stft + 1e-8), origin="lower", aspect="auto", cmap="jet")
    axes[0].set_ylabel("Frequency bins")
    axes[0].set_title(title or f"Log spectrogram: {os.path.basename(result.path)}")
    axes[1].matshow(result.framewise[:, order].T, origin="upper", aspect="auto", cmap="jet", vmin=0, vmax=1)
    fps = result.frames_per_second
    ticks = np.linspace(0, frames - 1, num=min(11, frames)).round().astype(int)
    axes[1].xaxis.set_ticks(ticks)
    axes[1].xaxis.set_ticklabels([f"{t / fps:.1f}" for t in ticks])
    axes[1].xaxis.set_ticks_position("bottom")
    axes[1].yaxis.set_ticks(np.arange(len(order)))
    axes[1].yaxis.set_ticklabels([result.labels.names[i] for i in order])
    axes[1].yaxis.grid(color="k", linestyle="solid", linewidth=0.3, alpha=0.3)
    axes[1].set_xlabel("Seconds")
    axes[1].set_xlim(0, frames - 1)
    fig.tight_layout()
    if path is not None:
        from .fsutil import atomic_path

        with atomic_path(path) as tmp:  # the format from the destination's name, not the temporary one
            fig.savefig(tmp, dpi=100, format=os.path.splitext(path)[1][1:] or plt.rcParams["savefig.format"])
        plt.close(fig)
    return fig
