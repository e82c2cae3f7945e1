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
pack = {}
packed = False  # True: data_root is an already packed copy: no packing, only missing indexes are built

# %% [markdown]
# # 02 · Pack waveforms into HDF5 and build the indexes
#
# **What the paper did.** Packed every split into HDF5 files (int16 waveforms, bool targets), one index file per waveform file, and a combined `full_train` index; there was no validation split: checkpoints were chosen on the eval set.
#
# **What we do.** `panns_core.data.pack`: the same layout (so an existing PANNs copy works), a manifest per file (packed / missing / failed clips with reasons), the eval-set sha256, the paper's 50 %/80 % training subsets, and a class-stratified validation split carved out of the training data.
#
# **Where we differ, and why.** Missing clips are left out and listed instead of being packed as silent all-negative rows; a validation split exists so that the eval set is used once, for reporting.

# %%
import os
import pandas as pd
from panns_core.study.notebook_inputs import stop
from panns_core.study.stages import prepare_indexes, use_packed_copy
if packed:
    summary = use_packed_copy(data_root, **pack)
    print(f"packed copy {data_root} used as it is; indexes built now: {[os.path.basename(p) for p in summary['built']]}")
else:
    if not os.path.isdir(os.path.join(data_root, "metadata")):
        stop(f"{data_root}/metadata does not exist: run notebook 01_download_audioset first (it downloads AudioSet "
             f"or generates the corpus; or `python -m panns_core.data synthetic {data_root}`)")
    summary = prepare_indexes(data_root, **pack)
pd.DataFrame(summary["indexes"]).T

# %% [markdown]
# The eval-set identity (sha256 of the sorted clip names) that every table states:

# %%
print(summary["eval_manifest"])

# %% [markdown]
# ## The long tail: clips per class in the training index (the eval index when only eval was packed)
# The balanced sampler (notebook 05) exists because of this shape.

# %%
import glob
import json
import os

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Audio, display

from panns_core.data.index import read_index
from panns_core.data.pack import hdf5s_dir, index_path

shown = "full_train" if os.path.exists(index_path(data_root, "full_train")) else "eval"  # eval-only profiles
train = read_index(index_path(data_root, shown))
per_class = np.sort(train.targets.sum(axis=0))[::-1]
fig, ax = plt.subplots(figsize=(8, 3))
ax.bar(np.arange(len(per_class)), per_class, width=1.0)
ax.set(yscale="log", xlabel="class (most clips first)", ylabel="clips", title=f"{shown}: {len(train)} clips")
plt.show()

# %% [markdown]
# ## A few eval clips as log-mel images (the model's own front end), with their audio

# %%
import torch

from panns_core.data.reader import AudioSetDataset
from panns_core.models import create_model

front_end = create_model("Cnn14").eval()
sample_rate = front_end.audio_config.sample_rate
evaluation = read_index(index_path(data_root, "eval"))
dataset = AudioSetDataset(sample_rate=sample_rate)
for row in range(min(3, len(evaluation))):
    item = dataset[{"hdf5_path": evaluation.hdf5_paths[row], "index_in_hdf5": evaluation.index_in_hdf5[row]}]
    with torch.no_grad():
        wave = torch.from_numpy(item["waveform"])[None]
        logmel = front_end.logmel_extractor(front_end.spectrogram_extractor(wave))[0, 0]
    fig, ax = plt.subplots(figsize=(8, 2))
    ax.imshow(logmel.T.numpy(), origin="lower", aspect="auto")
    ax.set(title=f"{item['audio_name']}: classes {np.flatnonzero(item['target']).tolist()}", xlabel="frame",
           ylabel="mel bin")
    plt.show()
    display(Audio(item["waveform"], rate=sample_rate))

# %% [markdown]
# ## Clips left out, and why (from each waveform file's manifest)

# %%
excluded = []
for manifest in sorted(glob.glob(os.path.join(hdf5s_dir(data_root), "**", "*.manifest.json"), recursive=True)):
    with open(manifest) as f:
        record = json.load(f)
    excluded += [{"file": os.path.basename(manifest), **clip} for clip in record.get("excluded_clips", [])]
pd.DataFrame(excluded, columns=["file", "audio_name", "reason", "message"])
