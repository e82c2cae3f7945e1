"""Re-scoring the released PANNs checkpoints on our copy of the AudioSet eval set.

For every released checkpoint that is a row of a paper table (IX sample rate, X mel
bins, XI architectures; VII embedding size comes for free), :func:`rescore`

1. finds the file's md5: the registry's value where known, and the value Zenodo
   publishes in the record's metadata (``/api/records/<id>``, read over HTTPS at
   download time); when both exist they must agree, and a file with neither is
   refused unless ``allow_unverified=True``;
2. downloads it once into the cache (:func:`panns_core.download.download`: resumable,
   size and md5 checked before the file appears under its name);
3. scores it with :func:`panns_core.evaluate.evaluate` on the eval index, optionally
   on a class-stratified subset of ``max_eval_clips`` clips fixed by ``seed``, in
   ``fp32`` or ``bf16``;
4. writes ``<out_dir>/<model>.json``: mAP, mean AUC, d', per-class AP and AUC, the
   eval set's size and SHA-256 (of the clips scored and of the full index), where
   the clips came from (eval manifest), the checkpoint's URL/md5/SHA-256 and how it
   was verified, and the measured seconds per clip (for the README's wall times).

A result whose checkpoint, eval set, subset and precision are unchanged is reused,
so an interrupted run continues with the next checkpoint.

    python -m panns_core.study.released_eval data/audioset/hdf5s/indexes/eval.h5 runs/released \\
        [--models Cnn14 MobileNetV1] [--max-eval-clips 2000] [--precision bf16]
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import os
import sys
import time
import urllib.parse
import urllib.request
from typing import Mapping, Optional

import numpy as np

from panns_core import paper

ZENODO = "https://zenodo.org"
"""Zenodo; its records API gives every file's md5 and size."""

RESULT_FORMAT = "panns_core.released_result/1"

PAPER_TABLES = {
    "table_VII": paper.TABLE_VII,
    "table_IX": paper.TABLE_IX,
    "table_X": paper.TABLE_X,
    "table_XI": [{"model": m, **row} for m, row in paper.TABLE_XI.items()],
}
"""The paper tables whose rows are models (a released checkpoint can stand for a row)."""


class UnverifiedCheckpointError(RuntimeError):
    """No checksum is known for a checkpoint (registry and Zenodo metadata both lack one)."""


def released_registry() -> Mapping:
    """File name -> ReleasedCheckpoint. The one place that reads the released-weights table
    (it is moving to a data-only module; only this import changes)."""
    from panns_core.checkpoints import RELEASED_CHECKPOINTS

    return RELEASED_CHECKPOINTS


def load_registry(path: str) -> dict:
    """A released-weights table from a JSON file (for a mirror of the record with its own files):
    a list of ``{"filename", "model_name", "md5"}`` (``md5`` may be null: Zenodo's metadata
    then verifies the file). Returns file name -> ReleasedCheckpoint."""
    from panns_core.released import ReleasedCheckpoint

    with open(path) as f:
        try:
            entries = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e.msg})") from None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of {{filename, model_name, md5}} entries")
    out = {}
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not e.get("filename") or not e.get("model_name"):
            raise ValueError(f"{path}: entry {i} needs 'filename' and 'model_name', got {e!r}")
        out[e["filename"]] = ReleasedCheckpoint(e["filename"], e.get("url", ""), e["model_name"], e.get("size"),
                                                e.get("md5"))
    return out


def read_results(out_dir: str) -> dict:
    """``{model: result record}`` of every ``<out_dir>/<model>.json`` written by :func:`rescore`."""
    out = {}
    if not os.path.isdir(out_dir):
        return out
    for name in sorted(os.listdir(out_dir)):
        if not name.endswith(".json") or name == "errors.json":
            continue
        path = os.path.join(out_dir, name)
        with open(path) as f:
            try:
                record = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not valid JSON ({e.msg})") from None
        if record.get("format") == RESULT_FORMAT:
            out[record["model"]] = record
    return out


def _by_model(registry: Mapping) -> dict:
    return {c.model_name: c for c in registry.values()}


def table_rows(registry: Optional[Mapping] = None) -> list:
    """One entry per released checkpoint that is a row of a paper table, in paper order:
    ``{"model", "filename", "tables": [...], "paper": {mAP, AUC, d_prime}}``."""
    by_model = _by_model(registry if registry is not None else released_registry())
    rows: dict = {}
    for table_id, table in PAPER_TABLES.items():
        for row in table:
            name = row.get("model")
            if name not in by_model:
                continue  # e.g. Cnn14_mel32/mel128: trained for the paper, never released
            entry = rows.setdefault(name, {"model": name, "filename": by_model[name].filename, "tables": [],
                                           "paper": {k: row.get(k) for k in ("mAP", "AUC", "d_prime")}})
            entry["tables"].append(table_id)
    return list(rows.values())


# --------------------------------------------------------------------------- checksums

def _require_https(url: str) -> None:
    """Checksums are only trusted over HTTPS (a loopback host is allowed, for local mirrors/tests)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ValueError(f"refusing to read checksums from {url}: HTTPS required")


def zenodo_files(record: int, base: str = ZENODO, timeout: float = 30) -> dict:
    """``{file name: {"md5", "size"}}`` from the Zenodo record's metadata (``/api/records/<id>``)."""
    url = f"{base.rstrip('/')}/api/records/{record}"
    _require_https(url)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - https checked above
        meta = json.load(resp)
    files = meta.get("files", [])
    if isinstance(files, dict):  # newer API shape: {"entries": {...} or [...]}
        files = files.get("entries", files)
        files = list(files.values()) if isinstance(files, dict) else files
    out = {}
    for f in files:
        key = f.get("key") or f.get("filename")
        checksum = f.get("checksum") or ""
        algo, _, digest = checksum.partition(":")
        if key and algo == "md5" and digest:
            out[key] = {"md5": digest.lower(), "size": f.get("size") or f.get("filesize")}
    if not out:
        raise ValueError(f"{url}: no file checksums in the record's metadata")
    return out


def resolve_checksum(ckpt, published: Optional[dict], allow_unverified: bool = False) -> tuple:
    """``(md5, size, verified_by)`` for a checkpoint from the registry and Zenodo's metadata."""
    from panns_core.download import ChecksumError

    entry = None
    if published:
        entry = next((v for k, v in published.items() if k.lower() == ckpt.filename.lower()), None)
    zenodo_md5 = entry["md5"] if entry else None
    size = (entry or {}).get("size") or ckpt.size
    if ckpt.md5 and zenodo_md5 and ckpt.md5.lower() != zenodo_md5:
        raise ChecksumError(f"{ckpt.filename}: the registry's md5 {ckpt.md5} differs from the md5 "
                            f"{zenodo_md5} Zenodo publishes for it; refusing to use the file")
    if ckpt.md5 and zenodo_md5:
        return ckpt.md5.lower(), size, "md5 (registry, confirmed by Zenodo metadata)"
    if ckpt.md5:
        return ckpt.md5.lower(), size, "md5 (registry)"
    if zenodo_md5:
        return zenodo_md5, size, "md5 (Zenodo record metadata over HTTPS)"
    if allow_unverified:
        return None, size, "unverified (sha256 recorded)"
    raise UnverifiedCheckpointError(
        f"{ckpt.filename}: no md5 in the registry and none in Zenodo's metadata; "
        "pass allow_unverified=True to use it anyway (its sha256 is then recorded)")


def fetch_checkpoint(ckpt, *, record: int, base: str = ZENODO, published: Optional[dict] = None,
                     cache_dir=None, allow_unverified: bool = False, progress: bool = False) -> dict:
    """Download and verify one checkpoint; ``{"path", "url", "md5", "sha256", "size", "verified_by"}``."""
    from pathlib import Path

    from panns_core import download as dl

    md5, size, verified_by = resolve_checksum(ckpt, published, allow_unverified)
    url = f"{base.rstrip('/')}/records/{record}/files/{urllib.parse.quote(ckpt.filename)}?download=1"
    root = Path(cache_dir).expanduser() if cache_dir is not None else dl.cache_dir()
    path = dl.download(url, root / ckpt.filename, md5=md5, size=size, progress=progress)
    return {"path": str(path), "url": url, "md5": md5, "sha256": dl.file_digest(path, "sha256"),
            "size": path.stat().st_size, "verified_by": verified_by}


# --------------------------------------------------------------------------- eval subset

def stratified_subset(table, max_clips: Optional[int], seed: int = 0):
    """At most ``max_clips`` clips of an IndexTable, drawn class by class (rarest first,
    round robin) so that every class with positives is represented when
    ``max_clips`` >= the number of classes; fixed by ``seed``; rows in index order."""
    if max_clips is None or max_clips >= len(table):
        return table
    if max_clips < 1:
        raise ValueError(f"max_eval_clips must be >= 1, got {max_clips}")
    rng = np.random.default_rng(seed)
    targets = table.targets
    counts = targets.sum(axis=0)
    classes = [k for k in np.argsort(counts, kind="stable") if counts[k] > 0]
    members = {k: list(rng.permutation(np.flatnonzero(targets[:, k]))) for k in classes}
    chosen: set = set()
    while len(chosen) < max_clips and classes:
        progressed = False
        for k in classes:
            if len(chosen) >= max_clips:
                break
            while members[k] and members[k][-1] in chosen:
                members[k].pop()
            if members[k]:
                chosen.add(members[k].pop())
                progressed = True
        if not progressed:
            break
    if len(chosen) < max_clips:  # clips without any label fill the rest
        rest = [i for i in rng.permutation(len(table)) if i not in chosen]
        chosen.update(rest[:max_clips - len(chosen)])
    return table.subset(np.sort(np.fromiter(chosen, dtype=np.int64)))


# --------------------------------------------------------------------------- scoring

def _settings_key(record: dict) -> tuple:
    return (record["checkpoint"]["sha256"], record["eval_set"]["sha256"], record["precision"],
            record["eval_set"]["max_eval_clips"], record["eval_set"]["seed"])


def rescore(model_name: str, eval_index: str, out_dir: str, *, registry: Optional[Mapping] = None,
            record: int = None, base: str = ZENODO, published: Optional[dict] = None,
            max_eval_clips: Optional[int] = None, seed: int = 0, precision: str = "fp32",
            device: str = "cpu", batch_size: int = 32, num_workers: int = 0,
            resample_mode: str = "antialias", cache_dir=None, allow_unverified: bool = False,
            progress: bool = False) -> dict:
    """Download, verify and score one released checkpoint; write and return its result record."""
    import torch

    from panns_core.checkpoints import ZENODO_RECORD, load_checkpoint
    from panns_core.data.index import read_index
    from panns_core.data.pack import read_eval_manifest
    from panns_core.evaluate import evaluate, ids_sha256
    from panns_core.models import create_model

    registry = registry if registry is not None else released_registry()
    record = ZENODO_RECORD if record is None else record
    by_model = _by_model(registry)
    if model_name not in by_model:
        raise KeyError(f"no released checkpoint for model {model_name!r}; known: {sorted(by_model)}")
    ckpt = by_model[model_name]
    rows = {r["model"]: r for r in table_rows(registry)}

    full = read_index(os.fspath(eval_index))
    table = stratified_subset(full, max_eval_clips, seed)
    manifest = read_eval_manifest(eval_index)
    fetched = fetch_checkpoint(ckpt, record=record, base=base, published=published, cache_dir=cache_dir,
                               allow_unverified=allow_unverified, progress=progress)
    eval_set = {"index": os.path.abspath(eval_index), "num_clips": len(table), "sha256": ids_sha256(table.audio_names),
                "full_num_clips": len(full), "full_sha256": ids_sha256(full.audio_names),
                "max_eval_clips": max_eval_clips, "seed": seed,
                "data_source": manifest.get("data_source", {"source": "unrecorded"})}
    out_path = os.path.join(out_dir, f"{model_name}.json")
    if os.path.exists(out_path):
        with open(out_path) as f:
            previous = json.load(f)
        probe = {"checkpoint": fetched, "eval_set": eval_set, "precision": precision}
        if previous.get("format") == RESULT_FORMAT and _settings_key(previous) == _settings_key(probe):
            return previous

    t0 = time.perf_counter()
    model = create_model(model_name)
    load_checkpoint(model, fetched["path"])
    model.to(device)
    load_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    scores = evaluate(model, table, batch_size=batch_size, device=device, precision=precision,
                      num_workers=num_workers, resample_mode=resample_mode, progress=progress)
    eval_seconds = time.perf_counter() - t1
    result = {
        "format": RESULT_FORMAT,
        "model": model_name,
        "tables": rows.get(model_name, {}).get("tables", []),
        "paper": rows.get(model_name, {}).get("paper"),
        "mAP": scores["mAP"], "AUC": scores["mAUC"], "d_prime": scores["d_prime"],
        "d_prime_mean_per_class": scores["d_prime_mean_per_class"],
        "classes_evaluated": scores["classes_evaluated"],
        "per_class_AP": scores["AP"], "per_class_AUC": scores["AUC"],
        "eval_set": eval_set,
        "checkpoint": {k: v for k, v in fetched.items() if k != "path"} | {"file": ckpt.filename},
        "precision": precision, "device": str(device), "batch_size": batch_size,
        "resample_mode": resample_mode, "sample_rate": int(model.audio_config.sample_rate),
        "seconds": {"load": round(load_seconds, 3), "evaluate": round(eval_seconds, 3),
                    "per_clip": eval_seconds / len(table)},
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "written_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    os.makedirs(out_dir, exist_ok=True)
    tmp = out_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1, allow_nan=False)
    os.replace(tmp, out_path)
    return result


def rescore_all(eval_index: str, out_dir: str, models=None, *, registry: Optional[Mapping] = None,
                record: int = None, base: str = ZENODO, on_error: str = "record", **kwargs) -> dict:
    """:func:`rescore` every table row (or ``models``); returns ``{model: result or {"error": ...}}``.

    Zenodo's metadata is read once. With ``on_error="record"`` a checkpoint that cannot be
    fetched or verified is recorded in ``<out_dir>/errors.json`` and the others go on.
    """
    from panns_core.checkpoints import ZENODO_RECORD

    registry = registry if registry is not None else released_registry()
    record = ZENODO_RECORD if record is None else record
    models = list(models) if models else [r["model"] for r in table_rows(registry)]
    _require_https(base)  # a plain-HTTP source is a configuration error, not an outage
    try:
        published = zenodo_files(record, base)
    except (OSError, ValueError) as e:  # offline or API change: registry md5s still verify
        print(f"warning: Zenodo metadata unavailable ({e}); only registry checksums are used", file=sys.stderr)
        published = None
    results, errors = {}, {}
    for name in models:
        try:
            results[name] = rescore(name, eval_index, out_dir, registry=registry, record=record, base=base,
                                    published=published, **kwargs)
        except Exception as e:  # noqa: BLE001 - batch job: record and go on
            if on_error != "record":
                raise
            errors[name] = f"{type(e).__name__}: {e}"
            results[name] = {"error": errors[name]}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "errors.json"), "w") as f:
        json.dump(errors, f, indent=1)
    return results


def expected_seconds(results: Mapping, num_clips: int) -> dict:
    """Wall time per model (and total) to score ``num_clips`` clips, from measured per-clip costs."""
    per_model = {m: r["seconds"]["per_clip"] * num_clips for m, r in results.items() if "seconds" in r}
    return {"per_model": per_model, "total": sum(per_model.values()), "num_clips": num_clips}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m panns_core.study.released_eval", description=__doc__.split("\n\n")[0])
    p.add_argument("eval_index", help="<data>/hdf5s/indexes/eval.h5")
    p.add_argument("out_dir", help="one <model>.json per checkpoint is written here")
    p.add_argument("--models", nargs="+", help="default: every released checkpoint that is a table row")
    p.add_argument("--max-eval-clips", type=int, help="class-stratified subset of this many clips")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--allow-unverified", action="store_true",
                   help="use checkpoints for which no md5 is known (their sha256 is recorded)")
    a = p.parse_args(argv)
    results = rescore_all(a.eval_index, a.out_dir, a.models, max_eval_clips=a.max_eval_clips, seed=a.seed,
                          precision=a.precision, device=a.device, batch_size=a.batch_size,
                          num_workers=a.num_workers, allow_unverified=a.allow_unverified, progress=True)
    for name, r in results.items():
        if "error" in r:
            print(f"{name}: {r['error']}")
        else:
            print(f"{name}: mAP {r['mAP']:.4f} (paper {r['paper']['mAP']}) on {r['eval_set']['num_clips']} clips, "
                  f"{r['seconds']['per_clip'] * 1000:.1f} ms/clip")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
