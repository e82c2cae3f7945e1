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
reference_run = None         # default: the profile's reference_run (from runs/<profile>/profile.json)


# %% [markdown]
# ## Findings: which of the paper's claims hold at this scale
#
# **What the paper did.** Kong et al. state their findings in prose around Tables V-XI and Figures 4-11: balanced
# sampling and mixup help, log-mel mixup beats waveform mixup, more data helps, 32 kHz > 16 kHz > 8 kHz, 64 mel bins
# are a good trade-off against 32/128, a 10-ms hop is best, a larger embedding helps, deeper CNNs are better,
# MobileNets trade accuracy for far fewer multiply-adds, Wavegram-Logmel-CNN is best, and pretraining on AudioSet helps
# transfer, most when the target task has few clips.
#
# **What we do.** `panns_core.study.findings` turns each claim into a comparison between runs of this profile, found by
# their `config.json` settings (not their names), scored as the tables score them (eval mAP at the best-validation
# iteration, all compared runs at the same budget), and gives a verdict by a stated rule: `holds` when every step of
# the claimed order beats the seed-to-seed spread of the reference system, `does not hold` when the runs exist and a
# step does not, `not measured at this scale` when the profile has no such runs. The transfer claims read the few-shot
# curves of `20_transfer_task` (fine-tune vs scratch, mean and std over seeds). The result is
# `runs/<profile>/findings.json`; the report opens with this table.
#
# **Where we differ.** The verdicts are about *this* profile's data and budget (a generated corpus and short CPU runs
# in the default and smoke profiles), not about AudioSet; a claim whose runs the profile drops is "not measured",
# never guessed. The paper gives no spread; ours is the std over the reference system's seeds (or, with one seed, of
# its last three evaluations).
#

# %%
from panns_core.study.notebook_inputs import open_profile
here = open_profile(profile, run_root=run_root, figures_dir=figures_dir)
profile, run_root, figures_dir = here.profile, here.run_root, here.figures_dir
import json
import os

import pandas as pd
from IPython.display import Markdown
from panns_core.study.findings import findings_markdown, write_findings

if reference_run is None and os.path.exists(os.path.join(run_root, "profile.json")):
    with open(os.path.join(run_root, "profile.json")) as f:
        reference_run = json.load(f).get("reference_run")
findings_path = write_findings(run_root, reference_run)
with open(findings_path) as f:
    findings = json.load(f)
print(f"{findings_path}: reference run {findings['reference_run']}; {findings['verdicts']}")
print(f"spread {findings['spread']['value']}: {findings['spread']['rule']}")

# %%
display(Markdown(findings_markdown(findings, heading="### Findings")))

# %% [markdown]
# ### Transfer to classes the backbone never heard
#
# Mean and std over seeds of the test accuracy per strategy and training clips per class (every task under
# `runs/<profile>/transfer/`; the default profile's `corpus_heldout` task holds five sound classes that its corpus
# does not). The pretraining rows above are computed from these numbers. Tasks beyond the paper's six get a figure
# `figures/<profile>/findings_transfer_<task>.png`, which the report shows under the findings.

# %%
from panns_core.transfer.fewshot import read_results, summarise

transfer_root = os.path.join(run_root, "transfer")
tasks = sorted(d for d in (os.listdir(transfer_root) if os.path.isdir(transfer_root) else [])
               if os.path.exists(os.path.join(transfer_root, d, "results.csv")))
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from panns_core.paper import TRANSFER_TASKS
from panns_core.transfer.report import fewshot_figure

for task in tasks:
    results = read_results(run_root, task)
    summary = summarise(results)
    if task not in TRANSFER_TASKS:  # the paper's tasks have their own figures (Figs. 6-11, notebook 21)
        fig = fewshot_figure(task, results, title=f"{task}: accuracy vs training clips per class")
        os.makedirs(figures_dir, exist_ok=True)
        fig.savefig(os.path.join(figures_dir, f"findings_transfer_{task}.png"), dpi=120, bbox_inches="tight")
        display(fig)
        plt.close(fig)
    table = summary.pivot_table(index="strategy", columns="shots", values="mean", sort=False)
    spread = summary.pivot_table(index="strategy", columns="shots", values="std", sort=False)
    print(task, "(mean; std below)")
    display(table.round(3))
    display(spread.round(3))
if not tasks:
    print("no transfer results in this profile")
