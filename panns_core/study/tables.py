"""Run folders as DataFrames, and what several table/figure notebooks share.

The owner notebooks (``10_tables_audioset`` ... ``15_figure_classwise_ap_sorted``)
build their tables and figures in view; this module keeps only what more than
one of them needs: reading ``runs/<profile>/train/<run>/`` into :class:`Run`
objects, choosing the evaluation that stands for a run, the keys that match a
run to the paper's rows, the paper / ours / difference columns, and per-class
facts of a run's data (clip counts, class names, label quality).

"Ours" is one evaluation of a run,
chosen by :func:`select_evaluation`: the eval-split row at the iteration with the
best *validation* mAP when the run logged a validation split (so the eval set is
never used to pick the checkpoint), else the last evaluation. The rule used, the
iteration, the eval-set sha256 and the data source travel with the table.

Tables read only run folders (``runs/<profile>/train/<run>/``) and the profile
snapshot the pipeline writes (``runs/<profile>/profile.json``: which run belongs
to which ablation group); they never train. Statistics are read with
:func:`panns_core.jsonl.read_jsonl`, so a run that is still writing (a torn last
line) can be tabulated.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from panns_core import paper

# (column label, statistics key, paper key)
METRICS = (("mAP", "mAP", "mAP"), ("AUC", "mAUC", "AUC"), ("d'", "d_prime", "d_prime"))

REQUIRED_STAT_KEYS = ("iteration", "split", "mAP")

# Ablation groups -> (table id, key columns). Kept in step with pipeline.RUN_GROUPS.
GROUP_TABLES = {
    "balancing_augmentation": "table_V",
    "hop_size": "table_VI",
    "embedding_size": "table_VII",
    "data_amount": "table_VIII",
    "sample_rate": "table_IX",
    "mel_bins": "table_X",
    "architectures": "table_XI",
}


class StatisticsError(ValueError):
    """A statistics.jsonl or config.json is malformed (the message names the file and line)."""


# ----------------------------------------------------------------------------
# Reading runs
# ----------------------------------------------------------------------------


@dataclass
class Run:
    """One training run folder: its config and its statistics (one row per evaluation and split)."""

    name: str
    path: str
    config: dict
    stats: pd.DataFrame
    groups: list = field(default_factory=list)

    @property
    def statistics_path(self) -> str:
        return os.path.join(self.path, "statistics.jsonl")

    def splits(self) -> list:
        return sorted(self.stats["split"].unique()) if len(self.stats) else []

    def curve(self, split: str, metric: str = "mAP") -> pd.DataFrame:
        """(iteration, metric) for one split, sorted by iteration."""
        df = self.stats[self.stats["split"] == split]
        return df[["iteration", metric]].sort_values("iteration").reset_index(drop=True)


def read_statistics(path: str) -> pd.DataFrame:
    """Parse a ``statistics.jsonl`` (a torn last line is dropped); a bad line raises naming the file and line."""
    from panns_core.jsonl import read_jsonl

    try:
        rows = read_jsonl(path)
    except ValueError as exc:  # JsonlError: damaged before its last line
        raise StatisticsError(str(exc)) from exc
    for line_no, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise StatisticsError(f"{path}:{line_no}: expected a JSON object")
        missing = [k for k in REQUIRED_STAT_KEYS if k not in row]
        if missing:
            raise StatisticsError(f"{path}:{line_no}: missing key(s) {missing}")
    if not rows:
        raise StatisticsError(f"{path}: no evaluations recorded")
    return pd.DataFrame(rows)


def load_run(run_dir: str, groups: Sequence[str] = ()) -> Run:
    run_dir = os.fspath(run_dir)
    config_path = os.path.join(run_dir, "config.json")
    stats_path = os.path.join(run_dir, "statistics.jsonl")
    for p in (config_path, stats_path):
        if not os.path.exists(p):
            raise StatisticsError(f"{p}: missing (is {run_dir} a finished training run?)")
    try:
        with open(config_path) as f:
            config = json.load(f)
    except json.JSONDecodeError as exc:
        raise StatisticsError(f"{config_path}: not valid JSON ({exc.msg})") from exc
    return Run(os.path.basename(os.path.normpath(run_dir)), run_dir, config, read_statistics(stats_path), list(groups))


def read_profile_snapshot(run_root: str) -> dict:
    """``runs/<profile>/profile.json`` as written by the pipeline ({} when absent)."""
    path = os.path.join(os.fspath(run_root), "profile.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def load_runs(run_root: str, *, on_error: Callable[[str], None] | None = None) -> dict:
    """Every readable run under ``<run_root>/train`` keyed by name, with its groups.

    A broken run is reported through ``on_error`` (default: a warning) and
    skipped: one bad run must not stop every table.
    """
    on_error = on_error or (lambda msg: warnings.warn(msg, stacklevel=3))
    train_dir = os.path.join(os.fspath(run_root), "train")
    snapshot = read_profile_snapshot(run_root)
    declared = snapshot.get("runs") or {}
    runs = {}
    if not os.path.isdir(train_dir):
        return runs
    for name in sorted(os.listdir(train_dir)):
        path = os.path.join(train_dir, name)
        if not os.path.isdir(path):
            continue
        if declared and name not in declared:
            continue  # a leftover run of an older profile version: not part of this profile
        try:
            groups = (declared.get(name) or {}).get("groups") or []
            runs[name] = load_run(path, groups)
        except (StatisticsError, OSError) as exc:
            on_error(f"skipping run {name}: {exc}")
    return runs


# ----------------------------------------------------------------------------
# Choosing the evaluation that stands for a run
# ----------------------------------------------------------------------------


@dataclass
class Selection:
    run: str
    iteration: int
    rule: str
    metrics: dict  # mAP, mAUC, d_prime of the eval split (NaN when absent)
    eval_set_sha256: str | None
    row: dict


def _nan_to_none(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def select_evaluation(run: Run, split: str = "eval") -> Selection:
    """The row of ``split`` that stands for the run.

    Best validation mAP when a validation split was logged (ties: the earliest
    iteration), else the last evaluation. The paper picked iterations by eye
    from the eval curve; we do not, so the eval set stays a held-out test.
    """
    stats = run.stats
    target = stats[stats["split"] == split]
    if target.empty:
        raise StatisticsError(f"{run.statistics_path}: no '{split}' evaluations (splits: {run.splits()})")
    val = stats[(stats["split"] == "validation") & stats["iteration"].isin(target["iteration"])]
    if not val.empty and val["mAP"].notna().any():
        best = val.loc[val["mAP"].astype(float).idxmax()]
        iteration, rule = int(best["iteration"]), "best validation mAP"
    else:
        iteration, rule = int(target["iteration"].max()), "last evaluation"
    row = target[target["iteration"] == iteration].iloc[-1].to_dict()
    metrics = {key: float(row[key]) if _nan_to_none(row.get(key)) is not None else float("nan")
               for _, key, _ in METRICS}
    return Selection(run.name, iteration, rule, metrics, row.get("eval_set_sha256"), row)


# ----------------------------------------------------------------------------
# Keys that match our runs to the paper's rows
# ----------------------------------------------------------------------------


def config_value(config: dict, *names, default=None):
    """The first of ``names`` present in a run config (field names differ between versions)."""
    for n in names:
        if n in config and config[n] is not None:
            return config[n]
    return default


def model_name(config: dict) -> str:
    return config_value(config, "model", "model_type", default="?")


def training_set(config: dict) -> str:
    return str(config_value(config, "training_set", "data_type", "train_index", default="full_train"))


def trained_on(config: dict) -> str:
    """The training index a run actually read (``full_train_minus_validation``, not the paper's ``full_train``)."""
    name = os.path.basename(training_set(config))
    return name[:-3] if name.endswith(".h5") else name


def data_fraction(config: dict) -> float:
    """1.0 for the full set; ``full_train_frac0.5_seed0`` or an explicit fraction otherwise."""
    explicit = config_value(config, "data_fraction", "train_fraction")
    if explicit is not None:
        return float(explicit)
    name = os.path.basename(training_set(config))
    if "frac" in name:
        token = name.split("frac", 1)[1].split("_", 1)[0]
        try:
            return float(token)
        except ValueError:
            pass
    return 1.0


def mixup_kind(config: dict) -> str:
    """Paper Table V vocabulary: none | mixup (log-mel) | mixup_waveform."""
    aug = str(config_value(config, "augmentation", default="mixup"))
    where = str(config_value(config, "mixup_on", "mixup_domain", "mixup_where", default="")).lower()
    if aug in ("none", "no", "false", "False"):
        return "none"
    if aug in ("mixup_waveform", "mixup_time_domain") or where in ("waveform", "time", "time_domain"):
        return "mixup_waveform"
    if model_name(config) == "Cnn14_mixup_time_domain":
        return "mixup_waveform"
    return "mixup"


def _audio_value(config: dict, key: str):
    value = config_value(config, key)
    if value is None:
        try:
            from panns_core.models import model_info

            value = getattr(model_info(model_name(config)).config, key)
        except Exception:  # noqa: BLE001 - unknown model: the key stays unknown
            value = None
    return value


def embedding_size(config: dict):
    value = config_value(config, "embedding_size", "emb_size")
    if value is None:
        try:
            from panns_core.models import model_info

            value = model_info(model_name(config)).embedding_size
        except Exception:  # noqa: BLE001
            value = None
    return value


def base_training_set(config: dict) -> str:
    """``balanced_train`` or ``full_train`` (validation carve-outs and fractions fold into their parent)."""
    return "balanced_train" if os.path.basename(training_set(config)).startswith("balanced") else "full_train"


TABLE_KEYS: dict[str, tuple[tuple[str, Callable[[dict], object]], ...]] = {
    "table_V": (("training_set", base_training_set),
                ("balanced", lambda c: str(config_value(c, "balanced", "sampler", default="balanced"))),
                ("augmentation", mixup_kind)),
    "table_VI": (("hop_size", lambda c: _audio_value(c, "hop_size")),),
    "table_VII": (("embedding_size", embedding_size),),
    "table_VIII": (("data_fraction", data_fraction),),
    "table_IX": (("sample_rate", lambda c: _audio_value(c, "sample_rate")),),
    "table_X": (("mel_bins", lambda c: _audio_value(c, "mel_bins")),),
    "table_XI": (("model", model_name),),
}


def paper_rows(table_id: str) -> list[dict]:
    """The paper's rows of a table as dicts with the key columns and mAP/AUC/d_prime."""
    if table_id == "table_XI":
        return [{"model": m, **v} for m, v in paper.TABLE_XI.items()]
    return [dict(r) for r in getattr(paper, table_id.upper())]


# ----------------------------------------------------------------------------
# Paper / ours / difference columns
# ----------------------------------------------------------------------------

PAPER_DATA_SOURCES = ("audioset", "generated")
"""Sources whose tables show the paper's columns: AudioSet, and the generated corpus (an
AudioSet-shaped stand-in whose paper columns are shown for reference only)."""

SAME_DATA_SOURCES = ("audioset",)
"""Sources on which a difference from the paper means something: the paper's own data."""

DIFFERENCE, REFERENCE, OURS_ONLY = "difference", "reference", "ours only"
PAPER_MODES = (DIFFERENCE, REFERENCE, OURS_ONLY)


def compare_to_paper_default(data_source: str) -> bool:
    """Tables show the paper's numbers only on AudioSet and its generated stand-in, unless a profile says otherwise."""
    return data_source in PAPER_DATA_SOURCES


def paper_mode(data_source: str, compare_to_paper: bool | None = None) -> str:
    """How a table shows the paper: ``difference`` (paper, ours and ours - paper, only on the paper's data),
    ``reference`` (the paper's rows beside ours, never matched to them or subtracted: other data),
    ``ours only`` (no paper columns)."""
    if compare_to_paper is None:
        compare_to_paper = compare_to_paper_default(data_source)
    if not compare_to_paper:
        return OURS_ONLY
    return DIFFERENCE if data_source in SAME_DATA_SOURCES else REFERENCE


def _diff(ours, theirs):
    if ours is None or theirs is None:
        return float("nan")
    if isinstance(ours, float) and math.isnan(ours) or isinstance(theirs, float) and math.isnan(theirs):
        return float("nan")
    return float(ours) - float(theirs)


def metric_columns(paper_row: dict | None, selection: Selection | None, *, mode: str = DIFFERENCE,
                   data_label: str = "ours") -> dict:
    """The metric columns of one table row (mAP, AUC and d').

    ``difference``: ``<metric> paper``, ``<metric> ours``, ``<metric> diff``. ``reference``:
    ``<metric> paper (AudioSet)`` and ``<metric> <data_label>``, a row being either the paper's or ours (the
    other column empty), never both. ``ours only``: ``<metric>``.
    """
    if mode not in PAPER_MODES:
        raise ValueError(f"mode must be one of {PAPER_MODES}, got {mode!r}")
    out = {}
    for label, stat_key, paper_key in METRICS:
        ours = selection.metrics[stat_key] if selection else float("nan")
        theirs = _nan_to_none((paper_row or {}).get(paper_key))
        theirs = float("nan") if theirs is None else float(theirs)
        if mode == OURS_ONLY:
            out[label] = ours
        elif mode == REFERENCE:
            if paper_row is not None and selection is not None:
                raise ValueError("a reference-mode row is the paper's or ours, not both (different data)")
            out[f"{label} paper (AudioSet)"] = theirs
            out[f"{label} {data_label}"] = ours
        else:
            out[f"{label} paper"] = theirs
            out[f"{label} ours"] = ours
            out[f"{label} diff"] = _diff(ours, None if math.isnan(theirs) else theirs)
    return out


def selection_meta(selections: Sequence[Selection]) -> dict:
    shas = sorted({s.eval_set_sha256 for s in selections if s.eval_set_sha256})
    return {
        "eval_set_sha256": shas[0] if len(shas) == 1 else shas,
        "selection": {s.run: {"iteration": s.iteration, "rule": s.rule} for s in selections},
    }


def group_runs(runs: dict, group: str, reference: str | None = None) -> list:
    """Runs declared in ``group``; the reference run is every ablation's reference row."""
    chosen = [r for r in runs.values() if group in r.groups]
    if reference and reference in runs and runs[reference] not in chosen:
        chosen.insert(0, runs[reference])
    return chosen


def data_source_note(run_root: str) -> dict:
    """Data source and label stated with every table (generated corpus vs AudioSet)."""
    snap = read_profile_snapshot(run_root)
    return {"data_source": snap.get("data_source", "unknown"), "label": snap.get("label", "")}


def integer_columns(df: pd.DataFrame, columns=("iteration",)) -> pd.DataFrame:
    """Nullable integers, so a blank does not turn 600000 into 600000.000."""
    for c in columns:
        if c in df.columns:
            df[c] = df[c].astype("Int64")
    return df


# ----------------------------------------------------------------------------
# Per-class facts of a run's data (Figs. 3 and 12)
# ----------------------------------------------------------------------------


def run_data_root(run: Run) -> str | None:
    return config_value(run.config, "data_root")


def training_index_path(run: Run) -> str:
    """The training index a run read (recorded in config.json's run_info, else derived)."""
    info = run.config.get("run_info") or {}
    if info.get("train_index"):
        return info["train_index"]
    name = config_value(run.config, "train_index", "training_set", default="full_train")
    if str(name).endswith(".h5"):
        return str(name)
    root = run_data_root(run)
    if not root:
        raise StatisticsError(f"{run.path}/config.json: no data_root, cannot find the training index")
    return os.path.join(root, "hdf5s", "indexes", f"{name}.h5")


def training_clip_counts(run: Run) -> np.ndarray:
    """Number of training clips per class (the ranking of Fig. 3, the bars of Fig. 12)."""
    from panns_core.data.index import read_index

    path = training_index_path(run)
    if not os.path.exists(path):
        raise StatisticsError(f"{path}: training index of run {run.name} not found (was the data moved?)")
    return read_index(path).targets.sum(axis=0).astype(int)


def class_names(run: Run, classes_num: int | None = None) -> list:
    """Display names of the run's classes: the data root's label CSV, else the packaged 527."""
    root = run_data_root(run)
    csv_path = os.path.join(root, "metadata", "class_labels_indices.csv") if root else None
    if csv_path and os.path.exists(csv_path):
        from panns_core.data.audioset import read_class_labels

        names = list(read_class_labels(csv_path).names)
    else:
        from panns_core.labels import load_labels

        names = list(load_labels().names)
    if classes_num is not None and len(names) != classes_num:
        names = [f"class {i}" for i in range(classes_num)]
    return names


def label_quality(run: Run) -> np.ndarray | None:
    """Per-class label quality from ``qa_true_counts.csv`` (None when the data root has none)."""
    root = run_data_root(run)
    if not root:
        return None
    qa = os.path.join(root, "metadata", "qa_true_counts.csv")
    labels_csv = os.path.join(root, "metadata", "class_labels_indices.csv")
    if not (os.path.exists(qa) and os.path.exists(labels_csv)):
        return None
    from panns_core.data.audioset import label_quality as _quality, read_class_labels

    return _quality(qa, read_class_labels(labels_csv))
