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
data_source = None
label = ""

# %% [markdown]
# # 19 · Report
#
# Builds `runs/<profile>/report.html`: every table and figure of the manifest, with the profile and data source stated. The pipeline converts the executed notebook with nbconvert (code hidden, images embedded).
#
# **What the paper did.** Reported its results in Tables IV-XVIII and Figures 3-12 (AudioSet tagging, complexity, transfer), one number per system and setting, and released its source code and pretrained models.
#
# **What we do.** Open with the findings (a scope paragraph, a forest plot with one line per claim, the table of effects and intervals), then collect every table and figure the owner notebooks saved in the manifest, each with the runs, profile and data source it came from.
#
# **Where we differ, and why.** The default profile tests the paper's claims on a generated corpus within a CPU budget, and the smoke and tiny profiles only check the machinery: their reports say which mechanisms act on their data, not the paper's AudioSet values (which appear for reference, never subtracted from numbers on other data).

# %%
from panns_core.study.notebook_inputs import open_profile
here = open_profile(profile, run_root=run_root, figures_dir=figures_dir, data_source=data_source)
profile, run_root, figures_dir, data_source = here.profile, here.run_root, here.figures_dir, here.data_source
import os
from IPython.display import HTML, Markdown, display
from panns_core.study import report as R
from panns_core.study.notebook_inputs import pipeline_hint, stop
if not os.path.exists(os.path.join(run_root, "manifest.json")):
    stop(f"{run_root}/manifest.json does not exist: the pipeline writes it after the table and figure notebooks "
         f"(`{pipeline_hint(profile)}`, or only the last step: `{pipeline_hint(profile)} --only manifest`)")
manifest = R.read_manifest(run_root)
display(Markdown(R.header_markdown(manifest, data_source, label)))

# %% [markdown]
# The report opens with the findings (`runs/<profile>/findings.json`, written by `18_findings`): what the verdicts
# do and do not say, one line per claim (effect and 95 % interval, the paper's direction to the right), then the
# table with the designs, the paper's numbers and ours.

# %%
from panns_core.study.findings import findings_markdown, forest_plot, scope_markdown
findings_path = os.path.join(run_root, "findings.json")
if os.path.exists(findings_path):
    display(Markdown("## Findings\n\n" + scope_markdown(findings_path)))
    import matplotlib
    matplotlib.use("Agg")
    forest_png = os.path.join(figures_dir, "findings_forest.png")  # drawn again: it must match findings.json
    os.makedirs(figures_dir, exist_ok=True)
    forest_plot(findings_path).savefig(forest_png, dpi=120, bbox_inches="tight")
    display(HTML(R.image_html(forest_png, "One line per claim of the paper: the mean paired difference between our "
                                          "arms (mAP, or accuracy for transfer) and its 95 % interval; right of 0 "
                                          "is the paper's direction")))
    display(Markdown(findings_markdown(findings_path, heading="### The claims, one by one", scope=False)))
    import glob
    for png in sorted(glob.glob(os.path.join(figures_dir, "findings_transfer_*.png"))):
        task = os.path.basename(png)[len("findings_transfer_"):-len(".png")]
        display(HTML(R.image_html(png, f"Transfer to {task}: mean and std over seeds per strategy "
                                       f"(runs/{profile}/transfer/{task}/results.csv)")))
else:
    display(Markdown("## Findings\n\nNot computed in this profile: list `18_findings` after the transfer notebooks "
                     f"in the profile, or run `python -m panns_core.study.findings {run_root}`."))

# %%
for aid, entry in manifest["artefacts"].items():
    if entry["kind"] == "table":
        display(Markdown(R.artefact_markdown(aid, entry)))
    else:
        png = next(p for p in entry["paths"] if p.endswith(".png"))
        display(Markdown(f"## {aid}"))
        display(HTML(R.image_html(png, entry.get("caption", ""))))
        display(Markdown(R.provenance_line(entry)))

# %%
evaluation = R.evaluation_markdown(run_root)
if evaluation:
    display(Markdown(evaluation))
display(Markdown(R.missing_markdown(manifest)))
