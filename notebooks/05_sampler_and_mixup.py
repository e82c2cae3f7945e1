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
training_set = "full_train"  # index the sampler draws from (made by notebook 02)
draws = 1000
seed = 1234

# %% [markdown]
# # 05 · The balanced sampler and mixup
#
# **What the paper did.** AudioSet is long-tailed (from about 1M clips of "Music" to a few dozen for rare classes), so each training batch was drawn class by class: a shuffled queue of class ids, one clip of each popped class. The batch of 2 x 32 clips was then mixed in pairs with mixup, lambda ~ Beta(1, 1), on the log-mel spectrogram, and the targets were mixed with the same lambda.
#
# **What we do.** Draw `draws` clips from the training index with the balanced sampler and with the uniform one and count the classes; then mix two clips with `do_mixup`, exactly as the training loop of notebook 03 does.
#
# **Where we differ, and why.** Nothing in the recipe. Without the packed index (notebook 02), this notebook builds a small long-tailed example in memory so that it runs in seconds.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from panns_core.data.index import IndexTable, read_index
from panns_core.samplers import BalancedSampler, TrainSampler

index = os.path.join(data_root, "hdf5s", "indexes", f"{training_set}.h5")
if os.path.exists(index):
    table, source = read_index(index), index
else:
    # A long-tailed example: class k has about 300 / (k + 1) clips, one label each.
    counts = [max(2, 300 // (k + 1)) for k in range(20)]
    targets = np.repeat(np.eye(20, dtype=bool), counts, axis=0)
    table = IndexTable([f"Yexample{i:07d}.wav" for i in range(len(targets))], ["example.h5"] * len(targets),
                       np.arange(len(targets)), targets)
    source = f"an in-memory example ({index} not found; notebook 02 makes it)"
print(f"{len(table)} clips, {table.targets.shape[1]} classes, from {source}")

# %% [markdown]
# ## Class histogram of 1,000 draws: balanced vs uniform
# Classes are ordered by how many clips they have. The uniform sampler reproduces the long tail; the balanced one gives every class about the same share.

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
# ## Mixup: one mixed spectrogram and its mixed target
# `do_mixup` mixes consecutive pairs, `out = lam * x[0] + (1 - lam) * x[1]`; the model does it after its log-mel front end, and the loop mixes the targets with the same lambdas.

# %%
from panns_core.mixup import Mixup
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
