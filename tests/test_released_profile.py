"""The `released` profile end to end, offline.

Stand-ins for what needs the network: the Hub mirror is a local copy in its exact
schema (parquet shards of FLAC clips at 48/44.1 kHz, read through ``acquire: {hf_dir}``),
Zenodo is a local HTTP server with its records API (md5 in the metadata) serving
official-format checkpoint files of the real small architectures (random weights;
tests/test_released_eval.py), and the transfer datasets are generated stand-ins. The
packaged profile is used as written except for those sources and smaller sizes.
"""

import hashlib
import http.server
import io
import json
import os
import shutil
import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import yaml
from test_released_eval import RECORD, ZenodoLike, official_checkpoint

from panns_core.study import findings
from panns_core.data.audioset import Segment, write_segments_csv
from panns_core.evaluate import ids_sha256
from panns_core.study.profiles import load_profile
from panns_core.study.workflow import run_study

RESOURCES = os.path.join(os.path.dirname(__file__), "..", "panns_core", "resources")
LABELS = ["/m/09x0r", "/m/04rlf", "/m/0bt9lr", "/m/01b_21"]
AUDIO_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
SCHEMA = pa.schema([("video_id", pa.string()), ("audio", AUDIO_TYPE),
                    ("labels", pa.list_(pa.string())), ("human_labels", pa.list_(pa.string()))])
MODELS = {"Cnn6": "Cnn6_mAP=0.343.pth", "Cnn10": "Cnn10_mAP=0.380.pth", "MobileNetV1": "MobileNetV1_mAP=0.389.pth"}


def flac(rate, seconds, seed):
    buf = io.BytesIO()
    x = 0.2 * np.random.default_rng(seed).standard_normal(int(rate * seconds))
    sf.write(buf, x, rate, subtype="PCM_24", format="FLAC")
    return buf.getvalue()


def make_mirror_and_metadata(tmp_path, n=10):
    """Eval shards in the mirror's schema (one CSV clip absent) and the official-format CSVs."""
    ids = [f"clip{i:07d}" for i in range(n)]
    labels = {y: [LABELS[i % 4]] + ([LABELS[(i + 1) % 4]] if i % 3 == 0 else []) for i, y in enumerate(ids)}
    rows = [{"video_id": y, "audio": {"bytes": flac(48000 if i % 2 else 44100, 1.0, i), "path": f"{y}.flac"},
             "labels": labels[y], "human_labels": ["x"] * len(labels[y])} for i, y in enumerate(ids[:-1])]
    shard_dir = tmp_path / "mirror" / "data" / "eval"
    shard_dir.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), shard_dir / "eval_00.parquet", row_group_size=4)
    meta = tmp_path / "data" / "audioset" / "metadata"
    meta.mkdir(parents=True)
    shutil.copy(os.path.join(RESOURCES, "class_labels_indices.csv"), meta)
    write_segments_csv(str(meta / "eval_segments.csv"), [Segment(y, 0.0, 10.0, tuple(labels[y])) for y in ids])
    # training CSVs (labels only): the clip counts that rank the classes in Figs. 3 and 12
    for split, k in (("balanced_train", 3), ("unbalanced_train", 12)):
        write_segments_csv(str(meta / f"{split}_segments.csv"),
                           [Segment(f"{split[:3]}{i:08d}", 0.0, 10.0, (LABELS[min(i % 5, 3)],))
                            for i in range(k)])
    return ids[:-1]


@pytest.fixture
def zenodo(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    ZenodoLike.files, ZenodoLike.checksums, ZenodoLike.requests = {}, {}, []
    for seed, (model, filename) in enumerate(MODELS.items()):
        path = served / filename
        ZenodoLike.checksums[filename] = official_checkpoint(path, model, seed)
        ZenodoLike.files[filename] = str(path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ZenodoLike)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def released_fixture_profile(tmp_path, base):
    """The packaged profile with the offline sources and small sizes substituted."""
    profile = yaml.safe_load(open(load_profile("released")["_path"]))
    profile["data"]["acquire"] = {"source": "hf", "splits": ["eval"], "hf_dir": str(tmp_path / "mirror"),
                                  "skip_metadata": True}
    profile["data"]["pack"].update(clip_seconds=1.0)
    # mirror of the record: no md5 in this table, so Zenodo's metadata must verify each file
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps([{"filename": f, "model_name": m, "md5": None} for m, f in MODELS.items()]))
    items = []
    for item in profile["notebooks"]:
        stem = item if isinstance(item, str) else next(iter(item))
        params = {} if isinstance(item, str) else dict(item[stem])
        if stem in ("00_environment_and_data", "11_table_complexity"):
            continue  # no reading of the released results (Table XII is tested in test_complexity/test_pipeline)
        if stem == "08_score_released_checkpoints":
            params.update(zenodo_base=base, zenodo_record=RECORD, registry_file=str(registry), max_eval_clips=8,
                          batch_size=4, checkpoint_dir=str(tmp_path / "checkpoints"))
        if stem == "20_transfer_task":
            params.update(tasks=["esc50"], backbone="Cnn6", synthetic=True, download=False, clip_seconds=1.0,
                          checkpoint=str(tmp_path / "checkpoints" / MODELS["Cnn6"]), shots=["all"], folds=1,
                          seeds=[0], head_iterations=5, batch_size=4)
        items.append({stem: params} if params else stem)
    profile["notebooks"] = items
    path = tmp_path / "released_fixture.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


@pytest.mark.slow(52)
def test_released_profile_end_to_end(tmp_path, zenodo):
    packed_ids = make_mirror_and_metadata(tmp_path)
    log = []
    assert run_study(str(released_fixture_profile(tmp_path, zenodo)), root=str(tmp_path), log=log.append).ok, \
        "\n".join(log)
    run_root, figures = tmp_path / "runs" / "released", tmp_path / "figures" / "released"

    # every checkpoint was downloaded from the Zenodo stand-in, verified by its published md5, and scored
    results = {m: json.load(open(run_root / "released" / f"{m}.json")) for m in MODELS}
    assert json.load(open(run_root / "released" / "errors.json")) == {}
    full_sha = ids_sha256(sorted(f"Y{y}.wav" for y in packed_ids))
    for model, r in results.items():
        assert r["checkpoint"]["md5"] == ZenodoLike.checksums[MODELS[model]]
        assert "Zenodo record metadata" in r["checkpoint"]["verified_by"]
        assert r["eval_set"]["num_clips"] == 8 and r["eval_set"]["full_num_clips"] == len(packed_ids) == 9
        assert r["eval_set"]["full_sha256"] == full_sha
        assert r["eval_set"]["data_source"]["source"] == "hf"
    sha = results["Cnn6"]["eval_set"]["sha256"]
    assert {r["eval_set"]["sha256"] for r in results.values()} == {sha}

    # tables: paper / released / difference, every scored row carrying the eval set's size and SHA-256
    import pandas as pd

    xi = pd.read_csv(figures / "table_XI.csv")
    assert list(xi["model"]) == list(findings.paper.TABLE_XI)
    for model, r in results.items():
        row = xi[xi["model"] == model].iloc[0]
        assert row["released mAP"] == pytest.approx(r["mAP"]) and row["paper mAP"] == r["paper"]["mAP"]
        assert row["diff mAP"] == pytest.approx(r["mAP"] - r["paper"]["mAP"])
        assert (row["eval clips"], row["eval sha256"]) == (8, sha)
    assert xi[xi["model"] == "Cnn14"]["released mAP"].isna().all()
    assert json.load(open(figures / "table_XI.json"))["meta"]["eval_sets"] == [f"8 clips, sha256 {sha}"]
    for artefact in ("fig_3", "fig_5", "fig_12", "table_XIII", "fig_6"):
        record = json.load(open(figures / f"{artefact}.json"))
        assert all((figures / f).is_file() for f in record["files"]), artefact
    for artefact in ("fig_3", "fig_5", "fig_12"):
        assert sha in json.load(open(figures / f"{artefact}.json"))["caption"]
    for artefact in ("table_IX", "table_X", "table_VII"):  # no checkpoint of these rows in the stand-in record
        assert not (figures / f"{artefact}.json").exists()
    manifest = json.load(open(run_root / "manifest.json"))
    assert "table_XI" in manifest["artefacts"] and "table_IX" in manifest["missing"]

    # transfer from the downloaded checkpoint on the stand-in dataset
    transfer = pd.read_csv(run_root / "transfer" / "esc50" / "results.csv")
    assert set(transfer["strategy"]) == {"freeze_l1", "freeze_l3"}

    # findings: verdicts from the released scores where the checkpoints test a claim, the eval set named
    rows = {r["id"]: r for r in json.load(open(run_root / "findings.json"))["rows"]}
    for claim in ("mobilenets_tradeoff", "deeper_cnns"):
        assert rows[claim]["verdict"] in (findings.SUPPORTED, findings.CONTRADICTED, findings.INCONCLUSIVE), rows[claim]
        assert rows[claim]["source"] == "released checkpoints" and sha in rows[claim]["ours"]
    cnn6, cnn10 = results["Cnn6"], results["Cnn10"]
    deeper = rows["deeper_cnns"]
    assert deeper["ours_values"] == {"CNN6": pytest.approx(cnn6["mAP"]), "CNN10": pytest.approx(cnn10["mAP"])}
    expected = findings.paired_class_interval(cnn6, cnn10)  # per-class AP differences, classes as replicates
    assert deeper["effect"] == pytest.approx(expected.effect, abs=1e-4) and deeper["verdict"] == expected.verdict
    assert deeper["n_classes"] == expected.n and deeper["n_seeds"] is None
    assert rows["sample_rate"]["verdict"] == findings.NOT_TESTED
    assert rows["sample_rate"]["ours"] == "no released checkpoint for: 8 kHz, 16 kHz"  # CNN6/10 are 32 kHz
    assert rows["mel_bins"]["ours"].startswith("no released checkpoint for: 32 mel bins")
    assert rows["pretraining_transfer"]["verdict"] == findings.NOT_TESTED
    assert rows["pretraining_transfer"]["ours"] == ("needs finetune and scratch runs; transfer ran freeze_l1, "
                                                    "freeze_l3 on esc50")


def test_an_eval_only_packed_copy_is_used_as_it_is(tmp_path):
    """``data: {packed: PATH}`` with an eval-only copy (what the released profile needs)."""
    from test_released_eval import make_eval_set

    from panns_core.study.stages import use_packed_copy

    index = make_eval_set(tmp_path / "copy", n=4, seconds=1.0)
    os.remove(index)  # the per-file index is rebuilt; the waveform file is read as it is
    summary = use_packed_copy(str(tmp_path / "copy"), validation_fraction=None)
    assert [os.path.basename(p) for p in summary["built"]] == ["eval.h5"]
    assert summary["eval_manifest"]["num_clips"] == 4 and list(summary["indexes"]) == ["eval"]
    with pytest.raises(FileNotFoundError, match="no training waveform file .* eval-only copy"):
        use_packed_copy(str(tmp_path / "copy"), validation_fraction=0.1)
