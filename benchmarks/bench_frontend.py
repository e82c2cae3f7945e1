"""The FFT front end against the official Conv1d STFT: time of the spectrogram and of a whole forward.

For each model, on random 10-s clips (batch ``--batch``), in one process and
interleaved (conv, fft, conv, fft, ...) so that both see the same machine load:

* the power spectrogram alone (``model.spectrogram_extractor``), Conv1d vs FFT;
* the whole eval-mode forward with either backend, and the largest difference
  of ``clipwise_output`` between them (the two are the same function).

    python benchmarks/bench_frontend.py                       # CPU, Cnn14 and Cnn14_16k, batch 4
    python benchmarks/bench_frontend.py --device cuda --batch 64
    python benchmarks/bench_frontend.py --threads 1 --repeats 5 --json runs/benchmarks/frontend.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from panns_core.models import create_model
from panns_core.models.frontend import set_stft_backend


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device) -> float:
    _sync(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t


def bench_model(name: str, batch: int, seconds: float, repeats: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = create_model(name).eval().to(device)
    rate = model.audio_config.sample_rate
    x = (0.1 * torch.randn(batch, int(rate * seconds), generator=torch.Generator().manual_seed(0))).to(device)
    spectrogram = model.spectrogram_extractor
    times = {(part, backend): [] for part in ("spectrogram", "forward") for backend in ("conv", "fft")}
    outputs = {}
    with torch.inference_mode():
        for backend in ("conv", "fft"):  # warm-up (allocator, FFT plans, oneDNN primitives)
            set_stft_backend(model, backend)
            outputs[backend] = model(x)["clipwise_output"].float().cpu()
        for _ in range(repeats):
            for backend in ("conv", "fft"):
                set_stft_backend(model, backend)
                times[("spectrogram", backend)].append(_timed(lambda: spectrogram(x), device))
                times[("forward", backend)].append(_timed(lambda: model(x), device))
    set_stft_backend(model, "fft")
    median = {f"{part}_{backend}_s": statistics.median(t) for (part, backend), t in times.items()}
    return {
        "model": name, "batch": batch, "clip_seconds": seconds, "device": str(device), "repeats": repeats,
        **median,
        "spectrogram_speedup": median["spectrogram_conv_s"] / median["spectrogram_fft_s"],
        "forward_speedup": median["forward_conv_s"] / median["forward_fft_s"],
        "spectrogram_share_of_conv_forward": median["spectrogram_conv_s"] / median["forward_conv_s"],
        "max_clipwise_difference": float((outputs["conv"] - outputs["fft"]).abs().max()),
    }


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["Cnn14", "Cnn14_16k"])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{where}; batch {args.batch} x {args.seconds:g} s; median of {args.repeats}, conv and fft interleaved\n")
    print("| model | spectrogram conv (s) | spectrogram FFT (s) | x | forward conv (s) | forward FFT (s) | x "
          "| STFT share of the conv forward | max clipwise diff |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name in args.models:
        r = bench_model(name, args.batch, args.seconds, args.repeats, device)
        rows.append(r)
        print(f"| {name} | {r['spectrogram_conv_s']:.4f} | {r['spectrogram_fft_s']:.4f} | "
              f"{r['spectrogram_speedup']:.1f} | {r['forward_conv_s']:.3f} | {r['forward_fft_s']:.3f} | "
              f"{r['forward_speedup']:.2f} | {r['spectrogram_share_of_conv_forward']:.1%} | "
              f"{r['max_clipwise_difference']:.1e} |", flush=True)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
