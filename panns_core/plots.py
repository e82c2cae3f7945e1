"""The paper's AudioSet figures (3, 4a-f, 5, 12) in one shared style.

Each function takes already-loaded runs (see :mod:`panns_core.tables`) and
returns a matplotlib Figure; notebooks save it with
:func:`panns_core.artefacts.save_figure`. Figures are sized for print (a
column is ~3.5 in, a page ~7 in) with fonts that stay readable there.
"""

from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import matplotlib

if "MPLBACKEND" not in os.environ and not matplotlib.get_backend().lower().startswith(("module://", "agg")):
    matplotlib.use("Agg")  # batch use without a display; notebooks keep their inline backend
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from panns_core import paper  # noqa: E402
from panns_core.tables import TABLE_KEYS, Run, StatisticsError, model_name, select_evaluation  # noqa: E402

FAMILY_ORDER = ("CNN", "ResNet", "MobileNet", "1D CNN", "Wavegram")
FAMILY_COLOURS = dict(zip(FAMILY_ORDER, ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00")))
"""Colour-blind-safe (Okabe-Ito) colour per model family (Fig. 5)."""

PAGE_WIDTH = 7.0
COLUMN_WIDTH = 3.5

TRAIN_SPLIT = "balanced_train"
EVAL_SPLIT = "eval"

PAPER_RANK_GROUPS = ((1, 10), (250, 260), (517, 527))
"""Fig. 3's class ranks (by number of training clips) among the paper's 527 classes."""


def apply_style() -> None:
    """One style for every figure: seaborn ticks, print-size fonts, no top/right spines."""
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
    plt.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 200, "axes.spines.top": False, "axes.spines.right": False,
        "legend.frameon": False, "axes.titleweight": "bold", "pdf.fonttype": 42,
    })


def _integer_iterations(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _finish(fig, title: str | None = None):
    for ax in fig.axes:
        if ax.get_xlabel() == "iteration":
            _integer_iterations(ax)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------
# Fig. 3: class-wise AP vs iteration
# ----------------------------------------------------------------------------


def scaled_rank_groups(num_classes: int, groups=PAPER_RANK_GROUPS, total: int = 527) -> list:
    """Map the paper's 1-based rank ranges onto a corpus with ``num_classes`` classes.

    Each group keeps its relative position (top, middle, bottom) and holds as
    many classes as the paper's (10-11) when the corpus is large enough, else
    ``num_classes // 8`` (at least one), so a small corpus still shows a few
    classes per panel. With 527 classes the paper's ranges come back unchanged.
    """
    if num_classes < 1:
        raise ValueError("num_classes must be >= 1")
    out = []
    for lo, hi in groups:
        size = min(hi - lo + 1, max(1, num_classes // 8), num_classes)
        centre = (lo + hi) / 2 * num_classes / total
        start = int(round(centre - (size - 1) / 2))
        start = max(1, min(num_classes - size + 1, start))
        out.append((start, start + size - 1))
    return out


def rank_classes(counts: np.ndarray) -> np.ndarray:
    """Class indices with at least one training clip, most clips first (ties: lower index first)."""
    counts = np.asarray(counts)
    present = np.where(counts > 0)[0]
    order = np.argsort(-counts[present], kind="stable")
    return present[order]


def classwise_ap_matrix(run: Run, split: str = EVAL_SPLIT) -> tuple[np.ndarray, np.ndarray]:
    """(iterations, AP matrix iterations x classes) from a run's per-class AP lists."""
    df = run.stats[run.stats["split"] == split].sort_values("iteration")
    if df.empty or "AP" not in df:
        raise StatisticsError(f"{run.statistics_path}: no per-class AP for split '{split}'")
    ap = np.array([[np.nan if v is None else float(v) for v in row] for row in df["AP"]], dtype=float)
    return df["iteration"].to_numpy(), ap


def figure_classwise_ap(run: Run, counts: np.ndarray, class_names: Sequence[str]):
    """Fig. 3: AP of the classes ranked 1-10, 250-260 and 517-527 (scaled) vs iteration."""
    iterations, ap = classwise_ap_matrix(run)
    ranked = rank_classes(counts)
    groups = scaled_rank_groups(len(ranked))
    fig, axes = plt.subplots(1, 3, figsize=(PAGE_WIDTH * 1.3, 3.2), sharey=True)
    for ax, (a, b) in zip(axes, groups):
        for rank in range(a, b + 1):
            k = ranked[rank - 1]
            ax.plot(iterations, ap[:, k], label=f"{rank}. {class_names[k]} ({int(counts[k])})", lw=1.2)
        ax.set_title(f"classes ranked {a}-{b}")
        ax.set_xlabel("iteration")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=6, loc="upper left")
    axes[0].set_ylabel("AP (eval)")
    return _finish(fig, f"Class-wise AP vs iteration: {run.name} ({paper.paper_name(model_name(run.config))}), "
                        f"{len(ranked)} classes ranked by training clips")


# ----------------------------------------------------------------------------
# Fig. 4: training curves
# ----------------------------------------------------------------------------


LEGEND_KEYS = {"training_set": "data", "balanced": "sampler", "augmentation": "aug", "data_fraction": "fraction",
               "embedding_size": "embedding", "sample_rate": "sr", "mel_bins": "mel", "hop_size": "hop"}
"""Short names of the table keys in legends."""


def run_labels(runs: Sequence[Run], table_id: str | None) -> list:
    """Legend texts that show only what differs between the runs (e.g. ``hop_size=640``)."""
    if not runs:
        return []
    if table_id == "table_XI":
        return [paper.paper_name(model_name(r.config)) for r in runs]
    keys = list(TABLE_KEYS.get(table_id, ()))
    values = [{k: f(r.config) for k, f in keys} for r in runs]
    varying = [k for k, _ in keys if len({str(v[k]) for v in values}) > 1]
    models = [model_name(r.config) for r in runs]
    labels = []
    for run, v, m in zip(runs, values, models):
        parts = [f"{LEGEND_KEYS.get(k, k)}={v[k]}" for k in varying] or [run.name]
        if len(set(models)) > 1:
            parts.append(f"({m})")
        labels.append(" ".join(parts))
    return labels


def figure_training_curves(runs: Sequence[Run], title: str, table_id: str | None = None, ax=None):
    """Fig. 4 panel: mAP vs iteration, train (balanced-train subset) dashed, eval solid."""
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH * 1.4, 3.0))
    else:
        fig = ax.figure
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (run, label) in enumerate(zip(runs, run_labels(runs, table_id))):
        colour = colours[i % len(colours)]
        for split, style, suffix in ((TRAIN_SPLIT, "--", " (train)"), (EVAL_SPLIT, "-", "")):
            curve = run.curve(split)
            if not curve.empty:
                ax.plot(curve["iteration"], curve["mAP"], style, color=colour, lw=1.4,
                        label=label if split == EVAL_SPLIT else None, alpha=0.6 if split == TRAIN_SPLIT else 1.0)
    ax.set_xlabel("iteration")
    ax.set_ylabel("mAP")
    ax.set_title(title)
    if runs:
        ax.plot([], [], "k-", label="eval")
        ax.plot([], [], "k--", alpha=0.6, label="train")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.text(0.5, 0.5, "no runs in this group", ha="center", va="center", transform=ax.transAxes)
    return _finish(fig) if own else fig


# ----------------------------------------------------------------------------
# Fig. 5: mAP vs multiply-adds
# ----------------------------------------------------------------------------


def figure_map_vs_multiply_adds(ours: pd.DataFrame, *, show_paper: bool = True):
    """Fig. 5: one point per architecture, one colour per family.

    ``ours`` has columns ``model``, ``mult_adds`` (count or 1e9) and ``mAP``
    (NaN for architectures not trained in the profile: drawn from the paper only).
    Filled markers are ours, hollow ones the paper's 15 points.
    """
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH * 0.8, 4.0))
    if show_paper:
        for m, v in paper.TABLE_XI.items():
            fam = paper.FAMILIES[m]
            x = paper.TABLE_XII[m]["mult_adds"] / 1e9
            ax.scatter(x, v["mAP"], s=40, facecolors="none", edgecolors=FAMILY_COLOURS[fam], linewidths=1.2)
            ax.annotate(paper.paper_name(m), (x, v["mAP"]), fontsize=6, xytext=(3, 2), textcoords="offset points",
                        color="0.35")
    for _, row in ours.iterrows():
        if row["mAP"] is None or (isinstance(row["mAP"], float) and math.isnan(row["mAP"])):
            continue
        fam = paper.FAMILIES.get(row["model"], "CNN")
        x = row["mult_adds"] / 1e9 if row["mult_adds"] > 1e6 else row["mult_adds"]
        ax.scatter(x, row["mAP"], s=46, color=FAMILY_COLOURS[fam], edgecolors="k", linewidths=0.5, zorder=3)
        ax.annotate(paper.paper_name(row["model"]), (x, row["mAP"]), fontsize=7, xytext=(3, -9),
                    textcoords="offset points")
    for fam in FAMILY_ORDER:
        ax.scatter([], [], color=FAMILY_COLOURS[fam], label=fam)
    ax.scatter([], [], facecolors="none", edgecolors="0.3", label="paper")
    ax.scatter([], [], color="0.3", edgecolors="k", label="ours")
    ax.set_xlabel("multiply-adds per 10-s clip (1e9, paper convention)")
    ax.set_ylabel("mAP")
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    return _finish(fig, "mAP vs multiply-adds")


# ----------------------------------------------------------------------------
# Fig. 12: AP of every class, sorted
# ----------------------------------------------------------------------------


def figure_classwise_ap_sorted(ap_by_system: Mapping[str, np.ndarray], counts: np.ndarray,
                               class_names: Sequence[str], quality: np.ndarray | None = None,
                               sort_by: str | None = None):
    """Fig. 12: per-class AP of each system, classes sorted by the first system's AP.

    Bars: number of training clips (log scale, right axis). Label quality
    (the fraction of ratings confirming a label, ``qa_true_counts``) as dots
    where known. Classes without an AP (no positives in eval) are left out.
    """
    systems = list(ap_by_system)
    if not systems:
        raise ValueError("figure_classwise_ap_sorted needs at least one system")
    key = sort_by or systems[0]
    ref = np.asarray(ap_by_system[key], dtype=float)
    keep = np.where(~np.isnan(ref))[0]
    order = keep[np.argsort(-ref[keep], kind="stable")]
    x = np.arange(len(order))
    width = max(PAGE_WIDTH, min(24.0, 0.03 * len(order) + 4))
    fig, ax = plt.subplots(figsize=(width, 3.6))
    ax2 = ax.twinx()
    ax2.bar(x, np.maximum(np.asarray(counts)[order], 1), color="0.85", width=0.9, zorder=0, label="training clips")
    ax2.set_yscale("log")
    ax2.set_ylabel("training clips (log)")
    ax2.grid(False)
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    for name in systems:
        ax.plot(x, np.asarray(ap_by_system[name], dtype=float)[order], marker=".", ms=3, lw=0.8, label=name)
    if quality is not None and np.isfinite(np.asarray(quality, dtype=float)[order]).any():
        ax.scatter(x, np.asarray(quality, dtype=float)[order], s=6, color="k", marker="x", label="label quality")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("AP / label quality")
    ax.set_xlim(-0.5, len(order) - 0.5)
    if len(order) <= 60:
        ax.set_xticks(x)
        ax.set_xticklabels([class_names[k] for k in order], rotation=90, fontsize=6)
    else:
        ax.set_xlabel(f"{len(order)} classes sorted by AP of {key}")
    handles = ax.get_legend_handles_labels()
    h2 = ax2.get_legend_handles_labels()
    ax.legend(handles[0] + h2[0], handles[1] + h2[1], fontsize=7, loc="upper left", bbox_to_anchor=(1.08, 1.0))
    return _finish(fig, "Class-wise AP with training-clip counts")


def selection_ap(run: Run) -> np.ndarray:
    """Per-class eval AP of the run's selected evaluation (NaN where undefined)."""
    sel = select_evaluation(run)
    return np.array([np.nan if v is None else float(v) for v in sel.row.get("AP") or []], dtype=float)
