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
data_source = None  # None: generated or audioset, as the profile says
generate = None     # None: data.generate of the profile
acquire = None      # None: data.acquire of the profile
packed = None       # True: data_root is an already packed PANNs-format copy (the profile's data.packed): nothing to make

# %% [markdown]
# # 01 · AudioSet, or the generated corpus
#
# **You will learn** how AudioSet is laid out (segment lists, label ids, three splits), why it is
# long-tailed and multi-label, and what the generated corpus of the CPU profiles contains.
#
# **What the paper did.** Downloaded the raw audio of AudioSet's clips in December 2018 through the links
# of the AudioSet release, leaving out clips that could no longer be downloaded: 1,934,187 (94 %) of the
# 2,063,839 training clips, 20,550 (93 %) of the balanced subset and 18,887 of the 20,371 eval clips.
# The number of clips per class is long-tailed: more than 900,000 clips of "Speech" and "Music", a few
# dozen of "Toothbrush". A clip may carry several labels.
#
# **What we do.** `data_source: audioset` downloads every clip of the three segment CSVs the way the
# official code does (yt-dlp for youtube-dl, ffmpeg cutting the labelled 10 s into mono 32-kHz WAVs;
# resumable, every failure recorded in `failures.csv`), or with `acquire: {source: hf}` reads the Hugging
# Face Hub mirror. `data_source: generated` writes the generated corpus in exactly the same layout
# (metadata CSVs, `audios/<split>/Y<id>.wav`), so everything downstream is unchanged.
#
# **Where we differ, and why.** The official script only downloaded 10 rows per CSV unless told otherwise
# (its `--mini_data` flag); ours downloads everything it is asked to and lists what it could not get. Your
# copy of AudioSet will differ from the authors' (videos disappear); the eval-set SHA-256 written by
# notebook 02 identifies it.

# %%
import json, os
import pandas as pd
from IPython.display import display
from panns_core.study.notebook_inputs import open_profile

here = open_profile(profile, run_root=run_root, figures_dir=figures_dir, data_root=data_root,
                    data_source=data_source)
profile, run_root, figures_dir, data_root, data_source = (here.profile, here.run_root, here.figures_dir,
                                                          here.data_root, here.data_source)
profile_data = here.spec.get("data") or {}
generate = profile_data.get("generate") or {} if generate is None else generate
acquire = profile_data.get("acquire") or {} if acquire is None else acquire
packed = bool(profile_data.get("packed")) if packed is None else packed
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
    source = options.pop("source", "yt-dlp")   # "hf": the Hugging Face Hub mirror (hf_repo, hf_dir, revision, ...)
    if not options.pop("skip_metadata", False):
        acq.download_metadata(data_root)
    if source == "hf":
        from panns_core.data.hf_audioset import acquire_split_hf
        summaries = {split: acquire_split_hf(data_root, split, **options).line() for split in splits}
    elif source == "yt-dlp":
        summaries = {split: acq.acquire_split(data_root, split, **options) for split in splits}
    else:
        raise ValueError(f"acquire.source must be 'yt-dlp' or 'hf', got {source!r}")
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

# %% [markdown]
# **What to notice.** A few classes hold most clips: a batch drawn uniformly would be mostly those classes
# (notebook 05 draws one). The eval split has about the same number of clips for every class.
#
# ## Exercise 01.1: read a segment list
# Every split is a CSV: three comment lines starting with `#`, then one clip per line,
# `YTID, start_seconds, end_seconds, "label,label,..."` (labels are ids such as `/m/09x0r`).
# Write `labels_per_clip(path)`: the number of labels of each clip, in file order, with plain Python.

# %% tags=["exercise"]
# Exercise 01.1: labels per clip of a segments CSV
def labels_per_clip(path):
    raise NotImplementedError


# %% tags=["check"]
from panns_core.data.audioset import read_segments_csv
from panns_core.study.exercises import check

segments_csv = os.path.join(data_root, "metadata", "eval_segments.csv")
with check("01.1", hint="skip lines starting with '#'; the labels are the quoted text after the third comma"):
    if not os.path.exists(segments_csv):
        raise NotImplementedError(f"{segments_csv} is not there: run the cells above first")
    expected = [len(s.labels) for s in read_segments_csv(segments_csv)]
    answer = list(labels_per_clip(segments_csv))
    assert len(answer) == len(expected), f"{len(expected)} clips in the file, you counted {len(answer)}"
    wrong = [i for i, (a, b) in enumerate(zip(answer, expected)) if a != b]
    assert not wrong, f"clip {wrong[0]} has {expected[wrong[0]]} labels, you said {answer[wrong[0]]}"
    print(f"{sum(n > 1 for n in answer) / len(answer):.0%} of the eval clips carry more than one label")

# %% [markdown]
# ## Questions
# 1. The paper balances its batches "approximately" because a clip can carry several labels. How does a
#    clip with two labels upset a draw of one clip per class?
# 2. In the generated corpus the eval split holds about as many clips of every class, the training split is
#    long-tailed. mAP averages the classes' APs with equal weight: what would a score weighted by class
#    frequency reward instead?
