"""Decode each clip once to 32 kHz mono, and cut it the way the paper trains and tests.

:class:`ClipAudio` decodes every clip of a :class:`TransferData` with
:func:`panns_core.audio_io.load_audio` (stereo averaged, band-limited
resampling), reports unreadable files (GTZAN's ``jazz.00054.wav``) and returns
the dataset without them. Waveforms live in memory, or as int16 ``.npy`` files
under ``cache_dir`` for datasets too large for memory (DCASE 2019: ~13k clips of
10 s).

Clip geometry (:func:`clip_segments`): a task either pads/cuts every clip to
``clip_seconds`` (one segment per clip; padding with silence or, ``pad="repeat"``,
by repeating the clip), or (``segment_seconds`` set, DCASE 2018
Task 2) cuts it into consecutive segments whose predictions are averaged.
"""

from __future__ import annotations

import hashlib
import logging
import os

import numpy as np

from panns_core.audio_io import AudioReadError, fit_to_length, load_audio, pad_or_truncate
from panns_core.transfer.base import TARGET_SAMPLE_RATE, TransferData

log = logging.getLogger(__name__)


def split_segments(x: np.ndarray, samples: int, pad: str = "zeros") -> np.ndarray:
    """Consecutive ``samples``-long segments ``(n, samples)``; at least one.

    The last segment of a longer clip is zero-padded; a clip shorter than one
    segment is brought to it by ``pad`` (:func:`~panns_core.audio_io.fit_to_length`).
    """
    if len(x) < samples:
        return fit_to_length(x, samples, pad)[None]
    n = max(1, int(np.ceil(len(x) / samples)))
    return pad_or_truncate(x, n * samples).reshape(n, samples)


def random_crop(x: np.ndarray, samples: int, rng: np.random.Generator, pad: str = "zeros") -> np.ndarray:
    """A random ``samples``-long window of ``x`` (padded by ``pad`` when ``x`` is shorter): 4-s training segments."""
    if len(x) <= samples:
        return fit_to_length(x, samples, pad)
    start = int(rng.integers(0, len(x) - samples + 1))
    return x[start:start + samples]


def clip_segments(x: np.ndarray, sample_rate: int, clip_seconds: float,
                  segment_seconds: float | None, pad: str = "zeros") -> np.ndarray:
    """The segments a clip is trained/evaluated on: ``(1, clip)`` or ``(n, segment)``.

    A clip shorter than ``clip_seconds`` (or than one segment) is brought to length by
    ``pad``: ``"zeros"`` (the official code) or ``"repeat"``.
    """
    if segment_seconds is None:
        return fit_to_length(x, int(round(clip_seconds * sample_rate)), pad)[None]
    return split_segments(x[:int(round(clip_seconds * sample_rate))], int(round(segment_seconds * sample_rate)),
                          pad)


def header_seconds(path: str) -> float | None:
    """The length a file's header declares (libsndfile formats), without decoding; None when unknown."""
    try:
        import soundfile as sf

        info = sf.info(path)
        return info.frames / info.samplerate if info.samplerate > 0 and 0 < info.frames < 2 ** 62 else None
    except Exception:  # noqa: BLE001 - unreadable or not a libsndfile format: decoding will tell
        return None


def _too_long(seconds: float, limit: float) -> str:
    h, rest = divmod(int(round(seconds)), 3600)
    return (f"too long for one clip ({h}:{rest // 60:02d}:{rest % 60:02d}, over the {limit:g}-s limit): cut the "
            "recording into clips and list each on its own row")


class ClipAudio:
    """32-kHz mono waveforms of clips, decoded once (in memory or as int16 ``.npy`` in ``cache_dir``)."""

    def __init__(self, sample_rate: int = TARGET_SAMPLE_RATE, cache_dir: str | None = None):
        self.sample_rate = int(sample_rate)
        self.cache_dir = cache_dir
        self._memory: dict[str, object] = {}  # clip_id -> waveform, or path of its .npy
        self.durations: dict[str, float] = {}  # clip_id -> seconds of the whole file (also beyond max_seconds)

    def _disk_path(self, path: str) -> str:
        st = os.stat(path)
        key = hashlib.sha1(f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{self.sample_rate}".encode())
        return os.path.join(self.cache_dir, key.hexdigest() + ".npy")

    def _decode(self, path: str, limit: int | None):
        """The waveform (memory mode) or the path of its int16 ``.npy`` (disk mode, read lazily)."""
        if self.cache_dir is None:
            x = load_audio(path, self.sample_rate)
            return len(x), (x if limit is None else x[:limit].copy())
        cached = self._disk_path(path)
        if not os.path.exists(cached):
            x = load_audio(path, self.sample_rate)
            from panns_core.fsutil import atomic_path

            with atomic_path(cached, suffix=".npy") as tmp:
                np.save(tmp, (np.clip(x, -1, 1) * 32767.0).astype(np.int16))
        return len(np.load(cached, mmap_mode="r")), cached

    def load(self, data: TransferData, max_seconds: float | None = None,
             max_file_seconds: float | None = None) -> TransferData:
        """Decode every clip of ``data``; unreadable files are logged, recorded in ``skipped`` and dropped.

        ``max_seconds`` keeps only the first seconds of each clip in memory
        (everything after ``clip_seconds`` is never used); :attr:`durations` still
        holds each file's whole length. ``max_file_seconds``: a longer file (a
        recording rather than a clip) is skipped and reported; where the header
        tells the length (every format libsndfile reads) it is not even decoded,
        so one 2-hour file cannot exhaust the memory.
        """
        bad = []
        limit = None if max_seconds is None else int(round(max_seconds * self.sample_rate))
        for clip in data.clips:
            if clip.clip_id in self._memory:
                continue
            if max_file_seconds is not None:
                declared = header_seconds(clip.path)
                if declared is not None and declared > max_file_seconds:
                    bad.append((clip.path, _too_long(declared, max_file_seconds)))
                    continue
            try:
                samples, self._memory[clip.clip_id] = self._decode(clip.path, limit)
            except AudioReadError as err:
                log.info("skipping unreadable clip %s", err)  # callers report data.skipped themselves
                bad.append((clip.path, f"unreadable audio: {err.reason}"))
                continue
            self.durations[clip.clip_id] = samples / self.sample_rate
            if max_file_seconds is not None and self.durations[clip.clip_id] > max_file_seconds:
                del self._memory[clip.clip_id]
                bad.append((clip.path, _too_long(self.durations.pop(clip.clip_id), max_file_seconds)))
        return data.without(bad)

    def __getitem__(self, clip_id: str) -> np.ndarray:
        try:
            x = self._memory[clip_id]
        except KeyError:
            raise KeyError(f"clip {clip_id!r} was not loaded (call ClipAudio.load(data) first)") from None
        if isinstance(x, str):
            return np.load(x, mmap_mode="r").astype(np.float32) / 32767.0
        return x

    def __contains__(self, clip_id: str) -> bool:
        return clip_id in self._memory

    def __len__(self) -> int:
        return len(self._memory)
