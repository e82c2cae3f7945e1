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
# **What the paper did.** Plotted the class-wise AP of CNN14 against the training iteration for the classes ranked 1-10, 250-260 and 517-527 by their number of training clips in AudioSet. The text reads the figure as: performance differs greatly between classes ("Music" and "Speech" above 0.80, "Inside, small" only 0.19), and AP is generally *not* related to the number of training clips: "Inside, small" has 70,159 training clips yet a low AP, while "Hoot" has only 106 and reaches 0.86, higher than many classes with more clips.
#
# **What we do.** Rank the classes of the run's own training index by clip count and scale the paper's ranks to the number of classes present (1-10 stays 'most frequent', 517-527 'rarest'); AP comes from the per-class lists in `statistics.jsonl`. Below the figure, the rank correlation between clip count and final AP over all classes says whether frequency predicts AP in this run.
#
# **Where we differ, and why.** A generated corpus has few classes, so each group may hold a single class; the run is the profile's `classwise_run` (the paper: CNN14). With balanced sampling every class is drawn equally often whatever its clip count, so here too the count need not decide the AP.

# %%
from panns_core.study.notebook_inputs import open_runs
here = open_runs(profile, run_root=run_root, figures_dir=figures_dir)
profile, run_root, figures_dir = here.profile, here.run_root, here.figures_dir
runs, snapshot, source = here.runs, here.snapshot, here.source
import matplotlib.pyplot as plt
import numpy as np
from panns_core import paper
from panns_core.study import artefacts as A, plots as P, tables as T
from panns_core.study.notebook_inputs import stop
P.apply_style()
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

# %% [markdown]
# ## Does the number of training clips predict the AP here?
# Spearman's rank correlation between each class's training clips and its AP at the last evaluation, over every
# class with clips and an AP (the paper: "generally not related"). With a handful of classes the correlation is
# itself very uncertain; the p-value says how surprising it would be under no relation.

# %%
from scipy.stats import spearmanr

final = ap[-1]
valid = [k for k in ranked if np.isfinite(final[k])]
if len(valid) >= 3 and np.ptp(counts[valid]) > 0 and np.ptp(final[valid]) > 0:
    rho, p_value = spearmanr(counts[valid], final[valid])
    print(f"{len(valid)} classes: Spearman rho(training clips, AP at iteration {int(iterations[-1])}) = {rho:.2f} "
          f"(p = {p_value:.2f})")
else:
    print(f"{len(valid)} classes: no rank correlation (fewer than 3 classes, or equal clip counts or APs)")
for k in sorted(valid, key=lambda k: -counts[k]):
    print(f"  {names[k]:<30} {int(counts[k]):>6} clips  AP {final[k]:.2f}")
