"""Packing clips into the official PANNs HDF5 layout, and the index files.

Waveform files (``<data_root>/hdf5s/waveforms/<name>.h5``) hold ``audio_name``
S20, ``waveform`` int16 (N, clip_samples), ``target`` bool (N, classes) and the
attribute ``sample_rate``, so existing PANNs-format copies of AudioSet work
unchanged. Unlike the official packer, clips that are missing or fail to decode
are *excluded* (the official file keeps them as silent all-negative rows) and
listed with their reason in ``<name>.manifest.json``.

Packing is parallel (a process pool decodes, the parent writes in CSV order),
resumable (``<out>.partial`` plus ``<out>.progress.json`` recording how many CSV
rows are done; a rerun continues there and truncates rows written after the last
recorded progress) and atomic (the partial file is renamed when complete).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Optional, Sequence

import h5py
import numpy as np

from panns_core.audio_io import AudioReadError, load_audio, pad_or_truncate, read_native_int16
from panns_core.data.audioset import (
    ClassLabels, MetadataError, Segment, audio_name_for, metadata_paths, read_black_list,
    read_class_labels, read_segments_csv, ytid_from_audio_name,
)
from panns_core.data.index import IndexTable, read_index, write_index
from panns_core.data.reader import float32_to_int16

log = logging.getLogger(__name__)

PART_SIZE = 50000
"""Rows per unbalanced-train part file (official: 41 parts of 50,000)."""

MAX_ABS = 1.2
"""Official ``float32_to_int16`` asserts ``max|x| <= 1.2``; louder files are rejected."""


# --------------------------------------------------------------------------- paths

def hdf5s_dir(data_root: str) -> str:
    return os.path.join(os.path.abspath(data_root), "hdf5s")


def waveform_path(data_root: str, name: str) -> str:
    return os.path.join(hdf5s_dir(data_root), "waveforms", f"{name}.h5")


def index_path(data_root: str, name: str) -> str:
    return os.path.join(hdf5s_dir(data_root), "indexes", f"{name}.h5")


def manifest_path(waveform_h5: str) -> str:
    return waveform_h5[:-3] + ".manifest.json" if waveform_h5.endswith(".h5") else waveform_h5 + ".manifest.json"


def _atomic_json(path: str, obj) -> None:
    from panns_core.fsutil import write_json

    write_json(obj, path, indent=1, trailing_newline=False)


# --------------------------------------------------------------------------- decoding

@dataclass
class ClipResult:
    """Outcome of decoding one clip: ``status`` is ``ok`` or a failure reason."""

    status: str
    waveform: Optional[np.ndarray] = None  # int16 (clip_samples,)
    message: str = ""
    samples: int = 0  # decoded length before padding/cutting


_PACK_REASON = {"nonfinite": "nan", "not_a_file": "decode"}
"""``AudioReadError.kind`` -> the reason recorded in a manifest (``nan`` is the historic name)."""


def load_clip(path: str, sample_rate: int, clip_samples: int, max_clipped_fraction: float = 0.1) -> ClipResult:
    """Decode, check and convert one clip; never raises (batch jobs record and go on).

    Decoding is :func:`panns_core.audio_io.load_audio` (the decode/resample path that
    inference and transfer use too); a mono 16-bit file already at ``sample_rate`` is
    read as int16 directly. Failures keep the decoder's classification: ``missing``,
    ``empty`` (0 bytes or 0 samples), ``decode``, ``truncated`` (a WAV shorter than
    its header declares), ``nan``; then ``clipping``.
    """
    try:
        fast = read_native_int16(path, sample_rate) if os.path.exists(path) else None
        if fast is not None:
            return _check_int16(path, fast, clip_samples, max_clipped_fraction)
        x = load_audio(path, sample_rate)
    except AudioReadError as e:
        return ClipResult(_PACK_REASON.get(e.kind, e.kind), message=str(e))
    except ImportError:  # a broken installation, not a bad clip: stop instead of excluding every clip
        raise
    except Exception as e:  # noqa: BLE001 - any other decoder error is a 'decode' failure
        return ClipResult("decode", message=f"{path}: {type(e).__name__}: {e}")
    peak = float(np.max(np.abs(x)))
    if peak > MAX_ABS:
        return ClipResult("clipping", message=f"{path}: peak {peak:.3f} > {MAX_ABS}")
    clipped = float(np.mean(np.abs(x) >= 0.9999))
    if clipped > max_clipped_fraction:
        return ClipResult("clipping", message=f"{path}: {clipped:.1%} of samples at full scale")
    return ClipResult("ok", float32_to_int16(pad_or_truncate(x, clip_samples)), samples=len(x))


def _check_int16(path, x, clip_samples, max_clipped_fraction) -> ClipResult:
    if x.size == 0:
        return ClipResult("empty", message=f"{path}: no samples")
    clipped = float(np.count_nonzero((x >= 32767) | (x <= -32767))) / x.size
    if clipped > max_clipped_fraction:
        return ClipResult("clipping", message=f"{path}: {clipped:.1%} of samples at full scale")
    return ClipResult("ok", pad_or_truncate(x, clip_samples), samples=len(x))


def _load_clip_job(args) -> ClipResult:
    return load_clip(*args)


# --------------------------------------------------------------------------- failures

def read_failures(audios_dir: str) -> dict:
    """``{youtube_id: (reason, message)}`` of the clips ``<audios_dir>/failures.csv`` lists as failed (if any).

    Notes about mirror rows and shards in the same file (a duplicated row, an
    unreadable shard) are not a clip's status and are left out.
    """
    from panns_core.data.acquire import FailureLog

    return FailureLog(os.path.join(audios_dir, "failures.csv")).rows


# --------------------------------------------------------------------------- packing

@dataclass
class PackResult:
    out_path: str
    manifest_path: str
    complete: bool
    packed: int
    excluded: int
    decoded_this_call: int
    seconds: float
    reasons: dict = field(default_factory=dict)
    short: int = 0  # packed clips shorter than their segment claims (listed in the manifest)
    notes: list = field(default_factory=list)  # what was repaired on the way, as sentences
    long: int = 0  # packed clips longer than their segment claims, cut to clip_seconds (listed in the manifest)

    @property
    def clips_per_second(self) -> float:
        return self.decoded_this_call / self.seconds if self.seconds > 0 else float("nan")


def _create_partial(path: str, clip_samples: int, classes_num: int, sample_rate: int) -> None:
    with h5py.File(path, "w") as hf:
        hf.create_dataset("audio_name", shape=(0,), maxshape=(None,), dtype="S20", chunks=(1024,))
        hf.create_dataset("waveform", shape=(0, clip_samples), maxshape=(None, clip_samples),
                          dtype=np.int16, chunks=(1, clip_samples))
        hf.create_dataset("target", shape=(0, classes_num), maxshape=(None, classes_num),
                          dtype=bool, chunks=(1024, classes_num))
        hf.attrs["sample_rate"] = np.int32(sample_rate)


SHORT_TOLERANCE_S = 0.5
"""A decoded clip shorter (longer) than its segment's duration by more than this is listed as short (long)."""


def _resume_problem(partial: str, progress_file: str, settings: dict) -> tuple[Optional[dict], Optional[str]]:
    """``(progress, None)`` when an interrupted pack can continue, else ``(None, why)``.

    ``why`` is None for "nothing to resume" (or another job's leftovers) and a sentence
    when the leftovers are damaged: a ``.partial`` cut by a crash mid-write (h5py:
    "truncated file"), fewer rows than the progress file records, or an unreadable
    progress file. Its complete rows could sometimes be salvaged, but restarting
    the part is always correct and packing is fast next to downloading.
    """
    if not (os.path.exists(partial) and os.path.exists(progress_file)):
        return None, None
    try:
        with open(progress_file) as f:
            progress = json.load(f)
    except (OSError, ValueError) as e:
        return None, f"{progress_file} is unreadable ({e})"
    if not isinstance(progress, dict) or progress.get("settings") != settings:
        return None, None  # different job: start over
    try:
        with h5py.File(partial, "r") as hf:
            for key in ("audio_name", "waveform", "target"):
                if key not in hf:
                    return None, f"{partial} has no '{key}' dataset"
            rows = min(hf[k].shape[0] for k in ("audio_name", "waveform", "target"))
            if rows < int(progress.get("packed", 0)):
                return None, f"{partial} holds {rows} rows but {progress_file} records {progress['packed']}"
            if progress.get("packed"):
                hf["waveform"][int(progress["packed"]) - 1]  # the last kept row must be readable
    except OSError as e:
        return None, f"{partial} is damaged ({e})"
    return progress, None


def _append_rows(path: str, names: list, waves: list, targets: list, keep_rows: int) -> int:
    """Truncate to ``keep_rows`` (drops rows of an interrupted chunk), append, return new count."""
    n = keep_rows + len(names)
    with h5py.File(path, "a") as hf:
        for key in ("audio_name", "waveform", "target"):
            hf[key].resize(n, axis=0)
        if names:
            hf["audio_name"][keep_rows:n] = np.array(names, dtype="S20")
            hf["waveform"][keep_rows:n] = np.stack(waves).astype(np.int16)
            hf["target"][keep_rows:n] = np.stack(targets).astype(bool)
    return n


def pack_segments(
    segments: Sequence[Segment],
    labels: ClassLabels,
    audios_dir: str,
    out_h5: str,
    *,
    sample_rate: int = 32000,
    clip_seconds: float = 10.0,
    workers: int = 0,
    chunk_size: int = 256,
    max_chunks: Optional[int] = None,
    max_clipped_fraction: float = 0.1,
    source: str = "",
) -> PackResult:
    """Pack ``segments`` (audio under ``audios_dir``) into ``out_h5``.

    ``workers`` > 0 decodes with that many processes. ``max_chunks`` stops after
    that many chunks and leaves a resumable ``.partial`` (time-slicing and tests);
    a later call with the same arguments continues where it stopped.
    """
    t0 = time.perf_counter()
    out_h5 = os.path.abspath(out_h5)
    os.makedirs(os.path.dirname(out_h5), exist_ok=True)
    partial, progress_file = out_h5 + ".partial", out_h5 + ".progress.json"
    clip_samples = int(round(sample_rate * clip_seconds))
    settings = {"sample_rate": sample_rate, "clip_samples": clip_samples, "classes_num": len(labels),
                "num_segments": len(segments)}
    failures = read_failures(audios_dir)

    notes = []
    progress, problem = _resume_problem(partial, progress_file, settings)
    if problem:
        note = f"{problem}; an interrupted pack left it behind, so this part is packed again from the start"
        log.warning(note)
        notes.append(note)
    if progress is None:
        _create_partial(partial, clip_samples, len(labels), sample_rate)
        progress = {"settings": settings, "rows_done": 0, "packed": 0, "excluded": []}
        _atomic_json(progress_file, progress)

    decoded = 0
    chunks = 0
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 0 else None
    try:
        while progress["rows_done"] < len(segments):
            if max_chunks is not None and chunks >= max_chunks:
                break
            start = progress["rows_done"]
            chunk = segments[start:start + chunk_size]
            jobs = [(os.path.join(audios_dir, s.audio_name), sample_rate, clip_samples, max_clipped_fraction)
                    for s in chunk]
            results = list(pool.map(_load_clip_job, jobs, chunksize=max(1, len(jobs) // (4 * workers)))
                           if pool else map(_load_clip_job, jobs))
            decoded += len(jobs)
            names, waves, targets = [], [], []
            for seg, res in zip(chunk, results):
                if res.status == "ok":
                    try:
                        target = labels.multi_hot(seg.labels, source=source)
                    except MetadataError as e:
                        progress["excluded"].append([seg.audio_name, "unknown_label", str(e)])
                        continue
                    names.append(seg.audio_name)
                    waves.append(res.waveform)
                    targets.append(target)
                    seconds = res.samples / sample_rate
                    if seg.duration - seconds > SHORT_TOLERANCE_S:
                        progress.setdefault("short", []).append(
                            [seg.audio_name, round(seconds, 3), round(seg.duration, 3)])
                    elif seconds - seg.duration > SHORT_TOLERANCE_S:  # e.g. a whole video, not its segment
                        progress.setdefault("long", []).append(
                            [seg.audio_name, round(seconds, 3), round(seg.duration, 3)])
                else:
                    reason, message = res.status, res.message
                    if reason == "missing" and seg.ytid in failures:
                        reason, message = "failed:" + failures[seg.ytid][0], failures[seg.ytid][1]
                    progress["excluded"].append([seg.audio_name, reason, message])
            progress["packed"] = _append_rows(partial, names, waves, targets, progress["packed"])
            progress["rows_done"] = start + len(chunk)
            _atomic_json(progress_file, progress)
            chunks += 1
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)

    complete = progress["rows_done"] >= len(segments)
    reasons = {}
    for _, reason, _ in progress["excluded"]:
        reasons[reason] = reasons.get(reason, 0) + 1
    mpath = manifest_path(out_h5)
    if complete:
        _append_rows(partial, [], [], [], progress["packed"])  # drop any rows past the progress mark
        os.replace(partial, out_h5)
        manifest = {
            "hdf5_path": out_h5, "source": source, **settings,
            "packed": progress["packed"], "excluded": len(progress["excluded"]), "reasons": reasons,
            "excluded_clips": [{"audio_name": a, "reason": r, "message": m} for a, r, m in progress["excluded"]],
            # Packed (zero-padded) but shorter than the segment CSV says; kept like the
            # official packer does, listed so that a user can drop them.
            "short_clips": [{"audio_name": a, "seconds": d, "expected_seconds": e}
                            for a, d, e in progress.get("short", [])],
            # Packed but longer than the segment (cut to the clip length, as officially):
            # possibly not the segment at all (a whole video), listed so that a user can check.
            "long_clips": [{"audio_name": a, "seconds": d, "expected_seconds": e}
                           for a, d, e in progress.get("long", [])],
        }
        _atomic_json(mpath, manifest)
        os.remove(progress_file)
    return PackResult(out_h5, mpath, complete, progress["packed"], len(progress["excluded"]), decoded,
                      time.perf_counter() - t0, reasons, len(progress.get("short", [])), notes,
                      len(progress.get("long", [])))


def pack_split(data_root: str, split: str, *, part_size: int = PART_SIZE, **kwargs) -> list:
    """Pack one split of ``<data_root>`` (metadata + audios) into waveform files.

    ``eval`` and ``balanced_train`` give one file each; ``unbalanced_train`` gives
    ``unbalanced_train_partNN.h5`` files of ``part_size`` CSV rows, like the official
    41 parts. Returns one :class:`PackResult` per file.
    """
    paths = metadata_paths(data_root)
    labels = read_class_labels(paths["class_labels"])
    segments = read_segments_csv(paths[split])
    audios_dir = os.path.join(data_root, "audios", split)
    if split == "unbalanced_train":
        parts = [(f"unbalanced_train_part{i // part_size:02d}", segments[i:i + part_size])
                 for i in range(0, max(len(segments), 1), part_size)]
    else:
        parts = [(split, segments)]
    return [pack_segments(segs, labels, audios_dir, waveform_path(data_root, name), source=paths[split], **kwargs)
            for name, segs in parts]


# --------------------------------------------------------------------------- indexes

def create_index(waveform_h5: str, index_h5: str) -> IndexTable:
    """Index file for a PANNs-format waveform file (ours or the authors' copy).

    Rows with an empty ``audio_name`` (the official packer's placeholder for a
    missing clip: silent waveform, all-false target) are left out, so they are
    neither trained on nor scored as negatives.
    """
    waveform_h5 = os.path.abspath(waveform_h5)
    try:
        with h5py.File(waveform_h5, "r") as hf:
            for key in ("audio_name", "waveform", "target"):
                if key not in hf:
                    raise ValueError(f"{waveform_h5}: not a PANNs waveform file (no '{key}' dataset)")
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in hf["audio_name"][:]]
            targets = hf["target"][:].astype(bool)
    except OSError as e:
        raise ValueError(f"{waveform_h5}: not a readable HDF5 file ({e})") from e
    keep = [i for i, n in enumerate(names) if n]
    table = IndexTable([names[i] for i in keep], [waveform_h5] * len(keep), np.array(keep, dtype=np.int64),
                       targets[keep])
    write_index(index_h5, table)
    return table


_PART_RE = re.compile(r"unbalanced_train_part(\d+)\.h5$")


def create_indexes(data_root: str) -> list:
    """Index files for every waveform file under ``<data_root>/hdf5s/waveforms``.

    Accepts our flat layout and the official one (``unbalanced_train/unbalanced_train_partNN.h5``).
    """
    wdir = os.path.join(hdf5s_dir(data_root), "waveforms")
    written = []
    for dirpath, _, files in sorted(os.walk(wdir)):
        for fname in sorted(files):
            if not fname.endswith(".h5"):
                continue
            name = fname[:-3]
            create_index(os.path.join(dirpath, fname), index_path(data_root, name))
            written.append(index_path(data_root, name))
    return written


def train_index_parts(data_root: str) -> list:
    """``balanced_train`` then ``unbalanced_train_partNN`` in part order: the full-train sources."""
    idir = os.path.join(hdf5s_dir(data_root), "indexes")
    if not os.path.isdir(idir):
        return []
    parts = sorted((int(m.group(1)), f) for f in os.listdir(idir) if (m := _PART_RE.match(f)))
    out = [os.path.join(idir, "balanced_train.h5")] if os.path.exists(os.path.join(idir, "balanced_train.h5")) else []
    return out + [os.path.join(idir, f) for _, f in parts]


def combine_full_train(data_root: str, out_name: str = "full_train") -> IndexTable:
    """The combined full-train index (balanced + unbalanced parts, in a fixed order).

    A clip present in both the balanced and unbalanced lists is kept once
    (first occurrence), so it is not drawn twice as often.
    """
    sources = train_index_parts(data_root)
    if not sources:
        raise FileNotFoundError(f"{hdf5s_dir(data_root)}/indexes: no balanced_train or unbalanced_train_partNN index")
    table = IndexTable.concatenate(read_index(p) for p in sources)
    seen, keep = set(), []
    for i, n in enumerate(table.audio_names):
        if n not in seen:
            seen.add(n)
            keep.append(i)
    table = table.subset(keep)
    write_index(index_path(data_root, out_name), table)
    return table


def partial_subset(index_h5: str, fraction: float, seed: int, out_h5: Optional[str] = None) -> IndexTable:
    """A seeded random ``fraction`` of an index (the paper's 50 % / 80 % runs), rows kept in order.

    Default output: ``<index>_frac<fraction>_seed<seed>.h5`` next to the input.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    table = read_index(index_h5)
    n = int(round(fraction * len(table)))
    rows = np.sort(np.random.default_rng(seed).choice(len(table), size=n, replace=False))
    sub = table.subset(rows)
    if out_h5 is None:
        out_h5 = f"{index_h5[:-3]}_frac{fraction:g}_seed{seed}.h5"
    write_index(out_h5, sub)
    return sub


def apply_black_list(index_h5: str, black_list_csv: str, out_h5: str) -> IndexTable:
    """Drop black-listed clips (e.g. the DCASE 2017 Task 4 test/eval ids) from an index."""
    banned = read_black_list(black_list_csv)
    table = read_index(index_h5)
    keep = [i for i, n in enumerate(table.audio_names) if ytid_from_audio_name(n) not in banned]
    sub = table.subset(keep)
    write_index(out_h5, sub)
    return sub


def validation_split(index_h5: str, fraction: float = 0.05, seed: int = 0, *,
                     out_validation: Optional[str] = None, out_train: Optional[str] = None):
    """Carve a seeded, roughly class-stratified validation set out of a training index.

    Classes are visited from rarest to most common; each receives
    ``max(1, round(fraction * n_k))`` validation clips (counting clips already taken
    for rarer classes), so rare classes are represented. Classes with a single clip
    stay in train. Returns ``(train_table, validation_table)`` written to
    ``validation.h5`` and ``<index>_minus_validation.h5`` beside the input by default.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    table = read_index(index_h5)
    rng = np.random.default_rng(seed)
    targets = table.targets
    counts = targets.sum(axis=0)
    chosen = np.zeros(len(table), dtype=bool)
    for k in np.argsort(counts, kind="stable"):
        if counts[k] < 2:
            continue
        quota = max(1, int(round(fraction * counts[k])))
        members = np.where(targets[:, k])[0]
        have = int(chosen[members].sum())
        free = members[~chosen[members]]
        need = min(quota - have, len(free))
        if need > 0:
            chosen[rng.choice(free, size=need, replace=False)] = True
    val, train = table.subset(np.where(chosen)[0]), table.subset(np.where(~chosen)[0])
    base = os.path.dirname(os.path.abspath(index_h5))
    write_index(out_validation or os.path.join(base, "validation.h5"), val)
    write_index(out_train or f"{index_h5[:-3]}_minus_validation.h5", train)
    return train, val


# --------------------------------------------------------------------------- eval manifest

def eval_set_sha256(index_h5: str) -> str:
    """SHA-256 of the newline-joined sorted audio names of an index: the eval-set identity."""
    names = sorted(read_index(index_h5).audio_names)
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def read_eval_manifest(index_h5: str) -> dict:
    """The eval manifest written beside an index by :func:`write_eval_manifest` (``{}`` if none)."""
    path = os.fspath(index_h5)[:-3] + ".manifest.json"
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def write_eval_manifest(index_h5: str, data_source: Optional[dict] = None) -> dict:
    """``<index>.manifest.json`` with ``num_clips``, ``sha256_sorted_ids`` and, when given,
    ``data_source`` (where the clips came from: yt-dlp or a Hub mirror + revision)."""
    manifest = {"num_clips": len(read_index(index_h5)), "sha256_sorted_ids": eval_set_sha256(index_h5),
                "index": os.path.abspath(index_h5)}
    if data_source is not None:
        manifest["data_source"] = data_source
    _atomic_json(index_h5[:-3] + ".manifest.json", manifest)
    return manifest


# --------------------------------------------------------------------------- one call

def pack_dataset(data_root: str, splits=("eval", "balanced_train", "unbalanced_train"), **kwargs) -> dict:
    """Pack the splits present, build indexes, full_train and the eval manifest.

    Splits whose CSV is missing are skipped. Returns ``{file name: PackResult}``.
    Raises :class:`FileNotFoundError` (a sentence naming the folder) when
    ``data_root`` does not exist or holds none of the requested splits' CSVs.
    """
    paths = metadata_paths(data_root)
    if not os.path.isdir(data_root):
        raise FileNotFoundError(f"data root {data_root} does not exist; create it with "
                                f"`python -m panns_core.data metadata {data_root}` (AudioSet) or "
                                f"`python -m panns_core.data synthetic {data_root}` (generated corpus)")
    if not any(os.path.exists(paths[s]) for s in splits):
        raise FileNotFoundError(
            f"{data_root} has no segment CSV for {', '.join(splits)} under {os.path.dirname(paths['class_labels'])} "
            f"(expected e.g. {os.path.basename(paths[splits[0]])}); fetch them with "
            f"`python -m panns_core.data metadata {data_root}`")
    results = {}
    for split in splits:
        if not os.path.exists(paths[split]):
            continue
        for r in pack_split(data_root, split, **kwargs):
            results[os.path.basename(r.out_path)] = r
    if all(r.complete for r in results.values()):
        build_indexes(data_root)
    return results


def build_indexes(data_root: str) -> dict:
    """Indexes for all waveform files, plus ``full_train`` and the eval manifest when possible."""
    written = create_indexes(data_root)
    out = {"indexes": written}
    if train_index_parts(data_root):
        combine_full_train(data_root)
        out["full_train"] = index_path(data_root, "full_train")
    if os.path.exists(index_path(data_root, "eval")):
        from panns_core.data.acquire import acquisition_source

        out["eval_manifest"] = write_eval_manifest(index_path(data_root, "eval"),
                                                   data_source=acquisition_source(data_root, "eval"))
    return out
