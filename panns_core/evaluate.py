"""Score a model on an index file (eval, balanced_train, validation): mAP, AUC, d-prime.

The official evaluation forwards every clip of the index in eval mode and
scores the 527 columns with scikit-learn. :func:`evaluate` does the same with
:func:`panns_core.metrics.audio_tagging_metrics` (classes without positives
excluded and reported), optionally on the first ``max_clips`` clips (smoke runs),
under autocast, and split over the ranks of a ``torchrun`` job.

Command line (our checkpoints and the released Zenodo ones)::

    python -m panns_core.evaluate --checkpoint runs/smoke/train/Cnn6/checkpoints/best.pt \\
        --data data/hdf5s/indexes/eval.h5
    python -m panns_core.evaluate --checkpoint Cnn14 --model Cnn14 --data data/hdf5s/indexes/eval.h5
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Optional, Union

import numpy as np
import torch

from panns_core.metrics import audio_tagging_metrics
from panns_core.precision import PRECISIONS, autocast
from panns_core.runtime import TensorCollate, ids_sha256, resolve_device, saved_model_spec

log = logging.getLogger("panns_core.evaluate")

def load_table(index, max_clips: Optional[int] = None):
    """An :class:`IndexTable` from a path or a table, cut to its first ``max_clips`` clips."""
    from panns_core.data.index import IndexTable, read_index

    table = index if isinstance(index, IndexTable) else read_index(os.fspath(index))
    if max_clips is not None:
        if max_clips < 1:
            raise ValueError(f"max_clips must be >= 1, got {max_clips}")
        table = table.subset(np.arange(min(int(max_clips), len(table))))
    if len(table) == 0:
        raise ValueError(f"{index if isinstance(index, str) else 'index'}: no clips to evaluate")
    return table


def default_dataset(model: torch.nn.Module, resample_mode: str = "antialias"):
    """The HDF5 reader at the model's sample rate."""
    from panns_core.data.reader import AudioSetDataset

    sample_rate = model.audio_config.sample_rate
    return AudioSetDataset(sample_rate=sample_rate, resample_mode=resample_mode)


def _default_collate():
    from panns_core.data.reader import collate_fn

    return collate_fn


def forward_outputs(model, table, dataset, *, batch_size=32, device="cpu", precision="fp32",
                    num_workers=0, collate_fn=None, rank=0, world_size=1, progress=False):
    """Clipwise outputs (float32, index order) of this rank's share of ``table``.

    Returns ``(positions, outputs)``: rows ``rank, rank + W, ...`` of the table.
    """
    from panns_core.samplers import EvaluateSampler

    device = torch.device(device)
    sampler = EvaluateSampler(table, batch_size, rank=rank, world_size=world_size)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, collate_fn=TensorCollate(collate_fn or _default_collate()),
        num_workers=num_workers, pin_memory=device.type == "cuda",
        # A private generator: evaluating must not consume the global torch RNG,
        # otherwise a resumed run would draw different SpecAugment/dropout masks.
        generator=torch.Generator().manual_seed(0),
    )
    was_training = model.training
    model.eval()
    outputs = []
    batches = loader
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(loader, total=len(sampler), desc="evaluate", unit="batch", leave=False)
    try:
        with torch.no_grad():
            for batch in batches:
                waveform = torch.as_tensor(batch["waveform"]).to(device, non_blocking=True)
                with autocast(device, precision):
                    clipwise = model(waveform)["clipwise_output"]
                outputs.append(clipwise.float().cpu().numpy())
    finally:
        model.train(was_training)
    classes = table.targets.shape[1]
    out = np.concatenate(outputs) if outputs else np.zeros((0, classes), np.float32)
    return sampler.positions, out


def _gather(positions, outputs, num_clips: int, world_size: int) -> np.ndarray:
    """Reassemble the full (clips, classes) output from every rank's share."""
    if world_size == 1:
        return outputs
    shares = [None] * world_size
    torch.distributed.all_gather_object(shares, (positions, outputs))
    full = np.zeros((num_clips, outputs.shape[1]), dtype=np.float32)
    for pos, out in shares:
        full[pos] = out
    return full


def evaluate(model: torch.nn.Module, index: Union[str, "os.PathLike", object], *, dataset=None,
             batch_size: int = 32, device="cpu", max_clips: Optional[int] = None,
             precision: str = "fp32", num_workers: int = 0, resample_mode: str = "antialias",
             collate_fn=None, rank: int = 0, world_size: int = 1, progress: bool = False) -> dict:
    """Forward every clip of ``index`` (path or IndexTable) and score it.

    ``dataset`` defaults to the HDF5 reader at the model's sample rate. Returns
    the :func:`audio_tagging_metrics` dict plus ``clipwise_output`` and
    ``target`` (numpy), ``audio_names`` and ``eval_set_sha256``. Under
    ``torchrun`` every rank scores a share and all ranks get the full result.
    """
    table = load_table(index, max_clips)
    dataset = dataset if dataset is not None else default_dataset(model, resample_mode)
    positions, outputs = forward_outputs(
        model, table, dataset, batch_size=batch_size, device=device, precision=precision,
        num_workers=num_workers, collate_fn=collate_fn, rank=rank, world_size=world_size,
        progress=progress,
    )
    outputs = _gather(positions, outputs, len(table), world_size)
    result = audio_tagging_metrics(table.targets, outputs)
    result.update(
        clipwise_output=outputs,
        target=table.targets,
        audio_names=list(table.audio_names),
        eval_set_sha256=ids_sha256(table.audio_names),
    )
    return result


def summary(result: dict) -> dict:
    """The JSON-serialisable part of an :func:`evaluate` result (no arrays)."""
    return {k: v for k, v in result.items() if k not in ("clipwise_output", "target", "audio_names")}


# ----------------------------------------------------------------------------- command line


def _resolve_checkpoint(spec: str) -> str:
    """A file path, or the name of a released checkpoint (downloaded and verified)."""
    if os.path.exists(spec):
        return spec
    from panns_core import checkpoints

    if spec in getattr(checkpoints, "RELEASED_CHECKPOINTS", {}):
        return str(checkpoints.download_checkpoint(spec))
    known = sorted(getattr(checkpoints, "RELEASED_CHECKPOINTS", {}))
    raise FileNotFoundError(f"checkpoint {spec!r} is neither a file nor a released checkpoint name {known}")


def _saved_model_spec(path: str) -> dict:
    """Model name and constructor overrides stored in one of our training checkpoints, if any."""
    return saved_model_spec(torch.load(path, map_location="cpu", weights_only=True))


def build_model(checkpoint: str, model_name: Optional[str], classes_num: int, overrides: dict):
    """Create the model (name from ``--model`` or from our checkpoint's config) and load weights."""
    from panns_core.checkpoints import load_checkpoint
    from panns_core.models import create_model

    spec = _saved_model_spec(checkpoint)
    name = model_name or spec.get("name")
    if not name:
        raise ValueError(f"{checkpoint}: no model name stored in the checkpoint; pass --model NAME")
    kwargs = dict(spec.get("kwargs", {})) if spec.get("name") == name else {}
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    model = create_model(name, classes_num=classes_num, **kwargs)
    load_checkpoint(model, checkpoint)
    return model


def _data_source(index_h5: str) -> dict:
    """Where the scored clips came from (yt-dlp, or Hub mirror + revision), from the eval manifest."""
    from panns_core.data.pack import read_eval_manifest

    return read_eval_manifest(index_h5).get("data_source", {"source": "unrecorded"})


def _parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m panns_core.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="checkpoint file, or a released name (e.g. Cnn14)")
    p.add_argument("--model", help="model class name (default: the one stored in our checkpoint)")
    p.add_argument("--data", required=True, help="index HDF5 to score, e.g. <data>/hdf5s/indexes/eval.h5")
    p.add_argument("--output", help="JSON file for the scores (default: <checkpoint>.<index>.eval.json)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--max-clips", type=int, help="score only the first N clips (smoke tests)")
    p.add_argument("--resample-mode", default="antialias", choices=("antialias", "decimate"))
    p.add_argument("--classes-num", type=int, help="default: the index's target width")
    for key in ("sample_rate", "window_size", "hop_size", "mel_bins", "fmin", "fmax"):
        p.add_argument("--" + key.replace("_", "-"), type=int, dest=key)
    p.add_argument("--per-class", action="store_true", help="keep per-class AP/AUC in the JSON")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    table = load_table(args.data, args.max_clips)
    checkpoint = _resolve_checkpoint(args.checkpoint)
    overrides = {k: getattr(args, k) for k in ("sample_rate", "window_size", "hop_size", "mel_bins", "fmin", "fmax")}
    device = resolve_device(args.device)
    model = build_model(checkpoint, args.model, args.classes_num or table.classes_num, overrides).to(device)
    log.info("scoring %s on %d clips of %s (%s, %s)", type(model).__name__, len(table), args.data, device, args.precision)
    result = evaluate(model, table, batch_size=args.batch_size, device=device, precision=args.precision,
                      num_workers=args.num_workers, resample_mode=args.resample_mode,
                      progress=not args.no_progress)
    record = summary(result)
    if not args.per_class:
        record.pop("AP"), record.pop("AUC")
    record.update(checkpoint=os.path.abspath(checkpoint), model=type(model).__name__,
                  data=os.path.abspath(args.data), precision=args.precision,
                  resample_mode=args.resample_mode, data_source=_data_source(args.data))
    output = args.output or f"{checkpoint}.{os.path.splitext(os.path.basename(args.data))[0]}.eval.json"
    with open(output, "w") as f:
        json.dump(record, f, indent=1, allow_nan=False)

    def fmt(v):
        return "n/a" if v is None else f"{v:.4f}"

    print(f"mAP {fmt(record['mAP'])}  AUC {fmt(record['mAUC'])}  d-prime {fmt(record['d_prime'])} "
          f"(mean per class {fmt(record['d_prime_mean_per_class'])})  "
          f"classes {record['classes_evaluated']} evaluated, {len(record['classes_without_positives'])} without positives")
    print(f"wrote {output}")
    return record


if __name__ == "__main__":  # pragma: no cover
    try:
        main()
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
