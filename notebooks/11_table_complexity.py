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
models = None  # None: the 15 architectures; or a list of class names
with_macs = True  # also count plain multiply-accumulates (a second pass per model)

# %% [markdown]
# # 11 · Table XII: multiply-adds and parameters
#
# **What the paper did.** Reported multiply-adds per 10-s clip and parameter counts of the 15 architectures, computed by the authors' `count_flops` counter.
#
# **What we do.** Count them with `panns_core.complexity` on a 10-s clip at each model's own sample rate, with the paper's convention (2 operations per multiply-accumulate; STFT-as-convolution, BatchNorm, ReLU and pooling modules included; trainable parameters only). No training is needed.
#
# **Where we differ, and why.** Nothing: all 15 rows match the paper to the printed precision. Plain MACs are about half the paper's 'multiply-adds' (see `docs/`), which matters when comparing with other papers.

# %%
from IPython.display import display
from panns_core import tables as T, artefacts as A, paper
result = T.table_xii(models, with_macs=with_macs)
A.save_table(result.df, "table_XII", figures_dir, sources=[], profile=profile, caption=paper.TABLES["table_XII"],
             meta=result.meta)
display(result.df)
