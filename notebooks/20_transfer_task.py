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
tasks = "all"                # "all", one task key, a list, or [] for none: esc50, dcase2019_task1, dcase2018_task2, msos, gtzan, ravdess
strategies = ["scratch", "finetune", "freeze_l1", "freeze_l3"]
backbone = "Cnn6"            # any panns_core.models name; the paper transfers Cnn14
backbone_overrides = {}      # constructor overrides, e.g. {"mel_bins": 32}
checkpoint = None            # pretrained weights: official .pth or a best.pt of our runs, or None for a fixed random init
shots = [1, "all"]           # training clips per class, "all" for every training clip of the fold
folds = 1                    # first N folds of cross-validation tasks, "all", or a list; hold-out tasks have one
seeds = [0]
iterations = 2               # optimiser steps for scratch / fine-tune
head_iterations = 40         # steps of the frozen-embedding heads
batch_size = 4
device = "cpu"               # "cuda" on a GPU box (the pipeline passes the profile's train.device)
learning_rate = 1e-4
head_learning_rate = 1e-3
spec_augment = "official"    # SpecAugment of trained backbones: "official" (64-frame stripes), "scaled" (to the clip), "off"
pad = "zeros"                # clips shorter than clip_seconds: "zeros" (official code) or "repeat" (the clip repeated)
clip_seconds = 1.0           # None keeps the native length of each task (5 s ESC-50, 10 s DCASE 2019, 30 s GTZAN)
segment_seconds = 1.0        # DCASE 2018 Task 2 training segments (paper and None: 4 s), at least 1 s for SpecAugment
synthetic = True             # True: generated stand-ins in each dataset's layout; False: real data in data_dir
data_dir = "data/transfer"   # real data: <data_dir>/<task>/ as extracted from the official archives
download = False             # real data: fetch and extract each task's archives into <data_dir>/<task>/ first
synthetic_dir = None         # default: <run_root>/transfer/standins
embedding_cache_dir = None   # default: <run_root>/transfer/embedding_cache
# Held-out classes of the generated corpus (task "corpus_heldout"): classes the backbone's corpus did not
# contain, e.g. {"first_class": 10, "num_classes": 5, "train_per_class": 20, "test_per_class": 10}
# (a corpus of 10 classes holds classes 0-9); None: not run.
heldout = None
heldout_dir = None           # default: <run_root>/transfer/heldout_data


# %% [markdown]
# # 20 · Transfer to a task: four strategies, score vs training clips per class
#
# **You will learn** the three ways of reusing a pretrained network for a new task (train from scratch,
# freeze it and train a small classifier on its embedding, fine-tune all of it), why the frozen embedding
# wins when a task has only a few clips per class, and how to fit such a classifier yourself.
#
# **What the paper did.** Transferred CNN14, pretrained on AudioSet, to six tasks (ESC-50, DCASE 2019 Task 1,
# DCASE 2018 Task 2, MSoS, GTZAN, RAVDESS), every recording resampled to 32 kHz and converted to mono, with
# these strategies: training a system from scratch (all parameters randomly initialised, the final fully
# connected layer sized to the task); using the PANN as a frozen feature extractor with a classifier of one
# (Freeze_L1) or three (Freeze_L3) fully connected layers on its embedding; and fine-tuning all parameters
# from the PANN, with a new, randomly initialised final layer. Figures 6-11 plot accuracy (mAP@3 for DCASE
# 2018 Task 2) against the number of training clips per class.
#
# **What we do.** The same four strategies on any backbone, with each dataset's own protocol (ESC-50 5 folds,
# GTZAN 10, RAVDESS 4 by actor, the official DCASE/MSoS splits). Frozen backbones run in eval mode and their
# embeddings are computed once and reused for every fold, shot count and seed. Curves use nested per-class
# subsets, several seeds, mean and standard deviation. Results go to `runs/<profile>/transfer/<task>/`.
# **Held-out classes (`heldout`).** On the generated corpus the backbone is pretrained on its classes and
# transferred to classes it never saw (`corpus_heldout`: other synthesised sound types, their own clips,
# held-out sound variants for testing): the setting in which the paper's "pretraining helps, most with few
# clips" can be measured offline.
#
# **Where we differ, and why.** The paper gives no training hyper-parameters for the transfer runs: we use
# Adam (lr 1e-4, the official GTZAN recipe) for scratch/fine-tune and lr 1e-3 for the heads, softmax
# cross-entropy, no mixup. The official code keeps a "frozen" base in training mode (moving BatchNorm
# statistics, dropout, SpecAugment); ours does not. RAVDESS folds are actors 1-6 / 7-12 / 13-18 / 19-24 (the
# paper does not list its folds). In the CPU profiles the data are small generated stand-ins (same layouts
# and parsers), clips are 1 s and the backbone is small: the numbers test the pipeline and the mechanisms,
# not the paper's values.

# %%
import os
import torch
from panns_core.study.notebook_inputs import open_profile, profile_notebook_parameters

here = open_profile(profile, run_root=run_root, figures_dir=figures_dir)
profile, run_root, figures_dir = here.profile, here.run_root, here.figures_dir
if here.chosen_by != "parameter":  # opened by hand: run what the profile's transfer stage runs
    for name, value in profile_notebook_parameters(here, "20_transfer_task").items():
        globals()[name] = value
        print(f"{name} = {value!r}  (the profile's setting)")
if "OMP_NUM_THREADS" not in os.environ:  # the pipeline sets it when stages share the CPU (profile `jobs`)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
from panns_core.transfer import TASK_KEYS, TransferConfig
from panns_core.transfer.api import run_task
from panns_core.transfer.fewshot import parse_shots

task_list = list(TASK_KEYS) if tasks == "all" else ([tasks] if isinstance(tasks, str) else list(tasks or []))
synthetic_root = synthetic_dir or os.path.join(run_root, "transfer", "standins")
cache_root = embedding_cache_dir or os.path.join(run_root, "transfer", "embedding_cache")
cfg = TransferConfig(backbone=backbone, checkpoint=checkpoint, backbone_overrides=dict(backbone_overrides),
                     iterations=iterations, head_iterations=head_iterations, batch_size=batch_size,
                     learning_rate=learning_rate, head_learning_rate=head_learning_rate,
                     clip_seconds=clip_seconds, segment_seconds=segment_seconds, spec_augment=spec_augment,
                     pad=pad, device=device)
print(task_list, cfg)

# %%
import json
outputs, task_errors = {}, {}
for task in task_list:
    try:  # a task whose data cannot be fetched or read is recorded; the other tasks go on
        if download and not synthetic:
            from panns_core.transfer import download_task
            download_task(task, os.path.join(data_dir, task))
        out = run_task(task, cfg, strategies=strategies, shots=parse_shots(shots), folds=folds,
                       seeds=seeds, run_root=run_root,
                       data_dir=None if synthetic else os.path.join(data_dir, task),
                       synthetic_dir=synthetic_root if synthetic else None, embedding_cache_dir=cache_root)
    except Exception as exc:  # noqa: BLE001 - batch job: record and go on
        task_errors[task] = f"{type(exc).__name__}: {exc}"
        print(f"{task}: FAILED {task_errors[task]}")
        continue
    outputs[task] = out
    print(task, out["info"]["data"], f"{out['info']['wall_s']} s")
os.makedirs(os.path.join(run_root, "transfer"), exist_ok=True)
with open(os.path.join(run_root, "transfer", "errors.json"), "w") as f:
    json.dump(task_errors, f, indent=1)

# %%
if heldout:
    from panns_core.data.synthetic import write_heldout_folder
    from panns_core.transfer.api import run_folder_task

    heldout_csv = write_heldout_folder(heldout_dir or os.path.join(run_root, "transfer", "heldout_data"),
                                       clip_seconds=clip_seconds or 1.0, **heldout)
    out = run_folder_task("corpus_heldout", heldout_csv, cfg, strategies=strategies, shots=parse_shots(shots),
                          folds=folds, seeds=seeds, run_root=run_root, embedding_cache_dir=cache_root)
    outputs["corpus_heldout"] = out
    print("corpus_heldout", out["info"]["data"], f"{out['info']['wall_s']} s")
if not outputs:  # after the held-out classes: a profile may run those alone (tasks: [])
    raise RuntimeError(f"no transfer task could be run: {task_errors}")

# %%
from panns_core.transfer.fewshot import summarise
import pandas as pd
summary = (pd.concat([summarise(o["results"]) for o in outputs.values()], ignore_index=True)
           if outputs else pd.DataFrame())
summary

# %% [markdown]
# **What to notice.** With one or two clips per class the frozen embedding (Freeze_L1, Freeze_L3) usually
# beats training from scratch by far; with every clip the gap narrows and fine-tuning catches up. The
# spread over seeds is large at one clip per class: which clip you get matters.
#
# ## Exercise 20.1: a Freeze_L1 head on cached embeddings
# The frozen backbone's embedding of every clip was computed once and cached (`embedding_cache`). Below,
# `train_x, train_y, test_x, test_y` hold the embeddings and labels of one task's first fold. Write
# `fit_freeze_l1(train_x, train_y, classes)`: one fully connected layer from the embedding to the classes,
# trained with softmax cross-entropy (e.g. `torch.nn.Linear` and Adam, a few hundred steps); return a
# function that maps embeddings to predicted class indices.

# %%
import glob

import numpy as np

from panns_core.transfer.datasets import parse_task
from panns_core.transfer.folder import parse_folder

exercise_task, exercise = None, None
for task in outputs:
    files = sorted(glob.glob(os.path.join(cache_root, f"{task}_*.npz")), key=os.path.getmtime)
    if files:
        exercise_task = task
        break
if exercise_task is not None:
    if exercise_task == "corpus_heldout":
        task_data = parse_folder(heldout_csv, task=exercise_task, clip_seconds=clip_seconds or 1.0)
    else:
        task_data = parse_task(exercise_task, os.path.join(synthetic_root if synthetic else data_dir, exercise_task))
    with np.load(files[-1]) as cached:
        offsets, flat = cached["offsets"], cached["embeddings"]
        embedding_of = {str(c): flat[offsets[i]:offsets[i + 1]].mean(0) for i, c in enumerate(cached["clip_ids"])}
    train_rows, test_rows = task_data.split(task_data.folds[0])
    keep = lambda rows: [r for r in rows if task_data.clips[r].clip_id in embedding_of]  # noqa: E731
    train_rows, test_rows = keep(train_rows), keep(test_rows)
    train_x, test_x = (np.stack([embedding_of[task_data.clips[r].clip_id] for r in rows]) for rows in (train_rows, test_rows))
    train_y, test_y = task_data.labels[train_rows], task_data.labels[test_rows]
    print(f"{exercise_task}: {len(train_y)} training and {len(test_y)} test clips, embeddings of size "
          f"{train_x.shape[1]}, {len(task_data.classes)} classes")
else:
    print("no cached embeddings: run a Freeze_L1 or Freeze_L3 strategy first")

# %% tags=["exercise"]
# Exercise 20.1: fit a Freeze_L1 head
def fit_freeze_l1(train_x, train_y, classes):
    """train_x: (clips, D) embeddings, train_y: (clips,) class indices -> predict(x) -> (clips,) class indices."""
    raise NotImplementedError


# %% tags=["check"]
from sklearn.linear_model import LogisticRegression

from panns_core.study.exercises import check

with check("20.1", hint="torch.nn.Linear(D, classes), F.cross_entropy, torch.optim.Adam(lr=1e-3), ~300 steps"):
    if exercise_task is None:
        raise NotImplementedError("no cached embeddings to fit a head on")
    predict = fit_freeze_l1(train_x, train_y, len(task_data.classes))
    yours = float(np.mean(np.asarray(predict(test_x)) == test_y))
    reference = float(np.mean(LogisticRegression(max_iter=2000).fit(train_x, train_y).predict(test_x) == test_y))
    chance = 1 / len(task_data.classes)
    assert yours >= min(reference, max(chance, reference - 0.15)) - 1e-9, (
        f"your head scores accuracy {yours:.3f} on the test fold; a logistic regression on the same embeddings "
        f"scores {reference:.3f} (chance {chance:.3f})")
    print(f"your Freeze_L1 head: accuracy {yours:.3f}; logistic regression {reference:.3f}; chance {chance:.3f}")

# %% [markdown]
# ## Questions
# 1. Freeze_L1 trains a few thousand parameters, fine-tuning millions. Which would you choose with five
#    clips per class, and why does the answer change with five hundred?
# 2. On DCASE 2019 Task 1 (acoustic scenes) the paper's frozen embeddings did worse than training from
#    scratch; the paper suggests the recordings differ from AudioSet's. What would you look at to check that?
