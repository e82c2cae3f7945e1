"""Issue 24, item 7: a file cut short is reported as truncated in every container we can
check (frames declared by its header vs frames decoded), never accepted as a short clip
and padded into a "good" one. Files are written here (soundfile, and ffmpeg for M4A and
WebM), then cut."""

import io
import os
import subprocess

import numpy as np
import pytest
import soundfile as sf

from panns_core.audio_headers import declared_length, ogg_incomplete
from panns_core.audio_io import AudioReadError, ffmpeg_executable, load_audio
from panns_core.data.pack import load_clip
from panns_core.transfer import ClipAudio, parse_folder

SR = 16000
SECONDS = 3.0


def _noise(sr=SR, seconds=SECONDS, channels=1):
    rng = np.random.default_rng(0)
    return (0.3 * rng.standard_normal((int(sr * seconds), channels))).astype(np.float32)


# name -> (format, subtype, sample rate); what libsndfile reads and writes
SOUNDFILE_CONTAINERS = {
    "wav": ("WAV", "PCM_16", SR), "wav_float": ("WAV", "FLOAT", SR), "rf64": ("RF64", "PCM_24", SR),
    "w64": ("W64", "PCM_16", SR), "aiff": ("AIFF", "PCM_16", SR), "aifc_ulaw": ("AIFF", "ULAW", SR),
    "au": ("AU", "PCM_16", SR), "caf": ("CAF", "PCM_16", SR), "flac": ("FLAC", "PCM_16", SR),
    "flac_24": ("FLAC", "PCM_24", 48000), "mp3": ("MP3", "MPEG_LAYER_III", SR),
    "ogg_vorbis": ("OGG", "VORBIS", SR), "ogg_opus": ("OGG", "OPUS", 48000),
}


def _soundfile_file(tmp_path, name):
    fmt, subtype, sr = SOUNDFILE_CONTAINERS[name]
    path = tmp_path / f"{name}.{fmt.lower()}"
    sf.write(path, _noise(sr), sr, format=fmt, subtype=subtype)
    return path


def _ffmpeg_file(tmp_path, name):
    exe = ffmpeg_executable()
    if exe is None:
        pytest.skip("imageio-ffmpeg binary not available")
    src = tmp_path / "src.wav"
    sf.write(src, _noise(44100, channels=2), 44100)
    args = {"m4a": ["-c:a", "aac", "-movflags", "+faststart"], "webm": ["-c:a", "libopus"]}[name]
    path = tmp_path / f"clip.{name}"
    subprocess.run([exe, "-v", "error", "-y", "-i", str(src), *args, str(path)], check=True)
    return path


def _cut(path, fraction=0.6):
    cut = path.with_name("cut_" + path.name)
    data = path.read_bytes()
    cut.write_bytes(data[: int(len(data) * fraction)])
    return cut


@pytest.mark.parametrize("name", list(SOUNDFILE_CONTAINERS) + ["m4a", "webm"])
def test_a_cut_file_is_truncated_and_the_whole_file_is_not(tmp_path, name):
    path = _ffmpeg_file(tmp_path, name) if name in ("m4a", "webm") else _soundfile_file(tmp_path, name)
    whole = load_audio(path, SR)
    assert abs(len(whole) - SR * SECONDS) <= 0.05 * SR  # the complete file: no false alarm
    cut = _cut(path)
    with pytest.raises(AudioReadError) as info:
        load_audio(cut, SR)
    assert info.value.kind == "truncated", str(info.value)
    message = str(info.value)
    assert message.startswith(f"{cut}: truncated: ") and "cut short" in message and "\n" not in message


def test_flac_message_names_streaminfo_and_the_frames(tmp_path):
    path = _cut(_soundfile_file(tmp_path, "flac"), 0.5)
    with pytest.raises(AudioReadError, match=r"cut_flac\.flac: truncated: the FLAC STREAMINFO block declares "
                                             r"48000 frames but only \d+ decode \(\d+%\)"):
        load_audio(path, SR)
    assert declared_length(path).frames == 48000 and declared_length(path).exact


def test_flac_cut_at_any_point_is_never_a_clip(tmp_path):
    """Wherever a download stops, a cut FLAC is refused (truncated, or undecodable when cut in its header)."""
    data = _soundfile_file(tmp_path, "flac").read_bytes()
    path = tmp_path / "c.flac"
    kinds = set()
    for k in range(100, len(data), len(data) // 25):
        path.write_bytes(data[:k])
        with pytest.raises(AudioReadError) as info:
            load_audio(path, SR)
        kinds.add(info.value.kind)
    assert kinds <= {"truncated", "decode"} and "truncated" in kinds


def _ogg_page_ends(data):
    ends, pos = [], 0
    while pos < len(data):
        nseg = data[pos + 26]
        pos += 27 + nseg + sum(data[pos + 27:pos + 27 + nseg])
        ends.append(pos)
    return ends


def test_ogg_cut_on_a_page_boundary_lacks_its_end_of_stream_page(tmp_path):
    """Ogg declares no length: a file cut between two pages decodes cleanly but has no last page."""
    path = _soundfile_file(tmp_path, "ogg_vorbis")
    data = path.read_bytes()
    boundary = _ogg_page_ends(data)[-3]  # drop the last two whole pages
    cut = tmp_path / "cut.ogg"
    cut.write_bytes(data[:boundary])
    assert sf.info(cut).frames > 0  # libsndfile opens it as a shorter, valid file
    assert ogg_incomplete(path) is None
    assert ogg_incomplete(cut) == "the Ogg stream has no end-of-stream page"
    with pytest.raises(AudioReadError, match=r"cut\.ogg: truncated: the Ogg stream has no end-of-stream page"):
        load_audio(cut, SR)


def test_files_that_declare_nothing_are_not_judged(tmp_path):
    """No declaration, no claim: an MP3 without a Xing header and a streamed WAV (size 0) decode as they are."""
    exe = ffmpeg_executable()
    if exe is None:
        pytest.skip("imageio-ffmpeg binary not available")
    src = tmp_path / "src.wav"
    sf.write(src, _noise(), SR)
    mp3 = tmp_path / "noxing.mp3"
    subprocess.run([exe, "-v", "error", "-y", "-i", str(src), "-c:a", "libmp3lame", "-write_xing", "0", str(mp3)],
                   check=True)
    assert declared_length(mp3) is None
    assert abs(len(load_audio(mp3, SR)) - SR * SECONDS) < 0.1 * SR
    streamed = bytearray(src.read_bytes())
    streamed[40:44] = (0).to_bytes(4, "little")  # data chunk size unknown, as a streaming writer leaves it
    (tmp_path / "streamed.wav").write_bytes(bytes(streamed))
    assert declared_length(tmp_path / "streamed.wav") is None


def test_pack_excludes_a_cut_flac_as_truncated(tmp_path):
    path = _cut(_soundfile_file(tmp_path, "flac"))
    result = load_clip(str(path), SR, SR * 10)  # mono 16-bit at the target rate: the int16 path first
    assert result.status == "truncated" and str(path) in result.message
    assert load_clip(str(path), 32000, 32000 * 10).status == "truncated"  # resampled


def test_a_cut_flac_is_skipped_by_fine_tuning_not_repeat_padded(tmp_path):
    """Before: decoded as a 1.8-s clip and repeat-padded to the window like any short sound."""
    rows = ["filename,label,fold"]
    for i in range(4):
        sf.write(tmp_path / f"c{i}.flac", _noise(SR, 0.5), SR)
        rows.append(f"c{i}.flac,{'ab'[i % 2]},{i % 2 + 1}")
    buf = io.BytesIO()
    sf.write(buf, _noise(), SR, format="FLAC")
    (tmp_path / "cut.flac").write_bytes(buf.getvalue()[: len(buf.getvalue()) * 6 // 10])
    rows.append("cut.flac,a,1")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    loaded = ClipAudio(SR).load(parse_folder(str(tmp_path / "labels.csv")))
    assert len(loaded.clips) == 4
    assert [os.path.basename(p) for p, _ in loaded.skipped] == ["cut.flac"]
    assert "truncated" in loaded.skipped[0][1]
