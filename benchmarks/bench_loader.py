"""Loader throughput (clips/s, bytes/s) from packed HDF5 through samplers + AudioSetDataset + DataLoader.

    .venv/bin/python benchmarks/bench_loader.py [--clips 300] [--seconds 10] [--workers 0 2 4 8]
        [--sample-rate 32000] [--resample-mode antialias] [--batches 60] [--keep-cache] [--collate tensor|numpy]

Packs a generated corpus (or uses ``--root`` if it already holds a packed one) and
draws ``--batches`` balanced batches (random access) of 32 clips for each worker count,
collated into tensors as the training loop does (``--collate numpy``: the official
numpy batches, which worker processes must pickle through a pipe). ``clips_per_s`` is the
steady state after the workers' start-up and prefetch (:func:`time_loader`);
``first_batch_s`` and ``clips_per_s_overall`` include the start-up.

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
from panns_core.runtime import TensorCollate
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


def time_loader(loader, workers: int) -> dict:
    """Clips/s a DataLoader delivers once running, and what its start-up took.

    Worker processes start (import, open the HDF5) and each prefetches two batches
    before the first one arrives; the first ``max(1, 2 * workers)`` batches are
    therefore left out of the steady-state rate ``clips_per_s`` and reported as
    ``first_batch_s`` / ``clips_per_s_overall``. A training run lasts long enough
    for the steady state to be what counts.
    """
    skip = max(1, 2 * workers)
    start = time.perf_counter()
    arrivals, counts = [], []
    for batch in loader:
        arrivals.append(time.perf_counter())
        counts.append(len(batch["audio_name"]))
    total, seconds = sum(counts), arrivals[-1] - start
    steady = (sum(counts[skip:]) / (arrivals[-1] - arrivals[skip - 1])) if len(arrivals) > skip else None
    return {"clips": total, "seconds": round(seconds, 3), "first_batch_s": round(arrivals[0] - start, 3),
            "clips_per_s_overall": round(total / seconds, 1), "steady_batches": max(0, len(arrivals) - skip),
            "clips_per_s": None if steady is None else round(steady, 1)}


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
    p.add_argument("--batches", type=int, default=60)
    p.add_argument("--collate", choices=("tensor", "numpy"), default="tensor",
                   help="tensor: batches as torch tensors, as the training loop builds them (worker batches travel "
                        "through shared memory); numpy: the official collate_fn's arrays (pickled through a pipe)")
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
            collate = TensorCollate(collate_fn) if a.collate == "tensor" else collate_fn
            loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=w)
            timing = time_loader(loader, w)
            clip_bytes = int(round(a.seconds * 32000)) * 2  # an int16 row of the packed (32 kHz) file
            rate = timing["clips_per_s"] or timing["clips_per_s_overall"]
            print(json.dumps({"bench": "loader", "workers": w, "collate": a.collate, "sample_rate": a.sample_rate,
                              "resample_mode": a.resample_mode, **timing, "bytes_per_s": round(rate * clip_bytes),
                              "page_cache_dropped": dropped}), flush=True)
    finally:
        if not a.root:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
