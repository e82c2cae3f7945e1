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

# %% [markdown]
# # 00 · Environment and data overview
#
# **What the paper did.** Trained on AudioSet (527 classes; 1,934,187 of 2,063,839 training clips and 18,887 of 20,371 eval clips downloaded in 2018), 10-s clips at 32 kHz, on one V100 for about 3 days per system.
#
# **What we do.** Record the software and hardware this run used, the profile's runs, and what is already on disk, so every later number can be traced to an environment.
#
# **Where we differ, and why.** The smoke profile replaces AudioSet by a generated AudioSet-shaped corpus (offline, minutes on a CPU). Its numbers check the code, they are not paper-scale results.

# %%
import json, os
import pandas as pd
from panns_core.study.report import environment_info
from panns_core.study.artefacts import write_json
env = environment_info()
write_json(env, os.path.join(run_root, "environment.json"))
pd.Series(env, name="value").to_frame()

# %% [markdown]
# ## The profile's training runs
# One line of the profile per run; `groups` names the ablation (table / figure panel) each run feeds.

# %%
from panns_core.study.tables import read_profile_snapshot
snap = read_profile_snapshot(run_root)
pd.DataFrame([{"run": k, **{kk: vv for kk, vv in (v or {}).items()}} for k, v in (snap.get("runs") or {}).items()])

# %% [markdown]
# ## Data on disk

# %%
for sub in ("metadata", "audios", "hdf5s/waveforms", "hdf5s/indexes"):
    path = os.path.join(data_root, sub)
    n = len(os.listdir(path)) if os.path.isdir(path) else 0
    print(f"{path:<45} {'present' if n else 'absent (created by the next stages)'} ({n} entries)")
