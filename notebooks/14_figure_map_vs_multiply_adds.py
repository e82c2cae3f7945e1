# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
profile = None      # None: the profile you ran last, or the one given to make lab
run_root = None     # None: the run folder of that profile, e.g. runs/default
figures_dir = None
compare_to_paper = None  # draw the paper's 15 points; None: on AudioSet (one axis) and the generated corpus (own panel)

# %% [markdown]
# # 14 · Figure 5: mAP vs multiply-adds
#
# **What the paper did.** Plotted the mAP of the 15 architectures against their multiply-adds, systems of one type joined by lines of one colour: mAP rises from bottom to top; Wavegram-Logmel-CNN, at the top right, reaches the best mAP; MobileNetV1 and MobileNetV2, at the top left, are the most computationally efficient.
#
# **What we do.** Our architecture runs (filled markers) at their counted multiply-adds (`table_XII.csv` when stage 11 ran, else counted here). On AudioSet the paper's 15 points (hollow) share the axes with ours; on the generated corpus they are drawn in a panel of their own beside ours, each with its own mAP axis, because mAPs on different data are not comparable.
#
# **Where we differ, and why.** Short profiles train a few architectures briefly on generated data: their mAPs rank learning speed on that data, not the converged systems the paper compares.

# %%
from panns_core.study.notebook_inputs import open_runs
here = open_runs(profile, run_root=run_root, figures_dir=figures_dir)
profile, run_root, figures_dir = here.profile, here.run_root, here.figures_dir
runs, snapshot, source = here.runs, here.snapshot, here.source
import math, os
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display
from panns_core import paper
from panns_core.study import artefacts as A, plots as P, tables as T
P.apply_style()
if compare_to_paper is None:
    compare_to_paper = T.compare_to_paper_default(source["data_source"])

# %% [markdown]
# ## Our points: each architecture run's mAP at its counted multiply-adds
# From `table_XII.csv` when notebook 11 ran, else counted here (a few seconds per model).

# %%
members = T.group_runs(runs, "architectures", snapshot.get("reference_run"))
xii_csv = os.path.join(figures_dir, "table_XII.csv")
xii = pd.read_csv(xii_csv).set_index("model") if os.path.exists(xii_csv) else None
rows = []
for run in members:
    model = T.model_name(run.config)
    if xii is not None and model in xii.index:
        madds = float(xii.loc[model, "mult-adds ours (1e9)"]) * 1e9
    else:
        from panns_core.complexity import count_multiply_adds
        from panns_core.models import create_model
        m = create_model(model)
        madds = count_multiply_adds(m, m.audio_config.clip_samples())
    rows.append({"model": model, "run": run.name, "mult_adds": madds, "mAP": T.select_evaluation(run).metrics["mAP"]})
ours = pd.DataFrame(rows, columns=["model", "run", "mult_adds", "mAP"])
display(ours)

# %% [markdown]
# ## The figure: one colour per family (colour-blind-safe Okabe-Ito), filled = ours, hollow = the paper's

# %%
FAMILY_COLOURS = {"CNN": "#0072B2", "ResNet": "#D55E00", "MobileNet": "#009E73", "1D CNN": "#CC79A7",
                  "Wavegram": "#E69F00"}
mode = T.paper_mode(source["data_source"], compare_to_paper)
if mode == T.REFERENCE:  # other data: the paper's points in a panel of their own, never on our mAP axis
    fig, (ax_paper, ax) = plt.subplots(1, 2, figsize=(P.PAGE_WIDTH * 1.2, 4.0), sharey=False)
    ax_paper.set(title="paper (AudioSet), for reference", xlabel="multiply-adds per 10-s clip (1e9)", ylabel="mAP")
    ax.set_title(f"ours ({source['data_source']} data)")
else:
    fig, ax = plt.subplots(figsize=(P.PAGE_WIDTH * 0.8, 4.0))
    ax_paper = ax if mode == T.DIFFERENCE else None
if ax_paper is not None:
    for m, v in paper.TABLE_XI.items():
        x = paper.TABLE_XII[m]["mult_adds"] / 1e9
        ax_paper.scatter(x, v["mAP"], s=40, facecolors="none", edgecolors=FAMILY_COLOURS[paper.FAMILIES[m]],
                         linewidths=1.2)
        ax_paper.annotate(paper.paper_name(m), (x, v["mAP"]), fontsize=6, xytext=(3, 2), textcoords="offset points",
                          color="0.35")
for _, row in ours.iterrows():
    if row["mAP"] is None or math.isnan(row["mAP"]):
        continue
    x = row["mult_adds"] / 1e9
    ax.scatter(x, row["mAP"], s=46, color=FAMILY_COLOURS[paper.FAMILIES.get(row["model"], "CNN")], edgecolors="k",
               linewidths=0.5, zorder=3)
    ax.annotate(paper.paper_name(row["model"]), (x, row["mAP"]), fontsize=7, xytext=(3, -9), textcoords="offset points")
for family, colour in FAMILY_COLOURS.items():
    ax.scatter([], [], color=colour, label=family)
if mode == T.DIFFERENCE:
    ax.scatter([], [], facecolors="none", edgecolors="0.3", label="paper")
ax.scatter([], [], color="0.3", edgecolors="k", label="ours")
ax.set(xlabel="multiply-adds per 10-s clip (1e9, paper convention)", ylabel="mAP")
ax.legend(fontsize=7, ncol=2, loc="lower right")
P.finish(fig, "mAP vs multiply-adds")
A.save_figure(fig, "fig_5", figures_dir, sources=[r.statistics_path for r in members] + ([xii_csv] if xii is not None else []),
              profile=profile, caption="mAP vs multiply-adds", meta={**source, "paper_points": mode})
