# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
profile = "released"
run_root = "runs/released"
figures_dir = "figures/released"
data_root = "data/audioset"
data_source = "audioset"
classwise_models = ["Cnn14", "MobileNetV1"]   # Fig. 12 draws these (the paper: CNN14, MobileNetV1)

# %% [markdown]
# # 16 · Tables VII, IX, X, XI and Figs. 3, 5, 12 from the released checkpoints
#
# **What the paper did.** Reported, for each trained system, mAP, AUC and d' on the AudioSet eval set (20,371 clips
# listed, 18,887 of them downloaded by the authors; Table VII embedding size, IX sample rate, X mel bins, XI
# architectures), plotted mAP against multiply-adds (Fig. 5), the
# class-wise AP of CNN14 over training for classes ranked by their number of training clips (Fig. 3), and the AP of
# all 527 classes for CNN14 and MobileNetV1 beside the number of training clips (Fig. 12).
#
# **What we do.** Read the result files that `08_score_released_checkpoints` wrote under `runs/<profile>/released/`
# (one per released checkpoint) and put the paper's number, the released checkpoint's number on our eval copy and
# their difference side by side, with the eval set's size and SHA-256 on every row. All table and figure code is
# below, in view.
#
# **Where we differ, and why.** A released checkpoint is one point, the end of training: Fig. 3 shows the class-wise
# AP of the released CNN14 (no curve over iterations). Training-clip counts per class come from the balanced and
# unbalanced segment CSVs (the labels, not the audio, so no training data is downloaded); without them the eval
# counts rank the classes, and the figure says so. Rows whose checkpoint was never released (`Cnn14_mel32`,
# `Cnn14_mel128`) or could not be scored have an empty "released" cell.

# %%
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import display

from panns_core import paper
from panns_core.study.artefacts import save_figure, save_table
from panns_core.data.audioset import metadata_paths, read_class_labels, read_segments_csv, segments_targets
from panns_core.study.findings import findings_frame, write_findings
from panns_core.labels import packaged_labels_path
from panns_core.study.notebook_inputs import pipeline_hint, stop
from panns_core.study.released_eval import PAPER_TABLES, read_results, table_rows

released_dir = os.path.join(run_root, "released")
results = read_results(released_dir)
errors_path = os.path.join(released_dir, "errors.json")
errors = json.load(open(errors_path)) if os.path.exists(errors_path) else {}
print(f"{len(results)} released checkpoints scored; not scored: {errors or 'none'}")
if not results:
    stop(f"{released_dir}: no released-checkpoint result files: run notebook 08_score_released_checkpoints first "
         f"(or `{pipeline_hint(profile)} --only score_released_checkpoints`)")
sets = {(r["eval_set"]["num_clips"], r["eval_set"]["sha256"]) for r in results.values()}
print("eval sets:", [f"{n} clips, sha256 {s}" for n, s in sorted(sets)])

# %% [markdown]
# ## Tables: paper / released checkpoint on our eval copy / difference

# %%
released_models = {r["model"] for r in table_rows()}
KEY = {"table_VII": "embedding_size", "table_IX": "sample_rate", "table_X": "mel_bins", "table_XI": "model"}


def released_table(table_id):
    rows = []
    for row in PAPER_TABLES[table_id]:
        r = results.get(row["model"])
        out = {KEY[table_id]: row[KEY[table_id]]}
        if table_id != "table_XI":
            out["model"] = row["model"]
        for metric, label in (("mAP", "mAP"), ("AUC", "AUC"), ("d_prime", "d'")):
            ours = r[metric] if r else np.nan
            theirs = row[metric] if row[metric] is not None else np.nan
            out[f"paper {label}"], out[f"released {label}"], out[f"diff {label}"] = theirs, ours, ours - theirs
        out["eval clips"] = r["eval_set"]["num_clips"] if r else np.nan
        # no result: the error that stopped it, or why there is none
        out["eval sha256"] = r["eval_set"]["sha256"] if r else errors.get(
            row["model"], "not scored" if row["model"] in released_models else "never released")
        out["precision"] = r["precision"] if r else ""
        rows.append(out)
    df = pd.DataFrame(rows)
    df["eval clips"] = df["eval clips"].astype("Int64")  # a count, empty where nothing was scored
    return df


for table_id in ("table_XI", "table_IX", "table_X", "table_VII"):
    df = released_table(table_id)
    used = [results[m] for m in (r["model"] for r in PAPER_TABLES[table_id]) if m in results]
    if not used:
        print(f"{table_id}: no released checkpoint scored; left missing")
        continue
    meta = {"eval_sets": sorted({f"{r['eval_set']['num_clips']} clips, sha256 {r['eval_set']['sha256']}"
                                 for r in used}),
            "data_source": used[0]["eval_set"]["data_source"], "source": "released checkpoints (Zenodo 3987831)",
            "paper_eval_clips": paper.SETUP["eval_clips_listed"]}
    save_table(df, table_id, figures_dir, sources=[os.path.join(released_dir, f"{r['model']}.json") for r in used],
               profile=profile, meta=meta,
               caption=f"{paper.TABLES[table_id]}: paper vs the released checkpoints on our eval copy "
                       f"({'; '.join(meta['eval_sets'])}; the paper's eval set had 20,371 clips)")
    display(df)

# %% [markdown]
# ## Fig. 5: mAP vs multiply-adds (paper and released checkpoints)

# %%
FAMILY = {"Cnn6": "CNN", "Cnn10": "CNN", "Cnn14": "CNN", "ResNet22": "ResNet", "ResNet38": "ResNet",
          "ResNet54": "ResNet", "MobileNetV1": "MobileNet", "MobileNetV2": "MobileNet", "DaiNet19": "1D CNN",
          "LeeNet11": "1D CNN", "LeeNet24": "1D CNN", "Res1dNet31": "1D CNN", "Res1dNet51": "1D CNN",
          "Wavegram_Cnn14": "Wavegram", "Wavegram_Logmel_Cnn14": "Wavegram"}
points = []
for model, row in paper.TABLE_XI.items():
    mult_adds = paper.TABLE_XII[model]["mult_adds"] / 1e9
    points.append({"model": model, "family": FAMILY[model], "multiply-adds (1e9)": mult_adds,
                   "mAP": row["mAP"], "source": "paper"})
    if model in results:
        points.append({"model": model, "family": FAMILY[model], "multiply-adds (1e9)": mult_adds,
                       "mAP": results[model]["mAP"], "source": "released, our eval copy"})
points = pd.DataFrame(points)
fig, ax = plt.subplots(figsize=(7, 4.5))
sns.scatterplot(data=points, x="multiply-adds (1e9)", y="mAP", hue="family", style="source",
                markers={"paper": "o", "released, our eval copy": "X"}, s=70, ax=ax)
for _, p in points[points["source"] == "paper"].iterrows():
    ax.annotate(p["model"], (p["multiply-adds (1e9)"], p["mAP"]), fontsize=7, xytext=(3, 3),
                textcoords="offset points")
ax.set_title("mAP vs multiply-adds per 10-s clip")
ax.legend(fontsize=7, loc="lower right")
scored = [results[m] for m in paper.TABLE_XI if m in results]
save_figure(fig, "fig_5", figures_dir, sources=[os.path.join(released_dir, f"{r['model']}.json") for r in scored],
            profile=profile, caption="mAP vs multiply-adds: paper (o) and released checkpoints on our eval copy (x), "
            + "; ".join(sorted({f"{r['eval_set']['num_clips']} clips, sha256 {r['eval_set']['sha256']}"
                                for r in scored})))
plt.close(fig)
points.pivot_table(index="model", columns="source", values="mAP")

# %% [markdown]
# ## Training clips per class (for Figs. 3 and 12)
# From the balanced and unbalanced segment CSVs when the data root has them (labels only), else from the eval index.

# %%
paths = metadata_paths(data_root)
labels_csv = paths["class_labels"] if os.path.exists(paths["class_labels"]) else packaged_labels_path()
class_labels = read_class_labels(labels_csv)
train_csvs = [paths[s] for s in ("balanced_train", "unbalanced_train") if os.path.exists(paths[s])]
if train_csvs:
    counts = sum(segments_targets(read_segments_csv(p), class_labels, source=p).sum(axis=0) for p in train_csvs)
    counts_from = "training clips per class (" + ", ".join(os.path.basename(p) for p in train_csvs) + ")"
else:
    counts = segments_targets(read_segments_csv(paths["eval"]), class_labels, source=paths["eval"]).sum(axis=0)
    counts_from = "eval clips per class (no training CSV in the data root)"
rank = np.argsort(-counts, kind="stable")  # rank 1 = most clips
print(counts_from, "- most:", class_labels.names[rank[0]], int(counts[rank[0]]))

# %% [markdown]
# ## Fig. 3: class-wise AP of the released CNN14, classes ranked 1-10, 250-260 and 517-527 by clips

# %%
reference = "Cnn14" if "Cnn14" in results else next(iter(results))
ap = np.array([np.nan if v is None else v for v in results[reference]["per_class_AP"]], dtype=float)
groups = [(0, 10), (249, 260), (516, 527)] if len(rank) >= 527 else [(0, len(rank))]
rows = []
for lo, hi in groups:
    for position in range(lo, min(hi, len(rank))):
        k = rank[position]
        rows.append({"rank": position + 1, "class": class_labels.names[k], "clips": int(counts[k]), "AP": ap[k],
                     "group": f"ranks {lo + 1}-{min(hi, len(rank))}"})
classwise = pd.DataFrame(rows)
fig, ax = plt.subplots(figsize=(9, 4))
sns.barplot(data=classwise, x="class", y="AP", hue="group", dodge=False, ax=ax)
ax.tick_params(axis="x", rotation=90, labelsize=6)
ax.set_title(f"Released {reference}: class-wise AP (classes ranked by {counts_from.split(' (')[0]})")
rec = results[reference]
save_figure(fig, "fig_3", figures_dir, sources=[os.path.join(released_dir, f"{reference}.json")], profile=profile,
            caption=f"Class-wise AP of the released {reference} (one checkpoint: the end of training) for classes "
                    f"ranked by {counts_from}; eval set {rec['eval_set']['num_clips']} clips, "
                    f"sha256 {rec['eval_set']['sha256']}")
plt.close(fig)
classwise

# %% [markdown]
# ## Fig. 12: AP of every class, sorted, with the number of clips per class

# %%
drawn = [m for m in classwise_models if m in results] or [reference]
first = np.array([np.nan if v is None else v for v in results[drawn[0]]["per_class_AP"]], dtype=float)
order = np.argsort(-np.nan_to_num(first, nan=-1.0), kind="stable")
fig, ax = plt.subplots(figsize=(12, 4))
ax2 = ax.twinx()
ax2.bar(np.arange(len(order)), counts[order], color="0.85", width=1.0)
ax2.set_yscale("log")
ax2.set_ylabel(counts_from.split(" (")[0])
ax.set_zorder(ax2.get_zorder() + 1)
ax.patch.set_visible(False)
for model in drawn:
    values = np.array([np.nan if v is None else v for v in results[model]["per_class_AP"]], dtype=float)
    ax.plot(np.arange(len(order)), values[order], marker=".", linestyle="none", markersize=3, label=model)
ax.set(xlabel=f"class (sorted by the AP of {drawn[0]})", ylabel="AP", ylim=(0, 1))
ax.legend(loc="upper right")
save_figure(fig, "fig_12", figures_dir, sources=[os.path.join(released_dir, f"{m}.json") for m in drawn],
            profile=profile, caption=f"AP of every class for the released {', '.join(drawn)} on our eval copy ("
            + "; ".join(sorted({f"{results[m]['eval_set']['num_clips']} clips, sha256 {results[m]['eval_set']['sha256']}"
                                for m in drawn})) + f"), grey bars: {counts_from}")
plt.close(fig)

# %% [markdown]
# ## Findings from the released checkpoints
# `findings.json` gives each claim of the paper a verdict from the released scores where a released checkpoint
# tests it (rule in `panns_core.study.findings`), and says why the others are not measured.

# %%
path = write_findings(run_root)
with pd.option_context("display.max_colwidth", 120):
    display(findings_frame(path)[["id", "verdict", "ours"]])
