"""Numeric precision of a forward pass: the one autocast context, and the front-end rule.

Training, evaluation and inference all enter :func:`autocast`; the models'
log-mel front end (:meth:`panns_core.models.frontend.LogmelFrontEnd._logmel`)
enters :func:`front_end_fp32`, so the rule holds wherever a model runs.

The rule: under bf16/fp16 autocast the STFT-as-convolution and the log-mel
filterbank still run in float32. A power spectrum from a bfloat16 convolution
(8-bit mantissa) taken to dB loses its low-level detail, and the clipwise
probabilities move by far more than the network's own rounding does
(docs/inference.md gives the measured differences). Everything after the
log-mel (BatchNorm, the CNN, the heads) runs in the autocast dtype.
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16", "fp16")
"""Accepted ``precision`` values: float32, bfloat16 autocast (CPU and CUDA), float16 autocast (CUDA)."""

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device, precision: str):
    """Autocast to ``precision`` on ``device`` (``torch.device`` or string); a no-op for fp32.

    Raises ``ValueError`` for an unknown precision and for fp16 off CUDA (CPU
    autocast in float16 is slow and not what the paper's GPUs did; use bf16).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    device = torch.device(device)
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision 'fp16' needs a CUDA device; use 'bf16' on CPU")
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])


@contextlib.contextmanager
def front_end_fp32():
    """Suspend any CPU/CUDA autocast for the STFT and log-mel (the front-end rule above).

    Yields whether autocast was suspended: then the caller casts its inputs with
    ``.float()`` (autocast does not cast them back). Outside an autocast region
    it changes nothing and yields False (a float64 model stays float64).
    """
    if not (torch.is_autocast_enabled("cpu") or torch.is_autocast_enabled("cuda")):
        yield False
        return
    with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):
        yield True
