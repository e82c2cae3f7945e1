"""AudioSet metadata: official URLs and parsers for the official CSV files.

The official files have quirks that the parsers below handle in one place:

* segments CSVs (``eval_segments.csv``, ``balanced_train_segments.csv``,
  ``unbalanced_train_segments.csv``) start with three ``#`` header lines and
  separate fields with ``", "``; the label list is one double-quoted field
  holding comma-separated mids;
* ``class_labels_indices.csv`` is ``index,mid,display_name`` with quoted names
  that may contain commas;
* ``qa_true_counts.csv`` is ``label_id,num_rated,num_true`` (one row per class).

Every parser raises :class:`MetadataError` naming the file and line on bad input,
because a silently mis-parsed label list would train the wrong task.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

BASE_URL = "http://storage.googleapis.com/us_audioset/youtube_corpus/v1"
"""Root of Google's AudioSet release (v1 CSVs, ontology release used by the paper)."""

URLS = {
    "eval_segments.csv": f"{BASE_URL}/csv/eval_segments.csv",
    "balanced_train_segments.csv": f"{BASE_URL}/csv/balanced_train_segments.csv",
    "unbalanced_train_segments.csv": f"{BASE_URL}/csv/unbalanced_train_segments.csv",
    "class_labels_indices.csv": f"{BASE_URL}/csv/class_labels_indices.csv",
    "qa_true_counts.csv": f"{BASE_URL}/qa/qa_true_counts.csv",
    "rerated_video_ids.txt": f"{BASE_URL}/qa/rerated_video_ids.txt",
}
"""Official metadata files, keyed by the file name used under ``<data_root>/metadata``."""

SPLITS = ("eval", "balanced_train", "unbalanced_train")
"""Split names; the segments CSV of split ``s`` is ``<s>_segments.csv``."""

SEGMENTS_HEADER = "# YTID, start_seconds, end_seconds, positive_labels"

PAPER_SPLIT_SIZES = {"eval": 20371, "balanced_train": 22160, "unbalanced_train": 2041789}
"""Rows of the official CSVs (README of the official code)."""


class MetadataError(ValueError):
    """A metadata file is malformed; the message names the file and the line."""


@dataclass(frozen=True)
class Segment:
    """One row of a segments CSV."""

    ytid: str
    start_seconds: float
    end_seconds: float
    labels: tuple  # mids, in file order

    @property
    def audio_name(self) -> str:
        """The file name the downloader writes (leading ``Y``: some ids start with ``-``)."""
        return audio_name_for(self.ytid)

    @property
    def duration(self) -> float:
        return self.end_seconds - self.start_seconds


@dataclass
class ClassLabels:
    """The class list of a dataset, with mid <-> index mappings."""

    mids: list
    names: list
    mid_to_index: dict = field(init=False)

    def __post_init__(self):
        self.mid_to_index = {m: i for i, m in enumerate(self.mids)}

    def __len__(self) -> int:
        return len(self.mids)

    @property
    def classes_num(self) -> int:
        return len(self.mids)

    def index_of(self, mid: str) -> int:
        return self.mid_to_index[mid]

    def multi_hot(self, mids: Iterable[str], *, source: str = "") -> np.ndarray:
        """Bool target vector; unknown mids are an error naming ``source``."""
        target = np.zeros(len(self.mids), dtype=bool)
        for mid in mids:
            try:
                target[self.mid_to_index[mid]] = True
            except KeyError:
                raise MetadataError(f"{source}: unknown label id {mid!r}") from None
        return target


def audio_name_for(ytid: str) -> str:
    """``Y<ytid>.wav``, the official naming of downloaded clips."""
    return f"Y{ytid}.wav"


def ytid_from_audio_name(name: str) -> str:
    """Inverse of :func:`audio_name_for` (accepts bytes from HDF5 too)."""
    if isinstance(name, bytes):
        name = name.decode()
    base = os.path.basename(name)
    if base.endswith(".wav"):
        base = base[:-4]
    return base[1:] if base.startswith("Y") else base


def read_class_labels(path: str) -> ClassLabels:
    """Parse ``class_labels_indices.csv`` (``index,mid,display_name``).

    Indices must be 0..K-1 in order: the row order is the target column order
    of every model and HDF5 file, so a gap would shift labels silently.
    """
    mids, names = [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:3]] != ["index", "mid", "display_name"]:
            raise MetadataError(f"{path}: expected header 'index,mid,display_name', got {header!r}")
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != 3:
                raise MetadataError(f"{path}:{line_no}: expected 3 fields, got {len(row)}: {row!r}")
            try:
                index = int(row[0])
            except ValueError:
                raise MetadataError(f"{path}:{line_no}: index {row[0]!r} is not an integer") from None
            if index != len(mids):
                raise MetadataError(f"{path}:{line_no}: index {index} out of order (expected {len(mids)})")
            mids.append(row[1].strip())
            names.append(row[2])
    if not mids:
        raise MetadataError(f"{path}: no classes")
    if len(set(mids)) != len(mids):
        raise MetadataError(f"{path}: duplicate mids")
    return ClassLabels(mids, names)


def write_class_labels(path: str, mids: Sequence[str], names: Sequence[str]) -> None:
    """Write ``class_labels_indices.csv`` in the official quoting (names always quoted)."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("index,mid,display_name\n")
        for i, (mid, name) in enumerate(zip(mids, names)):
            escaped = name.replace('"', '""')
            f.write(f'{i},{mid},"{escaped}"\n')


def _parse_segment_line(line: str, path: str, line_no: int) -> Segment:
    """One data line: ``YTID, start, end, "mid1,mid2"``."""
    parts = line.split(", ", 3)
    if len(parts) != 4:
        raise MetadataError(f"{path}:{line_no}: expected 'YTID, start, end, \"labels\"', got {line!r}")
    ytid, start, end, labels = (p.strip() for p in parts)
    if not ytid:
        raise MetadataError(f"{path}:{line_no}: empty YouTube id")
    try:
        start_s, end_s = float(start), float(end)
    except ValueError:
        raise MetadataError(f"{path}:{line_no}: start/end {start!r}/{end!r} are not numbers") from None
    if end_s <= start_s:
        raise MetadataError(f"{path}:{line_no}: end {end_s} <= start {start_s}")
    if len(labels) < 2 or labels[0] != '"' or labels[-1] != '"':
        raise MetadataError(f"{path}:{line_no}: label list must be double-quoted, got {labels!r}")
    mids = tuple(m.strip() for m in labels[1:-1].split(",") if m.strip())
    if not mids:
        raise MetadataError(f"{path}:{line_no}: no labels")
    return Segment(ytid, start_s, end_s, mids)


def read_segments_csv(path: str, *, header_lines: int = 3) -> list:
    """Parse an official segments CSV into :class:`Segment` rows.

    The first ``header_lines`` lines are skipped when they start with ``#``
    (the official files) or are the official code's dummy ``empty`` lines;
    a data line among them is parsed, so a header-less file still works.
    """
    segments = []
    with open(path, encoding="utf-8") as f:
        for line_no, raw in enumerate(f, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            if line.startswith("#") or (line_no <= header_lines and line.strip() == "empty"):
                continue
            segments.append(_parse_segment_line(line, path, line_no))
    return segments


def write_segments_csv(path: str, segments: Sequence[Segment], *, created: str = "generated") -> None:
    """Write segments in the official format (3 header lines, quoted label lists)."""
    num_labels = sum(len(s.labels) for s in segments)
    unique = len({m for s in segments for m in s.labels})
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(f"# Segments csv created {created}\n")
        f.write(
            f"# num_ytids={len(segments)}, num_segs={len(segments)}, "
            f"num_unique_labels={unique}, num_positive_labels={num_labels}\n"
        )
        f.write(SEGMENTS_HEADER + "\n")
        for s in segments:
            f.write(f'{s.ytid}, {s.start_seconds:.3f}, {s.end_seconds:.3f}, "{",".join(s.labels)}"\n')


@dataclass(frozen=True)
class QaCount:
    mid: str
    num_rated: int
    num_true: int

    @property
    def quality(self):
        """Fraction of rated clips whose label was confirmed; None when unrated."""
        return None if self.num_rated == 0 else self.num_true / self.num_rated


def read_qa_true_counts(path: str) -> list:
    """Parse ``qa_true_counts.csv`` (``label_id,num_rated,num_true``), one row per class."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:3]] != ["label_id", "num_rated", "num_true"]:
            raise MetadataError(f"{path}: expected header 'label_id,num_rated,num_true', got {header!r}")
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                rows.append(QaCount(row[0].strip(), int(row[1]), int(row[2])))
            except (IndexError, ValueError):
                raise MetadataError(f"{path}:{line_no}: bad row {row!r}") from None
            if rows[-1].num_true > rows[-1].num_rated or rows[-1].num_true < 0:
                raise MetadataError(f"{path}:{line_no}: num_true must be in [0, num_rated]: {row!r}")
    return rows


def write_qa_true_counts(path: str, counts: Sequence[QaCount]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("label_id,num_rated,num_true\n")
        for c in counts:
            f.write(f"{c.mid},{c.num_rated},{c.num_true}\n")


def label_quality(qa_csv: str, labels: ClassLabels) -> np.ndarray:
    """Per-class label quality in class-index order (NaN where unrated or absent)."""
    by_mid = {c.mid: c for c in read_qa_true_counts(qa_csv)}
    out = np.full(len(labels), np.nan)
    for i, mid in enumerate(labels.mids):
        c = by_mid.get(mid)
        if c is not None and c.quality is not None:
            out[i] = c.quality
    return out


def segments_targets(segments: Sequence[Segment], labels: ClassLabels, *, source: str = "") -> np.ndarray:
    """(N, classes) bool targets for ``segments``."""
    out = np.zeros((len(segments), len(labels)), dtype=bool)
    for i, s in enumerate(segments):
        out[i] = labels.multi_hot(s.labels, source=f"{source} ({s.ytid})")
    return out


def metadata_paths(data_root: str) -> dict:
    """Standard locations under ``<data_root>/metadata``."""
    meta = os.path.join(data_root, "metadata")
    paths = {s: os.path.join(meta, f"{s}_segments.csv") for s in SPLITS}
    paths["class_labels"] = os.path.join(meta, "class_labels_indices.csv")
    paths["qa_true_counts"] = os.path.join(meta, "qa_true_counts.csv")
    return paths


def read_black_list(path: str) -> set:
    """YouTube ids from a black-list CSV (first column; ``Y`` prefixes and ``.wav`` accepted).

    The DCASE 2017 Task 4 list (1,591 ids built from the task's testing and
    evaluation lists) is what the paper's code provides for; lines starting with
    ``#`` and a header line ``youtube_id``/``YTID`` are ignored.
    """
    ids = set()
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            if not row or not row[0].strip() or row[0].startswith("#"):
                continue
            token = row[0].strip()
            if token.lower() in ("youtube_id", "ytid", "id", "audio_name", "filename"):
                continue
            ids.add(_black_list_id(token))
    return ids


def _black_list_id(token: str) -> str:
    """A YouTube id (11 characters) from ``id``, ``Y<id>.wav`` or ``Y<id>_<start>_<end>.wav``."""
    token = os.path.basename(token)
    if token.endswith(".wav"):
        token = token[:-4]
    if token.startswith("Y") and (len(token) == 12 or (len(token) > 12 and token[12] == "_")):
        return token[1:12]
    if len(token) > 11 and token[11] == "_":
        return token[:11]
    return token
