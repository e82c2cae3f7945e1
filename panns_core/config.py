"""The single home of the audio front-end defaults.

Every model, dataset and script takes its sample rate, STFT window, hop, mel
bins and band edges from an :class:`AudioConfig`, so that a 16 kHz or 8 kHz
checkpoint is described in one place instead of being repeated per class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

CLASSES_NUM = 527
"""Number of AudioSet classes (ontology release used by the paper)."""

CLIP_SECONDS = 10.0
"""AudioSet clips are 10 s; shorter ones are zero-padded to this length."""


@dataclass(frozen=True)
class AudioConfig:
    """Log-mel front-end parameters, named as the official constructors name them."""

    sample_rate: int = 32000
    window_size: int = 1024
    hop_size: int = 320
    mel_bins: int = 64
    fmin: int = 50
    fmax: int = 14000

    def model_kwargs(self) -> dict:
        """Keyword arguments accepted by every model constructor."""
        return asdict(self)

    def clip_samples(self, seconds: float = CLIP_SECONDS) -> int:
        return int(round(self.sample_rate * seconds))

    def frames(self, num_samples: int) -> int:
        """STFT frames of a centred STFT (the +1 frame of ``center=True``)."""
        return num_samples // self.hop_size + 1

    def replace(self, **changes) -> "AudioConfig":
        return replace(self, **changes)


AUDIO_32K = AudioConfig()
AUDIO_16K = AudioConfig(sample_rate=16000, window_size=512, hop_size=160, fmax=8000)
AUDIO_8K = AudioConfig(sample_rate=8000, window_size=256, hop_size=80, fmax=4000)

PRESETS = {32000: AUDIO_32K, 16000: AUDIO_16K, 8000: AUDIO_8K}


def config_for_sample_rate(sample_rate: int) -> AudioConfig:
    """The paper's front end for a sample rate (Table IX): window and hop scale with it."""
    try:
        return PRESETS[int(sample_rate)]
    except KeyError:
        raise ValueError(
            f"no front-end preset for sample_rate={sample_rate}; known: {sorted(PRESETS)}. "
            "Build an AudioConfig(...) explicitly for other rates."
        ) from None
