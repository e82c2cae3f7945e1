"""The findings: paired effects with t-intervals, the four outcomes, chains, on constructed statistics
and fabricated run folders."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from panns_core.study import findings as F


# ---------------------------------------------------------------------------- the interval and the verdict rule


def test_interval_is_the_t_interval_of_the_paired_differences():
    d = [0.05, 0.08, 0.02, 0.07]
    iv = F.interval(d, [1, 2, 3, 4])
    mean, sd = np.mean(d), np.std(d, ddof=1)
    half = stats.t.ppf(0.975, 3) * sd / 2
    assert iv.effect == pytest.approx(mean) and iv.ci == pytest.approx([mean - half, mean + half])
    assert iv.detectable == pytest.approx((stats.t.ppf(0.975, 3) + stats.t.ppf(0.8, 3)) * sd / 2)
    assert iv.n == 4 and iv.replicates == [1, 2, 3, 4]


@pytest.mark.parametrize("differences, verdict", [
    ([0.10, 0.12, 0.11], F.SUPPORTED),          # interval above 0
    ([-0.10, -0.12, -0.11], F.CONTRADICTED),    # interval below 0
    ([0.10, -0.02, 0.05], F.INCONCLUSIVE),      # contains 0, mean in the paper's direction
    ([-0.10, 0.02, -0.05], F.INCONCLUSIVE),     # contains 0, mean against the paper: still not contradicted
    ([-0.30, -0.01, -0.02], F.INCONCLUSIVE),    # every seed against the paper, yet the interval reaches above 0
])
def test_verdict_from_the_interval(differences, verdict):
    iv = F.interval(differences)
    assert iv.verdict == verdict
    if verdict == F.CONTRADICTED:
        assert iv.ci[1] < 0  # the whole interval lies against the paper
    if verdict == F.INCONCLUSIVE:
        assert iv.ci[0] <= 0 <= iv.ci[1]


def test_a_chain_needs_every_step():
    up, flat, down = F.interval([0.1, 0.11, 0.12]), F.interval([0.1, -0.1, 0.02]), F.interval([-0.1, -0.11, -0.12])
    assert F.chain_verdict([up, up]) == F.SUPPORTED
    assert F.chain_verdict([up, flat]) == F.INCONCLUSIVE
    assert F.chain_verdict([flat, down]) == F.CONTRADICTED
    assert F.chain_verdict([up, down]) == F.CONTRADICTED
    assert F.deciding_step([up, flat]) == 1 and F.deciding_step([down, up]) == 0


# ---------------------------------------------------------------------------- run folders


def _run(root, name, *, final_map, seed, iterations=100, every=50, ap=None, **config):
    """A run folder whose eval mAP rises linearly to ``final_map`` (per-class AP ``ap`` at the last eval)."""
    d = root / "train" / name
    d.mkdir(parents=True)
    cfg = {"model": "Cnn6", "training_set": "full_train", "balanced": "balanced", "augmentation": "none",
           "batch_size": 8, "learning_rate": 1e-3, "seed": seed, "iterations": iterations, **config}
    (d / "config.json").write_text(json.dumps(cfg))
    lines = []
    for it in range(0, iterations + 1, every):
        m = 0.1 + (final_map - 0.1) * it / iterations
        line = {"iteration": it, "split": "eval", "mAP": m, "num_clips": 240}
        if ap is not None:
            line["AP"] = ap if it == iterations else [0.1] * len(ap)
        lines.append(line)
    (d / "statistics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def _arm(root, arm, maps, seeds=(1, 2, 3), **kw):
    for seed, m in zip(seeds, maps):
        _run(root, f"{arm}_seed{seed}", final_map=m, seed=seed, **kw)


def _profile(root, reference="control_seed1", **extra):
    (root / "profile.json").write_text(json.dumps({"reference_run": reference, "data_source": "generated", **extra}))


def _row(data, claim_id):
    return next(r for r in data["rows"] if r["id"] == claim_id)


@pytest.fixture
def root(tmp_path):
    _profile(tmp_path)
    _arm(tmp_path, "control", [0.80, 0.70, 0.75])
    return tmp_path


SR16 = dict(sample_rate=16000, window_size=512, hop_size=160, fmax=8000)
SR8 = dict(sample_rate=8000, window_size=256, hop_size=80, fmax=4000)


def test_paired_claims_get_effect_interval_and_design(root):
    _arm(root, "no_balancing", [0.70, 0.61, 0.64], balanced="none")  # 0.10, 0.09, 0.11 below control
    data = F.compute_findings(str(root))
    row = _row(data, "balanced_sampling")
    assert row["verdict"] == F.SUPPORTED and row["n_seeds"] == 3
    iv = F.interval([0.10, 0.09, 0.11])
    assert row["effect"] == pytest.approx(iv.effect, abs=1e-4)
    assert row["ci"] == pytest.approx(iv.ci, abs=1e-4) and row["ci"][0] > 0
    assert row["detectable_effect"] == pytest.approx(iv.detectable, abs=1e-4)
    assert row["evidence"]["runs"] == ["no_balancing_seed1", "no_balancing_seed2", "no_balancing_seed3",
                                       "control_seed1", "control_seed2", "control_seed3"]
    assert row["iteration"] == 100 and row["arms"] == ["no_balancing", "control"]
    assert "seeds 1, 2, 3" in row["design"] and "240 clips" in row["design"] and "balanced" in row["design"]
    for key in ("id", "claim", "paper", "ours", "verdict", "evidence", "effect", "ci", "n_seeds", "design",
                "detectable_effect", "method", "steps"):
        assert key in row, key
    assert "0.375" in row["paper"] and "0.416" in row["paper"]  # the paper's AudioSet numbers, for reference


def test_contradicted_only_when_the_whole_interval_is_against_the_paper(root):
    _arm(root, "mel_32", [0.85, 0.76, 0.80], mel_bins=32)      # 32 bins better on every seed, tightly
    _arm(root, "quarter", [0.85, 0.60, 0.76], training_set="full_train_frac0.25_seed0")  # mixed
    data = F.compute_findings(str(root))
    mel = _row(data, "mel_bins")
    assert mel["verdict"] == F.CONTRADICTED and mel["ci"][1] < 0
    assert "not run: 128 mel bins" in mel["ours"]
    more = _row(data, "more_data")
    assert more["verdict"] == F.INCONCLUSIVE and more["ci"][0] < 0 < more["ci"][1]


def test_a_chain_is_supported_only_when_every_step_is(root):
    _arm(root, "mel_32", [0.70, 0.60, 0.66], mel_bins=32)     # 64 > 32 on every seed
    _arm(root, "mel_128", [0.80, 0.80, 0.71], mel_bins=128)   # 128 vs 64: 0.00, +0.10, -0.04: inconclusive
    row = _row(F.compute_findings(str(root)), "mel_bins")
    assert [s["verdict"] for s in row["steps"]] == [F.SUPPORTED, F.INCONCLUSIVE]
    assert row["verdict"] == F.INCONCLUSIVE
    assert row["effect"] == row["steps"][1]["effect"]  # the deciding step is the row's effect
    assert row["evidence"]["runs"][:3] == ["mel_32_seed1", "mel_32_seed2", "mel_32_seed3"]


def test_fewer_than_three_paired_seeds_is_not_tested(root):
    _arm(root, "no_balancing", [0.5, 0.5, 0.5], seeds=(1, 2, 7), balanced="none")  # seed 7: no control partner
    row = _row(F.compute_findings(str(root)), "balanced_sampling")
    assert row["verdict"] == F.NOT_TESTED and row["effect"] is None and row["ci"] == [None, None]
    assert "2 paired seed(s) (1, 2)" in row["reason"]


def test_missing_runs_and_the_profiles_reasons(tmp_path):
    _profile(tmp_path, dropped={"deeper_cnns": "not tested here: converged rankings need far more iterations"})
    _arm(tmp_path, "control", [0.8, 0.7, 0.75])
    data = F.compute_findings(str(tmp_path))
    assert _row(data, "deeper_cnns")["reason"].startswith("not tested here: converged rankings")
    wave = _row(data, "wavegram_logmel_best")
    assert wave["verdict"] == F.NOT_TESTED and wave["reason"].startswith("runs missing: ")
    assert _row(data, "sample_rate")["reason"].startswith("runs missing: 8 kHz, 16 kHz")
    assert data["verdicts"][F.NOT_TESTED] == len(data["rows"]) == len(F.CLAIM_IDS)


def test_arms_are_compared_at_their_last_common_iteration(root):
    # the subset arms train 150 iterations; against the 100-iteration control they are read at 100
    _arm(root, "subset", [0.50, 0.40, 0.45], iterations=150, training_set="balanced_train")
    _arm(root, "subset_mixup", [0.60, 0.50, 0.55], iterations=150, training_set="balanced_train",
         augmentation="mixup")
    data = F.compute_findings(str(root))
    full = _row(data, "full_vs_balanced_set")
    assert full["iteration"] == 100
    # subset at 100 of 150: 0.1 + 0.4 * 2/3 = 0.3667 (seed 1); control 0.80
    assert full["ours_values"]["balanced subset"] == pytest.approx(np.mean([0.1 + (m - 0.1) * 2 / 3
                                                                            for m in (0.5, 0.4, 0.45)]), abs=1e-4)
    mixup = _row(data, "mixup")
    assert mixup["iteration"] == 150 and mixup["verdict"] == F.SUPPORTED
    assert mixup["arms"] == ["subset", "subset_mixup"]


def test_cue_classes_are_reported_beside_map(root, tmp_path):
    data_root = tmp_path / "data"
    (data_root / "metadata").mkdir(parents=True)
    names = ["Speech", "Whistling", "Steam", "Hum"]
    (data_root / "metadata" / "class_labels_indices.csv").write_text(
        "index,mid,display_name\n" + "".join(f"{i},/m/x{i},{n}\n" for i, n in enumerate(names)))
    _arm(root, "sr_16k", [0.8, 0.7, 0.78], ap=[0.9, 0.8, 0.9, 0.9], data_root=str(data_root), **SR16)
    _arm(root, "sr_8k", [0.6, 0.55, 0.6], ap=[0.9, 0.2, 0.2, 0.9], data_root=str(data_root), **SR8)
    row = _row(F.compute_findings(str(root)), "sample_rate")
    assert row["arms"] == ["sr_8k", "sr_16k"] and row["verdict"] == F.SUPPORTED
    focus = row["focus"]
    assert focus["classes"] == "cue classes (Whistling, Steam)"
    assert [s["effect"] for s in focus["steps"]] == pytest.approx([0.65], abs=1e-4)  # 0.85 at 16 kHz, 0.2 at 8
    assert "cue classes (Whistling, Steam)" in row["ours"]


def test_transfer_claims_are_paired_by_seed(root):
    import pandas as pd

    rows = []
    for seed in range(4):
        for shots, ft, sc, fz in (("2", 0.5, 0.2, 0.8), ("20", 0.95, 0.5, 0.9)):
            for strategy, v in (("finetune", ft), ("scratch", sc), ("freeze_l1", fz)):
                rows.append({"task": "corpus_heldout", "strategy": strategy, "shots": shots, "fold": "test",
                             "seed": seed, "score": v + 0.01 * seed * (strategy == "finetune")})
    out = root / "transfer" / "corpus_heldout"
    out.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(out / "results.csv", index=False)
    data = F.compute_findings(str(root))
    tr = _row(data, "pretraining_transfer")
    assert tr["verdict"] == F.SUPPORTED and tr["n_seeds"] == 4
    assert tr["effect"] == pytest.approx(0.45 + 0.015, abs=1e-4)
    few = _row(data, "frozen_few_shot")
    # Freeze_L1 - fine-tune at 2 clips: 0.3 - 0.01 seed; fine-tune - Freeze_L1 at 20: 0.05 + 0.01 seed
    assert [s["verdict"] for s in few["steps"]] == [F.SUPPORTED, F.SUPPORTED] and few["verdict"] == F.SUPPORTED
    assert few["steps"][1]["effect"] == pytest.approx(0.065, abs=1e-4)
    assert "seeds 0, 1, 2, 3" in few["design"]


def test_write_findings_frame_markdown_and_forest_plot(root):
    import matplotlib

    matplotlib.use("Agg")
    _arm(root, "no_balancing", [0.70, 0.61, 0.64], balanced="none")
    path = F.write_findings(str(root))
    df = F.findings_frame(path)
    assert list(df.columns) == F.FRAME_COLUMNS and len(df) == len(F.CLAIM_IDS)
    assert set(df["verdict"]) <= set(F.VERDICTS)
    md = F.findings_markdown(path)
    assert md.startswith("## Findings") and "*Scope.*" in md and "generated corpus" in md
    table_rows = [line for line in md.splitlines() if line.startswith("| ") and "|---" not in line]
    assert sum(1 for line in table_rows if line.split("|")[1].strip() in {r["claim"] for r in json.load(open(path))["rows"]}) \
        == len(F.CLAIM_IDS)
    assert F.findings_markdown(str(root)) == md  # computed from the runs: the same section
    fig = F.forest_plot(path)
    assert len(fig.axes[0].get_yticklabels()) == len(F.CLAIM_IDS)
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_verdicts_do_not_depend_on_the_order_runs_are_read(root, monkeypatch):
    _arm(root, "no_balancing", [0.70, 0.61, 0.64], balanced="none")
    first = F.compute_findings(str(root))
    runs = F.read_runs(str(root))
    monkeypatch.setattr(F, "read_runs", lambda _: dict(reversed(list(runs.items()))))
    assert F.compute_findings(str(root))["rows"] == first["rows"]


def test_bad_statistics_file_names_the_file(tmp_path):
    d = tmp_path / "train" / "broken"
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    (d / "statistics.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match=r"statistics.jsonl:1"):
        F.read_run(str(d))


def test_arm_costs_read_the_stage_records(root):
    (root / "stages").mkdir()
    for seed, cpu in zip((1, 2, 3), (30.5, 31.0, 29.5)):
        (root / "stages" / f"train_control_seed{seed}.json").write_text(json.dumps({"cpu_s": cpu}))
    data = F.compute_findings(str(root))
    control = next(a for a in data["arms"] if a["arm"] == "control")
    assert control["cpu_s"] == pytest.approx(91.0) and control["seeds"] == [1, 2, 3]
    assert data["training_cpu_s"] == pytest.approx(91.0)


def test_findings_notebook_writes_findings_json_and_the_forest_plot(root, tmp_path_factory):
    pm = pytest.importorskip("papermill")
    import os

    _arm(root, "no_balancing", [0.70, 0.61, 0.64], balanced="none")
    notebook = os.path.join(os.path.dirname(__file__), "..", "notebooks", "18_findings.ipynb")
    out = tmp_path_factory.mktemp("nb") / "18.ipynb"
    pm.execute_notebook(notebook, str(out), parameters=dict(profile="test", run_root=str(root),
                                                             figures_dir=str(root / "figures")),
                        kernel_name="python3", progress_bar=False, cwd=str(root))
    with open(root / "findings.json") as f:
        data = json.load(f)
    assert data["reference_run"] == "control_seed1" and len(data["rows"]) == len(F.CLAIM_IDS)
    assert _row(data, "balanced_sampling")["verdict"] == F.SUPPORTED
    assert (root / "figures" / "findings_forest.png").exists()
    assert not math.isnan(_row(data, "balanced_sampling")["effect"])
