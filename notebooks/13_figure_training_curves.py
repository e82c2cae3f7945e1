# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
profile = "smoke"
run_root = "runs/smoke"
figures_dir = "figures/smoke"

# %% [markdown]
# # 13 · Figure 4 (a)-(f): mAP vs iteration
#
# **What the paper did.** Six panels of train (balanced subset, dashed) and eval (solid) mAP against iteration: (a) architectures, (b) balancing and augmentation, (c) embedding size, (d) amount of training data, (e) sample rate, (f) mel bins.
#
# **What we do.** One figure per panel (`fig_4a` ... `fig_4f`) from the runs of the matching ablation group, plus a combined six-panel view.
#
# **Where we differ, and why.** Short profiles have only a few evaluations per run, so the curves are coarse.

# %%
import json, os
import pandas as pd
from IPython.display import Markdown, display
from panns_core import tables as T, plots as P, artefacts as A
P.apply_style()
runs = T.load_runs(run_root)
snapshot = T.read_profile_snapshot(run_root)
source = T.data_source_note(run_root)
print(f"profile {profile}: {len(runs)} run(s) with statistics; data source: {source['data_source']}")

# %%
import matplotlib.pyplot as plt
from panns_core import paper
PANELS = {"fig_4a": ("architectures", "table_XI"), "fig_4b": ("balancing_augmentation", "table_V"),
          "fig_4c": ("embedding_size", "table_VII"), "fig_4d": ("data_amount", "table_VIII"),
          "fig_4e": ("sample_rate", "table_IX"), "fig_4f": ("mel_bins", "table_X")}
reference = snapshot.get("reference_run")
for fid, (group, tid) in PANELS.items():
    members = T.group_runs(runs, group, reference)
    fig = P.figure_training_curves(members, f"({fid[-1]}) {group.replace('_', ' ')}", tid)
    A.save_figure(fig, fid, figures_dir, sources=[r.statistics_path for r in members], profile=profile,
                  caption=paper.FIGURES[fid], meta=source)
    plt.close(fig)

# %%
fig, axes = plt.subplots(2, 3, figsize=(14, 7))
for ax, (fid, (group, tid)) in zip(axes.flat, PANELS.items()):
    P.figure_training_curves(T.group_runs(runs, group, reference), f"({fid[-1]}) {group.replace('_', ' ')}", tid, ax=ax)
fig.tight_layout()
