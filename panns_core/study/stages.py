"""Library side of the pipeline stages: data preparation and the training launcher.

One call that turns ``<data_root>/metadata + audios`` into every index the
profile's runs read, by composing :mod:`panns_core.data.pack`:

* ``eval``, ``balanced_train``, ``unbalanced_train_partNN``, ``full_train``;
* ``validation`` carved (class-stratified, seeded) out of ``full_train``, and the
  training sets without it: ``full_train_minus_validation`` and
  ``balanced_train_minus_validation`` (so no clip used to choose a checkpoint is
  trained on);
* ``<train>_frac<f>_seed<s>`` subsets for the paper's data-amount ablation;
* the eval manifest (clip count and sha256 of the sorted ids).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

VALIDATION_EXCLUDED = ("full_train", "balanced_train")


def _index_summary(path: str) -> dict:
    from panns_core.data.index import read_index

    table = read_index(path)
    counts = table.targets.sum(axis=0)
    return {"clips": len(table), "classes": int(table.classes_num), "classes_with_clips": int((counts > 0).sum())}


def remove_clips(index_h5: str, remove_names: set, out_h5: str):
    """Copy of an index without the named clips (used to keep validation out of training)."""
    from panns_core.data.index import read_index, write_index

    table = read_index(index_h5)
    keep = np.array([i for i, n in enumerate(table.audio_names) if n not in remove_names], dtype=np.int64)
    sub = table.subset(keep)
    write_index(out_h5, sub)
    return sub


def prepare_indexes(data_root: str, *, sample_rate: int = 32000, clip_seconds: float = 10.0, workers: int = 0,
                    splits: Sequence[str] = ("eval", "balanced_train", "unbalanced_train"),
                    validation_fraction: float | None = 0.05, validation_seed: int = 0,
                    fractions: Sequence[float] = (), fraction_seed: int = 0, **pack_kwargs) -> dict:
    """Pack the splits and build every index; returns a summary for the notebook and the record.

    Raises when a split could not be packed completely, naming the file and the
    reasons (the per-clip reasons are in each file's manifest).
    """
    from panns_core.data import pack as P
    from panns_core.data.index import read_index

    results = P.pack_dataset(data_root, splits=tuple(splits), sample_rate=sample_rate, clip_seconds=clip_seconds,
                             workers=workers, **pack_kwargs)
    if not results:
        raise FileNotFoundError(f"{data_root}/metadata: no segment CSVs for splits {list(splits)}")
    incomplete = [f"{name} ({r.reasons})" for name, r in results.items() if not r.complete]
    if incomplete:
        raise RuntimeError(f"{data_root}: packing incomplete for {', '.join(incomplete)}")
    P.build_indexes(data_root)
    written = [P.index_path(data_root, s) for s in ("eval", "balanced_train", "full_train")]
    train_base = P.index_path(data_root, "full_train")
    if validation_fraction:
        P.validation_split(train_base, validation_fraction, validation_seed,
                           out_validation=P.index_path(data_root, "validation"),
                           out_train=P.index_path(data_root, "full_train_minus_validation"))
        val_names = set(read_index(P.index_path(data_root, "validation")).audio_names)
        if os.path.exists(P.index_path(data_root, "balanced_train")):
            remove_clips(P.index_path(data_root, "balanced_train"), val_names,
                         P.index_path(data_root, "balanced_train_minus_validation"))
            written.append(P.index_path(data_root, "balanced_train_minus_validation"))
        train_base = P.index_path(data_root, "full_train_minus_validation")
        written += [P.index_path(data_root, "validation"), train_base]
    for fraction in fractions:
        out = f"{train_base[:-3]}_frac{float(fraction):g}_seed{fraction_seed}.h5"
        P.partial_subset(train_base, float(fraction), fraction_seed, out_h5=out)
        written.append(out)
    from panns_core.data.acquire import acquisition_source

    # the clips' source (yt-dlp, Hub mirror + revision) stays in the manifest every result copies
    eval_manifest = P.write_eval_manifest(P.index_path(data_root, "eval"),
                                          data_source=acquisition_source(data_root, "eval"))
    indexes = {os.path.basename(p)[:-3]: _index_summary(p) for p in written if os.path.exists(p)}
    return {
        "packed": {name: {"packed": r.packed, "excluded": r.excluded, "reasons": r.reasons}
                   for name, r in results.items()},
        "indexes": indexes,
        "eval_manifest": eval_manifest,
    }


def use_packed_copy(data_root: str, *, validation_fraction: float | None = 0.05, validation_seed: int = 0,
                    fractions: Sequence[float] = (), fraction_seed: int = 0, **_packing) -> dict:
    """Take an already packed PANNs-format copy as it is: never re-pack, build only the missing indexes.

    ``<data_root>/hdf5s/waveforms/*.h5`` are read, never written (packing options
    such as ``clip_seconds`` do not apply to a packed copy). An index is built
    only when its file does not exist: one per waveform file, ``full_train``, the
    validation split and the training sets without it, the fraction subsets, the
    eval manifest. Returns the summary :func:`prepare_indexes` returns, plus
    ``built`` (the index files this call wrote).
    """
    from panns_core.data import pack as P

    waveforms = os.path.join(P.hdf5s_dir(data_root), "waveforms")
    files = sorted(os.path.join(d, f) for d, _, names in os.walk(waveforms) for f in names if f.endswith(".h5"))
    if not files:
        raise FileNotFoundError(f"{waveforms}: no waveform HDF5 files; data.packed must name a PANNs-format copy "
                                f"(made by `python -m panns_core.data pack ROOT`)")
    built = []

    def build(path, make):
        if not os.path.exists(path):
            make()
            built.append(path)

    for wav in files:
        name = os.path.basename(wav)[:-3]
        build(P.index_path(data_root, name), lambda wav=wav, name=name: P.create_index(wav, P.index_path(data_root, name)))
    if not os.path.exists(P.index_path(data_root, "eval")):
        raise FileNotFoundError(f"{waveforms}: no eval waveform file (eval.h5); the tables score the eval split")
    if P.train_index_parts(data_root):
        build(P.index_path(data_root, "full_train"), lambda: P.combine_full_train(data_root))
    train_base = P.index_path(data_root, "full_train")
    if not os.path.exists(train_base) and (validation_fraction or fractions):  # an eval-only copy needs neither
        raise FileNotFoundError(f"{waveforms}: no training waveform file (balanced_train.h5 or unbalanced_train_partNN.h5)"
                                " for the validation split / fractions (set validation_fraction: null for an eval-only copy)")
    written = [P.index_path(data_root, s) for s in ("eval", "balanced_train", "full_train")]
    if validation_fraction:
        validation = P.index_path(data_root, "validation")
        minus = P.index_path(data_root, "full_train_minus_validation")
        if not (os.path.exists(validation) and os.path.exists(minus)):
            P.validation_split(train_base, validation_fraction, validation_seed, out_validation=validation,
                               out_train=minus)
            built += [validation, minus]
        balanced = P.index_path(data_root, "balanced_train")
        if os.path.exists(balanced):
            from panns_core.data.index import read_index

            out = P.index_path(data_root, "balanced_train_minus_validation")
            build(out, lambda: remove_clips(balanced, set(read_index(validation).audio_names), out))
            written.append(out)
        train_base = minus
        written += [validation, minus]
    for fraction in fractions:
        out = f"{train_base[:-3]}_frac{float(fraction):g}_seed{fraction_seed}.h5"
        build(out, lambda out=out, fraction=fraction: P.partial_subset(train_base, float(fraction), fraction_seed,
                                                                      out_h5=out))
        written.append(out)
    eval_index = P.index_path(data_root, "eval")
    manifest_path = eval_index[:-3] + ".manifest.json"
    if os.path.exists(manifest_path):
        import json

        with open(manifest_path) as f:
            eval_manifest = json.load(f)
    else:
        eval_manifest = P.write_eval_manifest(eval_index)
    return {
        "packed": {os.path.relpath(w, waveforms): "packed copy, used as it is" for w in files},
        "indexes": {os.path.basename(p)[:-3]: _index_summary(p) for p in written if os.path.exists(p)},
        "eval_manifest": eval_manifest,
        "built": built,
    }


# ----------------------------------------------------------------------------
# Training stage
# ----------------------------------------------------------------------------


def train_run(fields: dict, *, nproc_per_node: int = 1, source: str = "profile") -> str:
    """Train one run in this process, or under ``torchrun`` on ``nproc_per_node`` GPUs.

    The config is validated here first (a typo fails before any GPU starts). For
    several processes the config is written to ``<run_dir>/launch_config.json``
    and ``python -m torch.distributed.run ... -m panns_core.train --config``
    is launched with an argument list (no shell). Returns the run folder.
    """
    import json
    import subprocess
    import sys

    from panns_core.train import TrainConfig, train

    config = TrainConfig.from_dict(dict(fields), source=source)
    if int(nproc_per_node) <= 1:
        return train(config)
    os.makedirs(config.run_dir, exist_ok=True)
    path = os.path.join(config.run_dir, "launch_config.json")
    with open(path, "w") as f:
        json.dump(config.to_dict(), f, indent=1)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={int(nproc_per_node)}",
           "-m", "panns_core.train", "--config", path]
    completed = subprocess.run(cmd, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with status {completed.returncode} (run folder {config.run_dir})")
    return config.run_dir
