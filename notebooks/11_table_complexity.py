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
models = None  # None: the 15 architectures; or a list of class names
with_macs = True  # also count plain multiply-accumulates (a second pass per model)

# %% [markdown]
# # 11 · Table XII: multiply-adds and parameters
#
# **What the paper did.** Reported the multiply-adds and the number of parameters of the 15 architectures (Table XII).
#
# **What we do.** Count them with `panns_core.complexity` on a 10-s clip at each model's own sample rate, with the convention of the official code's `count_flops` counter, which reproduces the printed numbers (2 operations per multiply-accumulate; STFT-as-convolution, BatchNorm, ReLU and pooling modules included; trainable parameters only). No training is needed; the difference column compares two counts of the same networks, not results on different data.
#
# **Where we differ, and why.** Nothing: all 15 rows match the paper to the printed precision. Plain MACs are about half the paper's 'multiply-adds' (see `docs/`), which matters when comparing with other papers.

# %% [markdown]
# Count every model (a few seconds each), then put the paper's figure, ours and the difference side by side.
# `mult_adds` is the exact count per 10-s clip; the difference uses ours rounded as the paper printed it.

# %%
from panns_core.study.notebook_inputs import open_profile
here = open_profile(profile, run_root=run_root, figures_dir=figures_dir)
profile, run_root, figures_dir = here.profile, here.run_root, here.figures_dir
import pandas as pd
from IPython.display import display
from panns_core import complexity, paper
from panns_core.study import artefacts as A

names = list(models) if models else [c for _, c in complexity.TABLE_XI_MODELS]
unknown = [m for m in names if m not in paper.TABLE_XII]
if unknown:
    raise ValueError(f"Table XII covers the 15 architectures {list(paper.TABLE_XII)}; not {unknown}")
counted = complexity.table_xii(tuple((paper.paper_name(m), m) for m in names), with_macs=with_macs).set_index("class")

# %%
rows = []
for m in names:
    theirs = paper.TABLE_XII[m]
    madds_e9 = float(counted.loc[m, "mult_adds"]) / 1e9
    params = int(counted.loc[m, "params"])
    row = {"model": m, "paper name": paper.paper_name(m), "family": paper.FAMILIES.get(m, ""),
           "mult-adds paper (1e9)": theirs["mult_adds"] / 1e9, "mult-adds ours (1e9)": madds_e9,
           "mult-adds diff (1e9)": round(madds_e9, paper.MULT_ADDS_DECIMALS) - theirs["mult_adds"] / 1e9,
           "params paper": theirs["params"], "params ours": params, "params diff": params - theirs["params"]}
    if with_macs:
        row["plain MACs ours (1e9)"] = float(counted.loc[m, "macs_e9"])
    rows.append(row)
table = pd.DataFrame(rows)
meta = {"counter": "panns_core.complexity", "clip_seconds": 10,
        "convention": "2 operations per multiply-accumulate, STFT, BatchNorm, ReLU and pooling modules included "
                      "(the official count_flops)"}
A.save_table(table, "table_XII", figures_dir, sources=[], profile=profile, caption=paper.TABLES["table_XII"],
             meta=meta)
display(table)
