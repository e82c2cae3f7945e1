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
clips = 400
classes = 10
seed = 0

# %% [markdown]
# # 06 · The metrics: AP, AUC and d-prime
#
# **You will learn** what the three numbers of every table of the paper measure: average precision (from
# the precision-recall curve), AUC (from the ROC curve) and d-prime (the distance between two Gaussians
# that would give that AUC); why AP and AUC can disagree; and how the per-class numbers become mAP.
#
# **What the paper did.** Used the official metrics of AudioSet tagging: mean average precision (mAP), mean
# AUC and d-prime. AP is the area under the recall-precision curve; it does not depend on the number of
# true negatives, since neither precision nor recall does. AUC is the area under the curve of the
# true-positive rate (recall) against the false-positive rate, and reflects the true negatives. d-prime can
# be computed directly from AUC. Every metric is computed per class and then averaged over the classes.
#
# **What we do.** As the official code: scikit-learn's `average_precision_score` and `roc_auc_score` per
# class, $d' = \sqrt{2}\,\Phi^{-1}(\mathrm{AUC})$, the means over classes; worked out here for one class,
# then for all at once with `panns_core.metrics.audio_tagging_metrics` (what notebooks 03 and 04 call).
#
# **Where we differ, and why.** Classes without a positive clip have no AP; we leave them out of the means
# and report them instead of letting them count as zero. The scores here are simulated (a noisy detector
# whose skill grows with the class number), so the notebook runs without a trained system.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from panns_core.metrics import audio_tagging_metrics, d_prime
from panns_core.study.notebook_inputs import open_profile

here = open_profile(profile, run_root=run_root, figures_dir=figures_dir, data_root=data_root,
                    data_source=data_source)
rng = np.random.RandomState(seed)
target = rng.rand(clips, classes) < np.linspace(0.02, 0.3, classes)  # rare to common classes
skill = np.linspace(0.5, 2.5, classes)  # how far the detector separates positives from negatives
output = 1 / (1 + np.exp(-(rng.randn(clips, classes) + skill * (2 * target - 1))))

# %% [markdown]
# ## One class: the precision-recall curve and AP
# Rank the clips by score. Going down the list, recall is the share of the class's positive clips found so
# far, precision the share of the list so far that is positive. **AP** averages the precision at the rank of
# every positive clip: the area under the step curve below.

# %%
k = 3
y, s = target[:, k], output[:, k]
precision, recall, _ = precision_recall_curve(y, s)
ap = average_precision_score(y, s)
fig, ax = plt.subplots(figsize=(4.5, 3.5))
ax.step(recall, precision, where="post")
ax.axhline(y.mean(), ls="--", c="grey", label=f"share of positives = {y.mean():.2f}")
ax.set(xlabel="recall", ylabel="precision", title=f"class {k}: AP {ap:.3f}")
ax.legend()
plt.show()

# %% [markdown]
# ## Exercise 06.1: AP for one class
# Write `average_precision(y, s)` without scikit-learn: sort the clips by score (highest first), and at
# every positive clip take the precision of the list down to it; return the mean of those precisions.

# %% tags=["exercise"]
# Exercise 06.1: average precision of one class
def average_precision(y, s):
    """y: (clips,) bool array, s: (clips,) scores -> AP (a float)."""
    raise NotImplementedError


# %% tags=["check"]
from panns_core.study.exercises import check

with check("06.1", hint="ranked = y[np.argsort(-s)]; np.cumsum(ranked) counts the positives found so far"):
    for c in range(classes):
        yours, sklearns = float(average_precision(target[:, c], output[:, c])), average_precision_score(
            target[:, c], output[:, c])
        assert np.isclose(yours, sklearns), f"class {c}: your AP {yours:.4f}, scikit-learn's {sklearns:.4f}"

# %% [markdown]
# ## The ROC curve, AUC and the two Gaussians behind d-prime
# **AUC** is the probability that a random positive clip scores above a random negative one: the area
# under the ROC curve (true-positive rate against false-positive rate). **d'** says how far apart two
# unit-variance Gaussians, one for the negatives' scores and one for the positives', must be to give that
# AUC: $d' = \sqrt{2}\,\Phi^{-1}(\mathrm{AUC})$. Right: the two Gaussians of this class's d', and the ROC
# curve they would draw (dashed) beside the real one.

# %%
auc = roc_auc_score(y, s)
dp = d_prime(auc)
pos, neg = s[y], s[~y]
assert np.isclose(auc, (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())
false_positive_rate, true_positive_rate, _ = roc_curve(y, s)
fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
ax[0].plot(false_positive_rate, true_positive_rate, label=f"class {k}: AUC {auc:.3f}")
thresholds = np.linspace(-5, 5 + dp, 400)
ax[0].plot(stats.norm.sf(thresholds), stats.norm.sf(thresholds - dp), "--", label=f"two Gaussians, d' {dp:.2f}")
ax[0].plot([0, 1], [0, 1], ":", c="grey", label="chance (AUC 0.5)")
ax[0].set(xlabel="false-positive rate", ylabel="true-positive rate (recall)", title="ROC curve")
ax[0].legend(fontsize=8)
grid = np.linspace(-4, 4 + dp, 400)
ax[1].plot(grid, stats.norm.pdf(grid), label="negatives ~ N(0, 1)")
ax[1].plot(grid, stats.norm.pdf(grid, loc=dp), label=f"positives ~ N(d', 1), d' = {dp:.2f}")
ax[1].annotate("", xy=(dp, 0.42), xytext=(0, 0.42), arrowprops={"arrowstyle": "<->"})
ax[1].set(xlabel="score (in standard deviations)", ylabel="density", ylim=(0, 0.5),
          title="the two Gaussians behind d'")
ax[1].legend(fontsize=8)
plt.tight_layout()
plt.show()
pd.DataFrame({"value": [ap, auc, dp]}, index=["AP", "AUC", "d'"])

# %% [markdown]
# ## Exercise 06.2: d-prime from AUC
# Write `d_prime_from_auc(auc)`; `scipy.stats.norm.ppf` is $\Phi^{-1}$. What d' does chance (AUC 0.5) give?

# %% tags=["exercise"]
# Exercise 06.2: d-prime from AUC
def d_prime_from_auc(auc):
    raise NotImplementedError


# %% tags=["check"]
with check("06.2", hint="two Gaussians d' apart: AUC = Phi(d' / sqrt(2))"):
    for value in (0.5, 0.75, 0.9, 0.973):
        assert np.isclose(d_prime_from_auc(value), d_prime(value)), (
            f"AUC {value}: d' should be {d_prime(value):.3f}, you gave {float(d_prime_from_auc(value)):.3f}")

# %% [markdown]
# ## Every class: `audio_tagging_metrics`
# mAP is the mean of the per-class APs; the official d-prime is computed from the mean AUC.

# %%
result = audio_tagging_metrics(target, output)
per_class = pd.DataFrame({"positives": target.sum(0), "AP": result["AP"], "AUC": result["AUC"]})
assert np.isclose(result["AP"][k], ap) and np.isclose(result["mAP"], per_class["AP"].mean())
print(f"mAP {result['mAP']:.3f}  mean AUC {result['mAUC']:.3f}  d' {result['d_prime']:.3f}")
per_class

# %% [markdown]
# **What to notice.** The rare classes (few positives) have low AP even where their AUC is high: AP punishes
# every negative ranked above a positive, and a rare class has many negatives to be outranked by. That is
# why the paper's mAP (0.431 for CNN14) looks low beside its AUC (0.973).
#
# ## Questions
# 1. Double the number of negative clips of a class without changing how the detector scores them. What
#    happens to its AUC? To its AP?
# 2. The paper's d' is computed from the *mean* AUC; `d_prime_mean_per_class` in the statistics files
#    averages the per-class d' instead. Which is larger, and why (hint: $\Phi^{-1}$ is convex above 0.5)?
