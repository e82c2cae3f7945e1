"""Loader throughput (clips/s, bytes/s) from packed HDF5 through samplers + AudioSetDataset + DataLoader.

    .venv/bin/python benchmarks/bench_loader.py [--clips 300] [--seconds 10] [--workers 0 2 4 8]
        [--sample-rate 32000] [--resample-mode antialias] [--batches 30] [--keep-cache]

Packs a generated corpus (or uses ``--root`` if it already holds a packed one) and
draws ``--batches`` balanced batches (random access) of 32 clips for each worker count.

Page cache: a small packed file fits in memory, which would measure RAM, not disk.
Before every pass the benchmark asks the kernel to drop the packed files' cached
pages (``posix_fadvise(..., POSIX_FADV_DONTNEED)``, Linux; the JSON says whether it
was applied), so each pass reads from disk unless ``--keep-cache``. For a file
larger than RAM use ``--clips`` large enough (10-s clips take 640 kB each).
``bytes_per_s`` counts the int16 waveform bytes the batches hold.
"""

import argparse
import json
import os
import shutil
import tempfile
import time

import torch

from panns_core.data.pack import index_path, pack_dataset
from panns_core.data.reader import AudioSetDataset, collate_fn
from panns_core.data.synthetic import generate_corpus
from panns_core.samplers import BalancedSampler


def drop_page_cache(root: str) -> bool:
    """Advise the kernel to drop cached pages of every packed file under ``root``."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith((".h5", ".hdf5")):
                fd = os.open(os.path.join(folder, name), os.O_RDONLY)
                try:
                    os.fsync(fd)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)
    return True


class _Limited:
    """First ``n`` batches of an infinite sampler (a DataLoader batch_sampler must end)."""

    def __init__(self, sampler, n):
        self.sampler, self.n = sampler, n

    def __iter__(self):
        it = iter(self.sampler)
        for _ in range(self.n):
            yield next(it)

    def __len__(self):
        return self.n


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--clips", type=int, default=300)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4, 8])
    p.add_argument("--keep-cache", action="store_true", help="do not drop the page cache before a pass")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--sample-rate", type=int, default=32000)
    p.add_argument("--resample-mode", default="antialias")
    p.add_argument("--root")
    a = p.parse_args()
    root = a.root or tempfile.mkdtemp(prefix="bench_loader_")
    try:
        if not os.path.exists(index_path(root, "full_train")):
            generate_corpus(root, num_classes=30, clip_seconds=a.seconds, balanced_per_class=0, eval_per_class=0,
                            unbalanced_clips=a.clips, splits=("unbalanced_train",))
            pack_dataset(root, splits=("unbalanced_train",), clip_seconds=a.seconds)
        for w in a.workers:
            dropped = False if a.keep_cache else drop_page_cache(root)
            sampler = _Limited(BalancedSampler(index_path(root, "full_train"), a.batch_size), a.batches)
            ds = AudioSetDataset(a.sample_rate, a.resample_mode)
            loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate_fn, num_workers=w)
            t0 = time.perf_counter()
            n = sum(len(b["audio_name"]) for b in loader)
            dt = time.perf_counter() - t0
            nbytes = n * int(round(a.seconds * 32000)) * 2  # int16 rows of the packed (32 kHz) file
            print(json.dumps({"bench": "loader", "workers": w, "clips": n, "sample_rate": a.sample_rate,
                              "resample_mode": a.resample_mode, "seconds": round(dt, 2),
                              "clips_per_s": round(n / dt, 1), "bytes_per_s": round(nbytes / dt),
                              "page_cache_dropped": dropped}))
    finally:
        if not a.root:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
