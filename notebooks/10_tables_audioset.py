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

# %% [markdown]
# # 10 · Tables IV-XI: AudioSet tagging results
#
# **What the paper did.** Table IV compares CNN14 with earlier systems; Tables V-X ablate CNN14 (balancing and mixup, hop size, embedding size, amount of training data, sample rate, mel bins); Table XI compares 15 architectures. The numbers were read off the eval-set curves at hand-picked iterations.
#
# **What we do.** Each table lists the paper's value, ours and the difference for mAP, AUC and d-prime. Our value is the eval row at the iteration with the best validation mAP (or the last evaluation); our runs are matched to the paper's rows on the table's key (e.g. `hop_size`), and extra settings of a profile are appended with blank paper columns.
#
# **Where we differ, and why.** Short profiles ablate a smaller base model than CNN14 (the `our model` column says which) on generated data: compare directions and rankings, never absolute values.

# %%
import json, os
import pandas as pd
from IPython.display import Markdown, display
from panns_core import tables as T, plots as P, artefacts as A
P.apply_style()
runs = T.load_runs(run_root)
snapshot = T.read_profile_snapshot(run_root)
source = T.data_source_note(run_root)
print(f"profile {profile}: {len(runs)} run(s) with statistics; data source: {source['data_source']}")

# %%
from panns_core import paper
def save(tid, result):
    meta = {**result.meta, **source}
    A.save_table(result.df, tid, figures_dir, sources=result.sources, profile=profile,
                 caption=paper.TABLES[tid], meta=meta)
    display(Markdown(f"### {tid}: {paper.TABLES[tid]}"))
    display(result.df)

save("table_IV", T.table_iv(run_root, runs=runs))
for tid in ("table_V", "table_VI", "table_VII", "table_VIII", "table_IX", "table_X", "table_XI"):
    save(tid, T.ablation_table(tid, run_root, runs=runs))
