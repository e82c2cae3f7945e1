"""The generated AudioSet-shaped corpus: the project's embedded, offline default.

``generate_corpus(root, ...)`` writes exactly what the acquisition step writes
for real AudioSet -- ``root/metadata/*.csv`` in the official formats and
``root/audios/<split>/Y<ytid>.wav`` (mono 16-bit) -- so the same
pack -> index -> train -> evaluate path runs on it unchanged.

What it is: up to 30 classes named after real AudioSet classes (real mids,
re-indexed 0..K-1 in its own ``class_labels_indices.csv``) whose sound can be
synthesised recognisably (tones, noises, FM sweeps, pulse trains, formant
babble, ...). Each clip holds 1-3 events over a brown-noise background at a
drawn SNR; unbalanced_train has long-tailed (Zipf) class frequencies so that
balanced sampling matters; balanced_train and eval have a fixed number of clips
per class. Labels can be made noisy per class (``label_quality``) and the true
rate is written to ``qa_true_counts.csv`` like AudioSet's QA file.

What it cannot show: anything about real-world audio. Absolute mAP values are
not comparable with the paper; it checks that the pipeline works, that models
learn, and how settings rank relative to each other on an easy, clean task.

Speed: each class has a bank of pre-synthesised variants (eval draws its own
bank from a different seed, so eval sounds are held-out parameter draws); a clip
is a background slice plus gain-scaled, faded variant crops, so generation runs
at hundreds of 10-s clips per second on one core.
"""

from __future__ import annotations

import csv
import json
import os
import struct
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Optional

import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt

from panns_core.data.audioset import (
    QaCount, Segment, audio_name_for, write_class_labels, write_qa_true_counts, write_segments_csv,
)
from panns_core.data.reader import float32_to_int16

RESOURCE_LABELS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "class_labels_indices.csv")
YTID_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))
SPLIT_IDS = {"balanced_train": 1, "unbalanced_train": 2, "eval": 3}


# --------------------------------------------------------------------------- signal helpers

def _t(n, sr):
    return np.arange(n, dtype=np.float32) / np.float32(sr)


def _cap(f, sr):
    """Keep a frequency below 45 % of the sample rate (low-rate corpora)."""
    return np.minimum(f, 0.45 * sr)


def _fm(freq, sr):
    """Sine with an instantaneous-frequency track (phase = running integral)."""
    return np.sin(2 * np.pi * np.cumsum(freq, dtype=np.float64) / sr).astype(np.float32)


def _gate(n, sr, rate, duty, phase=0.0):
    return (((_t(n, sr) * rate + phase) % 1.0) < duty).astype(np.float32)


def _smooth(x, sr, ms=5.0):
    k = max(1, int(sr * ms / 1000))
    return np.convolve(x, np.ones(k, dtype=np.float32) / k, mode="same").astype(np.float32)


def _filt(x, sr, kind, freq, order=4):
    nyq = sr / 2.0
    f = np.clip(np.atleast_1d(freq) / nyq, 1e-4, 0.99)
    sos = butter(order, f if kind in ("bandpass",) else f[0], btype=kind, output="sos")
    return sosfilt(sos, x).astype(np.float32)


def _pulses(n, sr, times, kernel):
    """Place ``kernel`` at each onset time (seconds) and sum (overlaps add)."""
    train = np.zeros(n, dtype=np.float32)
    idx = (np.asarray(times) * sr).astype(int)
    idx = idx[(idx >= 0) & (idx < n)]
    np.add.at(train, idx, 1.0)
    return fftconvolve(train, kernel)[:n].astype(np.float32)


def _decay(sr, seconds, tau):
    return np.exp(-_t(int(sr * seconds), sr) / tau).astype(np.float32)


def _periodic_times(rng, n, sr, period, jitter=0.0):
    times = np.arange(0.02, n / sr, period)
    return times + rng.uniform(0, jitter, size=len(times)) if jitter else times


# --------------------------------------------------------------------------- class synthesisers
# Each takes (rng, n, sr) and returns float32 (n,); salient content starts near t=0
# and repeats with a period <= ~0.8 s so that any crop from 0 holds the sound.

def _speech(rng, n, sr):
    t = _t(n, sr)
    f0 = rng.uniform(100, 220) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t)) * np.linspace(1.1, 0.9, n)
    phase = np.cumsum(f0) / sr
    source = np.diff(np.floor(phase), prepend=0).astype(np.float32)  # glottal impulses
    out = np.zeros(n, dtype=np.float32)
    pos = 0
    while pos < n:
        length = int(sr * rng.uniform(0.12, 0.3))
        seg = source[pos:pos + length]
        env = np.hanning(len(seg)).astype(np.float32)
        voiced = sum(_filt(seg, sr, "bandpass", [f * 0.9, f * 1.1], order=2) * g
                     for f, g in ((rng.uniform(300, 800), 1.0), (rng.uniform(900, 2300), 0.6),
                                  (rng.uniform(2400, 3200), 0.3)) if f * 1.1 < sr / 2)
        out[pos:pos + len(seg)] = voiced * env
        pos += length + int(sr * rng.uniform(0.0, 0.06))
    return out


def _sine(rng, n, sr):
    return np.sin(2 * np.pi * _cap(rng.uniform(400, 900), sr) * _t(n, sr)).astype(np.float32)


def _white(rng, n, sr):
    return rng.standard_normal(n, dtype=np.float32)


def _pink(rng, n, sr):
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    return np.fft.irfft(spec, n).astype(np.float32)


def _siren(rng, n, sr):
    t = _t(n, sr)
    fc, dev, rate = rng.uniform(700, 1100), rng.uniform(250, 450), rng.uniform(1.5, 3.0)
    return _fm(_cap(fc + dev * np.sin(2 * np.pi * rate * t), sr), sr)


def _beep(rng, n, sr):
    f = _cap(rng.uniform(1000, 2000), sr)
    return np.sin(2 * np.pi * f * _t(n, sr)) * _smooth(_gate(n, sr, rng.uniform(2.5, 5), 0.5), sr)


def _chirp(rng, n, sr):
    period = rng.uniform(0.25, 0.5)
    t = _t(n, sr) % period
    f = _cap(200 + (rng.uniform(3000, 5000) - 200) * t / period, sr)
    return _fm(f, sr)


def _click_kernel(rng, sr, fc, tau=0.002):
    k = _decay(sr, 0.02, tau) * np.sin(2 * np.pi * _cap(fc, sr) * _t(int(sr * 0.02), sr))
    return k.astype(np.float32)


def _tick_tock(rng, n, sr):
    period = rng.uniform(0.4, 0.6)
    tick = _pulses(n, sr, _periodic_times(rng, n, sr, 2 * period), _click_kernel(rng, sr, 3000))
    tock = _pulses(n, sr, _periodic_times(rng, n, sr, 2 * period) + period, _click_kernel(rng, sr, 1200))
    return tick + tock


def _clicking(rng, n, sr):
    times = _periodic_times(rng, n, sr, 1 / rng.uniform(12, 25), jitter=0.01)
    return _pulses(n, sr, times, _click_kernel(rng, sr, rng.uniform(4000, 7000), 0.0008))


def _harmonics(f0, t, amps):
    return sum(a * np.sin(2 * np.pi * f0 * (h + 1) * t) for h, a in enumerate(amps)).astype(np.float32)


def _hum(rng, n, sr):
    f0 = rng.choice([50.0, 60.0])
    return _harmonics(f0, _t(n, sr), [1.0, 0.6, 0.5, 0.3, 0.2, 0.1])


def _buzz(rng, n, sr):
    t = _t(n, sr)
    f0 = rng.uniform(150, 250)
    square = np.sign(np.sin(2 * np.pi * f0 * t)).astype(np.float32)
    return _filt(square, sr, "lowpass", 6000) * (1 + 0.5 * np.sin(2 * np.pi * rng.uniform(8, 14) * t))


def _drum(rng, n, sr):
    ks = int(sr * 0.25)
    kt = _t(ks, sr)
    f = rng.uniform(50, 80) + rng.uniform(60, 120) * np.exp(-kt / 0.03)
    kernel = _fm(f, sr) * np.exp(-kt / 0.08)
    return _pulses(n, sr, _periodic_times(rng, n, sr, rng.uniform(0.3, 0.5)), kernel)


def _struck(rng, n, sr, base, ratios, tau, period):
    ks = min(n, int(sr * period))
    kt = _t(ks, sr)
    kernel = sum(np.sin(2 * np.pi * _cap(base * r, sr) * kt) * np.exp(-kt / (tau / (1 + i * 0.5)))
                 for i, r in enumerate(ratios)).astype(np.float32)
    return _pulses(n, sr, _periodic_times(rng, n, sr, period), kernel)


def _bell(rng, n, sr):
    return _struck(rng, n, sr, rng.uniform(600, 1200), (1.0, 2.76, 5.40, 8.93), 0.25, rng.uniform(0.5, 0.8))


def _gong(rng, n, sr):
    return _struck(rng, n, sr, rng.uniform(110, 220), (1.0, 1.52, 2.31, 3.09), 0.6, rng.uniform(0.7, 0.9))


def _whistle(rng, n, sr):
    t = _t(n, sr)
    return _fm(_cap(rng.uniform(2200, 3200) * (1 + 0.02 * np.sin(2 * np.pi * rng.uniform(4, 7) * t)), sr), sr)


def _rain(rng, n, sr):
    hiss = _filt(rng.standard_normal(n).astype(np.float32), sr, "highpass", 2000) * 0.3
    times = np.sort(rng.uniform(0, n / sr, size=int(n / sr * rng.uniform(150, 300))))
    drops = _pulses(n, sr, times, _click_kernel(rng, sr, rng.uniform(2500, 5000), 0.001))
    return hiss + drops * rng.uniform(0.3, 1.0)


def _engine(rng, n, sr):
    t = _t(n, sr)
    noise = _filt(rng.standard_normal(n).astype(np.float32), sr, "lowpass", 800)
    fire = rng.uniform(25, 45)
    return noise * (1 + 0.9 * np.sin(2 * np.pi * fire * t)) ** 2 + 0.5 * _harmonics(fire * 2, t, [1, 0.5, 0.3])


def _bird(rng, n, sr):
    out = np.zeros(n, dtype=np.float32)
    length = int(sr * rng.uniform(0.04, 0.1))
    kt = _t(length, sr)
    f_hi, f_lo = rng.uniform(4500, 6500), rng.uniform(2000, 3500)
    note = _fm(_cap(f_hi + (f_lo - f_hi) * kt / kt[-1], sr), sr) * np.hanning(length).astype(np.float32)
    rate = rng.uniform(8, 15)
    times = [tt for tt in np.arange(0.01, n / sr, 1 / rate) if (tt % 0.8) < 0.55]
    return out + _pulses(n, sr, times, note)


def _heartbeat(rng, n, sr):
    ks = int(sr * 0.12)
    kt = _t(ks, sr)
    thump = np.sin(2 * np.pi * rng.uniform(40, 70) * kt) * np.hanning(ks).astype(np.float32)
    period = rng.uniform(0.6, 0.85)
    times = _periodic_times(rng, n, sr, period)
    return _pulses(n, sr, times, thump) + 0.7 * _pulses(n, sr, times + 0.25, thump)


def _dual_tone(f1, f2, n, sr):
    t = _t(n, sr)
    return (np.sin(2 * np.pi * f1 * t) + np.sin(2 * np.pi * f2 * t)).astype(np.float32)


def _dial_tone(rng, n, sr):
    return _dual_tone(350.0, 440.0, n, sr)


def _busy(rng, n, sr):
    return _dual_tone(480.0, 620.0, n, sr) * _smooth(_gate(n, sr, rng.uniform(1.6, 2.2), 0.5), sr)


def _sonar(rng, n, sr):
    ks = int(sr * 0.6)
    kt = _t(ks, sr)
    ping = np.sin(2 * np.pi * _cap(rng.uniform(1200, 1800), sr) * kt) * np.exp(-kt / 0.15)
    return _pulses(n, sr, _periodic_times(rng, n, sr, rng.uniform(0.6, 0.8)), ping.astype(np.float32))


def _cricket(rng, n, sr):
    f = _cap(rng.uniform(4200, 5200), sr)
    gate = _gate(n, sr, rng.uniform(25, 35), 0.5) * _gate(n, sr, rng.uniform(2.5, 4), 0.4)
    return np.sin(2 * np.pi * f * _t(n, sr)) * _smooth(gate, sr, 2)


def _crackle(rng, n, sr):
    times = rng.uniform(0, n / sr, size=int(n / sr * rng.uniform(30, 60)))
    kernel = rng.standard_normal(int(sr * 0.004)).astype(np.float32) * _decay(sr, 0.004, 0.001)
    train = _pulses(n, sr, times, kernel)
    return train * rng.uniform(0.2, 1.0, size=1).astype(np.float32)


def _whoosh(rng, n, sr):
    t = _t(n, sr)
    noise = rng.standard_normal(n).astype(np.float32)
    low, high = _filt(noise, sr, "lowpass", 600), _filt(noise, sr, "highpass", 3000)
    period = rng.uniform(0.5, 0.8)
    ph = (t % period) / period
    env = np.sin(np.pi * ph) ** 2
    return (low * (1 - ph) + high * ph) * env


def _smoke_alarm(rng, n, sr):
    f = _cap(rng.uniform(3100, 3400), sr)
    return np.sin(2 * np.pi * f * _t(n, sr)) * _smooth(_gate(n, sr, rng.uniform(1.4, 2.0), 0.25), sr)


def _throbbing(rng, n, sr):
    t = _t(n, sr)
    noise = _filt(rng.standard_normal(n).astype(np.float32), sr, "bandpass", [100, 400])
    return noise * np.maximum(0, np.sin(2 * np.pi * rng.uniform(2, 4) * t)) ** 2


def _ringtone(rng, n, sr):
    t = _t(n, sr)
    f1, f2 = rng.uniform(700, 900), rng.uniform(1100, 1300)
    sel = _gate(n, sr, rng.uniform(12, 18), 0.5)
    return _fm(_cap(f1 + (f2 - f1) * sel, sr), sr) * _gate(n, sr, rng.uniform(1.0, 1.3), 0.7)


def _organ(rng, n, sr):
    t = _t(n, sr)
    root = rng.uniform(180, 300)
    return sum(_harmonics(root * r, t, [1, 0.5, 0.35, 0.2]) for r in (1.0, 1.26, 1.5)).astype(np.float32)


def _croak(rng, n, sr):
    ks = int(sr * 0.2)
    kt = _t(ks, sr)
    f0 = rng.uniform(80, 140)
    pulse_train = (np.sin(2 * np.pi * f0 * kt) > 0.9).astype(np.float32)
    croak = _filt(pulse_train, sr, "bandpass", [600, 1600], order=2) * np.hanning(ks).astype(np.float32)
    return _pulses(n, sr, _periodic_times(rng, n, sr, rng.uniform(0.35, 0.5)), croak)


# Classes whose only cue lies where one front-end setting matters (the default profile's sample-rate
# design): energy in 4-8 kHz only, gone at 8 kHz (fmax 4 kHz), kept at 16 kHz.

def _band_noise(rng, n, sr, lo, hi):
    """Noise with its spectrum inside [lo, hi] Hz only (zero outside, 5 % raised-cosine edges): nothing leaks
    across a resampler's cut-off."""
    lo, hi = min(lo, 0.4 * sr), min(hi, 0.45 * sr)
    f = np.fft.rfftfreq(n, 1 / sr)
    spec = np.fft.rfft(rng.standard_normal(n))
    edge = 0.05 * (hi - lo)
    gain = np.clip(np.minimum(f - lo, hi - f) / edge, 0, 1)
    return np.fft.irfft(spec * (0.5 - 0.5 * np.cos(np.pi * gain)), n).astype(np.float32)


def _whistling(rng, n, sr):
    """A tone at 5-6.5 kHz with a slow vibrato: audible at 16 and 32 kHz, gone at 8 kHz (fmax 4 kHz)."""
    t = _t(n, sr)
    f = rng.uniform(5000, 6500) * (1 + 0.02 * np.sin(2 * np.pi * rng.uniform(3, 6) * t))
    return _fm(_cap(f, sr), sr)


def _sizzle(rng, n, sr):
    """Short crackling bursts of noise in 4.5-7.5 kHz only: audible at 16 and 32 kHz, gone at 8 kHz."""
    carrier = _band_noise(rng, n, sr, 4500, 7500)
    times = rng.uniform(0, n / sr, size=max(1, int(n / sr * rng.uniform(20, 40))))
    burst = np.hanning(max(3, int(sr * rng.uniform(0.005, 0.02)))).astype(np.float32)
    return carrier * np.minimum(_pulses(n, sr, times, burst), 1.0)


def _steam(rng, n, sr):
    """Noise in 5-7.2 kHz only: audible at 16 and 32 kHz, gone at 8 kHz."""
    return _band_noise(rng, n, sr, 5000, 7200)


@dataclass(frozen=True)
class SynthClass:
    display_name: str  # exactly as in AudioSet's class_labels_indices.csv
    synth: callable
    stationary: bool  # a crop may start anywhere (otherwise crops start at 0)
    cue: Optional[str] = None  # the one front-end setting its cue was designed to need (see CUES)


CLASSES = (
    SynthClass("Speech", _speech, True),
    SynthClass("Sine wave", _sine, True),
    SynthClass("White noise", _white, True),
    SynthClass("Pink noise", _pink, True),
    SynthClass("Siren", _siren, True),
    SynthClass("Beep, bleep", _beep, False),
    SynthClass("Chirp tone", _chirp, False),
    SynthClass("Tick-tock", _tick_tock, False),
    SynthClass("Clicking", _clicking, True),
    SynthClass("Hum", _hum, True),
    SynthClass("Buzz", _buzz, True),
    SynthClass("Drum", _drum, False),
    SynthClass("Bell", _bell, False),
    SynthClass("Whistle", _whistle, True),
    SynthClass("Rain", _rain, True),
    SynthClass("Engine", _engine, True),
    SynthClass("Bird vocalization, bird call, bird song", _bird, False),
    SynthClass("Heart sounds, heartbeat", _heartbeat, False),
    SynthClass("Dial tone", _dial_tone, True),
    SynthClass("Busy signal", _busy, False),
    SynthClass("Sonar", _sonar, False),
    SynthClass("Cricket", _cricket, True),
    SynthClass("Crackle", _crackle, True),
    SynthClass("Whoosh, swoosh, swish", _whoosh, False),
    SynthClass("Smoke detector, smoke alarm", _smoke_alarm, False),
    SynthClass("Gong", _gong, False),
    SynthClass("Throbbing", _throbbing, False),
    SynthClass("Ringtone", _ringtone, False),
    SynthClass("Organ", _organ, True),
    SynthClass("Croak", _croak, False),
    SynthClass("Steam", _steam, True, "energy in 4-8 kHz only"),
    SynthClass("Whistling", _whistling, True, "energy in 4-8 kHz only"),
    SynthClass("Sizzle", _sizzle, True, "energy in 4-8 kHz only"),
)
"""All synthesisable classes, in the order ``num_classes`` takes them (``classes`` picks any by name)."""

CLASS_BY_NAME = {c.display_name: c for c in CLASSES}

CUES = {
    "energy in 4-8 kHz only": "gone when the audio is resampled to 8 kHz (fmax 4 kHz)",
}
"""The designed cues: which setting removes each (classes carry one in ``SynthClass.cue``)."""

MAX_CLASSES = len(CLASSES)


@lru_cache(maxsize=1)
def _audioset_mids() -> dict:
    with open(RESOURCE_LABELS, newline="", encoding="utf-8") as f:
        return {row["display_name"]: row["mid"] for row in csv.DictReader(f)}


# --------------------------------------------------------------------------- configuration

DIFFICULTY = {
    "easy": {"snr_db": (10.0, 25.0), "overlap": 0.0},
    "medium": {"snr_db": (3.0, 20.0), "overlap": 0.5},
    "hard": {"snr_db": (-6.0, 10.0), "overlap": 1.0},
}
"""SNR range (event RMS over background RMS) and probability that a clip's events may overlap."""


@dataclass
class CorpusConfig:
    """Everything that determines a generated corpus (written to ``metadata/synthetic.json``)."""

    num_classes: Optional[int] = None  # the first N of CLASSES (None: all, or as many as ``classes`` names)
    classes: Optional[tuple] = None  # display names of CLASSES, in index order (None: the first num_classes)
    sample_rate: int = 32000
    clip_seconds: float = 10.0
    balanced_per_class: int = 20
    eval_per_class: int = 20
    unbalanced_clips: int = 2000
    zipf_alpha: float = 1.0
    max_events: int = 3
    event_count_probs: tuple = (0.5, 0.35, 0.15)
    difficulty: str = "medium"
    snr_db: Optional[tuple] = None  # overrides the difficulty's range
    overlap: Optional[float] = None  # overrides the difficulty's overlap
    label_quality: tuple = (0.8, 1.0)  # per-class probability that a label's sound is really that class
    qa_rated_per_class: int = 10
    bank_size: int = 12
    seed: int = 0

    def __post_init__(self):
        if self.classes is not None:
            names = list(self.classes)
            unknown = [c for c in names if c not in CLASS_BY_NAME]
            if unknown or len(set(names)) != len(names) or not names:
                raise ValueError(f"classes must name distinct synthesisable classes; unknown: {unknown}, "
                                 f"known: {sorted(CLASS_BY_NAME)}")
            if self.num_classes is not None and self.num_classes != len(names):
                raise ValueError(f"num_classes={self.num_classes} disagrees with the {len(names)} classes named")
            self.classes = names
            self.num_classes = len(names)
        elif self.num_classes is None:
            self.num_classes = MAX_CLASSES
        if not 1 <= self.num_classes <= MAX_CLASSES:
            raise ValueError(f"num_classes must be in 1..{MAX_CLASSES}, got {self.num_classes}")
        if self.difficulty not in DIFFICULTY:
            raise ValueError(f"difficulty must be one of {sorted(DIFFICULTY)}, got {self.difficulty!r}")
        if self.clip_seconds <= 0 or self.sample_rate < 4000:
            raise ValueError("clip_seconds must be > 0 and sample_rate >= 4000")
        if not 1 <= self.max_events <= len(self.event_count_probs):
            raise ValueError(f"max_events must be in 1..{len(self.event_count_probs)}")
        lo, hi = self.label_quality
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"label_quality must satisfy 0 < lo <= hi <= 1, got {self.label_quality}")

    @property
    def class_specs(self) -> list:
        """The corpus's classes (index k of the corpus = entry k)."""
        if self.classes is not None:
            return [CLASS_BY_NAME[c] for c in self.classes]
        return list(CLASSES[: self.num_classes])

    @property
    def snr_range(self) -> tuple:
        return tuple(self.snr_db) if self.snr_db is not None else DIFFICULTY[self.difficulty]["snr_db"]

    @property
    def overlap_prob(self) -> float:
        return float(self.overlap) if self.overlap is not None else DIFFICULTY[self.difficulty]["overlap"]

    @property
    def clip_samples(self) -> int:
        return int(round(self.sample_rate * self.clip_seconds))


PRESETS = {
    "smoke": dict(num_classes=24, clip_seconds=2.0, balanced_per_class=10, eval_per_class=8,
                  unbalanced_clips=480, difficulty="medium"),
    "small": dict(num_classes=30, clip_seconds=5.0, balanced_per_class=20, eval_per_class=15,
                  unbalanced_clips=1500),
    "default": dict(),
}
"""Documented presets; ``smoke`` is what the smoke profile uses (~950 2-s clips, 24 classes)."""


# --------------------------------------------------------------------------- the clip plan

@dataclass
class PlannedClip:
    split: str
    ytid: str
    start_seconds: float
    labels: list  # class indices (label side)
    sounds: list  # class index actually synthesised for each label (label noise)
    rng_key: tuple = field(default_factory=tuple)


def _class_probs(cfg: CorpusConfig, rng) -> np.ndarray:
    """Zipf frequencies over a seeded class order: the long tail of unbalanced_train."""
    ranks = rng.permutation(cfg.num_classes)
    p = 1.0 / (ranks + 1.0) ** cfg.zipf_alpha
    return p / p.sum()


def _ytids(rng, count: int) -> list:
    ids, seen = [], set()
    while len(ids) < count:
        for chars in rng.choice(YTID_ALPHABET, size=(count, 11)):
            s = "".join(chars)
            if s not in seen:
                seen.add(s)
                ids.append(s)
                if len(ids) == count:
                    break
    return ids


def plan_corpus(cfg: CorpusConfig) -> dict:
    """Which clips exist and what they contain (labels, true sounds); no audio yet."""
    rng = np.random.default_rng([cfg.seed, 0])
    probs = _class_probs(cfg, rng)
    quality = rng.uniform(*cfg.label_quality, size=cfg.num_classes)
    k_probs = np.asarray(cfg.event_count_probs[: cfg.max_events], dtype=float)
    k_probs /= k_probs.sum()
    sizes = {"balanced_train": cfg.balanced_per_class * cfg.num_classes,
             "unbalanced_train": cfg.unbalanced_clips, "eval": cfg.eval_per_class * cfg.num_classes}
    ids = iter(_ytids(rng, sum(sizes.values())))
    plan = {}
    for split in ("balanced_train", "unbalanced_train", "eval"):
        clips = []
        for i in range(sizes[split]):
            n_events = min(int(rng.choice(len(k_probs), p=k_probs)) + 1, cfg.num_classes)
            if split == "unbalanced_train":
                labels = list(rng.choice(cfg.num_classes, size=n_events, replace=False, p=probs))
            else:  # every class leads the same number of clips
                first = i % cfg.num_classes
                others = rng.choice(np.delete(np.arange(cfg.num_classes), first), size=n_events - 1, replace=False)
                labels = [first, *others]
            sounds = [c if rng.random() < quality[c] else
                      int(rng.choice(np.delete(np.arange(cfg.num_classes), c))) if cfg.num_classes > 1 else c
                      for c in labels]
            start = float(rng.integers(0, 30) * 10)
            clips.append(PlannedClip(split, next(ids), start, [int(c) for c in labels], [int(s) for s in sounds],
                                     (cfg.seed, SPLIT_IDS[split], i)))
        plan[split] = clips
    return {"clips": plan, "class_probs": probs, "label_quality": quality}


# --------------------------------------------------------------------------- rendering

def _unit_rms(x: np.ndarray) -> np.ndarray:
    r = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    return (x / r).astype(np.float32) if r > 0 else x.astype(np.float32)


class Renderer:
    """Holds the variant banks and the background for one (config, bank seed)."""

    def __init__(self, cfg: CorpusConfig, bank_seed: int):
        self.cfg = cfg
        sr = cfg.sample_rate
        self.event_max = min(5.0, cfg.clip_seconds)
        self.event_min = min(1.0, cfg.clip_seconds / 2)
        n = int(round(self.event_max * sr))
        self.banks = []
        self.specs = cfg.class_specs
        for c, spec in enumerate(self.specs):
            rng = np.random.default_rng([cfg.seed, 100, bank_seed, c])
            self.banks.append([_unit_rms(np.asarray(spec.synth(rng, n, sr), dtype=np.float32)[:n])
                               for _ in range(cfg.bank_size)])
        rng = np.random.default_rng([cfg.seed, 200, bank_seed])
        bg_len = cfg.clip_samples + int(sr * 5)
        brown = np.cumsum(rng.standard_normal(bg_len)).astype(np.float32)
        self.background = _unit_rms(_filt(brown, sr, "highpass", 20, order=2))

    def render(self, clip: PlannedClip) -> tuple:
        """(int16 waveform, event list) for one planned clip; deterministic by ``clip.rng_key``."""
        cfg, sr = self.cfg, self.cfg.sample_rate
        rng = np.random.default_rng(list(clip.rng_key))
        n = cfg.clip_samples
        off = int(rng.integers(0, len(self.background) - n + 1))
        bg_rms = float(rng.uniform(0.005, 0.02))
        y = self.background[off:off + n] * np.float32(bg_rms)
        k = len(clip.labels)
        overlap = rng.random() < cfg.overlap_prob
        slot = cfg.clip_seconds / (1 if overlap else k)
        events = []
        for j, (label, sound) in enumerate(zip(clip.labels, clip.sounds)):
            d = float(rng.uniform(min(self.event_min, slot), min(self.event_max, slot)))
            onset = float(rng.uniform(0, cfg.clip_seconds - d)) if overlap else j * slot + float(rng.uniform(0, slot - d))
            variant = self.banks[sound][int(rng.integers(cfg.bank_size))]
            m = int(d * sr)
            start = int(rng.integers(0, len(variant) - m + 1)) if self.specs[sound].stationary else 0
            seg = variant[start:start + m].copy()
            fade = min(int(0.01 * sr), m // 2)
            if fade:
                ramp = np.linspace(0, 1, fade, dtype=np.float32)
                seg[:fade] *= ramp
                seg[m - fade:] *= ramp[::-1]
            snr = float(rng.uniform(*cfg.snr_range))
            a = int(onset * sr)
            seg = seg[: n - a]
            y[a:a + len(seg)] += seg * np.float32(bg_rms * 10 ** (snr / 20))
            events.append({"label": label, "sound": sound, "onset": round(onset, 3),
                           "offset": round(onset + len(seg) / sr, 3), "snr_db": round(snr, 2)})
        peak = float(np.max(np.abs(y)))
        if peak > 0.9:
            y *= np.float32(0.9 / peak)
        return float32_to_int16(y), events


_WORKER = {}


def write_wav_int16(path: str, samples: np.ndarray, sample_rate: int) -> None:
    """Mono 16-bit PCM WAV with a canonical 44-byte header.

    About 10x faster than ``soundfile.write`` for 10-s clips, which matters at
    hundreds of clips per second; the file is what ffmpeg writes for ``-ac 1 -f s16le``
    in a WAV container and reads back with soundfile/librosa.
    """
    data = np.ascontiguousarray(samples, dtype="<i2").tobytes()
    header = b"".join([
        b"RIFF", struct.pack("<I", 36 + len(data)), b"WAVE",
        b"fmt ", struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16),
        b"data", struct.pack("<I", len(data)),
    ])
    with open(path, "wb") as f:
        f.write(header)
        f.write(data)


def _render_chunk(args):
    cfg_dict, bank_seed, clips, out_dir = args
    key = (json.dumps(cfg_dict, sort_keys=True), bank_seed)
    if key not in _WORKER:
        _WORKER.clear()
        _WORKER[key] = Renderer(CorpusConfig(**cfg_dict), bank_seed)
    renderer = _WORKER[key]
    out = []
    for clip in clips:
        wave, events = renderer.render(clip)
        write_wav_int16(os.path.join(out_dir, audio_name_for(clip.ytid)), wave, renderer.cfg.sample_rate)
        out.append(events)
    return out


# --------------------------------------------------------------------------- the corpus

@dataclass
class CorpusInfo:
    root: str
    config: CorpusConfig
    counts: dict
    class_counts: dict  # split -> per-class label counts
    seconds: float

    @property
    def clips_per_second(self) -> float:
        return sum(self.counts.values()) / self.seconds


def class_mids_and_names(num_classes, classes=None) -> tuple:
    """AudioSet mids and display names of the first ``num_classes`` classes, or of the ``classes`` named."""
    mids = _audioset_mids()
    names = list(classes) if classes is not None else [c.display_name for c in CLASSES[:num_classes]]
    missing = [n for n in names if n not in mids]
    if missing:
        raise RuntimeError(f"{RESOURCE_LABELS}: classes not found: {missing}")
    return [mids[n] for n in names], names


def generate_corpus(root: str, *, preset: Optional[str] = None, workers: int = 0,
                    splits=("balanced_train", "unbalanced_train", "eval"), **overrides) -> CorpusInfo:
    """Write an AudioSet-shaped corpus under ``root`` (see the module docstring).

    ``preset`` picks a :data:`PRESETS` entry; keyword ``overrides`` set any
    :class:`CorpusConfig` field. ``workers`` > 0 renders with that many processes;
    the output is identical for any ``workers``.
    """
    t0 = time.perf_counter()
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    settings = {**PRESETS.get(preset or "default", {}), **overrides}
    if "classes" in overrides and "num_classes" not in overrides:
        settings.pop("num_classes", None)  # the named classes set the count, not the preset's
    cfg = CorpusConfig(**settings)
    plan = plan_corpus(cfg)
    mids, names = class_mids_and_names(cfg.num_classes, cfg.classes)
    meta_dir = os.path.join(root, "metadata")
    os.makedirs(meta_dir, exist_ok=True)
    write_class_labels(os.path.join(meta_dir, "class_labels_indices.csv"), mids, names)

    counts, class_counts, all_events = {}, {}, {}
    cfg_dict = asdict(cfg)
    for split in splits:
        clips = plan["clips"][split]
        out_dir = os.path.join(root, "audios", split)
        os.makedirs(out_dir, exist_ok=True)
        bank_seed = 1 if split == "eval" else 0  # eval sounds are held-out parameter draws
        chunk = max(1, min(64, len(clips) // max(1, 4 * workers) or 1))
        jobs = [(cfg_dict, bank_seed, clips[i:i + chunk], out_dir) for i in range(0, len(clips), chunk)]
        if workers > 0:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(_render_chunk, jobs))
        else:
            results = [_render_chunk(j) for j in jobs]
        events = [e for r in results for e in r]
        segments = [Segment(c.ytid, c.start_seconds, c.start_seconds + cfg.clip_seconds,
                            tuple(mids[k] for k in sorted(c.labels))) for c in clips]
        write_segments_csv(os.path.join(meta_dir, f"{split}_segments.csv"), segments,
                           created=f"by panns_core.data.synthetic (seed {cfg.seed})")
        counts[split] = len(clips)
        cc = np.zeros(cfg.num_classes, dtype=int)
        for c in clips:
            cc[c.labels] += 1
        class_counts[split] = cc.tolist()
        all_events[split] = list(zip(clips, events))
    _write_qa(os.path.join(meta_dir, "qa_true_counts.csv"), plan, cfg, mids)
    _write_events(os.path.join(meta_dir, "synthetic_events.csv"), all_events, mids)
    info = {"generator": "panns_core.data.synthetic", "synthetic": True, "config": cfg_dict,
            "class_names": names, "class_mids": mids, "counts": counts, "class_counts": class_counts,
            "label_quality": np.round(plan["label_quality"], 4).tolist()}
    with open(os.path.join(meta_dir, "synthetic.json"), "w") as f:
        json.dump(info, f, indent=1)
    return CorpusInfo(os.path.abspath(root), cfg, counts, class_counts, time.perf_counter() - t0)


def _write_qa(path, plan, cfg, mids):
    """AudioSet-style label-quality counts: rate up to N labelled train clips per class."""
    rng = np.random.default_rng([cfg.seed, 300])
    counts = []
    pool = plan["clips"]["balanced_train"] + plan["clips"]["unbalanced_train"]
    for k in range(cfg.num_classes):
        pairs = [(c, j) for c in pool for j, lab in enumerate(c.labels) if lab == k]
        rated = [pairs[i] for i in rng.permutation(len(pairs))[: cfg.qa_rated_per_class]]
        counts.append(QaCount(mids[k], len(rated), sum(c.sounds[j] == k for c, j in rated)))
    write_qa_true_counts(path, counts)


def _write_events(path, all_events, mids):
    """Ground truth per event (label, true sound, onset/offset, SNR): for SED checks and label-noise analysis."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["split", "youtube_id", "label_mid", "sound_mid", "onset", "offset", "snr_db"])
        for split, pairs in all_events.items():
            for clip, events in pairs:
                for e in events:
                    w.writerow([split, clip.ytid, mids[e["label"]], mids[e["sound"]], e["onset"], e["offset"], e["snr_db"]])


# --------------------------------------------------------------------------- held-out classes for transfer

def write_heldout_folder(root: str, *, first_class: int, num_classes: int, train_per_class: int = 20,
                         test_per_class: int = 10, clip_seconds: float = 1.0, sample_rate: int = 32000,
                         difficulty: str = "easy", seed: int = 0) -> str:
    """Single-label clips of classes ``first_class .. first_class + num_classes - 1`` as a labelled folder.

    A corpus generated with ``num_classes <= first_class`` never contains these
    sounds, so a backbone trained on it has never heard them: transfer to this
    folder measures what pretraining on *other* classes is worth (the paper's
    AudioSet -> ESC-50 etc. setting). Same renderer as the corpus (background,
    SNR range of ``difficulty``, fades); the test clips use held-out variants of
    each sound (another bank seed), like the corpus's eval split.

    Writes ``root/audio/<class>_<split>_<i>.wav`` and ``root/labels.csv``
    (``filename,label,fold`` with ``fold`` ``train``/``test``, the format of
    :func:`panns_core.transfer.folder.parse_folder`); returns the CSV path.
    Generation is deterministic; an existing folder with the same settings is kept.
    """
    last = first_class + num_classes
    if first_class < 0 or num_classes < 2 or last > MAX_CLASSES:
        raise ValueError(f"held-out classes {first_class}..{last - 1} must lie in 0..{MAX_CLASSES - 1} "
                         f"(at least 2 of them)")
    if train_per_class < 1 or test_per_class < 1:
        raise ValueError("train_per_class and test_per_class must be >= 1")
    settings = {"first_class": first_class, "num_classes": num_classes, "train_per_class": train_per_class,
                "test_per_class": test_per_class, "clip_seconds": clip_seconds, "sample_rate": sample_rate,
                "difficulty": difficulty, "seed": seed}
    csv_path = os.path.join(root, "labels.csv")
    info_path = os.path.join(root, "heldout.json")
    if os.path.exists(csv_path) and os.path.exists(info_path):
        with open(info_path) as f:
            if json.load(f).get("settings") == settings:
                return csv_path
    cfg = CorpusConfig(num_classes=last, sample_rate=sample_rate, clip_seconds=clip_seconds,
                       difficulty=difficulty, max_events=1, seed=seed)
    names = [c.display_name for c in CLASSES[first_class:last]]
    audio_dir = os.path.join(root, "audio")
    os.makedirs(audio_dir, exist_ok=True)
    rows = []
    for split, per_class, bank_seed in (("train", train_per_class, 0), ("test", test_per_class, 1)):
        renderer = Renderer(cfg, bank_seed=10 + bank_seed)  # banks unlike the corpus's own (0 / 1)
        for c in range(first_class, last):
            for i in range(per_class):
                clip = PlannedClip(split, f"{c}_{split}_{i}", 0.0, [c], [c], rng_key=(seed, 400, bank_seed, c, i))
                wave, _ = renderer.render(clip)
                name = f"{CLASSES[c].display_name.split(',')[0].replace(' ', '_').lower()}_{split}_{i:03d}.wav"
                write_wav_int16(os.path.join(audio_dir, name), wave, sample_rate)
                rows.append((f"audio/{name}", CLASSES[c].display_name, split))
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["filename", "label", "fold"])
        writer.writerows(rows)
    with open(info_path, "w") as f:
        json.dump({"generator": "panns_core.data.synthetic.write_heldout_folder", "settings": settings,
                   "classes": names}, f, indent=1)
    return csv_path
