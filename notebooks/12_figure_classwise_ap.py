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
from panns_core.study.notebook_inputs import open_profile
here = open_profile(profile, run_root=run_root, figures_dir=figures_dir)
profile, run_root, figures_dir = here.profile, here.run_root, here.figures_dir
import matplotlib.pyplot as plt
import numpy as np
from panns_core import paper
from panns_core.study import artefacts as A, plots as P, tables as T
from panns_core.study.notebook_inputs import require_runs, stop
P.apply_style()
runs = T.load_runs(run_root)
snapshot = T.read_profile_snapshot(run_root)
source = T.data_source_note(run_root)
print(f"profile {profile}: {len(runs)} run(s) with statistics; data source: {source['data_source']}")
require_runs(runs, run_root, profile)
name = run_name or snapshot.get("classwise_run") or snapshot.get("reference_run") or next(iter(runs))
if name not in runs:
    stop(f"run {name!r} has no statistics under {run_root}/train (runs: {sorted(runs)}): train it with "
         f"notebook 03_train_system first")
run = runs[name]

# %% [markdown]
# ## Rank the classes by training clips, and scale the paper's ranks to this corpus
# The paper's groups (ranks 1-10, 250-260, 517-527 of 527) keep their place (top, middle, bottom) and their
# size (10-11 classes) when the corpus is large enough, else `classes // 8` (at least one).

# %%
PAPER_RANK_GROUPS = ((1, 10), (250, 260), (517, 527))


def scaled_rank_groups(num_classes, groups=PAPER_RANK_GROUPS, total=527):
    out = []
    for lo, hi in groups:
        size = min(hi - lo + 1, max(1, num_classes // 8), num_classes)
        centre = (lo + hi) / 2 * num_classes / total
        start = max(1, min(num_classes - size + 1, int(round(centre - (size - 1) / 2))))
        out.append((start, start + size - 1))
    return out


counts = T.training_clip_counts(run)
present = np.where(counts > 0)[0]
ranked = present[np.argsort(-counts[present], kind="stable")]  # most clips first; classes without clips left out
groups = scaled_rank_groups(len(ranked))
names = T.class_names(run, len(counts))
print(f"{len(ranked)} classes with training clips; rank groups {groups}")

# %% [markdown]
# ## AP of each class at every evaluation (the per-class `AP` lists of `statistics.jsonl`)

# %%
evals = run.stats[run.stats["split"] == "eval"].sort_values("iteration")
if evals.empty or "AP" not in evals:
    stop(f"{run.statistics_path}: no per-class eval AP; rerun notebook 03_train_system for run {name!r}")
iterations = evals["iteration"].to_numpy()
ap = np.array([[np.nan if v is None else float(v) for v in row] for row in evals["AP"]], dtype=float)

fig, axes = plt.subplots(1, 3, figsize=(P.PAGE_WIDTH * 1.3, 3.2), sharey=True)
for ax, (a, b) in zip(axes, groups):
    for rank in range(a, b + 1):
        k = ranked[rank - 1]
        ax.plot(iterations, ap[:, k], label=f"{rank}. {names[k]} ({int(counts[k])})", lw=1.2)
    ax.set(title=f"classes ranked {a}-{b}", xlabel="iteration", ylim=(0, 1))
    ax.legend(fontsize=6, loc="upper left")
axes[0].set_ylabel("AP (eval)")
P.finish(fig, f"Class-wise AP vs iteration: {run.name} ({paper.paper_name(T.model_name(run.config))}), "
              f"{len(ranked)} classes ranked by training clips")
A.save_figure(fig, "fig_3", figures_dir, sources=[run.statistics_path, T.training_index_path(run)],
              profile=profile, caption="Class-wise AP vs iteration", meta=source)
