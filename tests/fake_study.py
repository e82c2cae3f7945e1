"""Stand-in notebooks for testing the workflow itself (scheduling, reruns, locks, GPUs) in seconds.

Each fake notebook declares the same parameters as the real one (so a profile is checked
exactly as for the real notebooks) and, when executed by papermill in a real kernel,
appends one JSON line to ``<root>/calls.jsonl``: the stage, when it started and ended, the
``CUDA_VISIBLE_DEVICES`` and ``OMP_NUM_THREADS`` it saw. A training stage writes the files a
run folder promises. A file ``<root>/fail/<stage>`` makes that stage raise its text;
``<root>/sleep`` (seconds) makes every stage take that long, ``<root>/slow/<stage>`` that stage.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import yaml

from panns_core.study.profiles import declared_parameters, stage_name_for

REPO = Path(__file__).resolve().parent.parent

BODY = '''
import json, os, time
stage = "train_" + run_name if STEM == "03_train_system" else STAGE
start = time.time()
print("[progress] " + stage + " started", flush=True)
if os.path.exists("sleep"):
    time.sleep(float(open("sleep").read()))
if os.path.exists(os.path.join("slow", stage)):
    time.sleep(float(open(os.path.join("slow", stage)).read()))
if os.path.exists(os.path.join("fail", stage)):
    raise RuntimeError(open(os.path.join("fail", stage)).read())
if STEM == "03_train_system":
    run_dir = os.path.join(run_root, "train", run_name)
    os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
    for name in ("statistics.jsonl", "config.json", "checkpoints/latest.pt", "checkpoints/best.pt"):
        with open(os.path.join(run_dir, name), "a") as f:
            f.write("{}\\n")
with open("calls.jsonl", "a") as f:
    f.write(json.dumps({"stage": stage, "start": start, "end": time.time(),
                        "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
                        "threads": os.environ.get("OMP_NUM_THREADS")}) + "\\n")
'''


def write_fake_notebooks(folder, stems) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        names = sorted(declared_parameters(str(REPO / "notebooks" / f"{stem}.ipynb")))
        params = nbformat.v4.new_code_cell("\n".join(f"{n} = None" for n in names))
        params.metadata["tags"] = ["parameters"]
        body = nbformat.v4.new_code_cell(f"STEM = {stem!r}\nSTAGE = {stage_name_for(stem)!r}\n" + BODY)
        nb = nbformat.v4.new_notebook()
        nb.cells = [params, body]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, str(folder / f"{stem}.ipynb"))
    return folder


def small_profile(tmp_path, **changes) -> str:
    profile = {
        "name": "fake", "data_source": "generated", "data": {"root": "data/fake"},
        "train": {"model": "Cnn6", "iterations": 1, "device": "cpu"},
        "reference_run": "a", "keep_latest_checkpoint": False,
        "runs": {"a": {}, "b": {"mel_bins": 32, "groups": ["mel_bins"]}},
        "notebooks": ["01_download_audioset", "02_pack_and_index", "03_train_system", "10_tables_audioset"],
    }
    profile.update(changes)
    path = Path(tmp_path) / f"{profile['name']}.yaml"
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    return str(path)


ALL_STEMS = ("00_environment_and_data", "01_download_audioset", "02_pack_and_index", "03_train_system",
             "04_evaluate_system", "10_tables_audioset", "19_build_report", "20_transfer_task",
             "21_transfer_tables_figures")


def calls(root) -> list[dict]:
    path = Path(root) / "calls.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def called(root) -> list[str]:
    return [c["stage"] for c in calls(root)]


def reset_calls(root) -> None:
    path = Path(root) / "calls.jsonl"
    if path.exists():
        os.remove(path)
