"""Released-checkpoint re-scoring end to end, offline: official-format checkpoint files of
the real small architectures (random weights) served with a Zenodo-shaped records API
from a local HTTP server, a small packed eval set; downloads verified, a wrong checksum
refused, results written."""

import hashlib
import http.server
import json
import os
import shutil
import threading
import urllib.parse

import numpy as np
import pytest
import soundfile as sf
import torch

from panns_core.checkpoints import ReleasedCheckpoint
from panns_core.data.audioset import Segment, write_segments_csv
from panns_core.data.index import IndexTable
from panns_core.data.pack import index_path, pack_dataset
from panns_core.download import ChecksumError
from panns_core.models import create_model
from panns_core.study.released_eval import (
    UnverifiedCheckpointError, expected_seconds, rescore, rescore_all, stratified_subset, table_rows,
)

RESOURCES = os.path.join(os.path.dirname(__file__), "..", "panns_core", "resources")
RECORD = 4242
LABELS = ["/m/09x0r", "/m/04rlf", "/m/0bt9lr", "/m/01b_21"]


def make_eval_set(root, n=8, seconds=2.0):
    (root / "metadata").mkdir(parents=True)
    shutil.copy(os.path.join(RESOURCES, "class_labels_indices.csv"), root / "metadata")
    audios = root / "audios" / "eval"
    audios.mkdir(parents=True)
    rng = np.random.default_rng(0)
    segments = []
    for i in range(n):
        ytid = f"clip{i:07d}"
        labels = (LABELS[i % 4],) + ((LABELS[(i + 1) % 4],) if i % 3 == 0 else ())
        segments.append(Segment(ytid, 0.0, 10.0, labels))
        sf.write(audios / f"Y{ytid}.wav", (0.1 * rng.standard_normal(int(32000 * seconds))).astype(np.float32),
                 32000, subtype="PCM_16")
    write_segments_csv(str(root / "metadata" / "eval_segments.csv"), segments)
    (audios / "source.json").write_text(json.dumps({"source": "hf", "repo": "agkphysics/AudioSet", "revision": "abc"}))
    pack_dataset(str(root), splits=("eval",))
    return index_path(str(root), "eval")


def official_checkpoint(path, model_name, seed):
    torch.manual_seed(seed)
    model = create_model(model_name)
    torch.save({"model": model.state_dict(), "iteration": 540000}, path)  # as pytorch/main.py saves it
    return hashlib.md5(open(path, "rb").read()).hexdigest()


class ZenodoLike(http.server.BaseHTTPRequestHandler):
    """``/api/records/<id>`` (metadata with md5 checksums) and ``/records/<id>/files/<name>``."""

    files: dict = {}  # name -> path
    checksums: dict = {}  # name -> md5 to publish
    requests: list = []

    def do_GET(self):  # noqa: N802
        self.requests.append(self.path)
        path = urllib.parse.urlsplit(self.path).path
        if path == f"/api/records/{RECORD}":
            body = json.dumps({"id": RECORD, "files": [
                {"key": k, "size": os.path.getsize(p), "checksum": f"md5:{self.checksums[k]}"}
                for k, p in self.files.items()]}).encode()
            return self._send(200, body, "application/json")
        prefix = f"/records/{RECORD}/files/"
        name = urllib.parse.unquote(path[len(prefix):]) if path.startswith(prefix) else None
        if name in self.files:
            return self._send(200, open(self.files[name], "rb").read(), "application/octet-stream")
        self._send(404, b"not found", "text/plain")

    def _send(self, code, body, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def zenodo(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    md5 = {"MobileNetV1_mAP=0.389.pth": official_checkpoint(served / "m.pth", "MobileNetV1", 0),
           "Cnn6_mAP=0.343.pth": official_checkpoint(served / "c.pth", "Cnn6", 1)}
    ZenodoLike.files = {"MobileNetV1_mAP=0.389.pth": str(served / "m.pth"), "Cnn6_mAP=0.343.pth": str(served / "c.pth")}
    ZenodoLike.checksums = dict(md5)
    ZenodoLike.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ZenodoLike)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", md5
    server.shutdown()
    server.server_close()


def registry_for(md5_cnn6=None):
    # MobileNetV1: no md5 in the registry, so Zenodo's metadata must verify it;
    # Cnn6: the registry's md5 (when given), confirmed against Zenodo's
    entries = [ReleasedCheckpoint("MobileNetV1_mAP=0.389.pth", "unused", "MobileNetV1", None, None),
               ReleasedCheckpoint("Cnn6_mAP=0.343.pth", "unused", "Cnn6", None, md5_cnn6)]
    return {e.filename: e for e in entries}


def test_rescore_end_to_end(tmp_path, zenodo):
    base, md5 = zenodo
    index = make_eval_set(tmp_path / "data")
    out, cache = tmp_path / "results", tmp_path / "cache"
    registry = registry_for(md5_cnn6=md5["Cnn6_mAP=0.343.pth"])
    assert [r["model"] for r in table_rows(registry)] == ["Cnn6", "MobileNetV1"]

    results = rescore_all(index, str(out), registry=registry, record=RECORD, base=base, cache_dir=str(cache),
                          max_eval_clips=6, seed=3, precision="fp32", batch_size=4)
    assert json.load(open(out / "errors.json")) == {}
    for name, filename, verified in (("MobileNetV1", "MobileNetV1_mAP=0.389.pth", "Zenodo record metadata"),
                                     ("Cnn6", "Cnn6_mAP=0.343.pth", "confirmed by Zenodo")):
        on_disk = json.load(open(out / f"{name}.json"))
        assert on_disk == results[name]
        assert (cache / filename).is_file()  # downloaded into the cache
        assert on_disk["checkpoint"]["md5"] == md5[filename] and verified in on_disk["checkpoint"]["verified_by"]
        assert on_disk["checkpoint"]["sha256"] == hashlib.sha256((cache / filename).read_bytes()).hexdigest()
        assert on_disk["tables"] == ["table_XI"] and on_disk["paper"]["mAP"] in (0.389, 0.343)
        assert on_disk["eval_set"]["num_clips"] == 6 and on_disk["eval_set"]["full_num_clips"] == 8
        assert on_disk["eval_set"]["data_source"] == {"source": "hf", "repo": "agkphysics/AudioSet", "revision": "abc"}
        assert len(on_disk["per_class_AP"]) == 527 and 0.0 <= on_disk["mAP"] <= 1.0
        assert on_disk["classes_evaluated"] == sum(ap is not None for ap in on_disk["per_class_AP"]) == 4
        assert on_disk["seconds"]["per_clip"] > 0 and on_disk["precision"] == "fp32"

    # the same weights scored directly give the same mAP (the file really was evaluated)
    from panns_core.checkpoints import load_checkpoint
    from panns_core.data.index import read_index
    from panns_core.evaluate import evaluate

    model = create_model("MobileNetV1")
    load_checkpoint(model, cache / "MobileNetV1_mAP=0.389.pth")
    direct = evaluate(model, stratified_subset(read_index(index), 6, 3), batch_size=4)
    assert direct["mAP"] == pytest.approx(results["MobileNetV1"]["mAP"], abs=1e-6)
    assert direct["eval_set_sha256"] == results["MobileNetV1"]["eval_set"]["sha256"]

    # the plain evaluate command records the same data source
    from panns_core.evaluate import main as evaluate_main

    record = evaluate_main(["--checkpoint", str(cache / "Cnn6_mAP=0.343.pth"), "--model", "Cnn6", "--data", index,
                            "--max-clips", "2", "--output", str(tmp_path / "e.json"), "--no-progress"])
    assert record["data_source"] == {"source": "hf", "repo": "agkphysics/AudioSet", "revision": "abc"}

    # a rerun reuses the results: no file is downloaded again
    downloads = sum("/files/" in r for r in ZenodoLike.requests)
    again = rescore(
        "Cnn6", index, str(out), registry=registry, record=RECORD, base=base, cache_dir=str(cache),
        max_eval_clips=6, seed=3, batch_size=4, published={"Cnn6_mAP=0.343.pth": {"md5": md5["Cnn6_mAP=0.343.pth"]}})
    assert again["written_at"] == results["Cnn6"]["written_at"]
    assert sum("/files/" in r for r in ZenodoLike.requests) == downloads
    assert expected_seconds(results, 17142)["total"] == pytest.approx(
        17142 * sum(r["seconds"]["per_clip"] for r in results.values()))


def test_wrong_checksum_is_refused(tmp_path, zenodo):
    base, md5 = zenodo
    index = make_eval_set(tmp_path / "data", n=4)
    cache = tmp_path / "cache"
    ZenodoLike.checksums["MobileNetV1_mAP=0.389.pth"] = "0" * 32  # Zenodo publishes another md5
    results = rescore_all(index, str(tmp_path / "r"), ["MobileNetV1"], registry=registry_for(), record=RECORD,
                          base=base, cache_dir=str(cache), batch_size=4)
    assert "md5 mismatch" in results["MobileNetV1"]["error"]
    assert not (cache / "MobileNetV1_mAP=0.389.pth").exists()  # never appears under its name
    assert not (tmp_path / "r" / "MobileNetV1.json").exists()
    assert "MobileNetV1" in json.load(open(tmp_path / "r" / "errors.json"))

    # registry and Zenodo disagree: refused before any download
    with pytest.raises(ChecksumError, match="differs from the md5"):
        rescore("Cnn6", index, str(tmp_path / "r"), registry=registry_for(md5_cnn6="f" * 32), record=RECORD,
                base=base, cache_dir=str(cache), published={"Cnn6_mAP=0.343.pth": {"md5": md5["Cnn6_mAP=0.343.pth"]}})
    # no checksum anywhere: refused unless explicitly allowed
    with pytest.raises(UnverifiedCheckpointError, match="no md5"):
        rescore("Cnn6", index, str(tmp_path / "r"), registry=registry_for(), record=RECORD, base=base,
                cache_dir=str(cache), published={})
    # checksums are not read over plain HTTP from a remote host
    with pytest.raises(ValueError, match="HTTPS required"):
        rescore_all(index, str(tmp_path / "r"), ["Cnn6"], registry=registry_for(), record=RECORD,
                    base="http://example.org", on_error="raise")


def test_stratified_subset_covers_classes_and_is_seeded():
    rng = np.random.default_rng(0)
    targets = np.zeros((200, 10), bool)
    targets[np.arange(200), rng.integers(0, 10, 200)] = True
    targets[:, 9] = False
    targets[[5, 77], 9] = True  # a rare class: 2 clips of 200
    table = IndexTable([f"Y{i}.wav" for i in range(200)], ["x.h5"] * 200, np.arange(200), targets)
    sub = stratified_subset(table, 20, seed=1)
    assert len(sub) == 20 and sub.targets.any(axis=0).all()  # every class represented
    assert list(sub.index_in_hdf5) == sorted(sub.index_in_hdf5)
    assert sub.audio_names == stratified_subset(table, 20, seed=1).audio_names
    assert sub.audio_names != stratified_subset(table, 20, seed=2).audio_names
    assert stratified_subset(table, None, 0) is table and len(stratified_subset(table, 500, 0)) == 200


def test_table_rows_of_the_real_registry():
    rows = {r["model"]: r for r in table_rows()}
    assert set(rows) >= {"Cnn14", "Cnn14_16k", "Cnn14_8k", "Cnn6", "MobileNetV1", "Wavegram_Logmel_Cnn14"}
    assert len(rows) == 20 and len([m for m, r in rows.items() if "table_XI" in r["tables"]]) == 15
    assert rows["Cnn14"]["tables"] == ["table_VII", "table_IX", "table_X", "table_XI"]
    assert rows["Cnn14_16k"]["paper"] == {"mAP": 0.427, "AUC": 0.973, "d_prime": 2.719}
    assert "Cnn14_mel32" not in rows  # never released
