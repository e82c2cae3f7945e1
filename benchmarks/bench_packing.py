"""Packing throughput (clips/s, per worker) on a generated corpus; also the generator's own rate.

    .venv/bin/python benchmarks/bench_packing.py [--clips 300] [--seconds 10] [--workers 0 2]
        [--input flac48k | wav32k]

Generates ``--clips`` clips (30 classes, 32 kHz) into a temporary root. With
``--input flac48k`` (default; the Hugging Face mirror's format) every clip is then
rewritten as 48 kHz 24-bit FLAC (resampled by the project's resampler, written with soundfile), so
packing pays for FLAC decoding and the 48 -> 32 kHz resampling. The files keep the
names the packer looks up (``Y<id>.wav``); libsndfile recognises FLAC by its content.
Then packs them with each ``--workers`` setting into a fresh HDF5. Prints JSON lines.
"""

import argparse
import json
import os
import shutil
import tempfile
import time

import soundfile as sf


from panns_core.data.audioset import metadata_paths, read_class_labels, read_segments_csv
from panns_core.data.pack import pack_segments
from panns_core.data.resample import resample
from panns_core.data.synthetic import CorpusConfig, Renderer, generate_corpus, plan_corpus, write_wav_int16


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--clips", type=int, default=300)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--input", choices=("flac48k", "wav32k"), default="flac48k")
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
        audios = os.path.join(root, "audios", "unbalanced_train")
        if a.input == "flac48k":
            t0 = time.perf_counter()
            for name in sorted(os.listdir(audios)):
                path = os.path.join(audios, name)
                if not name.endswith(".wav"):
                    continue
                wave, rate = sf.read(path, dtype="float32")
                sf.write(path, resample(wave, rate, 48000, "antialias"), 48000, format="FLAC", subtype="PCM_24")
            print(json.dumps({"bench": "write_flac48k_24bit", "clips": a.clips,
                              "seconds": round(time.perf_counter() - t0, 2)}))
        paths = metadata_paths(root)
        labels = read_class_labels(paths["class_labels"])
        segs = read_segments_csv(paths["unbalanced_train"])
        for w in a.workers:
            out = os.path.join(root, f"pack_w{w}.h5")
            r = pack_segments(segs, labels, audios, out,
                              sample_rate=32000, clip_seconds=a.seconds, workers=w)
            print(json.dumps({"bench": "pack", "input": a.input, "clips": r.packed, "workers": w,
                              "seconds": round(r.seconds, 2), "clips_per_s": round(r.clips_per_second, 1),
                              "clips_per_s_per_worker": round(r.clips_per_second / max(w, 1), 1),
                              "mb": round(os.path.getsize(out) / 2**20, 1)}))
            os.remove(out)
    finally:
        if not a.root:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
