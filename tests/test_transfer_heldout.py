"""Held-out-class transfer on the generated corpus: classes the corpus (and so the backbone) never held."""

import csv
import os

import numpy as np
import pandas as pd
import pytest

from panns_core.data.synthetic import CLASSES, MAX_CLASSES, write_heldout_folder
from panns_core.transfer import TransferConfig, parse_folder
from panns_core.transfer.api import run_folder_task


def _rows(csv_path):
    with open(csv_path, newline="") as f:
        return list(csv.DictReader(f))


def test_heldout_folder_holds_only_the_requested_classes_with_a_train_test_split(tmp_path):
    csv_path = write_heldout_folder(str(tmp_path / "ho"), first_class=10, num_classes=3, train_per_class=4,
                                    test_per_class=2, clip_seconds=0.5, sample_rate=16000)
    rows = _rows(csv_path)
    expected = {c.display_name for c in CLASSES[10:13]}
    assert {r["label"] for r in rows} == expected
    assert not expected & {c.display_name for c in CLASSES[:10]}  # disjoint from a 10-class corpus
    assert sum(r["fold"] == "train" for r in rows) == 3 * 4 and sum(r["fold"] == "test" for r in rows) == 3 * 2
    data = parse_folder(csv_path, task="corpus_heldout", clip_seconds=0.5)
    assert data.summary()["protocol"] == "holdout" and data.summary()["clips_per_fold"] == {"train": 12, "test": 6}
    import soundfile as sf

    audio, sr = sf.read(os.path.join(os.path.dirname(csv_path), rows[0]["filename"]))
    assert sr == 16000 and len(audio) == 8000 and np.abs(audio).max() > 0


def test_heldout_folder_is_deterministic_and_regenerated_when_settings_change(tmp_path):
    root = str(tmp_path / "ho")
    kwargs = dict(first_class=12, num_classes=2, train_per_class=2, test_per_class=1, clip_seconds=0.25)
    path = write_heldout_folder(root, **kwargs)
    first = open(os.path.join(root, _rows(path)[0]["filename"]), "rb").read()
    other = str(tmp_path / "again")
    write_heldout_folder(other, **kwargs)
    assert open(os.path.join(other, _rows(path)[0]["filename"]), "rb").read() == first
    write_heldout_folder(root, **{**kwargs, "train_per_class": 3})
    assert sum(r["fold"] == "train" for r in _rows(path)) == 6


@pytest.mark.parametrize("bad", [dict(first_class=MAX_CLASSES - 1, num_classes=2), dict(first_class=0, num_classes=1),
                                 dict(first_class=10, num_classes=2, train_per_class=0)])
def test_heldout_folder_rejects_impossible_class_ranges(tmp_path, bad):
    with pytest.raises(ValueError):
        write_heldout_folder(str(tmp_path / "ho"), **bad)


def test_run_folder_task_writes_results_the_findings_read(tmp_path):
    csv_path = write_heldout_folder(str(tmp_path / "ho"), first_class=10, num_classes=2, train_per_class=2,
                                    test_per_class=1, clip_seconds=1.0)
    cfg = TransferConfig(backbone="Cnn6", iterations=1, head_iterations=3, batch_size=2, clip_seconds=1.0,
                         spec_augment="scaled")
    out = run_folder_task("corpus_heldout", csv_path, cfg, strategies=["scratch", "freeze_l1"], shots=[1, 2],
                          folds=None, seeds=[0, 1], run_root=str(tmp_path / "runs"), log=None)
    results = pd.read_csv(out["paths"]["results"], dtype={"shots": str})
    assert len(results) == 2 * 2 * 2  # strategies x shots x seeds
    assert set(results["shots"]) == {"1", "2"} and set(results["fold"]) == {"test"}
    assert results["score"].between(0, 1).all()
    assert out["paths"]["results"] == str(tmp_path / "runs" / "transfer" / "corpus_heldout" / "results.csv")
