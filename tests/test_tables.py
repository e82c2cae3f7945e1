"""Tables and figures from run folders, on statistics fabricated here (never in the pipeline).

What several notebooks share is tested through ``panns_core.study.tables``; each table
and figure through the code of its owner notebook (10-15), run in-process with
the fabricated run folder as its ``run_root`` (tests/notebook_exec.py).
"""

import json
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from panns_core import paper
from panns_core.study import tables  # noqa: E402
from panns_core.data.index import IndexTable, write_index  # noqa: E402
from notebook_exec import run_notebook  # noqa: E402

CLASSES = 4


def _line(iteration, split, m, auc=0.9, ap=None, sha="sha-eval"):
    return {"iteration": iteration, "split": split, "mAP": m, "mAUC": auc, "d_prime": 1.5,
            "AP": ap if ap is not None else [m] * CLASSES, "AUC": [auc] * CLASSES,
            "eval_set_sha256": sha if split == "eval" else "other", "train_loss": 0.5}


def make_run(run_root, name, config, lines, groups=()):
    path = os.path.join(run_root, "train", name)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(path, "statistics.jsonl"), "w") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
    return path


def write_snapshot(run_root, runs, reference="base", data_source="audioset"):
    with open(os.path.join(run_root, "profile.json"), "w") as f:
        json.dump({"runs": runs, "reference_run": reference, "data_source": data_source,
                   "label": "generated-corpus results, not paper-scale numbers" if data_source == "generated"
                   else ""}, f)


def curve(values, splits=("eval", "balanced_train", "validation"), val=None):
    """Lines for iterations 0, 10, 20 ...; validation mAPs from ``val`` when given."""
    out = []
    for i, m in enumerate(values):
        for s in splits:
            v = val[i] if (s == "validation" and val is not None) else m
            out.append(_line(10 * i, s, v))
    return out


@pytest.fixture
def run_root(tmp_path):
    root = tmp_path / "runs" / "t"
    base = {"model": "Cnn14", "training_set": "full_train_minus_validation", "balanced": "balanced",
            "augmentation": "mixup", "hop_size": None, "mel_bins": None, "sample_rate": None}
    make_run(root, "base", base, curve([0.1, 0.3, 0.2], val=[0.1, 0.5, 0.2]))
    make_run(root, "hop_640", {**base, "hop_size": 640}, curve([0.1, 0.2, 0.25]), ["hop_size"])
    make_run(root, "hop_160", {**base, "hop_size": 160}, curve([0.1, 0.15]), ["hop_size"])
    make_run(root, "wave", {**base, "model": "Cnn14_mixup_time_domain"}, curve([0.2]), ["balancing_augmentation"])
    make_run(root, "bal", {**base, "training_set": "balanced_train_minus_validation", "augmentation": "none"},
             curve([0.05]), ["balancing_augmentation"])
    make_run(root, "half", {**base, "training_set": "full_train_minus_validation_frac0.5_seed0"}, curve([0.3]),
             ["data_amount"])
    make_run(root, "cnn6", {**base, "model": "Cnn6"}, curve([0.4]), ["architectures"])
    write_snapshot(root, {"base": {}, "hop_640": {"groups": ["hop_size"]}, "hop_160": {"groups": ["hop_size"]},
                          "wave": {"groups": ["balancing_augmentation"]},
                          "bal": {"groups": ["balancing_augmentation"]}, "half": {"groups": ["data_amount"]},
                          "cnn6": {"groups": ["architectures"]}})
    return str(root)


def test_selection_uses_best_validation_then_last(run_root):
    runs = tables.load_runs(run_root)
    sel = tables.select_evaluation(runs["base"])
    assert (sel.iteration, sel.rule) == (10, "best validation mAP")
    assert sel.metrics["mAP"] == 0.3 and sel.eval_set_sha256 == "sha-eval"
    no_val = tables.Run("x", "x", {}, pd.DataFrame(curve([0.1, 0.4, 0.2], splits=("eval",))))
    sel = tables.select_evaluation(no_val)
    assert (sel.iteration, sel.rule, sel.metrics["mAP"]) == (20, "last evaluation", 0.2)


def as_generated(run_root):
    """The same runs, declared as generated-corpus results."""
    with open(os.path.join(run_root, "profile.json")) as f:
        snapshot = json.load(f)
    write_snapshot(run_root, snapshot["runs"], data_source="generated")


def notebook_tables(run_root, tmp_path, **extra):
    """Run notebook 10 on ``run_root``; returns {table id: DataFrame as saved (CSV)} and the namespace."""
    figures = tmp_path / "figures"
    ns = run_notebook("10_tables_audioset", profile="t", run_root=run_root, figures_dir=str(figures), **extra)
    return {t: pd.read_csv(figures / f"{t}.csv") for t in ("table_IV", "table_V", "table_VI", "table_VII",
                                                          "table_VIII", "table_IX", "table_X", "table_XI")}, ns


def test_hop_table_matches_paper_rows_and_appends_extra_settings(run_root, tmp_path):
    saved, ns = notebook_tables(run_root, tmp_path)
    df, members = ns["ablation_table"]("table_VI")
    df = df.set_index("hop_size")
    assert list(df.index) == [1000, 640, 500, 320, 160]
    assert df.loc[640, "mAP paper"] == 0.417 and df.loc[640, "mAP ours"] == 0.25  # last eval (no validation gain)
    assert math.isclose(df.loc[640, "mAP diff"], 0.25 - 0.417)
    assert df.loc[320, "run"] == "base" and df.loc[320, "mAP ours"] == 0.3  # reference run: model default hop
    assert df.loc[320, "trained on"] == "full_train_minus_validation"  # the index it read, not the paper's name
    assert math.isnan(df.loc[1000, "mAP ours"]) and pd.isna(df.loc[1000, "run"])
    assert math.isnan(df.loc[160, "mAP paper"]) and df.loc[160, "mAP ours"] == 0.15
    assert str(df["iteration"].dtype) == "Int64"
    assert sorted(r.name for r in members) == ["base", "hop_160", "hop_640"]
    record = json.load(open(tmp_path / "figures" / "table_VI.json"))
    assert record["meta"]["eval_set_sha256"] == "sha-eval" and record["meta"]["compare_to_paper"] is True
    assert sorted(os.path.basename(os.path.dirname(s)) for s in record["sources"]) == ["base", "hop_160", "hop_640"]
    assert saved["table_VI"]["hop_size"].tolist() == [1000, 640, 500, 320, 160]


def test_balancing_table_keys(run_root, tmp_path):
    df = notebook_tables(run_root, tmp_path)[0]["table_V"]
    by_run = df.dropna(subset=["run"]).set_index("run")
    assert tuple(by_run.loc["wave", ["training_set", "balanced", "augmentation"]]) == (
        "full_train", "balanced", "mixup_waveform")
    assert by_run.loc["wave", "mAP paper"] == 0.425
    assert tuple(by_run.loc["bal", ["training_set", "augmentation"]]) == ("balanced_train", "none")
    assert by_run.loc["bal", "trained on"] == "balanced_train_minus_validation"
    assert by_run.loc["bal", "mAP paper"] == 0.221
    assert len(df) == len(paper.TABLE_V)  # every run matched a paper row


def test_data_fraction_and_architecture_tables(run_root, tmp_path):
    saved = notebook_tables(run_root, tmp_path)[0]
    df = saved["table_VIII"].set_index("data_fraction")
    assert df.loc[0.5, "run"] == "half" and df.loc[1.0, "run"] == "base"
    xi = saved["table_XI"].set_index("model")
    assert list(xi.index) == list(paper.TABLE_XI)
    assert xi.loc["Cnn6", "mAP ours"] == 0.4 and xi.loc["Cnn14", "run"] == "base"
    assert xi.loc["DaiNet19", "paper name"] == "DaiNet"


def test_table_iv_keeps_literature_and_adds_ours(run_root, tmp_path):
    df = notebook_tables(run_root, tmp_path)[0]["table_IV"]
    assert list(df["system"][: len(paper.TABLE_IV)]) == [r["system"] for r in paper.TABLE_IV]
    assert df["mAP paper"].tolist()[: len(paper.TABLE_IV)] == [r["mAP"] for r in paper.TABLE_IV]
    cnn14 = df[df["system"] == "Proposed CNN14"].iloc[0]
    assert cnn14["run"] == "base" and cnn14["mAP ours"] == 0.3
    assert df.iloc[-1]["system"].startswith("Ours: best of this profile") and df.iloc[-1]["mAP ours"] == 0.4


def test_generated_corpus_tables_show_the_paper_beside_ours_never_a_difference(run_root, tmp_path):
    as_generated(run_root)
    saved, ns = notebook_tables(run_root, tmp_path)
    for table_id, df in saved.items():
        assert not [c for c in df.columns if "diff" in c], table_id
        paper_rows = df[df["source"] == "paper (AudioSet)"]
        ours = df[df["source"] == "ours (generated corpus)"]
        assert len(paper_rows) + len(ours) == len(df), table_id
        # a row is the paper's or ours, never both: no shared row invites a comparison
        assert paper_rows["mAP ours (generated corpus)"].isna().all(), table_id
        assert ours["mAP paper (AudioSet)"].isna().all(), table_id
    v = saved["table_V"]
    assert len(v[v["source"] == "paper (AudioSet)"]) == len(paper.TABLE_V)
    assert set(v[v["source"] == "paper (AudioSet)"]["model"]) == {"CNN14", "Cnn14_mixup_time_domain"}
    ours_v = v[v["source"] == "ours (generated corpus)"].set_index("run")
    assert ours_v.loc["bal", "mAP ours (generated corpus)"] == 0.05 and ours_v.loc["bal", "model"] == "Cnn14"
    xi = saved["table_XI"]
    assert xi[xi["run"] == "cnn6"]["mAP paper (AudioSet)"].isna().all()  # our CNN6 is not in the paper's CNN6 row
    assert xi[(xi["source"] == "paper (AudioSet)") & (xi["model"] == "Cnn6")]["mAP paper (AudioSet)"].tolist() == [0.343]
    iv = saved["table_IV"]
    assert iv["run"].iloc[: len(paper.TABLE_IV)].isna().all()  # no run of ours stands in a literature row
    record = json.load(open(tmp_path / "figures" / "table_VI.json"))
    assert record["meta"]["paper_columns"] == "reference"


def test_paper_modes_follow_the_data():
    assert tables.paper_mode("audioset") == tables.DIFFERENCE
    assert tables.paper_mode("generated") == tables.REFERENCE
    assert tables.paper_mode("generated", True) == tables.REFERENCE  # never a difference on other data
    assert tables.paper_mode("custom") == tables.OURS_ONLY and tables.paper_mode("custom", True) == tables.REFERENCE
    assert tables.paper_mode("audioset", False) == tables.OURS_ONLY
    sel = tables.Selection("r", 1, "last evaluation", {"mAP": 0.5, "mAUC": 0.9, "d_prime": 1.0}, None, {})
    with pytest.raises(ValueError, match="not both"):
        tables.metric_columns({"mAP": 0.4, "AUC": 0.9, "d_prime": 2.0}, sel, mode=tables.REFERENCE)


def test_tables_without_paper_columns_on_other_data(run_root, tmp_path):
    """compare_to_paper false (the default for a data source other than AudioSet / generated): ours only."""
    saved, _ = notebook_tables(run_root, tmp_path, compare_to_paper=False)
    for table_id, df in saved.items():
        assert not [c for c in df.columns if c.endswith((" paper", " diff", " ours"))], table_id
    vi = saved["table_VI"]
    assert vi["hop_size"].tolist() == [320, 160, 640] and vi["mAP"].tolist() == [0.3, 0.15, 0.25]
    assert saved["table_IV"]["system"].tolist() == ["Ours: best of this profile (CNN6)"]
    assert tables.compare_to_paper_default("audioset") and tables.compare_to_paper_default("generated")
    assert not tables.compare_to_paper_default("custom")


def test_bad_statistics_are_named_and_skipped(tmp_path):
    root = tmp_path / "runs"
    make_run(root, "good", {"model": "Cnn6"}, curve([0.2]))
    bad = make_run(root, "bad", {"model": "Cnn6"}, [])
    with open(os.path.join(bad, "statistics.jsonl"), "w") as f:
        f.write("{broken\n" + json.dumps(_line(0, "eval", 0.1)) + "\n")
    with pytest.raises(tables.StatisticsError, match=r"bad/statistics.jsonl, line 1: not valid JSON"):
        tables.read_statistics(os.path.join(bad, "statistics.jsonl"))
    messages = []
    runs = tables.load_runs(str(root), on_error=messages.append)
    assert list(runs) == ["good"] and "skipping run bad" in messages[0]
    missing_key = make_run(root, "nokey", {}, [{"iteration": 0, "split": "eval"}])
    with pytest.raises(tables.StatisticsError, match=r"nokey/statistics.jsonl:1: missing key\(s\) \['mAP'\]"):
        tables.load_run(missing_key)


def test_a_torn_last_line_of_a_running_run_is_dropped(tmp_path, caplog):
    """A run still writing its statistics (last line cut mid-write) is tabulated from its complete lines."""
    path = make_run(tmp_path / "runs", "live", {"model": "Cnn6"}, curve([0.2, 0.3], splits=("eval",)))
    with open(os.path.join(path, "statistics.jsonl"), "a") as f:
        f.write(json.dumps(_line(20, "eval", 0.9))[:25])
    run = tables.load_run(path)
    assert "torn last line" in caplog.text
    assert run.stats["iteration"].tolist() == [0, 10] and tables.select_evaluation(run).metrics["mAP"] == 0.3


def test_table_xii_matches_paper_exactly(tmp_path):
    ns = run_notebook("11_table_complexity", profile="t", run_root=str(tmp_path / "runs"),
                      figures_dir=str(tmp_path / "figures"), models=["Cnn6", "LeeNet11"], with_macs=False)
    df = pd.read_csv(tmp_path / "figures" / "table_XII.csv").set_index("model")
    assert df.loc["Cnn6", "params ours"] == paper.TABLE_XII["Cnn6"]["params"]
    assert df.loc["LeeNet11", "params diff"] == 0
    assert round(df.loc["Cnn6", "mult-adds ours (1e9)"], 3) == 21.986
    assert df["mult-adds diff (1e9)"].abs().max() < 1e-9
    assert "plain MACs ours (1e9)" not in ns["table"].columns
    with pytest.raises(ValueError, match="Cnn14_emb32"):
        run_notebook("11_table_complexity", profile="t", run_root=str(tmp_path / "runs"),
                     figures_dir=str(tmp_path / "figures"), models=["Cnn14_emb32"])


def with_training_index(run_root, counts):
    """Give every fabricated run a training index with ``counts[k]`` clips of class k (for Figs. 3 and 12)."""
    n = int(sum(counts))
    targets = np.zeros((n, len(counts)), bool)
    targets[np.arange(n), np.repeat(np.arange(len(counts)), counts)] = True
    index = os.path.join(run_root, "train_index.h5")
    write_index(index, IndexTable([f"Y{i}.wav" for i in range(n)], [os.path.abspath(index)] * n, np.arange(n), targets))
    for name in os.listdir(os.path.join(run_root, "train")):
        config_path = os.path.join(run_root, "train", name, "config.json")
        config = json.load(open(config_path))
        config["run_info"] = {"train_index": index}
        json.dump(config, open(config_path, "w"))


def test_rank_groups_scale_to_the_corpus(run_root, tmp_path):
    with_training_index(run_root, [30, 10, 20, 5])
    ns = run_notebook("12_figure_classwise_ap", profile="t", run_root=run_root, figures_dir=str(tmp_path / "f"))
    scaled = ns["scaled_rank_groups"]
    assert scaled(527) == [(1, 10), (250, 260), (517, 527)]
    assert scaled(24) == [(1, 3), (11, 13), (22, 24)]
    assert scaled(4) == [(1, 1), (2, 2), (4, 4)]
    assert scaled(1) == [(1, 1), (1, 1), (1, 1)]
    drawn = [line.get_label() for ax in ns["fig"].axes for line in ax.lines]
    assert drawn == ["1. class 0 (30)", "2. class 2 (20)", "4. class 3 (5)"]  # ranks 1, 2 (250-260 scaled) and 4
    assert (tmp_path / "f" / "fig_3.png").exists()
    plt.close("all")


def test_training_curves_draw_eval_solid_and_train_dashed(run_root, tmp_path):
    ns = run_notebook("13_figure_training_curves", profile="t", run_root=run_root, figures_dir=str(tmp_path / "f"))
    runs = tables.load_runs(run_root)
    fig, ax = plt.subplots()
    ns["training_curves"](tables.group_runs(runs, "hop_size", "base"), "hop", "table_VI", ax)
    styles = [(line.get_linestyle(), len(line.get_xdata())) for line in ax.lines if len(line.get_xdata())]
    assert styles.count(("-", 3)) == 2 and styles.count(("--", 3)) == 2 and ("-", 2) in styles
    assert {t.get_text() for t in ax.get_legend().get_texts()} >= {"hop=640", "hop=320", "hop=160", "eval", "train"}
    assert sorted(p.name for p in (tmp_path / "f").glob("fig_4*.png")) == [f"fig_4{c}.png" for c in "abcdef"]
    plt.close("all")


def test_map_vs_multiply_adds_fills_our_points_only(run_root, tmp_path):
    ns = run_notebook("14_figure_map_vs_multiply_adds", profile="t", run_root=run_root,
                      figures_dir=str(tmp_path / "f"))
    filled = [c for c in ns["fig"].axes[0].collections if len(c.get_offsets()) and c.get_facecolors().size
              and c.get_facecolors()[0][3] > 0]
    assert sorted(tuple(round(float(v), 3) for v in c.get_offsets()[0]) for c in filled) == [(21.986, 0.4), (42.22, 0.3)]
    plt.close("all")


def test_map_vs_multiply_adds_on_other_data_puts_the_paper_in_its_own_panel(run_root, tmp_path):
    as_generated(run_root)
    ns = run_notebook("14_figure_map_vs_multiply_adds", profile="t", run_root=run_root,
                      figures_dir=str(tmp_path / "f"))
    paper_ax, ours_ax = ns["fig"].axes[:2]
    assert paper_ax is not ours_ax and paper_ax.get_shared_y_axes().get_siblings(paper_ax) == [paper_ax]
    points = lambda ax: sorted(tuple(round(float(v), 3) for v in c.get_offsets()[0]) for c in ax.collections
                               if len(c.get_offsets()))
    assert len(points(paper_ax)) == len(paper.TABLE_XI)  # the paper's 15, alone
    assert points(ours_ax) == [(21.986, 0.4), (42.22, 0.3)]  # ours, on an axis of their own
    plt.close("all")


def test_classwise_ap_sorted_leaves_out_classes_without_ap(run_root, tmp_path):
    with_training_index(run_root, [30, 10, 20, 5])
    with open(os.path.join(run_root, "train", "cnn6", "statistics.jsonl"), "w") as f:
        f.write(json.dumps(_line(0, "eval", 0.4, ap=[0.2, None, 0.9, 0.5])) + "\n")
    ns = run_notebook("15_figure_classwise_ap_sorted", profile="t", run_root=run_root,
                      figures_dir=str(tmp_path / "f"), max_systems=2)
    assert list(ns["ap_by_system"]) == ["base (Cnn14)", "cnn6 (Cnn6)"]
    # sorted by the first system (base: AP 0.3 for every class, stable order)
    labels = [t.get_text() for t in ns["ax"].get_xticklabels()]
    assert labels == ["class 0", "class 1", "class 2", "class 3"]
    plt.close("all")


def test_legend_labels_show_only_what_differs(run_root, tmp_path):
    ns = run_notebook("13_figure_training_curves", profile="t", run_root=run_root, figures_dir=str(tmp_path / "f"))
    runs = tables.load_runs(run_root)
    group = tables.group_runs(runs, "balancing_augmentation", "base")
    labels = dict(zip([r.name for r in group], ns["run_labels"](group, "table_V")))
    assert labels["base"] == "data=full_train aug=mixup (Cnn14)"
    assert labels["wave"] == "data=full_train aug=mixup_waveform (Cnn14_mixup_time_domain)"
    assert labels["bal"] == "data=balanced_train aug=none (Cnn14)"
    assert ns["run_labels"]([runs["cnn6"]], "table_XI") == ["CNN6"]
    plt.close("all")


def test_table_iv_best_system_is_chosen_only_among_runs_scored_on_the_same_eval_clips(run_root, tmp_path):
    """A run scored on a different (e.g. capped) eval set cannot win on a higher mAP."""
    capped = [{**line, "mAP": 0.9, "eval_set_sha256": "sha-first-24-clips"} if line["split"] == "eval"
              else line for line in curve([0.9])]
    make_run(run_root, "capped", {"model": "Cnn6"}, capped)
    with open(os.path.join(run_root, "profile.json")) as f:
        snapshot = json.load(f)
    write_snapshot(run_root, {**snapshot["runs"], "capped": {"groups": ["architectures"]}})
    assert "capped" in tables.load_runs(run_root)
    best = notebook_tables(run_root, tmp_path)[0]["table_IV"].iloc[-1]
    assert best["run"] != "capped" and best["mAP ours"] == 0.4


@pytest.mark.parametrize("stem", ["10_tables_audioset", "12_figure_classwise_ap", "13_figure_training_curves",
                                  "14_figure_map_vs_multiply_adds", "15_figure_classwise_ap_sorted"])
def test_owner_notebook_without_runs_says_which_stage_makes_them(tmp_path, capsys, stem):
    """Run with no runs/ at all, a table or figure notebook stops cleanly and names notebook 03 and the pipeline."""
    with pytest.raises(SystemExit) as stopped:
        run_notebook(stem, profile="smoke", run_root=str(tmp_path / "runs" / "smoke"),
                     figures_dir=str(tmp_path / "figures"))
    assert stopped.value.code == 0
    out = capsys.readouterr().out
    assert "run notebook 03_train_system first" in out and "python -m panns_core.study --profile smoke" in out
    assert not (tmp_path / "figures").exists()
