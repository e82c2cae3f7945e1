"""Audio for the inference demo when the user brings none.

The demo notebook prefers the user's files, then clips of the generated corpus
(``<data_root>/audios/eval/*.wav``). Without either it writes a few synthetic
files here, deliberately in mixed formats, rates, channel counts and lengths, so
that the demo also exercises decoding, resampling and chunking.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import soundfile as sf

from .audio_io import load_audio


def synthetic_signal(kind: str, sample_rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """A mono test signal: ``"tone"`` (harmonic), ``"chirp"``, ``"bursts"`` (gated noise) or ``"clicks"``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(sample_rate * seconds))) / sample_rate
    if kind == "tone":
        f0 = 220 * 2 ** rng.integers(0, 4)
        x = sum(0.3 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 5))
    elif kind == "chirp":
        x = 0.4 * np.sin(2 * np.pi * (200 + 1500 * t / max(seconds, 1e-3)) * t)
    elif kind == "bursts":
        x = 0.3 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 1.5 * t) > 0.3)
    elif kind == "clicks":
        x = np.zeros(t.size)
        x[:: max(1, sample_rate // 8)] = 0.9
    else:
        raise ValueError(f"unknown demo signal kind {kind!r}")
    return np.asarray(x, dtype=np.float32)


DEMO_FILES = (
    # name, kind, rate, channels, seconds, format
    ("tone_44k_stereo.flac", "tone", 44100, 2, 4.0, "FLAC"),
    ("chirp_22k_mono.wav", "chirp", 22050, 1, 3.0, "WAV"),
    ("bursts_48k_stereo.wav", "bursts", 48000, 2, 12.0, "WAV"),
    ("clicks_8k_mono.wav", "clicks", 8000, 1, 0.5, "WAV"),
)


def write_demo_files(folder: str) -> list[str]:
    """Write :data:`DEMO_FILES` into ``folder`` and return their paths."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for seed, (name, kind, rate, channels, seconds, fmt) in enumerate(DEMO_FILES):
        mono = synthetic_signal(kind, rate, seconds, seed)
        data = np.stack([mono * (1.0 - 0.3 * c) for c in range(channels)], axis=1)
        path = os.path.join(folder, name)
        sf.write(path, data, rate, format=fmt)
        paths.append(path)
    return paths


def generated_corpus_clips(data_root: str, count: int, split: str = "eval") -> list[str]:
    """The first ``count`` WAVs of a generated (or real) corpus split, sorted; [] if absent."""
    return sorted(glob.glob(os.path.join(data_root, "audios", split, "*.wav")))[:count]


def concatenate(paths, sample_rate: int, gap_seconds: float = 0.5) -> tuple[np.ndarray, list[dict]]:
    """Join files into one scene with silent gaps; returns the audio and where each file lies."""
    pieces, timeline, position = [], [], 0
    gap = np.zeros(int(gap_seconds * sample_rate), np.float32)
    for path in paths:
        audio = load_audio(path, sample_rate)
        timeline.append({"file": os.path.basename(path), "onset": position / sample_rate,
                         "offset": (position + audio.size) / sample_rate})
        pieces += [audio, gap]
        position += audio.size + gap.size
    if not pieces:
        raise ValueError("no files to concatenate")
    return np.concatenate(pieces[:-1]), timeline
