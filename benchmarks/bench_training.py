"""Training throughput of the paper's recipe, measured end to end: model, precision, loader.

One step = the step of the training loop in ``notebooks/03_train_system.py`` (forward of 2B clips with
SpecAugment and mixup inside the model, BCE on the B mixed examples, backward,
Adam amsgrad). Model timings use random clips already on the device, so they are
the model's training speed; the loader is measured separately (clips/s the HDF5
loader delivers with N workers from a packed file on local disk, page cache
dropped before each pass), so one sees whether data loading keeps up. ``clips/s``
counts the B mixed examples per step, as the paper's "600k iterations of batch 32
in about 3 days on one V100" does (about 74 clips/s); ``input clips/s`` counts the
2B clips read.

Suites (one command each):

* ``--device cuda``: Cnn14, batch 32 with mixup, 10-s clips: fp32 eager, bf16
  autocast + channels_last, and the same + ``torch.compile``, with the FFT front end and
  (fp32 and bf16 eager) with the official Conv1d STFT beside it; peak GPU memory; the
  loader with 0/4/8/16 workers from ``--packed-root`` (a packed corpus) or, without
  it, from a corpus of 10-s clips generated and packed on the spot. Meant to finish
  in under 5 minutes on an H100/H200-class GPU.
* ``--device cpu``: fp32 vs bf16 (autocast) clips/s side by side for Cnn6, Cnn10 and
  Cnn14, and the mAP each precision reaches after the same number of steps
  (``--map-steps``) on a small generated corpus, evaluated in fp32.
* ``--quick``: the CPU suite shrunk to seconds (Cnn6, tiny batches, 1-s clips), plus
  the loader: what the test suite runs.

    python benchmarks/bench_training.py --device cuda --json runs/benchmarks/training_gpu.json
    python benchmarks/bench_training.py --device cpu             # fp32 vs bf16, speed and mAP
    python benchmarks/bench_training.py --device cpu --quick     # seconds; smoke test
    python benchmarks/bench_training.py --models Cnn10 --precision fp32 bf16 --batch 8   # one custom grid
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

from panns_core.metrics import audio_tagging_metrics
from panns_core.mixup import Mixup
from panns_core.models import create_model
import torch.nn.functional as F

from panns_core.models import frontend
from panns_core.models.frontend import do_mixup, set_stft_backend
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
              channels_last: bool, seconds: float, compile_model: bool = False, stft: str = "fft") -> dict:
    """Median step time of ``steps`` timed steps after ``warmup`` untimed ones.

    ``stft``: ``"fft"`` (our front end) or ``"conv"`` (the official Conv1d STFT).
    """
    torch.manual_seed(0)
    model = set_stft_backend(create_model(name), stft).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    net = frontend.compile_model(model) if compile_model else model
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
        "precision": precision, "channels_last": channels_last, "compile": compile_model, "stft": stft,
        "steps": steps, "step_times_s": times, "step_time_s": step,
        "clips_per_s": batch / step, "input_clips_per_s": clips / step,
        "vs_official_v100": (batch / step) / OFFICIAL_V100_CLIPS_PER_S,
        "days_for_600k_iterations": 600_000 * step / 86400,
        "peak_gpu_memory_gib": peak,
    }


# ----------------------------------------------------------------------------- data
def make_packed_corpus(root: str, classes: int, clip_seconds: float, train_per_class: int,
                       eval_per_class: int, workers: int = 0) -> str:
    """Generate and pack a small corpus (balanced_train + eval) under ``root``; returns ``root``."""
    from panns_core.data.pack import pack_dataset
    from panns_core.data.synthetic import generate_corpus

    generate_corpus(root, workers=workers, num_classes=classes, clip_seconds=clip_seconds,
                    balanced_per_class=train_per_class, eval_per_class=eval_per_class, unbalanced_clips=0,
                    splits=("balanced_train", "eval"))
    pack_dataset(root, splits=("eval", "balanced_train"), clip_seconds=clip_seconds, workers=workers)
    return root


def read_packed(root: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """All waveforms (float32) and targets of a packed split."""
    import h5py

    from panns_core.data.pack import waveform_path

    with h5py.File(waveform_path(root, split), "r") as f:
        return f["waveform"][()].astype(np.float32) / 32768.0, f["target"][()].astype(np.float32)


def loader_throughput(root: str, workers: list, batch: int, batches: int, drop_cache: bool = True) -> list:
    """Clips/s the HDF5 loader delivers (balanced sampler, random access) per worker count."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_loader import _Limited, drop_page_cache, time_loader

    from panns_core.data.pack import index_path
    from panns_core.data.reader import AudioSetDataset, collate_fn
    from panns_core.runtime import TensorCollate
    from panns_core.samplers import BalancedSampler

    from panns_core.data.index import read_index

    candidates = [index_path(root, name) for name in ("full_train", "balanced_train")]
    sizes = {p: len(read_index(p)) for p in candidates if os.path.exists(p)}
    if not any(sizes.values()):
        manifests = [os.path.join(root, "hdf5s", "waveforms", f) for f in sorted(os.listdir(
            os.path.join(root, "hdf5s", "waveforms"))) if f.endswith(".manifest.json")]
        reasons = {m: json.load(open(m)).get("counts", json.load(open(m)).get("excluded")) for m in manifests}
        raise RuntimeError(f"{root}: the packed corpus has no training clips ({sizes}); pack manifests: {reasons}")
    index = max(sizes, key=sizes.get)
    rows = []
    for w in workers:
        dropped = drop_page_cache(root) if drop_cache else False
        sampler = _Limited(BalancedSampler(index, batch), batches)
        # collated into tensors as the training loop does (worker batches then travel through shared memory)
        loader = torch.utils.data.DataLoader(AudioSetDataset(32000), batch_sampler=sampler,
                                             collate_fn=TensorCollate(collate_fn), num_workers=w)
        timing = time_loader(loader, w)
        if timing["clips_per_s"] is None:  # too few batches for a steady state: the overall rate
            timing["clips_per_s"] = timing["clips_per_s_overall"]
        rows.append({"workers": w, **timing, "page_cache_dropped": dropped})
    return rows


# ----------------------------------------------------------------------------- mAP after N steps
def map_after_steps(name: str, precision: str, train: tuple, evaluation: tuple, steps: int, batch: int,
                    device: torch.device, seed: int = 0) -> dict:
    """Train ``name`` from a fixed seed for ``steps`` steps at ``precision``; mAP on ``evaluation`` (fp32)."""
    waves, targets = train
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = create_model(name, classes_num=targets.shape[1]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, amsgrad=True)
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    mixup = Mixup(1.0, random_seed=seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        pick = rng.choice(len(waves), size=2 * batch, replace=len(waves) < 2 * batch)
        lam = torch.from_numpy(mixup.get_lambda(2 * batch)).to(device)
        train_step(model, optimizer, scaler, torch.from_numpy(waves[pick]).to(device),
                   torch.from_numpy(targets[pick]).to(device), lam, device=device, precision=precision)
    seconds = time.perf_counter() - t0
    model.eval()
    outputs = []
    with torch.inference_mode():
        for chunk in np.array_split(np.arange(len(evaluation[0])), max(1, len(evaluation[0]) // 16)):
            outputs.append(model(torch.from_numpy(evaluation[0][chunk]).to(device))["clipwise_output"].cpu().numpy())
    result = audio_tagging_metrics(evaluation[1], np.concatenate(outputs))
    return {"model": name, "precision": precision, "steps": steps, "batch": batch,
            "train_seconds": seconds, "mAP": result["mAP"]}


# ----------------------------------------------------------------------------- suites
SUITES = {
    "cuda": dict(models=["Cnn14"], batch=32, steps=10, warmup=3, seconds=10.0,
                 # (precision, channels_last, compile, STFT): the conv rows measure what the FFT front end saves
                 variants=[("fp32", False, False, "conv"), ("fp32", False, False, "fft"),
                           ("bf16", True, False, "conv"), ("bf16", True, False, "fft"), ("bf16", True, True, "conv"),
                           ("bf16", True, True, "fft")],
                 loader_workers=[0, 4, 8, 16], loader_batches=80, loader_clips=600),
    "cpu": dict(models=["Cnn6", "Cnn10", "Cnn14"], batch=8, steps=3, warmup=1, seconds=10.0,
                variants=[("fp32", False, False, "conv"), ("fp32", False, False, "fft"),
                          ("bf16", False, False, "fft")],
                map_models=["Cnn6", "Cnn10"], map_steps=40, map_batch=8, map_seconds=2.0, map_classes=10,
                map_train_per_class=12, map_eval_per_class=6,
                loader_batches=20, loader_clips=120),  # the loader part runs only with --loader-workers
    # 0.7 s: just above the 64 frames SpecAugment's time stripes need
    "quick": dict(models=["Cnn6"], batch=2, steps=1, warmup=0, seconds=0.7,
                  variants=[("fp32", False, False, "conv"), ("fp32", False, False, "fft"),
                            ("bf16", False, False, "fft")],
                  map_models=["Cnn6"], map_steps=1, map_batch=2, map_seconds=0.7, map_classes=3,
                  map_train_per_class=2, map_eval_per_class=2,
                  loader_workers=[0], loader_batches=2, loader_batch=4, loader_clips=120),
}


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def run_grid(models, variants, batch, steps, warmup, seconds, device) -> list:
    """Clips/s of every (model, precision, channels_last, compile, STFT) variant, printed as a table."""
    print("| model | precision | channels_last | compile | STFT | step time (s) | clips/s | input clips/s "
          "| x V100 ref | peak GPU memory (GiB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    results = []
    for name in models:
        for precision, channels_last, compile_model, stft in variants:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            try:
                r = bench_one(name, batch, steps, warmup, device, precision, channels_last, seconds, compile_model,
                              stft)
            except (RuntimeError, ValueError) as e:  # e.g. out of memory: report and go on
                print(f"| {name} | {precision} | {channels_last} | {compile_model} | {stft} | failed: "
                      f"{str(e).splitlines()[0][:80]} | | | | |")
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            results.append(r)
            peak = "" if r["peak_gpu_memory_gib"] is None else f"{r['peak_gpu_memory_gib']:.1f}"
            print(f"| {name} | {precision} | {channels_last} | {compile_model} | {stft} | {r['step_time_s']:.3f} | "
                  f"{r['clips_per_s']:.1f} | {r['input_clips_per_s']:.1f} | {r['vs_official_v100']:.2f} | {peak} |",
                  flush=True)
    return results


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="cuda, cpu or auto")
    p.add_argument("--quick", action="store_true", help="seconds-long CPU run (the test suite's)")
    p.add_argument("--models", nargs="+", help="custom grid: these models")
    p.add_argument("--precision", nargs="+", help="custom grid: fp32 bf16 fp16")
    p.add_argument("--channels-last", choices=("off", "on", "both"), default="off")
    p.add_argument("--compile", action="store_true", help="custom grid: torch.compile the model")
    p.add_argument("--stft", nargs="+", choices=("fft", "conv"), default=["fft"],
                   help="custom grid: FFT front end (default) and/or the official Conv1d STFT")
    p.add_argument("--batch", type=int, help="B; 2B clips are read per step (mixup)")
    p.add_argument("--steps", type=int)
    p.add_argument("--warmup", type=int)
    p.add_argument("--seconds", type=float, help="clip length")
    p.add_argument("--map-steps", type=int, help="CPU suite: training steps before the mAP (0: skip it)")
    p.add_argument("--map-models", nargs="+", help="CPU suite: models for the mAP comparison")
    p.add_argument("--packed-root", help="GPU suite: data root with a packed corpus for the loader test")
    p.add_argument("--loader-workers", type=int, nargs="+")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    suite = dict(SUITES["quick" if args.quick else device.type if device.type in SUITES else "cpu"])
    for key in ("batch", "steps", "warmup", "seconds", "map_steps", "map_models", "loader_workers"):
        if getattr(args, key) is not None:
            suite[key] = getattr(args, key)
    if suite.get("map_steps") == 0:  # --map-steps 0: no mAP comparison (an untrained mAP means nothing)
        suite.pop("map_models", None)
    if args.models or args.precision:  # a custom grid replaces the suite's timing part
        suite["models"] = args.models or suite["models"]
        layouts = {"off": [False], "on": [True], "both": [False, True]}[args.channels_last]
        suite["variants"] = [(pr, cl, args.compile, st) for pr in (args.precision or ["fp32"]) for cl in layouts
                             for st in args.stft]
    print(f"# training throughput on {describe_device(device)}; torch {torch.__version__}; batch {suite['batch']} "
          f"with mixup ({2 * suite['batch']} x {suite['seconds']:g}-s clips per step); median of {suite['steps']} steps")
    print(f"# official reference: ~{OFFICIAL_V100_CLIPS_PER_S:.0f} clips/s (600k x 32 in ~3 days, one V100, fp32)")
    report = {"device": describe_device(device), "torch": torch.__version__, "suite": suite}
    report["training"] = run_grid(suite["models"], suite["variants"], suite["batch"], suite["steps"],
                                  suite["warmup"], suite["seconds"], device)
    scratch = None
    try:
        if "map_models" in suite or "loader_workers" in suite:
            root = args.packed_root
            if root is None:
                scratch = root = tempfile.mkdtemp(prefix="bench_training_")
                t0 = time.perf_counter()
                if "map_models" in suite:
                    make_packed_corpus(root, suite["map_classes"], suite["map_seconds"],
                                       suite["map_train_per_class"], suite["map_eval_per_class"])
                else:  # GPU suite: 10-s clips for the loader
                    per_class = max(1, suite["loader_clips"] // 30)
                    make_packed_corpus(root, 30, 10.0, per_class, 1, workers=min(16, os.cpu_count() or 1))
                print(f"# generated and packed a corpus in {time.perf_counter() - t0:.1f} s")
        if "map_models" in suite:
            train, evaluation = read_packed(root, "balanced_train"), read_packed(root, "eval")
            print(f"# mAP after {suite['map_steps']} steps of batch {suite['map_batch']} with mixup on a generated "
                  f"corpus ({len(train[0])} training / {len(evaluation[0])} eval clips of {suite['map_seconds']:g} s, "
                  f"{train[1].shape[1]} classes), evaluated in fp32")
            print("| model | precision | train time (s) | mAP |")
            print("|---|---|---|---|")
            report["map"] = []
            for name in suite["map_models"]:
                for precision in ("fp32", "bf16"):
                    r = map_after_steps(name, precision, train, evaluation, suite["map_steps"], suite["map_batch"],
                                        device)
                    report["map"].append(r)
                    print(f"| {name} | {precision} | {r['train_seconds']:.1f} | {r['mAP']:.3f} |", flush=True)
        if "loader_workers" in suite:
            rows = loader_throughput(root, suite["loader_workers"], suite.get("loader_batch", suite["batch"] * 2),
                                     suite["loader_batches"])
            report["loader"] = rows
            print("| loader workers | clips/s once running (page cache dropped) | first batch after (s) "
                  "| clips/s including start-up |")
            print("|---|---|---|---|")
            for r in rows:
                print(f"| {r['workers']} | {r['clips_per_s']:.0f} | {r['first_batch_s']:.2f} | "
                      f"{r['clips_per_s_overall']:.0f} |")
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return report


if __name__ == "__main__":
    main()
    sys.exit(0)
