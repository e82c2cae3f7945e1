"""Acquisition offline: fake downloaders, real and fake ffmpeg, failures, resume, summary."""

import csv
import json
import os
import stat
import sys

import numpy as np
import pytest
import soundfile as sf

from panns_core.data.acquire import (
    AcquireError, acquire_split, availability_summary, classify_error, ffmpeg_cut_args, find_ffmpeg,
)
from panns_core.data.audioset import Segment, write_segments_csv


def make_root(tmp_path, ids):
    root = tmp_path / "data"
    (root / "metadata").mkdir(parents=True)
    write_segments_csv(str(root / "metadata" / "eval_segments.csv"),
                       [Segment(i, 1.0, 3.0, ("/m/09x0r",)) for i in ids])
    return str(root)


class FakeDownloader:
    """Writes a 5-s 44.1 kHz stereo file for good ids; raises for the others."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.calls = []

    def __call__(self, ytid, workdir):
        self.calls.append(ytid)
        kind = self.behaviour.get(ytid, "ok")
        if kind == "ok" or (kind == "flaky" and self.calls.count(ytid) > 1):
            t = np.arange(5 * 44100) / 44100
            x = 0.5 * np.sin(2 * np.pi * 440 * t) * (t >= 2.0)  # silent until 2 s: shows where the cut starts
            path = os.path.join(workdir, f"_Y{ytid}.webm.wav")
            sf.write(path, np.stack([x, x], 1), 44100)
            return path
        if kind == "garbage":
            path = os.path.join(workdir, f"_Y{ytid}.m4a")
            open(path, "wb").write(b"not audio at all")
            return path
        messages = {"private": "ERROR: [youtube] x: Private video. Sign in if you've been granted access",
                    "gone": "ERROR: [youtube] x: Video unavailable. This video has been removed by the uploader",
                    "flaky": "ERROR: Unable to download webpage: <urlopen error timed out>",
                    "net": "ERROR: HTTP Error 503: Service Unavailable"}
        raise AcquireError(classify_error(messages[kind]), messages[kind])


IDS = ["good0000001", "good0000002", "private0001", "gone0000001", "flaky000001", "garbage0001", "net00000001"]
BEHAVIOUR = {"private0001": "private", "gone0000001": "gone", "flaky000001": "flaky",
             "garbage0001": "garbage", "net00000001": "net"}


def test_acquire_with_real_ffmpeg_and_failures(tmp_path):
    root = make_root(tmp_path, IDS)
    fake = FakeDownloader(BEHAVIOUR)
    summary = acquire_split(root, "eval", downloader=fake, workers=3, retries=1, backoff=0.0)
    out = os.path.join(root, "audios", "eval")
    x, sr = sf.read(os.path.join(out, "Ygood0000001.wav"), dtype="int16")
    info = sf.info(os.path.join(out, "Ygood0000001.wav"))
    assert sr == 32000 and info.channels == 1 and info.subtype == "PCM_16"
    assert abs(len(x) - 64000) <= 64  # cut to the 2-s segment
    assert np.abs(x[:30000]).max() < 2000 < np.abs(x[-30000:]).max()  # cut starts at 1 s, tone at 2 s
    assert os.path.exists(os.path.join(out, "Yflaky000001.wav"))  # network failure retried
    with open(os.path.join(out, "failures.csv")) as f:
        rows = {r["youtube_id"]: r["reason"] for r in csv.DictReader(f)}
    assert rows == {"private0001": "private", "gone0000001": "unavailable", "garbage0001": "decode",
                    "net00000001": "network"}
    assert summary.available == 3 and summary.total == 7
    assert summary.line().startswith("eval: 42.9% of 7 clips available (3 downloaded; failed: decode 1, network 1")
    assert json.load(open(os.path.join(out, "summary.json")))["percent"] == 42.86
    assert not [f for f in os.listdir(out) if f.startswith("acq_") or f.endswith(".part.wav")]

    # rerun: done clips and permanent failures are skipped; transient ones are retried
    again = FakeDownloader({**BEHAVIOUR, "net00000001": "ok"})
    acquire_split(root, "eval", downloader=again, workers=1, retries=0)
    assert sorted(again.calls) == ["garbage0001", "net00000001"]
    s = availability_summary(root, "eval")
    assert s.available == 4 and s.failed == {"private": 1, "unavailable": 1, "decode": 1}


def test_fake_ffmpeg_on_path_gets_an_argument_list(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "argv.json"
    script = bindir / "ffmpeg"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys, numpy as np, soundfile as sf\n"
        f"json.dump(sys.argv[1:], open({str(log)!r}, 'w'))\n"
        "sf.write(sys.argv[-1], np.zeros(64000, 'int16'), 32000, subtype='PCM_16', format='WAV')\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bindir) + os.pathsep + os.environ["PATH"])
    assert find_ffmpeg() == str(script)
    weird = 'a"b;rm -rf x'  # CSV content never reaches a shell
    root = make_root(tmp_path, ["good0000001"])

    def downloader(ytid, workdir):
        path = os.path.join(workdir, weird)
        open(path, "w").close()
        return path

    acquire_split(root, "eval", downloader=downloader, workers=1)
    argv = json.load(open(log))
    assert argv[argv.index("-ss") + 1] == "1.000" and argv[argv.index("-t") + 1] == "2.000"
    assert argv[argv.index("-i") + 1].endswith(weird)
    assert argv[argv.index("-ar") + 1] == "32000" and argv[argv.index("-ac") + 1] == "1"
    assert os.path.exists(os.path.join(root, "audios", "eval", "Ygood0000001.wav"))


def test_classify_error():
    assert classify_error("ERROR: Private video") == "private"
    assert classify_error("Sign in to confirm your age") == "private"
    assert classify_error("Video unavailable") == "unavailable"
    assert classify_error("This video has been removed for violating") == "unavailable"
    assert classify_error("HTTP Error 429: Too Many Requests") == "network"
    assert classify_error("something odd") == "other"
    args = ffmpeg_cut_args("ffmpeg", "in.webm", "out.wav", 30.0, 10.0)
    assert args[0] == "ffmpeg" and args[-1] == "out.wav" and "pcm_s16le" in args


def test_downloader_bug_is_recorded_not_raised(tmp_path):
    root = make_root(tmp_path, ["good0000001"])

    def broken(ytid, workdir):
        raise KeyError("oops")

    s = acquire_split(root, "eval", downloader=broken, workers=1)
    assert s.failed == {"other": 1}
