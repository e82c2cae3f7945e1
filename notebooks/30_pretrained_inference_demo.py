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
data_root = None                  # None: the corpus of the profile, its eval clips are the demo audio
audio_files = []                  # your own files (any format/rate/channels); overrides the corpus
checkpoint = ""                   # tagging and embeddings, released name like Cnn14 or a .pth path, empty for untrained
model = "Cnn6"                    # model used when checkpoint is "" (random weights!)
labels_csv = ""                   # label CSV for a checkpoint that is not a 527-class AudioSet model
sed_checkpoint = ""               # SED, Cnn14_DecisionLevelMax or a .pth path, empty for untrained
sed_model = "Cnn14_DecisionLevelMax"
num_clips = 6                     # clips taken from the corpus
top_k = 5
sed_threshold = 0.5
precision = "fp32"                # or "bf16"

# %% [markdown]
# # 30 · Pretrained PANNs: tagging, embeddings and sound event detection
#
# **What the paper did.** Trained PANNs on AudioSet for audio tagging, transferred them to six other
# tasks, and released the source code and the pretrained models (the paper links the GitHub
# repository); it names sound event detection among the audio pattern recognition tasks PANNs serve.
#
# **What we do.** The released checkpoints live in Zenodo record 3987831. The official code's `inference.py`
# tags one file with CNN14 (top-10 labels, whole file as one input) and detects sound events with
# `Cnn14_DecisionLevelMax`: the 31 segment outputs of a 10-s clip are repeated 32 times and padded to the
# 1,001 STFT frames, and its README shows a spectrogram over the framewise probabilities of the top classes.
# `panns_core.inference.Pretrained` loads a released checkpoint by name (downloaded once,
# checksum-verified, cached) or a local file, takes the front end from the model registry (a 16 kHz
# checkpoint gets 16 kHz audio), reads any format/rate/channel count, cuts long files into 10-s windows
# (clipwise = max over windows, embedding = mean, framewise = concatenated), batches many files, skips
# unreadable ones with a reason, and turns framewise outputs into an event table. The same is on the
# command line as `panns tag | embed | sed`.
#
# **Where we differ, and why.** In the smoke profile there is no network, so **the models have random
# weights** unless you pass `checkpoint=` / `sed_checkpoint=` (a released name once it is cached, or a
# file): every label, score and event below is then meaningless, and only the mechanics are shown. The
# demo audio is the generated corpus (or synthetic files), not AudioSet.

# %%
from panns_core.study.notebook_inputs import open_profile
here = open_profile(profile, run_root=run_root, figures_dir=figures_dir, data_root=data_root)
profile, run_root, figures_dir, data_root = here.profile, here.run_root, here.figures_dir, here.data_root
if here.chosen_by != "parameter":  # opened by hand: the profile's settings for this notebook
    from panns_core.study.notebook_inputs import profile_notebook_parameters
    globals().update(profile_notebook_parameters(here, "30_pretrained_inference_demo"))
import os
import numpy as np
import pandas as pd
import matplotlib.pyplot as plt
from IPython.display import Markdown, display
from panns_core import inference as I, demo_audio

out_dir = os.path.join(run_root, "inference")
os.makedirs(out_dir, exist_ok=True)
os.makedirs(figures_dir, exist_ok=True)

def load(ckpt, untrained_model, **kw):
    if ckpt:
        return I.Pretrained.load(ckpt, labels_path=labels_csv or None, precision=precision, **kw)
    display(Markdown(f"## ⚠️ `{untrained_model}` has RANDOM weights: its labels, scores and events are "
                     "meaningless. Pass `checkpoint=` / `sed_checkpoint=` for real predictions."))
    return I.Pretrained.untrained(untrained_model, precision=precision, **kw)

tagger = load(checkpoint, model)
print(tagger.describe())

# %% [markdown]
# ## The audio
# Your files if given, else clips of the generated corpus, else synthetic files in mixed formats, rates and channel counts. One deliberately corrupt file shows how a batch reports and skips what it cannot read.

# %%
files = list(audio_files) or demo_audio.generated_corpus_clips(data_root, num_clips)
source = "your files" if audio_files else ("generated corpus" if files else "synthetic files")
if not files:
    files = demo_audio.write_demo_files(os.path.join(out_dir, "demo_audio"))
corrupt = os.path.join(out_dir, "corrupt.wav")
with open(corrupt, "wb") as f:
    f.write(b"RIFF....WAVEnot really audio")
inputs = files + [corrupt]
print(f"{len(files)} file(s) from the {source}, plus one corrupt file")

# %% [markdown]
# ## Audio tagging
# Top labels per file (clipwise probabilities, max over 10-s windows).

# %%
tagged = tagger.tag(inputs)
skipped = list(tagger.last_failures)
for failure in skipped:
    print(f"skipped {failure.path}: {failure.reason}")
tags = I.tags_table(tagged, k=top_k)
tags.to_csv(os.path.join(out_dir, "tags.csv"), index=False)
tags.assign(file=tags.file.map(os.path.basename)).pivot(index="file", columns="rank", values="label")

# %% [markdown]
# ## Embeddings
# One vector per file (mean over windows), saved with the file names; cosine similarities show what a retrieval or transfer model would build on.

# %%
if "embedding" in tagger.output_keys():
    embedded = tagger.embed(files)
    written = I.save_embeddings(embedded, os.path.join(out_dir, "embeddings.h5"),
                                model_name=tagger.model_name, checkpoint=tagger.checkpoint)
    names, matrix = I.load_embeddings(written[0])
    unit = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    fig, ax = plt.subplots(figsize=(5, 4))
    im = ax.imshow(unit @ unit.T, vmin=-1, vmax=1, cmap="coolwarm")
    ax.set_xticks(range(len(names)), [os.path.basename(n)[:12] for n in names], rotation=90)
    ax.set_yticks(range(len(names)), [os.path.basename(n)[:12] for n in names])
    ax.set_title(f"cosine similarity of {matrix.shape[1]}-d embeddings")
    fig.colorbar(im)
    fig.tight_layout()
    fig.savefig(os.path.join(figures_dir, "inference_embedding_similarity.png"), dpi=100)
    plt.show()
else:
    print(f"{tagger.model_name} returns no embedding")

# %% [markdown]
# ## Sound event detection
# The files are joined into one scene (silent gaps between them), run through a DecisionLevel model, and the framewise output is thresholded into events.

# %%
detector = load(sed_checkpoint, sed_model)
print(detector.describe())
scene, timeline = demo_audio.concatenate(files, detector.config.sample_rate)
(result,) = detector.sed(scene, keep_waveform=True)
result.path = "scene"
print(f"{result.duration_s:.1f} s -> framewise {result.framewise.shape} at {result.frames_per_second:g} frames/s, "
      f"windows starting at {result.chunk_starts_s} s")
display(pd.DataFrame(timeline).round(2))

# %%
fig = I.plot_sed(result, os.path.join(figures_dir, "inference_sed.png"), top_k=10,
                 title="Scene: log spectrogram (top) and the 10 most active classes (bottom)")
display(fig)
events = result.events(threshold=sed_threshold, min_duration=0.2, min_gap=0.1)
events.to_csv(os.path.join(out_dir, "events.csv"), index=False)
print(f"{len(events)} event(s) at threshold {sed_threshold}")
events.head(15).round(3)

# %% [markdown]
# ## Same thing on the command line
# ```bash
# panns tag my.wav                      # Cnn14, top-10
# panns embed clips/ -o emb.h5
# panns sed my.wav --events events.csv --plot-dir plots/
# ```

# %%
summary = {"profile": profile, "source": source, "files": len(files), "skipped": len(skipped),
           "tagger": tagger.describe(), "detector": detector.describe(), "events": int(len(events)),
           "untrained": not (checkpoint and sed_checkpoint)}
pd.Series(summary).to_json(os.path.join(out_dir, "summary.json"), indent=2)
pd.Series(summary, name="value").to_frame()
