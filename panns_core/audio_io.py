"""Read any common audio file as mono float32 at the sample rate a model expects.

Users hand PANNs whatever they have: 44.1 kHz stereo FLAC, 8 kHz WAV, MP3, M4A.
The models need mono float32 in [-1, 1] at their own rate (32 kHz for most
checkpoints, 16 kHz or 8 kHz for the low-rate ones). :func:`load_audio` is the one
place that does this:

1. **soundfile** (libsndfile: WAV, FLAC, OGG/Vorbis, MP3 with libsndfile >= 1.1, AIFF ...)
   decodes at the file's own rate; channels are averaged; ``librosa.resample``
   (soxr, high quality) converts the rate.
2. If libsndfile cannot open the file (M4A/AAC, Opus-in-WebM, video containers),
   the **ffmpeg** binary bundled by ``imageio-ffmpeg`` decodes it (argument list,
   no shell) to a temporary float WAV with the file's own channels and rate, which
   then goes through the same averaging and resampling as in step 1.
3. Otherwise :class:`AudioReadError` is raised, naming the file and what each
   decoder said.

Empty or non-finite audio is also an :class:`AudioReadError`, never a silent zero
clip.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

FFMPEG_TIMEOUT_S = 600


class AudioReadError(ValueError):
    """An audio file could not be decoded; ``str()`` names the file and the reason."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def pad_or_truncate(x: np.ndarray, n: int) -> np.ndarray:
    """Zero-pad at the end or cut to ``n`` samples (the official ``pad_or_truncate``)."""
    if len(x) >= n:
        return x[:n]
    return np.concatenate([x, np.zeros(n - len(x), dtype=x.dtype)])


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Average channels: ``(samples,)`` or ``(samples, channels)`` -> ``(samples,)``."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        return audio
    if audio.ndim == 2:
        return audio.mean(axis=1, dtype=np.float32)
    raise ValueError(f"audio must be 1-D or (samples, channels), got shape {audio.shape}")


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling (soxr via librosa); a no-op when the rates match."""
    if int(orig_sr) == int(target_sr):
        return np.asarray(audio, dtype=np.float32)
    import librosa

    out = librosa.resample(np.asarray(audio, dtype=np.float32), orig_sr=int(orig_sr), target_sr=int(target_sr))
    return out.astype(np.float32, copy=False)


def _read_soundfile(path: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    return to_mono(audio), int(sr)


def ffmpeg_executable() -> str | None:
    """The ffmpeg binary shipped with imageio-ffmpeg (or ``IMAGEIO_FFMPEG_EXE``), if any."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # noqa: BLE001 - missing package or binary: no ffmpeg fallback
        return None


def _read_ffmpeg(path: str) -> tuple[np.ndarray, int]:
    """Decode with ffmpeg to a temporary float WAV, keeping the file's channels and rate.

    Channels and rate are kept so that downmixing (plain average) and resampling
    (soxr) are the same as for files libsndfile reads; ffmpeg's own ``-ac 1``
    downmix is not a plain average.
    """
    exe = ffmpeg_executable()
    if exe is None:
        raise RuntimeError("ffmpeg is not available (pip install imageio-ffmpeg)")
    with tempfile.TemporaryDirectory(prefix="panns_decode_") as tmp:
        out = os.path.join(tmp, "decoded.wav")
        cmd = [exe, "-nostdin", "-v", "error", "-i", path, "-vn", "-map", "0:a:0",
               "-acodec", "pcm_f32le", "-rf64", "auto", "-f", "wav", out]
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              timeout=FFMPEG_TIMEOUT_S, check=False)
        if proc.returncode != 0:
            lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise RuntimeError(f"ffmpeg exit {proc.returncode}: {lines[-1] if lines else 'no message'}")
        return _read_soundfile(out)


def _validate(path: str, audio: np.ndarray) -> np.ndarray:
    if audio.size == 0:
        raise AudioReadError(path, "the file decodes to 0 samples (empty audio)")
    if not np.all(np.isfinite(audio)):
        raise AudioReadError(path, "the decoded audio contains NaN or infinite samples")
    return audio


def load_audio(path, sample_rate: int, *, use_ffmpeg: bool = True) -> np.ndarray:
    """Decode ``path`` to a mono float32 array at ``sample_rate``.

    Raises :class:`AudioReadError` (a ``ValueError``) naming the file when it is
    missing, unreadable by every decoder, empty, or contains non-finite samples.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise AudioReadError(path, "file not found")
    if os.path.isdir(path):
        raise AudioReadError(path, "is a directory, not an audio file")
    if os.path.getsize(path) == 0:
        raise AudioReadError(path, "file is empty (0 bytes)")
    try:
        audio, sr = _read_soundfile(path)
    except Exception as sf_error:  # noqa: BLE001 - any libsndfile failure goes to ffmpeg
        if not use_ffmpeg:
            raise AudioReadError(path, f"cannot decode ({sf_error})") from None
        try:
            audio, sr = _read_ffmpeg(path)
        except Exception as ff_error:  # noqa: BLE001
            raise AudioReadError(
                path, f"cannot decode audio: soundfile: {sf_error}; ffmpeg: {ff_error}"
            ) from None
    audio = _validate(path, audio)
    return _validate(path, resample(audio, sr, sample_rate))


AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".aac", ".opus",
                    ".aif", ".aiff", ".webm", ".mp4", ".wma", ".caf")


def expand_inputs(inputs, *, recursive: bool = True) -> list[str]:
    """Files named on a command line: directories expand to the audio files inside them.

    Plain file paths are kept as given (even with an unknown extension, so the
    decoder gets to say what is wrong); directories contribute their files whose
    extension is in :data:`AUDIO_EXTENSIONS`, sorted for reproducible order.
    """
    files: list[str] = []
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            pattern = "**/*" if recursive else "*"
            found = sorted(str(p) for p in Path(item).glob(pattern)
                           if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            files.extend(found)
        else:
            files.append(item)
    return files
