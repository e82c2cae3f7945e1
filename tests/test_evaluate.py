"""evaluate(): scores on a packed index, capping, sharing; the train and evaluate command lines."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from panns_core import evaluate as E
from panns_core import train as T
from panns_core.data.pack import eval_set_sha256
from panns_core.metrics import audio_tagging_metrics
from panns_core.models import create_model
from train_doubles import TINY_MODEL, make_corpus

MODEL_KW = {k: v for k, v in TINY_MODEL.items() if k != "model"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = create_model("Cnn6", classes_num=5, **MODEL_KW)
    # Give BatchNorm real statistics so that scores differ between clips.
    m.train()
    with torch.no_grad():
        m(torch.randn(8, 8000) * 0.1)
    return m.eval()


def _eval_index(corpus):
    return f"{corpus}/hdf5s/indexes/eval.h5"


def test_evaluate_scores_every_clip_of_the_index(corpus, model):
    from panns_core.data.index import read_index
    from panns_core.data.reader import AudioSetDataset

    index = _eval_index(corpus)
    result = E.evaluate(model, index, batch_size=7, device="cpu")
    table = read_index(index)
    dataset = AudioSetDataset(sample_rate=8000)
    waves = torch.stack([torch.from_numpy(dataset[{"hdf5_path": p, "index_in_hdf5": i}]["waveform"])
                         for p, i in zip(table.hdf5_paths, table.index_in_hdf5)])
    with torch.no_grad():
        direct = model(waves)["clipwise_output"].numpy()
    np.testing.assert_allclose(result["clipwise_output"], direct, rtol=1e-5, atol=1e-6)
    expected = audio_tagging_metrics(table.targets, result["clipwise_output"])
    assert {k: result[k] for k in expected} == expected
    assert result["num_clips"] == 25 and result["audio_names"] == table.audio_names
    assert result["eval_set_sha256"] == eval_set_sha256(index)
    assert model.training is False


def test_max_clips_caps_the_evaluated_set(corpus, model):
    result = E.evaluate(model, _eval_index(corpus), batch_size=4, max_clips=6)
    assert result["num_clips"] == 6 and result["clipwise_output"].shape == (6, 5)
    assert result["eval_set_sha256"] == E.ids_sha256(result["audio_names"])
    with pytest.raises(ValueError, match="max_clips must be >= 1"):
        E.evaluate(model, _eval_index(corpus), max_clips=0)
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        E.evaluate(model, f"{corpus}/hdf5s/indexes/missing.h5")


def test_released_checkpoint_format_through_the_command_line(corpus, model, tmp_path, capsys):
    """{'model': state_dict} (Zenodo) and {'iteration', 'model'} files, with --model and overrides."""
    index = _eval_index(corpus)
    reference = E.evaluate(model, index)
    path = tmp_path / "released.pth"
    torch.save({"iteration": 600000, "model": model.state_dict()}, path)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in MODEL_KW.items()]
    out_json = tmp_path / "scores.json"
    record = E.main(["--checkpoint", str(path), "--model", "Cnn6", "--data", index, "--output", str(out_json),
                     "--no-progress", *flags])
    assert record["mAP"] == pytest.approx(reference["mAP"], abs=1e-9)
    assert json.loads(out_json.read_text())["d_prime"] == pytest.approx(reference["d_prime"], abs=1e-9)
    assert "mAP" in capsys.readouterr().out
    with pytest.raises(ValueError, match="pass --model"):
        E.main(["--checkpoint", str(path), "--data", index, "--no-progress"])


def test_train_then_evaluate_from_the_command_line(corpus, tmp_path):
    run = tmp_path / "run"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY_MODEL.items()]
    T.main([*flags, "--data-root", corpus, "--training-set", "balanced_train", "--eval-splits", '["eval"]',
            "--batch-size", "8", "--iterations", "2", "--eval-every", "2", "--run-dir", str(run),
            "--device", "cpu", "--progress", "false", "--quiet"])
    lines = T.read_statistics(run)
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    best_line = next(l for l in lines if l["iteration"] == best["iteration"])
    # Our checkpoints carry their config: no --model or front-end flags needed.
    record = E.main(["--checkpoint", str(run / "checkpoints" / "best.pt"), "--data", _eval_index(corpus),
                     "--batch-size", "8", "--no-progress", "--per-class"])
    assert record["model"] == "Cnn6"
    assert record["mAP"] == pytest.approx(best_line["mAP"], abs=1e-6)
    assert record["AP"] == pytest.approx(best_line["AP"], abs=1e-6)


def test_command_line_errors_are_clear(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "panns_core.evaluate", "--checkpoint", str(tmp_path / "nope.pt"),
         "--data", str(tmp_path / "eval.h5")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "index file not found" in proc.stderr and "eval.h5" in proc.stderr
