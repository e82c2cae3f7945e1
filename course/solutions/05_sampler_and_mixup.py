# Solutions to the exercises of notebooks/05_sampler_and_mixup.py (see docs/course.md).

# %%
# Exercise 05.1: draw n clips, every class about equally often
def balanced_draws(targets, n, rng):
    """targets: (clips, classes) bool array; rng: np.random.RandomState -> list of n row positions."""
    clips_of = [np.flatnonzero(targets[:, c]) for c in range(targets.shape[1])]
    out = []
    while len(out) < n:
        for c in rng.permutation(targets.shape[1]):  # one round: every class once, in a fresh order
            if len(clips_of[c]) and len(out) < n:
                out.append(int(rng.choice(clips_of[c])))
    return out
