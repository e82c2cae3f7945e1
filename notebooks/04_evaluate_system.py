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
data_root = None
data_source = None
run_name = None     # a run folder under <run_root>/train; None: the profile's reference run (a short example run
                    # on a small generated corpus when no profile has been run yet)
checkpoint = "best"
split = "eval"
max_clips = None
batch_size = 32
device = "cpu"  # "cuda" on a GPU box (the pipeline passes the profile's train.device)

# %% [markdown]
# # 04 · Evaluating a trained system
#
# **You will learn** how a trained PANN is scored: every eval clip gets a score per class, each class
# gets an average precision (AP) and an AUC, and the means over classes are the numbers the paper's tables
# report. You will also see which classes a system finds easy and which hard, and what chance level is.
#
# **What the paper did.** Reported the mean average precision (mAP), the mean area under the ROC curve
# (AUC) and d-prime on AudioSet's eval set, the official metrics of AudioSet tagging. Each metric is
# computed per class and then averaged over the classes (macro averages). Random guessing gives mAP 0.005,
# AUC 0.500 and d-prime 0 (Table IV).
#
# **What we do.** Load the run's `best.pt` (weights only, `torch.load(weights_only=True)`), score the whole
# eval index with `panns_core.evaluate` and write the per-class result to
# `runs/<profile>/evaluate/<run>_<split>.json`. As in the official code, AP and AUC come from scikit-learn
# and d-prime from the mean AUC.
#
# **Where we differ, and why.** Classes without a positive eval clip have no AP: they are left out of the
# means and listed (scikit-learn would warn and return NaN). `best.pt` was chosen on the validation split,
# not on the eval set.

# %%
import json
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from panns_core.evaluate import build_model, evaluate, summary
from panns_core.study import tables as T
from panns_core.study.artefacts import write_json
from panns_core.study.notebook_inputs import example_run, open_profile, pipeline_hint, stop

here = open_profile(profile, run_root=run_root, figures_dir=figures_dir, data_root=data_root,
                    data_source=data_source)
profile, run_root, figures_dir, data_root, data_source = (here.profile, here.run_root, here.figures_dir,
                                                          here.data_root, here.data_source)
chosen = run_name or here.spec.get("reference_run") or "base"
run_dir = os.path.join(run_root, "train", chosen)
if not os.path.exists(os.path.join(run_dir, "checkpoints", f"{checkpoint}.pt")):
    if run_name is not None:
        stop(f"{run_dir}/checkpoints/{checkpoint}.pt does not exist: train run {chosen!r} with notebook "
             f"03_train_system first (or `{pipeline_hint(profile)} --only train_{chosen}`)")
    print(f"no trained run under {run_dir} yet (`make reproduce` trains it): this lesson evaluates a short "
          "example run instead")
    run_dir = example_run()
    run_root = os.path.dirname(os.path.dirname(run_dir))
run = T.load_run(run_dir)
data_root = run.config["data_root"]
ckpt = os.path.join(run.path, "checkpoints", f"{checkpoint}.pt")
classes_num = run.config["run_info"]["classes_num"]
model = build_model(ckpt, None, classes_num, {}).to(device)
index = os.path.join(data_root, "hdf5s", "indexes", f"{split}.h5")
result = evaluate(model, index, batch_size=batch_size, max_clips=max_clips, device=device,
                  resample_mode=run.config.get("resample_mode", "antialias"))
out = summary(result)
out.update(run=os.path.basename(run_dir), checkpoint=ckpt, split=split, index=index)
path = write_json(out, os.path.join(run_root, "evaluate", f"{os.path.basename(run_dir)}_{split}.json"))
print(f"{out['run']} on {split} ({out['num_clips']} clips): mAP {out['mAP']:.4f}  AUC {out['mAUC']:.4f}  "
      f"d' {out['d_prime']:.3f} -> {path}")

# %% [markdown]
# ## Every class: AP against its share of positive clips
# The grey ticks mark chance level: the mean AP of 50 random scorings of the same clips.

# %%
from panns_core.metrics import audio_tagging_metrics

names = T.class_names(run, classes_num)
rng = np.random.RandomState(0)
target = result["target"].astype(bool)
random_ap = np.nanmean([np.array(audio_tagging_metrics(target, rng.rand(*target.shape))["AP"], dtype=float)
                        for _ in range(50)], axis=0)
per_class = pd.DataFrame({"AP": out["AP"], "AUC": out["AUC"], "positives": target.sum(0),
                          "clips": len(target), "chance AP": random_ap}, index=names).dropna(subset=["AP"])
per_class = per_class.sort_values("AP", ascending=False)
fig, ax = plt.subplots(figsize=(9, 3.2))
x = np.arange(len(per_class))
ax.bar(x, per_class["AP"], label="AP")
ax.scatter(x, per_class["chance AP"], marker="_", s=200, color="grey", label="chance")
ax.set_xticks(x, per_class.index, rotation=60, ha="right", fontsize=7)
ax.set(ylabel="AP", ylim=(0, 1), title=f"{out['run']}: AP per class on {split} (mAP {out['mAP']:.3f})")
ax.legend()
plt.tight_layout()
plt.show()
pd.concat([per_class.head(5), per_class.tail(5)])

# %% [markdown]
# **What to notice.** The classes differ far more from one another than the mAP suggests. A class with few
# positive clips has a low chance level, so its AP can look poor and still be far above chance. AUC stays
# high for most classes: it is dominated by the many negatives, which AP ignores.
#
# ## Exercise 04.1: chance level
# Write `chance_ap(clips, positives)`: the expected AP of a scorer that ranks `clips` clips at random when
# `positives` of them carry the class. For large sets it is the share of positives, `positives / clips`;
# small sets sit above it. Exactly, with $N$ clips, $R$ positives and $H_N = 1 + 1/2 + \dots + 1/N$:
# $E[AP] = \frac{1}{N}\left(H_N + (N - H_N)\frac{R - 1}{N - 1}\right)$ (derive it if you like: take the
# expected precision at every rank). The check compares your numbers with simulated random rankings.

# %% tags=["exercise"]
# Exercise 04.1: the expected AP of random scores
def chance_ap(clips, positives):
    raise NotImplementedError


# %% tags=["check"]
from sklearn.metrics import average_precision_score

from panns_core.study.exercises import check

with check("04.1", hint="H_N is np.sum(1 / np.arange(1, N + 1))"):
    for clips, positives in ((72, 10), (24, 4), (8, 2), (int(len(target)), int(target.sum(0).max()))):
        labels = np.arange(clips) < positives
        simulated = np.mean([average_precision_score(labels, rng.rand(clips)) for _ in range(500)])
        answer = float(chance_ap(clips, positives))
        assert abs(answer - simulated) < 0.02, (
            f"{positives} positives among {clips} clips: random rankings average AP {simulated:.3f}, you said {answer:.3f}")

# %% [markdown]
# ## Questions
# 1. Random guessing scores mAP 0.005 on AudioSet (Table IV of the paper): why is this eval set's chance
#    level so much higher?
# 2. Pick the worst class above and listen to a few of its clips in notebook 02: is the class hard, or is
#    its label wrong? (The generated corpus mislabels a few per cent of clips on purpose.)
