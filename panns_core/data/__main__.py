"""``python -m panns_core.data <command>``: prepare AudioSet or the generated corpus.

Commands:
  synthetic ROOT [--preset smoke] [--seed 0] [--workers N]   generate the offline corpus
  metadata ROOT                                              fetch the official CSVs
  acquire ROOT --split eval [--workers 8] [--cookies F] [--proxy URL] [--rate-limit B/s]   (YouTube)
  acquire ROOT --split eval --source hf [--hf-repo R] [--hf-dir DIR] [--hf-revision REV]     (Hub mirror;
                                                             --workers: decoding processes, default the CPUs)
  summary ROOT                                               availability per split
  pack ROOT [--splits eval balanced_train ...] [--workers N] [--clip-seconds 10] [--sample-rate 32000]
                                                             pack + indexes + full_train
  index ROOT                                                 indexes for existing waveform HDF5s
  subset INDEX --fraction 0.5 --seed 0                       partial-data index
  validation INDEX --fraction 0.05 --seed 0                  carve a validation split
  blacklist INDEX --csv LIST --out OUT                       drop black-listed ids
  prepare ROOT [--preset smoke]                              synthetic + pack in one go
"""

from __future__ import annotations

import argparse
import json
import sys


def _synthetic(a):
    from panns_core.data.synthetic import generate_corpus

    info = generate_corpus(a.root, preset=a.preset, workers=a.workers, seed=a.seed)
    print(json.dumps({"root": info.root, "counts": info.counts, "seconds": round(info.seconds, 2),
                      "clips_per_second": round(info.clips_per_second, 1)}))


def _pack(a):
    from panns_core.data.pack import pack_dataset

    res = pack_dataset(a.root, splits=tuple(a.splits), workers=a.workers, clip_seconds=a.clip_seconds,
                       sample_rate=a.sample_rate)
    print(f"clips of {a.clip_seconds:g} s at {a.sample_rate} Hz (shorter ones zero-padded, longer ones cut)")
    for name, r in res.items():
        for note in r.notes:
            print(f"{name}: note: {note}")
        short = f", {r.short} shorter than their segment (see the manifest)" if r.short else ""
        short += f", {r.long} longer than their segment, cut (see the manifest)" if r.long else ""
        print(f"{name}: packed {r.packed}, excluded {r.excluded} {r.reasons}{short}, "
              f"{r.clips_per_second:.1f} clips/s{'' if r.complete else ' (incomplete)'}")


def _positive(kind):
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def _packing_options(s) -> None:
    s.add_argument("--clip-seconds", type=_positive(float), default=10.0,
                   help="length every clip is padded or cut to (default 10, AudioSet's clip length)")
    s.add_argument("--sample-rate", type=_positive(int), default=32000,
                   help="rate the audio is resampled to (default 32000, the 32 kHz models)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m panns_core.data", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("synthetic"); s.add_argument("root"); s.add_argument("--preset", default="smoke")
    s.add_argument("--seed", type=int, default=0); s.add_argument("--workers", type=int, default=0)
    s = sub.add_parser("prepare"); s.add_argument("root"); s.add_argument("--preset", default="smoke")
    s.add_argument("--seed", type=int, default=0); s.add_argument("--workers", type=int, default=0)
    s.add_argument("--splits", nargs="+", default=["eval", "balanced_train", "unbalanced_train"])
    _packing_options(s)
    s = sub.add_parser("metadata"); s.add_argument("root")
    s = sub.add_parser("acquire"); s.add_argument("root"); s.add_argument("--split", required=True)
    s.add_argument("--workers", type=int, default=None,
                   help="yt-dlp: download threads (default 8); hf: decoding processes (default: the CPUs "
                        "this process may use; 0 decodes in one process)")
    s.add_argument("--limit", type=int)
    s.add_argument("--cookies"); s.add_argument("--proxy"); s.add_argument("--rate-limit", type=int)
    s.add_argument("--min-interval", type=float, default=0.0); s.add_argument("--retries", type=int, default=2)
    s.add_argument("--retry-failed", action="store_true"); s.add_argument("--ffmpeg")
    s.add_argument("--source", choices=("yt-dlp", "hf"), default="yt-dlp",
                   help="yt-dlp: download from YouTube; hf: read the Hugging Face Hub mirror")
    s.add_argument("--hf-repo", default=None, help="mirror repository (default agkphysics/AudioSet)")
    s.add_argument("--hf-dir", help="an already downloaded copy laid out as DIR/data/<split dir>/*.parquet")
    s.add_argument("--hf-revision", help="branch, tag or commit of the mirror (default: main, pinned)")
    s.add_argument("--hf-cache-dir", help="huggingface_hub cache (default: its own, $HF_HOME)")
    s.add_argument("--max-shards", type=int, help="stop after N shards (a rerun continues)")
    s.add_argument("--delete-shards", action="store_true",
                   help="remove each downloaded shard from the Hub cache once its clips are written")
    s = sub.add_parser("summary"); s.add_argument("root")
    s = sub.add_parser("pack"); s.add_argument("root"); s.add_argument("--workers", type=int, default=0)
    s.add_argument("--splits", nargs="+", default=["eval", "balanced_train", "unbalanced_train"])
    _packing_options(s)
    s = sub.add_parser("index"); s.add_argument("root")
    s = sub.add_parser("subset"); s.add_argument("index"); s.add_argument("--fraction", type=float, required=True)
    s.add_argument("--seed", type=int, default=0); s.add_argument("--out")
    s = sub.add_parser("validation"); s.add_argument("index"); s.add_argument("--fraction", type=float, default=0.05)
    s.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("blacklist"); s.add_argument("index"); s.add_argument("--csv", required=True)
    s.add_argument("--out", required=True)
    a = p.parse_args(argv)
    try:
        return _run(a) or 0
    except KeyboardInterrupt:
        # Packing and acquisition record their progress after every chunk.
        print(f"python -m panns_core.data {a.cmd}: interrupted; rerun the same command to resume "
              "where it stopped", file=sys.stderr)
        return 130
    except (OSError, ValueError) as e:  # MetadataError, IndexFileError, MirrorError are ValueErrors;
        # OSError: a missing root, a full disk, hf_audioset.AcquireStopped
        print(f"python -m panns_core.data {a.cmd}: error: {e}", file=sys.stderr)
        return 2


def _run(a) -> int:
    """Run the command; the exit status (0, or 1 when a Hub acquire had to skip unreadable shards)."""
    if a.cmd == "synthetic":
        _synthetic(a)
    elif a.cmd == "prepare":
        _synthetic(a)
        _pack(a)
    elif a.cmd == "metadata":
        from panns_core.data.acquire import download_metadata

        print(json.dumps(download_metadata(a.root), indent=1))
    elif a.cmd == "acquire" and a.source == "hf":
        from panns_core.data.hf_audioset import HF_REPO, acquire_split_hf

        result = acquire_split_hf(a.root, a.split, hf_repo=a.hf_repo or HF_REPO, hf_dir=a.hf_dir,
                                  revision=a.hf_revision, cache_dir=a.hf_cache_dir, workers=a.workers,
                                  max_shards=a.max_shards, delete_shards=a.delete_shards, progress=True)
        print(result.line())
        for name, problem in sorted(result.bad_shards.items()):
            print(f"python -m panns_core.data acquire: shard skipped: {problem}", file=sys.stderr)
        return 1 if result.bad_shards else 0
    elif a.cmd == "acquire":
        if a.hf_dir or a.hf_repo:
            raise ValueError("--hf-dir/--hf-repo need --source hf")
        from panns_core.data.acquire import acquire_split

        summary = acquire_split(a.root, a.split, workers=8 if a.workers is None else a.workers, limit=a.limit,
                                cookies=a.cookies,
                                proxy=a.proxy, rate_limit=a.rate_limit, min_interval=a.min_interval,
                                retries=a.retries, retry_failed=a.retry_failed, ffmpeg=a.ffmpeg, progress=True)
        print(summary.line())
    elif a.cmd == "summary":
        import os

        from panns_core.data.acquire import availability_summary
        from panns_core.data.audioset import SPLITS, metadata_paths

        for split in SPLITS:
            if os.path.exists(metadata_paths(a.root)[split]):
                print(availability_summary(a.root, split).line())
    elif a.cmd == "pack":
        _pack(a)
    elif a.cmd == "index":
        from panns_core.data.pack import build_indexes

        print(json.dumps(build_indexes(a.root), indent=1))
    elif a.cmd == "subset":
        from panns_core.data.pack import partial_subset

        print(f"{len(partial_subset(a.index, a.fraction, a.seed, a.out))} clips")
    elif a.cmd == "validation":
        from panns_core.data.pack import validation_split

        train, val = validation_split(a.index, a.fraction, a.seed)
        print(f"train {len(train)}, validation {len(val)}")
    elif a.cmd == "blacklist":
        from panns_core.data.pack import apply_black_list

        print(f"{len(apply_black_list(a.index, a.csv, a.out))} clips kept")


if __name__ == "__main__":
    sys.exit(main())
