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
data_root = None    # None: the data folder of the profile
data_source = None
pack = None         # None: data.pack of the profile
packed = None       # True: data_root is an already packed copy: no packing, only missing indexes are built

# %% [markdown]
# # 02 · Packing, indexes and the log-mel front end
#
# **You will learn** how the clips are stored for fast random access, what the training and eval indexes
# are, how long the tail of the class distribution is, and how a waveform becomes a log-mel spectrogram
# (the mel filter bank, drawn below).
#
# **What the paper did.** The paper does not say how the clips were stored or whether part of the training
# data was held out; it reports every result on the eval set. Its front end: an STFT with a Hamming window
# of 1024 samples and a hop of 320 samples (100 frames per second), 64 mel filter banks from 50 Hz to
# 14 kHz (to remove low-frequency noise and aliasing), then the logarithm, computed inside the network with
# torchlibrosa, a PyTorch implementation of librosa functions.
#
# **What we do.** The official code's layout: every split packed into one HDF5 file (int16 waveforms, bool
# targets), an index file per split and a combined `full_train` index, so an existing PANNs copy works;
# plus a manifest per file (packed / missing / failed clips with reasons), the eval set's SHA-256, the
# paper's 50 % training subset and a class-stratified validation split carved out of the training data.
# The front end is the official code's torchlibrosa chain, with a Hann window: the paper's text says
# Hamming, the released checkpoints were trained with Hann.
#
# **Where we differ, and why.** Missing clips are left out and listed instead of being packed as silent
# all-negative rows; the validation split lets `best.pt` be chosen without looking at the eval set, which is
# then used once, for reporting.

# %%
import os
import pandas as pd
from panns_core.study.notebook_inputs import open_profile, stop
from panns_core.study.stages import prepare_indexes, use_packed_copy

here = open_profile(profile, run_root=run_root, figures_dir=figures_dir, data_root=data_root,
                    data_source=data_source)
profile, run_root, figures_dir, data_root, data_source = (here.profile, here.run_root, here.figures_dir,
                                                          here.data_root, here.data_source)
profile_data = here.spec.get("data") or {}
pack = profile_data.get("pack") or {} if pack is None else pack
packed = bool(profile_data.get("packed")) if packed is None else packed
if not packed and data_source == "generated" and not os.path.isdir(os.path.join(data_root, "metadata")):
    from panns_core.data.synthetic import generate_corpus  # what notebook 01 does, in seconds: a lesson needs it

    print(f"{data_root} is empty: generating the corpus first, as notebook 01 does")
    generate_corpus(data_root, **(profile_data.get("generate") or {}))
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
# ## From waveform to log-mel: the mel filter bank
# The STFT gives the power of 513 frequency bins per frame (window 1024). Each of the 64 mel filters
# is a triangle over those bins, narrow at low frequencies and wide at high ones; the log-mel value of a
# filter is `10 * log10` of the power it collects. These are the weights of the model's
# `logmel_extractor`, the first layer of every log-mel PANN (frozen, never trained).

# %%
import librosa
import torch

from panns_core.data.reader import AudioSetDataset
from panns_core.models import create_model

front_end = create_model("Cnn14").eval()
sample_rate = front_end.audio_config.sample_rate
window = front_end.audio_config.window_size
mel_weights = front_end.logmel_extractor.melW.detach().numpy()  # (513 frequency bins, 64 mel filters)
hz = librosa.fft_frequencies(sr=sample_rate, n_fft=window)
fig, ax = plt.subplots(figsize=(9, 3))
for m in range(0, mel_weights.shape[1]):
    ax.plot(hz / 1000, mel_weights[:, m], lw=0.8, color=plt.cm.viridis(m / mel_weights.shape[1]))
ax.set(xlabel="frequency (kHz)", ylabel="weight",
       title=f"{mel_weights.shape[1]} mel filters, {front_end.audio_config.fmin} Hz - "
             f"{front_end.audio_config.fmax / 1000:g} kHz, STFT window {window}")
plt.show()

# %% [markdown]
# ## A few eval clips as log-mel images (the model's own front end), with their audio

# %%
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
# **What to notice.** Below about 1 kHz the filters are a few bins wide, above 5 kHz they span dozens:
# 64 mel bins resolve low frequencies finely and high ones coarsely, as hearing does. A tone is a
# horizontal line in the log-mel image, a click a vertical one, noise a smear.
#
# ## Exercise 02.1: a log-mel by hand
# `power` below is the STFT power of the last clip shown above, shape `(1, 1, frames, 513)`; `mel_weights` is the
# `(513, 64)` filter bank above. Compute the log-mel spectrogram the model's `logmel_extractor` computes:
# the power each filter collects, in decibels (`10 * log10`, with the power floored at `1e-10` first).

# %% tags=["exercise"]
# Exercise 02.1: log-mel from the power spectrogram
def logmel_by_hand(power, mel_weights):
    """power: (1, 1, frames, 513) tensor, mel_weights: (513, 64) array -> (1, 1, frames, 64) tensor."""
    raise NotImplementedError


# %% tags=["check"]
from panns_core.study.exercises import check

with torch.no_grad():
    power = front_end.spectrogram_extractor(wave)
    expected = front_end.logmel_extractor(power)
with check("02.1", hint="a matrix product power @ mel_weights, torch.clamp(..., min=1e-10), then 10 * torch.log10"):
    answer = logmel_by_hand(power, mel_weights)
    assert tuple(answer.shape) == tuple(expected.shape), f"shape {tuple(answer.shape)}, expected {tuple(expected.shape)}"
    assert torch.allclose(torch.as_tensor(answer, dtype=expected.dtype), expected, atol=1e-3), (
        f"largest difference {float((torch.as_tensor(answer) - expected).abs().max()):.3g} dB")

# %% [markdown]
# ## Clips left out, and why (from each waveform file's manifest)

# %%
excluded = []
for manifest in sorted(glob.glob(os.path.join(hdf5s_dir(data_root), "**", "*.manifest.json"), recursive=True)):
    with open(manifest) as f:
        record = json.load(f)
    excluded += [{"file": os.path.basename(manifest), **clip} for clip in record.get("excluded_clips", [])]
pd.DataFrame(excluded, columns=["file", "audio_name", "reason", "message"])

# %% [markdown]
# ## Questions
# 1. The paper cut its filters at 50 Hz and 14 kHz. Which of the generated corpus's sounds would suffer
#    if `fmax` were 4 kHz (Table IX of the paper trains at 8 kHz, whose `fmax` is 4 kHz)?
# 2. Why is it fair to choose the checkpoint on a validation split carved out of the training data, and
#    not on the eval set the paper reports?
