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
run_name = None

# %% [markdown]
# # 12 · Figure 3: class-wise AP vs iteration
#
# **What the paper did.** Plotted the eval AP of the classes ranked 1-10, 250-260 and 517-527 by number of training clips against the training iteration: frequent classes learn fast, rare ones slowly or not at all.
#
# **What we do.** Rank the classes of the run's own training index by clip count and scale the paper's ranks to the number of classes present (1-10 stays 'most frequent', 517-527 'rarest'); AP comes from the per-class lists in `statistics.jsonl`.
#
# **Where we differ, and why.** A generated corpus has few classes, so each group may hold a single class; the run is the profile's `classwise_run` (the paper's figure uses Wavegram-Logmel-CNN or CNN14 depending on the version).

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
name = run_name or snapshot.get("classwise_run") or snapshot.get("reference_run")
if name not in runs:
    raise FileNotFoundError(f"run {name!r} has no statistics under {run_root}/train (runs: {sorted(runs)})")
run = runs[name]
counts = T.training_clip_counts(run)
fig = P.figure_classwise_ap(run, counts, T.class_names(run, len(counts)))
A.save_figure(fig, "fig_3", figures_dir, sources=[run.statistics_path, T.training_index_path(run)],
              profile=profile, caption="Class-wise AP vs iteration", meta=source)
