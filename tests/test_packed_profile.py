"""A profile on your own, already packed data: no re-packing, no paper columns, the real training set named.

The "own data" is the generated corpus packed with ``python -m panns_core.data pack``
and declared as a data source that is not AudioSet (``data_source: my_sounds``,
``data: {packed: PATH}``); the pipeline runs its data stages, one training run and
the tables notebook for real (papermill).
"""

import json
import os

import pandas as pd
import pytest
import yaml

from panns_core.data.__main__ import main as data_main
from panns_core.data.synthetic import generate_corpus
from panns_core.study.workflow import run_study


@pytest.mark.slow(54)
def test_profile_on_a_packed_copy_uses_it_as_it_is(tmp_path, capfd):
    packed = tmp_path / "my_sounds"
    generate_corpus(str(packed), num_classes=4, clip_seconds=1.0, balanced_per_class=3, eval_per_class=3,
                    unbalanced_clips=12, bank_size=2)
    assert data_main(["pack", str(packed), "--clip-seconds", "1", "--sample-rate", "32000"]) == 0
    waveforms = sorted((packed / "hdf5s" / "waveforms").rglob("*.h5"))
    before = {p: p.stat().st_mtime_ns for p in waveforms}
    assert waveforms

    profile = {
        "name": "mine", "data_source": "my_sounds", "data": {"packed": str(packed), "pack": {"validation_fraction": 0.25}},
        "train": {"model": "Cnn6", "training_set": "full_train_minus_validation", "batch_size": 2, "iterations": 2,
                  "eval_every": 2, "checkpoint_every": 1000000, "device": "cpu"},
        "reference_run": "base", "keep_latest_checkpoint": False,
        "runs": {"base": {}, "mel_32": {"mel_bins": 32, "groups": ["mel_bins"]}},
        "notebooks": ["01_download_audioset", "02_pack_and_index", "03_train_system", "10_tables_audioset"],
    }
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(profile))
    log = []
    root = tmp_path / "project"
    assert run_study(str(path), root=str(root), log=log.append).ok, log
    assert "without encryption" not in capfd.readouterr().err  # kernels talk over local IPC sockets, not TCP

    # The packed waveform files were read, never rewritten; the missing indexes were built beside them.
    assert {w: w.stat().st_mtime_ns for w in waveforms} == before
    assert (packed / "hdf5s" / "indexes" / "full_train_minus_validation.h5").exists()
    stage = json.loads((root / "runs" / "mine" / "stages" / "train_base.json").read_text())
    assert stage["parameters"]["data_root"] == str(packed)
    assert stage["parameters"]["config"]["max_eval_clips"] == 1000  # own-data default, not the whole splits
    stats = pd.read_json(root / "runs" / "mine" / "train" / "base" / "statistics.jsonl", lines=True)
    assert set(stats["split"]) == {"eval", "validation"} and (stats["eval_seconds"] > 0).all()

    # Tables: ours only, and the training index each run really read.
    figures = root / "figures" / "mine"
    for table_id in ("table_IV", "table_V", "table_X", "table_XI"):
        df = pd.read_csv(figures / f"{table_id}.csv")
        assert not [c for c in df.columns if c.endswith((" paper", " ours", " diff"))], (table_id, list(df.columns))
    mel = pd.read_csv(figures / "table_X.csv").set_index("run")
    assert sorted(mel.index) == ["base", "mel_32"] and set(mel["trained on"]) == {"full_train_minus_validation"}
    assert mel.loc["mel_32", "mel_bins"] == 32 and 0 <= mel.loc["mel_32", "mAP"] <= 1

    # The manifest separates what this profile does not make from what is missing.
    manifest = json.loads((root / "runs" / "mine" / "manifest.json").read_text())
    assert manifest["missing"] == {} and "fig_3" in manifest["not_in_profile"]
    assert any("0 missing" in line and "not in this profile" in line for line in log)
