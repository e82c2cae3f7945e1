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
data_root = "data/smoke"
data_source = "generated"
clips = 400
classes = 10
seed = 0

# %% [markdown]
# # 06 · The metrics: AP, AUC and d-prime
#
# **What the paper did.** Reported mean average precision (mAP) over the 527 classes as the main figure, with mean AUC and d-prime; the official code computed them with scikit-learn on the eval set's clip-level scores.
#
# **What we do.** Work the three numbers out by hand for one class, check them against scikit-learn, draw its precision-recall curve, then score every class at once with `panns_core.metrics.audio_tagging_metrics` (what notebooks 03 and 04 call).
#
# **Where we differ, and why.** Classes without a positive clip have no AP; we leave them out of the means and report them instead of letting them count as zero. The scores here are simulated (a noisy detector), so the notebook runs without a trained system.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from panns_core.metrics import audio_tagging_metrics, d_prime

rng = np.random.RandomState(seed)
target = rng.rand(clips, classes) < np.linspace(0.02, 0.3, classes)  # rare to common classes
skill = np.linspace(0.5, 2.5, classes)  # how far the detector separates positives from negatives
output = 1 / (1 + np.exp(-(rng.randn(clips, classes) + skill * (2 * target - 1))))

# %% [markdown]
# ## One class by hand
# **AP**: rank the clips by score; at every positive clip take the precision of the list down to it; average those precisions. **AUC**: the probability that a random positive scores above a random negative. **d'**: the separation of two unit-variance Gaussians that would give this AUC, `sqrt(2) * Phi^-1(AUC)`.

# %%
k = 3
y, s = target[:, k], output[:, k]
ranked = y[np.argsort(-s, kind="stable")]
precision_at_each_positive = np.cumsum(ranked)[ranked] / (np.flatnonzero(ranked) + 1)
ap = precision_at_each_positive.mean()
pos, neg = s[y], s[~y]
auc = ((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())
dp = np.sqrt(2) * stats.norm.ppf(auc)
check = pd.DataFrame({"by hand": [ap, auc, dp],
                      "library": [average_precision_score(y, s), roc_auc_score(y, s), d_prime(roc_auc_score(y, s))]},
                     index=["AP", "AUC", "d'"])
assert np.allclose(check["by hand"], check["library"])
precision, recall, _ = precision_recall_curve(y, s)
fig, ax = plt.subplots(figsize=(4.5, 3.5))
ax.step(recall, precision, where="post")
ax.axhline(y.mean(), ls="--", c="grey", label=f"chance = {y.mean():.2f}")
ax.set(xlabel="recall", ylabel="precision", title=f"class {k}: AP {ap:.3f}")
ax.legend()
plt.show()
check

# %% [markdown]
# ## Every class: `audio_tagging_metrics`
# mAP is the mean of the per-class APs; the official d-prime is computed from the mean AUC.

# %%
result = audio_tagging_metrics(target, output)
per_class = pd.DataFrame({"positives": target.sum(0), "AP": result["AP"], "AUC": result["AUC"]})
assert np.isclose(result["AP"][k], ap) and np.isclose(result["mAP"], per_class["AP"].mean())
print(f"mAP {result['mAP']:.3f}  mean AUC {result['mAUC']:.3f}  d' {result['d_prime']:.3f}")
per_class
