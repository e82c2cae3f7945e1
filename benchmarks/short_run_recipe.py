"""Measure short CPU training runs on the generated corpus: mAP after N iterations and seconds.

Generates (once) a corpus with the given settings, packs it, then trains each named
variant of the recipe and prints one line per run: variant, iterations, eval mAP at
the best-validation iteration, final eval mAP, seconds. The numbers in
docs/default_profile.md come from this script.

    python benchmarks/short_run_recipe.py --root /tmp/recipe --iterations 300 \
        --variants base,paper_specaug,lr3e-3,warmup
    python benchmarks/short_run_recipe.py --corpus '{"num_classes": 20, "snr_db": [-3, 12]}' ...
"""

from __future__ import annotations

import argparse
import json
import os
import time

VARIANTS = {
    # the short-run recipe of the default profile
    "base": {},
    "paper_specaug": {"spec_augment_time_width": None},  # 2 stripes of up to 64 of 101 frames
    "no_mixup": {"augmentation": "none"},
    "lr3e-3": {"learning_rate": 3e-3},
    "lr1e-3": {"learning_rate": 1e-3},
    "warmup": {"warmup_iterations": 50},
    "no_balancing_no_mixup": {"balanced": "none", "augmentation": "none"},
    "balancing_no_mixup": {"augmentation": "none"},
    "balanced_subset": {"training_set": "balanced_train_minus_validation"},
    "half_data": {"training_set": "full_train_minus_validation_frac0.5_seed0"},
    "sr_16k": {"sample_rate": 16000, "window_size": 512, "hop_size": 160, "fmax": 8000},
    "sr_8k": {"sample_rate": 8000, "window_size": 256, "hop_size": 80, "fmax": 4000},
    "mel_32": {"mel_bins": 32},
    "mel_128": {"mel_bins": 128},
    "hop_640": {"hop_size": 640},
    "bf16": {"precision": "bf16"},
    "workers2": {"num_workers": 2},
    "Cnn10": {"model": "Cnn10"},
    "Cnn14": {"model": "Cnn14"},
    "MobileNetV1": {"model": "MobileNetV1"},
    "MobileNetV2": {"model": "MobileNetV2"},
    "LeeNet11": {"model": "LeeNet11"},
    "Cnn14_emb32": {"model": "Cnn14_emb32"},
    "Cnn14_mixup_time_domain": {"model": "Cnn14_mixup_time_domain"},
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="work folder (corpus in <root>/data, runs in <root>/runs)")
    p.add_argument("--corpus", default="{}", help="JSON: CorpusConfig overrides on the smoke preset")
    p.add_argument("--clip-seconds", type=float, default=1.0)
    p.add_argument("--train", default="{}", help="JSON: TrainConfig fields shared by every variant")
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--variants", default="base")
    p.add_argument("--seeds", default="1234")
    p.add_argument("--max-eval-clips", type=int, default=96, help="clips per evaluated split (None: all)")
    args = p.parse_args(argv)

    from panns_core.data.synthetic import generate_corpus
    from panns_core.study.stages import prepare_indexes
    from panns_core.train import TrainConfig, read_statistics, train

    data_root = os.path.join(args.root, "data")
    corpus = {"preset": "smoke", "clip_seconds": args.clip_seconds, **json.loads(args.corpus)}
    marker = os.path.join(data_root, "corpus.json")
    if not os.path.exists(marker) or json.load(open(marker)) != corpus:
        t0 = time.perf_counter()
        info = generate_corpus(data_root, **corpus)
        prepare_indexes(data_root, sample_rate=32000, clip_seconds=args.clip_seconds, validation_fraction=0.1,
                        fractions=[0.5])
        json.dump(corpus, open(marker, "w"))
        print(f"corpus {corpus}: {info.counts}, {time.perf_counter() - t0:.1f} s", flush=True)
    base = {"model": "Cnn6", "data_root": data_root, "training_set": "full_train_minus_validation",
            "batch_size": 8, "iterations": args.iterations, "eval_every": args.eval_every,
            "max_eval_clips": args.max_eval_clips, "eval_splits": ["eval", "validation"], "checkpoint_every": 10**9, "device": "cpu", "progress": False,
            "learning_rate": 1e-3, "spec_augment_time_width": 6, **json.loads(args.train)}
    for name in args.variants.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            fields = {**base, **VARIANTS[name], "seed": seed,
                      "run_dir": os.path.join(args.root, "runs", f"{name}_s{seed}_{args.iterations}")}
            t0 = time.perf_counter()
            train(TrainConfig.from_dict(fields))
            seconds = time.perf_counter() - t0
            stats = read_statistics(fields["run_dir"])
            val = [s for s in stats if s["split"] == "validation"]
            ev = {s["iteration"]: s for s in stats if s["split"] == "eval"}
            best = max(val, key=lambda s: (s["mAP"], -s["iteration"])) if val else None
            curve = " ".join(f"{ev[i]['mAP']:.3f}" for i in sorted(ev))
            print(f"{name:24s} seed {seed} it {args.iterations} best-val-it {best['iteration'] if best else '-'} "
                  f"eval mAP@best {ev[best['iteration']]['mAP']:.3f} final {ev[max(ev)]['mAP']:.3f} "
                  f"cps {stats[-1]['clips_per_second']:.1f} {seconds:.0f} s | eval curve {curve}", flush=True)


if __name__ == "__main__":
    main()
