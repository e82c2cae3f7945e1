"""The training benchmark's reduced mode runs on CPU and reports every figure it promises."""

import math

import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("bench_training")


def test_quick_cpu_run_reports_speed_map_and_loader(bench, tmp_path, capsys):
    out = tmp_path / "training.json"
    report = bench.main(["--device", "cpu", "--quick", "--json", str(out)])
    assert out.exists()
    timed = [(r["model"], r["precision"], r["stft"]) for r in report["training"]]
    assert timed == [("Cnn6", "fp32", "conv"), ("Cnn6", "fp32", "fft"), ("Cnn6", "bf16", "fft")]
    for r in report["training"]:
        assert r["clips_per_s"] > 0 and r["input_clips_per_s"] == pytest.approx(2 * r["clips_per_s"])
    assert [(r["precision"], r["steps"]) for r in report["map"]] == [("fp32", 1), ("bf16", 1)]
    assert all(0.0 <= r["mAP"] <= 1.0 and not math.isnan(r["mAP"]) for r in report["map"])
    (loader,) = report["loader"]
    assert loader["workers"] == 0 and loader["clips"] == 2 * 4 and loader["clips_per_s"] > 0
    printed = capsys.readouterr().out
    assert "| Cnn6 | bf16 | False | False | fft |" in printed and "| Cnn6 | fp32 | False | False | conv |" in printed
    assert "loader workers" in printed


def test_gpu_suite_is_cnn14_batch32_with_the_three_variants_and_the_stft_comparison(bench):
    suite = bench.SUITES["cuda"]
    assert suite["models"] == ["Cnn14"] and suite["batch"] == 32
    # fp32 eager, bf16 + channels_last, + compile (issue: GPU training); conv vs FFT STFT side by side
    assert suite["variants"] == [("fp32", False, False, "conv"), ("fp32", False, False, "fft"),
                                 ("bf16", True, False, "conv"), ("bf16", True, False, "fft"),
                                 ("bf16", True, True, "conv"), ("bf16", True, True, "fft")]
    assert suite["loader_workers"]
