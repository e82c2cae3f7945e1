"""AudioSet from its Hugging Face Hub mirror (parquet shards) into the PANNs layout.

The mirror (default ``agkphysics/AudioSet``, CC BY 4.0) stores each split as
parquet shards under ``data/<bal_train|eval|unbal_train>/`` with the columns
``video_id`` (str), ``audio`` (struct: FLAC ``bytes`` + ``path``), ``labels``
(list of mids) and ``human_labels`` (list of str).

Design: each clip is decoded **once** through :func:`panns_core.audio_io.load_audio`
(the project's single decode/resample path) to mono float32 at 32 kHz and written
where the yt-dlp path writes its clips, ``<root>/audios/<split>/Y<id>.wav``
(32 kHz mono 16-bit). ``pack`` then reads these WAVs without decoding or
resampling again (its native int16 path), so ``pack``, ``train`` and ``evaluate``
cannot tell the two sources apart, and the availability bookkeeping is the same:

* ``failures.csv``: CSV clips absent from the mirror (reason ``not_in_mirror``,
  written once every shard was read) and every bad mirror row or shard, each with
  where it is (shard, row) and why: a clip's audio that does not decode
  (``decode``), is cut short (``truncated``), empty (``empty``), missing
  (``no_audio``) or far longer than its segment (``too_long``: never written, it
  is not the segment); a ``video_id`` that is not a YouTube id (``bad_id``: it
  would name a path; never used); and, as notes that are not a clip's status, a
  repeated ``video_id`` (``duplicate_row``: the first row is kept, the later ones
  are skipped) and a shard that cannot be read (``bad_shard``: named, skipped,
  the next shards read; a rerun tries it again);
* ``extra_in_mirror.csv``: mirror clips that are not rows of the official CSV
  (not packed: the CSV defines the split);
* ``label_mismatches.csv``: clips whose mirror labels differ from the CSV's
  (the CSV's labels are the ones packed);
* ``summary.json`` (as for yt-dlp, plus the two counts above) and ``source.json``
  (``{"source": "hf", "repo", "revision"}``), which ``pack`` copies into the eval
  manifest and every result.

Memory stays flat: shards are read one row group at a time
(``ParquetFile.read_row_group``), and a row group is released before the next
one is read. Clips are decoded by a pool of processes sized to the machine
(:func:`default_workers`); every temporary file stays in ``audios/<split>/``
under a unique name. Work resumes: clips already written are skipped and
finished shards are recorded in ``hf_progress.json``; failures.csv and the
progress file are saved after every shard and when a run stops.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from panns_core.data.acquire import FailureLog, availability_summary, valid_ytid, write_summary
from panns_core.data.audioset import metadata_paths, read_segments_csv

HF_REPO = "agkphysics/AudioSet"
"""Default mirror: the AudioSet copy on the Hugging Face Hub (CC BY 4.0)."""

HF_SPLIT_DIRS = {"balanced_train": "bal_train", "eval": "eval", "unbalanced_train": "unbal_train"}
"""Our split name -> the mirror's folder under ``data/``."""

MIRROR_CLIPS = {"balanced_train": 18685, "eval": 17142, "unbalanced_train": 1738788}
"""Clips the default mirror holds per split (of 22,160 / 20,371 / 2,041,789 CSV rows)."""

SAMPLE_RATE = 32000
COLUMNS = ("video_id", "audio", "labels")

LONG_TOLERANCE_S = 1.0
"""A mirror clip longer than its CSV segment by more than this is not the segment: not written (``too_long``)."""

CLIP_REASONS = ("decode", "truncated", "empty", "nonfinite", "no_audio", "too_long", "bad_id", "error")
"""failures.csv reasons of a mirror row's clip (besides ``not_in_mirror``; notes: ``acquire.NOTE_REASONS``)."""


class MirrorError(ValueError):
    """The mirror copy is missing, or a shard does not have the expected schema."""


class AcquireStopped(OSError):
    """The machine, not a clip, stopped the run (disk full, a decoding process killed); what was done is kept."""


class ClipTooLong(ValueError):
    """A mirror row's audio is far longer than its segment."""


def default_workers() -> int:
    """Decoding processes for this machine: the CPUs this process may use; 0 (in-process) on one CPU."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return cpus if cpus > 1 else 0


# --------------------------------------------------------------------------- decoding (one call site)

def decode_clip(data: bytes, work_dir: str, suffix: str = ".flac", max_seconds: Optional[float] = None) -> np.ndarray:
    """Mono float32 at 32 kHz from encoded audio bytes.

    The project's one decode/resample path (:func:`panns_core.audio_io.load_audio`:
    libsndfile, ffmpeg fallback, soxr resampling, truncation check) reads files, so
    the bytes go through a temporary file in ``work_dir`` (a unique name); this is
    the only place the mirror's audio is decoded. ``max_seconds``: raise
    :class:`ClipTooLong` instead of decoding audio whose header declares more (or,
    for a header that says nothing, that decodes to more).
    """
    import soundfile as sf

    from panns_core.audio_io import load_audio

    with tempfile.NamedTemporaryFile(prefix=".hf_decode_", suffix=suffix, dir=work_dir) as tmp:
        tmp.write(data)
        tmp.flush()
        if max_seconds is not None:
            try:
                info = sf.info(tmp.name)
                seconds = info.frames / info.samplerate if 0 < info.frames < 2 ** 62 else 0.0
            except Exception:  # noqa: BLE001 - not for libsndfile: judged after decoding
                seconds = 0.0
            if seconds > max_seconds:
                raise ClipTooLong(f"{seconds:.1f} s of audio")
        x = load_audio(tmp.name, SAMPLE_RATE)
    if max_seconds is not None and len(x) > max_seconds * SAMPLE_RATE:
        raise ClipTooLong(f"{len(x) / SAMPLE_RATE:.1f} s of audio")
    return x


def _write_clip_job(args) -> tuple:
    """Decode one clip and write ``<out_dir>/Y<id>.wav`` atomically; never raises.

    Returns ``(ytid, None, "")`` or ``(ytid, reason, message)``; reason ``write``
    (the WAV could not be written: disk full, permissions) stops the run, the
    others are the clip's (:data:`CLIP_REASONS`).
    """
    import soundfile as sf

    from panns_core.audio_io import AudioReadError
    from panns_core.data.reader import float32_to_int16
    from panns_core.fsutil import atomic_write

    ytid, data, suffix, out_dir, segment_seconds = args
    if not data:
        return ytid, "no_audio", "the row has no audio bytes"
    try:
        x = decode_clip(data, out_dir, suffix, max_seconds=segment_seconds + LONG_TOLERANCE_S)
    except AudioReadError as e:
        return ytid, e.kind if e.kind in CLIP_REASONS else "decode", e.reason
    except ClipTooLong as e:
        return ytid, "too_long", (f"{e} for a {segment_seconds:g}-s segment: not the segment (e.g. the whole "
                                  f"video), not written")
    except OSError as e:  # the temporary file: the machine's problem (disk full), not the clip's
        return ytid, "write", f"cannot write a temporary file in {out_dir}: {e.strerror or e}"
    except Exception as e:  # noqa: BLE001 - any other decoder error is the clip's
        return ytid, "decode", f"{type(e).__name__}: {e}"
    try:
        buf = io.BytesIO()
        sf.write(buf, float32_to_int16(x), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    except Exception as e:  # noqa: BLE001
        return ytid, "error", f"encoding the WAV failed: {type(e).__name__}: {e}"
    dst = os.path.join(out_dir, f"Y{ytid}.wav")
    try:
        with atomic_write(dst, "wb") as f:  # a unique temporary name beside dst, then a rename
            f.write(buf.getvalue())
    except OSError as e:
        return ytid, "write", f"cannot write {dst}: {e.strerror or e}"
    return ytid, None, ""


# --------------------------------------------------------------------------- shards

def local_shards(hf_dir: str, split: str) -> list:
    """Sorted parquet shards of ``split`` in a downloaded copy laid out as ``DIR/data/<split dir>/``."""
    folder = os.path.join(hf_dir, "data", HF_SPLIT_DIRS[split])
    shards = sorted(glob.glob(os.path.join(folder, "*.parquet")))
    if not shards:
        raise MirrorError(f"{folder}: no parquet shards (expected the mirror layout "
                          f"DIR/data/{{{','.join(sorted(HF_SPLIT_DIRS.values()))}}}/*.parquet)")
    return shards


def shard_files_of(repo_files, split: str) -> list:
    """The repository files that are shards of ``split`` (``data/<dir>/*.parquet``), sorted."""
    prefix = f"data/{HF_SPLIT_DIRS[split]}/"
    return sorted(f for f in repo_files
                  if f.startswith(prefix) and f.endswith(".parquet") and "/" not in f[len(prefix):])


def hub_shards(repo: str, split: str, revision: Optional[str] = None, endpoint: Optional[str] = None) -> tuple:
    """``(commit sha, shard paths in the repo)``: pinning the sha keeps every shard of one run
    at the same revision even if the mirror is updated meanwhile."""
    from huggingface_hub import HfApi

    info = HfApi(endpoint=endpoint).dataset_info(repo, revision=revision)
    shards = shard_files_of([s.rfilename for s in info.siblings or []], split)
    if not shards:
        raise MirrorError(f"{repo}@{info.sha}: no parquet shards under data/{HF_SPLIT_DIRS[split]}/")
    return info.sha, shards


def fetch_hub_shard(repo: str, path: str, revision: str, cache_dir: Optional[str] = None,
                    endpoint: Optional[str] = None) -> str:
    """Local path of one shard: huggingface_hub's resumable, cache-aware download."""
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo, path, repo_type="dataset", revision=revision, cache_dir=cache_dir,
                           endpoint=endpoint)


def _schema_problem(schema) -> Optional[str]:
    """Why a shard's columns are not the mirror's (``video_id`` string, ``audio`` the Hub's Audio
    struct with ``bytes`` or plain binary, ``labels`` a list of strings), or None."""
    import pyarrow as pa

    missing = [c for c in COLUMNS if c not in schema.names]
    if missing:
        return f"columns {missing} missing (has {schema.names})"

    def text(t):
        return pa.types.is_string(t) or pa.types.is_large_string(t)

    def binary(t):
        return pa.types.is_binary(t) or pa.types.is_large_binary(t)

    video_id, audio, labels = (schema.field(c).type for c in COLUMNS)
    if not text(video_id):
        return f"column 'video_id' is {video_id}, expected string"
    if not (binary(audio) or (pa.types.is_struct(audio) and audio.get_field_index("bytes") >= 0
                              and binary(audio.field("bytes").type))):
        return f"column 'audio' is {audio}, expected struct<bytes: binary, path: string> (the Hub's Audio feature)"
    if not ((pa.types.is_list(labels) or pa.types.is_large_list(labels)) and text(labels.value_type)):
        return f"column 'labels' is {labels}, expected list<string>"
    return None


def iter_row_groups(path: str, columns=COLUMNS):
    """Yield one ``pyarrow.Table`` per row group of a parquet shard (only ``columns``).

    The caller must drop its reference before asking for the next one; then at most
    one row group is in memory whatever the shard and row-group count. A shard
    whose columns are not the mirror's raises :class:`MirrorError`; an unreadable
    one, pyarrow's error.
    """
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    problem = _schema_problem(pf.schema_arrow)
    if problem:
        raise MirrorError(f"{path}: not an AudioSet mirror shard: {problem}")
    for i in range(pf.num_row_groups):
        yield pf.read_row_group(i, columns=list(columns))


def _audio_suffix(audio_path) -> str:
    ext = os.path.splitext(audio_path if isinstance(audio_path, str) else "")[1].lower()
    return ext if ext in (".flac", ".wav", ".ogg", ".mp3") else ".flac"


def _audio_cell(cell) -> tuple:
    """``(bytes or None, suffix)`` of one ``audio`` value: the Hub's ``{bytes, path}`` or plain bytes."""
    if isinstance(cell, dict):
        return cell.get("bytes"), _audio_suffix(cell.get("path"))
    return cell, ".flac"


# --------------------------------------------------------------------------- bookkeeping

@dataclass
class HfAcquireResult:
    summary: object  # acquire.AcquireSummary
    extra_in_mirror: int
    label_mismatches: int
    written: int
    shards_done: int
    shards_total: int
    source: dict
    seconds: float
    bad_shards: dict = field(default_factory=dict)  # shard file name -> why it could not be read (this call)
    bad_rows: dict = field(default_factory=dict)  # reason -> rows of this call recorded in failures.csv

    @property
    def complete(self) -> bool:
        return self.shards_done == self.shards_total

    def line(self) -> str:
        rows = ", ".join(f"{k} {v:,}" for k, v in sorted(self.bad_rows.items()))
        shards = (f" ({len(self.bad_shards)} unreadable: {', '.join(sorted(self.bad_shards))}; see failures.csv, "
                  f"a rerun tries again)" if self.bad_shards else "")
        return (f"{self.summary.line()}; mirror clips not in the CSV: {self.extra_in_mirror:,}; "
                f"label mismatches: {self.label_mismatches:,}; "
                f"{'bad mirror rows: ' + rows + '; ' if rows else ''}"
                f"shards {self.shards_done}/{self.shards_total}{shards}")


def _load_progress(path: str, source: dict) -> dict:
    if os.path.exists(path):
        with open(path) as f:
            progress = json.load(f)
        if progress.get("source") == source:
            return progress
    return {"source": source, "done_shards": [], "extra": {}, "label_mismatch": {}}


def _save_json(path: str, obj) -> None:
    from panns_core.fsutil import write_json

    write_json(obj, path, indent=1, trailing_newline=False)


def _write_csv(path: str, header, rows) -> None:
    from panns_core.fsutil import atomic_write

    with atomic_write(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


class _SplitRun:
    """One call of :func:`acquire_split_hf`: the CSV, the logs and what this call has seen."""

    def __init__(self, out_dir, segments, log, state, pool, repo):
        self.out_dir, self.log, self.state, self.pool, self.repo = out_dir, log, state, pool, repo
        self.segments = {s.ytid: s for s in segments}
        self.shards = []  # names of the shards read, in order
        self.first_row = {}  # ytid -> its first row in this call (shard index << 32 | row): the row kept
        self.repeats = {}  # ytid -> its later rows, skipped
        self.written = 0
        self.bad_rows = {}

    def where(self, row: int) -> str:
        return f"{self.shards[row >> 32]} row {row & 0xFFFFFFFF}"

    def bad_row(self, key, reason, message) -> None:
        self.log.record(key, reason, message)
        self.bad_rows[reason] = self.bad_rows.get(reason, 0) + 1

    def queue(self, group, shard: str, first_row: int) -> tuple:
        """``(jobs, where)``: the CSV clips of one row group not yet written; every bad row recorded.

        The jobs hold copies of the audio bytes, so the caller can drop the row
        group before they are decoded.
        """
        if not self.shards or self.shards[-1] != shard:
            self.shards.append(shard)
        ids = group.column("video_id").to_pylist()
        labels = group.column("labels").to_pylist()
        audio = group.column("audio")
        jobs, where = [], {}
        for j, ytid in enumerate(ids):
            row = (len(self.shards) - 1) << 32 | (first_row + j)
            here = self.where(row)
            if not valid_ytid(ytid):
                key = ascii(ytid)[1:-1] if isinstance(ytid, str) and ytid else f"(no id) {here}"
                self.bad_row(key, "bad_id", f"{here}: video_id {ytid!r} is not a YouTube id (11 characters of "
                                            f"A-Z a-z 0-9 - _); row skipped")
                continue
            if ytid in self.first_row:  # the first row wins, whatever became of it: one writer per file
                self.repeats.setdefault(ytid, []).append(row)
                first = self.where(self.first_row[ytid])
                later = ", ".join(self.where(r) for r in self.repeats[ytid])
                self.log.note(ytid, "duplicate_row", f"video_id repeated at {later}; the first row ({first}) "
                                                     f"is kept, the later ones skipped")
                self.bad_rows["duplicate_row"] = self.bad_rows.get("duplicate_row", 0) + 1
                continue
            self.first_row[ytid] = row
            mirror_labels = [m for m in labels[j] or [] if m is not None]
            segment = self.segments.get(ytid)
            if segment is None:
                self.state["extra"][ytid] = mirror_labels
                continue
            if sorted(mirror_labels) != sorted(segment.labels):
                self.state["label_mismatch"][ytid] = [mirror_labels, list(segment.labels)]
            if os.path.exists(os.path.join(self.out_dir, segment.audio_name)):
                continue
            data, suffix = _audio_cell(audio[j].as_py())
            jobs.append((ytid, data, suffix, self.out_dir, segment.duration))
            where[ytid] = here
        return jobs, where

    def decode(self, jobs, where) -> None:
        """Decode and write ``jobs`` (in the pool); record each outcome."""
        results = self.pool.map(_write_clip_job, jobs) if self.pool else map(_write_clip_job, jobs)
        for ytid, reason, message in results:
            if reason is None:
                self.log.clear(ytid)
                self.written += 1
            elif reason == "write":
                raise AcquireStopped(f"{message}; the clips written so far and failures.csv are kept; "
                                     f"free space (or fix the permissions) and rerun to continue")
            else:
                self.bad_row(ytid, reason, f"{self.repo} {where[ytid]}: {message}")


# --------------------------------------------------------------------------- one split

def acquire_split_hf(data_root: str, split: str, *, hf_repo: str = HF_REPO, hf_dir: Optional[str] = None,
                     revision: Optional[str] = None, cache_dir: Optional[str] = None,
                     endpoint: Optional[str] = None, workers: Optional[int] = None,
                     max_shards: Optional[int] = None, delete_shards: bool = False,
                     progress: bool = False) -> HfAcquireResult:
    """Write every clip of ``split`` found in the mirror to ``<root>/audios/<split>/Y<id>.wav``.

    ``hf_dir``: read a downloaded copy (``DIR/data/<split dir>/*.parquet``) instead
    of the Hub. ``revision``: a branch, tag or commit of ``hf_repo`` (default: main,
    pinned to its commit sha for the whole run). ``workers``: decoding processes
    (default :func:`default_workers`, the machine's CPUs; 0 decodes in this
    process). ``max_shards`` stops after that many shards (a later call
    continues); CSV clips are declared ``not_in_mirror`` only once every shard was
    read. ``delete_shards`` removes each downloaded shard from the Hub cache once
    its clips are written (the unbalanced split is ~2.4 TB).

    Bad rows and unreadable shards are recorded in ``failures.csv`` (see the
    module docstring) and the run goes on; :class:`MirrorError` when no shard
    could be read at all, :class:`AcquireStopped` when a clip cannot be written
    (disk full) or a decoding process dies. Either way failures.csv and
    ``hf_progress.json`` are saved first.
    """
    if split not in HF_SPLIT_DIRS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(HF_SPLIT_DIRS)}")
    t0 = time.perf_counter()
    segments = read_segments_csv(metadata_paths(data_root)[split])
    out_dir = os.path.join(data_root, "audios", split)
    os.makedirs(out_dir, exist_ok=True)

    if hf_dir is not None:
        shards = local_shards(hf_dir, split)
        source = {"source": "hf", "repo": hf_repo, "revision": revision, "hf_dir": os.path.abspath(hf_dir)}
    else:
        sha, shards = hub_shards(hf_repo, split, revision, endpoint)
        source = {"source": "hf", "repo": hf_repo, "revision": sha}
    progress_path = os.path.join(out_dir, "hf_progress.json")
    state = _load_progress(progress_path, source)
    log = FailureLog(os.path.join(out_dir, "failures.csv"))
    workers = default_workers() if workers is None else int(workers)
    if workers < 0:
        raise ValueError(f"workers must be >= 0 (0 decodes in this process), got {workers}")
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 0 else None
    run = _SplitRun(out_dir, segments, log, state, pool, hf_repo)
    bad_shards = {}
    todo = [s for s in shards if os.path.basename(s) not in state["done_shards"]][:max_shards]
    try:
        for shard in todo:
            name = os.path.basename(shard)
            problem = _acquire_shard(run, shard, name, hf_dir, source, cache_dir, endpoint, delete_shards)
            if problem:
                bad_shards[name] = problem
                log.note(name, "bad_shard", f"{hf_repo} {problem}; skipped (a rerun tries it again)")
                if progress:
                    print(f"{split}: shard skipped: {problem}", flush=True)
                continue
            log.clear_note(name, "bad_shard")
            state["done_shards"].append(name)
            log.save()
            _save_json(progress_path, state)
            if progress:
                print(f"{split}: shard {len(state['done_shards'])}/{len(shards)} done "
                      f"({run.written:,} clips written)", flush=True)
    except BrokenProcessPool as e:
        raise AcquireStopped(f"a decoding process died ({e}; killed for memory?) while reading {split}; the clips "
                             f"written so far and failures.csv are kept; rerun to continue (--workers 0 decodes "
                             f"in one process)") from None
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
        log.save()  # whatever stopped the run, what it recorded is kept
        _save_json(progress_path, state)

    done = set(state["done_shards"])
    names = {os.path.basename(s) for s in shards}
    if len(bad_shards) == len(shards):  # every shard tried, none readable: not a mirror of this split
        first = sorted(bad_shards)[0]
        raise MirrorError(f"none of the {len(shards)} shard(s) of {split} could be read (listed in "
                          f"{os.path.join(out_dir, 'failures.csv')}); {bad_shards[first]}")
    complete = names <= done
    if complete:
        present = set(os.listdir(out_dir))
        for s in segments:
            if s.audio_name not in present and log.rows.get(s.ytid, ("",))[0] not in CLIP_REASONS:
                log.record(s.ytid, "not_in_mirror", f"not in {hf_repo}@{source['revision'] or 'local copy'}")
    log.save()
    _write_csv(os.path.join(out_dir, "extra_in_mirror.csv"), ("youtube_id", "mirror_labels"),
               [(k, ",".join(v)) for k, v in sorted(state["extra"].items())])
    _write_csv(os.path.join(out_dir, "label_mismatches.csv"), ("youtube_id", "mirror_labels", "csv_labels"),
               [(k, ",".join(m), ",".join(c)) for k, (m, c) in sorted(state["label_mismatch"].items())])
    _save_json(os.path.join(out_dir, "source.json"), source)
    summary = availability_summary(data_root, split)
    shards_done = len(done & names)
    write_summary(out_dir, summary, extra={"source": source, "extra_in_mirror": len(state["extra"]),
                                           "label_mismatches": len(state["label_mismatch"]),
                                           "shards_done": shards_done, "shards_total": len(shards),
                                           "bad_shards": sorted(k for k, why in log.notes if why == "bad_shard")})
    return HfAcquireResult(summary, len(state["extra"]), len(state["label_mismatch"]), run.written,
                           shards_done, len(shards), source, time.perf_counter() - t0, bad_shards, run.bad_rows)


def _acquire_shard(run: _SplitRun, shard, name, hf_dir, source, cache_dir, endpoint, delete_shards) -> Optional[str]:
    """Read one shard into ``run``; None when done, else why it could not be read (the run goes on)."""
    try:
        local = shard if hf_dir is not None else fetch_hub_shard(run.repo, shard, source["revision"],
                                                                 cache_dir, endpoint)
    except Exception as e:  # noqa: BLE001 - network, authorisation: this shard is not available now
        return f"{name}: download failed: {type(e).__name__}: {e}"
    groups = iter_row_groups(local)
    first_row, index = 0, 0
    while True:
        try:
            group = next(groups, None)
        except MirrorError as e:
            return str(e)
        except Exception as e:  # noqa: BLE001 - whatever pyarrow says of a damaged file
            if hf_dir is None:
                _remove_cached(local)  # a rerun downloads it again
            return (f"{name}: unreadable parquet (row group {index + 1}; {first_row:,} rows before it were "
                    f"read): {type(e).__name__}: {e}")
        if group is None:
            break
        rows = group.num_rows
        jobs, where = run.queue(group, name, first_row)
        del group  # release this row group before the next one is read
        run.decode(jobs, where)
        del jobs
        first_row += rows
        index += 1
    if delete_shards and hf_dir is None:
        _remove_cached(local)
    return None


def _remove_cached(path: str) -> None:
    """Delete a shard from the Hub cache: the snapshot link and the blob it points to."""
    blob = os.path.realpath(path)
    for p in {path, blob}:
        try:
            os.remove(p)
        except FileNotFoundError:
            pass
