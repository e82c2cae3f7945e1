# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
profile = "released"
run_root = "runs/released"
figures_dir = "figures/released"
data_root = "data/audioset"
data_source = "audioset"
models = None                   # None: every released checkpoint that is a row of Tables VII, IX, X, XI; or a list
max_eval_clips = None           # None: the whole eval copy; N: a class-stratified subset fixed by `seed`
seed = 0
precision = "fp32"              # "fp32" or "bf16" (autocast)
device = "auto"                 # "auto": cuda when available, else cpu
batch_size = 32
checkpoint_dir = "data/checkpoints"   # downloads land here (resumable, verified before use)
zenodo_base = "https://zenodo.org"
zenodo_record = None            # None: the PANNs record (3987831)
registry_file = None            # None: the packaged table of released files; a JSON list for a mirror of the record
allow_unverified = False        # score files for which no md5 is known (their sha256 is recorded)

# %% [markdown]
# # 08 · Score the released checkpoints on our copy of the AudioSet eval set
#
# **What the paper did.** Trained the systems of Tables VII, IX, X and XI on the full training set (about three days
# per system for 600k iterations on one Tesla V100) and reported their mAP, AUC and d' on the AudioSet eval set
# (20,371 clips listed, 18,887 downloaded by the authors); it states that the source code and the pretrained models
# are released (the paper links the GitHub repository).
#
# **What we do.** The weights of most of these systems are in Zenodo record 3987831 (linked from the official
# repository). Download every released checkpoint that is a row of those tables, check it against its md5
# (the project's table, and the md5 Zenodo publishes in the record's metadata), and score it on the eval set this
# profile packed (by default from the Hugging Face mirror). One compact JSON file per checkpoint is written under
# `runs/<profile>/released/`: mAP, AUC, d', the 527 class-wise APs, the eval set's size and SHA-256, where the clips
# came from, the checkpoint's checksums and the measured seconds per clip. The owner notebook (16) builds the tables
# and figures from these files; `findings.json` reads them too.
#
# **Where we differ, and why.** Our eval copy is not the authors': the mirror holds 17,142 of the 20,371 clips
# (videos vanished), so a difference from the paper mixes the missing clips with any scoring difference; every
# number carries the eval set's size and SHA-256 for that reason. `max_eval_clips` scores a class-stratified subset
# (laptop runs); `precision: bf16` scores under bf16 autocast. `Cnn14_mel32`/`Cnn14_mel128` were never released.

# %%
import os

import pandas as pd
import torch

from panns_core.data.pack import index_path
from panns_core.study.notebook_inputs import require_packed_data
from panns_core.study.released_eval import ZENODO, load_registry, rescore_all, table_rows

require_packed_data(data_root, profile, "eval")

device_name = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
registry = load_registry(registry_file) if registry_file else None
eval_index = index_path(data_root, "eval")
out_dir = os.path.join(run_root, "released")
wanted = list(models) if models else [r["model"] for r in table_rows(registry)]
print(f"{len(wanted)} checkpoints on {eval_index} ({device_name}, {precision}, "
      f"{'all clips' if max_eval_clips is None else f'{max_eval_clips} clips, seed {seed}'})")

# %%
results = rescore_all(eval_index, out_dir, wanted, registry=registry, record=zenodo_record,
                      base=zenodo_base or ZENODO, cache_dir=checkpoint_dir, max_eval_clips=max_eval_clips,
                      seed=seed, precision=precision, device=device_name, batch_size=batch_size,
                      allow_unverified=allow_unverified)

# %% [markdown]
# What was scored (a checkpoint that could not be fetched or verified is listed in `errors.json` and the others go
# on; the stage fails only when none could be scored):

# %%
rows = []
for name, r in results.items():
    if "error" in r:
        rows.append({"model": name, "error": r["error"]})
        continue
    rows.append({"model": name, "tables": ", ".join(r["tables"]), "paper mAP": r["paper"]["mAP"], "mAP": r["mAP"],
                 "difference": r["mAP"] - r["paper"]["mAP"], "eval clips": r["eval_set"]["num_clips"],
                 "eval sha256": r["eval_set"]["sha256"][:12], "verified by": r["checkpoint"]["verified_by"],
                 "ms per clip": 1000 * r["seconds"]["per_clip"]})
summary = pd.DataFrame(rows)
display(summary)
scored = [n for n, r in results.items() if "error" not in r]
if not scored:
    raise RuntimeError(f"no released checkpoint could be scored; see {os.path.join(out_dir, 'errors.json')}")
