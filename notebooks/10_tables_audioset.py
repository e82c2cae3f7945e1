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
compare_to_paper = None  # None: the paper's numbers on AudioSet (with differences) and the generated corpus (beside ours)

# %% [markdown]
# # 10 · Tables IV-XI: AudioSet tagging results
#
# **What the paper did.** Table IV compares CNN14 with earlier AudioSet tagging systems; Tables V-X vary one setting
# of CNN14 at a time (data balancing and mixup, hop size, embedding size, amount of training data, sample rate, mel
# bins); Table XI compares 15 architectures. Each row gives mAP, AUC and d-prime on the AudioSet eval set.
#
# **What we do.** One table per paper table, from the run folders (the code is below, in full; `panns_core.study.tables`
# only reads the runs and picks the evaluation that stands for each run: the eval row at the best validation mAP when
# a run logged a validation split, else its last evaluation). How the paper's numbers appear depends on the data:
#
# * **AudioSet** (the paper's data): our runs are matched to the paper's rows on the table's key (e.g. `hop_size`) and
#   each metric has a paper, an ours and a difference column.
# * **The generated corpus**: the paper's rows are printed first, for reference, then ours in rows of their own, in
#   separate columns; no row holds both and nothing is subtracted, because the numbers come from different data
#   (and, in the ablations, from a different model: CNN14 in the paper, the profile's model here).
# * **Your own data** (`data_source` other than `audioset`/`generated`): our columns only; `trained on` names the
#   training index each run read.
#
# **Where we differ, and why.** Short profiles train a smaller model than CNN14 for a few hundred iterations on
# generated data, several seeds per setting: compare settings with each other in `findings.json` (paired by seed,
# with intervals), not with the paper's values.

# %%
from panns_core.study.notebook_inputs import open_runs
here = open_runs(profile, run_root=run_root, figures_dir=figures_dir)
profile, run_root, figures_dir = here.profile, here.run_root, here.figures_dir
runs, snapshot, source = here.runs, here.snapshot, here.source
import math, os
import pandas as pd
from IPython.display import Markdown, display
from panns_core import paper
from panns_core.study import artefacts as A, tables as T
mode = T.paper_mode(source["data_source"], compare_to_paper)
ours_label = "ours (generated corpus)" if source["data_source"] == "generated" else f"ours ({source['data_source']})"
print(f"the paper's numbers: {mode}")
reference = snapshot.get("reference_run")
selections = {}  # run name -> the evaluation that stands for it (best validation mAP, else the last)
for name, run in runs.items():
    try:
        selections[name] = T.select_evaluation(run)
    except T.StatisticsError as exc:
        print(f"skipping {name}: {exc}")

# %% [markdown]
# ## Findings: the paper's claims in these runs, each an effect with its interval
# Computed now from the run folders by `panns_core.study.findings` (the method is printed with the table). The
# transfer rows are filled once the transfer notebook has run: `18_findings` (after `20_transfer_task`) writes the
# complete table to `runs/<profile>/findings.json`, and the report opens with it.

# %%
from panns_core.study.findings import compute_findings, findings_markdown
display(Markdown(findings_markdown(compute_findings(run_root), heading="### Findings")))

# %% [markdown]
# ## The budget of every run, and what the profile dropped
# Each run's training budget (iterations x batch, from its `config.json`) and the iteration whose evaluation stands
# for it in the tables below (the findings compare the arms of a claim at their last common iteration instead). The
# profile's `dropped` entries list what it leaves out, and why (an entry named after a claim is its "not tested here"
# reason).

# %%
budget = pd.DataFrame([{"run": name, "model": T.model_name(run.config), "seed": run.config.get("seed"),
                        "iterations": run.config.get("iterations"),
                        "batch": run.config.get("batch_size"), "learning rate": run.config.get("learning_rate"),
                        "eval clips per split": run.config.get("max_eval_clips"),
                        "selected iteration": selections[name].iteration if name in selections else None}
                       for name, run in runs.items()])
display(budget)
dropped = snapshot.get("dropped") or {}
display(Markdown("\n".join(f"* **{what}**: {why}" for what, why in dropped.items()) if dropped
                 else "Nothing dropped: this profile lists every paper row it can train."))

# %% [markdown]
# ## One row per run; the paper's rows matched to ours only on the paper's own data
# Each ablation table has key columns (`T.TABLE_KEYS`, e.g. `hop_size` for Table VI) computed from a run's
# `config.json`. On AudioSet a paper row with no matching run keeps blank "ours" columns and a run that matches no
# paper row (an extra setting of the profile) is appended with blank paper columns. On other data the paper's rows
# (CNN14 in Tables V-X) come first and ours follow, each in its own columns.

# %%
def run_columns(table_id, run):
    """Which run a row shows, its seed, and the training index it actually read."""
    columns = {} if table_id == "table_XI" else {"model": T.model_name(run.config) if run else None}
    columns.update(run=run.name if run else None, seed=run.config.get("seed") if run else None,
                   **{"trained on": T.trained_on(run.config) if run else None},
                   iteration=selections[run.name].iteration if run else None)
    return columns


def paper_model(table_id, prow):
    return paper.paper_name(prow["model"]) if table_id == "table_XI" else paper.paper_name(prow.get("model", "Cnn14"))


def ablation_table(table_id):
    group = {v: k for k, v in T.GROUP_TABLES.items()}[table_id]
    keys = T.TABLE_KEYS[table_id]
    key_names = [k for k, _ in keys]
    members = [r for r in T.group_runs(runs, group, reference) if r.name in selections]
    ours = [({k: f(r.config) for k, f in keys}, r) for r in members]
    rows = []
    if mode == T.DIFFERENCE:  # the paper's data: our runs in the paper's rows, with the difference
        normalise = lambda v: round(float(v), 6) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
        key_of = lambda row: tuple(normalise(row.get(k)) for k in key_names)
        used = set()
        for prow in T.paper_rows(table_id):
            matches = [i for i, (k, _) in enumerate(ours) if key_of(k) == key_of(prow) and i not in used] or [None]
            for i in matches:
                run = ours[i][1] if i is not None else None
                used.add(i)
                rows.append({**{k: prow.get(k) for k in key_names}, **run_columns(table_id, run),
                             **T.metric_columns(prow, selections[run.name] if run else None, mode=mode)})
        extra = [(k, run) for i, (k, run) in enumerate(ours) if i not in used]
    else:
        if mode == T.REFERENCE:  # other data: the paper's rows for reference, then ours, never in one row
            for prow in T.paper_rows(table_id):
                rows.append({"source": "paper (AudioSet)", **{k: prow.get(k) for k in key_names},
                             **({} if table_id == "table_XI" else {"model": paper_model(table_id, prow)}),
                             **T.metric_columns(prow, None, mode=mode, data_label=ours_label)})
        extra = ours
    for k, run in extra:
        rows.append({**({"source": ours_label} if mode == T.REFERENCE else {}), **k, **run_columns(table_id, run),
                     **T.metric_columns(None, selections[run.name], mode=mode, data_label=ours_label)})
    df = T.integer_columns(pd.DataFrame(rows), ("iteration", "seed"))
    if table_id == "table_XI" and len(df):
        df.insert(1 + (mode == T.REFERENCE), "paper name", [paper.paper_name(m) for m in df["model"]])
    return df, [r for _, r in ours]

# %% [markdown]
# ## Table IV: the literature as printed, then ours
# On AudioSet our CNN14 run stands beside the paper's CNN14 (with the difference); on other data the literature is
# printed for reference and ours follows in its own columns. The best system of the profile is added, chosen only
# among runs scored on the reference run's eval clips (mAPs on different clips are not comparable).

# %%
def table_iv():
    rows = []
    for prow in (paper.TABLE_IV if mode != T.OURS_ONLY else []):
        if mode == T.DIFFERENCE:
            candidates = [n for n in selections if T.model_name(runs[n].config) == prow.get("model")]
            name = reference if reference in candidates else (candidates[0] if candidates else None)
            sel = selections.get(name)
            rows.append({"system": prow["system"], "run": name, "iteration": sel.iteration if sel else None,
                         **T.metric_columns(prow, sel, mode=mode)})
        else:
            rows.append({"system": prow["system"], "source": "paper (AudioSet)", "run": None, "iteration": None,
                         **T.metric_columns(prow, None, mode=mode, data_label=ours_label)})
    ref_sha = selections[reference].eval_set_sha256 if reference in selections else None
    comparable = [s for s in selections.values() if ref_sha is None or s.eval_set_sha256 == ref_sha]
    if comparable:
        best = max(comparable, key=lambda s: -1.0 if math.isnan(s.metrics["mAP"]) else s.metrics["mAP"])
        model = paper.paper_name(T.model_name(runs[best.run].config))
        rows.append({"system": f"Ours: best of this profile ({model})",
                     **({"source": ours_label} if mode == T.REFERENCE else {}), "run": best.run,
                     "iteration": best.iteration,
                     **T.metric_columns(None, best, mode=mode, data_label=ours_label)})
    return T.integer_columns(pd.DataFrame(rows)), list(runs.values())

# %% [markdown]
# ## Save each table (CSV, Markdown, LaTeX) with its provenance record

# %%
def save(table_id, df, members):
    meta = {**T.selection_meta([selections[r.name] for r in members if r.name in selections]), **source,
            "compare_to_paper": mode != T.OURS_ONLY, "paper_columns": mode}
    A.save_table(df, table_id, figures_dir, sources=[r.statistics_path for r in members], profile=profile,
                 caption=paper.TABLES[table_id], meta=meta)
    display(Markdown(f"### {table_id}: {paper.TABLES[table_id]}"))
    display(df)

save("table_IV", *table_iv())
for table_id in ("table_V", "table_VI", "table_VII", "table_VIII", "table_IX", "table_X", "table_XI"):
    save(table_id, *ablation_table(table_id))
