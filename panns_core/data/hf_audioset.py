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

* ``failures.csv``: CSV clips absent from the mirror (reason ``not_in_mirror``)
  and clips whose FLAC does not decode (reason ``decode``);
* ``extra_in_mirror.csv``: mirror clips that are not rows of the official CSV
  (not packed: the CSV defines the split);
* ``label_mismatches.csv``: clips whose mirror labels differ from the CSV's
  (the CSV's labels are the ones packed);
* ``summary.json`` (as for yt-dlp, plus the two counts above) and ``source.json``
  (``{"source": "hf", "repo", "revision"}``), which ``pack`` copies into the eval
  manifest and every result.

Memory stays flat: shards are read one row group at a time
(``ParquetFile.read_row_group``), and a row group is released before the next
one is read. Work resumes: clips already written are skipped and finished shards
are recorded in ``hf_progress.json``.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Optional

import numpy as np

from panns_core.data.audioset import metadata_paths, read_segments_csv

HF_REPO = "agkphysics/AudioSet"
"""Default mirror: the AudioSet copy on the Hugging Face Hub (CC BY 4.0)."""

HF_SPLIT_DIRS = {"balanced_train": "bal_train", "eval": "eval", "unbalanced_train": "unbal_train"}
"""Our split name -> the mirror's folder under ``data/``."""

MIRROR_CLIPS = {"balanced_train": 18685, "eval": 17142, "unbalanced_train": 1738788}
"""Clips the default mirror holds per split (of 22,160 / 20,371 / 2,041,789 CSV rows)."""

SAMPLE_RATE = 32000
COLUMNS = ("video_id", "audio", "labels")


class MirrorError(ValueError):
    """The mirror copy is missing, or a shard does not have the expected schema."""


# --------------------------------------------------------------------------- decoding (one call site)

def decode_clip(data: bytes, work_dir: str, suffix: str = ".flac") -> np.ndarray:
    """Mono float32 at 32 kHz from encoded audio bytes.

    The project's one decode/resample path (:func:`panns_core.audio_io.load_audio`:
    libsndfile, ffmpeg fallback, soxr resampling) reads files, so the bytes go
    through a temporary file; this is the only place the mirror's audio is decoded.
    """
    from panns_core.audio_io import load_audio

    with tempfile.NamedTemporaryFile(suffix=suffix, dir=work_dir) as tmp:
        tmp.write(data)
        tmp.flush()
        return load_audio(tmp.name, SAMPLE_RATE)


def _write_clip_job(args) -> tuple:
    """Decode one clip and write ``dst`` atomically; ``(ytid, None)`` or ``(ytid, error message)``."""
    import soundfile as sf

    from panns_core.data.reader import float32_to_int16

    ytid, data, suffix, dst = args
    if not data:
        return ytid, "the mirror row has no audio bytes"
    work_dir = os.path.dirname(dst)
    try:
        x = decode_clip(data, work_dir, suffix)
    except Exception as e:  # noqa: BLE001 - any decoder error is recorded as 'decode' and skipped
        return ytid, f"{type(e).__name__}: {e}"
    tmp = dst + ".part.wav"
    sf.write(tmp, float32_to_int16(x), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    os.replace(tmp, dst)
    return ytid, None


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


def iter_row_groups(path: str, columns=COLUMNS):
    """Yield one ``pyarrow.Table`` per row group of a parquet shard (only ``columns``).

    The caller must drop its reference before asking for the next one; then at most
    one row group is in memory whatever the shard and row-group count.
    """
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    missing = [c for c in columns if c not in pf.schema_arrow.names]
    if missing:
        raise MirrorError(f"{path}: not an AudioSet mirror shard: columns {missing} missing "
                          f"(has {pf.schema_arrow.names})")
    for i in range(pf.num_row_groups):
        yield pf.read_row_group(i, columns=list(columns))


def _audio_suffix(audio_path) -> str:
    ext = os.path.splitext(audio_path or "")[1].lower()
    return ext if ext in (".flac", ".wav", ".ogg", ".mp3") else ".flac"


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

    @property
    def complete(self) -> bool:
        return self.shards_done == self.shards_total

    def line(self) -> str:
        return (f"{self.summary.line()}; mirror clips not in the CSV: {self.extra_in_mirror:,}; "
                f"label mismatches: {self.label_mismatches:,}; shards {self.shards_done}/{self.shards_total}")


def _load_progress(path: str, source: dict) -> dict:
    if os.path.exists(path):
        with open(path) as f:
            progress = json.load(f)
        if progress.get("source") == source:
            return progress
    return {"source": source, "done_shards": [], "extra": {}, "label_mismatch": {}}


def _save_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def _write_csv(path: str, header, rows) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- one split

def acquire_split_hf(data_root: str, split: str, *, hf_repo: str = HF_REPO, hf_dir: Optional[str] = None,
                     revision: Optional[str] = None, cache_dir: Optional[str] = None,
                     endpoint: Optional[str] = None, workers: int = 0, max_shards: Optional[int] = None,
                     delete_shards: bool = False, progress: bool = False) -> HfAcquireResult:
    """Write every clip of ``split`` found in the mirror to ``<root>/audios/<split>/Y<id>.wav``.

    ``hf_dir``: read a downloaded copy (``DIR/data/<split dir>/*.parquet``) instead
    of the Hub. ``revision``: a branch, tag or commit of ``hf_repo`` (default: main,
    pinned to its commit sha for the whole run). ``max_shards`` stops after that
    many shards (a later call continues); CSV clips are declared ``not_in_mirror``
    only once every shard was read. ``delete_shards`` removes each downloaded shard
    from the Hub cache once its clips are written (the unbalanced split is ~2.4 TB).
    """
    from panns_core.data.acquire import FailureLog, availability_summary, write_summary

    if split not in HF_SPLIT_DIRS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(HF_SPLIT_DIRS)}")
    t0 = time.perf_counter()
    segments = read_segments_csv(metadata_paths(data_root)[split])
    csv_labels = {s.ytid: s.labels for s in segments}
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
    written = 0
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 0 else None
    try:
        todo = [s for s in shards if os.path.basename(s) not in state["done_shards"]]
        for shard in todo[:max_shards]:
            local = shard if hf_dir is not None else fetch_hub_shard(hf_repo, shard, source["revision"],
                                                                     cache_dir, endpoint)
            for group in iter_row_groups(local):
                ids = group.column("video_id").to_pylist()
                labels = group.column("labels").to_pylist()
                audio = group.column("audio")
                jobs = []
                for j, ytid in enumerate(ids):
                    mirror_labels = list(labels[j] or [])
                    if ytid not in csv_labels:
                        state["extra"][ytid] = mirror_labels
                        continue
                    if sorted(mirror_labels) != sorted(csv_labels[ytid]):
                        state["label_mismatch"][ytid] = [mirror_labels, list(csv_labels[ytid])]
                    dst = os.path.join(out_dir, f"Y{ytid}.wav")
                    if os.path.exists(dst):
                        continue
                    cell = audio[j].as_py() or {}
                    jobs.append((ytid, cell.get("bytes"), _audio_suffix(cell.get("path")), dst))
                del group, audio  # release this row group before the next one is read
                results = pool.map(_write_clip_job, jobs) if pool else map(_write_clip_job, jobs)
                for ytid, error in results:
                    if error is None:
                        log.clear(ytid)
                        written += 1
                    else:
                        log.record(ytid, "decode", f"{hf_repo} {os.path.basename(shard)}: {error}")
                del jobs
            state["done_shards"].append(os.path.basename(shard))
            log.save()
            _save_json(progress_path, state)
            if delete_shards and hf_dir is None:
                _remove_cached(local)
            if progress:
                print(f"{split}: shard {len(state['done_shards'])}/{len(shards)} done "
                      f"({written:,} clips written)", flush=True)
    finally:
        if pool:
            pool.shutdown()

    done = set(state["done_shards"])
    complete = all(os.path.basename(s) in done for s in shards)
    if complete:
        present = set(os.listdir(out_dir))
        for s in segments:
            if s.audio_name not in present and log.rows.get(s.ytid, ("",))[0] != "decode":
                log.record(s.ytid, "not_in_mirror", f"not in {hf_repo}@{source['revision'] or 'local copy'}")
    log.save()
    _write_csv(os.path.join(out_dir, "extra_in_mirror.csv"), ("youtube_id", "mirror_labels"),
               [(k, ",".join(v)) for k, v in sorted(state["extra"].items())])
    _write_csv(os.path.join(out_dir, "label_mismatches.csv"), ("youtube_id", "mirror_labels", "csv_labels"),
               [(k, ",".join(m), ",".join(c)) for k, (m, c) in sorted(state["label_mismatch"].items())])
    _save_json(os.path.join(out_dir, "source.json"), source)
    summary = availability_summary(data_root, split)
    write_summary(out_dir, summary, extra={"source": source, "extra_in_mirror": len(state["extra"]),
                                           "label_mismatches": len(state["label_mismatch"]),
                                           "shards_done": len(done & {os.path.basename(s) for s in shards}),
                                           "shards_total": len(shards)})
    return HfAcquireResult(summary, len(state["extra"]), len(state["label_mismatch"]), written,
                           len(done & {os.path.basename(s) for s in shards}), len(shards), source,
                           time.perf_counter() - t0)


def _remove_cached(path: str) -> None:
    """Delete a shard from the Hub cache: the snapshot link and the blob it points to."""
    blob = os.path.realpath(path)
    for p in {path, blob}:
        try:
            os.remove(p)
        except FileNotFoundError:
            pass
