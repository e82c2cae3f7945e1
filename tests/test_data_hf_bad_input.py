"""Issue 24, item 8: the Hub acquire under bad mirror input, offline (shards written here
with pyarrow). A repeated video_id, a worker failure, a corrupt shard, an id that is a
path, an ``audio`` column of the wrong type, a row far longer than its segment, a cut
FLAC: each is recorded in failures.csv with where it is and why, and the run goes on."""

import csv
import errno
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from panns_core.data import hf_audioset
from panns_core.data.__main__ import main as data_main
from panns_core.data.acquire import FailureLog
from panns_core.data.audioset import Segment, write_segments_csv
from panns_core.data.hf_audioset import MirrorError, acquire_split_hf, default_workers
from panns_core.data.pack import pack_dataset

from test_data_hf import RESOURCES, SCHEMA, SPEECH, flac_bytes, row

SR = 8000


def tone(freq, seconds=1.0):
    """A small FLAC: 8 kHz mono 16-bit, a sine at ``freq``."""
    return flac_bytes(SR, "PCM_16", 1, freq, seconds)


def make_root(tmp_path, shards, csv_ids, segment_seconds=10.0, schema=SCHEMA):
    """``shards``: list of row lists (or raw bytes for a damaged file) -> mirror/data/eval/eval_NN.parquet."""
    shard_dir = tmp_path / "mirror" / "data" / "eval"
    shard_dir.mkdir(parents=True)
    for k, rows in enumerate(shards):
        path = shard_dir / f"eval_{k:02d}.parquet"
        if isinstance(rows, bytes):
            path.write_bytes(rows)
        else:
            pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=2)
    root = tmp_path / "data"
    (root / "metadata").mkdir(parents=True)
    (root / "metadata" / "class_labels_indices.csv").write_bytes(
        open(os.path.join(RESOURCES, "class_labels_indices.csv"), "rb").read())
    write_segments_csv(str(root / "metadata" / "eval_segments.csv"),
                       [Segment(y, 0.0, segment_seconds, (SPEECH,)) for y in csv_ids])
    return str(root), str(tmp_path / "mirror")


def audios(root):
    return os.path.join(root, "audios", "eval")


def failures(root):
    with open(os.path.join(audios(root), "failures.csv"), newline="") as f:
        return [(r["youtube_id"], r["reason"], r["message"]) for r in csv.DictReader(f)]


def peak_hz(path):
    x, sr = sf.read(path)
    return np.argmax(np.abs(np.fft.rfft(x))) * sr / len(x)


A, B, C, D = "aaaaaaaaaa1", "bbbbbbbbbb2", "cccccccccc3", "dddddddddd4"


# ----------------------------------------------------------------------- a repeated video_id


@pytest.mark.parametrize("workers", [0, 2])
def test_a_repeated_video_id_keeps_its_first_row_and_is_recorded(tmp_path, workers):
    """Before: both rows were decoded; in-process the last one won silently, in the pool the two
    workers renamed the same temporary file (`.wav.part.wav -> .wav` not found, 1 run in 5)."""
    rows = [row(A, tone(500), [SPEECH]), row(A, tone(1500), [SPEECH]),  # one row group
            row(B, tone(700), [SPEECH]), row(A, tone(2500), [SPEECH])]  # and again in the next one
    root, hf_dir = make_root(tmp_path, [rows], [A, B])
    result = acquire_split_hf(root, "eval", hf_dir=hf_dir, workers=workers)
    assert result.complete and result.written == 2 and result.bad_rows == {"duplicate_row": 2}
    assert abs(peak_hz(os.path.join(audios(root), f"Y{A}.wav")) - 500) < 5  # the first row, every time
    assert failures(root) == [(A, "duplicate_row", "video_id repeated at eval_00.parquet row 1, eval_00.parquet "
                                                   "row 3; the first row (eval_00.parquet row 0) is kept, the "
                                                   "later ones skipped")]
    assert FailureLog(os.path.join(audios(root), "failures.csv")).rows == {}  # not a failure of clip A
    assert result.summary.available == 2 and result.summary.failed == {}
    assert sorted(os.listdir(audios(root))) == sorted(  # no temporary file left
        [f"Y{A}.wav", f"Y{B}.wav", "failures.csv", "extra_in_mirror.csv", "label_mismatches.csv",
         "hf_progress.json", "source.json", "summary.json"])
    assert pack_dataset(root, splits=("eval",))["eval.h5"].packed == 2  # a note is not a failed clip


# ----------------------------------------------------------------------- exceptions in workers


def test_an_exception_in_a_worker_is_recorded_and_the_split_goes_on(tmp_path, monkeypatch):
    """Before: the exception ended the split and failures.csv (the corrupt clip's row) was never saved."""
    from panns_core.data import reader

    real = reader.float32_to_int16

    def fails_for_two_second_clips(x):
        if len(x) == 2 * 32000:
            raise RuntimeError("simulated failure")
        return real(x)

    monkeypatch.setattr(reader, "float32_to_int16", fails_for_two_second_clips)  # inherited by the pool
    rows = [row(A, tone(500), [SPEECH]), row(B, b"fLaC" + b"\x13" * 200, [SPEECH]),
            row(C, tone(900, 2.0), [SPEECH]), row(D, tone(300), [SPEECH])]
    root, hf_dir = make_root(tmp_path, [rows], [A, B, C, D])
    result = acquire_split_hf(root, "eval", hf_dir=hf_dir, workers=2)
    assert result.complete and result.written == 2
    found = {y: (r, m) for y, r, m in failures(root)}
    assert found[B][0] == "decode" and "eval_00.parquet row 1" in found[B][1]
    assert found[C] == ("error", "agkphysics/AudioSet eval_00.parquet row 2: encoding the WAV failed: "
                                 "RuntimeError: simulated failure")
    assert sorted(f for f in os.listdir(audios(root)) if f.endswith(".wav")) == [f"Y{A}.wav", f"Y{D}.wav"]


def test_a_full_disk_stops_with_one_line_and_keeps_what_was_recorded(tmp_path, monkeypatch, capsys):
    from panns_core import fsutil

    real = fsutil.atomic_write

    def disk_full(path, *args, **kwargs):
        if os.path.basename(path) == f"Y{D}.wav":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(fsutil, "atomic_write", disk_full)
    rows = [row(A, tone(500), [SPEECH]), row(B, b"fLaC" + b"\x13" * 200, [SPEECH]), row(D, tone(300), [SPEECH])]
    root, hf_dir = make_root(tmp_path, [rows], [A, B, D])
    assert data_main(["acquire", root, "--split", "eval", "--source", "hf", "--hf-dir", hf_dir,
                      "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert f"cannot write {os.path.join(audios(root), f'Y{D}.wav')}: No space left on device" in err
    assert "failures.csv are kept" in err
    assert [(y, r) for y, r, _ in failures(root)] == [(B, "decode")]  # saved although the run stopped
    assert os.path.exists(os.path.join(audios(root), f"Y{A}.wav"))


# ----------------------------------------------------------------------- damaged shards


def corrupt_second_row_group(path):
    """Flip bytes inside the audio column chunk of row group 1 (pyarrow then fails on that group)."""
    chunk = pq.ParquetFile(path).metadata.row_group(1).column(1)  # audio.bytes
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data = bytearray(path.read_bytes())
    for k in range(start + 30, start + chunk.total_compressed_size - 30):
        data[k] ^= 0x5A
    path.write_bytes(bytes(data))


def test_a_corrupt_shard_is_named_skipped_and_the_next_shards_are_read(tmp_path, capsys):
    """Before: the first damaged shard stopped the run with pyarrow's traceback, not naming it."""
    ids = [f"{c * 10}{k}" for c, k in zip("efghijkl", range(8))]
    shards = [[row(ids[0], tone(500), [SPEECH]), row(ids[1], tone(600), [SPEECH])],
              b"PAR1 this is not a parquet file PAR1",
              [row(ids[2], tone(700), [SPEECH]), row(ids[3], tone(800), [SPEECH]),
               row(ids[4], tone(900), [SPEECH]), row(ids[5], tone(1000), [SPEECH])],
              [row(ids[6], tone(1100), [SPEECH]), row(ids[7], tone(1200), [SPEECH])]]
    root, hf_dir = make_root(tmp_path, shards, ids + ["missing0001"])
    corrupt_second_row_group(tmp_path / "mirror" / "data" / "eval" / "eval_02.parquet")
    code = data_main(["acquire", root, "--split", "eval", "--source", "hf", "--hf-dir", hf_dir, "--workers", "0"])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err
    assert "eval_01.parquet: unreadable parquet (row group 1; 0 rows before it were read): ArrowInvalid" in err
    assert "eval_02.parquet: unreadable parquet (row group 2; 2 rows before it were read)" in err
    assert "shards 2/4 (2 unreadable: eval_01.parquet, eval_02.parquet; see failures.csv" in out
    written = sorted(f[1:-4] for f in os.listdir(audios(root)) if f.endswith(".wav"))
    assert written == [ids[0], ids[1], ids[2], ids[3], ids[6], ids[7]]  # the shard after the bad ones was read
    notes = {y: (r, m) for y, r, m in failures(root)}
    assert set(notes) == {"eval_01.parquet", "eval_02.parquet"}  # nothing declared not_in_mirror yet
    assert notes["eval_01.parquet"][0] == "bad_shard" and "a rerun tries it again" in notes["eval_01.parquet"][1]

    # the shards replaced by good copies: a rerun reads only them, completes, and drops the notes
    for k, part in ((1, []), (2, [row(ids[4], tone(900), [SPEECH]), row(ids[5], tone(1000), [SPEECH])])):
        path = tmp_path / "mirror" / "data" / "eval" / f"eval_{k:02d}.parquet"
        pq.write_table(pa.Table.from_pylist(part, schema=SCHEMA), path)
    result = acquire_split_hf(root, "eval", hf_dir=hf_dir, workers=0)
    assert result.complete and result.written == 2 and result.bad_shards == {}
    assert failures(root) == [("missing0001", "not_in_mirror", "not in agkphysics/AudioSet@local copy")]


def test_no_readable_shard_at_all_is_an_error_naming_it(tmp_path):
    root, hf_dir = make_root(tmp_path, [b"garbage"], [A])
    with pytest.raises(MirrorError, match=r"none of the 1 shard\(s\) of eval could be read .*eval_00\.parquet: "
                                          r"unreadable parquet"):
        acquire_split_hf(root, "eval", hf_dir=hf_dir, workers=0)
    assert [(y, r) for y, r, _ in failures(root)] == [("eval_00.parquet", "bad_shard")]


# ----------------------------------------------------------------------- ids and columns


def test_an_id_that_is_a_path_never_reaches_the_file_system(tmp_path):
    """Before: `x/../../../../evil` (also a CSV row) put the decoder's temporary file and the clip outside
    the data root."""
    evil = "x/../../../../evil"
    rows = [row(A, tone(500), [SPEECH]), row(evil, tone(600), [SPEECH])]
    root, hf_dir = make_root(tmp_path, [rows], [A, evil])
    os.makedirs(os.path.join(audios(root), "Yx"))  # lets the old path resolve: audios/eval/Yx/../../../..
    before = sorted(os.listdir(tmp_path))
    result = acquire_split_hf(root, "eval", hf_dir=hf_dir, workers=0)
    assert sorted(os.listdir(tmp_path)) == before  # nothing written beside the data root
    assert result.written == 1 and result.bad_rows == {"bad_id": 1}
    assert failures(root) == [(evil, "bad_id", "eval_00.parquet row 1: video_id 'x/../../../../evil' is not a "
                                               "YouTube id (11 characters of A-Z a-z 0-9 - _); row skipped")]


def test_malformed_ids_are_recorded_each_with_its_row(tmp_path):
    """Before: a null video_id ended the run in a TypeError; the others were listed as mirror extras."""
    rows = [row(A, tone(500), [SPEECH]), row("", tone(700), [SPEECH]), row(None, tone(800), [SPEECH]),
            row("short", tone(900), [SPEECH]), row("tab\tinside", tone(1000), [SPEECH])]
    root, hf_dir = make_root(tmp_path, [rows], [A])
    result = acquire_split_hf(root, "eval", hf_dir=hf_dir, workers=0)
    assert result.complete and result.written == 1 and result.bad_rows == {"bad_id": 4}
    found = {y: (r, m) for y, r, m in failures(root)}
    assert set(found) == {"(no id) eval_00.parquet row 1", "(no id) eval_00.parquet row 2", "short", "tab\\tinside"}
    assert {r for r, _ in found.values()} == {"bad_id"}
    assert "row 2: video_id None" in found["(no id) eval_00.parquet row 2"][1]
    assert result.extra_in_mirror == 0


def test_an_audio_column_of_the_wrong_type_is_a_bad_shard_and_plain_bytes_are_read(tmp_path, capsys):
    """Before: `AttributeError: 'str' object has no attribute 'get'` (traceback)."""
    as_text = pa.schema([("video_id", pa.string()), ("audio", pa.string()), ("labels", pa.list_(pa.string()))])
    as_bytes = pa.schema([("video_id", pa.string()), ("audio", pa.binary()), ("labels", pa.list_(pa.string()))])
    shard_dir = tmp_path / "mirror" / "data" / "eval"
    root, hf_dir = make_root(tmp_path, [[row(A, tone(500), [SPEECH])]], [A, B, C])
    pq.write_table(pa.Table.from_pylist([{"video_id": B, "audio": "not audio", "labels": [SPEECH]}],
                                        schema=as_text), shard_dir / "eval_01.parquet")
    pq.write_table(pa.Table.from_pylist([{"video_id": C, "audio": tone(900), "labels": [SPEECH]}],
                                        schema=as_bytes), shard_dir / "eval_02.parquet")
    assert data_main(["acquire", root, "--split", "eval", "--source", "hf", "--hf-dir", hf_dir,
                      "--workers", "0"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert ("eval_01.parquet: not an AudioSet mirror shard: column 'audio' is string, expected "
            "struct<bytes: binary, path: string> (the Hub's Audio feature)") in err
    assert sorted(f for f in os.listdir(audios(root)) if f.endswith(".wav")) == [f"Y{A}.wav", f"Y{C}.wav"]


# ----------------------------------------------------------------------- rows that are not the segment


def test_a_row_far_longer_than_its_segment_is_not_decoded_nor_written(tmp_path, monkeypatch):
    """Before: a 1-hour row was decoded and written in full (230 MB), then cut to 10 s by pack, unflagged."""
    from panns_core import audio_io

    decoded = []
    real = audio_io.load_audio

    def counting(path, *args, **kwargs):
        x = real(path, *args, **kwargs)
        decoded.append(len(x))
        return x

    monkeypatch.setattr(audio_io, "load_audio", counting)
    rows = [row(A, tone(500, 10.0), [SPEECH]), row(B, tone(600, 120.0), [SPEECH]),
            row(C, tone(700, 10.8), [SPEECH])]
    root, hf_dir = make_root(tmp_path, [rows], [A, B, C])
    result = acquire_split_hf(root, "eval", hf_dir=hf_dir, workers=0)
    assert result.written == 2 and result.bad_rows == {"too_long": 1}
    assert decoded == [320000, 345600]  # the 120-s row was refused from its header, never decoded
    assert failures(root) == [(B, "too_long", "agkphysics/AudioSet eval_00.parquet row 1: 120.0 s of audio for a "
                                              "10-s segment: not the segment (e.g. the whole video), not written")]


def test_pack_flags_a_clip_longer_than_its_segment(tmp_path):
    root, _ = make_root(tmp_path, [[]], [A, B])
    os.makedirs(audios(root))
    sf.write(os.path.join(audios(root), f"Y{A}.wav"), np.zeros(10 * SR, np.float32), SR)
    sf.write(os.path.join(audios(root), f"Y{B}.wav"), np.zeros(60 * SR, np.float32), SR)
    res = pack_dataset(root, splits=("eval",), sample_rate=SR)["eval.h5"]
    assert res.packed == 2 and res.long == 1
    manifest = json.load(open(res.manifest_path))
    assert manifest["long_clips"] == [{"audio_name": f"Y{B}.wav", "seconds": 60.0, "expected_seconds": 10.0}]


def test_a_cut_flac_row_is_recorded_as_truncated(tmp_path):
    whole = tone(500, 3.0)
    rows = [row(A, whole[: len(whole) * 6 // 10], [SPEECH]), row(B, tone(600), [SPEECH])]
    root, hf_dir = make_root(tmp_path, [rows], [A, B])
    result = acquire_split_hf(root, "eval", hf_dir=hf_dir, workers=0)
    assert result.written == 1 and result.bad_rows == {"truncated": 1}
    (ytid, reason, message), = failures(root)
    assert (ytid, reason) == (A, "truncated")
    assert message.startswith("agkphysics/AudioSet eval_00.parquet row 0: truncated: the FLAC STREAMINFO block "
                              "declares 24000 frames")


# ----------------------------------------------------------------------- the pool fits the machine


def test_the_decoding_pool_is_sized_to_the_machine(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(6)))
    assert default_workers() == 6
    sizes = []

    class Recording(hf_audioset.ProcessPoolExecutor):
        def __init__(self, max_workers=None, **kwargs):
            sizes.append(max_workers)
            super().__init__(max_workers=2, **kwargs)

    monkeypatch.setattr(hf_audioset, "ProcessPoolExecutor", Recording)
    root, hf_dir = make_root(tmp_path, [[row(A, tone(500), [SPEECH])]], [A])
    assert data_main(["acquire", root, "--split", "eval", "--source", "hf", "--hf-dir", hf_dir]) == 0
    assert sizes == [6]  # no --workers: one decoding process per CPU this process may use
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert default_workers() == 0  # one CPU: decoded in-process, no pool


# ----------------------------------------------------------------------- the machine fails, not a clip


_WRITE_CLIP_JOB = hf_audioset._write_clip_job


def _dies_on_d(args):
    """A decoding process killed (out of memory, a crash in a decoder) while on clip D."""
    if args[0] == D:
        os._exit(1)
    return _WRITE_CLIP_JOB(args)


def test_a_killed_decoding_process_stops_with_one_line_and_keeps_what_was_recorded(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(hf_audioset, "_write_clip_job", _dies_on_d)
    rows = [row(A, tone(500), [SPEECH]), row(B, b"fLaC" + b"\x13" * 200, [SPEECH]), row(D, tone(300), [SPEECH])]
    root, hf_dir = make_root(tmp_path, [rows], [A, B, D])
    assert data_main(["acquire", root, "--split", "eval", "--source", "hf", "--hf-dir", hf_dir,
                      "--workers", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert "a decoding process died" in err and "rerun to continue" in err
    assert [(y, r) for y, r, _ in failures(root)] == [(B, "decode")]
    monkeypatch.undo()  # the rerun continues: only D is left to write
    result = acquire_split_hf(root, "eval", hf_dir=hf_dir, workers=2)
    assert result.complete and result.written == 1


def test_a_corrupt_shard_in_the_hub_cache_is_dropped_and_fetched_again(tmp_path, monkeypatch):
    import http.server
    import threading

    from test_data_hf import FakeHub

    good = [row(C, tone(700), [SPEECH]), row(D, tone(800), [SPEECH])]
    root, hf_dir = make_root(tmp_path, [[row(A, tone(500), [SPEECH])], b"PAR1 cut short"], [A, C, D])
    FakeHub.root, FakeHub.requests = hf_dir, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    cache = tmp_path / "hub_cache"
    snapshot = cache / "datasets--agkphysics--AudioSet" / "snapshots" / FakeHub.sha / "data" / "eval"
    try:
        first = acquire_split_hf(root, "eval", endpoint=endpoint, cache_dir=str(cache), workers=0)
        assert list(first.bad_shards) == ["eval_01.parquet"] and not first.complete
        assert sorted(os.listdir(snapshot)) == ["eval_00.parquet"]  # the damaged copy is not kept
        pq.write_table(pa.Table.from_pylist(good, schema=SCHEMA), tmp_path / "mirror" / "data" / "eval" /
                       "eval_01.parquet")  # the mirror repaired
        second = acquire_split_hf(root, "eval", endpoint=endpoint, cache_dir=str(cache), workers=0)
        assert second.complete and second.written == 2 and failures(root) == []
        fetched = [p.rsplit("/", 1)[1] for m, p in FakeHub.requests if m == "GET" and "/resolve/" in p]
        assert fetched == ["eval_00.parquet", "eval_01.parquet", "eval_01.parquet"]
    finally:
        server.shutdown()
        server.server_close()
