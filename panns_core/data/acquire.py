"""Clip acquisition: yt-dlp (Python API) + ffmpeg -> ``audios/<split>/Y<id>.wav``.

Each segment of a split's CSV becomes a 32 kHz mono 16-bit WAV cut to
``[start, end)``, written to a temporary name and renamed, so a file that exists
is complete and a rerun skips it. Every failure is recorded in
``audios/<split>/failures.csv`` (``youtube_id, reason, message``) with a reason
among :data:`REASONS`; the availability summary per split is written to
``audios/<split>/summary.json``.

The downloader is pluggable (any callable ``(ytid, workdir) -> path``; it may raise
:class:`AcquireError` with a reason) so tests run offline with a fake one. ffmpeg
is called as a program with an argument list -- never a shell string -- from the
system ``PATH`` or the binary shipped by ``imageio-ffmpeg``.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Optional

from panns_core.data.audioset import URLS, Segment, metadata_paths, read_segments_csv

REASONS = ("unavailable", "private", "network", "decode", "other")
"""Failure categories recorded in failures.csv by the yt-dlp path (plus ``bad_id`` for a CSV
id that is not a YouTube id; the Hub mirror path adds its own, see :mod:`.hf_audioset`)."""

PERMANENT = ("unavailable", "private")
"""Failures not retried on a rerun unless ``retry_failed=True``."""

NOTE_REASONS = ("duplicate_row", "bad_shard")
"""failures.csv reasons about a mirror row or shard rather than a clip (the Hub mirror path):
listed with the others, but never a clip's status (the clip itself may be available)."""

_YTID = re.compile(r"[A-Za-z0-9_-]{11}")


def valid_ytid(ytid) -> bool:
    """True for a YouTube video id as AudioSet uses them: 11 characters of ``A-Z a-z 0-9 - _``.

    Ids name files (``Y<id>.wav``); anything else (``/``, ``..``, spaces, control
    characters, another length) is refused before it reaches a path.
    """
    return isinstance(ytid, str) and _YTID.fullmatch(ytid) is not None

SAMPLE_RATE = 32000


class AcquireError(RuntimeError):
    """A clip could not be acquired; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason if reason in REASONS else "other"


_PATTERNS = (
    ("private", ("private video", "sign in to confirm", "members-only", "age-restricted", "login required",
                 "confirm your age", "requires payment")),
    ("unavailable", ("video unavailable", "not available", "has been removed", "account associated",
                     "terminated", "copyright", "does not exist", "no video formats", "is not a valid url",
                     "unable to extract", "incomplete youtube id")),
    ("network", ("timed out", "timeout", "connection", "temporary failure", "name resolution", "http error 5",
                 "http error 429", "too many requests", "network is unreachable", "reset by peer", "ssl")),
)


def classify_error(message: str) -> str:
    """Map a yt-dlp error message to a failure reason."""
    text = message.lower()
    for reason, needles in _PATTERNS:
        if any(n in text for n in needles):
            return reason
    return "other"


# --------------------------------------------------------------------------- tools

def find_ffmpeg(explicit: Optional[str] = None) -> str:
    """``explicit``, else ``ffmpeg`` on PATH, else the imageio-ffmpeg binary."""
    if explicit:
        return explicit
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as e:  # noqa: BLE001
        raise FileNotFoundError("ffmpeg not found: install it or `pip install imageio-ffmpeg`") from e


def ffmpeg_cut_args(ffmpeg: str, src: str, dst: str, start: float, duration: float,
                    sample_rate: int = SAMPLE_RATE) -> list:
    """Argument list: mono, ``sample_rate``, PCM s16 WAV of ``[start, start + duration)``."""
    return [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-ss", f"{start:.3f}", "-t", f"{duration:.3f}", "-i", src,
            "-vn", "-ac", "1", "-ar", str(sample_rate), "-c:a", "pcm_s16le", "-f", "wav", dst]


def cut_segment(ffmpeg: str, src: str, dst: str, start: float, duration: float,
                sample_rate: int = SAMPLE_RATE, timeout: float = 300) -> None:
    """Run ffmpeg; write ``dst`` atomically; raise ``AcquireError('decode')`` on failure."""
    tmp = dst + ".part.wav"
    try:
        proc = subprocess.run(ffmpeg_cut_args(ffmpeg, src, tmp, start, duration, sample_rate),
                              capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise AcquireError("decode", f"ffmpeg failed on {src}: {e}") from e
    if proc.returncode != 0 or not os.path.exists(tmp) or os.path.getsize(tmp) <= 44:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise AcquireError("decode", f"ffmpeg exit {proc.returncode} on {src}: {proc.stderr.strip()[-300:]}")
    os.replace(tmp, dst)


class YtDlpDownloader:
    """Download the best audio stream of a YouTube video with the yt-dlp Python API."""

    def __init__(self, *, cookies: Optional[str] = None, proxy: Optional[str] = None,
                 rate_limit: Optional[int] = None, retries: int = 3, socket_timeout: float = 30,
                 extra_params: Optional[dict] = None):
        self.params = {
            "format": "bestaudio/best", "quiet": True, "no_warnings": True, "noplaylist": True,
            "retries": retries, "fragment_retries": retries, "socket_timeout": socket_timeout,
            "noprogress": True, "overwrites": True,
        }
        if cookies:
            self.params["cookiefile"] = cookies
        if proxy:
            self.params["proxy"] = proxy
        if rate_limit:
            self.params["ratelimit"] = int(rate_limit)  # bytes per second
        self.params.update(extra_params or {})

    def __call__(self, ytid: str, workdir: str) -> str:
        import yt_dlp

        params = {**self.params, "outtmpl": os.path.join(workdir, "_Y%(id)s.%(ext)s")}
        try:
            with yt_dlp.YoutubeDL(params) as ydl:
                ydl.download([f"https://www.youtube.com/watch?v={ytid}"])
        except Exception as e:  # yt_dlp.utils.DownloadError and friends
            raise AcquireError(classify_error(str(e)), str(e)) from e
        files = [f for f in glob.glob(os.path.join(workdir, "_Y*")) if not f.endswith(".part")]
        if not files:
            raise AcquireError("other", f"yt-dlp reported success for {ytid} but wrote no file")
        return files[0]


# --------------------------------------------------------------------------- failures file

class FailureLog:
    """``failures.csv`` of one split: loaded at start, updated thread-safely, saved atomically.

    ``rows``: ``{youtube_id: (reason, message)}``, the clips that failed (what
    availability and pack read). ``notes``: ``{(key, reason): message}`` for a bad
    mirror row or shard that is not a clip's status (:data:`NOTE_REASONS`; ``key`` is
    the video id or the shard's file name); saved in the same file after the rows.
    """

    FIELDS = ("youtube_id", "reason", "message")

    def __init__(self, path: str):
        self.path = path
        self.lock = threading.Lock()
        self.rows = {}
        self.notes = {}
        if os.path.exists(path):
            with open(path, newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    reason, message = row.get("reason") or "other", row.get("message") or ""
                    if reason in NOTE_REASONS:
                        self.notes[(row["youtube_id"], reason)] = message
                    else:
                        self.rows[row["youtube_id"]] = (reason, message)

    def record(self, ytid: str, reason: str, message: str) -> None:
        with self.lock:
            self.rows[ytid] = (reason, " ".join(message.split())[:500])

    def clear(self, ytid: str) -> None:
        with self.lock:
            self.rows.pop(ytid, None)

    def note(self, key: str, reason: str, message: str) -> None:
        """Record (or replace) a note about a mirror row or shard; ``reason`` in :data:`NOTE_REASONS`."""
        with self.lock:
            self.notes[(key, reason)] = " ".join(message.split())[:2000]

    def clear_note(self, key: str, reason: str) -> None:
        with self.lock:
            self.notes.pop((key, reason), None)

    def save(self) -> None:
        with self.lock:
            from panns_core.fsutil import atomic_write

            with atomic_write(self.path, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(self.FIELDS)
                for ytid in sorted(self.rows):
                    w.writerow([ytid, *self.rows[ytid]])
                for key, reason in sorted(self.notes):
                    w.writerow([key, reason, self.notes[(key, reason)]])


class RateLimiter:
    """At most one download start every ``min_interval`` seconds across all threads."""

    def __init__(self, min_interval: float = 0.0):
        self.min_interval = float(min_interval)
        self.lock = threading.Lock()
        self.next_time = 0.0

    def wait(self) -> None:
        if self.min_interval <= 0:
            return
        with self.lock:
            now = time.monotonic()
            delay = max(0.0, self.next_time - now)
            self.next_time = max(now, self.next_time) + self.min_interval
        if delay:
            time.sleep(delay)


# --------------------------------------------------------------------------- one clip, one split

def acquire_clip(segment: Segment, out_dir: str, downloader: Callable, ffmpeg: str, *,
                 retries: int = 2, backoff: float = 2.0, limiter: Optional[RateLimiter] = None,
                 sample_rate: int = SAMPLE_RATE) -> str:
    """Download and cut one segment to ``out_dir/Y<id>.wav``; returns the path or raises AcquireError."""
    dst = os.path.join(out_dir, segment.audio_name)
    attempt = 0
    while True:
        with tempfile.TemporaryDirectory(prefix="acq_", dir=out_dir) as work:
            try:
                if limiter:
                    limiter.wait()
                src = downloader(segment.ytid, work)
                cut_segment(ffmpeg, src, dst, segment.start_seconds, segment.duration, sample_rate)
                return dst
            except AcquireError as e:
                if e.reason == "network" and attempt < retries:
                    attempt += 1
                    time.sleep(backoff * attempt)
                    continue
                raise
            except Exception as e:  # noqa: BLE001 - a downloader bug must not stop the batch
                raise AcquireError("other", f"{type(e).__name__}: {e}") from e


@dataclass
class AcquireSummary:
    split: str
    total: int
    available: int
    failed: dict  # reason -> count
    not_attempted: int

    @property
    def percent(self) -> float:
        return 100.0 * self.available / self.total if self.total else 0.0

    def line(self) -> str:
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(self.failed.items())) or "none"
        return (f"{self.split}: {self.percent:.1f}% of {self.total:,} clips available "
                f"({self.available:,} downloaded; failed: {reasons}; not attempted {self.not_attempted:,})")


def availability_summary(data_root: str, split: str) -> AcquireSummary:
    """Downloaded / failed / not attempted clips of a split (the paper's "94 %" figure)."""
    segments = read_segments_csv(metadata_paths(data_root)[split])
    out_dir = os.path.join(data_root, "audios", split)
    present = set(os.listdir(out_dir)) if os.path.isdir(out_dir) else set()
    failures = FailureLog(os.path.join(out_dir, "failures.csv")).rows
    available, failed, missing = 0, {}, 0
    for s in segments:
        if s.audio_name in present:
            available += 1
        elif s.ytid in failures:
            r = failures[s.ytid][0]
            failed[r] = failed.get(r, 0) + 1
        else:
            missing += 1
    return AcquireSummary(split, len(segments), available, failed, missing)


def acquire_split(data_root: str, split: str, *, downloader: Optional[Callable] = None,
                  ffmpeg: Optional[str] = None, workers: int = 4, limit: Optional[int] = None,
                  retries: int = 2, backoff: float = 2.0, min_interval: float = 0.0,
                  retry_failed: bool = False, cookies: Optional[str] = None, proxy: Optional[str] = None,
                  rate_limit: Optional[int] = None, sample_rate: int = SAMPLE_RATE,
                  progress: bool = False) -> AcquireSummary:
    """Acquire every clip of ``split`` not yet present; record failures; return the summary.

    ``limit`` caps the number of CSV rows considered (first rows). ``cookies``,
    ``proxy`` and ``rate_limit`` (bytes/s) go to yt-dlp when no ``downloader`` is given;
    ``min_interval`` spaces download starts; ``retries`` applies to network failures.
    """
    segments = read_segments_csv(metadata_paths(data_root)[split])[:limit]
    out_dir = os.path.join(data_root, "audios", split)
    os.makedirs(out_dir, exist_ok=True)
    log = FailureLog(os.path.join(out_dir, "failures.csv"))
    downloader = downloader or YtDlpDownloader(cookies=cookies, proxy=proxy, rate_limit=rate_limit)
    ffmpeg = find_ffmpeg(ffmpeg)
    limiter = RateLimiter(min_interval)

    todo = []
    for s in segments:
        if not valid_ytid(s.ytid):  # it would name a path and a URL
            log.record(s.ytid, "bad_id", f"{s.ytid!r} is not a YouTube id (11 characters of A-Z a-z 0-9 - _)")
            continue
        if os.path.exists(os.path.join(out_dir, s.audio_name)):
            continue
        if not retry_failed and log.rows.get(s.ytid, ("",))[0] in PERMANENT:
            continue
        todo.append(s)

    done = [0]

    def job(seg: Segment):
        try:
            acquire_clip(seg, out_dir, downloader, ffmpeg, retries=retries, backoff=backoff,
                         limiter=limiter, sample_rate=sample_rate)
            log.clear(seg.ytid)
        except AcquireError as e:
            log.record(seg.ytid, e.reason, str(e))
        done[0] += 1
        if done[0] % 100 == 0:
            log.save()
            if progress:
                print(f"{split}: {done[0]}/{len(todo)}", flush=True)

    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(job, todo))
    else:
        for seg in todo:
            job(seg)
    log.save()
    summary = availability_summary(data_root, split)
    if limit is not None:  # summarise only what was asked for
        present = set(os.listdir(out_dir))
        available = sum(s.audio_name in present for s in segments)
        failed = {}
        for s in segments:
            if s.audio_name not in present and s.ytid in log.rows:
                failed[log.rows[s.ytid][0]] = failed.get(log.rows[s.ytid][0], 0) + 1
        summary = AcquireSummary(split, len(segments), available, failed,
                                 len(segments) - available - sum(failed.values()))
    write_summary(out_dir, summary, extra={"source": YTDLP_SOURCE})
    with open(os.path.join(out_dir, "source.json"), "w") as f:
        json.dump(YTDLP_SOURCE, f)
    return summary


YTDLP_SOURCE = {"source": "yt-dlp"}
"""``source.json`` of clips downloaded from YouTube (the Hub mirror writes its repo and revision)."""


def write_summary(out_dir: str, summary: AcquireSummary, extra: Optional[dict] = None) -> None:
    """``<out_dir>/summary.json``: the availability counts (both sources write the same fields)."""
    record = {"split": summary.split, "total": summary.total, "available": summary.available,
              "percent": round(summary.percent, 2), "failed": summary.failed,
              "not_attempted": summary.not_attempted, "line": summary.line(), **(extra or {})}
    tmp = os.path.join(out_dir, "summary.json.tmp")
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, os.path.join(out_dir, "summary.json"))


def acquisition_source(data_root: str, split: str) -> dict:
    """Where the clips of ``split`` came from (``audios/<split>/source.json``).

    ``{"source": "yt-dlp"}`` or ``{"source": "hf", "repo": ..., "revision": ...}``;
    ``{"source": "unrecorded"}`` for clips or waveform files that came from elsewhere
    (e.g. an existing PANNs copy).
    """
    path = os.path.join(data_root, "audios", split, "source.json")
    if not os.path.exists(path):
        return {"source": "unrecorded"}
    with open(path) as f:
        return json.load(f)


def download_metadata(data_root: str, files=tuple(URLS)) -> dict:
    """Fetch the official metadata CSVs into ``<data_root>/metadata``.

    Google publishes no checksums for these files, so their SHA-256 is recorded on
    first download in ``metadata/checksums.json`` and verified on every later call.
    """
    import hashlib
    import urllib.request

    meta = os.path.join(data_root, "metadata")
    os.makedirs(meta, exist_ok=True)
    sums_path = os.path.join(meta, "checksums.json")
    sums = json.load(open(sums_path)) if os.path.exists(sums_path) else {}
    for name in files:
        dst = os.path.join(meta, name)
        if not os.path.exists(dst):
            from panns_core.fsutil import atomic_write

            with urllib.request.urlopen(URLS[name], timeout=60) as r, atomic_write(dst, "wb") as f:  # noqa: S310 - fixed https/http URL constants
                shutil.copyfileobj(r, f)
        digest = hashlib.sha256(open(dst, "rb").read()).hexdigest()
        if name in sums and sums[name] != digest:
            raise ValueError(f"{dst}: sha256 {digest} differs from the recorded {sums[name]}")
        sums[name] = digest
    with open(sums_path, "w") as f:
        json.dump(sums, f, indent=1)
    return sums
