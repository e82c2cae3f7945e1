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


# %% [markdown]
# # 21 · Tables XIII-XVIII and Figures 6-11: transfer results, paper beside ours
#
# **You will learn** to read a few-shot curve: score against training clips per class, one line per
# strategy, with the spread over folds and seeds, and to compare it with the paper's figure for that task.
#
# **What the paper did.** One table per task with the previous state of the art and its four strategies
# (training from scratch, fine-tuning, Freeze_L1, Freeze_L3), and one figure per task of the score against
# the number of training clips per class: ESC-50 Table XIII / Fig. 6, DCASE 2019 Task 1 XIV / 7, DCASE 2018
# Task 2 XV / 8, MSoS XVI / 9, GTZAN XVII / 10, RAVDESS XVIII / 11. It reports, e.g., that on ESC-50 the
# frozen PANN does best with fewer than 10 clips per class and fine-tuning with more.
#
# **What we do.** Read `runs/<profile>/transfer/<task>/results.csv` (written by `20_transfer_task`),
# average the all-clips runs over folds and seeds, and print them beside the paper's row; the figures show
# the mean and a one-standard-deviation band over folds and seeds, drawn here and saved under
# `figures/<profile>/`. Nothing is trained here.
#
# **Where we differ, and why.** "Previous SoTA" is a literature number (no "ours"). Tasks a profile does not
# run are left out. In the CPU profiles the data are generated stand-ins: their numbers are not comparable
# with the paper's.

# %%
import matplotlib.pyplot as plt
from IPython.display import display
from panns_core.study.artefacts import save_figure, save_table
from panns_core.paper import TRANSFER_TASKS
from panns_core.transfer.fewshot import read_results, task_dir
from panns_core.transfer.report import fewshot_figure  # shared with 18_findings

# %% [markdown]
# ## Each table: paper, ours, ours - paper
# `ours` is the mean over folds and seeds with all training clips of each strategy; a strategy not run,
# and the previous state of the art (a literature number we do not rerun), are left empty.

# %%
import numpy as np
import pandas as pd
from panns_core.paper import TRANSFER
from panns_core.transfer.fewshot import ALL, final_scores

COLUMNS = {"sota": "previous SoTA", "scratch": "scratch", "finetune": "fine-tune",
           "freeze_l1": "Freeze_L1", "freeze_l3": "Freeze_L3"}


def transfer_table(task, results):
    paper_row = TRANSFER[task]
    ours = final_scores(results)
    rows = [{"": who, **{label: np.nan if values.get(k) is None else float(values[k]) for k, label in COLUMNS.items()}}
            for who, values in (("paper", paper_row), ("ours", ours))]
    rows.append({"": "ours - paper", **{label: rows[1][label] - rows[0][label] for label in COLUMNS.values()}})
    table = pd.DataFrame(rows)
    table.insert(1, "metric", paper_row["metric"])
    return table


def describe_runs(results):
    """Provenance for the captions: folds, seeds, shot counts."""
    shots = sorted(results["shots"].astype(str).unique(), key=lambda s: (s == ALL, int(s) if s != ALL else 0))
    return (f"folds {','.join(sorted(results['fold'].astype(str).unique()))}; "
            f"seeds {','.join(map(str, sorted(results['seed'].unique())))}; shots {','.join(shots)}")


# %%
import os
from panns_core.study.notebook_inputs import open_profile

here = open_profile(profile, run_root=run_root, figures_dir=figures_dir)
profile, run_root, figures_dir = here.profile, here.run_root, here.figures_dir
records = {}
for task, (table_id, fig_id, name) in TRANSFER_TASKS.items():
    results = read_results(run_root, task)
    if results is None:
        print(f"{name}: not run in profile {profile}; {table_id} and {fig_id} are left missing")
        continue
    sources = [os.path.join(task_dir(run_root, task), "results.csv")]
    note = describe_runs(results)
    table = transfer_table(task, results)
    records[table_id] = save_table(table, table_id, figures_dir, sources=sources, profile=profile,
                                   caption=f"{name}: paper vs ours ({note})")
    fig = fewshot_figure(task, results, title=name)
    records[fig_id] = save_figure(fig, fig_id, figures_dir, sources=sources, profile=profile,
                                  caption=f"{name}: score vs training clips per class ({note})")
    display(fig)  # shown here, then closed: one figure per task
    plt.close(fig)
    display(table)
sorted(records)

# %% [markdown]
# **What to notice.** Compare the order of the lines at one clip per class with their order at all clips:
# that crossing is what the paper's Figs. 6-11 show for most tasks.
#
# ## Questions
# 1. The bands are one standard deviation over folds and seeds. Where are they widest, and why?
# 2. Which of the paper's transfer claims can a figure on generated stand-ins support, and which not?
