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
clip, and so is a file that decodes to fewer frames than its header declares (a cut
download or copy; :mod:`panns_core.audio_headers` reads what WAV, AIFF, FLAC, MP3,
Ogg, CAF, M4A, WebM ... declare): such a file would otherwise be padded into a
"good" clip.
Every :class:`AudioReadError` carries a short ``kind`` (:data:`FAILURE_KINDS`), so a
batch job (packing, transfer, inference) can record *why* a file was skipped.

This module is the one decode/resample path of the project: packing
(:mod:`panns_core.data.pack`), the transfer datasets and inference all call
:func:`load_audio`, so training and inference audio are resampled the same way.
(The reader's 32 kHz -> 16/8 kHz modes in :mod:`panns_core.data.resample` are a
different thing: on-the-fly downsampling of already packed data for the low-rate
ablations, kept as the paper's recipe.)
"""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from pathlib import Path

import numpy as np

FFMPEG_TIMEOUT_S = 600


FAILURE_KINDS = ("missing", "not_a_file", "empty", "decode", "truncated", "nonfinite", "bad_array")
"""Why a file or array was skipped: the ``kind`` of an :class:`AudioReadError`."""


class AudioReadError(ValueError):
    """An audio file could not be decoded; ``str()`` names the file and the reason.

    ``kind`` is one of :data:`FAILURE_KINDS` (``decode`` when nothing more precise is known).
    """

    def __init__(self, path, reason: str, kind: str = "decode"):
        self.path = str(path)
        self.reason = reason
        self.kind = kind
        super().__init__(f"{self.path}: {reason}")


def pad_or_truncate(x: np.ndarray, n: int) -> np.ndarray:
    """Zero-pad at the end or cut to ``n`` samples (the official ``pad_or_truncate``)."""
    if len(x) >= n:
        return x[:n]
    return np.concatenate([x, np.zeros(n - len(x), dtype=x.dtype)])


PAD_MODES = ("zeros", "repeat")


def fit_to_length(x: np.ndarray, n: int, pad: str = "zeros") -> np.ndarray:
    """Cut ``x`` to ``n`` samples, or bring a shorter ``x`` up to ``n`` by ``pad``.

    ``"zeros"`` appends silence (:func:`pad_or_truncate`, the official code);
    ``"repeat"`` repeats the clip end to end (an empty clip stays silent), so a
    0.3-s sound fills a 1.3-s training window instead of being three quarters
    padding at the log-mel floor (measured in docs/transfer.md).
    """
    if pad not in PAD_MODES:
        raise ValueError(f"pad must be one of {PAD_MODES}, got {pad!r}")
    if pad == "zeros" or len(x) >= n or len(x) == 0:
        return pad_or_truncate(x, n)
    return np.tile(x, -(-n // len(x)))[:n]


def waveform_from_array(array, name: str = "array") -> np.ndarray:
    """A 1-D numpy input as float32 in [-1, 1], the way a decoded file would be.

    Integer PCM is scaled by its full range, like a WAV reader does: int8/int16/int32
    divide by 2**7/2**15/2**31, unsigned 8-bit PCM is centred on 128 first. Tagging
    raw 32767-range values would saturate the log-mel front end and give confident
    nonsense. Other dtypes (uint16/uint32/int64, complex, object) are refused with a
    message saying how to convert. Empty, non-1-D and non-finite arrays raise
    :class:`AudioReadError` (``kind`` ``bad_array`` / ``nonfinite``) naming ``name``.
    """
    x = np.asarray(array)
    if x.ndim != 1 or x.size == 0:
        raise AudioReadError(name, f"an input array must be 1-D and non-empty, got shape {x.shape}", "bad_array")
    if x.dtype == np.uint8:
        return ((x.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if x.dtype in (np.int8, np.int16, np.int32):
        return (x.astype(np.float64) / float(2 ** (8 * x.dtype.itemsize - 1))).astype(np.float32)
    if not np.issubdtype(x.dtype, np.floating):
        raise AudioReadError(
            name, f"unsupported array dtype {x.dtype}: pass float32 samples in [-1, 1] (or int16/int32/uint8 "
                  f"PCM, which is scaled), e.g. x.astype(np.float32) / np.iinfo(x.dtype).max", "bad_array")
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise AudioReadError(name, f"the array contains {bad} NaN or infinite samples", "nonfinite")
    return x


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


def _check_complete(path: str, decoded_frames: int, sample_rate: int, ffmpeg_seconds: float | None = None) -> None:
    """Raise ``truncated`` when fewer frames decoded than the file's header declares (or an Ogg stream is cut).

    The declaration comes from :mod:`panns_core.audio_headers` (WAV, Wave64, AIFF,
    AU, CAF, FLAC, MP3 with a Xing header), else from the container duration ffmpeg
    reported while decoding (``ffmpeg_seconds``: M4A, WebM ...).
    """
    from panns_core.audio_headers import DeclaredLength, declared_length, ogg_incomplete

    declared = declared_length(path)
    if declared is None and ffmpeg_seconds is not None:
        declared = DeclaredLength(int(round(ffmpeg_seconds * sample_rate)), "the container (as ffmpeg reads it)",
                                  exact=False)
    if declared is not None and declared.missing(decoded_frames, sample_rate):
        raise AudioReadError(
            path, f"truncated: {declared.header} declares {declared.frames} frames but only {decoded_frames} "
                  f"decode ({decoded_frames / declared.frames:.0%}); the file was cut short (re-download or "
                  f"re-copy it)", "truncated")
    cut = ogg_incomplete(path)
    if cut:
        raise AudioReadError(path, f"truncated: {cut}; the file was cut short (re-download or re-copy it)",
                             "truncated")


def read_native_int16(path, sample_rate: int) -> np.ndarray | None:
    """A mono 16-bit PCM file already at ``sample_rate``: its samples unchanged, else None.

    Packing stores int16; reading such files (what acquisition writes) as int16
    skips a lossy float round trip. The same completeness check as
    :func:`load_audio` applies (a truncated file raises :class:`AudioReadError`).
    """
    import soundfile as sf

    path = os.fspath(path)
    try:
        info = sf.info(path)
        if info.samplerate != sample_rate or info.channels != 1 or info.subtype != "PCM_16":
            return None
        audio = sf.read(path, dtype="int16")[0]
    except (sf.LibsndfileError, RuntimeError):
        return None
    _check_complete(path, len(audio), info.samplerate)
    if audio.size == 0:
        raise AudioReadError(path, "the file decodes to 0 samples (empty audio)", "empty")
    return audio


def ffmpeg_executable() -> str | None:
    """The ffmpeg binary shipped with imageio-ffmpeg (or ``IMAGEIO_FFMPEG_EXE``), if any."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # noqa: BLE001 - missing package or binary: no ffmpeg fallback
        return None


def _read_ffmpeg(path: str) -> tuple[np.ndarray, int, float | None]:
    """Decode with ffmpeg to a temporary float WAV, keeping the file's channels and rate.

    Channels and rate are kept so that downmixing (plain average) and resampling
    (soxr) are the same as for files libsndfile reads; ffmpeg's own ``-ac 1``
    downmix is not a plain average. Also returns the duration the input's
    container declares (None if it declares none), from ffmpeg's report.
    """
    from panns_core.audio_headers import ffmpeg_declared_seconds

    exe = ffmpeg_executable()
    if exe is None:
        raise RuntimeError("ffmpeg is not available (pip install imageio-ffmpeg)")
    with tempfile.TemporaryDirectory(prefix="panns_decode_") as tmp:
        out = os.path.join(tmp, "decoded.wav")
        # "-v info" for the input's "Duration:" line (what the container declares).
        cmd = [exe, "-nostdin", "-hide_banner", "-nostats", "-v", "info", "-i", path, "-vn", "-map", "0:a:0",
               "-acodec", "pcm_f32le", "-rf64", "auto", "-f", "wav", out]
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              timeout=FFMPEG_TIMEOUT_S, check=False)
        report = proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0:
            lines = report.strip().splitlines()
            raise RuntimeError(f"ffmpeg exit {proc.returncode}: {lines[-1] if lines else 'no message'}")
        audio, sr = _read_soundfile(out)
        return audio, sr, ffmpeg_declared_seconds(report)


def _check_ogg_cut(path: str, undecodable: AudioReadError) -> None:
    """Name a cut Ogg file as truncated rather than as undecodable."""
    from panns_core.audio_headers import ogg_incomplete

    cut = ogg_incomplete(path)
    if cut:
        raise AudioReadError(path, f"truncated: {cut}; the file was cut short (re-download or re-copy it); "
                                   f"{undecodable.reason}", "truncated") from None


def _validate(path: str, audio: np.ndarray) -> np.ndarray:
    if audio.size == 0:
        raise AudioReadError(path, "the file decodes to 0 samples (empty audio)", "empty")
    if not np.all(np.isfinite(audio)):
        raise AudioReadError(path, "the decoded audio contains NaN or infinite samples", "nonfinite")
    return audio


def load_audio(path, sample_rate: int, *, use_ffmpeg: bool = True) -> np.ndarray:
    """Decode ``path`` to a mono float32 array at ``sample_rate``.

    Raises :class:`AudioReadError` (a ``ValueError``) naming the file when it is
    missing (``kind`` ``missing``; a broken symlink too), not a file, 0 bytes
    (``empty``), unreadable by every decoder (``decode``), shorter than its header
    declares or an Ogg stream without its end (``truncated``), or contains
    non-finite samples (``nonfinite``).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        if os.path.islink(path):
            raise AudioReadError(path, f"broken symbolic link (points to {os.readlink(path)!r}, which does not exist)",
                                 "missing")
        raise AudioReadError(path, "file not found", "missing")
    if os.path.isdir(path):
        raise AudioReadError(path, "is a directory, not an audio file", "not_a_file")
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):  # a FIFO or device has size 0 but is not an empty file; reading it may block
        what = "a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise AudioReadError(path, f"is {what}, not a regular audio file", "not_a_file")
    if os.path.getsize(path) == 0:
        raise AudioReadError(path, "file is empty (0 bytes)", "empty")
    ffmpeg_seconds = None
    try:
        audio, sr = _read_soundfile(path)
    except ImportError:  # a broken installation (e.g. soundfile without cffi), not a bad file
        raise
    except Exception as sf_error:  # noqa: BLE001 - any libsndfile failure goes to ffmpeg
        try:
            if not use_ffmpeg:
                raise AudioReadError(path, f"cannot decode ({sf_error})", "decode") from None
            try:
                audio, sr, ffmpeg_seconds = _read_ffmpeg(path)
            except Exception as ff_error:  # noqa: BLE001
                raise AudioReadError(
                    path, f"cannot decode audio: soundfile: {sf_error}; ffmpeg: {ff_error}", "decode"
                ) from None
        except AudioReadError as undecodable:
            _check_ogg_cut(path, undecodable)  # an Ogg file cut inside its headers decodes nowhere
            raise
    _check_complete(path, len(audio), sr, ffmpeg_seconds)
    audio = _validate(path, audio)
    return _validate(path, resample(audio, sr, sample_rate))


AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".aac", ".opus",
                    ".aif", ".aiff", ".webm", ".mp4", ".wma", ".caf")


def expand_inputs(inputs, *, recursive: bool = True) -> list[str]:
    """Files named on a command line: directories expand to the audio files inside them.

    Plain file paths are kept as given (even with an unknown extension, so the
    decoder gets to say what is wrong); directories contribute their files whose
    extension is in :data:`AUDIO_EXTENSIONS`, sorted for reproducible order, and
    their broken symlinks with such an extension (reported later as skipped).
    """
    files: list[str] = []
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            pattern = "**/*" if recursive else "*"
            # A broken symlink is listed too, so the decoder reports it as skipped
            # rather than the folder silently holding one file fewer.
            found = sorted(str(p) for p in Path(item).glob(pattern)
                           if (p.is_file() or (p.is_symlink() and not p.exists()))
                           and p.suffix.lower() in AUDIO_EXTENSIONS)
            files.extend(found)
        else:
            files.append(item)
    return files
