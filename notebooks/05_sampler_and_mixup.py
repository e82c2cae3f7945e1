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
training_set = "full_train"  # index the sampler draws from (made by notebook 02)
draws = 1000
seed = 1234

# %% [markdown]
# # 05 · Balanced batches, mixup and SpecAugment
#
# **You will learn** why PANNs draws its batches class by class, what mixup does to two clips and their
# labels (and what the Beta distribution behind it looks like), and which parts of a log-mel image
# SpecAugment hides.
#
# **What the paper did.** AudioSet is long-tailed: more than 900,000 clips of "Speech" and "Music", a few
# dozen of "Toothbrush". Sampled uniformly, a mini-batch is dominated by the large classes (in the extreme,
# all of its clips belong to one class), so the network over-fits them and under-fits the rare ones. The
# paper therefore samples clips from all sound classes approximately equally to form each mini-batch
# ("approximately" because a clip may carry several labels). It augments the data with mixup,
# $z = \lambda x_1 + (1 - \lambda) x_2$ and $y = \lambda y_1 + (1 - \lambda) y_2$ with $\lambda$ drawn from
# a Beta distribution, applied to the log-mel spectrogram by default, and with SpecAugment: several masks of
# consecutive mel bins $[f_0, f_0 + f)$, $f$ drawn uniformly up to a mask parameter, and the same along time.
#
# **What we do.** The official code's choices, which the paper leaves open: the balanced sampler keeps a
# queue of shuffled class ids and takes the next clip of each class it pops; a batch of 2 x 32 clips is
# mixed in consecutive pairs with $\lambda \sim \mathrm{Beta}(1, 1)$ (uniform on [0, 1]); SpecAugment hides
# two time stripes of up to 64 frames and two frequency stripes of up to 8 mel bins. Below: 1,000 draws of
# the balanced and the uniform sampler, the Beta densities, one mixed pair and one masked spectrogram.
#
# **Where we differ, and why.** Nothing in the recipe. Without the packed index (notebook 02) this notebook
# builds a small long-tailed example in memory so that it runs in seconds.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from panns_core.data.index import IndexTable, read_index
from panns_core.samplers import BalancedSampler, TrainSampler
from panns_core.study.notebook_inputs import open_profile

here = open_profile(profile, run_root=run_root, figures_dir=figures_dir, data_root=data_root,
                    data_source=data_source)
profile, run_root, figures_dir, data_root, data_source = (here.profile, here.run_root, here.figures_dir,
                                                          here.data_root, here.data_source)
index = os.path.join(data_root or "", "hdf5s", "indexes", f"{training_set}.h5")
if os.path.exists(index):
    table, source = read_index(index), index
else:
    # A long-tailed example: class k has about 300 / (k + 1) clips, one label each.
    example_counts = [max(2, 300 // (k + 1)) for k in range(20)]
    targets = np.repeat(np.eye(20, dtype=bool), example_counts, axis=0)
    table = IndexTable([f"Yexample{i:07d}.wav" for i in range(len(targets))], ["example.h5"] * len(targets),
                       np.arange(len(targets)), targets)
    source = f"an in-memory example ({index} not found; notebook 02 makes it)"
print(f"{len(table)} clips, {table.targets.shape[1]} classes, from {source}")

# %% [markdown]
# ## Class histogram of 1,000 draws: balanced vs uniform
# Classes are ordered by how many clips they have. The uniform sampler reproduces the long tail; the
# balanced one gives every class about the same share.

# %%
drawn = {}
for name, sampler_class in (("uniform", TrainSampler), ("balanced", BalancedSampler)):
    sampler = sampler_class(table, batch_size=draws, random_seed=seed)
    positions = sampler.next_positions(draws)
    drawn[name] = table.targets[positions].sum(axis=0)
in_set = table.targets.sum(axis=0)
order = np.argsort(-in_set)
counts = pd.DataFrame({"clips in the index": in_set[order], **{f"{k} draws": v[order] for k, v in drawn.items()}},
                      index=[f"class {c}" for c in order])
fig, ax = plt.subplots(figsize=(10, 3.5))
x = np.arange(len(order))
ax.bar(x - 0.2, counts["uniform draws"], width=0.4, label="uniform")
ax.bar(x + 0.2, counts["balanced draws"], width=0.4, label="balanced")
ax.set(xlabel="class (most clips first)", ylabel=f"draws among {draws}", title="Which classes a batch sees")
ax.legend()
plt.show()
counts.head(10)

# %% [markdown]
# **What to notice.** With the uniform sampler the rarest classes are drawn a handful of times in 1,000
# clips; with the balanced one every class is drawn about `draws / classes` times, so its few clips are
# seen again and again (more passes over the rare classes, and more chance to over-fit them).
#
# ## Exercise 05.1: the balanced sampler's next draws
# Write `balanced_draws(targets, n, rng)`: `n` clip positions (rows of the boolean `targets` matrix, clips x
# classes) such that every class is drawn about equally often. One way, the official one: go through the
# classes in a random order (a fresh order every round), and for each class take one of its clips.

# %% tags=["exercise"]
# Exercise 05.1: draw n clips, every class about equally often
def balanced_draws(targets, n, rng):
    """targets: (clips, classes) bool array; rng: np.random.RandomState -> list of n row positions."""
    raise NotImplementedError


# %% tags=["check"]
from panns_core.study.exercises import check

with check("05.1", hint="rng.permutation(classes) gives a round; np.flatnonzero(targets[:, c]) the clips of class c"):
    positions = list(balanced_draws(table.targets, draws, np.random.RandomState(seed)))
    assert len(positions) == draws, f"asked for {draws} clips, got {len(positions)}"
    assert all(0 <= int(p) < len(table) for p in positions), "a position is not a row of targets"
    yours = table.targets[np.asarray(positions, dtype=int)].sum(axis=0)
    reference = drawn["balanced"]
    has_clips = in_set > 0
    worst = np.argmax(np.abs(yours - reference) * has_clips)
    assert np.all(np.abs(yours - reference)[has_clips] <= 0.3 * reference[has_clips] + 5), (
        f"class {worst} was drawn {int(yours[worst])} times, the balanced sampler draws it about "
        f"{int(reference[worst])} times in {draws} clips")

# %% [markdown]
# ## Mixup: the Beta distribution behind lambda
# One $\lambda$ per pair of clips, drawn from $\mathrm{Beta}(\alpha, \alpha)$. Small $\alpha$ keeps most
# mixes close to one of the two clips, $\alpha = 1$ (the official code) makes every proportion equally
# likely, large $\alpha$ mixes near half and half. The histogram shows 2,000 lambdas of the training loop's
# own generator (`panns_core.mixup.Mixup`, $\alpha = 1$).

# %%
from scipy import stats

from panns_core.mixup import Mixup

grid = np.linspace(0.005, 0.995, 300)
fig, ax = plt.subplots(1, 2, figsize=(10, 3))
for alpha in (0.2, 0.5, 1.0, 2.0, 8.0):
    ax[0].plot(grid, stats.beta.pdf(grid, alpha, alpha), label=f"alpha = {alpha:g}")
ax[0].set(xlabel="lambda", ylabel="density", ylim=(0, 4), title="Beta(alpha, alpha)")
ax[0].legend(fontsize=8)
lambdas = Mixup(1.0, random_seed=seed).get_lambda(4000)[0::2]
ax[1].hist(lambdas, bins=20, density=True)
ax[1].set(xlabel="lambda", ylabel="density", title="2,000 lambdas of the training loop (alpha = 1)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Mixup: one mixed spectrogram and its mixed target
# `do_mixup` mixes consecutive pairs, `out = lam * x[0] + (1 - lam) * x[1]`; the model does it after its
# log-mel front end, and the loop mixes the targets with the same lambdas.

# %%
from panns_core.models import create_model
from panns_core.models.frontend import do_mixup

model = create_model("Cnn14", classes_num=table.targets.shape[1]).eval()
sample_rate = model.audio_config.sample_rate
first = [int(np.flatnonzero(table.targets[:, c])[0]) for c in order[:2]]  # one clip of each of two classes
if os.path.exists(index):
    from panns_core.data.reader import AudioSetDataset

    dataset = AudioSetDataset(sample_rate=sample_rate)
    waves = [dataset[{"hdf5_path": table.hdf5_paths[r], "index_in_hdf5": table.index_in_hdf5[r]}]["waveform"]
             for r in first]
else:  # two synthetic clips: a low tone and a chirp
    t = np.arange(2 * sample_rate) / sample_rate
    waves = [0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * (500 + 1500 * t) * t)]
waveform = torch.tensor(np.stack(waves), dtype=torch.float32)
target = torch.tensor(table.targets[first], dtype=torch.float32)
lam = torch.from_numpy(Mixup(1.0, random_seed=seed).get_lambda(2))
with torch.no_grad():
    logmel = model.logmel_extractor(model.spectrogram_extractor(waveform))  # (clips, 1, frames, mel bins)
mixed_logmel, mixed_target = do_mixup(logmel, lam), do_mixup(target, lam)

fig, axes = plt.subplots(1, 4, figsize=(14, 3), gridspec_kw={"width_ratios": [3, 3, 3, 2]})
for ax, image, title in zip(axes, [logmel[0, 0], logmel[1, 0], mixed_logmel[0, 0]],
                            ["clip A", "clip B", f"{lam[0]:.2f} A + {lam[1]:.2f} B"]):
    ax.imshow(image.T.numpy(), origin="lower", aspect="auto")
    ax.set(title=title, xlabel="frame", ylabel="mel bin")
shown = [int(c) for c in order[:2]]
axes[3].bar([f"class {c}" for c in shown], mixed_target[0, shown].numpy())
axes[3].set(title="mixed target", ylim=(0, 1))
plt.tight_layout()
plt.show()

# %% [markdown]
# ## SpecAugment: the masks
# In training the model hides two time stripes and two frequency stripes of every log-mel image (after its
# BatchNorm, so a hidden value becomes the mean); at evaluation nothing is hidden. Below: the stripes the
# model's own `spec_augmenter` draws for clip A, with the widths the profile uses for 1-s clips when it sets
# `spec_augment_time_width` (the official 64-frame stripes would hide most of a 101-frame clip).

# %%
from panns_core.models.frontend import set_spec_augment

frames = logmel.shape[2]
time_width = 64 if frames >= 300 else max(1, round(64 * frames / 1001))
set_spec_augment(model, time_drop_width=time_width)
model.spec_augmenter.train()
torch.manual_seed(seed)
mask = model.spec_augmenter(torch.ones_like(logmel[:1]))[0, 0]  # 1 where kept, 0 where hidden
masked = logmel[0, 0].clone()
masked[mask == 0] = float("nan")
fig, axes = plt.subplots(1, 3, figsize=(13, 3))
for ax, image, title in zip(axes, [logmel[0, 0], mask, masked],
                            ["clip A", f"mask: time stripes < {time_width} frames, frequency stripes < 8 bins",
                             "what the network sees in training"]):
    ax.imshow(image.T.numpy(), origin="lower", aspect="auto", cmap="viridis")
    ax.set(title=title, xlabel="frame", ylabel="mel bin")
plt.tight_layout()
plt.show()

# %% [markdown]
# **What to notice.** Mixup makes a clip that sounds like both and a target that says "0.7 of A, 0.3 of B":
# the network is never certain, which is one reason why the training loss of notebook 03 stays well above
# zero. SpecAugment's stripes are redrawn at every step, so the network cannot rely on any one band or
# moment.
#
# ## Questions
# 1. With $\alpha = 0.2$ most lambdas are near 0 or 1. What does that do to the mixed targets, and would
#    you expect it to help less or more than $\alpha = 1$?
# 2. The paper found mixup "especially useful" when training on the 20k balanced subset (Table V). Why
#    would a small training set benefit more?
# 3. A frequency stripe of 8 mel bins hides a few hundred Hz below 1 kHz but several kHz near 10 kHz (look
#    at the filter bank in notebook 02). Which sounds does a stripe hide completely, which only in part?
