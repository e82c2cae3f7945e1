"""AudioSet from the Hub mirror, offline: parquet shards in the mirror's exact schema,
written here, read via --hf-dir and through huggingface_hub from a local Hub-shaped
server; packed, read back; missing/extra clips listed; one row group in memory at a
time (instrumented pyarrow, not a mock of our code)."""

import csv
import hashlib
import http.server
import io
import json
import os
import shutil
import threading
import urllib.parse
import weakref

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from panns_core.audio_io import load_audio
from panns_core.data.__main__ import main as data_main
from panns_core.data.audioset import Segment, metadata_paths, write_segments_csv
from panns_core.data.hf_audioset import acquire_split_hf, shard_files_of
from panns_core.data.pack import index_path, manifest_path, pack_dataset, waveform_path
from panns_core.data.reader import AudioSetDataset, float32_to_int16

RESOURCES = os.path.join(os.path.dirname(__file__), "..", "panns_core", "resources")
SPEECH, MUSIC, DOG = "/m/09x0r", "/m/04rlf", "/m/0bt9lr"

AUDIO_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
SCHEMA = pa.schema([("video_id", pa.string()), ("audio", AUDIO_TYPE),
                    ("labels", pa.list_(pa.string())), ("human_labels", pa.list_(pa.string()))])


def flac_bytes(rate, subtype, channels, freq, seconds=2.0):
    t = np.arange(int(rate * seconds)) / rate
    x = 0.4 * np.sin(2 * np.pi * freq * t)
    data = np.stack([x, 0.5 * x], 1) if channels == 2 else x
    buf = io.BytesIO()
    sf.write(buf, data, rate, subtype=subtype, format="FLAC")
    return buf.getvalue()


# id -> (rate, subtype, channels, tone Hz); every combination the mirror has
CLIPS = {
    "aaaaaaaaaa1": (48000, "PCM_24", 1, 1000.0),
    "bbbbbbbbbb2": (44100, "PCM_16", 2, 2000.0),
    "-ccccccccc3": (48000, "PCM_24", 2, 3000.0),
    "ddddddddddd": (32000, "PCM_16", 1, 500.0),
}
CORRUPT, EXTRA, MISMATCH, MISSING = "corrupt0001", "extra000001", "mismatch001", "missing0001"


def row(ytid, audio, labels):
    return {"video_id": ytid, "audio": {"bytes": audio, "path": f"{ytid}.flac"},
            "labels": labels, "human_labels": ["x"] * len(labels)}


def make_mirror(tmp_path):
    """Two eval shards (row groups of 2 rows) + the root with the official-format CSVs."""
    rows = [row(y, flac_bytes(*spec), [SPEECH]) for y, spec in CLIPS.items()]
    rows.append(row(CORRUPT, b"fLaC\x00\x00\x00\x22" + b"\x13" * 300, [MUSIC]))
    rows.append(row(EXTRA, flac_bytes(48000, "PCM_24", 1, 700.0), [SPEECH]))  # not a CSV row
    # a label the CSV does not give this clip (and not a class at all)
    rows.append(row(MISMATCH, flac_bytes(44100, "PCM_24", 1, 1500.0), [DOG, "/m/not_a_class"]))
    hf_dir = tmp_path / "mirror"
    shard_dir = hf_dir / "data" / "eval"
    shard_dir.mkdir(parents=True)
    for k, part in enumerate((rows[:4], rows[4:])):
        pq.write_table(pa.Table.from_pylist(part, schema=SCHEMA), shard_dir / f"eval_{k:02d}.parquet",
                       row_group_size=2)
    root = tmp_path / "data"
    (root / "metadata").mkdir(parents=True)
    shutil.copy(os.path.join(RESOURCES, "class_labels_indices.csv"), root / "metadata")
    csv_ids = list(CLIPS) + [CORRUPT, MISMATCH, MISSING]
    write_segments_csv(str(root / "metadata" / "eval_segments.csv"),
                       [Segment(y, 0.0, 10.0, (MUSIC if y in (CORRUPT, MISSING) else SPEECH,) if y != MISMATCH
                                else (DOG,)) for y in csv_ids])
    return str(root), str(hf_dir)


def read_csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_hf_dir_acquire_pack_read(tmp_path):
    root, hf_dir = make_mirror(tmp_path)
    assert data_main(["acquire", root, "--split", "eval", "--source", "hf", "--hf-dir", hf_dir,
                      "--workers", "0"]) == 0
    audios = os.path.join(root, "audios", "eval")

    # every decodable CSV clip written once, as 32 kHz mono 16-bit, equal to the project's decode path
    written = sorted(f for f in os.listdir(audios) if f.endswith(".wav"))
    assert written == sorted(f"Y{y}.wav" for y in list(CLIPS) + [MISMATCH])
    for ytid, spec in CLIPS.items():
        info = sf.info(os.path.join(audios, f"Y{ytid}.wav"))
        assert (info.samplerate, info.channels, info.subtype) == (32000, 1, "PCM_16")
        src = tmp_path / f"{ytid}.flac"
        src.write_bytes(flac_bytes(*spec))
        expected = float32_to_int16(load_audio(str(src), 32000))
        np.testing.assert_array_equal(sf.read(os.path.join(audios, f"Y{ytid}.wav"), dtype="int16")[0], expected)

    failures = {r["youtube_id"]: r["reason"] for r in read_csv_rows(os.path.join(audios, "failures.csv"))}
    assert failures == {CORRUPT: "decode", MISSING: "not_in_mirror"}
    assert [r["youtube_id"] for r in read_csv_rows(os.path.join(audios, "extra_in_mirror.csv"))] == [EXTRA]
    mism = read_csv_rows(os.path.join(audios, "label_mismatches.csv"))
    assert [(r["youtube_id"], r["mirror_labels"], r["csv_labels"]) for r in mism] == \
        [(MISMATCH, f"{DOG},/m/not_a_class", DOG)]
    summary = json.load(open(os.path.join(audios, "summary.json")))
    assert (summary["total"], summary["available"], summary["failed"], summary["not_attempted"]) == \
        (7, 5, {"decode": 1, "not_in_mirror": 1}, 0)
    assert (summary["extra_in_mirror"], summary["label_mismatches"], summary["shards_total"]) == (1, 1, 2)
    assert summary["source"]["source"] == "hf" and summary["source"]["repo"] == "agkphysics/AudioSet"

    # pack (unchanged) reads the clips; missing and corrupt ones are listed with their reason
    res = pack_dataset(root, splits=("eval",))["eval.h5"]
    assert (res.packed, res.excluded) == (5, 2)
    man = json.load(open(manifest_path(waveform_path(root, "eval"))))
    assert {c["audio_name"]: c["reason"] for c in man["excluded_clips"]} == \
        {f"Y{CORRUPT}.wav": "failed:decode", f"Y{MISSING}.wav": "failed:not_in_mirror"}
    eval_manifest = json.load(open(index_path(root, "eval")[:-3] + ".manifest.json"))
    assert eval_manifest["num_clips"] == 5
    assert eval_manifest["data_source"] == {"source": "hf", "repo": "agkphysics/AudioSet", "revision": None,
                                            "hf_dir": os.path.abspath(hf_dir)}

    # the reader returns the tone at 32 kHz, CSV labels as targets
    with h5py.File(waveform_path(root, "eval"), "r") as hf:
        names = [n.decode() for n in hf["audio_name"][:]]
    ds = AudioSetDataset(32000)
    item = ds[{"hdf5_path": waveform_path(root, "eval"), "index_in_hdf5": names.index("Ybbbbbbbbbb2.wav")}]
    spectrum = np.abs(np.fft.rfft(item["waveform"][:64000]))
    assert abs(np.argmax(spectrum) * 32000 / 64000 - 2000.0) <= 1.0
    assert item["target"][0] == 1.0 and item["target"].sum() == 1.0  # Speech
    mism_item = ds[{"hdf5_path": waveform_path(root, "eval"), "index_in_hdf5": names.index(f"Y{MISMATCH}.wav")}]
    labels = [r.split(",")[1] for r in open(metadata_paths(root)["class_labels"]).read().splitlines()[1:]]
    assert mism_item["target"][labels.index(DOG)] == 1.0 and mism_item["target"].sum() == 1.0


def test_one_row_group_at_a_time_and_resume(tmp_path, monkeypatch):
    root, hf_dir = make_mirror(tmp_path)
    live, calls, peak = [], [], [0]
    real = pq.ParquetFile.read_row_group

    def counting_read_row_group(self, i, *args, **kwargs):
        alive = sum(1 for r in live if r() is not None)
        peak[0] = max(peak[0], alive)
        table = real(self, i, *args, **kwargs)
        live.append(weakref.ref(table))
        calls.append(i)
        return table

    def refuse(*args, **kwargs):
        raise AssertionError("a whole shard was read at once")

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", counting_read_row_group)
    monkeypatch.setattr(pq.ParquetFile, "read", refuse)
    monkeypatch.setattr(pq, "read_table", refuse)

    partial = acquire_split_hf(root, "eval", hf_dir=hf_dir, max_shards=1)
    assert (partial.shards_done, partial.shards_total, partial.complete) == (1, 2, False)
    # before every shard was read no CSV clip is declared missing from the mirror
    assert partial.summary.failed == {} and partial.written == 4
    full = acquire_split_hf(root, "eval", hf_dir=hf_dir)
    assert full.complete and full.written == 1  # only the second shard's CSV clip was new
    assert calls == [0, 1, 0, 1]  # 2 row groups per shard, each shard read once
    assert peak[0] == 0  # no earlier row group was still alive when the next one was read
    assert full.summary.failed == {"decode": 1, "not_in_mirror": 1}


def test_errors_name_the_problem(tmp_path):
    root, _ = make_mirror(tmp_path)
    with pytest.raises(ValueError, match=r"empty.*data/eval: no parquet shards"):
        acquire_split_hf(root, "eval", hf_dir=str(tmp_path / "empty"))
    bad = tmp_path / "bad" / "data" / "eval"
    bad.mkdir(parents=True)
    pq.write_table(pa.table({"video_id": ["x"]}), bad / "s.parquet")
    with pytest.raises(ValueError, match=r"s.parquet: not an AudioSet mirror shard: columns \['audio', 'labels'\]"):
        acquire_split_hf(root, "eval", hf_dir=str(tmp_path / "bad"))


def test_shard_listing_picks_the_split_folder():
    files = ["README.md", "data/eval/eval_00.parquet", "data/eval/eval_01.parquet", "data/eval/x.json",
             "data/bal_train/b_00.parquet", "data/unbal_train/u_00.parquet", "data/eval/sub/z.parquet"]
    assert shard_files_of(files, "eval") == ["data/eval/eval_00.parquet", "data/eval/eval_01.parquet"]
    assert shard_files_of(files, "balanced_train") == ["data/bal_train/b_00.parquet"]
    assert shard_files_of(files, "unbalanced_train") == ["data/unbal_train/u_00.parquet"]


class FakeHub(http.server.BaseHTTPRequestHandler):
    """The two Hub endpoints huggingface_hub uses here: repo info (commit + file list) and
    ``resolve`` (HEAD for commit/ETag, GET for the bytes), serving files of a local folder."""

    root = ""
    sha = "0123456789abcdef0123456789abcdef01234567"
    requests: list = []

    def _route(self, head):
        self.requests.append((self.command, self.path))
        path = urllib.parse.urlsplit(self.path).path
        files = sorted(os.path.relpath(os.path.join(d, f), self.root).replace(os.sep, "/")
                       for d, _, fs in os.walk(self.root) for f in fs)
        if path == "/api/datasets/agkphysics/AudioSet":
            body = json.dumps({"id": "agkphysics/AudioSet", "sha": self.sha,
                               "siblings": [{"rfilename": f} for f in files]}).encode()
            return self._send(200, body, {"Content-Type": "application/json"}, head)
        prefix = f"/datasets/agkphysics/AudioSet/resolve/{self.sha}/"
        name = urllib.parse.unquote(path[len(prefix):]) if path.startswith(prefix) else None
        if name in files:
            data = open(os.path.join(self.root, name), "rb").read()
            return self._send(200, data, {"X-Repo-Commit": self.sha, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                                          "Content-Type": "application/octet-stream"}, head)
        self._send(404, b"not found", {}, head)

    def _send(self, code, body, headers, head):
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        self._route(False)

    def do_HEAD(self):  # noqa: N802
        self._route(True)

    def log_message(self, *args):
        pass


def test_hub_download_path_against_a_local_hub(tmp_path, monkeypatch):
    root, hf_dir = make_mirror(tmp_path)
    FakeHub.root, FakeHub.requests = hf_dir, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    cache = tmp_path / "hub_cache"
    try:
        result = acquire_split_hf(root, "eval", endpoint=endpoint, cache_dir=str(cache), max_shards=1)
        assert result.source == {"source": "hf", "repo": "agkphysics/AudioSet", "revision": FakeHub.sha}
        snapshot = cache / "datasets--agkphysics--AudioSet" / "snapshots" / FakeHub.sha / "data" / "eval"
        assert sorted(os.listdir(snapshot)) == ["eval_00.parquet"]  # one shard fetched, into the Hub cache
        result = acquire_split_hf(root, "eval", endpoint=endpoint, cache_dir=str(cache), delete_shards=True)
        assert result.complete and result.summary.failed == {"decode": 1, "not_in_mirror": 1}
        assert not (snapshot / "eval_01.parquet").exists()  # removed once its clips were written
        fetched = [p for m, p in FakeHub.requests if m == "GET" and "/resolve/" in p]
        assert [p.rsplit("/", 1)[1] for p in fetched] == ["eval_00.parquet", "eval_01.parquet"]
        with open(os.path.join(root, "audios", "eval", "source.json")) as f:
            assert json.load(f)["revision"] == FakeHub.sha
    finally:
        server.shutdown()
        server.server_close()
