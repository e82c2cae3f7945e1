"""Bring your own data: a folder of audio files plus a CSV of ``filename, label[, fold]``.

This is how users fine-tune a PANN on their own sounds: the result is a
:class:`~panns_core.transfer.base.TransferData` like the paper's datasets, so
every strategy, the few-shot curves and the runner work on it unchanged.

* ``filename`` is relative to the CSV's folder (or ``audio_dir``); any format
  :func:`panns_core.audio_io.load_audio` reads, any sample rate, mono or stereo.
* ``label`` is any string; classes are sorted by name.
* ``fold`` (optional): integers give cross-validation folds; ``train``/``test``
  gives a hold-out split; without the column, clips are dealt into ``folds``
  stratified folds with a fixed seed.

Rows whose file is missing are reported in ``skipped``; unreadable audio is
reported and skipped when decoded (:class:`~panns_core.transfer.audio.ClipAudio`).

Clips are identified by their resolved path: ``x.flac``, ``./x.flac`` and a symlink
to it are one clip. Listed again with the same label and fold, the repeat is
dropped and reported in ``skipped``; with another label or fold (which would put
one clip on both sides of the split) the CSV is refused, naming both lines. A CSV
with fewer than two classes is refused (there is nothing to tell apart).
"""

from __future__ import annotations

import os

import numpy as np

from panns_core.transfer.base import (CROSS_VALIDATION, HOLDOUT, TEST, TRAIN, Clip, DatasetLayoutError,
                                      TransferData)
from panns_core.transfer.datasets import read_table


def stratified_folds(labels, folds: int, seed: int = 0) -> np.ndarray:
    """Fold numbers 1..``folds`` dealt round-robin within each class after a seeded shuffle.

    A class with a single clip gets the last fold, not the first: fold 1 is the
    held-out side of ``panns finetune``, and its only clip must be trained on.
    """
    labels = np.asarray(labels)
    out = np.zeros(len(labels), dtype=np.int64)
    rng = np.random.default_rng(seed)
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        idx = idx[rng.permutation(len(idx))]
        out[idx] = np.arange(len(idx)) % folds + 1 if len(idx) > 1 else folds
    return out


def _same_file_key(path: str) -> str:
    """What identifies a listed file: its resolved path (``./x.wav``, ``x.wav`` and links to it agree)."""
    return os.path.normcase(os.path.realpath(path))


def _drop_repeats(rows: list[dict], audio_dir: str, csv_path: str, has_fold: bool) -> tuple[list, list]:
    """Rows listing a file already listed: dropped when they agree, refused when they contradict."""
    first: dict[str, tuple[int, dict]] = {}
    kept, repeats = [], []
    for line, row in enumerate(rows, start=2):
        key = _same_file_key(os.path.join(audio_dir, row["filename"]))
        if key not in first:
            first[key] = (line, row)
            kept.append((line, row))
            continue
        line0, row0 = first[key]
        same = (f"{csv_path}: line {line} lists {row['filename']!r}, the same file as line {line0} "
                f"({row0['filename']!r})")
        if row["label"] != row0["label"]:
            raise DatasetLayoutError(f"{same} with another label ({row['label']!r}, there {row0['label']!r}); "
                                     "list each file once")
        if has_fold and (_parse_fold(row.get("fold", ""), csv_path, line)
                         != _parse_fold(row0.get("fold", ""), csv_path, line0)):
            raise DatasetLayoutError(f"{same} in another fold ({row.get('fold')!r}, there {row0.get('fold')!r}): "
                                     "it would be trained on and tested; list each file once")
        repeats.append((os.path.join(audio_dir, row["filename"]),
                        f"listed again on line {line} (first on line {line0} as {row0['filename']!r}); used once"))
    return kept, repeats


def _parse_fold(value: str, csv_path: str, line: int):
    low = value.lower()
    if low in (TRAIN, TEST):
        return low
    try:
        return int(value)
    except ValueError:
        raise DatasetLayoutError(f"{csv_path}: line {line}: fold {value!r} is neither an integer nor "
                                 "'train'/'test'") from None


def parse_folder(csv_path: str, audio_dir: str | None = None, *, task: str = "folder", folds: int = 5,
                 seed: int = 0, clip_seconds: float = 10.0, segment_seconds: float | None = None) -> TransferData:
    """Parse a labelled folder; see the module docstring for the CSV format."""
    if os.path.isdir(csv_path):
        csv_path = os.path.join(csv_path, "labels.csv")
    rows = read_table(csv_path, ("filename", "label"))
    if not rows:
        raise DatasetLayoutError(f"{csv_path}: no rows")
    audio_dir = audio_dir or os.path.dirname(os.path.abspath(csv_path))
    for line, row in enumerate(rows, start=2):
        if not row["label"]:
            raise DatasetLayoutError(f"{csv_path}: line {line}: empty label for {row['filename']!r}")
        if not row["filename"]:
            raise DatasetLayoutError(f"{csv_path}: line {line}: empty filename")
    classes = sorted({r["label"] for r in rows})
    index = {c: i for i, c in enumerate(classes)}
    has_fold = any(r.get("fold") for r in rows)
    numbered, repeats = _drop_repeats(rows, audio_dir, csv_path, has_fold)
    rows = [r for _, r in numbered]
    if has_fold:
        fold_values = [_parse_fold(r.get("fold", ""), csv_path, line) for line, r in numbered]
        kinds = {isinstance(v, str) for v in fold_values}
        if len(kinds) > 1:
            raise DatasetLayoutError(f"{csv_path}: the fold column mixes integers and 'train'/'test'")
        protocol = HOLDOUT if kinds == {True} else CROSS_VALIDATION
    else:
        fold_values = list(stratified_folds([index[r["label"]] for r in rows], folds, seed))
        protocol = CROSS_VALIDATION
    if len(classes) < 2:
        raise DatasetLayoutError(f"{csv_path}: every row has the label {classes[0]!r}; a classifier needs at "
                                 "least two classes")
    clips, skipped = [], list(repeats)
    for row, fold in zip(rows, fold_values):
        path = os.path.join(audio_dir, row["filename"])
        if os.path.isfile(path):
            clips.append(Clip(os.path.normpath(row["filename"]), os.path.abspath(path), index[row["label"]],
                              fold if isinstance(fold, str) else int(fold)))
        else:
            skipped.append((path, "listed in the CSV but the audio file is missing"))
    return TransferData(task, classes, clips, protocol, metric="accuracy", clip_seconds=clip_seconds,
                        segment_seconds=segment_seconds, root=audio_dir, skipped=skipped)
