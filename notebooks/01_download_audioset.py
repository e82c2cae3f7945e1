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
generate = {}
acquire = {}
packed = False  # True: data_root is an already packed PANNs-format copy (the profile's data.packed): nothing to make

# %% [markdown]
# # 01 · Download AudioSet (or generate the corpus)
#
# **What the paper did.** Downloaded each clip of the three segment CSVs from YouTube with youtube-dl, cut it with ffmpeg to the labelled 10 s, and kept mono 32 kHz WAVs; about 6% of the videos were already gone.
#
# **What we do.** `data_source: audioset` calls `panns_core.data.acquire` (yt-dlp + ffmpeg, resumable, every failure recorded in `failures.csv`). `data_source: generated` writes the generated corpus in exactly the same layout (metadata CSVs, `audios/<split>/Y<id>.wav`), so everything downstream is unchanged.
#
# **Where we differ, and why.** The official script only ever downloaded 10 rows per CSV (its `--mini_data` flag defaults to true); ours downloads everything it is asked to and lists what it could not get. Your copy of AudioSet will differ from the authors' (videos disappear); the eval-set sha256 written by the next stage identifies it.

# %%
import json, os
import pandas as pd
from IPython.display import display
counts = None
if packed:
    waveforms = os.path.join(data_root, "hdf5s", "waveforms")
    if not os.path.isdir(waveforms):
        raise FileNotFoundError(f"{waveforms}: data.packed must name a PANNs-format copy (hdf5s/waveforms/*.h5), "
                                f"made by `python -m panns_core.data pack ROOT`")
    print(f"{data_root}: an already packed copy; nothing to download or generate (notebook 02 checks its indexes)")
elif data_source == "generated":
    from panns_core.data.synthetic import generate_corpus
    info = generate_corpus(data_root, **generate)
    print(f"generated {sum(info.counts.values())} clips in {info.seconds:.1f} s under {data_root}")
    counts = pd.DataFrame(info.class_counts)
elif data_source == "audioset":
    from panns_core.data import acquire as acq
    options = dict(acquire)
    splits = options.pop("splits", ["eval", "balanced_train", "unbalanced_train"])
    if not options.pop("skip_metadata", False):
        acq.download_metadata(data_root)
    summaries = {split: acq.acquire_split(data_root, split, **options) for split in splits}
    for split, summary in summaries.items():
        print(split, summary)
else:
    raise ValueError(f"data_source {data_source!r}: the data stages make 'generated' or 'audioset' data; "
                     f"for your own data, pack it (`python -m panns_core.data pack ROOT`) and set packed=True")

# %% [markdown]
# Clips per class and split (the unbalanced split is long-tailed, like AudioSet):

# %%
if counts is not None:
    names = json.load(open(os.path.join(data_root, "metadata", "synthetic.json")))["class_names"]
    counts.index = names
    display(counts.sort_values("unbalanced_train", ascending=False).head(10))
