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
compare_to_paper = None  # None: only on AudioSet and its generated stand-in (see the profile's data_source)

# %% [markdown]
# # 10 · Tables IV-XI: AudioSet tagging results
#
# **What the paper did.** Table IV compares CNN14 with earlier systems; Tables V-X ablate CNN14 (balancing and mixup, hop size, embedding size, amount of training data, sample rate, mel bins); Table XI compares 15 architectures. The numbers were read off the eval-set curves at hand-picked iterations.
#
# **What we do.** Each table lists the paper's value, ours and the difference for mAP, AUC and d-prime. Our value is the eval row at the iteration with the best validation mAP (or the last evaluation); our runs are matched to the paper's rows on the table's key (e.g. `hop_size`), and extra settings of a profile are appended with blank paper columns. The code that builds the tables is below, in full; `panns_core.study.tables` only reads the run folders and picks the evaluation that stands for each run.
#
# **Where we differ, and why.** Short profiles ablate a smaller base model than CNN14 (the `our model` column says which) on generated data: compare directions and rankings, never absolute values. On your own data (`data_source` other than `audioset`/`generated`) the paper and difference columns are dropped: the metric columns are ours alone, and `trained on` names the training index each run read.

# %%
from panns_core.study.notebook_inputs import open_profile
here = open_profile(profile, run_root=run_root, figures_dir=figures_dir)
profile, run_root, figures_dir = here.profile, here.run_root, here.figures_dir
import math, os
import pandas as pd
from IPython.display import Markdown, display
from panns_core import paper
from panns_core.study import artefacts as A, tables as T
from panns_core.study.notebook_inputs import require_runs
runs = T.load_runs(run_root)
snapshot = T.read_profile_snapshot(run_root)
source = T.data_source_note(run_root)
if compare_to_paper is None:
    compare_to_paper = T.compare_to_paper_default(source["data_source"])
print(f"profile {profile}: {len(runs)} run(s) with statistics; data source: {source['data_source']}; "
      f"paper columns: {'yes' if compare_to_paper else 'no'}")
require_runs(runs, run_root, profile)
reference = snapshot.get("reference_run")
selections = {}  # run name -> the evaluation that stands for it (best validation mAP, else the last)
for name, run in runs.items():
    try:
        selections[name] = T.select_evaluation(run)
    except T.StatisticsError as exc:
        print(f"skipping {name}: {exc}")

# %% [markdown]
# ## Findings: which of the paper's claims hold in these runs
# Computed now from the run folders by `panns_core.study.findings` (the rules are printed with the table). The
# transfer rows are filled once the transfer notebook has run: `18_findings` (after `20_transfer_task`) writes the
# complete table to `runs/<profile>/findings.json`, and the report opens with it.

# %%
from panns_core.study.findings import compute_findings, findings_markdown
findings_path = os.path.join(run_root, "findings.json")
display(Markdown(findings_markdown(findings_path if os.path.exists(findings_path) else compute_findings(run_root),
                                   heading="### Findings")))

# %% [markdown]
# ## The budget of every run, and what the profile dropped
# Each run's training budget (iterations x batch, from its `config.json`) and the iteration whose evaluation stands
# for it in the tables below; ablations are compared with the reference at the same iteration. The profile's
# `dropped` entries list the paper's rows it leaves out, and why (their findings read "not measured at this scale").

# %%
budget = pd.DataFrame([{"run": name, "model": T.model_name(run.config), "iterations": run.config.get("iterations"),
                        "batch": run.config.get("batch_size"), "learning rate": run.config.get("learning_rate"),
                        "eval clips per split": run.config.get("max_eval_clips"),
                        "selected iteration": selections[name].iteration if name in selections else None}
                       for name, run in runs.items()])
display(budget)
dropped = snapshot.get("dropped") or {}
display(Markdown("\n".join(f"* **{what}**: {why}" for what, why in dropped.items()) if dropped
                 else "Nothing dropped: this profile lists every paper row it can train."))

# %% [markdown]
# ## One row per run, matched to the paper's row on the table's key
# Each ablation table has key columns (`T.TABLE_KEYS`, e.g. `hop_size` for Table VI) computed from a run's
# `config.json`. A paper row with no matching run keeps blank "ours" columns; a run that matches no paper row
# (an extra setting of the profile) is appended with blank paper columns.

# %%
def run_columns(table_id, run):
    """Which run a row shows, and the training index it actually read."""
    columns = {} if table_id == "table_XI" else {"our model": T.model_name(run.config) if run else None}
    columns.update(run=run.name if run else None, **{"trained on": T.trained_on(run.config) if run else None},
                   iteration=selections[run.name].iteration if run else None)
    return columns


def ablation_table(table_id):
    group = {v: k for k, v in T.GROUP_TABLES.items()}[table_id]
    keys = T.TABLE_KEYS[table_id]
    key_names = [k for k, _ in keys]
    members = [r for r in T.group_runs(runs, group, reference) if r.name in selections]
    ours = [({k: f(r.config) for k, f in keys}, r) for r in members]
    normalise = lambda v: round(float(v), 6) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
    key_of = lambda row: tuple(normalise(row.get(k)) for k in key_names)
    rows, used = [], set()
    for prow in (T.paper_rows(table_id) if compare_to_paper else []):
        matches = [i for i, (k, _) in enumerate(ours) if key_of(k) == key_of(prow) and i not in used] or [None]
        for i in matches:
            run = ours[i][1] if i is not None else None
            used.add(i)
            rows.append({**{k: prow.get(k) for k in key_names}, **run_columns(table_id, run),
                         **T.metric_columns(prow, selections[run.name] if run else None)})
    for i, (k, run) in enumerate(ours):
        if i not in used:
            rows.append({**k, **run_columns(table_id, run),
                         **T.metric_columns(None, selections[run.name], compare_to_paper=compare_to_paper)})
    df = T.integer_columns(pd.DataFrame(rows))
    if table_id == "table_XI" and len(df):
        df.insert(1, "paper name", [paper.paper_name(m) for m in df["model"]])
    return df, [r for _, r in ours]

# %% [markdown]
# ## Table IV: the literature as printed, then ours
# Our CNN14 run stands beside the paper's CNN14, and the best system of the profile is added, chosen only
# among runs scored on the reference run's eval clips (mAPs on different clips are not comparable).

# %%
def table_iv():
    rows = []
    for prow in (paper.TABLE_IV if compare_to_paper else []):
        candidates = [n for n in selections if T.model_name(runs[n].config) == prow.get("model")]
        name = reference if reference in candidates else (candidates[0] if candidates else None)
        sel = selections.get(name)
        rows.append({"system": prow["system"], "run": name, "iteration": sel.iteration if sel else None,
                     **T.metric_columns(prow, sel)})
    ref_sha = selections[reference].eval_set_sha256 if reference in selections else None
    comparable = [s for s in selections.values() if ref_sha is None or s.eval_set_sha256 == ref_sha]
    if comparable:
        best = max(comparable, key=lambda s: -1.0 if math.isnan(s.metrics["mAP"]) else s.metrics["mAP"])
        model = paper.paper_name(T.model_name(runs[best.run].config))
        rows.append({"system": f"Ours: best of this profile ({model})", "run": best.run, "iteration": best.iteration,
                     **T.metric_columns(None, best, compare_to_paper=compare_to_paper)})
    return T.integer_columns(pd.DataFrame(rows)), list(runs.values())

# %% [markdown]
# ## Save each table (CSV, Markdown, LaTeX) with its provenance record

# %%
def save(table_id, df, members):
    meta = {**T.selection_meta([selections[r.name] for r in members if r.name in selections]), **source,
            "compare_to_paper": compare_to_paper}
    A.save_table(df, table_id, figures_dir, sources=[r.statistics_path for r in members], profile=profile,
                 caption=paper.TABLES[table_id], meta=meta)
    display(Markdown(f"### {table_id}: {paper.TABLES[table_id]}"))
    display(df)

save("table_IV", *table_iv())
for table_id in ("table_V", "table_VI", "table_VII", "table_VIII", "table_IX", "table_X", "table_XI"):
    save(table_id, *ablation_table(table_id))
