"""Which `panns finetune` defaults learn on small data: held-out accuracy after N steps and time per setting.

Three offline sets stand in for small real datasets (nothing is downloaded):

* ``digits``: spoken-digit-like clips of 0.2-2 s at 16 kHz: a voiced source
  (random pitch) shaped by two formants gliding along a class-specific path, plus noise;
* ``environment``: 4-s environmental-like stereo clips at 44.1 kHz: class-specific
  noise bands with class-specific temporal patterns (steady, bursts at a rate,
  sweeps, hum) over a random background;
* ``heldout``: 1-s clips of sound classes 10.. of the generated corpus's bank
  (:func:`panns_core.data.synthetic.write_heldout_folder`), which a backbone
  pretrained on the default profile's 10-class corpus never heard; with
  ``--checkpoint runs/default/train/base/checkpoints/best.pt`` this measures the
  pretrained strategies from a backbone that learned (eval mAP about 0.9);
* ``standin``: the generated ESC-50 stand-in (:func:`panns_core.transfer.make_standin`,
  class-dependent tones), 5 classes x 30 clips of 5 s, its first fold held out.

Every setting trains ``--backbone`` (default Cnn6) for ``--steps`` steps of
``--batch-size`` and reports the held-out accuracy at ``--evaluations`` evenly
spaced steps, the final training loss against ln K, wall seconds and the CPU
seconds of the process. Settings (scratch: random init):

* ``old``: clip 10 s, lr 1e-4 constant, 64-frame SpecAugment (the defaults before);
* short clips zero-padded (the official code) against repeated end to end;
* one change at a time towards the new defaults (clip from the data, lr 1e-3,
  warm-up + cosine, SpecAugment scaled / off);
* with ``--pretrain-steps N``: a backbone is first trained for N iterations on the
  generated AudioSet-shaped corpus (``python -m panns_core.data prepare --preset
  smoke`` + ``python -m panns_core.train``: 24 classes, 2-s clips; no released
  weights are needed) and the finetune / freeze_l1 / freeze_l3 defaults are
  measured from it (old constant rate vs the new schedule, and a higher rate).

    python benchmarks/bench_transfer_defaults.py --set digits environment standin --steps 300 --device cuda \
        --pretrain-steps 1500
    # on a small shared CPU: a cheaper front end, fewer steps (the table in docs/transfer.md)
    python benchmarks/bench_transfer_defaults.py --set digits --steps 80 --batch-size 8 --train 16 --test 8 \
        --device cpu --threads 1 --overrides '{"sample_rate": 16000, "window_size": 512, "hop_size": 320,
        "mel_bins": 32, "fmax": 8000}'

Everything is generated under a temporary folder; ``--json`` saves the rows.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
import torch


def _digit_like(label: int, rng, sr: int = 16000) -> tuple[np.ndarray, int]:
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


def _environment_like(label: int, rng, sr: int = 44100, seconds: float = 4.0) -> tuple[np.ndarray, int]:
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
    """Write the set ``name`` under ``root``; returns its labels.csv (filename, label, fold train/test)."""
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, "labels.csv")
    rows = []
    if name == "heldout":
        # Classes 10.. of the generated corpus's sound bank: a backbone pretrained on a corpus of 10 classes
        # (the default profile's) has never heard them.
        from panns_core.data.synthetic import MAX_CLASSES, write_heldout_folder

        return write_heldout_folder(root, first_class=10, num_classes=min(classes, MAX_CLASSES - 10),
                                    train_per_class=train, test_per_class=test, clip_seconds=1.0, seed=seed)
    if name == "standin":
        from panns_core.transfer import make_standin, parse_task

        make_standin("esc50", os.path.join(root, "esc50"), clips_per_fold=6, seconds=5.0)
        data = parse_task("esc50", os.path.join(root, "esc50"))
        first = data.folds[0]
        for clip in data.clips:
            rows.append((os.path.relpath(clip.path, root), data.classes[clip.label],
                         "test" if clip.fold == first else "train"))
    else:
        rng = np.random.default_rng(seed)
        make = _digit_like if name == "digits" else _environment_like
        for label in range(classes):
            for i in range(train + test):
                x, sr = make(label, rng)
                fname = f"{label}_{i:03d}.wav"
                sf.write(os.path.join(root, fname), x, sr)
                rows.append((fname, f"class{label}", "train" if i < train else "test"))
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "label", "fold"])
        writer.writerows(rows)
    return path


OLD = dict(learning_rate=1e-4, warmup_fraction=0.0, schedule="constant", spec_augment="official")
SCRATCH_SETTINGS = {
    # name: finetune() keyword arguments (clip_seconds=None: from the data)
    "old: clip 10 s, lr 1e-4 constant, SpecAugment official": dict(OLD, clip_seconds=10.0),
    "clip from data, lr 1e-4 constant, SpecAugment official": dict(OLD),
    "clip from data, lr 1e-3 constant, SpecAugment scaled": dict(learning_rate=1e-3, warmup_fraction=0.0,
                                                                 schedule="constant", spec_augment="scaled"),
    "clip from data, lr 1e-3 warm-up+cosine, SpecAugment official": dict(spec_augment="official"),
    "clip from data, lr 1e-3 warm-up+cosine, SpecAugment off": dict(spec_augment="off"),
    "new defaults (clip from data, lr 1e-3 warm-up+cosine, SpecAugment scaled)": dict(),
    "new defaults but clip 10 s": dict(clip_seconds=10.0),
    "new defaults without BatchNorm recalibration (precise_bn off)": dict(precise_bn=False),
    "defaults with short clips zero-padded (pad zeros, the official code)": dict(pad="zeros"),
    "defaults with short clips repeated (pad repeat)": dict(pad="repeat"),
}
PRETRAINED_SETTINGS = {
    # name: (strategy, finetune() keyword arguments)
    "finetune old: lr 1e-4 constant, SpecAugment official": ("finetune", dict(OLD)),
    "finetune new defaults (lr 1e-4 warm-up+cosine, SpecAugment scaled)": ("finetune", dict()),
    "finetune lr 1e-3 warm-up+cosine, SpecAugment scaled": ("finetune", dict(learning_rate=1e-3)),
    "freeze_l1 old: lr 1e-3 constant": ("freeze_l1", dict(schedule="constant")),
    "freeze_l1 new defaults (lr 1e-3 cosine)": ("freeze_l1", dict()),
    "freeze_l3 old: lr 1e-3 constant": ("freeze_l3", dict(schedule="constant")),
    "freeze_l3 new defaults (lr 1e-3 cosine)": ("freeze_l3", dict()),
    "scratch new defaults (same steps, for reference)": ("scratch", dict()),
    # appended, so that the numbers in docs/transfer.md's older commands keep their meaning
    "finetune lr 1e-4, new head 1e-3, warm-up+cosine": ("finetune", dict(new_head_learning_rate=1e-3)),
    "finetune lr 3e-4, new head 1e-3, warm-up+cosine": ("finetune", dict(learning_rate=3e-4,
                                                                          new_head_learning_rate=1e-3)),
}


def pretrain(root: str, backbone: str, steps: int, device: str, overrides: dict, batch_size: int) -> str:
    """Train ``backbone`` on the generated AudioSet-shaped corpus with the training CLI; returns the checkpoint.

    A checkpoint already under ``root`` (an earlier call) is reused.
    """
    data_root = os.path.join(root, "corpus")
    run_dir = os.path.join(root, "pretrain", backbone)
    checkpoint = os.path.join(run_dir, "checkpoints", "latest.pt")
    if os.path.exists(checkpoint):
        return checkpoint
    env = dict(os.environ)
    sample_rate = str(overrides.get("sample_rate", 32000))
    subprocess.run([sys.executable, "-m", "panns_core.data", "prepare", data_root, "--preset", "smoke",
                    "--clip-seconds", "2", "--sample-rate", sample_rate], check=True, env=env)
    front_end = [x for key, value in overrides.items() for x in ("--" + key.replace("_", "-"), str(value))]
    subprocess.run([sys.executable, "-m", "panns_core.train", "--model", backbone, "--data-root", data_root,
                    "--training-set", "full_train", "--eval-splits", '["eval"]', "--iterations", str(steps),
                    "--eval-every", str(max(1, steps // 2)), "--max-eval-clips", "96", "--batch-size",
                    str(batch_size), "--device", device, "--run-dir", run_dir, "--progress", "false", "--quiet",
                    *front_end], check=True, env=env)
    from panns_core.train import read_statistics

    lines = read_statistics(run_dir)
    evals = [(s.get("iteration"), s.get("mAP")) for s in lines if s.get("split") == "eval"]
    print(f"pretrained {backbone} for {steps} iterations on the generated corpus: eval mAP by iteration {evals}")
    return checkpoint


def run_one(csv_path: str, out: str, strategy: str, kwargs: dict, args, checkpoint: str | None) -> dict:
    from panns_core.transfer.finetune import finetune

    kwargs = dict(kwargs)
    clip_seconds = kwargs.pop("clip_seconds", args.clip_seconds)
    if args.pad is not None:
        kwargs.setdefault("pad", args.pad)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        run = finetune(csv_path, out, strategy=strategy, backbone=args.backbone, checkpoint=checkpoint,
                       iterations=args.steps, batch_size=args.batch_size, clip_seconds=clip_seconds,
                       evaluations=args.evaluations, device=args.device, backbone_overrides=args.overrides,
                       seed=args.seed,
                       progress=False, log=None, **kwargs)
    except ValueError as exc:  # e.g. clips too short for 64-frame stripes
        return {"error": str(exc)}
    r = run.result
    return {"clip_seconds": r["clip_seconds"], "accuracy": r["accuracy"], "chance": r["chance"],
            "history": r["history"], "last_loss": r["last_loss"], "uniform_loss": r["uniform_guess_loss"],
            "pad": r["settings"]["pad"], "warnings": len(r["warnings"]), "wall_s": time.perf_counter() - wall0,
            "cpu_s": time.process_time() - cpu0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=("digits", "environment", "heldout", "standin"), nargs="*",
                        default=["digits"])
    parser.add_argument("--backbone", default="Cnn6")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--evaluations", type=int, default=3, help="held-out evaluations (evenly spaced)")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--train", type=int, default=20, help="training clips per class")
    parser.add_argument("--test", type=int, default=20, help="held-out clips per class")
    parser.add_argument("--clip-seconds", type=float, default=None, help="default: from the data")
    parser.add_argument("--pretrain-steps", type=int, default=0,
                        help="train a backbone this long on the generated corpus, then measure finetune/freeze")
    parser.add_argument("--checkpoint", default=None,
                        help="an already pretrained backbone (.pt/.pth) for the pretrained settings, "
                             "instead of --pretrain-steps")
    parser.add_argument("--pretrain-dir", default=None,
                        help="keep the corpus and pretrained backbone here (reused by later calls)")
    parser.add_argument("--only-scratch", type=int, nargs="*", default=None, help="scratch setting numbers")
    parser.add_argument("--only-pretrained", type=int, nargs="*", default=None,
                        help="pretrained setting numbers (with --pretrain-steps)")
    parser.add_argument("--overrides", type=json.loads, default={},
                        help='backbone front-end overrides as JSON, e.g. \'{"sample_rate": 16000, "window_size": 512, '
                             '"hop_size": 320, "mel_bins": 32, "fmax": 8000}\' (a cheaper front end for a CPU)')
    parser.add_argument("--pretrain-batch-size", type=int, default=32)
    parser.add_argument("--pad", choices=("repeat", "zeros"), default=None,
                        help="padding of short clips for every setting that does not set its own "
                             "(default: finetune's default)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (batches, initial weights)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="write all rows to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from panns_core.runtime import resolve_device

    args.device = str(resolve_device(args.device))
    rows = []
    print(f"{args.backbone} {args.overrides or ''}, {args.steps} steps of batch {args.batch_size} on {args.device} "
          f"({torch.cuda.get_device_name() if args.device.startswith('cuda') else f'{args.threads} CPU threads'})")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint
        if args.checkpoint and not os.path.isfile(args.checkpoint):
            parser.error(f"--checkpoint {args.checkpoint}: no such file")
        if args.pretrain_steps and not checkpoint:
            t0 = time.perf_counter()
            checkpoint = pretrain(args.pretrain_dir or tmp, args.backbone, args.pretrain_steps, args.device,
                                  args.overrides, args.pretrain_batch_size)
            print(f"pretraining took {time.perf_counter() - t0:.0f} s", flush=True)
        for name in args.set:
            csv_path = make_set(name, os.path.join(tmp, name), args.classes, args.train, args.test)
            print(f"\n{name} ({csv_path}): uniform-guess loss ln K; accuracy at steps "
                  f"{[max(1, args.steps // args.evaluations) * (i + 1) for i in range(args.evaluations)]}")
            print("| set | strategy | setting | clip s | held-out accuracy by step (chance) | final train loss "
                  "(ln K) | wall s | CPU s |")
            print("|---|---|---|---|---|---|---|---|")
            jobs = [("scratch", n, kw) for i, (n, kw) in enumerate(SCRATCH_SETTINGS.items())
                    if args.only_scratch is None or i in args.only_scratch]
            if checkpoint:
                jobs += [(strategy, n, kw) for i, (n, (strategy, kw)) in enumerate(PRETRAINED_SETTINGS.items())
                         if args.only_pretrained is None or i in args.only_pretrained]
            for number, (strategy, setting, kwargs) in enumerate(jobs):
                row = {"set": name, "strategy": strategy, "setting": setting,
                       **run_one(csv_path, os.path.join(tmp, f"{name}_run{number}"), strategy, kwargs, args,
                                 checkpoint if strategy != "scratch" else None)}
                rows.append(row)
                if "error" in row:
                    print(f"| {name} | {strategy} | {setting} | - | cannot train: {row['error']} | - | - | - |",
                          flush=True)
                    continue
                accs = " / ".join(f"{h['accuracy']:.2f}" for h in row["history"])
                print(f"| {name} | {strategy} | {setting} | {row['clip_seconds']:.2f} | {accs} ({row['chance']:.2f}) | "
                      f"{row['last_loss']:.2f} ({row['uniform_loss']:.2f}) | {row['wall_s']:.0f} | "
                      f"{row['cpu_s']:.0f} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
