"""The shared data model of the transfer tasks: clips, task descriptions, protocols.

Every parser (six paper datasets and the generic folder dataset) returns a
:class:`TransferData`: the list of clips with their class and fold, the class
names and the evaluation protocol. Everything downstream (audio loading,
embedding cache, strategies, few-shot curves) works on that one structure, so a
user's own folder of audio is trained exactly like ESC-50.

Two protocols cover the paper:

* ``"cross_validation"``: each clip has an integer fold; fold ``f`` is tested on
  the clips of fold ``f`` after training on all other folds (ESC-50 5 folds,
  GTZAN 10 folds, RAVDESS 4 folds by actor).
* ``"holdout"``: each clip is in ``"train"`` or ``"test"``; there is one
  evaluation fold called ``"test"`` (DCASE 2019 Task 1 train/evaluate, DCASE
  2018 Task 2 train/test, MSoS development/evaluation).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

CROSS_VALIDATION = "cross_validation"
HOLDOUT = "holdout"
PROTOCOLS = (CROSS_VALIDATION, HOLDOUT)
TRAIN, TEST = "train", "test"

TARGET_SAMPLE_RATE = 32000
"""The paper resamples every transfer dataset to 32 kHz mono."""


class DatasetLayoutError(ValueError):
    """The files on disk do not match the dataset's documented layout.

    The message names the file or folder and what is wrong with it.
    """


@dataclass(frozen=True)
class Clip:
    """One labelled audio file.

    ``clip_id`` is unique within a dataset (usually the path relative to the
    dataset root); ``fold`` is an int for cross-validation datasets and
    ``"train"``/``"test"`` for hold-out datasets; ``group`` names the unit that
    must never be split between train and test (the actor for RAVDESS, the
    source recording for ESC-50), defaulting to the clip itself.
    """

    clip_id: str
    path: str
    label: int
    fold: object
    group: str = ""
    meta: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass
class TransferData:
    """A parsed transfer dataset plus its protocol; see the module docstring.

    ``clip_seconds`` is the length every clip is padded or cut to; with
    ``segment_seconds`` set (DCASE 2018 Task 2) clips keep their own length,
    training uses ``segment_seconds`` crops and predictions are averaged over
    consecutive segments. ``skipped`` lists ``(path, reason)`` for files that
    were reported and left out.
    """

    task: str
    classes: list[str]
    clips: list[Clip]
    protocol: str
    metric: str = "accuracy"
    clip_seconds: float = 10.0
    segment_seconds: float | None = None
    root: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"{self.task}: unknown protocol {self.protocol!r}; known: {PROTOCOLS}")
        if not self.classes:
            raise DatasetLayoutError(f"{self.task}: no classes found under {self.root or '?'}")
        ids = [c.clip_id for c in self.clips]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise DatasetLayoutError(f"{self.task}: duplicate clip ids, e.g. {dupes}")
        for c in self.clips:
            if not 0 <= c.label < len(self.classes):
                raise DatasetLayoutError(f"{c.path}: label index {c.label} outside 0..{len(self.classes) - 1}")

    # -- protocol -------------------------------------------------------------

    @property
    def folds(self) -> list:
        """The evaluation folds: the sorted CV folds, or ``["test"]`` for a hold-out split."""
        if self.protocol == HOLDOUT:
            return [TEST]
        return sorted({c.fold for c in self.clips})

    def split(self, fold) -> tuple[np.ndarray, np.ndarray]:
        """Indices ``(train, test)`` into :attr:`clips` for one evaluation fold."""
        folds = np.array([c.fold for c in self.clips], dtype=object)
        if self.protocol == HOLDOUT:
            if fold != TEST:
                raise ValueError(f"{self.task}: a hold-out dataset has the single fold 'test', not {fold!r}")
            train = np.flatnonzero(folds == TRAIN)
            test = np.flatnonzero(folds == TEST)
        else:
            if fold not in self.folds:
                raise ValueError(f"{self.task}: fold {fold!r} not in {self.folds}")
            test = np.flatnonzero(folds == fold)
            train = np.flatnonzero(folds != fold)
        return train, test

    # -- views ----------------------------------------------------------------

    @property
    def labels(self) -> np.ndarray:
        return np.array([c.label for c in self.clips], dtype=np.int64)

    def without(self, bad: Iterable[tuple[str, str]]) -> "TransferData":
        """A copy without the clips whose path is in ``bad`` (``(path, reason)`` pairs), recorded in ``skipped``."""
        bad = list(bad)
        if not bad:
            return self
        bad_paths = {os.path.abspath(p) for p, _ in bad}
        kept = [c for c in self.clips if os.path.abspath(c.path) not in bad_paths]
        return dataclasses.replace(self, clips=kept, skipped=list(self.skipped) + bad)

    def subset(self, indices: Sequence[int]) -> "TransferData":
        """A copy holding only ``clips[indices]`` (same classes and protocol)."""
        return dataclasses.replace(self, clips=[self.clips[int(i)] for i in indices])

    def class_counts(self, indices: Sequence[int] | None = None) -> np.ndarray:
        labels = self.labels if indices is None else self.labels[np.asarray(indices, dtype=np.int64)]
        return np.bincount(labels, minlength=len(self.classes))

    def summary(self) -> dict:
        """Counts a notebook can print: clips, classes, folds and clips per fold."""
        per_fold = {}
        for c in self.clips:
            per_fold[str(c.fold)] = per_fold.get(str(c.fold), 0) + 1
        return {"task": self.task, "clips": len(self.clips), "classes": len(self.classes),
                "protocol": self.protocol, "folds": [str(f) for f in self.folds],
                "clips_per_fold": per_fold, "skipped": len(self.skipped), "metric": self.metric}


def check_disjoint(data: TransferData) -> None:
    """Raise if any fold has a clip (or a ``group``) in both its train and test side.

    This is the paper's protocol invariant; tests and the runner call it.
    """
    for fold in data.folds:
        train, test = data.split(fold)
        train_ids = {data.clips[i].clip_id for i in train}
        test_ids = {data.clips[i].clip_id for i in test}
        both = train_ids & test_ids
        if both:
            raise AssertionError(f"{data.task} fold {fold}: clips in train and test: {sorted(both)[:5]}")
        train_groups = {data.clips[i].group for i in train if data.clips[i].group}
        test_groups = {data.clips[i].group for i in test if data.clips[i].group}
        if train_groups & test_groups:
            raise AssertionError(
                f"{data.task} fold {fold}: groups in train and test: {sorted(train_groups & test_groups)[:5]}")


def require_file(path: str, what: str) -> str:
    """``path`` if it is a file, else a :class:`DatasetLayoutError` naming it and ``what`` it should be."""
    if not os.path.isfile(path):
        raise DatasetLayoutError(f"{path}: missing ({what})")
    return path


def require_dir(path: str, what: str) -> str:
    if not os.path.isdir(path):
        raise DatasetLayoutError(f"{path}: missing folder ({what})")
    return path
