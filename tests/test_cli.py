"""The ``panns`` command line on generated audio: rates, channels, lengths, bad files, cache.

Models are small and untrained (Cnn6 saved as a fake checkpoint; the SED test uses an
untrained Cnn14_DecisionLevelMax); a local HTTP server on 127.0.0.1 plays Zenodo.
"""

import csv
import errno
import functools
import hashlib
import http.server
import os
import re
import subprocess
import sys
import threading
import urllib.request

import h5py
import numpy as np
import pytest
import soundfile as sf
import torch

from panns_core import checkpoints
from panns_core.checkpoints import ReleasedCheckpoint, save_checkpoint
from panns_core.cli import main
from panns_core.models import create_model

FAKE = "Fake_Cnn6_mAP=0.000.pth"

# (name, rate, channels, seconds, format)
AUDIO = [
    ("tone_8k_mono_0.5s.wav", 8000, 1, 0.5, "WAV"),
    ("tone_22k_stereo_10s.flac", 22050, 2, 10.0, "FLAC"),
    ("noise_44k_stereo_25s.wav", 44100, 2, 25.0, "WAV"),
    ("chirp_48k_mono_10s.flac", 48000, 1, 10.0, "FLAC"),
]


def _signal(rate, channels, seconds, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    x = 0.3 * np.sin(2 * np.pi * (300 + 200 * t) * t) + 0.05 * rng.standard_normal(t.size)
    return np.stack([x * (0.5 + 0.5 * c) for c in range(channels)], 1).astype(np.float32)


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    for seed, (name, rate, channels, seconds, fmt) in enumerate(AUDIO):
        sf.write(root / name, _signal(rate, channels, seconds, seed), rate, format=fmt)
    (root / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + os.urandom(64))
    return root


@pytest.fixture(scope="module")
def fake_checkpoint(tmp_path_factory):
    """An untrained Cnn6 saved like a released checkpoint (official {'model': ...} layout)."""
    torch.manual_seed(0)
    model = create_model("Cnn6")
    path = tmp_path_factory.mktemp("ckpt") / FAKE
    torch.save({"model": model.state_dict(), "iteration": 0}, path)
    return path


def _files(audio_dir, *names):
    return [str(audio_dir / n) for n in (names or [a[0] for a in AUDIO])]


def test_tag_all_rates_channels_and_lengths(audio_dir, fake_checkpoint, tmp_path, capsys):
    out = tmp_path / "tags.csv"
    rc = main(["tag", "-c", str(fake_checkpoint), "--model", "Cnn6", "-k", "3", "-o", str(out),
               *_files(audio_dir)])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "(0.50 s, 1 window(s))" in printed and "(25.00 s, 3 window(s))" in printed
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * 3
    assert [r["file"] for r in rows[::3]] == _files(audio_dir)
    assert [r["rank"] for r in rows[:3]] == ["1", "2", "3"]
    scores = [float(r["score"]) for r in rows]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert all(float(a["score"]) >= float(b["score"]) for a, b in zip(rows[0:3], rows[1:3]))


def test_corrupt_file_is_reported_and_the_rest_processed(audio_dir, fake_checkpoint, tmp_path, capsys):
    failures = tmp_path / "failures.csv"
    corrupt, good = _files(audio_dir, "corrupt.wav", "tone_8k_mono_0.5s.wav")
    rc = main(["tag", "-c", str(fake_checkpoint), "--model", "Cnn6", "--failures", str(failures),
               corrupt, good])
    captured = capsys.readouterr()
    assert rc == 3  # some inputs skipped, the others processed (issue 24 case 9: was 0)
    assert f"skipped {corrupt}: cannot decode audio" in captured.err
    assert "1 processed, 1 skipped (exit status 3)" in captured.err and good in captured.out
    with open(failures) as f:
        rows = list(csv.DictReader(f))
    assert [r["file"] for r in rows] == [corrupt] and "cannot decode" in rows[0]["reason"]
    # nothing succeeded -> exit status 1
    assert main(["tag", "-c", str(fake_checkpoint), "--model", "Cnn6", corrupt]) == 1


@pytest.mark.parametrize("suffix", [".npy", ".h5"])
def test_embed_saves_names_and_matrix(audio_dir, fake_checkpoint, tmp_path, suffix):
    out = tmp_path / f"emb{suffix}"
    files = _files(audio_dir, "tone_8k_mono_0.5s.wav", "corrupt.wav", "chirp_48k_mono_10s.flac")
    assert main(["embed", "-q", "-c", str(fake_checkpoint), "--model", "Cnn6", "-o", str(out), *files]) == 3
    if suffix == ".h5":
        with h5py.File(out) as f:
            names = [n.decode() for n in f["audio_name"][()]]
            matrix = f["embedding"][()]
            assert f.attrs["model"] == "Cnn6"
    else:
        matrix = np.load(out)
        names = (tmp_path / "emb.names.txt").read_text().splitlines()
    assert names == [files[0], files[2]]
    assert matrix.shape == (2, 512) and matrix.dtype == np.float32 and np.isfinite(matrix).all()


def test_sed_outputs_frames_events_and_plot(audio_dir, tmp_path, capsys):
    files = _files(audio_dir, "tone_8k_mono_0.5s.wav", "tone_22k_stereo_10s.flac")
    events = tmp_path / "events.csv"
    rc = main(["sed", "--untrained", "Cnn14_DecisionLevelMax", "--threshold", "0.5",
               "--class-threshold", "Speech=0.1", "--min-duration", "0.05",
               "--events", str(events), "--plot-dir", str(tmp_path / "plots"),
               "--framewise-dir", str(tmp_path / "fw"), *files])
    captured = capsys.readouterr()
    assert rc == 0 and "RANDOM weights" in captured.err
    short = np.load(tmp_path / "fw" / "tone_8k_mono_0.5s.framewise.npy")
    ten = np.load(tmp_path / "fw" / "tone_22k_stereo_10s.framewise.npy")
    assert short.shape == (16000 // 320 + 1, 527) and ten.shape == (1001, 527)
    assert (tmp_path / "plots" / "tone_8k_mono_0.5s.png").stat().st_size > 10_000
    assert (tmp_path / "plots" / "tone_22k_stereo_10s.png").exists()
    table = list(csv.DictReader(open(events)))
    assert list(table[0]) == ["file", "onset", "offset", "label", "index", "score"]
    assert all(float(r["offset"]) - float(r["onset"]) >= 0.05 - 1e-9 for r in table)
    # an untrained model's outputs sit near 0.5: Speech at threshold 0.1 is active throughout
    speech = [r for r in table if r["label"] == "Speech" and r["file"] == files[1]]
    assert [(float(r["onset"]), float(r["offset"])) for r in speech] == [(0.0, 10.0)]


def test_sed_with_a_tagging_model_is_a_usage_error(audio_dir, fake_checkpoint, capsys):
    rc = main(["sed", "-c", str(fake_checkpoint), "--model", "Cnn6", *_files(audio_dir, "tone_8k_mono_0.5s.wav")])
    assert rc == 2 and "Cnn14_DecisionLevelMax" in capsys.readouterr().err


def test_usage_errors(audio_dir, tmp_path, capsys):
    f = _files(audio_dir, "tone_8k_mono_0.5s.wav")
    assert main(["tag", "-c", str(tmp_path / "nope.pth"), *f]) == 2
    assert "no such file, and not the name of a released checkpoint" in capsys.readouterr().err
    assert main(["embed", "--untrained", "Cnn6", "-o", str(tmp_path / "x.txt"), *f]) == 2
    assert main(["sed", "--untrained", "Cnn14_DecisionLevelMax", "--class-threshold", "Speech", *f]) == 2
    assert "LABEL=VALUE" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["tag"])


def test_local_checkpoint_model_is_inferred_or_required(audio_dir, tmp_path, capsys, monkeypatch):
    torch.manual_seed(0)
    ours = save_checkpoint(tmp_path / "mine.pt", create_model("Cnn6"))  # records its class
    f = _files(audio_dir, "tone_8k_mono_0.5s.wav")
    assert main(["tag", "-q", "-c", str(ours), *f]) == 0
    anonymous = tmp_path / "weights.pt"
    torch.save({"model": {"foo.weight": torch.zeros(3)}}, anonymous)
    import panns_core.models as models

    monkeypatch.setattr(models, "list_models", lambda: ["Cnn6"])  # keep the layout scan small
    assert main(["tag", "-c", str(anonymous), *f]) == 2
    assert "pass the model name (--model" in capsys.readouterr().err


def test_models_lists_registry_with_released_checkpoints(capsys):
    assert main(["models", "--released"]) == 0
    out = capsys.readouterr().out
    assert "Cnn14_mAP=0.431.pth" in out and "Cnn14_DecisionLevelMax" in out and "Cnn14_16k" in out
    assert "Transfer_Cnn14" not in out


# --------------------------------------------------------------------------- download and cache


@pytest.fixture
def server(fake_checkpoint):
    """Serve the fake checkpoint's folder on 127.0.0.1; yields the base URL and a stop()."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(fake_checkpoint.parent))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    stopped = []

    def stop():
        if not stopped:
            httpd.shutdown()
            httpd.server_close()
            stopped.append(True)

    yield url, stop
    stop()


def _register(monkeypatch, url, path, md5=None):
    md5 = md5 or hashlib.md5(path.read_bytes()).hexdigest()
    entry = ReleasedCheckpoint(FAKE, f"{url}/{urllib.request.quote(FAKE)}", "Cnn6", path.stat().st_size, md5)
    monkeypatch.setitem(checkpoints.RELEASED_CHECKPOINTS, FAKE, entry)


def test_download_once_then_offline_from_cache(audio_dir, fake_checkpoint, server, tmp_path, monkeypatch, capsys):
    url, stop = server
    _register(monkeypatch, url, fake_checkpoint)
    cache = tmp_path / "cache"
    assert main(["download", FAKE, "--cache-dir", str(cache)]) == 0
    assert (cache / FAKE).read_bytes() == fake_checkpoint.read_bytes()
    stop()

    def no_network(*args, **kwargs):
        raise AssertionError("network used although the checkpoint is cached")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    f = _files(audio_dir, "tone_8k_mono_0.5s.wav")
    assert main(["tag", "-q", "-c", FAKE, "--cache-dir", str(cache), *f]) == 0
    monkeypatch.setenv("PANNS_CACHE", str(cache))
    assert main(["tag", "-q", "--offline", "-c", FAKE, *f]) == 0


def test_missing_and_unreachable_gives_a_clear_message(audio_dir, fake_checkpoint, server, tmp_path,
                                                       monkeypatch, capsys):
    url, stop = server
    stop()  # nothing listens on that port any more
    _register(monkeypatch, url, fake_checkpoint)
    cache = tmp_path / "empty"
    f = _files(audio_dir, "tone_8k_mono_0.5s.wav")
    assert main(["tag", "-q", "-c", FAKE, "--cache-dir", str(cache), *f]) == 2
    err = capsys.readouterr().err
    assert "is not in the cache" in err and "could not be downloaded" in err and str(cache) in err
    assert main(["tag", "-q", "--offline", "-c", FAKE, "--cache-dir", str(cache), *f]) == 2
    assert "downloading is disabled" in capsys.readouterr().err


def test_checksum_mismatch_is_refused(fake_checkpoint, server, tmp_path, monkeypatch, capsys):
    url, _ = server
    _register(monkeypatch, url, fake_checkpoint, md5="0" * 32)
    cache = tmp_path / "cache"
    assert main(["download", FAKE, "--cache-dir", str(cache)]) == 1
    assert "md5 mismatch" in capsys.readouterr().err
    assert not (cache / FAKE).exists()


def test_console_script_in_a_subprocess(audio_dir, fake_checkpoint):
    script = os.path.join(os.path.dirname(sys.executable), "panns")
    cmd = [script] if os.path.exists(script) else [sys.executable, "-m", "panns_core.cli"]
    f = _files(audio_dir, "tone_8k_mono_0.5s.wav", "corrupt.wav")
    proc = subprocess.run(cmd + ["tag", "-c", str(fake_checkpoint), "--model", "Cnn6", "-k", "2", *f],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 3, proc.stderr  # corrupt.wav skipped
    assert f[0] in proc.stdout and len(re.findall(r"^  [01]\.\d{3}  \S", proc.stdout, re.M)) == 2
    assert f"skipped {f[1]}" in proc.stderr


# --------------------------------------------------------------------------- issue 24: hostile input


def test_a_fifo_is_named_as_such_and_any_skipped_input_is_exit_status_3(audio_dir, fake_checkpoint, tmp_path, capsys):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    good = _files(audio_dir, "tone_8k_mono_0.5s.wav")[0]
    rc = main(["tag", "-q", "-c", str(fake_checkpoint), "--model", "Cnn6", good, str(fifo)])
    err = capsys.readouterr().err
    assert rc == 3  # was 0 although a file was skipped
    assert f"skipped {fifo}: is a named pipe (FIFO), not a regular audio file" in err  # was "file is empty (0 bytes)"
    assert main(["tag", "-q", "-c", str(fake_checkpoint), "--model", "Cnn6", good]) == 0


def _tampered_finetuned_checkpoint(path, labels):
    from panns_core.transfer.finetune import save_transfer_checkpoint
    from panns_core.transfer.strategies import transfer_model

    torch.manual_seed(0)
    model = transfer_model("freeze_l1", create_model("MobileNetV2"), len(labels))
    return save_transfer_checkpoint(str(path), model, backbone="MobileNetV2", backbone_overrides={},
                                    strategy="freeze_l1", classes=labels, clip_seconds=1.0)


def test_labels_and_file_names_cannot_forge_terminal_output(audio_dir, tmp_path, capsys):
    forged = "\x1b[1A\x1b[2K  0.999  Speech\nFAKE line\u202e"
    checkpoint = _tampered_finetuned_checkpoint(tmp_path / "model.pth", ["dog", forged])
    evil = tmp_path / "a\nb\x1b[31m.wav"
    sf.write(evil, _signal(16000, 1, 1.0, 0), 16000)
    rc = main(["tag", "-c", checkpoint, "-k", "2", str(evil), str(tmp_path / "gone\x07.wav")])
    captured = capsys.readouterr()
    assert rc == 3
    for text in (captured.out, captured.err):
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    lines = captured.out.splitlines()
    assert not any(line.startswith("FAKE") for line in lines)
    assert "  \\x1b[1A\\x1b[2K  0.999  Speech\\nFAKE line\\u202e" in captured.out  # shown, escaped
    assert f"{tmp_path}/a\\nb\\x1b[31m.wav  (1.00 s" in captured.out
    assert f"skipped {tmp_path}/gone\\x07.wav: file not found" in captured.err


def test_an_undecodable_file_name_prints_in_a_real_terminal_pipe(audio_dir, fake_checkpoint, tmp_path):
    """A Latin-1 file name on a UTF-8 system is a surrogate escape in Python; printing it used to raise."""
    sf.write(os.path.join(os.fsencode(tmp_path), b"caf\xe9.wav"), _signal(16000, 1, 0.5, 0), 16000)
    proc = subprocess.run([sys.executable, "-m", "panns_core.cli", "tag", "-c", str(fake_checkpoint), "--model",
                           "Cnn6", "-k", "1", str(tmp_path)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONIOENCODING": "utf-8"})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and f"{tmp_path}/caf\\xe9.wav  (0.50 s" in proc.stdout


def test_interrupts_devices_and_outputs_are_one_line_errors(audio_dir, fake_checkpoint, tmp_path, capsys,
                                                            monkeypatch):
    from panns_core import cli, inference

    f = _files(audio_dir, "tone_8k_mono_0.5s.wav")
    base = ["tag", "-q", "-c", str(fake_checkpoint), "--model", "Cnn6"]

    def check(argv, status, message):
        assert main(argv) == status
        captured = capsys.readouterr()
        assert message in captured.err and "Traceback" not in captured.err
        assert len([line for line in captured.err.splitlines() if line.startswith("panns")]) == 1

    check(base + ["--device", "tpu9", *f], 2, "panns: error: --device tpu9: 'tpu9' is not a torch device")
    (tmp_path / "plain").write_text("x")
    check(base + ["-o", str(tmp_path / "plain" / "tags.csv"), *f], 2,
          f"--output {tmp_path / 'plain' / 'tags.csv'}: {tmp_path / 'plain'} exists and is not a folder")
    monkeypatch.setattr(cli.os, "access", lambda path, mode: False)  # a read-only folder (root ignores chmod)
    check(base + ["-o", str(tmp_path / "tags.csv"), *f], 2, f"the folder {tmp_path} is not writable")
    monkeypatch.undo()

    def disk_full(df, path):
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(cli, "_write_csv", disk_full)
    check(base + ["-o", str(tmp_path / "tags.csv"), *f], 2,
          f"panns: error: {tmp_path / 'tags.csv'}: No space left on device; free some space")
    monkeypatch.undo()

    def ctrl_c(self, inputs):
        raise KeyboardInterrupt

    monkeypatch.setattr(inference.Pretrained, "tag", ctrl_c)
    check(base + f, 130, "panns: interrupted (Ctrl-C)")
    with pytest.raises(SystemExit) as exit_info:
        main(base + ["--threads", "0", *f])
    assert exit_info.value.code == 2 and "argument --threads: must be > 0, got 0" in capsys.readouterr().err
