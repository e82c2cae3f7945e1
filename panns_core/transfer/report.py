"""The few-shot figure of the transfer results (Figs. 6-11 and the held-out curves of 18_findings).

The tables themselves are built in notebook 21.

Mapping (paper order, checked against the paper's captions): ESC-50 -> Table
XIII / Fig. 6, DCASE 2019 Task 1 -> XIV / 7, DCASE 2018 Task 2 -> XV / 8,
MSoS -> XVI / 9, GTZAN -> XVII / 10, RAVDESS -> XVIII / 11; it lives in
``panns_core.paper.TRANSFER_TASKS``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from panns_core.transfer.fewshot import summarise

STRATEGY_LABELS = {"scratch": "scratch", "finetune": "fine-tune", "freeze_l1": "Freeze_L1", "freeze_l3": "Freeze_L3"}
STRATEGY_STYLE = {"scratch": ("tab:gray", "o"), "finetune": ("tab:red", "s"),
                  "freeze_l1": ("tab:blue", "^"), "freeze_l3": ("tab:green", "v")}


def fewshot_figure(task: str, results: pd.DataFrame | None, title: str = "", ax=None):
    """Score vs training clips per class (log x), one line per strategy, mean +- std band over folds and seeds."""
    import matplotlib.pyplot as plt

    from panns_core.paper import TRANSFER

    if ax is None:
        fig, ax = plt.subplots(figsize=(4.6, 3.4))
    else:
        fig = ax.figure
    metric = TRANSFER.get(task, {}).get("metric", "accuracy")  # tasks beyond the paper's: accuracy
    if results is None or not len(results):
        ax.text(0.5, 0.5, "not run in this profile", ha="center", va="center", transform=ax.transAxes)
    else:
        summary = summarise(results)
        for strategy, group in summary.groupby("strategy", sort=False):
            group = group.sort_values("clips_per_class")
            x = group["clips_per_class"].to_numpy(float)
            y = group["mean"].to_numpy(float)
            s = group["std"].to_numpy(float)
            color, marker = STRATEGY_STYLE.get(strategy, (None, "o"))
            ax.plot(x, y, marker=marker, color=color, label=STRATEGY_LABELS.get(strategy, strategy))
            ax.fill_between(x, np.clip(y - s, 0, 1), np.clip(y + s, 0, 1), color=color, alpha=0.15)
        ax.set_xscale("log")
        ax.legend(fontsize=8)
    ax.set_xlabel("training clips per class")
    ax.set_ylabel(metric)
    ax.set_ylim(0, 1.02)
    ax.set_title(title or task)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
