# Solutions to the exercises of notebooks/06_metrics.py (see docs/course.md).

# %%
# Exercise 06.1: average precision of one class
def average_precision(y, s):
    """y: (clips,) bool array, s: (clips,) scores -> AP (a float)."""
    ranked = y[np.argsort(-s, kind="stable")]
    found = np.cumsum(ranked)  # positives found down to each rank
    precision_at_each_positive = found[ranked] / (np.flatnonzero(ranked) + 1)
    return precision_at_each_positive.mean()


# %%
# Exercise 06.2: d-prime from AUC
def d_prime_from_auc(auc):
    return np.sqrt(2) * stats.norm.ppf(auc)
