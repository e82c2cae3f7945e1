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
run_name = "base"  # a run folder under <run_root>/train (the smoke profile's reference run)
checkpoint = "best"
split = "eval"
max_clips = None
batch_size = 32
device = "cpu"  # "cuda" on a GPU box (the pipeline passes the profile's train.device)

# %% [markdown]
# # 04 · Evaluate a trained system
#
# **What the paper did.** Reported mAP, mean AUC and d-prime on the eval set (per class with scikit-learn, then averaged).
#
# **What we do.** Load the run's `best.pt` (chosen on validation) with `torch.load(weights_only=True)` and score the whole eval index with `panns_core.evaluate`; the per-class result goes to `runs/<profile>/evaluate/<run>_<split>.json`.
#
# **Where we differ, and why.** Classes without a positive eval clip are excluded from the means and listed (scikit-learn would warn and return NaN). d-prime is computed from the mean AUC, as the official plots do.

# %%
import json, os
import pandas as pd
from panns_core.evaluate import build_model, evaluate, summary
from panns_core.study.artefacts import write_json
from panns_core.study import tables as T
from panns_core.study.notebook_inputs import pipeline_hint, stop
if not os.path.exists(os.path.join(run_root, "train", run_name, "checkpoints", f"{checkpoint}.pt")):
    stop(f"{run_root}/train/{run_name}/checkpoints/{checkpoint}.pt does not exist: train run {run_name!r} with "
         f"notebook 03_train_system first (or `{pipeline_hint(profile)} --only train_{run_name}`)")
run = T.load_run(os.path.join(run_root, "train", run_name))
ckpt = os.path.join(run.path, "checkpoints", f"{checkpoint}.pt")
classes_num = run.config["run_info"]["classes_num"]
model = build_model(ckpt, None, classes_num, {}).to(device)
index = os.path.join(data_root, "hdf5s", "indexes", f"{split}.h5")
result = evaluate(model, index, batch_size=batch_size, max_clips=max_clips, device=device,
                  resample_mode=run.config.get("resample_mode", "antialias"))
out = summary(result)
out.update(run=run_name, checkpoint=ckpt, split=split, index=index)
path = write_json(out, os.path.join(run_root, "evaluate", f"{run_name}_{split}.json"))
print(f"{run_name} on {split}: mAP {out['mAP']:.4f}  AUC {out['mAUC']:.4f}  d' {out['d_prime']:.3f} -> {path}")

# %% [markdown]
# Best and worst classes:

# %%
names = T.class_names(run, classes_num)
ap = pd.Series(out["AP"], index=names, name="AP").dropna().sort_values(ascending=False)
pd.concat([ap.head(5), ap.tail(5)]).to_frame()
