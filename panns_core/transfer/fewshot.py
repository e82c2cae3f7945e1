"""Few-shot curves: score vs training clips per class, several seeds, mean and spread.

For each fold and seed the training side is shuffled once per class; the
``k``-shot subset takes the first ``min(k, available)`` clips of each class, so
subsets are nested (1 ⊂ 2 ⊂ 5 ...) and ``"all"`` is the whole training side.
Frozen strategies reuse one embedding table for every point of the curve.

Results are compact files under ``runs/<profile>/transfer/<task>/``:
``results.csv`` (one row per strategy x shots x fold x seed), ``summary.csv``
(mean, std, n per strategy x shots) and ``run.json`` (configuration, dataset
summary, skipped files), which the tables/figures notebook re-reads in seconds.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from panns_core.transfer.base import TransferData

ALL = "all"


def parse_shots(shots) -> list:
    """``[1, 2, 5, "all"]`` from a list or a string like ``"1,2,5,all"``; ints ascending, ``all`` last."""
    if isinstance(shots, str):
        shots = [s.strip() for s in shots.split(",") if s.strip()]
    out = []
    for s in shots:
        if str(s).lower() == ALL:
            out.append(ALL)
        else:
            k = int(s)
            if k < 1:
                raise ValueError(f"shots must be >= 1 or 'all', got {s!r}")
            out.append(k)
    ints = sorted({s for s in out if s != ALL})
    return ints + ([ALL] if ALL in out else [])


def shot_subset(data: TransferData, train_idx: np.ndarray, shots, seed: int) -> np.ndarray:
    """At most ``shots`` clips per class from ``train_idx`` (nested across ``shots`` for one seed)."""
    train_idx = np.asarray(train_idx, dtype=np.int64)
    if shots == ALL:
        return np.sort(train_idx)
    rng = np.random.default_rng(seed)
    labels = data.labels[train_idx]
    chosen = []
    for label in range(len(data.classes)):
        members = train_idx[labels == label]
        chosen.append(members[rng.permutation(len(members))][:int(shots)])
    return np.sort(np.concatenate(chosen)) if chosen else train_idx[:0]


def resolve_folds(data: TransferData, folds) -> list:
    """Evaluation folds from ``None``/``"all"`` (every fold), an int N (the first N) or an explicit list."""
    if folds is None or (isinstance(folds, str) and folds.lower() == ALL):
        return list(data.folds)
    if isinstance(folds, (int, np.integer)):
        if folds < 1:
            raise ValueError(f"folds must be >= 1, got {folds}")
        return list(data.folds)[:int(folds)]
    return list(folds)


def run_curves(runner, strategies: Iterable[str], shots, folds, seeds: Iterable[int],
               log: Callable[[str], None] | None = print) -> pd.DataFrame:
    """Train/evaluate every (strategy, shots, fold, seed); one row each (see ``TransferRunner.run``).

    Points whose subset equals a larger one (the data caps ``k``) are still run,
    so every curve has the same x positions; ``clips_per_class`` records the
    largest number of training clips any class actually had.
    """
    data = runner.data
    shots = parse_shots(shots)
    folds = resolve_folds(data, folds)
    rows = []
    for fold in folds:
        fold_train, _ = data.split(fold)
        for seed in seeds:
            for k in shots:
                subset = shot_subset(data, fold_train, k, seed)
                for strategy in strategies:
                    row = runner.run(strategy, fold, subset, seed=int(seed))
                    row["shots"] = str(k)
                    row["clips_per_class"] = row["max_clips_per_class"]
                    rows.append(row)
                    if log:
                        log(f"{data.task} {strategy:9s} fold {fold} seed {seed} shots {k!s:>4}: "
                            f"{row['metric']} {row['score']:.3f} ({row['train_clips']} clips, {row['wall_s']:.1f}s)")
    return pd.DataFrame(rows)


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (ddof=0) and count of the score per task x strategy x shots; x = clips per class."""
    keys = ["task", "strategy", "shots"]
    g = results.groupby(keys, sort=False)
    out = g.agg(mean=("score", "mean"), std=("score", lambda s: float(np.std(s))), n=("score", "size"),
                clips_per_class=("clips_per_class", "max"), metric=("metric", "first")).reset_index()
    return out


def task_dir(run_root: str, task: str) -> str:
    return os.path.join(run_root, "transfer", task)


def write_results(results: pd.DataFrame, run_root: str, task: str, info: dict) -> dict:
    """Write ``results.csv``, ``summary.csv`` and ``run.json`` for one task; returns their paths."""
    out = task_dir(run_root, task)
    os.makedirs(out, exist_ok=True)
    paths = {"results": os.path.join(out, "results.csv"), "summary": os.path.join(out, "summary.csv"),
             "run": os.path.join(out, "run.json")}
    results.to_csv(paths["results"], index=False)
    summarise(results).to_csv(paths["summary"], index=False)
    with open(paths["run"], "w") as f:
        json.dump(info, f, indent=1, default=str)
    return paths


def read_results(run_root: str, task: str) -> pd.DataFrame | None:
    """The per-run rows of a task, or ``None`` if the task was not run in this profile."""
    path = os.path.join(task_dir(run_root, task), "results.csv")
    if not os.path.exists(path):
        return None
    return pd.read_csv(path, dtype={"shots": str, "fold": str})


def final_scores(results: pd.DataFrame) -> dict:
    """Score per strategy with all training clips (the tables' numbers): mean over folds and seeds."""
    full = results[results["shots"] == ALL]
    return {s: float(v) for s, v in full.groupby("strategy")["score"].mean().items()}
