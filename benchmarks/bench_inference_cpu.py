"""CPU inference throughput of PANNs models (batch of 10-s clips, torch.inference_mode).

For each model and thread count: build the model in eval mode, run warm-up
batches (first calls pay for memory allocation and kernel selection), then
time ``--repeats`` batches and report the median and the spread. Weights are
random; speed does not depend on their values.

    .venv/bin/python benchmarks/bench_inference_cpu.py
    .venv/bin/python benchmarks/bench_inference_cpu.py --models Cnn14 --threads 1 2 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from panns_core.complexity import count_multiply_adds
from panns_core.models import create_model

DEFAULT_MODELS = ("Cnn14", "Cnn10", "MobileNetV1")


def time_model(name: str, batch: int, seconds: float, repeats: int, warmup: int,
               threads: int) -> dict:
    """Median ms per batch and clips/s for one model at one thread count."""
    torch.set_num_threads(threads)
    model = create_model(name).eval()
    sample_rate = model.audio_config.sample_rate
    generator = torch.Generator().manual_seed(0)
    waveform = torch.rand(batch, int(sample_rate * seconds), generator=generator) * 2 - 1
    with torch.inference_mode():
        for _ in range(warmup):
            model(waveform)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(waveform)
            times.append(time.perf_counter() - start)
    ms = statistics.median(times) * 1e3
    return {
        "model": name, "threads": threads, "batch": batch, "seconds": seconds,
        "ms_per_batch": ms, "ms_min": min(times) * 1e3, "ms_max": max(times) * 1e3,
        "clips_per_s": batch / (ms / 1e3),
        "audio_s_per_s": batch * seconds / (ms / 1e3),
        "gmult_adds_per_clip": count_multiply_adds(model, int(sample_rate * seconds)) / 1e9,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="thread counts to try (default: 1 and all cores)")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.seconds <= 0 or args.repeats < 1 or args.warmup < 0:
        parser.error("--batch and --repeats must be >= 1, --seconds > 0, --warmup >= 0")
    cores = os.cpu_count() or 1
    threads = args.threads or sorted({1, cores})

    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{cores} CPU cores; batch {args.batch} x {args.seconds:g} s, "
          f"{args.warmup} warm-up + {args.repeats} timed batches (median)")
    header = (f"{'model':<14}{'threads':>8}{'ms/batch':>11}{'min-max':>17}{'clips/s':>9}"
              f"{'x realtime':>11}{'GFLOP/clip':>11}")
    print(header)
    print("-" * len(header))
    for name in args.models:
        for n in threads:
            r = time_model(name, args.batch, args.seconds, args.repeats, args.warmup, n)
            spread = f"{r['ms_min']:.0f}-{r['ms_max']:.0f}"
            print(f"{r['model']:<14}{r['threads']:>8}{r['ms_per_batch']:>11.0f}{spread:>17}"
                  f"{r['clips_per_s']:>9.2f}{r['audio_s_per_s']:>11.1f}"
                  f"{r['gmult_adds_per_clip']:>11.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
