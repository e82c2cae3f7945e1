"""The 527 AudioSet class labels, shipped inside the package.

The official ``panns_inference`` package fetched this list with ``wget`` at import
time; when that failed it silently built a model with zero classes. Here the CSV is
package data (``panns_core/resources/class_labels_indices.csv``), read from disk at
import, and validated: anything but 527 unique, consecutively indexed rows raises a
:class:`LabelsError` naming the file. A model with another class count only gets
generic names when the caller asks for them explicitly (:func:`labels_for`).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from importlib import resources

from .config import CLASSES_NUM

PACKAGED_CSV = "class_labels_indices.csv"


class LabelsError(ValueError):
    """The label list is missing or malformed (the message names the file)."""


@dataclass(frozen=True)
class LabelSet:
    """An ordered label list: ``ids[i]`` (AudioSet mid) and ``names[i]`` for class ``i``."""

    ids: tuple[str, ...]
    names: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.names)


def packaged_labels_path() -> str:
    """Path of the CSV shipped with the package (no network involved)."""
    return str(resources.files("panns_core").joinpath("resources", PACKAGED_CSV))


def _read_rows(path: str) -> list[dict]:
    if not os.path.isfile(path):
        raise LabelsError(
            f"{path}: AudioSet label file not found. It ships with panns_core "
            "(panns_core/resources/class_labels_indices.csv); reinstall the package or pass "
            "the path of a copy of Google's class_labels_indices.csv."
        )
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = {"index", "mid", "display_name"} - set(reader.fieldnames or [])
            if missing:
                raise LabelsError(
                    f"{path}: label file lacks column(s) {sorted(missing)}; "
                    "expected header index,mid,display_name"
                )
            return list(reader)
    except UnicodeDecodeError as exc:
        raise LabelsError(f"{path}: label file is not UTF-8 text ({exc})") from None


def load_labels(path: str | None = None, expected: int = CLASSES_NUM) -> LabelSet:
    """Read and validate a ``class_labels_indices.csv`` (default: the packaged copy).

    Validation is strict because a short or duplicated list silently misnames every
    output column: rows must number ``expected``, indices must be ``0..expected-1`` in
    order, and mids and names must be unique.
    """
    path = str(path) if path is not None else packaged_labels_path()
    rows = _read_rows(path)
    if len(rows) != expected:
        raise LabelsError(f"{path}: expected {expected} label rows, found {len(rows)}")
    ids, names = [], []
    for position, row in enumerate(rows):
        try:
            index = int(row["index"])
        except (TypeError, ValueError):
            raise LabelsError(f"{path}: row {position + 2}: index {row['index']!r} is not an integer") from None
        if index != position:
            raise LabelsError(f"{path}: row {position + 2}: index {index}, expected {position}")
        mid, name = (row["mid"] or "").strip(), (row["display_name"] or "").strip()
        if not mid or not name:
            raise LabelsError(f"{path}: row {position + 2}: empty mid or display_name")
        ids.append(mid)
        names.append(name)
    for kind, values in (("mid", ids), ("display_name", names)):
        if len(set(values)) != len(values):
            dupes = sorted({v for v in values if values.count(v) > 1})
            raise LabelsError(f"{path}: duplicate {kind} value(s): {dupes[:5]}")
    return LabelSet(ids=tuple(ids), names=tuple(names), source=path)


def generic_labels(num_classes: int) -> LabelSet:
    """Names ``class_0 .. class_<n-1>`` for a model that is not a 527-class AudioSet model."""
    if num_classes <= 0:
        raise LabelsError(f"a model needs at least one class, got num_classes={num_classes}")
    names = tuple(f"class_{i}" for i in range(num_classes))
    return LabelSet(ids=names, names=names, source="generic")


def labels_for(num_classes: int, *, path: str | None = None, allow_generic: bool = False) -> LabelSet:
    """The label set matching a model's output width.

    527 outputs get the AudioSet names. Any other width is an error unless
    ``allow_generic=True`` (then ``class_<i>``), so a mismatched checkpoint is noticed
    instead of being labelled wrongly.
    """
    if path is not None:
        labels = load_labels(path, expected=num_classes)
        return labels
    if num_classes == CLASSES_NUM:
        return _PACKAGED
    if allow_generic:
        return generic_labels(num_classes)
    raise LabelsError(
        f"the model has {num_classes} output classes but the AudioSet label list has "
        f"{CLASSES_NUM}; pass a labels CSV with {num_classes} rows or allow generic "
        "'class_<i>' names explicitly (allow_generic=True / --generic-labels)"
    )


_PACKAGED = load_labels()

LABELS: tuple[str, ...] = _PACKAGED.names
"""Display names of the 527 AudioSet classes, in output order."""

IDS: tuple[str, ...] = _PACKAGED.ids
"""AudioSet ontology ids (``/m/...``) of the 527 classes, in output order."""

id_to_index: dict[str, int] = {mid: i for i, mid in enumerate(IDS)}
index_to_label: dict[int, str] = dict(enumerate(LABELS))
label_to_index: dict[str, int] = {name: i for i, name in enumerate(LABELS)}
