"""Findings from released-checkpoint result files: which claims they test, the paired
per-class spread, same-eval-set requirement, and the reasons for 'not measured'."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from panns_core.study import findings
from panns_core.study.released_eval import load_registry, read_results

SHA = "ab" * 32


def result(model, per_class, sha=SHA, clips=100):
    ap = [None if v is None else float(v) for v in per_class]
    present = [v for v in ap if v is not None]
    return {"format": findings.RELEASED_FORMAT, "model": model, "mAP": float(np.mean(present)),
            "per_class_AP": ap, "eval_set": {"num_clips": clips, "sha256": sha}, "precision": "fp32"}


def write(tmp_path, results):
    folder = tmp_path / "released"
    folder.mkdir(parents=True, exist_ok=True)
    for r in results:
        (folder / f"{r['model']}.json").write_text(json.dumps(r))
    (folder / "errors.json").write_text("{}")
    return tmp_path


def test_claims_from_released_scores(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.6, 50)
    noise = rng.normal(0, 0.01, 50)
    rows = [result("Cnn6", base), result("Cnn10", base + 0.03 + noise), result("Cnn14", base + 0.06),
            result("MobileNetV1", base + 0.01),
            # 8 kHz below 16 kHz on every class but one: the 4-8 kHz claim is supported
            result("Cnn14_16k", base + 0.07), result("Cnn14_8k", base - 0.02)]
    data = findings.compute_findings(str(write(tmp_path, rows)))
    by_id = {r["id"]: r for r in data["rows"]}
    assert data["released_checkpoints"] == sorted(r["model"] for r in rows)
    assert data["released_method"] == findings.RELEASED_METHOD

    deeper = by_id["deeper_cnns"]
    assert deeper["verdict"] == findings.SUPPORTED and deeper["source"] == "released checkpoints"
    assert deeper["ours_values"] == {"CNN6": pytest.approx(base.mean()), "CNN10": pytest.approx((base + 0.03 + noise).mean()),
                                     "CNN14": pytest.approx(base.mean() + 0.06)}
    assert deeper["evidence"]["runs"] == ["released/Cnn6.json", "released/Cnn10.json", "released/Cnn14.json"]
    assert f"eval set 100 clips, sha256 {SHA}" in deeper["ours"]
    assert deeper["n_classes"] == 50 and deeper["n_seeds"] is None and len(deeper["steps"]) == 2
    assert "classes with positives are the replicates" in deeper["design"]

    mobile = by_id["mobilenets_tradeoff"]  # MobileNetV1 below the best CNN on every class, and far cheaper
    assert mobile["verdict"] == findings.SUPPORTED and "multiply-adds 3.61e9 (MobileNetV1)" in mobile["ours"]
    assert by_id["sample_rate"]["verdict"] == findings.SUPPORTED
    assert by_id["sample_rate"]["effect"] == pytest.approx(0.09, abs=1e-6)
    assert by_id["wavegram_logmel_best"]["ours"] == "no released checkpoint for: Wavegram-Logmel-CNN"
    assert by_id["embedding_size"]["ours"] == "no released checkpoint for: embedding <= 128 (best of)"
    for claim in ("balanced_sampling", "mixup", "more_data", "hop_size", "mel_bins", "logmel_mixup"):
        assert by_id[claim]["verdict"] == findings.NOT_TESTED
        assert by_id[claim]["ours"].startswith("no released checkpoint for: ")


def test_released_interval_is_over_paired_per_class_differences():
    a = result("Cnn6", [0.1, 0.2, 0.3, None])
    b = result("Cnn10", [0.2, 0.31, 0.42, 0.9])  # the class without an AP in a is left out
    d = np.array([0.1, 0.11, 0.12])
    iv = findings.paired_class_interval(a, b)
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    assert iv.replicates == [0, 1, 2] and iv.effect == pytest.approx(d.mean())
    assert iv.ci == pytest.approx([d.mean() - half, d.mean() + half])
    claim = next(c for c in findings.CLAIMS if c.id == "deeper_cnns")
    row = findings.released_claim(claim, {"Cnn6": a, "Cnn10": b})
    assert row["verdict"] == findings.SUPPORTED and row["ci"][0] > 0  # every class up: above 0
    b["per_class_AP"] = [0.05, 0.25, 0.5, None]  # -0.05, +0.05, +0.2: the interval contains 0
    b["mAP"] = float(np.mean([0.05, 0.25, 0.5]))
    row = findings.released_claim(claim, {"Cnn6": a, "Cnn10": b})
    assert row["verdict"] == findings.INCONCLUSIVE and row["ci"][0] < 0 < row["ci"][1]
    b["per_class_AP"] = [0.0, 0.1, 0.19, None]  # every class down: contradicted
    b["mAP"] = float(np.mean([0.0, 0.1, 0.19]))
    assert findings.released_claim(claim, {"Cnn6": a, "Cnn10": b})["verdict"] == findings.CONTRADICTED


def test_different_eval_sets_are_not_compared(tmp_path):
    rows = [result("Cnn6", [0.1, 0.2]), result("Cnn10", [0.5, 0.6], sha="cd" * 32)]
    row = {r["id"]: r for r in findings.compute_findings(str(write(tmp_path, rows)))["rows"]}["deeper_cnns"]
    assert row["verdict"] == findings.NOT_TESTED and row["ours"].startswith("the checkpoints were scored on "
                                                                              "different eval sets")


def test_read_results_and_registry_file(tmp_path):
    write(tmp_path, [result("Cnn6", [0.1, 0.2])])
    (tmp_path / "released" / "notes.json").write_text(json.dumps({"format": "other"}))
    assert list(read_results(str(tmp_path / "released"))) == ["Cnn6"]
    bad = tmp_path / "released" / "Cnn10.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="Cnn10.json: not valid JSON"):
        read_results(str(tmp_path / "released"))

    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps([{"filename": "Cnn6_mAP=0.343.pth", "model_name": "Cnn6", "md5": None}]))
    entry = load_registry(str(registry))["Cnn6_mAP=0.343.pth"]
    assert (entry.model_name, entry.md5) == ("Cnn6", None)
    registry.write_text(json.dumps([{"filename": "x.pth"}]))
    with pytest.raises(ValueError, match="registry.json: entry 0 needs 'filename' and 'model_name'"):
        load_registry(str(registry))
