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
# ## Findings: the paper's claims, each an effect with its interval
#
# **What the paper did.** Kong et al. state their findings in prose around Tables V-XVIII and Figures 4-11: with data
# balancing the system converges faster and reaches a higher mAP (0.416 vs 0.375); mixup helps, especially on the 20k
# balanced subset, and on the log-mel more than on the waveform; the amount of training data matters (50 % of it:
# 5.8 % lower mAP); 16 kHz is within 1 % of 32 kHz while 8 kHz is 5.8 % lower (the 4-8 kHz band is useful); more mel
# bins perform better (32 < 64 < 128); mAP rises as the hop shrinks (320 best); mAP rises with the embedding size;
# deeper CNNs are better (CNN6 < CNN10 < CNN14); MobileNets are lightweight, with far fewer multiply-adds and
# parameters; Wavegram-Logmel-CNN reaches the best mAP; a fine-tuned PANN beats training from scratch on all six
# transfer tasks, and on ESC-50 and GTZAN the frozen PANN is best with fewer than 10 clips per class, fine-tuning with
# more. The paper reports one number per system and setting, without seeds or intervals.
#
# **What we do.** `panns_core.study.findings` turns each claim into a comparison between *arms* of this profile
# (runs that differ in the claim's setting only, found by their `config.json`), trained with the same seeds. Every
# run is scored on the whole eval split at the same iteration; the effect is the mean paired difference over seeds,
# signed so that positive is what the paper says, with a 95 % t-interval. The verdict follows the interval:
# `supported` (above 0), `contradicted` (below 0), `inconclusive` (contains 0), or `not tested here` with the reason
# (a run is missing, fewer than three paired seeds, or the profile says why the data or budget cannot test it). The
# transfer claims pair the strategies by seed on the held-out classes of `20_transfer_task`. The result is
# `runs/<profile>/findings.json`; the report opens with the plot and the table below.
#
# **Where we differ.** The verdicts are about *this* profile's data and budget, not about AudioSet: on the generated
# corpus the arms run a few hundred iterations of CNN6 on data built so that each mechanism can act, and the
# paper's AudioSet numbers are printed for reference only, never subtracted from ours.

# %%
from panns_core.study.notebook_inputs import open_profile
here = open_profile(profile, run_root=run_root, figures_dir=figures_dir)
profile, run_root, figures_dir = here.profile, here.run_root, here.figures_dir
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from IPython.display import Markdown, display
from panns_core.study.findings import findings_markdown, forest_plot, scope_markdown, write_findings

if reference_run is None and os.path.exists(os.path.join(run_root, "profile.json")):
    with open(os.path.join(run_root, "profile.json")) as f:
        reference_run = json.load(f).get("reference_run")
findings_path = write_findings(run_root, reference_run)
with open(findings_path) as f:
    findings = json.load(f)
print(f"{findings_path}: reference run {findings['reference_run']}; {findings['verdicts']}")
display(Markdown(scope_markdown(findings)))

# %% [markdown]
# ### One line per claim: effect and 95 % interval, the paper's direction to the right
# Colour: supported (green), contradicted (orange), inconclusive (grey); claims not tested here have no line. The
# effect is a difference between our own arms (mAP, or accuracy for the transfer claims), never a difference from
# the paper's number.

# %%
fig = forest_plot(findings)
os.makedirs(figures_dir, exist_ok=True)
fig.savefig(os.path.join(figures_dir, "findings_forest.png"), dpi=120, bbox_inches="tight")
display(fig)
plt.close(fig)

# %%
display(Markdown(findings_markdown(findings, heading="### Findings", scope=False)))

# %% [markdown]
# ### Transfer to classes the backbone never heard
#
# Mean and std over seeds of the test accuracy per strategy and training clips per class (every task under
# `runs/<profile>/transfer/`; the default profile's `corpus_heldout` task holds five sound classes that its corpus
# does not). The transfer rows above pair these runs by seed. Tasks beyond the paper's six get a figure
# `figures/<profile>/findings_transfer_<task>.png`, which the report shows under the findings.

# %%
from panns_core.paper import TRANSFER_TASKS
from panns_core.transfer.fewshot import read_results, summarise
from panns_core.transfer.report import fewshot_figure

transfer_root = os.path.join(run_root, "transfer")
tasks = sorted(d for d in (os.listdir(transfer_root) if os.path.isdir(transfer_root) else [])
               if os.path.exists(os.path.join(transfer_root, d, "results.csv")))
for task in tasks:
    results = read_results(run_root, task)
    summary = summarise(results)
    if task not in TRANSFER_TASKS:  # the paper's tasks have their own figures (Figs. 6-11, notebook 21)
        fig = fewshot_figure(task, results, title=f"{task}: accuracy vs training clips per class")
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
