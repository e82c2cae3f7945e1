"""The findings rules on synthetic run folders: holds, does not hold, not measured."""

import json

import pytest

from panns_core.study import findings as F


def _run(root, name, *, final_map, seed=1234, iterations=100, val=None, **config):
    """A run folder whose eval mAP rises linearly to ``final_map`` (validation follows eval unless given)."""
    d = root / "train" / name
    d.mkdir(parents=True)
    cfg = {"model": "Cnn6", "training_set": "full_train_minus_validation", "balanced": "balanced",
           "augmentation": "mixup", "batch_size": 8, "learning_rate": 1e-3, "seed": seed,
           "iterations": iterations, **config}
    (d / "config.json").write_text(json.dumps(cfg))
    lines = []
    for it in range(0, iterations + 1, 50):
        m = 0.1 + (final_map - 0.1) * it / iterations
        lines.append({"iteration": it, "split": "eval", "mAP": m})
        lines.append({"iteration": it, "split": "validation", "mAP": m if val is None else val[it // 50]})
    (d / "statistics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def _profile(root, reference="base"):
    (root / "profile.json").write_text(json.dumps({"reference_run": reference}))


def _row(data, claim_id):
    return next(r for r in data["rows"] if r["id"] == claim_id)


@pytest.fixture
def root(tmp_path):
    _profile(tmp_path)
    _run(tmp_path, "base", final_map=0.80)
    _run(tmp_path, "base_seed2", final_map=0.78, seed=2)
    _run(tmp_path, "base_seed3", final_map=0.79, seed=3)  # seed std 0.01
    return tmp_path


def test_spread_is_the_seed_std_of_the_reference(root):
    data = F.compute_findings(str(root))
    assert data["spread"]["value"] == pytest.approx(0.01)
    assert sorted(data["spread"]["runs"]) == ["base", "base_seed2", "base_seed3"]
    assert "3 seeds" in data["spread"]["rule"]


def test_spread_falls_back_to_curve_jitter_with_one_seed(tmp_path):
    _profile(tmp_path)
    _run(tmp_path, "base", final_map=0.4, iterations=100)  # eval 0.1, 0.25, 0.4
    data = F.compute_findings(str(tmp_path))
    assert data["spread"]["value"] == pytest.approx(0.15)
    assert "curve jitter" in data["spread"]["rule"]


def test_holds_when_every_step_beats_the_spread(root):
    _run(root, "no_mixup", final_map=0.70, augmentation="none")
    _run(root, "no_bal_no_mixup", final_map=0.60, augmentation="none", balanced="none")
    _run(root, "sr_16k", final_map=0.75, sample_rate=16000, window_size=512, hop_size=160, fmax=8000)
    _run(root, "sr_8k", final_map=0.65, sample_rate=8000, window_size=256, hop_size=80, fmax=4000)
    data = F.compute_findings(str(root))
    for claim in ("balanced_sampling", "mixup", "sample_rate"):
        row = _row(data, claim)
        assert row["verdict"] == F.HOLDS, row
    mixup = _row(data, "mixup")
    assert mixup["evidence"]["runs"] == ["no_mixup", "base"]
    assert mixup["ours_values"] == {"balanced, no mixup": pytest.approx(0.70),
                                    "balanced + log-mel mixup": pytest.approx(0.80)}
    assert "0.416" in mixup["paper"] and "0.431" in mixup["paper"]
    assert _row(data, "sample_rate")["evidence"]["runs"] == ["sr_8k", "sr_16k", "base"]


def test_does_not_hold_within_the_spread_or_reversed(root):
    _run(root, "no_mixup", final_map=0.795, augmentation="none")  # +0.005 < spread 0.01
    _run(root, "mel_32", final_map=0.85, mel_bins=32)  # reversed
    _run(root, "mel_128", final_map=0.90, mel_bins=128)
    data = F.compute_findings(str(root))
    assert _row(data, "mixup")["verdict"] == F.FAILS
    assert _row(data, "mel_bins")["verdict"] == F.FAILS


def test_not_measured_when_runs_are_missing(root):
    data = F.compute_findings(str(root))
    for row in data["rows"]:
        assert row["verdict"] == F.NOT_MEASURED, row
        assert row["evidence"]["runs"] == []
    assert data["verdicts"][F.NOT_MEASURED] == len(data["rows"])
    assert "runs missing" in _row(data, "wavegram_logmel_best")["ours"]


def test_runs_are_compared_on_the_same_iteration_budget(root):
    # A shorter run at 0.50 after 50 iterations; the reference had 0.45 at iteration 50: the
    # reference's later, higher evaluations must not count.
    _run(root, "mel_32", final_map=0.50, mel_bins=32, iterations=50)
    _run(root, "mel_128", final_map=0.60, mel_bins=128, iterations=50)
    row = _row(F.compute_findings(str(root)), "mel_bins")
    assert "iteration budget 50" in row["ours"]
    assert row["ours_values"]["64 mel bins"] == pytest.approx(0.45)
    assert row["verdict"] == F.FAILS  # 0.50 > 0.45: the 64-bin reference loses to 32 bins at this budget


def test_score_uses_the_best_validation_iteration(tmp_path):
    _profile(tmp_path)
    _run(tmp_path, "base", final_map=0.8, iterations=100, val=[0.1, 0.9, 0.5])
    run = F.read_run(str(tmp_path / "train" / "base"))
    assert run.score() == (pytest.approx(0.45), 50)


def test_mobilenet_tradeoff_needs_fewer_multiply_adds(root):
    _run(root, "mobilenetv1", final_map=0.6, model="MobileNetV1")
    row = _row(F.compute_findings(str(root)), "mobilenets_tradeoff")
    assert row["verdict"] == F.HOLDS
    assert "multiply-adds" in row["ours"]


def test_transfer_claims(root):
    import pandas as pd

    rows = []
    for seed in range(3):
        for shots, ft, sc in (("1", 0.6, 0.2), ("5", 0.8, 0.6), ("all", 0.9, 0.85)):
            rows += [{"task": "heldout", "strategy": "finetune", "shots": shots, "fold": "1", "seed": seed,
                      "score": ft + 0.01 * seed},
                     {"task": "heldout", "strategy": "scratch", "shots": shots, "fold": "1", "seed": seed,
                      "score": sc + 0.01 * seed}]
    out = root / "transfer" / "heldout"
    out.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(out / "results.csv", index=False)
    data = F.compute_findings(str(root))
    assert _row(data, "pretraining_transfer")["verdict"] == F.HOLDS
    few = _row(data, "pretraining_few_shot")
    assert few["verdict"] == F.HOLDS and "+0.400 at 1 shot(s)" in few["ours"]


def test_write_findings_and_frame(root):
    path = F.write_findings(str(root))
    df = F.findings_frame(path)
    assert list(df.columns) == ["id", "claim", "paper", "ours", "verdict", "evidence"]
    assert len(df) == len(F.CLAIMS) + 2
    assert set(df["verdict"]) <= set(F.VERDICTS)


def test_bad_statistics_file_names_the_file(tmp_path):
    d = tmp_path / "train" / "broken"
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    (d / "statistics.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match=r"statistics.jsonl:1"):
        F.read_run(str(d))


def test_a_shorter_chain_is_read_when_the_claim_allows_it(root):
    _run(root, "cnn10", final_map=0.9, model="Cnn10")  # no CNN14 run
    row = _row(F.compute_findings(str(root)), "deeper_cnns")
    assert row["verdict"] == F.HOLDS
    assert row["evidence"]["runs"] == ["base", "cnn10"] and "not run: CNN14" in row["ours"]


def test_findings_markdown_has_one_row_per_claim_and_the_rules(root):
    data = F.compute_findings(str(root))
    md = F.findings_markdown(data)
    assert md.startswith("## Findings")
    table_rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| claim")]
    assert len(table_rows) == len(data["rows"])
    assert data["rule"] in md and data["spread"]["rule"] in md
    assert F.findings_markdown(F.write_findings(str(root))) == md  # from the file: the same section


def test_findings_notebook_writes_findings_json(root, tmp_path_factory):
    pm = pytest.importorskip("papermill")
    import os

    import pandas as pd

    rows = [{"task": "heldout", "strategy": strategy, "shots": shots, "fold": "test", "seed": seed, "score": 0.5,
             "clips_per_class": int(shots), "metric": "accuracy"}
            for seed in range(2) for shots in ("1", "5") for strategy in ("scratch", "finetune")]
    (root / "transfer" / "heldout").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(root / "transfer" / "heldout" / "results.csv", index=False)
    notebook = os.path.join(os.path.dirname(__file__), "..", "notebooks", "18_findings.ipynb")
    out = tmp_path_factory.mktemp("nb") / "18.ipynb"
    pm.execute_notebook(notebook, str(out), parameters=dict(profile="test", run_root=str(root),
                                                             figures_dir=str(root / "figures")),
                        kernel_name="python3", progress_bar=False, cwd=str(root))
    with open(root / "findings.json") as f:
        data = json.load(f)
    assert data["reference_run"] == "base" and len(data["rows"]) == len(F.CLAIMS) + 2
    assert _row(data, "pretraining_few_shot")["verdict"] == F.FAILS  # equal scores: no gap
    assert (root / "figures" / "findings_transfer_heldout.png").exists()
