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
run_name = "Cnn14"
config = {}  # any TrainConfig field
nproc_per_node = 1  # > 1: launch torchrun with that many processes (one per GPU)

# %% [markdown]
# # 03 · Train one system
#
# **What the paper did.** Trained each system with Adam (lr 1e-3), batch 32, balanced sampling and mixup for about 600k iterations, evaluating mAP on the eval set every 2,000 iterations.
#
# **What we do.** `panns_core.train.train(TrainConfig)` with any field of `TrainConfig` given in `config` (the profile's `train` defaults plus one run line). The run folder gets `config.json`, `statistics.jsonl` (one line per evaluation and split) and checkpoints; a killed run resumes exactly.
#
# **Where we differ, and why.** `best.pt` is chosen on the validation split, not on eval. Short profiles train for a few iterations on small data: their curves show the mechanics, not converged systems.

# %%
import os
from panns_core.stages import train_run
fields = {"progress": False, **config, "data_root": data_root, "run_dir": os.path.join(run_root, "train", run_name)}
run_dir = train_run(fields, nproc_per_node=nproc_per_node, source=f"profile {profile}, run {run_name}")
print("run folder:", run_dir)

# %% [markdown]
# ## Training curves of this run (train dashed, eval solid)

# %%
from panns_core import tables as T, plots as P
P.apply_style()
run = T.load_run(run_dir)
P.figure_training_curves([run], f"{run_name}")
sel = T.select_evaluation(run)
print(f"selected iteration {sel.iteration} ({sel.rule}): eval mAP {sel.metrics['mAP']:.4f}")
