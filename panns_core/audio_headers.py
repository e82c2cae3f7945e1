"""How long an audio file says it is: the length its container header declares.

A download or copy cut short leaves a file whose header still declares the full
length, while the decoders read what is there and stop: libsndfile clamps a WAV's
frame count to the bytes present, and ffmpeg decodes a cut FLAC up to the last
whole frame. Without a check, such a file becomes a shorter, "valid" clip, and
padding (zeros or repeats) turns it into a good-looking one.
:func:`panns_core.audio_io.load_audio` compares the frames decoded with the
frames declared here (:func:`declared_length`), and checks that an Ogg stream ends
with its end-of-stream page (:func:`ogg_incomplete`; Ogg declares no length).

Read here (a few hundred bytes of header, never the audio):

* RIFF/RF64 WAV and Sony Wave64 holding PCM, float, A-law or mu-law: the ``data``
  chunk size;
* AIFF/AIFC (uncompressed, A-law, mu-law): the ``COMM`` chunk's frame count;
  Sun/NeXT AU: the data size;
* CAF: the ``data`` size for constant-size packets (PCM, A-law, mu-law), else the
  ``pakt`` chunk's valid frames;
* FLAC: the STREAMINFO total sample count (0 there means "unknown");
* MP3 with a Xing/Info/VBRI header (what every encoder writes for VBR and LAME
  for CBR): its frame count, as libsndfile's decoder (mpg123) computes it;
* anything ffmpeg decodes (M4A/MP4, WebM/Matroska, WMA ...): the duration the
  container declares, from ffmpeg's own report (:func:`ffmpeg_declared_seconds`),
  unless ffmpeg says it estimated it from the bitrate.

Lossless counts (PCM containers, FLAC) are exact: one missing frame is a cut.
The others (MP3, CAF packet tables, ffmpeg's durations) allow
:data:`LOSSY_TOLERANCE` for encoder delay and padding. Not checked: files that
declare no length (MP3 without a Xing header, raw ADTS AAC, streams written with an
unknown size), ADPCM and other compressed codecs inside WAV/AIFF, WMA (ffmpeg
estimates its duration once the file is cut), and libsndfile's rarer containers
(NIST, IRCAM, VOC, MAT, PAF ...).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

LOSSY_TOLERANCE = (0.02, 0.1)
"""``(fraction, seconds)``: a lossy declaration is missed by more than both before a file is called cut."""


@dataclass(frozen=True)
class DeclaredLength:
    """Frames a file's header declares, at the file's own sample rate."""

    frames: int
    header: str  # what declares it, for messages: "the WAV header", "the FLAC STREAMINFO block"
    exact: bool = True  # a lossless count; False allows LOSSY_TOLERANCE

    def missing(self, decoded_frames: int, sample_rate: int) -> bool:
        """True when ``decoded_frames`` falls short of the declaration (beyond the tolerance if not exact)."""
        short = self.frames - decoded_frames
        if self.exact:
            return short > 0
        fraction, seconds = LOSSY_TOLERANCE
        return short > max(fraction * self.frames, seconds * sample_rate)


def declared_length(path) -> DeclaredLength | None:
    """The length ``path``'s header declares, or None (unknown container, or no length declared)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            f.seek(0)
            for magic, reader in _READERS:
                if head.startswith(magic):
                    return reader(f)
            if head[:3] == b"ID3":  # a tag before FLAC or MP3 audio
                _skip_id3(f)
                start = f.tell()
                is_flac = f.read(4) == b"fLaC"
                f.seek(start)
                return _flac(f) if is_flac else _mp3(f, path)
            if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
                return _mp3(f, path)
    except (OSError, ValueError, IndexError):
        return None
    return None


# --------------------------------------------------------------------------- RIFF family

_W64_RIFF = b"riff\x2e\x91\xcf\x11\xa5\xd6\x28\xdb\x04\xc1\x00\x00"
_PCM_TAGS = (1, 3, 6, 7, 0xFFFE)  # PCM, IEEE float, A-law, mu-law, extensible: one frame per block_align bytes


def _riff(f) -> DeclaredLength | None:
    """RIFF/RF64 WAVE: chunks of ``id (4) + size (4, LE)``, padded to even sizes."""
    head = f.read(12)
    if head[8:12] != b"WAVE":
        return None
    return _wave_chunks(f, header="the WAV header", id_size=4, size_bytes=4, align=2, size_includes_header=False)


def _w64(f) -> DeclaredLength | None:
    """Sony Wave64: chunks of ``GUID (16) + size (8, LE, header included)``, aligned to 8 bytes."""
    f.seek(40)
    return _wave_chunks(f, header="the Wave64 header", id_size=16, size_bytes=8, align=8, size_includes_header=True)


def _wave_chunks(f, *, header, id_size, size_bytes, align, size_includes_header) -> DeclaredLength | None:
    block_align = format_tag = ds64_data = None
    while True:
        chunk = f.read(id_size + size_bytes)
        if len(chunk) < id_size + size_bytes:
            return None
        cid, size = chunk[:4], int.from_bytes(chunk[id_size:], "little")
        body = size - (id_size + size_bytes) if size_includes_header else size
        if body < 0:
            return None
        if cid == b"data":
            if ds64_data is not None and size == 0xFFFFFFFF:
                body = ds64_data
            elif not size_includes_header and size in (0, 0xFFFFFFFF):
                return None  # a streaming writer did not know the size
            if format_tag in _PCM_TAGS and block_align:
                return DeclaredLength(body // block_align, header)
            return None  # ADPCM, GSM ...: frames are not a fixed number of bytes
        data = f.read(min(body, 64)) if cid in (b"fmt ", b"ds64") else b""
        if cid == b"fmt " and len(data) >= 14:
            format_tag = int.from_bytes(data[0:2], "little")
            block_align = int.from_bytes(data[12:14], "little")
        elif cid == b"ds64" and len(data) >= 16:
            ds64_data = int.from_bytes(data[8:16], "little")
        f.seek(f.tell() - len(data) + body + (-body % align))


# --------------------------------------------------------------------------- AIFF, AU, CAF

_AIFC_FRAMED = (b"NONE", b"sowt", b"twos", b"raw ", b"in24", b"in32", b"fl32", b"FL32", b"fl64", b"FL64",
                b"ulaw", b"ULAW", b"alaw", b"ALAW")
"""AIFC compression types whose ``numSampleFrames`` counts sample frames (for ADPCM ones it counts packets)."""


def _aiff(f) -> DeclaredLength | None:
    """AIFF/AIFC: the ``COMM`` chunk's ``numSampleFrames`` (chunks: id + size, big-endian, even-padded)."""
    head = f.read(12)
    if head[8:12] not in (b"AIFF", b"AIFC"):
        return None
    aifc = head[8:12] == b"AIFC"
    while True:
        chunk = f.read(8)
        if len(chunk) < 8:
            return None
        cid, size = chunk[:4], int.from_bytes(chunk[4:], "big")
        if cid == b"COMM":
            comm = f.read(22)
            if len(comm) < 6 or (aifc and comm[18:22] not in _AIFC_FRAMED):
                return None
            return DeclaredLength(int.from_bytes(comm[2:6], "big"), "the AIFF header")
        f.seek(size + size % 2, os.SEEK_CUR)


_AU_BYTES = {1: 1, 2: 1, 3: 2, 4: 3, 5: 4, 6: 4, 7: 8, 27: 1}  # encoding -> bytes per sample


def _au(f) -> DeclaredLength | None:
    """Sun/NeXT AU: ``data size`` / (bytes per sample x channels); 0xFFFFFFFF means unknown."""
    head = f.read(24)
    size, encoding, channels = (int.from_bytes(head[i:i + 4], "big") for i in (8, 12, 20))
    if size == 0xFFFFFFFF or encoding not in _AU_BYTES or not channels:
        return None
    return DeclaredLength(size // (_AU_BYTES[encoding] * channels), "the AU header")


def _caf(f) -> DeclaredLength | None:
    """Core Audio Format: ``data`` bytes / bytes per packet (constant-size packets), else the ``pakt`` chunk."""
    f.seek(8)
    bytes_per_packet = frames_per_packet = None
    while True:
        chunk = f.read(12)
        if len(chunk) < 12:
            return None
        ctype, size = chunk[:4], int.from_bytes(chunk[4:], "big", signed=True)
        if ctype == b"desc":
            desc = f.read(32)
            bytes_per_packet = int.from_bytes(desc[16:20], "big")
            frames_per_packet = int.from_bytes(desc[20:24], "big")
            f.seek(size - len(desc), os.SEEK_CUR)
        elif ctype == b"pakt" and not bytes_per_packet:
            pakt = f.read(16)
            return DeclaredLength(int.from_bytes(pakt[8:16], "big"), "the CAF packet table", exact=False)
        elif ctype == b"data" and bytes_per_packet:
            if size < 4:
                return None  # -1: written without knowing the size
            return DeclaredLength((size - 4) // bytes_per_packet * (frames_per_packet or 1), "the CAF header")
        else:
            if size < 0:
                return None
            f.seek(size, os.SEEK_CUR)


# --------------------------------------------------------------------------- FLAC, MP3

def _skip_id3(f) -> None:
    """Move past an ID3v2 tag at the current position (if any)."""
    start = f.tell()
    head = f.read(10)
    if head[:3] != b"ID3" or len(head) < 10:
        f.seek(start)
        return
    size = 0
    for b in head[6:10]:  # syncsafe integer
        size = (size << 7) | (b & 0x7F)
    f.seek(start + 10 + size + (10 if head[5] & 0x10 else 0))


def _flac(f) -> DeclaredLength | None:
    """FLAC: STREAMINFO (always the first metadata block) holds the total sample count (36 bits)."""
    head = f.read(8)
    if head[:4] != b"fLaC" or head[4] & 0x7F != 0:
        return None
    info = f.read(34)
    if len(info) < 34:
        return None
    total = int.from_bytes(info[10:18], "big") & ((1 << 36) - 1)
    return DeclaredLength(total, "the FLAC STREAMINFO block") if total else None


def _mp3(f, path) -> DeclaredLength | None:
    """MP3: only with a Xing/Info/VBRI header in its first frame; the count is libsndfile's (mpg123's)."""
    data = f.read(4096)
    sync = next((i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] & 0xE0 == 0xE0), None)
    if sync is None or not any(tag in data[sync + 4:sync + 200] for tag in (b"Xing", b"Info", b"VBRI")):
        return None
    import soundfile as sf

    try:
        info = sf.info(os.fspath(path))
    except (RuntimeError, TypeError):  # a libsndfile without MP3 support
        return None
    return DeclaredLength(int(info.frames), "the MP3 Xing/Info header", exact=False) if info.frames > 0 else None


_READERS = ((b"RIFF", _riff), (b"RF64", _riff), (_W64_RIFF, _w64), (b"FORM", _aiff), (b".snd", _au),
            (b"caff", _caf), (b"fLaC", _flac))
"""Magic bytes -> header reader (MP3, with or without an ID3 tag, and ID3-tagged FLAC are told apart after)."""


# --------------------------------------------------------------------------- Ogg

def ogg_incomplete(path) -> str | None:
    """Why an Ogg file (Vorbis, Opus, FLAC-in-Ogg) is cut short, or None when it is whole or not Ogg.

    Ogg declares no length, but every logical stream ends with a page flagged
    end-of-stream. Pages are walked from the start (headers only): a page running
    past the end of the file, or a stream without its last page, means a cut. A
    file that stops following the page structure (trailing junk) is not judged.
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            pos, begun, ended = 0, set(), set()
            while pos < size:
                f.seek(pos)
                head = f.read(27)
                if len(head) < 27 and b"OggS".startswith(head[:4]):
                    return f"the file ends inside an Ogg page header at byte {pos}"
                if head[:4] != b"OggS":
                    return None
                table = f.read(head[26])
                end = pos + 27 + head[26] + sum(table)
                if len(table) < head[26] or end > size:
                    return f"the file ends inside an Ogg page ({size - pos} of its {end - pos} bytes present)"
                serial = int.from_bytes(head[14:18], "little")
                if head[5] & 0x02:
                    begun.add(serial)
                if head[5] & 0x04:
                    ended.add(serial)
                pos = end
    except OSError:
        return None
    if pos and begun - ended:
        return "the Ogg stream has no end-of-stream page"
    return None


# --------------------------------------------------------------------------- ffmpeg's report

_DURATION = re.compile(r"^\s*Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", re.MULTILINE)
_VIDEO_STREAM = re.compile(r"^\s*Stream #0:\d+.*: Video: (?!.*attached pic)", re.MULTILINE)


def ffmpeg_declared_seconds(stderr: str) -> float | None:
    """The duration ffmpeg read from the input's container (its ``-v info`` report), or None.

    None when the container declares none (``N/A``), when ffmpeg estimated it from
    the bitrate (raw MP3/AAC streams: nothing is declared), or when the input holds
    a video stream (the container's duration is then the longest stream's, which
    need not be the audio's). Cover art (an ``attached pic``) is not video.
    """
    if "Estimating duration from bitrate" in stderr or _VIDEO_STREAM.search(stderr):
        return None
    m = _DURATION.search(stderr)
    if not m:
        return None
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
