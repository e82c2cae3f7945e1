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
max_systems = 3

# %% [markdown]
# # 15 · Figure 12: AP of every class
#
# **What the paper did.** Plotted the AP of all 527 classes for CNN14, MobileNetV1 and an earlier system, sorted, with bars of the (log) number of training clips and marks of label quality: classes with few clips or poor labels score low.
#
# **What we do.** Per-class eval AP of up to `max_systems` architecture runs at their selected evaluation, sorted by the first (the reference run), with training-clip counts from the run's index and label quality from `qa_true_counts.csv` where the data root has it.
#
# **Where we differ, and why.** The earlier 'averaging instances' system of the paper has no code or statistics, so it is not drawn.

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
import numpy as np
reference = snapshot.get("classwise_run") or snapshot.get("reference_run")
members = T.group_runs(runs, "architectures", reference)
if reference in runs and runs[reference] not in members:
    members.insert(0, runs[reference])
members = members[:max_systems]
if not members:
    raise FileNotFoundError(f"no runs with statistics under {run_root}/train")
first = members[0]
counts = T.training_clip_counts(first)
ap = {f"{r.name} ({T.model_name(r.config)})": P.selection_ap(r) for r in members}
fig = P.figure_classwise_ap_sorted(ap, counts, T.class_names(first, len(counts)), T.label_quality(first))
A.save_figure(fig, "fig_12", figures_dir, sources=[r.statistics_path for r in members] + [T.training_index_path(first)],
              profile=profile, caption="AP of every class", meta=source)
