# Solutions to the exercises of notebooks/03_train_system.py (see docs/course.md): each cell replaces the
# student cell that opens with the same "# Exercise" line.

# %%
# Exercise 03.1: mix the targets of each pair of clips
def mix_targets(target, lam):
    """target: (2B, classes) tensor, lam: (2B,) tensor -> (B, classes) mixed targets."""
    return target[0::2] * lam[0::2, None] + target[1::2] * lam[1::2, None]


# %%
# Exercise 03.2: binary cross-entropy, averaged over clips and classes
def bce(output, target):
    """output: sigmoid scores in (0, 1), target: same shape, in [0, 1] -> a scalar tensor."""
    return -(target * torch.log(output) + (1 - target) * torch.log(1 - output)).mean()
