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

# %% [markdown]
# # 13 · Figure 4 (a)-(f): mAP vs iteration
#
# **What the paper did.** Six panels of training mAP (dashed) and evaluation mAP (solid) against iteration: (a) architectures, (b) data balancing and augmentation, (c) embedding size, (d) amount of training data, (e) sample rate, (f) number of mel bins.
#
# **What we do.** One figure per panel (`fig_4a` ... `fig_4f`) from the runs of the matching ablation group, plus a combined six-panel view; the training curve is the mAP on the balanced training subset (the official code's choice), drawn for the runs that scored it.
#
# **Where we differ, and why.** Short profiles have only a few evaluations per run, so the curves are coarse; a profile with several seeds per setting draws one line per run.

# %%
from panns_core.study.notebook_inputs import open_runs
here = open_runs(profile, run_root=run_root, figures_dir=figures_dir)
profile, run_root, figures_dir = here.profile, here.run_root, here.figures_dir
runs, snapshot, source = here.runs, here.snapshot, here.source
import matplotlib.pyplot as plt
from panns_core import paper
from panns_core.study import artefacts as A, plots as P, tables as T
P.apply_style()
reference = snapshot.get("reference_run")

# %% [markdown]
# ## Legends show only what differs between the runs of a panel
# E.g. `hop=640` rather than the whole configuration; the key columns are the tables' (`T.TABLE_KEYS`).

# %%
SHORT = {"training_set": "data", "balanced": "sampler", "augmentation": "aug", "data_fraction": "fraction",
         "embedding_size": "embedding", "sample_rate": "sr", "mel_bins": "mel", "hop_size": "hop"}


def run_labels(members, table_id):
    if table_id == "table_XI":
        return [paper.paper_name(T.model_name(r.config)) for r in members]
    keys = T.TABLE_KEYS[table_id]
    values = [{k: f(r.config) for k, f in keys} for r in members]
    varying = [k for k, _ in keys if len({str(v[k]) for v in values}) > 1]
    models = [T.model_name(r.config) for r in members]
    labels = []
    for run, v, m in zip(members, values, models):
        parts = [f"{SHORT.get(k, k)}={v[k]}" for k in varying] or [run.name]
        if len(set(models)) > 1:
            parts.append(f"({m})")
        labels.append(" ".join(parts))
    return labels

# %% [markdown]
# ## One panel: eval mAP solid, balanced-train subset dashed, one colour per run

# %%
def training_curves(members, title, table_id, ax):
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (run, label) in enumerate(zip(members, run_labels(members, table_id))):
        for split, style in (("balanced_train", "--"), ("eval", "-")):
            curve = run.curve(split)
            if not curve.empty:
                ax.plot(curve["iteration"], curve["mAP"], style, color=colours[i % len(colours)], lw=1.4,
                        label=label if split == "eval" else None, alpha=0.6 if split == "balanced_train" else 1.0)
    ax.set(xlabel="iteration", ylabel="mAP", title=title)
    if members:
        ax.plot([], [], "k-", label="eval")
        ax.plot([], [], "k--", alpha=0.6, label="train")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.text(0.5, 0.5, "no runs in this group", ha="center", va="center", transform=ax.transAxes)

# %%
PANELS = {"fig_4a": ("architectures", "table_XI"), "fig_4b": ("balancing_augmentation", "table_V"),
          "fig_4c": ("embedding_size", "table_VII"), "fig_4d": ("data_amount", "table_VIII"),
          "fig_4e": ("sample_rate", "table_IX"), "fig_4f": ("mel_bins", "table_X")}
for fid, (group, tid) in PANELS.items():
    members = T.group_runs(runs, group, reference)
    fig, ax = plt.subplots(figsize=(P.COLUMN_WIDTH * 1.4, 3.0))
    training_curves(members, f"({fid[-1]}) {group.replace('_', ' ')}", tid, ax)
    A.save_figure(P.finish(fig), fid, figures_dir, sources=[r.statistics_path for r in members], profile=profile,
                  caption=paper.FIGURES[fid], meta=source)
    plt.close(fig)

# %% [markdown]
# All six panels together:

# %%
fig, axes = plt.subplots(2, 3, figsize=(14, 7))
for ax, (fid, (group, tid)) in zip(axes.flat, PANELS.items()):
    training_curves(T.group_runs(runs, group, reference), f"({fid[-1]}) {group.replace('_', ' ')}", tid, ax)
P.finish(fig)
