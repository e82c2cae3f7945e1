"""One figure style for every owner notebook (Figs. 3, 4a-f, 5, 12).

The figures themselves are drawn in their notebooks (``12_figure_classwise_ap``
... ``15_figure_classwise_ap_sorted``); what they share lives here: print sizes
(a column is ~3.5 in, a page ~7 in), fonts that stay readable there, and the
finishing touches (integer iteration ticks, a title, a tight layout). Notebooks
save a figure with :func:`panns_core.study.artefacts.save_figure`.
"""

from __future__ import annotations

import os

import matplotlib

if "MPLBACKEND" not in os.environ and not matplotlib.get_backend().lower().startswith(("module://", "agg")):
    matplotlib.use("Agg")  # batch use without a display; notebooks keep their inline backend
import matplotlib.pyplot as plt  # noqa: E402

PAGE_WIDTH = 7.0
COLUMN_WIDTH = 3.5


def apply_style() -> None:
    """One style for every figure: seaborn whitegrid, print-size fonts, no top/right spines."""
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
    plt.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 200, "axes.spines.top": False, "axes.spines.right": False,
        "legend.frameon": False, "axes.titleweight": "bold", "pdf.fonttype": 42,
    })


def finish(fig, title: str | None = None):
    """Integer ticks on every ``iteration`` axis, an optional title, a tight layout; returns ``fig``."""
    from matplotlib.ticker import MaxNLocator

    for ax in fig.axes:
        if ax.get_xlabel() == "iteration":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
