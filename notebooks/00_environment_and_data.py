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

# %% [markdown]
# # 00 · Environment and data overview
#
# **You will learn** what the study runs on (software, hardware, the profile's training runs), what
# AudioSet is and what this profile uses in its place, and how a 10-s clip becomes the 1001 x 64 log-mel
# image every CNN of the paper reads.
#
# **What the paper did.** Trained on AudioSet: 527 sound classes, 2,063,839 training clips (including a
# balanced subset of 22,160 clips with at least 50 per class) and 20,371 eval clips, cut from YouTube
# videos. The authors downloaded 1,934,187 (94 %) of the training clips, 20,550 of the balanced subset
# and 18,887 eval clips in December 2018, padded clips shorter than 10 s with silence, converted them to
# mono and resampled them to 32 kHz. The log-mel spectrogram of a 10-s clip has 1001 x 64 values (hop 320
# samples, 100 frames per second; the extra frame comes from the centred STFT). Each system trained for
# about 3 days on one Tesla V100.
#
# **What we do.** Record the software and hardware of this run, the profile's training runs and what is
# already on disk, so that every later number can be traced to an environment.
#
# **Where we differ, and why.** The `default` and `smoke` profiles replace AudioSet by a generated,
# AudioSet-shaped corpus (offline, minutes on a CPU, 1-s clips). Their numbers show how the code and the
# recipe behave, not paper-scale results.

# %%
import json
import os

import pandas as pd
from IPython.display import display

from panns_core.study.artefacts import write_json
from panns_core.study.notebook_inputs import open_profile
from panns_core.study.report import environment_info

here = open_profile(profile, run_root=run_root, figures_dir=figures_dir, data_root=data_root,
                    data_source=data_source)
profile, run_root, figures_dir, data_root, data_source = (here.profile, here.run_root, here.figures_dir,
                                                          here.data_root, here.data_source)
env = environment_info()
write_json(env, os.path.join(run_root, "environment.json"))
pd.Series(env, name="value").to_frame()

# %% [markdown]
# ## The profile's training runs
# One line of the profile per run; `groups` names the ablation (table / figure panel) each run feeds.

# %%
runs = here.spec.get("runs") or {}
pd.DataFrame([{"run": name, **(line or {})} for name, line in runs.items()])

# %% [markdown]
# ## Data on disk

# %%
for sub in ("metadata", "audios", "hdf5s/waveforms", "hdf5s/indexes"):
    path = os.path.join(data_root or "", sub)
    n = len(os.listdir(path)) if os.path.isdir(path) else 0
    print(f"{path:<45} {'present' if n else 'absent (made by notebooks 01 and 02)'} ({n} entries)")

# %% [markdown]
# **What to notice.** The profile's `train` section gives every run the same defaults; a run line changes
# only what its ablation varies (a model, a sample rate, a training set). That is what makes two runs
# comparable.
#
# ## Exercise 00.1: how many frames?
# A centred STFT pads the clip by half a window at both ends, so a clip of `n` samples with hop `h` gives
# one frame every `h` samples plus one. Write `log_mel_frames(seconds, sample_rate, hop_size)`; it should
# give the paper's 1001 for a 10-s clip at 32 kHz with hop 320.

# %% tags=["exercise"]
# Exercise 00.1: frames of a centred STFT
def log_mel_frames(seconds, sample_rate=32000, hop_size=320):
    raise NotImplementedError


# %% tags=["check"]
import torch

from panns_core.models.frontend import FFTSpectrogram
from panns_core.study.exercises import check

with check("00.1", hint="the number of hops that fit in the clip, plus one"):
    for seconds, rate, hop in ((10, 32000, 320), (1, 32000, 320), (10, 16000, 160), (2.5, 8000, 100)):
        stft = FFTSpectrogram(n_fft=4 * hop, hop_length=hop, win_length=4 * hop, window="hann", center=True,
                              pad_mode="reflect", freeze_parameters=True)
        frames = stft(torch.zeros(1, int(seconds * rate))).shape[2]
        answer = log_mel_frames(seconds, rate, hop)
        assert answer == frames, f"{seconds} s at {rate} Hz, hop {hop}: the STFT gives {frames} frames, you said {answer}"

# %% [markdown]
# ## Questions
# 1. The paper trained on 94 % of AudioSet's training clips, the rest having disappeared from YouTube.
#    Why does the eval set's identity (notebook 02 records its SHA-256) matter when you compare your mAP
#    with the paper's?
# 2. A clip is 320,000 samples, the log-mel 1001 x 64 = 64,064 values. What does the front end throw away,
#    and which of the paper's ablations (hop size, mel bins, sample rate) changes how much?
