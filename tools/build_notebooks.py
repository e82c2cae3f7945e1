"""Write the AudioSet notebooks (00-19) with nbformat, without outputs.

Notebooks are generated so that they stay reviewable as code, carry no outputs
in git, and all share the same first cells: a ``parameters`` cell (papermill)
and a "what the paper did / what we do / where we differ" cell.

    python tools/build_notebooks.py            # (re)write notebooks/00_..19_
    python tools/build_notebooks.py --check    # exit 1 if a notebook is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"

COMMON_PARAMS = '''profile = "smoke"
run_root = "runs/smoke"
figures_dir = "figures/smoke"'''


def _nb(title: str, params: str, paper: str, ours: str, differ: str, cells: list) -> nbformat.NotebookNode:
    nb = new_notebook()
    p = new_code_cell(COMMON_PARAMS + ("\n" + params.strip() if params.strip() else ""))
    p.metadata["tags"] = ["parameters"]
    intro = new_markdown_cell(
        f"# {title}\n\n"
        f"**What the paper did.** {paper.strip()}\n\n"
        f"**What we do.** {ours.strip()}\n\n"
        f"**Where we differ, and why.** {differ.strip()}"
    )
    nb.cells = [p, intro]
    for kind, text in cells:
        nb.cells.append(new_markdown_cell(text.strip()) if kind == "md" else new_code_cell(text.strip()))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


SETUP = '''import json, os
import pandas as pd
from IPython.display import Markdown, display
from panns_core import tables as T, plots as P, artefacts as A
P.apply_style()
runs = T.load_runs(run_root)
snapshot = T.read_profile_snapshot(run_root)
source = T.data_source_note(run_root)
print(f"profile {profile}: {len(runs)} run(s) with statistics; data source: {source['data_source']}")'''


def notebooks() -> dict:
    nbs = {}

    nbs["00_environment_and_data"] = _nb(
        "00 · Environment and data overview",
        'data_root = "data/smoke"\ndata_source = "generated"',
        "Trained on AudioSet (527 classes; 1,934,187 of 2,063,839 training clips and 18,887 of 20,371 "
        "eval clips downloaded in 2018), 10-s clips at 32 kHz, on one V100 for about 3 days per system.",
        "Record the software and hardware this run used, the profile's runs, and what is already on disk, "
        "so every later number can be traced to an environment.",
        "The smoke profile replaces AudioSet by a generated AudioSet-shaped corpus (offline, minutes on a "
        "CPU). Its numbers check the code, they are not paper-scale results.",
        [
            ("code", '''import json, os
import pandas as pd
from panns_core.report import environment_info
from panns_core.artefacts import write_json
env = environment_info()
write_json(env, os.path.join(run_root, "environment.json"))
pd.Series(env, name="value").to_frame()'''),
            ("md", "## The profile's training runs\nOne line of the profile per run; `groups` names the "
                   "ablation (table / figure panel) each run feeds."),
            ("code", '''from panns_core.tables import read_profile_snapshot
snap = read_profile_snapshot(run_root)
pd.DataFrame([{"run": k, **{kk: vv for kk, vv in (v or {}).items()}} for k, v in (snap.get("runs") or {}).items()])'''),
            ("md", "## Data on disk"),
            ("code", '''for sub in ("metadata", "audios", "hdf5s/waveforms", "hdf5s/indexes"):
    path = os.path.join(data_root, sub)
    n = len(os.listdir(path)) if os.path.isdir(path) else 0
    print(f"{path:<45} {'present' if n else 'absent (created by the next stages)'} ({n} entries)")'''),
        ],
    )

    nbs["01_download_audioset"] = _nb(
        "01 · Download AudioSet (or generate the corpus)",
        'data_root = "data/smoke"\ndata_source = "generated"\ngenerate = {}\nacquire = {}',
        "Downloaded each clip of the three segment CSVs from YouTube with youtube-dl, cut it with ffmpeg "
        "to the labelled 10 s, and kept mono 32 kHz WAVs; about 6% of the videos were already gone.",
        "`data_source: audioset` calls `panns_core.data.acquire` (yt-dlp + ffmpeg, resumable, every failure "
        "recorded in `failures.csv`). `data_source: generated` writes the generated corpus in exactly the same "
        "layout (metadata CSVs, `audios/<split>/Y<id>.wav`), so everything downstream is unchanged.",
        "The official script only ever downloaded 10 rows per CSV (its `--mini_data` flag defaults to true); "
        "ours downloads everything it is asked to and lists what it could not get. Your copy of AudioSet will "
        "differ from the authors' (videos disappear); the eval-set sha256 written by the next stage identifies it.",
        [
            ("code", '''import json, os
import pandas as pd
if data_source == "generated":
    from panns_core.data.synthetic import generate_corpus
    info = generate_corpus(data_root, **generate)
    print(f"generated {sum(info.counts.values())} clips in {info.seconds:.1f} s under {data_root}")
    counts = pd.DataFrame(info.class_counts)
elif data_source == "audioset":
    from panns_core.data import acquire as acq
    options = dict(acquire)
    splits = options.pop("splits", ["eval", "balanced_train", "unbalanced_train"])
    if not options.pop("skip_metadata", False):
        acq.download_metadata(data_root)
    summaries = {split: acq.acquire_split(data_root, split, **options) for split in splits}
    for split, summary in summaries.items():
        print(split, summary)
    counts = None
else:
    raise ValueError(f"data_source must be 'generated' or 'audioset', got {data_source!r}")'''),
            ("md", "Clips per class and split (the unbalanced split is long-tailed, like AudioSet):"),
            ("code", '''if counts is not None:
    names = json.load(open(os.path.join(data_root, "metadata", "synthetic.json")))["class_names"]
    counts.index = names
    display(counts.sort_values("unbalanced_train", ascending=False).head(10))'''),
        ],
    )

    nbs["02_pack_and_index"] = _nb(
        "02 · Pack waveforms into HDF5 and build the indexes",
        'data_root = "data/smoke"\ndata_source = "generated"\npack = {}',
        "Packed every split into HDF5 files (int16 waveforms, bool targets), one index file per waveform "
        "file, and a combined `full_train` index; there was no validation split: checkpoints were chosen "
        "on the eval set.",
        "`panns_core.data.pack`: the same layout (so an existing PANNs copy works), a manifest per file "
        "(packed / missing / failed clips with reasons), the eval-set sha256, the paper's 50 %/80 % "
        "training subsets, and a class-stratified validation split carved out of the training data.",
        "Missing clips are left out and listed instead of being packed as silent all-negative rows; a "
        "validation split exists so that the eval set is used once, for reporting.",
        [
            ("code", '''import pandas as pd
from panns_core.stages import prepare_indexes
summary = prepare_indexes(data_root, **pack)
pd.DataFrame(summary["indexes"]).T'''),
            ("md", "The eval-set identity (sha256 of the sorted clip names) that every table states:"),
            ("code", '''print(summary["eval_manifest"])'''),
        ],
    )

    nbs["03_train_system"] = _nb(
        "03 · Train one system",
        'data_root = "data/smoke"\ndata_source = "generated"\nrun_name = "Cnn14"\nconfig = {}  # any TrainConfig field\n'
        'nproc_per_node = 1  # > 1: launch torchrun with that many processes (one per GPU)',
        "Trained each system with Adam (lr 1e-3), batch 32, balanced sampling and mixup for about 600k "
        "iterations, evaluating mAP on the eval set every 2,000 iterations.",
        "`panns_core.train.train(TrainConfig)` with any field of `TrainConfig` given in `config` (the profile's "
        "`train` defaults plus one run line). The run folder gets `config.json`, `statistics.jsonl` (one line "
        "per evaluation and split) and checkpoints; a killed run resumes exactly.",
        "`best.pt` is chosen on the validation split, not on eval. Short profiles train for a few iterations "
        "on small data: their curves show the mechanics, not converged systems.",
        [
            ("code", '''import os
from panns_core.stages import train_run
fields = {"progress": False, **config, "data_root": data_root, "run_dir": os.path.join(run_root, "train", run_name)}
run_dir = train_run(fields, nproc_per_node=nproc_per_node, source=f"profile {profile}, run {run_name}")
print("run folder:", run_dir)'''),
            ("md", "## Training curves of this run (train dashed, eval solid)"),
            ("code", '''from panns_core import tables as T, plots as P
P.apply_style()
run = T.load_run(run_dir)
P.figure_training_curves([run], f"{run_name}")
sel = T.select_evaluation(run)
print(f"selected iteration {sel.iteration} ({sel.rule}): eval mAP {sel.metrics['mAP']:.4f}")'''),
        ],
    )

    nbs["04_evaluate_system"] = _nb(
        "04 · Evaluate a trained system",
        'data_root = "data/smoke"\ndata_source = "generated"\nrun_name = "Cnn14"\ncheckpoint = "best"\n'
        'split = "eval"\nmax_clips = None\nbatch_size = 32',
        "Reported mAP, mean AUC and d-prime on the eval set (per class with scikit-learn, then averaged).",
        "Load the run's `best.pt` (chosen on validation) with `torch.load(weights_only=True)` and score the "
        "whole eval index with `panns_core.evaluate`; the per-class result goes to "
        "`runs/<profile>/evaluate/<run>_<split>.json`.",
        "Classes without a positive eval clip are excluded from the means and listed (scikit-learn would warn "
        "and return NaN). d-prime is computed from the mean AUC, as the official plots do.",
        [
            ("code", '''import json, os
import pandas as pd
from panns_core.evaluate import build_model, evaluate, summary
from panns_core.artefacts import write_json
from panns_core import tables as T
run = T.load_run(os.path.join(run_root, "train", run_name))
ckpt = os.path.join(run.path, "checkpoints", f"{checkpoint}.pt")
classes_num = run.config["run_info"]["classes_num"]
model = build_model(ckpt, None, classes_num, {})
index = os.path.join(data_root, "hdf5s", "indexes", f"{split}.h5")
result = evaluate(model, index, batch_size=batch_size, max_clips=max_clips,
                  resample_mode=run.config.get("resample_mode", "antialias"))
out = summary(result)
out.update(run=run_name, checkpoint=ckpt, split=split, index=index)
path = write_json(out, os.path.join(run_root, "evaluate", f"{run_name}_{split}.json"))
print(f"{run_name} on {split}: mAP {out['mAP']:.4f}  AUC {out['mAUC']:.4f}  d' {out['d_prime']:.3f} -> {path}")'''),
            ("md", "Best and worst classes:"),
            ("code", '''names = T.class_names(run, classes_num)
ap = pd.Series(out["AP"], index=names, name="AP").dropna().sort_values(ascending=False)
pd.concat([ap.head(5), ap.tail(5)]).to_frame()'''),
        ],
    )

    nbs["10_tables_audioset"] = _nb(
        "10 · Tables IV-XI: AudioSet tagging results",
        "",
        "Table IV compares CNN14 with earlier systems; Tables V-X ablate CNN14 (balancing and mixup, hop size, "
        "embedding size, amount of training data, sample rate, mel bins); Table XI compares 15 architectures. "
        "The numbers were read off the eval-set curves at hand-picked iterations.",
        "Each table lists the paper's value, ours and the difference for mAP, AUC and d-prime. Our value is "
        "the eval row at the iteration with the best validation mAP (or the last evaluation); our runs are "
        "matched to the paper's rows on the table's key (e.g. `hop_size`), and extra settings of a profile "
        "are appended with blank paper columns.",
        "Short profiles ablate a smaller base model than CNN14 (the `our model` column says which) on "
        "generated data: compare directions and rankings, never absolute values.",
        [
            ("code", SETUP),
            ("code", '''from panns_core import paper
def save(tid, result):
    meta = {**result.meta, **source}
    A.save_table(result.df, tid, figures_dir, sources=result.sources, profile=profile,
                 caption=paper.TABLES[tid], meta=meta)
    display(Markdown(f"### {tid}: {paper.TABLES[tid]}"))
    display(result.df)

save("table_IV", T.table_iv(run_root, runs=runs))
for tid in ("table_V", "table_VI", "table_VII", "table_VIII", "table_IX", "table_X", "table_XI"):
    save(tid, T.ablation_table(tid, run_root, runs=runs))'''),
        ],
    )

    nbs["11_table_complexity"] = _nb(
        "11 · Table XII: multiply-adds and parameters",
        "models = None  # None: the 15 architectures; or a list of class names\nwith_macs = True  # also count plain multiply-accumulates (a second pass per model)",
        "Reported multiply-adds per 10-s clip and parameter counts of the 15 architectures, computed by "
        "the authors' `count_flops` counter.",
        "Count them with `panns_core.complexity` on a 10-s clip at each model's own sample rate, with the "
        "paper's convention (2 operations per multiply-accumulate; STFT-as-convolution, BatchNorm, ReLU and "
        "pooling modules included; trainable parameters only). No training is needed.",
        "Nothing: all 15 rows match the paper to the printed precision. Plain MACs are about half the paper's "
        "'multiply-adds' (see `docs/`), which matters when comparing with other papers.",
        [
            ("code", '''from IPython.display import display
from panns_core import tables as T, artefacts as A, paper
result = T.table_xii(models, with_macs=with_macs)
A.save_table(result.df, "table_XII", figures_dir, sources=[], profile=profile, caption=paper.TABLES["table_XII"],
             meta=result.meta)
display(result.df)'''),
        ],
    )

    nbs["12_figure_classwise_ap"] = _nb(
        "12 · Figure 3: class-wise AP vs iteration",
        "run_name = None",
        "Plotted the eval AP of the classes ranked 1-10, 250-260 and 517-527 by number of training clips "
        "against the training iteration: frequent classes learn fast, rare ones slowly or not at all.",
        "Rank the classes of the run's own training index by clip count and scale the paper's ranks to the "
        "number of classes present (1-10 stays 'most frequent', 517-527 'rarest'); AP comes from the per-class "
        "lists in `statistics.jsonl`.",
        "A generated corpus has few classes, so each group may hold a single class; the run is the profile's "
        "`classwise_run` (the paper's figure uses Wavegram-Logmel-CNN or CNN14 depending on the version).",
        [
            ("code", SETUP),
            ("code", '''name = run_name or snapshot.get("classwise_run") or snapshot.get("reference_run")
if name not in runs:
    raise FileNotFoundError(f"run {name!r} has no statistics under {run_root}/train (runs: {sorted(runs)})")
run = runs[name]
counts = T.training_clip_counts(run)
fig = P.figure_classwise_ap(run, counts, T.class_names(run, len(counts)))
A.save_figure(fig, "fig_3", figures_dir, sources=[run.statistics_path, T.training_index_path(run)],
              profile=profile, caption="Class-wise AP vs iteration", meta=source)'''),
        ],
    )

    nbs["13_figure_training_curves"] = _nb(
        "13 · Figure 4 (a)-(f): mAP vs iteration",
        "",
        "Six panels of train (balanced subset, dashed) and eval (solid) mAP against iteration: (a) "
        "architectures, (b) balancing and augmentation, (c) embedding size, (d) amount of training data, "
        "(e) sample rate, (f) mel bins.",
        "One figure per panel (`fig_4a` ... `fig_4f`) from the runs of the matching ablation group, plus a "
        "combined six-panel view.",
        "Short profiles have only a few evaluations per run, so the curves are coarse.",
        [
            ("code", SETUP),
            ("code", '''import matplotlib.pyplot as plt
from panns_core import paper
PANELS = {"fig_4a": ("architectures", "table_XI"), "fig_4b": ("balancing_augmentation", "table_V"),
          "fig_4c": ("embedding_size", "table_VII"), "fig_4d": ("data_amount", "table_VIII"),
          "fig_4e": ("sample_rate", "table_IX"), "fig_4f": ("mel_bins", "table_X")}
reference = snapshot.get("reference_run")
for fid, (group, tid) in PANELS.items():
    members = T.group_runs(runs, group, reference)
    fig = P.figure_training_curves(members, f"({fid[-1]}) {group.replace('_', ' ')}", tid)
    A.save_figure(fig, fid, figures_dir, sources=[r.statistics_path for r in members], profile=profile,
                  caption=paper.FIGURES[fid], meta=source)
    plt.close(fig)'''),
            ("code", '''fig, axes = plt.subplots(2, 3, figsize=(14, 7))
for ax, (fid, (group, tid)) in zip(axes.flat, PANELS.items()):
    P.figure_training_curves(T.group_runs(runs, group, reference), f"({fid[-1]}) {group.replace('_', ' ')}", tid, ax=ax)
fig.tight_layout()'''),
        ],
    )

    nbs["14_figure_map_vs_multiply_adds"] = _nb(
        "14 · Figure 5: mAP vs multiply-adds",
        "show_paper = True",
        "Plotted each architecture's mAP against its multiply-adds, one colour per family: CNN14 and the "
        "Wavegram-Logmel-CNN give the best trade-off, MobileNets the cheapest reasonable one.",
        "Our architecture runs (filled markers) at their counted multiply-adds (`table_XII.csv` when stage 11 "
        "ran, else counted here), with the paper's 15 points (hollow) for orientation.",
        "Short profiles train a few architectures briefly on generated data: their mAPs are not comparable "
        "with the paper's.",
        [
            ("code", SETUP),
            ("code", '''reference = snapshot.get("reference_run")
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
              profile=profile, caption="mAP vs multiply-adds", meta=source)'''),
        ],
    )

    nbs["15_figure_classwise_ap_sorted"] = _nb(
        "15 · Figure 12: AP of every class",
        "max_systems = 3",
        "Plotted the AP of all 527 classes for CNN14, MobileNetV1 and an earlier system, sorted, with bars of "
        "the (log) number of training clips and marks of label quality: classes with few clips or poor "
        "labels score low.",
        "Per-class eval AP of up to `max_systems` architecture runs at their selected evaluation, sorted by the "
        "first (the reference run), with training-clip counts from the run's index and label quality from "
        "`qa_true_counts.csv` where the data root has it.",
        "The earlier 'averaging instances' system of the paper has no code or statistics, so it is not drawn.",
        [
            ("code", SETUP),
            ("code", '''import numpy as np
reference = snapshot.get("classwise_run") or snapshot.get("reference_run")
members = T.group_runs(runs, "architectures", reference)
if reference in runs and runs[reference] not in members:
    members.insert(0, runs[reference])
members = members[:max_systems]
if not members:
    raise FileNotFoundError(f"no runs with statistics under {run_root}/train")
first = members[0]
counts = T.training_clip_counts(first)
ap = {f"{r.name} ({T.model_name(r.config)})": P.selection_ap(r) for r in members}
fig = P.figure_classwise_ap_sorted(ap, counts, T.class_names(first, len(counts)), T.label_quality(first))
A.save_figure(fig, "fig_12", figures_dir, sources=[r.statistics_path for r in members] + [T.training_index_path(first)],
              profile=profile, caption="AP of every class", meta=source)'''),
        ],
    )

    nbs["19_build_report"] = _nb(
        "19 · Report",
        'data_source = "generated"\nlabel = ""',
        "-", "Collect every table and figure of the manifest on one page.", "-",
        [
            ("code", '''import os
from IPython.display import HTML, Markdown, display
from panns_core import report as R
manifest = R.read_manifest(run_root)
display(Markdown(R.header_markdown(manifest, data_source, label)))'''),
            ("code", '''for aid, entry in manifest["artefacts"].items():
    if entry["kind"] == "table":
        display(Markdown(R.artefact_markdown(aid, entry)))
    else:
        png = next(p for p in entry["paths"] if p.endswith(".png"))
        display(Markdown(f"## {aid}"))
        display(HTML(R.image_html(png, entry.get("caption", ""))))
        display(Markdown(R.provenance_line(entry)))'''),
            ("code", '''evaluation = R.evaluation_markdown(run_root)
if evaluation:
    display(Markdown(evaluation))
display(Markdown(R.missing_markdown(manifest)))'''),
        ],
    )
    # The report's intro cell is for readers of the notebook, not of the report.
    nbs["19_build_report"].cells[1].source = (
        "# 19 · Report\n\nBuilds `runs/<profile>/report.html`: every table and figure of the manifest, "
        "with the profile and data source stated. The pipeline converts the executed notebook with nbconvert "
        "(code hidden, images embedded).")
    return nbs


def write_all(check: bool = False) -> int:
    NOTEBOOKS_DIR.mkdir(exist_ok=True)
    stale = []
    for stem, nb in notebooks().items():
        path = NOTEBOOKS_DIR / f"{stem}.ipynb"
        text = nbformat.writes(nb) + "\n"
        if check:
            if not path.exists() or _strip_ids(path.read_text()) != _strip_ids(text):
                stale.append(path.name)
            continue
        if path.exists() and _strip_ids(path.read_text()) == _strip_ids(text):
            continue  # unchanged: keep cell ids stable for git
        path.write_text(text)
        print("wrote", path)
    if stale:
        print("out of date:", ", ".join(stale), "(run python tools/build_notebooks.py)")
        return 1
    return 0


def _strip_ids(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if '"id":' not in line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    sys.exit(write_all(parser.parse_args().check))
