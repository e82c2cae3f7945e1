"""Tables and figures from run folders, on statistics fabricated here (never in the pipeline)."""

import json
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from panns_core import paper, plots, tables  # noqa: E402

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


def write_snapshot(run_root, runs, reference="base"):
    with open(os.path.join(run_root, "profile.json"), "w") as f:
        json.dump({"runs": runs, "reference_run": reference, "data_source": "generated",
                   "label": "generated-corpus results, not paper-scale numbers"}, f)


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


def test_hop_table_matches_paper_rows_and_appends_extra_settings(run_root):
    result = tables.ablation_table("table_VI", run_root)
    df = result.df.set_index("hop_size")
    assert list(df.index) == [1000, 640, 500, 320, 160]
    assert df.loc[640, "mAP paper"] == 0.417 and df.loc[640, "mAP ours"] == 0.25  # last eval (no validation gain)
    assert math.isclose(df.loc[640, "mAP diff"], 0.25 - 0.417)
    assert df.loc[320, "run"] == "base" and df.loc[320, "mAP ours"] == 0.3  # reference run: model default hop
    assert math.isnan(df.loc[1000, "mAP ours"]) and pd.isna(df.loc[1000, "run"])
    assert math.isnan(df.loc[160, "mAP paper"]) and df.loc[160, "mAP ours"] == 0.15
    assert str(df["iteration"].dtype) == "Int64"
    assert result.meta["eval_set_sha256"] == "sha-eval"
    assert sorted(os.path.basename(os.path.dirname(s)) for s in result.sources) == ["base", "hop_160", "hop_640"]


def test_balancing_table_keys(run_root):
    df = tables.ablation_table("table_V", run_root).df
    by_run = df.dropna(subset=["run"]).set_index("run")
    assert tuple(by_run.loc["wave", ["training_set", "balanced", "augmentation"]]) == (
        "full_train", "balanced", "mixup_waveform")
    assert by_run.loc["wave", "mAP paper"] == 0.425
    assert tuple(by_run.loc["bal", ["training_set", "augmentation"]]) == ("balanced_train", "none")
    assert by_run.loc["bal", "mAP paper"] == 0.221
    assert len(df) == len(paper.TABLE_V)  # every run matched a paper row


def test_data_fraction_and_architecture_tables(run_root):
    df = tables.ablation_table("table_VIII", run_root).df.set_index("data_fraction")
    assert df.loc[0.5, "run"] == "half" and df.loc[1.0, "run"] == "base"
    xi = tables.ablation_table("table_XI", run_root).df.set_index("model")
    assert list(xi.index) == list(paper.TABLE_XI)
    assert xi.loc["Cnn6", "mAP ours"] == 0.4 and xi.loc["Cnn14", "run"] == "base"
    assert xi.loc["DaiNet19", "paper name"] == "DaiNet"


def test_table_iv_keeps_literature_and_adds_ours(run_root):
    df = tables.table_iv(run_root).df
    assert list(df["system"][: len(paper.TABLE_IV)]) == [r["system"] for r in paper.TABLE_IV]
    assert df["mAP paper"].tolist()[: len(paper.TABLE_IV)] == [r["mAP"] for r in paper.TABLE_IV]
    cnn14 = df[df["system"] == "Proposed CNN14"].iloc[0]
    assert cnn14["run"] == "base" and cnn14["mAP ours"] == 0.3
    assert df.iloc[-1]["system"].startswith("Ours: best of this profile") and df.iloc[-1]["mAP ours"] == 0.4


def test_bad_statistics_are_named_and_skipped(tmp_path):
    root = tmp_path / "runs"
    make_run(root, "good", {"model": "Cnn6"}, curve([0.2]))
    bad = make_run(root, "bad", {"model": "Cnn6"}, [])
    with open(os.path.join(bad, "statistics.jsonl"), "w") as f:
        f.write(json.dumps(_line(0, "eval", 0.1)) + "\n{broken\n")
    with pytest.raises(tables.StatisticsError, match=r"bad/statistics.jsonl:2: not valid JSON"):
        tables.read_statistics(os.path.join(bad, "statistics.jsonl"))
    messages = []
    runs = tables.load_runs(str(root), on_error=messages.append)
    assert list(runs) == ["good"] and "skipping run bad" in messages[0]
    missing_key = make_run(root, "nokey", {}, [{"iteration": 0, "split": "eval"}])
    with pytest.raises(tables.StatisticsError, match=r"nokey/statistics.jsonl:1: missing key\(s\) \['mAP'\]"):
        tables.load_run(missing_key)


def test_table_xii_matches_paper_exactly():
    df = tables.table_xii(["Cnn6", "LeeNet11"], with_macs=False).df.set_index("model")
    assert df.loc["Cnn6", "params ours"] == paper.TABLE_XII["Cnn6"]["params"]
    assert df.loc["LeeNet11", "params diff"] == 0
    assert round(df.loc["Cnn6", "mult-adds ours (1e9)"], 3) == 21.986
    assert df["mult-adds diff (1e9)"].abs().max() < 1e-9
    with pytest.raises(ValueError, match="Cnn14_emb32"):
        tables.table_xii(["Cnn14_emb32"])


def test_rank_groups_scale_to_the_corpus():
    assert plots.scaled_rank_groups(527) == [(1, 10), (250, 260), (517, 527)]
    assert plots.scaled_rank_groups(24) == [(1, 3), (11, 13), (22, 24)]
    assert plots.scaled_rank_groups(4) == [(1, 1), (2, 2), (4, 4)]
    assert plots.scaled_rank_groups(1) == [(1, 1), (1, 1), (1, 1)]
    counts = np.array([5, 0, 9, 5, 1])
    assert plots.rank_classes(counts).tolist() == [2, 0, 3, 4]  # class 1 has no clips


def test_figures_draw_what_they_should(run_root):
    runs = tables.load_runs(run_root)
    group = tables.group_runs(runs, "hop_size", "base")
    fig = plots.figure_training_curves(group, "hop", "table_VI")
    ax = fig.axes[0]
    styles = [(line.get_linestyle(), len(line.get_xdata())) for line in ax.lines if len(line.get_xdata())]
    assert styles.count(("-", 3)) == 2 and styles.count(("--", 3)) == 2 and ("-", 2) in styles  # eval solid, train dashed
    assert {t.get_text() for t in ax.get_legend().get_texts()} >= {"hop=640", "hop=320", "hop=160", "eval", "train"}
    plt.close(fig)

    counts = np.array([30, 10, 20, 5])
    fig = plots.figure_classwise_ap(runs["base"], counts, ["a", "b", "c", "d"])
    drawn = [line.get_label() for ax in fig.axes for line in ax.lines]
    assert drawn == ["1. a (30)", "2. c (20)", "4. d (5)"]  # ranks 1, 2 (250-260 scaled to 4 classes) and 4
    plt.close(fig)

    ours = pd.DataFrame([{"model": "Cnn6", "mult_adds": 21.986e9, "mAP": 0.4},
                         {"model": "Cnn14", "mult_adds": 42.22e9, "mAP": float("nan")}])
    fig = plots.figure_map_vs_multiply_adds(ours)
    filled = [c for c in fig.axes[0].collections if len(c.get_offsets()) and c.get_facecolors().size
              and c.get_facecolors()[0][3] > 0]
    assert len(filled) == 1 and tuple(filled[0].get_offsets()[0]) == pytest.approx((21.986, 0.4))
    plt.close(fig)

    ap = {"x": np.array([0.2, np.nan, 0.9, 0.5])}
    fig = plots.figure_classwise_ap_sorted(ap, counts, ["a", "b", "c", "d"], quality=np.array([1, 1, 0.5, np.nan]))
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["c", "d", "a"]  # sorted by AP, class without AP left out
    plt.close(fig)


def test_legend_labels_show_only_what_differs(run_root):
    runs = tables.load_runs(run_root)
    group = tables.group_runs(runs, "balancing_augmentation", "base")
    labels = dict(zip([r.name for r in group], plots.run_labels(group, "table_V")))
    assert labels["base"] == "data=full_train aug=mixup (Cnn14)"
    assert labels["wave"] == "data=full_train aug=mixup_waveform (Cnn14_mixup_time_domain)"
    assert labels["bal"] == "data=balanced_train aug=none (Cnn14)"
    assert plots.run_labels([runs["cnn6"]], "table_XI") == ["CNN6"]


def test_table_iv_best_system_is_chosen_only_among_runs_scored_on_the_same_eval_clips(run_root):
    """A run scored on a different (e.g. capped) eval set cannot win on a higher mAP."""
    capped = [{**line, "mAP": 0.9, "eval_set_sha256": "sha-first-24-clips"} if line["split"] == "eval"
              else line for line in curve([0.9])]
    make_run(run_root, "capped", {"model": "Cnn6"}, capped)
    with open(os.path.join(run_root, "profile.json")) as f:
        snapshot = json.load(f)
    write_snapshot(run_root, {**snapshot["runs"], "capped": {"groups": ["architectures"]}})
    assert "capped" in tables.load_runs(run_root)
    best = tables.table_iv(run_root).df.iloc[-1]
    assert best["run"] != "capped" and best["mAP ours"] == 0.4
