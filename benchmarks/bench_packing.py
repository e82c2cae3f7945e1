"""Packing throughput (clips/s) on a generated corpus; also the generator's own rate.

    .venv/bin/python benchmarks/bench_packing.py [--clips 300] [--seconds 10] [--workers 0 2]

Generates ``--clips`` eval-shaped clips (30 classes, 32 kHz) into a temporary root,
then packs them with each ``--workers`` setting into a fresh HDF5. Prints JSON lines.
"""

import argparse
import json
import os
import shutil
import tempfile
import time

from panns_core.data.audioset import metadata_paths, read_class_labels, read_segments_csv
from panns_core.data.pack import pack_segments
from panns_core.data.synthetic import CorpusConfig, Renderer, generate_corpus, plan_corpus, write_wav_int16


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--clips", type=int, default=300)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--root")
    a = p.parse_args()
    root = a.root or tempfile.mkdtemp(prefix="bench_pack_")
    try:
        cfg = dict(num_classes=30, clip_seconds=a.seconds, balanced_per_class=0, eval_per_class=0,
                   unbalanced_clips=a.clips)
        # the generator's steady state: render + write each planned clip (one core)
        config = CorpusConfig(**cfg)
        t0 = time.perf_counter()
        renderer = Renderer(config, 0)
        bank_s = time.perf_counter() - t0
        scratch = os.path.join(root, "scratch")
        os.makedirs(scratch)
        clips = plan_corpus(config)["clips"]["unbalanced_train"]
        t0 = time.perf_counter()
        for c in clips:
            write_wav_int16(os.path.join(scratch, f"Y{c.ytid}.wav"), renderer.render(c)[0], config.sample_rate)
        render_s = time.perf_counter() - t0
        shutil.rmtree(scratch)
        info = generate_corpus(root, splits=("unbalanced_train",), **cfg)
        print(json.dumps({"bench": "generate", "clips": a.clips, "clip_seconds": a.seconds, "workers": 0,
                          "bank_build_seconds": round(bank_s, 2),
                          "render_write_clips_per_s": round(a.clips / render_s, 1),
                          "generate_corpus_seconds": round(info.seconds, 2),
                          "generate_corpus_clips_per_s": round(info.clips_per_second, 1)}))
        paths = metadata_paths(root)
        labels = read_class_labels(paths["class_labels"])
        segs = read_segments_csv(paths["unbalanced_train"])
        for w in a.workers:
            out = os.path.join(root, f"pack_w{w}.h5")
            r = pack_segments(segs, labels, os.path.join(root, "audios", "unbalanced_train"), out,
                              sample_rate=32000, clip_seconds=a.seconds, workers=w)
            print(json.dumps({"bench": "pack", "clips": r.packed, "workers": w, "seconds": round(r.seconds, 2),
                              "clips_per_s": round(r.clips_per_second, 1),
                              "mb": round(os.path.getsize(out) / 2**20, 1)}))
            os.remove(out)
    finally:
        if not a.root:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
