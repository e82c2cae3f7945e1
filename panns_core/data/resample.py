"""Sample-rate variants of the packed 32 kHz waveforms.

The official code trains its 16 kHz and 8 kHz models on ``waveform[0::2]`` and
``waveform[0::4]``: plain decimation, no anti-alias filter, so everything above
the new Nyquist frequency folds back into the band. ``mode="antialias"`` (the
default here) low-passes first with a polyphase FIR (``scipy.signal.resample_poly``,
Kaiser window); ``mode="decimate"`` reproduces the official behaviour. Results
record which mode was used.
"""

from __future__ import annotations

from math import gcd

import numpy as np
from scipy.signal import resample_poly

MODES = ("antialias", "decimate")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"resample_mode must be one of {MODES}, got {mode!r}")
    return mode


def resample(waveform: np.ndarray, orig_sr: int, target_sr: int, mode: str = "antialias") -> np.ndarray:
    """Resample along the last axis; float32 in, float32 out.

    The output has exactly ``ceil(n * target_sr / orig_sr)`` samples in both modes,
    so a 10-s clip at 32 kHz becomes 160,000 (16 kHz) or 80,000 (8 kHz) samples.
    """
    check_mode(mode)
    orig_sr, target_sr = int(orig_sr), int(target_sr)
    if orig_sr == target_sr:
        return waveform
    if mode == "decimate":
        if orig_sr % target_sr:
            raise ValueError(f"decimate needs an integer factor, got {orig_sr} -> {target_sr} Hz")
        return np.ascontiguousarray(waveform[..., :: orig_sr // target_sr])
    g = gcd(orig_sr, target_sr)
    out = resample_poly(waveform, target_sr // g, orig_sr // g, axis=-1)
    return out.astype(np.float32, copy=False)
