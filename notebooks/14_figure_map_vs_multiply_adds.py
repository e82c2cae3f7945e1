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
show_paper = True

# %% [markdown]
# # 14 · Figure 5: mAP vs multiply-adds
#
# **What the paper did.** Plotted each architecture's mAP against its multiply-adds, one colour per family: CNN14 and the Wavegram-Logmel-CNN give the best trade-off, MobileNets the cheapest reasonable one.
#
# **What we do.** Our architecture runs (filled markers) at their counted multiply-adds (`table_XII.csv` when stage 11 ran, else counted here), with the paper's 15 points (hollow) for orientation.
#
# **Where we differ, and why.** Short profiles train a few architectures briefly on generated data: their mAPs are not comparable with the paper's.

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
reference = snapshot.get("reference_run")
members = T.group_runs(runs, "architectures", reference)
xii_csv = os.path.join(figures_dir, "table_XII.csv")
xii = pd.read_csv(xii_csv).set_index("model") if os.path.exists(xii_csv) else None
rows = []
for run in members:
    model = T.model_name(run.config)
    if xii is not None and model in xii.index:
        madds = float(xii.loc[model, "mult-adds ours (1e9)"]) * 1e9
    else:
        from panns_core.complexity import count_multiply_adds
        from panns_core.models import create_model
        m = create_model(model)
        madds = count_multiply_adds(m, m.audio_config.clip_samples())
    rows.append({"model": model, "run": run.name, "mult_adds": madds, "mAP": T.select_evaluation(run).metrics["mAP"]})
ours = pd.DataFrame(rows, columns=["model", "run", "mult_adds", "mAP"])
display(ours)
fig = P.figure_map_vs_multiply_adds(ours, show_paper=show_paper)
A.save_figure(fig, "fig_5", figures_dir, sources=[r.statistics_path for r in members] + ([xii_csv] if xii is not None else []),
              profile=profile, caption="mAP vs multiply-adds", meta=source)
