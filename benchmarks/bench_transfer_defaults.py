"""Which `panns finetune` defaults learn on small data: accuracy after N steps and time per setting.

Two offline sets stand in for small real datasets (nothing is downloaded):

* ``digits``: spoken-digit-like clips of 0.2-2 s: a voiced source (random pitch)
  shaped by two formants gliding along a class-specific path, plus noise;
* ``environment``: 4-s environmental-like clips: class-specific noise bands with
  class-specific temporal patterns (steady, bursts at a rate, sweeps, hum) over a
  random background.

Each setting trains ``--backbone`` (default Cnn6) from scratch (no pretrained
weights are available offline) for ``--steps`` steps and prints one row:
setting, clip_seconds, held-out accuracy, final training loss vs ln K, seconds.

    python benchmarks/bench_transfer_defaults.py --set digits --steps 60
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import tempfile
import time

import numpy as np
import soundfile as sf
import torch


def _digit_like(label: int, rng, sr: int = 16000) -> np.ndarray:
    seconds = float(np.clip(rng.lognormal(np.log(0.6), 0.5), 0.2, 2.0))
    t = np.arange(int(seconds * sr)) / sr
    f0 = rng.uniform(90, 240) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(1, 4) * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    path = np.random.default_rng(1000 + label).uniform([250, 800, 250, 800], [900, 2600, 900, 2600])
    progress = t / seconds
    f1 = path[0] + (path[2] - path[0]) * progress
    f2 = path[1] + (path[3] - path[1]) * progress
    x = np.zeros_like(t)
    for k in range(1, 30):
        fk = k * f0
        gain = np.exp(-((fk - f1) / 120) ** 2) + 0.7 * np.exp(-((fk - f2) / 180) ** 2)
        x += gain * np.sin(k * phase)
    x *= np.hanning(len(t)) ** 0.3
    x = x / (np.abs(x).max() + 1e-9) * rng.uniform(0.2, 0.9)
    return (x + rng.uniform(0.005, 0.03) * rng.standard_normal(len(t))).astype(np.float32), sr


def _environment_like(label: int, rng, sr: int = 44100, seconds: float = 4.0) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    n = int(seconds * sr)
    t = np.arange(n) / sr
    spec = np.random.default_rng(2000 + label)
    centre = spec.uniform(200, 8000)
    kind = label % 4
    sos = butter(2, [centre / 1.5, min(centre * 1.5, sr / 2 - 100)], btype="band", fs=sr, output="sos")
    band = sosfilt(sos, rng.standard_normal(n))
    if kind == 0:  # steady (rain, wind)
        env = np.ones(n)
    elif kind == 1:  # bursts at a class rate (footsteps, knocking)
        rate = spec.uniform(1.5, 6)
        env = np.exp(-((t * rate) % 1.0) * spec.uniform(8, 30))
    elif kind == 2:  # sweep (siren)
        env = 0.5 + 0.5 * np.sin(2 * np.pi * spec.uniform(0.3, 1.5) * t)
        band = np.sin(2 * np.pi * np.cumsum(centre * (1 + 0.3 * np.sin(2 * np.pi * 0.5 * t))) / sr)
    else:  # harmonic hum with amplitude modulation (engine)
        f0 = spec.uniform(40, 200)
        band = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8))
        env = 0.7 + 0.3 * np.sin(2 * np.pi * spec.uniform(5, 20) * t)
    x = band * env
    x = x / (np.abs(x).max() + 1e-9) * rng.uniform(0.3, 0.9)
    background = sosfilt(butter(1, 500, fs=sr, output="sos"), rng.standard_normal(n))
    x += rng.uniform(0.05, 0.3) * background / (np.abs(background).max() + 1e-9)
    return np.stack([x, x], axis=1).astype(np.float32), sr


def make_set(name: str, root: str, classes: int, train: int, test: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    make = _digit_like if name == "digits" else _environment_like
    os.makedirs(root, exist_ok=True)
    rows = []
    for label in range(classes):
        for i in range(train + test):
            x, sr = make(label, rng)
            fname = f"{label}_{i:03d}.wav"
            sf.write(os.path.join(root, fname), x, sr)
            rows.append((fname, f"class{label}", "train" if i < train else "test"))
    path = os.path.join(root, "labels.csv")
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "label", "fold"])
        writer.writerows(rows)
    return path


SETTINGS = {
    # name: finetune() keyword arguments
    "lr 1e-4 constant, 64-frame SpecAugment (old)": dict(learning_rate=1e-4, warmup_fraction=0.0,
                                                         schedule="constant", spec_augment="official"),
    "lr 1e-3 constant, 64-frame SpecAugment": dict(learning_rate=1e-3, warmup_fraction=0.0, schedule="constant",
                                                   spec_augment="official"),
    "lr 1e-3 warm-up+cosine, 64-frame SpecAugment": dict(spec_augment="official"),
    "lr 1e-3 warm-up+cosine, scaled SpecAugment (default)": dict(spec_augment="scaled"),
    "lr 1e-3 warm-up+cosine, no SpecAugment": dict(spec_augment="off"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=("digits", "environment"), default="digits")
    parser.add_argument("--backbone", default="Cnn6")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--train", type=int, default=10, help="training clips per class")
    parser.add_argument("--test", type=int, default=4, help="held-out clips per class")
    parser.add_argument("--clip-seconds", type=float, default=None, help="default: from the data")
    parser.add_argument("--only", nargs="*", default=None, help="setting numbers to run (0-based)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from panns_core.transfer.finetune import finetune

    with tempfile.TemporaryDirectory() as tmp:
        csv_path = make_set(args.set, os.path.join(tmp, args.set), args.classes, args.train, args.test)
        print(f"{args.set}: {args.classes} classes x ({args.train} train + {args.test} held-out), scratch "
              f"{args.backbone}, {args.steps} steps of batch {args.batch_size}; uniform-guess loss "
              f"ln {args.classes} = {math.log(args.classes):.3f}")
        print("| setting | clip s | held-out accuracy | final train loss | s |")
        print("|---|---|---|---|---|")
        for number, (name, kwargs) in enumerate(SETTINGS.items()):
            if args.only is not None and str(number) not in args.only:
                continue
            t0 = time.perf_counter()
            try:
                run = finetune(csv_path, os.path.join(tmp, f"run{number}"), strategy="scratch",
                               backbone=args.backbone, iterations=args.steps, batch_size=args.batch_size,
                               clip_seconds=args.clip_seconds, evaluations=1, progress=False, log=None,
                               **kwargs)
            except ValueError as exc:  # e.g. clips too short for 64-frame stripes
                print(f"| {name} | - | cannot train: {exc} | - | - |", flush=True)
                continue
            r = run.result
            print(f"| {name} | {r['clip_seconds']:.2f} | {r['accuracy']:.3f} (chance {r['chance']:.2f}) | "
                  f"{r['last_loss']:.3f} | {time.perf_counter() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
