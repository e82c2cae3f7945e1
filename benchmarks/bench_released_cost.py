"""Cost of scoring each released checkpoint: forward seconds per 10-s clip, per architecture (CPU or GPU).

The `released` profile's CPU wall time is (clips scored) x (sum over checkpoints of the
seconds per clip); this script measures that per-clip cost for every architecture that
has a released checkpoint in a paper table (random weights: speed does not depend on
their values). What it measures, and why:

* **CPU seconds** (``time.process_time``) with torch limited to ``--threads`` threads
  (default 1): on a machine shared with other jobs, wall time measures the neighbours;
  CPU time measures the work. On an idle machine with 1 thread, wall = CPU time.
* a 4-core estimate = CPU seconds / 4 (ideal scaling of the intra-op threads: a lower
  bound on wall time; real scaling of these convolutions on 4 threads is lower).
* wall seconds are printed beside, for reference only.
* ``--device cuda``: wall seconds per clip (``torch.cuda.synchronize`` around each
  timed batch; use ``--batch 32`` as the profile does).

    .venv/bin/python benchmarks/bench_released_cpu.py [--models Cnn14 MobileNetV1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from panns_core.models import create_model
from panns_core.study.released_eval import table_rows


def cost_per_clip(name: str, batch: int, seconds: float, repeats: int, threads: int, precision: str,
                  device: str = "cpu") -> dict:
    torch.set_num_threads(threads)
    model = create_model(name).eval().to(device)
    sample_rate = model.audio_config.sample_rate
    waveform = torch.rand(batch, int(sample_rate * seconds), generator=torch.Generator().manual_seed(0)) * 2 - 1
    waveform = waveform.to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    autocast = torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=precision == "bf16")
    with torch.inference_mode(), autocast:
        model(waveform)  # warm-up: allocation and kernel selection
        sync()
        cpu, wall = [], []
        for _ in range(repeats):
            c0, w0 = time.process_time(), time.perf_counter()
            model(waveform)
            sync()
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
    return {"model": name, "cpu_s_per_clip": statistics.median(cpu) / batch,
            "wall_s_per_clip": statistics.median(wall) / batch, "threads": threads, "batch": batch,
            "clip_seconds": seconds, "precision": precision, "repeats": repeats, "device": device}


def main(argv=None) -> list:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=[r["model"] for r in table_rows()])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--clips", type=int, default=17142, help="clips for the wall-time estimate (mirror eval set)")
    p.add_argument("--json", help="write the rows here")
    a = p.parse_args(argv)
    rows = []
    where = torch.cuda.get_device_name() if a.device.startswith("cuda") else (platform.processor() or
                                                                                platform.machine())
    print(f"{where}, torch {torch.__version__}, {a.threads} thread(s), batch {a.batch} x {a.seconds:g} s, "
          f"{a.precision}")
    for name in a.models:
        row = cost_per_clip(name, a.batch, a.seconds, a.repeats, a.threads, a.precision, a.device)
        rows.append(row)
        print(f"{name:<24} {row['cpu_s_per_clip']:7.3f} CPU s/clip   ({row['wall_s_per_clip']:7.3f} wall s/clip)",
              flush=True)
    total = sum(r["cpu_s_per_clip"] for r in rows)
    wall = sum(r["wall_s_per_clip"] for r in rows)
    print(f"all {len(rows)} checkpoints: {total:.2f} CPU s, {wall:.3f} wall s per clip; {a.clips} clips: "
          f"{total * a.clips / 3600:.1f} CPU hours, {wall * a.clips / 3600:.2f} wall hours at {a.threads} thread(s)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rows": rows, "total_cpu_s_per_clip": total, "total_wall_s_per_clip": wall,
                       "torch": torch.__version__}, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
