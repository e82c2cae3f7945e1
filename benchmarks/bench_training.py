"""Training throughput of the paper's recipe: clips/s and step time per model, precision, layout.

One step = the step of the training loop in ``notebooks/03_train_system.py`` (forward of 2B clips with
SpecAugment and mixup inside the model, BCE on the B mixed examples, backward,
Adam amsgrad). Inputs are random 10-s clips already on the device, so the
figure is the model's training speed, not data loading. ``clips/s`` counts the
B mixed examples per step, as the paper's "600k iterations of batch 32 in about
3 days on one V100" does (about 74 clips/s); ``input clips/s`` counts the 2B clips read.

    python benchmarks/bench_training.py                      # Cnn14, Cnn10, MobileNetV1; batch 32; 3 steps
    python benchmarks/bench_training.py --batch 8 --steps 2  # a quick CPU look
    python benchmarks/bench_training.py --precision fp32 bf16 --channels-last both   # GPU comparison
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import numpy as np
import torch

from panns_core.mixup import Mixup
from panns_core.models import create_model
import torch.nn.functional as F

from panns_core.models.frontend import do_mixup
from panns_core.precision import autocast

OFFICIAL_V100_CLIPS_PER_S = 600_000 * 32 / (3 * 24 * 3600)
"""~74 clips/s: 600k iterations of batch 32 in about three days on one V100 (paper, README)."""


def train_step(net, optimizer, scaler, waveform, target, lam, *, device, precision) -> torch.Tensor:
    """The loop's step without accumulation or DDP: forward with mixup, mixed targets, BCE, backward, Adam."""
    net.train()
    optimizer.zero_grad(set_to_none=True)
    with autocast(device, precision):
        output = net(waveform, lam)
    loss = F.binary_cross_entropy(output["clipwise_output"].float(), do_mixup(target, lam))
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_one(name: str, batch: int, steps: int, warmup: int, device: torch.device, precision: str,
              channels_last: bool, seconds: float, compile_model: bool = False) -> dict:
    """Median step time of ``steps`` timed steps after ``warmup`` untimed ones."""
    torch.manual_seed(0)
    model = create_model(name).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if compile_model else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, amsgrad=True)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    clips = 2 * batch
    samples = int(model.audio_config.sample_rate * seconds)
    gen = torch.Generator().manual_seed(0)
    waveform = (0.1 * torch.randn(clips, samples, generator=gen)).to(device)
    target = (torch.rand(clips, model.classes_num, generator=gen) < 0.01).float().to(device)
    mixup = Mixup(1.0)
    times = []
    for i in range(warmup + steps):
        lam = torch.from_numpy(mixup.get_lambda(clips)).to(device)
        _sync(device)
        t = time.perf_counter()
        loss = train_step(net, optimizer, scaler, waveform, target, lam, device=device, precision=precision)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t)
        if not torch.isfinite(loss):
            raise RuntimeError(f"{name}: non-finite loss at step {i} ({precision})")
    step = statistics.median(times)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {
        "model": name, "batch": batch, "input_clips": clips, "clip_seconds": seconds, "device": str(device),
        "precision": precision, "channels_last": channels_last, "compile": compile_model,
        "steps": steps, "step_times_s": times, "step_time_s": step,
        "clips_per_s": batch / step, "input_clips_per_s": clips / step,
        "vs_official_v100": (batch / step) / OFFICIAL_V100_CLIPS_PER_S,
        "days_for_600k_iterations": 600_000 * step / 86400,
        "peak_gpu_memory_gib": peak,
    }


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def main(argv=None) -> list:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["Cnn14", "Cnn10", "MobileNetV1"])
    p.add_argument("--batch", type=int, default=32, help="B; 2B clips are read per step (mixup)")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--seconds", type=float, default=10.0, help="clip length")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", nargs="+", default=None, help="fp32 bf16 fp16 (default: fp32)")
    p.add_argument("--channels-last", choices=("off", "on", "both"), default="off")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (GPU)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    precisions = args.precision or ["fp32"]
    layouts = {"off": [False], "on": [True], "both": [False, True]}[args.channels_last]
    print(f"# training throughput on {describe_device(device)}; torch {torch.__version__}; batch {args.batch} "
          f"with mixup ({2 * args.batch} x {args.seconds:g}-s clips per step); median of {args.steps} steps")
    print(f"# official reference: ~{OFFICIAL_V100_CLIPS_PER_S:.0f} clips/s (600k x 32 in ~3 days, one V100, fp32)")
    print("| model | precision | channels_last | step time (s) | clips/s | input clips/s | x V100 ref | days / 600k it |")
    print("|---|---|---|---|---|---|---|---|")
    results = []
    for name in args.models:
        for precision in precisions:
            for cl in layouts:
                try:
                    r = bench_one(name, args.batch, args.steps, args.warmup, device, precision, cl, args.seconds,
                                  args.compile)
                except (RuntimeError, ValueError) as e:  # e.g. out of memory: report and go on
                    print(f"| {name} | {precision} | {cl} | failed: {str(e).splitlines()[0][:80]} | | | | |")
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                    continue
                results.append(r)
                print(f"| {name} | {precision} | {cl} | {r['step_time_s']:.3f} | {r['clips_per_s']:.1f} | "
                      f"{r['input_clips_per_s']:.1f} | {r['vs_official_v100']:.3f} | {r['days_for_600k_iterations']:.1f} |",
                      flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": describe_device(device), "torch": torch.__version__, "results": results}, f, indent=1)
    return results


if __name__ == "__main__":
    main()
    sys.exit(0)
