"""Fine-tune a PANN on a labelled folder: progress, a report folder and a checkpoint ``panns tag`` reads.

``panns finetune my_sounds/labels.csv --strategy finetune --checkpoint Cnn14 --output runs/my_sounds``
(or :func:`finetune` in Python) trains one of the paper's four strategies on the
training side of the folder's first fold (or its ``train`` rows), shows a tqdm bar
with the loss and, at each evaluation, the held-out accuracy, and writes to the
output folder:

* ``predictions.csv``: file, true, predicted, then one probability column per class;
* ``per_class.csv``: precision, recall, F1 and support per class (scikit-learn);
* ``confusion_matrix.png`` and ``training_curve.png`` (loss per step against the
  uniform-guess loss ln K, held-out accuracy at each evaluation against chance);
* ``result.json``: the settings (and how the data-derived ones were chosen),
  accuracy, warnings, skipped files and timings;
* ``model.pth``: the trained model as a weights-only checkpoint (state_dict plus
  plain metadata: backbone name, audio config, label names, clip length, padding) that
  ``panns tag --checkpoint model.pth`` and ``Pretrained.load`` use with the
  folder's own label names (and ``--checkpoint`` of a further ``panns finetune``).

The folder is checked and locked before anything is read, a finished run in it is
never replaced without ``overwrite``, the report lands whole or not at all, and an
interrupted run (Ctrl-C, a kill) resumes from ``resume.pt`` to the result an
uninterrupted run gives (:mod:`panns_core.transfer.run_folder`).

Defaults that fit the data (measured in docs/transfer.md):

* ``clip_seconds``: the 95th percentile of the clip durations, outliers left out and
  capped at 10 s (:func:`data_clip_seconds`), rounded up to whole STFT hops (and at
  least what the backbone's pooling stack needs); files over 10 minutes are reported
  and left out without being decoded;
* learning rate and schedule per strategy (:data:`STRATEGY_DEFAULTS`): linear
  warm-up then cosine decay, a higher rate for scratch training;
* SpecAugment time stripes scaled to the clip length (``spec_augment="scaled"``;
  64 frames of a 10-s clip become 6 frames of a 1-s clip);
* BatchNorm statistics recomputed over the training clips before every evaluation
  and before saving (scratch, finetune): without it a briefly trained model in eval
  mode misclassified even its own training clips;
* clips shorter than ``clip_seconds`` repeated end to end (``pad="repeat"``) rather
  than padded with silence; the checkpoint records it and ``panns tag`` pads alike.

The held-out side is only monitored and reported; nothing is selected on it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from panns_core.fsutil import write_json
from panns_core.transfer.audio import ClipAudio
from panns_core.transfer.base import HOLDOUT, DatasetLayoutError
from panns_core.transfer.folder import parse_folder
from panns_core.transfer.run_folder import RESULT_FILE, OutputFolderError
from panns_core.transfer.runner import TransferConfig, TransferRunner
from panns_core.transfer.strategies import HIDDEN_LAYERS, check_strategy, is_frozen

TRANSFER_CHECKPOINT_KIND = "panns_transfer"
"""``kind`` entry of a fine-tuned checkpoint's metadata (``Pretrained.load`` checks it)."""

CLIP_PERCENTILE = 95.0
MAX_CLIP_SECONDS = 10.0
"""Longest default clip: AudioSet's clip length, what the released backbones were trained on (``--clip-seconds``
may ask for more)."""
MAX_FILE_SECONDS = 600.0
"""A longer file is a recording, not a clip: it is reported and left out (and not decoded, so memory stays bounded)."""
SAVE_EVERY_S = 300.0
"""Seconds between two saves of the training state (plus one on Ctrl-C and one when training ends)."""

STRATEGY_DEFAULTS = {
    "scratch": {"learning_rate": 1e-3, "warmup_fraction": 0.1, "schedule": "cosine", "precise_bn": True},
    # The backbone at the official fine-tuning rate, its new random head 10x faster (docs/transfer.md).
    "finetune": {"learning_rate": 1e-4, "new_head_learning_rate": 1e-3, "warmup_fraction": 0.1,
                 "schedule": "cosine", "precise_bn": True},
    "freeze_l1": {"head_learning_rate": 1e-3, "warmup_fraction": 0.0, "schedule": "cosine"},
    "freeze_l3": {"head_learning_rate": 1e-3, "warmup_fraction": 0.0, "schedule": "cosine"},
}
"""Learning rate and schedule per strategy for :func:`finetune` (see the table in docs/transfer.md)."""

DEFAULT_PAD = "repeat"
"""How :func:`finetune` brings clips shorter than ``clip_seconds`` to length (docs/transfer.md, measured)."""


# ----------------------------------------------------------------------------
# Defaults from the data
# ----------------------------------------------------------------------------


def data_clip_seconds(durations_s, sample_rate: int, hop_size: int, *, percentile: float = CLIP_PERCENTILE,
                      min_samples: int = 0, max_seconds: float = MAX_CLIP_SECONDS, explain: bool = False):
    """Clip length covering ``percentile`` % of the clips that are not outliers, rounded up to whole hops.

    Outliers are durations above Tukey's fence (third quartile + 1.5 interquartile
    ranges): one 2-hour recording among 0.5-s clips must not set every clip to its
    length. The percentile is an observed duration (``inverted_cdf``: the shortest
    length that at least ``percentile`` % of the kept clips fit in), capped at
    ``max_seconds``, then rounded up to whole hops and to at least ``min_samples``.
    With ``explain``: ``(seconds, how it was chosen)``.
    """
    durations = np.asarray(durations_s, dtype=np.float64)
    if durations.size == 0:
        raise ValueError("no clip durations to derive clip_seconds from")
    q1, q3 = np.percentile(durations, [25, 75])
    fence = q3 + 1.5 * (q3 - q1)
    kept = durations[durations <= fence]
    chosen = float(np.percentile(kept, percentile, method="inverted_cdf"))
    capped = min(chosen, max_seconds)
    samples = capped * sample_rate
    hops = max(1, math.ceil(samples / hop_size - 1e-9), math.ceil(min_samples / hop_size))
    seconds = hops * hop_size / sample_rate
    if not explain:
        return seconds
    note = f"{percentile:g}th percentile of {len(kept)} clip durations ({chosen:.3f} s"
    if len(kept) < len(durations):
        note += f"; {len(durations) - len(kept)} longer outlier(s), above {fence:.3f} s, left out"
    note += ")"
    if capped < chosen:
        note += f", capped at {max_seconds:g} s"
    return seconds, note + f", rounded up to whole {hop_size}-sample hops"


def diagnose(accuracy: float, test_labels, predicted, losses, classes_num: int, strategy: str,
             learning_rate: float | None = None, passes: float | None = None) -> list[str]:
    """Plain-language warnings when training did not learn, each with what to change.

    ``learning_rate`` (the rate used) lets the advice point back to the measured
    default when a lower one was given; ``passes`` (steps x batch / training clips)
    lets it say how many more steps the measurement suggests (docs/transfer.md).
    """
    warnings = []
    test_labels = np.asarray(test_labels)
    predicted = np.asarray(predicted)
    if len(test_labels) and classes_num > 1:
        chance = np.bincount(test_labels, minlength=classes_num).max() / len(test_labels)
        # two standard errors above the majority-class rate: below that, accuracy is indistinguishable from chance
        margin = 2.0 * math.sqrt(chance * (1.0 - chance) / len(test_labels))
        if accuracy <= chance + margin:
            warnings.append(
                f"held-out accuracy {accuracy:.3f} is at chance level (always guessing the most frequent "
                f"class gives {chance:.3f}) after {len(losses)} steps. "
                f"{_advice(strategy, learning_rate, passes, len(losses))}")
        top_share = np.bincount(predicted, minlength=classes_num).max() / len(predicted)
        if top_share >= 0.9:
            warnings.append(f"the model predicts one class for {top_share:.0%} of the held-out clips.")
    if losses and classes_num > 1:
        uniform = math.log(classes_num)
        tail = float(np.mean(losses[-max(1, len(losses) // 10):]))
        if tail >= uniform:
            warnings.append(
                f"the training loss ({tail:.3f} over the last 10% of steps) never fell below the "
                f"uniform-guess loss ln {classes_num} = {uniform:.3f}: the model did not fit even the "
                f"training clips. {_advice(strategy, learning_rate, passes, len(losses))}")
    return warnings


SCRATCH_PASSES = 20
"""Passes over the training clips after which scratch training learned in docs/transfer.md (0.96 on digits)."""


def _advice(strategy: str, learning_rate: float | None = None, passes: float | None = None,
            steps: int | None = None) -> str:
    if strategy == "scratch":
        advice = ("Training from random weights needs many passes over the clips (measured in docs/transfer.md: "
                  "Cnn6 on 160 digit-like clips stayed near chance after 6 passes, reached 0.79 held-out "
                  f"accuracy after 10 and 0.96 after {SCRATCH_PASSES}).")
        if passes is not None and steps and passes < SCRATCH_PASSES:
            wanted = int(math.ceil(steps * SCRATCH_PASSES / passes))
            advice += (f" This run made {passes:.1f} passes: raise --iterations to about {wanted}, or use a "
                       "pretrained --checkpoint with --strategy freeze_l3 or finetune.")
        else:
            advice += " Raise --iterations, or use a pretrained --checkpoint with --strategy freeze_l3 or finetune."
        default = STRATEGY_DEFAULTS["scratch"]["learning_rate"]
        if learning_rate is not None and learning_rate < default:
            advice += (f" --learning-rate {learning_rate:g} is below the scratch default {default:g}, which "
                       "lowered the training loss faster in that measurement.")
        return advice
    if strategy == "finetune":
        return ("Try more --iterations, or a higher backbone rate: --learning-rate 1e-3 when the backbone was "
                "trained briefly or on other sounds (measured in docs/transfer.md: 0.85 held-out accuracy "
                "against 0.30 at the default 1e-4 after 400 steps), or --strategy freeze_l3; check that "
                "--checkpoint is a pretrained model and that the labels match the files.")
    return ("Try --strategy freeze_l3 (if freeze_l1) or finetune, more --iterations, and check that "
            "--checkpoint is a pretrained model (a random backbone gives useless embeddings).")


# ----------------------------------------------------------------------------
# Checkpoint of a fine-tuned model
# ----------------------------------------------------------------------------


def save_transfer_checkpoint(path: str, model, *, backbone: str, backbone_overrides: dict, strategy: str,
                             classes, clip_seconds: float, pad: str = "zeros", **extra) -> str:
    """Write ``model`` (a TransferModel) with what :func:`load_transfer_model` needs to rebuild it.

    ``pad`` (how training brought short clips to ``clip_seconds``) is stored so that
    inference pads the same way (:func:`transfer_checkpoint_pad`).
    """
    from panns_core.audio_io import PAD_MODES

    if pad not in PAD_MODES:
        raise ValueError(f"pad must be one of {PAD_MODES}, got {pad!r}")
    from panns_core.checkpoints import save_checkpoint

    base_state = model.base.state_dict()
    overrides = dict(backbone_overrides)
    head = base_state.get("fc_audioset.weight")
    if head is not None:
        overrides["classes_num"] = int(head.shape[0])
    audio = dataclasses.asdict(model.audio_config) if model.audio_config is not None else {}
    save_checkpoint(path, model, kind=TRANSFER_CHECKPOINT_KIND, backbone=str(backbone),
                    backbone_overrides=overrides, strategy=strategy, hidden_layers=HIDDEN_LAYERS[strategy],
                    labels=[str(c) for c in classes], clip_seconds=float(clip_seconds), pad=pad, audio_config=audio,
                    **extra)
    return path


def transfer_checkpoint_pad(meta: dict) -> str:
    """How a fine-tuned checkpoint's training padded short clips; ``"zeros"`` for files written before ``pad``."""
    from panns_core.audio_io import PAD_MODES
    from panns_core.checkpoints import CheckpointError

    pad = meta.get("pad", "zeros")
    if pad not in PAD_MODES:
        raise CheckpointError(f"fine-tuned checkpoint has pad {pad!r}, expected one of {PAD_MODES}")
    return pad


def load_transfer_model(state: dict, meta: dict):
    """Rebuild a fine-tuned model from :func:`save_transfer_checkpoint`'s file (already read, weights-only).

    Returns ``(model, backbone_name, audio_config, label_names, clip_seconds)``; the
    model outputs class probabilities (softmax) as ``clipwise_output``.
    """
    from panns_core.checkpoints import CheckpointError, skip_weight_init
    from panns_core.models import TransferModel, create_model

    missing = [k for k in ("backbone", "labels", "hidden_layers", "clip_seconds") if k not in meta]
    if missing:
        raise CheckpointError(f"fine-tuned checkpoint lacks metadata {missing}")
    with skip_weight_init():  # every weight is overwritten by the file
        base = create_model(meta["backbone"], **dict(meta.get("backbone_overrides") or {}))
        model = TransferModel(base, len(meta["labels"]), hidden_layers=int(meta["hidden_layers"]),
                              output="softmax")
    model.load_state_dict(state, strict=True)
    return model.eval(), meta["backbone"], base.audio_config, list(meta["labels"]), float(meta["clip_seconds"])


# ----------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------


@dataclass
class FinetuneResult:
    """What :func:`finetune` returns: the trained model, the ``result.json`` content and the files written."""

    model: object
    result: dict
    paths: dict = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return self.result["accuracy"]


class FinetuneInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped :func:`finetune` after a step; its state is saved and a rerun continues from it."""

    def __init__(self, step: int, iterations: int, state_path: str):
        self.step, self.iterations, self.state_path = step, iterations, state_path
        super().__init__(f"interrupted after step {step} of {iterations}; the training state is saved in "
                         f"{state_path}: rerun the same command to continue from there")


def _backbone_of(backbone: str | None, checkpoint: str | None, overrides: dict) -> tuple[str, dict]:
    """The backbone's registry name and its overrides (a fine-tuned checkpoint brings its own)."""
    if not checkpoint:
        return backbone or "Cnn14", overrides
    from panns_core.checkpoints import infer_model_name, read_checkpoint

    state, meta = read_checkpoint(checkpoint)
    if meta.get("kind") == TRANSFER_CHECKPOINT_KIND:  # a `panns finetune` model.pth: fine-tune it further
        name = str(meta.get("backbone"))
        if backbone and backbone != name:
            raise ValueError(f"{checkpoint} is a fine-tuned {name} (written by panns finetune), not a {backbone}: "
                             "leave out --backbone")
        return name, {**dict(meta.get("backbone_overrides") or {}), **overrides}
    if backbone:
        return backbone, overrides
    name = infer_model_name(state, meta, os.path.basename(checkpoint))
    if name is None:
        raise ValueError(f"{checkpoint}: cannot tell which model it belongs to; pass backbone=/--backbone")
    return name, overrides


def _check_split(data, fold, csv_path: str, after: str = "") -> None:
    """Both sides of the split must hold clips, and at least two classes must be trained on."""
    train_idx, test_idx = data.split(fold)
    where = f"{csv_path}{after}"
    if data.protocol == HOLDOUT:
        hint = "mark some rows 'test' and the others 'train' in the fold column"
    else:
        hint = "give the clips at least two different fold numbers (or drop the fold column)"
    if len(test_idx) == 0:
        raise DatasetLayoutError(f"{where}: no held-out clips in fold {fold!r} (nothing to evaluate on); {hint}")
    if len(train_idx) == 0:
        raise DatasetLayoutError(f"{where}: no training clips outside fold {fold!r}; {hint}")
    trained = np.unique(data.labels[train_idx])
    if len(trained) < 2:
        only = data.classes[int(trained[0])]
        raise DatasetLayoutError(f"{where}: every training clip has the label {only!r}; a classifier needs "
                                 "training clips of at least two classes")


def _split_warnings(data, train_idx, test_idx) -> list[str]:
    train_counts = data.class_counts(train_idx)
    test_counts = data.class_counts(test_idx)
    warnings = []
    untrained = [c for c, n in zip(data.classes, train_counts) if n == 0]
    if untrained:
        warnings.append(f"{len(untrained)} class(es) have no training clip, so the model cannot predict them: "
                        f"{', '.join(map(repr, untrained[:5]))}; add clips of these classes, or move one of theirs "
                        "to the training side")
    untested = [c for c, n in zip(data.classes, test_counts) if n == 0 and c not in untrained]
    if untested:
        warnings.append(f"{len(untested)} class(es) have no held-out clip, so their accuracy is not measured: "
                        f"{', '.join(map(repr, untested[:5]))}")
    return warnings


def _long_clip_warning(durations: np.ndarray, clip_seconds: float) -> list[str]:
    longer = durations > clip_seconds + 1e-9
    if not longer.any():
        return []
    return [f"{int(longer.sum())} of {len(durations)} clips are longer than clip_seconds = {clip_seconds:g} s (up to "
            f"{durations.max():.1f} s): only their first {clip_seconds:g} s are used; cut long recordings into clips "
            "of their own (or raise --clip-seconds)"]


def _clips_digest(data) -> str:
    """Identifies the clips a run trains on: names, labels, folds and each file's size and time."""
    import hashlib

    rows = []
    for c in data.clips:
        st = os.stat(c.path)
        rows.append([c.clip_id, int(c.label), str(c.fold), st.st_size, st.st_mtime_ns])
    return hashlib.sha256(json.dumps([list(data.classes), rows]).encode()).hexdigest()


def _file_identity(path: str | None):
    if not path:
        return None
    st = os.stat(path)
    return [os.path.abspath(path), st.st_size, st.st_mtime_ns]


class _StopAfterStep:
    """While active, the first Ctrl-C asks the training loop to stop after its step (and save);
    a second one interrupts at once. Only the main thread can catch signals; elsewhere a no-op."""

    def __init__(self, notice=None):
        self.requested = False
        self._previous = None
        self._notice = notice

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self._notice is not None:
            self._notice("Ctrl-C: stopping after this step, once the training state is saved (Ctrl-C again stops "
                         "at once)")

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def finetune(csv_path: str, output: str, *, strategy: str = "finetune", backbone: str | None = None,
             checkpoint: str | None = None, iterations: int = 1000, batch_size: int = 16,
             clip_seconds: float | None = None, learning_rate: float | None = None,
             new_head_learning_rate: float | None = None, warmup_fraction: float | None = None,
             schedule: str | None = None, spec_augment: str = "scaled",
             precise_bn: bool | None = None, pad: str = DEFAULT_PAD,
             evaluations: int = 10, fold=None, seed: int = 0, backbone_overrides: dict | None = None,
             device: str = "auto", overwrite: bool = False, save_every_s: float = SAVE_EVERY_S,
             progress: bool = True, log=print) -> FinetuneResult:
    """Train ``strategy`` on a labelled folder and write the report folder ``output``; see the module docstring.

    ``None`` for ``clip_seconds``, ``learning_rate``, ``warmup_fraction``,
    ``schedule`` or ``precise_bn`` (BatchNorm statistics recomputed over the training
    clips before each evaluation; scratch and finetune) means the data-fitted default. ``pad``: clips
    shorter than ``clip_seconds`` are repeated end to end (``"repeat"``, default) or
    padded with silence (``"zeros"``); the saved model pads the same way when it tags
    files. ``evaluations`` is how often
    (evenly spaced) the held-out accuracy is computed during training. ``device``:
    ``auto`` (CUDA when present), ``cpu``, ``cuda`` ...; the saved model is on the CPU.

    ``output`` (:mod:`panns_core.transfer.run_folder`): a folder holding a finished run
    is refused unless ``overwrite``; one holding an interrupted run with the same
    settings is resumed, ending with the same result as an uninterrupted run. The
    training state is saved there every ``save_every_s`` seconds (0: after every
    step), on Ctrl-C (then :class:`FinetuneInterrupted` is raised) and when training
    ends.
    """
    from panns_core.models import model_info
    from panns_core.runtime import resolve_device
    from panns_core.transfer.run_folder import RunFolder

    check_strategy(strategy)
    if new_head_learning_rate is not None and is_frozen(strategy):
        raise ValueError(f"new_head_learning_rate is for strategies that train the backbone too; {strategy} "
                         "trains only its head: use learning_rate")
    for name, value in (("iterations", iterations), ("batch_size", batch_size), ("evaluations", evaluations)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value}")
    if clip_seconds is not None and not 0 < clip_seconds < float("inf"):
        raise ValueError(f"clip_seconds must be > 0, got {clip_seconds}")
    if checkpoint is None and strategy != "scratch":
        raise ValueError(f"strategy {strategy!r} starts from a pretrained model: give checkpoint= "
                         "(a released name such as Cnn14, or a .pth file); only 'scratch' starts from random weights")
    if not save_every_s >= 0:  # also NaN
        raise ValueError(f"save_every_s must be >= 0 seconds, got {save_every_s}")
    settings = dict(STRATEGY_DEFAULTS[strategy])
    for key, value in (("warmup_fraction", warmup_fraction), ("schedule", schedule), ("precise_bn", precise_bn)):
        if value is not None and (key != "precise_bn" or not is_frozen(strategy)):
            settings[key] = value
    if learning_rate is not None:
        settings["head_learning_rate" if is_frozen(strategy) else "learning_rate"] = learning_rate
    if new_head_learning_rate is not None:
        settings["new_head_learning_rate"] = new_head_learning_rate
    TransferConfig(spec_augment=spec_augment, pad=pad, **settings)  # bad rates, schedules ...: refused before any work
    say = log or (lambda *_: None)
    device = str(resolve_device(device))
    t0 = time.perf_counter()
    with RunFolder(output, overwrite) as folder:  # checked and locked before anything is read or trained
        backbone, overrides = _backbone_of(backbone, checkpoint, dict(backbone_overrides or {}))
        audio_config = model_info(backbone).config
        sample_rate = int(overrides.get("sample_rate", audio_config.sample_rate))
        hop_size = int(overrides.get("hop_size", audio_config.hop_size))

        data = parse_folder(csv_path)
        fold = data.folds[0] if fold is None else fold
        _check_split(data, fold, csv_path)
        audio = ClipAudio(sample_rate)
        data = audio.load(data, max_seconds=max(MAX_CLIP_SECONDS, clip_seconds or 0.0),
                          max_file_seconds=MAX_FILE_SECONDS)
        for path, reason in data.skipped:
            say(f"skipped {path}: {reason}")
        if not data.clips:
            raise DatasetLayoutError(f"{csv_path}: no readable clips")
        _check_split(data, fold, csv_path, after=" (after leaving out the skipped files)")
        durations = np.array([audio.durations[c.clip_id] for c in data.clips])

        cfg = TransferConfig(backbone=backbone, checkpoint=checkpoint, backbone_overrides=overrides,
                             iterations=iterations, head_iterations=iterations, batch_size=batch_size,
                             spec_augment=spec_augment, device=device, pad=pad, **settings)
        runner = TransferRunner(data, audio, cfg)
        min_samples = int(getattr(runner.pretrained(), "min_samples", 0) or 0)
        if clip_seconds is None:
            clip_seconds, clip_note = data_clip_seconds(durations, sample_rate, hop_size, min_samples=min_samples,
                                                        explain=True)
            clip_note += f", at least {min_samples} samples for {backbone}" if min_samples else ""
        else:
            clip_note = "given"
        cfg.clip_seconds = float(clip_seconds)
        runner.data = data = dataclasses.replace(data, clip_seconds=float(clip_seconds))
        say(f"{len(data.clips)} clips, {len(data.classes)} classes, durations {durations.min():.2f}-"
            f"{durations.max():.2f} s; clip_seconds = {clip_seconds:g} ({clip_note})")

        train_idx, test_idx = data.split(fold)
        test_labels = data.labels[test_idx]
        data_warnings = _split_warnings(data, train_idx, test_idx) + _long_clip_warning(durations, clip_seconds)
        for warning in data_warnings:
            say(f"WARNING: {warning}")
        rate = settings.get("head_learning_rate", settings.get("learning_rate"))
        head_rate = settings.get("new_head_learning_rate")
        fingerprint = {
            "csv": os.path.abspath(csv_path), "clips": _clips_digest(data), "strategy": strategy,
            "backbone": backbone, "backbone_overrides": json.dumps(overrides, sort_keys=True),
            "checkpoint": _file_identity(checkpoint), "iterations": int(iterations), "batch_size": int(batch_size),
            "clip_seconds": float(clip_seconds), "settings": json.dumps(settings, sort_keys=True),
            "spec_augment": spec_augment, "pad": pad, "seed": int(seed), "evaluations": int(evaluations),
            "fold": str(fold)}
        saved = folder.resume_state(fingerprint)
        start = int(saved["loop"]["step"]) if saved else 0
        history: list[tuple[int, float]] = [(int(s), float(a)) for s, a in saved["history"]] if saved else []
        train_before = float(saved["train_s"]) if saved else 0.0
        if saved:
            say(f"resuming the interrupted run in {output} after step {start} of {iterations}")
        say(f"{strategy} {backbone}: {iterations} steps of batch {batch_size}, lr {rate:g}"
            + (f" (new head {head_rate:g})" if head_rate is not None else "") + " "
            f"({settings['schedule']}, warm-up {settings['warmup_fraction']:.0%}), SpecAugment {spec_augment}, "
            f"short clips padded by {pad}; "
            f"train {len(train_idx)} clips, held-out fold {fold}: {len(test_idx)} clips")
        if is_frozen(strategy):
            say(f"computing the frozen {backbone} embeddings of {len(data.clips)} clips once ...")

        from tqdm.auto import tqdm

        every = max(1, iterations // evaluations)
        bar = tqdm(total=iterations, initial=start, desc=f"{strategy} {backbone}", unit="step",
                   disable=not progress, file=sys.stderr, dynamic_ncols=True)
        recent: list[float] = list(saved["loop"]["losses"]) if saved else []
        t_train = time.perf_counter()
        last_save = [time.monotonic()]

        def on_step(step: int, loss: float, evaluate) -> None:
            recent.append(loss)
            bar.update(1)
            evaluated = step % every == 0 or step == iterations
            if evaluated:
                # Recomputing BatchNorm statistics and predicting the held-out clips can take minutes: show it.
                with tqdm(total=evaluate.segments, desc=f"evaluating after step {step}", unit="clip", leave=False,
                          disable=not progress or not evaluate.segments, file=sys.stderr,
                          dynamic_ncols=True) as eval_bar:
                    probs = evaluate(eval_bar.update)
                history.append((step, float(np.mean(probs.argmax(axis=1) == test_labels))))
            if evaluated or step % 5 == 0 or step == 1:
                postfix = {"loss": f"{np.mean(recent[-every:]):.3f}"}
                if history:
                    postfix["val_acc"] = f"{history[-1][1]:.3f}"
                bar.set_postfix(postfix, refresh=evaluated)

        def on_snapshot(step: int, snapshot) -> None:
            due = stop.requested or step == iterations or time.monotonic() - last_save[0] >= save_every_s
            if not due:
                return
            folder.write_state(fingerprint, loop=snapshot(), history=[list(h) for h in history],
                               train_s=train_before + time.perf_counter() - t_train)
            last_save[0] = time.monotonic()
            if stop.requested and step < iterations:
                raise FinetuneInterrupted(step, iterations, folder.state_path)

        try:
            with _StopAfterStep(log) as stop:
                row, model = runner.run(strategy, fold, seed=seed, return_model=True, on_step=on_step,
                                        resume=saved["loop"] if saved else None, on_snapshot=on_snapshot)
        finally:
            bar.close()
        train_s = train_before + time.perf_counter() - t_train
        model = model.cpu()
        probs, losses = runner.last_probabilities, runner.last_losses

        predicted = probs.argmax(axis=1)
        accuracy = float(np.mean(predicted == test_labels))
        passes = iterations * batch_size / max(1, len(train_idx))
        warnings = data_warnings + diagnose(accuracy, test_labels, predicted, losses, len(data.classes), strategy,
                                            learning_rate=rate, passes=passes)
        staging = folder.new_staging()
        try:
            paths = write_report(staging, data, test_idx, probs, losses, history)
            save_transfer_checkpoint(os.path.join(staging, "model.pth"), model, backbone=backbone,
                                     backbone_overrides=overrides, strategy=strategy, classes=data.classes,
                                     clip_seconds=clip_seconds, pad=pad, accuracy=accuracy, iterations=iterations)
            paths["checkpoint"] = os.path.join(staging, "model.pth")
            result = {
                "csv": os.path.abspath(csv_path), "strategy": strategy, "backbone": backbone,
                "checkpoint": checkpoint, "classes": list(data.classes), "fold": str(fold),
                "train_clips": int(len(train_idx)), "test_clips": int(len(test_idx)),
                "accuracy": accuracy, "accuracy_measured": f"held-out fold {fold} after step {iterations}: the last "
                                                           "val_acc of the progress bar",
                "chance": float(np.bincount(test_labels, minlength=len(data.classes)).max() / len(test_labels)),
                "uniform_guess_loss": math.log(len(data.classes)),
                "first_loss": row["first_loss"], "last_loss": row["last_loss"],
                "history": [{"step": s, "accuracy": a} for s, a in history],
                "clip_seconds": float(clip_seconds), "clip_seconds_from": clip_note,
                "durations_s": {"min": float(durations.min()), "median": float(np.median(durations)),
                                "p95": float(np.percentile(durations, CLIP_PERCENTILE, method="inverted_cdf")),
                                "max": float(durations.max())},
                "settings": {**settings, "iterations": iterations, "batch_size": batch_size,
                             "spec_augment": spec_augment, "pad": pad, "seed": seed, "backbone_overrides": overrides,
                             "device": device, "evaluations": evaluations},
                "warnings": warnings, "skipped": [[p, r] for p, r in data.skipped],
                "resumed_from_step": start or None,
                "train_s": round(train_s, 2), "wall_s": round(time.perf_counter() - t0, 2),
                "files": {k: os.path.basename(v) for k, v in paths.items()} | {"result": RESULT_FILE},
            }
            write_json(result, os.path.join(staging, RESULT_FILE), indent=1)
        except OSError as exc:
            folder.discard_staging()
            raise OutputFolderError(
                f"cannot write the report into {output} ({exc.strerror or exc}); nothing in {output} was changed, "
                f"and the trained model is kept in {folder.state_path}: free some space and rerun the same command "
                "to write the report") from None
        folder.publish()
    paths = {k: os.path.join(output, os.path.basename(v)) for k, v in paths.items()}
    paths["result"] = os.path.join(output, RESULT_FILE)
    say(f"held-out accuracy {accuracy:.3f} (chance {result['chance']:.3f}) after {iterations} steps "
        f"({train_s:.1f} s of training; the last val_acc shown); report in {output}, model {paths['checkpoint']}")
    for warning in warnings:
        say(f"WARNING: {warning}")
    return FinetuneResult(model, result, paths)


def write_report(output: str, data, test_idx, probs: np.ndarray, losses, history) -> dict:
    """predictions.csv, per_class.csv, confusion_matrix.png and training_curve.png under ``output``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import pandas as pd
    from sklearn.metrics import ConfusionMatrixDisplay, precision_recall_fscore_support

    classes = list(data.classes)
    labels = data.labels[test_idx]
    predicted = probs.argmax(axis=1)
    table = pd.DataFrame({"file": [data.clips[int(i)].clip_id for i in test_idx],
                          "true": [classes[k] for k in labels], "predicted": [classes[k] for k in predicted]})
    for k, name in enumerate(classes):
        table[f"p_{name}"] = probs[:, k]
    paths = {"predictions": os.path.join(output, "predictions.csv"),
             "per_class": os.path.join(output, "per_class.csv"),
             "confusion_matrix": os.path.join(output, "confusion_matrix.png"),
             "training_curve": os.path.join(output, "training_curve.png")}
    table.to_csv(paths["predictions"], index=False)

    index = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=index,
                                                                     zero_division=0)
    pd.DataFrame({"class": classes, "precision": precision, "recall": recall, "f1": f1,
                  "support": support}).to_csv(paths["per_class"], index=False)

    size = max(4.0, 0.45 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(labels, predicted, labels=index, display_labels=classes, ax=ax,
                                            colorbar=False, xticks_rotation="vertical")
    ax.set_title(f"held-out clips ({len(labels)})")
    fig.tight_layout()
    fig.savefig(paths["confusion_matrix"], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.6))
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, color="tab:blue", alpha=0.3, lw=0.8)
    window = max(1, len(losses) // 20)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    ax.plot(steps[window - 1:], smooth, color="tab:blue", label="training loss")
    ax.axhline(math.log(len(classes)), color="tab:blue", ls=":", label=f"uniform guess ln {len(classes)}")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy")
    if history:
        acc_ax = ax.twinx()
        acc_ax.plot([s for s, _ in history], [a for _, a in history], "o-", color="tab:red",
                    label="held-out accuracy")
        acc_ax.axhline(np.bincount(labels, minlength=len(classes)).max() / max(1, len(labels)), color="tab:red",
                       ls=":", label="chance")
        acc_ax.set_ylim(0, 1)
        acc_ax.set_ylabel("accuracy")
        acc_ax.legend(loc="upper right", fontsize=8)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(paths["training_curve"], dpi=100)
    plt.close(fig)
    return paths
