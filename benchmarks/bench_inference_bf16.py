"""CPU inference speed of PANNs: the official-style forward vs our fp32 and bf16 paths.

For each model (default Cnn14, Cnn10, MobileNetV1, Cnn14_DecisionLevelMax) and 10-s
clips at 32 kHz, the three variants taking turns in one process:

* ``eager`` (official-style): the plain model, ``model.eval()`` + ``torch.no_grad()``,
  float32, contiguous, no folding, the official Conv1d STFT;
* ``default``: :meth:`panns_core.inference.Pretrained.forward` with ``precision="fp32"``:
  the inference copy of :mod:`panns_core.fast_inference` (BatchNorm folded,
  channels_last) under ``inference_mode``; it must be no slower than ``eager``;
* ``bf16``: the same with ``precision="bf16"`` (bfloat16 weights, the STFT/log-mel
  front end in float32), with its accuracy cost: the largest absolute difference of
  the clipwise output against fp32 over the benchmark clips and the overlap of the
  top-10 labels (overlap, clips with an identical top-10 set, and identical up to labels
  within ``fast_inference.NEAR_TIE`` of fp32's 10th probability). bfloat16 is fast only on CPUs with AVX512-BF16 or AMX; elsewhere
  it is emulated (the header line says which).

Ratios (``default / eager``, ``bf16 / eager`` in clips/s) come from the same run.

``--compile`` adds ``compiled`` (and ``bf16_compiled`` where bfloat16 runs): the same
copies built with ``compile=True`` (``torch.compile``, inductor), timed in the same
turns. Their first call, which compiles (or loads inductor's on-disk cache), is
reported apart as ``*_first_call_s``, with the largest clipwise difference against the
uncompiled copy of the same precision. Run it twice to see a cold and a warm cache.

Weights: a released checkpoint from the cache when ``--checkpoint-dir`` holds it
(never downloaded here), else random weights with BatchNorm statistics calibrated
on a few synthetic batches and the output layer rescaled to a trained model's
logit spread. Random weights with the default running statistics make most models
output a near-constant 0.5 (MobileNetV1 exactly), which would hide any bf16 error;
calibration gives activations and outputs a realistic scale. The
inputs are synthetic (tones, chirps, noise bursts) because no audio is bundled.

Usage::

    .venv/bin/python benchmarks/bench_inference_bf16.py                # all four models
    .venv/bin/python benchmarks/bench_inference_bf16.py --models Cnn10 --repeats 2 --batch-size 1

Results: a markdown table on stdout and JSON in ``runs/benchmarks/inference_bf16.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch

from panns_core.config import CLIP_SECONDS
from panns_core import fast_inference
from panns_core.inference import Pretrained, bf16_supported
from panns_core.labels import labels_for
from panns_core.models import create_model, model_info
from panns_core.models.frontend import stft_backend

DEFAULT_MODELS = ("Cnn14", "Cnn10", "MobileNetV1", "Cnn14_DecisionLevelMax")


def synthetic_clips(n: int, sample_rate: int, seconds: float = CLIP_SECONDS, seed: int = 0) -> np.ndarray:
    """``n`` varied clips: a chirp, harmonic tones, noise bursts, at random levels."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    clips = []
    for _ in range(n):
        f0 = rng.uniform(100, 2000)
        x = 0.3 * np.sin(2 * np.pi * (f0 + rng.uniform(50, 500) * t) * t)
        x += sum(0.1 / k * np.sin(2 * np.pi * k * rng.uniform(80, 400) * t) for k in range(1, 4))
        env = (np.sin(2 * np.pi * rng.uniform(0.2, 2) * t) > 0).astype(float)
        x += 0.2 * env * rng.standard_normal(t.size)
        clips.append(rng.uniform(0.1, 0.9) * x / np.abs(x).max())
    return np.stack(clips).astype(np.float32)


def calibrate_batchnorm(model: torch.nn.Module, clips: np.ndarray, batches: int = 2) -> None:
    """Set BatchNorm running statistics from synthetic batches (cumulative average)."""
    fast_inference.calibrate_batchnorm(model, [torch.from_numpy(c) for c in np.array_split(clips, batches)])


def calibrate_head(model: torch.nn.Module, clips: np.ndarray, mean: float = -4.0, std: float = 2.0) -> None:
    """Rescale the random ``fc_audioset`` so its logits have a trained model's overall spread.

    Calibrated random trunks give logits of arbitrary scale; saturated sigmoids
    (outputs of exactly 0 or 1) would make any precision look exact or hopeless.
    One affine map for all classes (logits over all clips and classes get mean
    ``mean`` and std ``std``: mostly small probabilities, a few large) fixes the
    scale without amplifying the differences between clips class by class.
    """
    head = getattr(model, "fc_audioset", None)
    if head is None:
        return
    captured = []
    handle = head.register_forward_hook(lambda m, i, o: captured.append(o.detach()))
    with torch.no_grad():
        model(torch.from_numpy(clips))
    handle.remove()
    logits = torch.cat(captured)
    mu, sigma = logits.mean(), logits.std().clamp_min(1e-6)
    with torch.no_grad():
        head.weight.mul_(std / sigma)
        head.bias.copy_((head.bias - mu) * std / sigma + mean)


def build(name: str, checkpoint_dir: str | None, calib: np.ndarray) -> tuple[torch.nn.Module, str]:
    """The model with released weights if cached, else calibrated random weights."""
    info = model_info(name)
    if checkpoint_dir and info.checkpoint:
        from panns_core.checkpoints import load_checkpoint, released_checkpoint

        path = os.path.join(checkpoint_dir, released_checkpoint(name).filename)
        if os.path.isfile(path):
            model = create_model(name)
            load_checkpoint(model, path)
            return model.eval(), f"released ({os.path.basename(path)})"
    torch.manual_seed(0)
    model = create_model(name)
    calibrate_batchnorm(model, calib)
    calibrate_head(model, calib)
    return model, "random weights; BatchNorm and output scale calibrated on synthetic audio"


def time_interleaved(calls: dict, repeats: int) -> dict:
    """Median wall time per named call, the calls taking turns (one warm-up each).

    Taking turns within every repeat exposes all variants to the same background load,
    which matters on a shared machine more than any single-run number.
    """
    for fn in calls.values():
        fn()
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def add_compiled(row: dict, calls: dict, key: str, model, name: str, precision: str,
                 x: torch.Tensor, batches: list, uncompiled: np.ndarray) -> None:
    """Time the first call of a ``compile=True`` copy and add it to the timed ``calls``.

    The first call traces and compiles (or loads inductor's cache); every later call of
    the same input shape runs the compiled code. The accuracy comparison runs after it,
    so its other batch shapes (if any) compile outside the timed first call.
    """
    info = model_info(name)
    compiled = Pretrained(model, name, info.config, labels_for(527), precision=precision, compile=True)
    start = time.perf_counter()
    compiled.forward(x.numpy())
    row[f"{key}_first_call_s"] = time.perf_counter() - start
    got = np.concatenate([compiled.forward(c)["clipwise_output"] for c in batches])
    row[f"{key}_max_abs_diff_vs_uncompiled"] = float(np.abs(got - uncompiled).max())
    calls[key] = lambda: compiled.forward(x.numpy())


def bench_model(name: str, args, clips: np.ndarray, calib: np.ndarray) -> dict:
    model, weights = build(name, args.checkpoint_dir, calib)
    info = model_info(name)
    x = torch.from_numpy(clips[: args.batch_size])
    labels = labels_for(527)
    default = Pretrained(model, name, info.config, labels, precision="fp32")
    row = {"model": name, "weights": weights, "batch_size": args.batch_size, "clip_seconds": CLIP_SECONDS}

    def eager():
        # the official forward: its Conv1d STFT, not our FFT front end
        with torch.no_grad(), stft_backend(model, "conv"):
            return model(x)

    # accuracy over all benchmark clips, not only the timed batch
    batches = np.array_split(clips, max(1, len(clips) // args.batch_size))
    ref = np.concatenate([default.forward(c)["clipwise_output"] for c in batches])
    row["fp32_clipwise_std_over_classes"] = float(ref.std(axis=1).mean())
    calls = {"eager": eager, "default": lambda: default.forward(x.numpy())}
    if args.compile:
        add_compiled(row, calls, "compiled", model, name, "fp32", x, batches, ref)
    if bf16_supported() and not args.no_bf16:
        fast = Pretrained(model, name, info.config, labels, precision="bf16")
        out = np.concatenate([fast.forward(c)["clipwise_output"] for c in batches])
        row["bf16_max_abs_diff"] = float(np.abs(out - ref).max())
        row["bf16_mean_abs_diff"] = float(np.abs(out - ref).mean())
        top_ref, top_fast = np.argsort(-ref, 1)[:, :10], np.argsort(-out, 1)[:, :10]
        row["bf16_top10_overlap"] = float(np.mean([len(set(a) & set(b)) / 10
                                                   for a, b in zip(top_ref, top_fast)]))
        changed, same_up_to_ties = fast_inference.top10_agreement(out, ref)
        row["bf16_top10_identical_clips"] = len(ref) - changed
        row["bf16_top10_identical_up_to_ties_clips"] = same_up_to_ties
        row["clips"] = len(ref)
        row["bf16_fp32_modules"] = list(fast_inference.fp32_modules_for(fast.model))
        calls["bf16"] = lambda: fast.forward(x.numpy())
        if args.alt_fp32_modules is not None:
            # the same bf16 copy with another set of trunk modules kept float32 (a trade to measure),
            # run through Pretrained.forward like the other variants
            alt = Pretrained(model, name, info.config, labels, precision="bf16")
            alt._fast_model = fast_inference.prepare_for_inference(model, "bf16",
                                                                   fp32_modules=tuple(args.alt_fp32_modules))
            alt_out = np.concatenate([alt.forward(c)["clipwise_output"] for c in batches])
            row["bf16_alt_fp32_modules"] = list(args.alt_fp32_modules)
            row["bf16_alt_max_abs_diff"] = float(np.abs(alt_out - ref).max())
            row["bf16_alt_mean_abs_diff"] = float(np.abs(alt_out - ref).mean())
            changed, same_up_to_ties = fast_inference.top10_agreement(alt_out, ref)
            row["bf16_alt_top10_identical_clips"] = len(ref) - changed
            row["bf16_alt_top10_identical_up_to_ties_clips"] = same_up_to_ties
            calls["bf16_alt"] = lambda: alt.forward(x.numpy())
        if args.compile:
            add_compiled(row, calls, "bf16_compiled", model, name, "bf16", x, batches, out)
    for key, seconds in time_interleaved(calls, args.repeats).items():
        row[f"{key}_s"] = seconds
    for key in ("eager", "default", "bf16", "bf16_alt", "compiled", "bf16_compiled"):
        if f"{key}_s" in row:
            row[f"{key}_clips_per_s"] = args.batch_size / row[f"{key}_s"]
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--clips", type=int, default=8, help="clips for the accuracy comparison")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--checkpoint-dir", default=None, help="folder with released .pth files")
    parser.add_argument("--out", default="runs/benchmarks/inference_bf16.json")
    parser.add_argument("--alt-fp32-modules", nargs="*", default=None,
                        help="also time a bf16 copy keeping these trunk modules float32 instead of "
                             "fast_inference.FP32_MODULES' (e.g. conv_block1.conv1; none: all bf16)")
    parser.add_argument("--no-bf16", action="store_true",
                        help="time the fp32 paths only (where bfloat16 is emulated it is slow, and "
                             "--precision auto does not pick it)")
    parser.add_argument("--compile", action="store_true",
                        help="also time the copies built with torch.compile (first call reported apart)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    clips = synthetic_clips(max(args.clips, args.batch_size), 32000, seed=0)
    calib = synthetic_clips(16, 32000, seed=1)
    env = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor()
           or platform.machine(), "bf16_autocast": bf16_supported(),
           "cpu_native_bf16": fast_inference.cpu_has_native_bf16(),
           "load_average_start": os.getloadavg()}
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
        env["cpu_bf16_instructions"] = [x for x in ("avx512_bf16", "amx_bf16") if x in flags]
        env["cpu_model"] = next((l.split(":", 1)[1].strip() for l in flags.splitlines()
                                 if l.startswith("model name")), "")
    except OSError:
        pass
    rows = []
    for name in args.models:
        print(f"benchmarking {name} ...", file=sys.stderr, flush=True)
        rows.append(bench_model(name, args, clips, calib))
        row = rows[-1]  # each model's figures as soon as they exist (long runs may be cut short)
        print(json.dumps({k: row[k] for k in row if k.endswith(("_s", "diff", "overlap")) or k == "model"}),
              file=sys.stderr, flush=True)
    env["load_average_end"] = os.getloadavg()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"environment": env, "results": rows}, f, indent=2)
    print(f"torch {env['torch']}, {env['threads']} thread(s), {env.get('cpu_model', '')}, "
          f"native bf16: {env['cpu_native_bf16']} {env.get('cpu_bf16_instructions')}, batch {args.batch_size} x 10-s clips, "
          f"load average {env['load_average_start'][0]:.1f} -> {env['load_average_end'][0]:.1f}")
    print("| model | official-style fp32 clips/s | our fp32 clips/s | our bf16 clips/s | our fp32 / official "
          "| our bf16 / official | bf16 max abs diff | bf16 mean abs diff | bf16 top-10 overlap "
          "| top-10 identical (up to ties) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        eager = r["eager_clips_per_s"]
        if "bf16_clips_per_s" in r:
            bf16 = (f"{r['bf16_clips_per_s']:.2f} | {r['default_clips_per_s'] / eager:.2f}x | "
                    f"{r['bf16_clips_per_s'] / eager:.2f}x | {r['bf16_max_abs_diff']:.4f} | "
                    f"{r['bf16_mean_abs_diff']:.5f} | {r['bf16_top10_overlap']:.2f} | "
                    f"{r['bf16_top10_identical_clips']}/{r['clips']} "
                    f"({r['bf16_top10_identical_up_to_ties_clips']}/{r['clips']})")
        else:  # --no-bf16
            bf16 = f"- | {r['default_clips_per_s'] / eager:.2f}x | - | - | - | - | -"
        print(f"| {r['model']} | {eager:.2f} | {r['default_clips_per_s']:.2f} | {bf16} |")
    for r in rows:
        if "bf16_alt_clips_per_s" in r:
            print(f"{r['model']}, bf16 keeping {r['bf16_alt_fp32_modules'] or 'nothing'} float32 (instead of "
                  f"{r['bf16_fp32_modules']}): {r['bf16_alt_clips_per_s']:.2f} clips/s = "
                  f"{r['bf16_alt_clips_per_s'] / r['eager_clips_per_s']:.2f}x official, max abs diff "
                  f"{r['bf16_alt_max_abs_diff']:.4f}, mean {r['bf16_alt_mean_abs_diff']:.5f}, top-10 identical "
                  f"{r['bf16_alt_top10_identical_clips']}/{r['clips']} "
                  f"({r['bf16_alt_top10_identical_up_to_ties_clips']}/{r['clips']} up to ties)")
    for r in rows:
        for key, label in (("compiled", "fp32"), ("bf16_compiled", "bf16")):
            if f"{key}_clips_per_s" in r:
                print(f"{r['model']}, {label} + torch.compile: {r[f'{key}_clips_per_s']:.2f} clips/s = "
                      f"{r[f'{key}_clips_per_s'] / r['eager_clips_per_s']:.2f}x official, "
                      f"{r[f'{key}_clips_per_s'] / r['default_clips_per_s']:.2f}x our fp32; first call "
                      f"{r[f'{key}_first_call_s']:.1f} s; max abs diff vs uncompiled "
                      f"{r[f'{key}_max_abs_diff_vs_uncompiled']:.2e}")
    print("weights: " + "; ".join(f"{r['model']}: {r['weights']}" for r in rows))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
