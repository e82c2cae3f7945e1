# Solutions to the exercises of notebooks/04_evaluate_system.py (see docs/course.md).

# %%
# Exercise 04.1: the expected AP of random scores
def chance_ap(clips, positives):
    n, r = clips, positives
    harmonic = np.sum(1 / np.arange(1, n + 1))
    return (harmonic + (n - harmonic) * (r - 1) / (n - 1)) / n
