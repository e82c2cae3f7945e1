"""One-call entry points: load a task (real or stand-in), run a task's curves, fine-tune a folder."""

from __future__ import annotations

import os
import time

from panns_core.transfer.audio import ClipAudio
from panns_core.transfer.base import TransferData
from panns_core.transfer.datasets import parse_task
from panns_core.transfer.fewshot import run_curves, write_results
from panns_core.transfer.folder import parse_folder
from panns_core.transfer.runner import TransferConfig, TransferRunner
from panns_core.transfer.strategies import EmbeddingCache
from panns_core.transfer.synthetic import make_standin


def backbone_sample_rate(cfg: TransferConfig) -> int:
    """The rate the backbone expects: its registry front end, or an overridden ``sample_rate``."""
    if "sample_rate" in cfg.backbone_overrides:
        return int(cfg.backbone_overrides["sample_rate"])
    if not isinstance(cfg.backbone, str):  # a ready module
        return int(cfg.backbone.audio_config.sample_rate)
    from panns_core.models import model_info

    return int(model_info(cfg.backbone).config.sample_rate)


def load_task(task: str, data_dir: str | None = None, *, synthetic_dir: str | None = None,
              audio_cache_dir: str | None = None, max_seconds: float | None = None,
              standin_kwargs: dict | None = None, sample_rate: int = 32000) -> tuple[TransferData, ClipAudio]:
    """Parse a task from ``data_dir`` (real data) or from a generated stand-in in ``synthetic_dir``.

    Audio is decoded once (32 kHz mono); unreadable files are reported in the
    returned data's ``skipped`` list and left out.
    """
    if (data_dir is None) == (synthetic_dir is None):
        raise ValueError("give exactly one of data_dir (real data) or synthetic_dir (generated stand-in)")
    if synthetic_dir is not None:
        data_dir = make_standin(task, os.path.join(synthetic_dir, task), **(standin_kwargs or {}))
    data = parse_task(task, data_dir)
    audio = ClipAudio(sample_rate, cache_dir=audio_cache_dir)
    return audio.load(data, max_seconds=max_seconds), audio


def run_task(task: str, cfg: TransferConfig, *, strategies, shots, folds, seeds, run_root: str,
             data_dir: str | None = None, synthetic_dir: str | None = None, embedding_cache_dir: str | None = None,
             log=print) -> dict:
    """Load ``task``, run its few-shot curves for ``strategies`` and write ``runs/<profile>/transfer/<task>/``."""
    t0 = time.perf_counter()
    clip_limit = cfg.clip_seconds
    data, audio = load_task(task, data_dir, synthetic_dir=synthetic_dir, max_seconds=clip_limit,
                            sample_rate=backbone_sample_rate(cfg))
    for path, reason in data.skipped:
        if log:
            log(f"{task}: skipped {path}: {reason}")
    runner = TransferRunner(data, audio, cfg, EmbeddingCache(embedding_cache_dir))
    results = run_curves(runner, strategies, shots, folds, seeds, log=log)
    info = {"task": task, "config": cfg.to_dict(), "strategies": list(strategies), "shots": [str(s) for s in shots]
            if not isinstance(shots, str) else shots, "folds": folds, "seeds": list(seeds),
            "data": data.summary(), "skipped": data.skipped,
            "source": "synthetic stand-in" if synthetic_dir else os.path.abspath(data_dir),
            "wall_s": round(time.perf_counter() - t0, 2)}
    paths = write_results(results, run_root, task, info)
    return {"results": results, "paths": paths, "info": info}


def run_folder_task(task: str, csv_path: str, cfg: TransferConfig, *, strategies, shots, folds, seeds,
                    run_root: str, embedding_cache_dir: str | None = None, log=print) -> dict:
    """Like :func:`run_task` for a labelled folder (``filename,label[,fold]`` CSV, see :mod:`.folder`).

    Results go to ``runs/<profile>/transfer/<task>/`` in the same files, so the
    tables, figures and findings read them like the paper's tasks (e.g. the
    generated corpus's held-out classes, :func:`panns_core.data.synthetic.write_heldout_folder`).
    """
    t0 = time.perf_counter()
    data = parse_folder(csv_path, task=task, clip_seconds=cfg.clip_seconds or 10.0)
    audio = ClipAudio(backbone_sample_rate(cfg))
    data = audio.load(data, max_seconds=cfg.clip_seconds)
    for path, reason in data.skipped:
        if log:
            log(f"{task}: skipped {path}: {reason}")
    runner = TransferRunner(data, audio, cfg, EmbeddingCache(embedding_cache_dir))
    results = run_curves(runner, strategies, shots, folds, seeds, log=log)
    info = {"task": task, "config": cfg.to_dict(), "strategies": list(strategies),
            "shots": [str(s) for s in shots] if not isinstance(shots, str) else shots, "folds": folds,
            "seeds": list(seeds), "data": data.summary(), "skipped": data.skipped,
            "source": os.path.abspath(csv_path), "wall_s": round(time.perf_counter() - t0, 2)}
    paths = write_results(results, run_root, task, info)
    return {"results": results, "paths": paths, "info": info}


def fine_tune_folder(csv_path: str, *, backbone: str = "Cnn14", checkpoint: str | None = None,
                     strategy: str = "finetune", fold=None, iterations: int = 1000, batch_size: int = 32,
                     clip_seconds: float = 10.0, seed: int = 0, **config):
    """Fine-tune (or train a frozen-embedding head on) a PANN for a labelled folder; returns ``(model, result)``.

    ``csv_path`` is the ``filename,label[,fold]`` CSV (see :mod:`panns_core.transfer.folder`).
    The model is trained on the training side of ``fold`` (default: the first
    fold, or the ``train`` rows) and scored on its test side; ``model(waveform)``
    then classifies 32-kHz mono waveforms, ``data.classes`` naming the outputs.
    """
    data = parse_folder(csv_path, clip_seconds=clip_seconds)
    cfg = TransferConfig(backbone=backbone, checkpoint=checkpoint, iterations=iterations,
                         head_iterations=config.pop("head_iterations", iterations), batch_size=batch_size,
                         **config)
    audio = ClipAudio(backbone_sample_rate(cfg))
    data = audio.load(data)
    runner = TransferRunner(data, audio, cfg)
    fold = data.folds[0] if fold is None else fold
    row, model = runner.run(strategy, fold, seed=seed, return_model=True)
    row["classes"] = list(data.classes)
    row["skipped"] = data.skipped
    return model, row
