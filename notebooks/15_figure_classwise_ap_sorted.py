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
max_systems = 3

# %% [markdown]
# # 15 · Figure 12: AP of every class
#
# **What the paper did.** Plotted the AP of all 527 classes for CNN14, MobileNetV1 and an earlier audio tagging system built on AudioSet's released embeddings, with bars of the number of training clips per class (log scale) and marks of the label quality (the fraction of a class's clips that experts verified as correctly labelled). The text notes that some classes reach a much higher AP than others, that this may reflect how hard each class is to tag, and that tagging performance is not always correlated with the number of training clips or with the label quality.
#
# **What we do.** Per-class eval AP of up to `max_systems` architecture runs at their selected evaluation, sorted by the first (the reference run), with training-clip counts from the run's index and label quality from `qa_true_counts.csv` where the data root has it.
#
# **Where we differ, and why.** The earlier embedding-based system of the paper has no code or statistics here, so it is not drawn. On the generated corpus the label quality is the generator's own (the fraction of a class's labelled events that really are that sound), and with balanced sampling a class's clip count need not decide its AP.

# %%
from panns_core.study.notebook_inputs import open_runs
here = open_runs(profile, run_root=run_root, figures_dir=figures_dir)
profile, run_root, figures_dir = here.profile, here.run_root, here.figures_dir
runs, snapshot, source = here.runs, here.snapshot, here.source
import matplotlib.pyplot as plt
import numpy as np
from panns_core.study import artefacts as A, plots as P, tables as T
P.apply_style()

# %% [markdown]
# ## The systems: the reference run first, then architecture runs; each one's AP at its selected evaluation

# %%
reference = snapshot.get("classwise_run") or snapshot.get("reference_run")
members = T.group_runs(runs, "architectures", reference) or list(runs.values())
members = members[:max_systems]
first = members[0]
counts = T.training_clip_counts(first)
names = T.class_names(first, len(counts))
quality = T.label_quality(first)  # None unless the data root has qa_true_counts.csv
ap_by_system = {}
for run in members:
    row = T.select_evaluation(run).row
    ap_by_system[f"{run.name} ({T.model_name(run.config)})"] = np.array(
        [np.nan if v is None else float(v) for v in row.get("AP") or []], dtype=float)

# %% [markdown]
# ## Classes sorted by the first system's AP (classes without an eval positive have no AP and are left out);
# grey bars: training clips (log scale, right axis); crosses: label quality where known

# %%
key = next(iter(ap_by_system))
ref = ap_by_system[key]
keep = np.where(~np.isnan(ref))[0]
order = keep[np.argsort(-ref[keep], kind="stable")]
x = np.arange(len(order))
fig, ax = plt.subplots(figsize=(max(P.PAGE_WIDTH, min(24.0, 0.03 * len(order) + 4)), 3.6))
bars = ax.twinx()
bars.bar(x, np.maximum(counts[order], 1), color="0.85", width=0.9, zorder=0, label="training clips")
bars.set(yscale="log", ylabel="training clips (log)")
bars.grid(False)
ax.set_zorder(bars.get_zorder() + 1)
ax.patch.set_visible(False)
for system, ap in ap_by_system.items():
    ax.plot(x, ap[order], marker=".", ms=3, lw=0.8, label=system)
if quality is not None and np.isfinite(np.asarray(quality, dtype=float)[order]).any():
    ax.scatter(x, np.asarray(quality, dtype=float)[order], s=6, color="k", marker="x", label="label quality")
ax.set(ylim=(0, 1.02), ylabel="AP / label quality", xlim=(-0.5, len(order) - 0.5))
if len(order) <= 60:
    ax.set_xticks(x)
    ax.set_xticklabels([names[k] for k in order], rotation=90, fontsize=6)
else:
    ax.set_xlabel(f"{len(order)} classes sorted by AP of {key}")
handles, labels = ax.get_legend_handles_labels()
bar_handles, bar_labels = bars.get_legend_handles_labels()
ax.legend(handles + bar_handles, labels + bar_labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.08, 1.0))
P.finish(fig, "Class-wise AP with training-clip counts")
A.save_figure(fig, "fig_12", figures_dir, sources=[r.statistics_path for r in members] + [T.training_index_path(first)],
              profile=profile, caption="AP of every class", meta=source)
