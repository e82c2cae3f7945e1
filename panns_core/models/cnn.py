"""Plain log-mel CNNs: CNN6, CNN10, CNN14 and the CNN14 ablation variants.

One configurable class, :class:`LogmelCnn`, builds them all; each official
class name is a subclass that only sets class attributes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from panns_core.config import AUDIO_8K, AUDIO_16K, AUDIO_32K

from .blocks import ConvBlock, ConvBlock5x5, PannsModel, max_plus_mean_over_time, mean_over_freq
from .frontend import DEFAULT_FREQ_DROP_WIDTH, LogmelFrontEnd

CNN14_CHANNELS = (64, 128, 256, 512, 1024, 2048)
CNN10_CHANNELS = (64, 128, 256, 512)


def conv_stack_pool_sizes(n_blocks: int):
    """Every block halves time and frequency except CNN14's sixth block, which does not pool."""
    return [(2, 2) if i < 5 else (1, 1) for i in range(n_blocks)]


class LogmelCnn(LogmelFrontEnd, PannsModel):
    """Log-mel front end, a stack of conv blocks, mean over frequency, max+mean over time, head.

    Class attributes select the official variant:
    ``block`` (ConvBlock or ConvBlock5x5), ``channels``, ``embedding_size``,
    ``freq_drop_width``, ``spec_augment``, ``block_dropout`` (0.2 after each block),
    ``mixup_domain`` (``"logmel"`` after bn0 + SpecAugment, or ``"waveform"``) and
    ``fixed_config`` (fields the official class asserts, e.g. Cnn14_16k).
    """

    block = ConvBlock
    channels = CNN14_CHANNELS
    embedding_size = 2048
    freq_drop_width = DEFAULT_FREQ_DROP_WIDTH
    spec_augment = True
    block_dropout = 0.2
    mixup_domain = "logmel"
    fixed_config = ()

    def __init__(self, sample_rate=None, window_size=None, hop_size=None, mel_bins=None,
                 fmin=None, fmax=None, classes_num=527):
        super().__init__(sample_rate, window_size, hop_size, mel_bins, fmin, fmax, classes_num)
        self._check_fixed_config()
        self._build_logmel(self.audio_config, self.freq_drop_width, self.spec_augment,
                           freq_halvings=self.time_halvings)
        in_channels = 1
        for i, out_channels in enumerate(self.channels, start=1):
            setattr(self, f"conv_block{i}", self.block(in_channels, out_channels))
            in_channels = out_channels
        self._build_head(in_channels, type(self).embedding_size)

    def _check_fixed_config(self):
        for field in self.fixed_config:
            want, got = getattr(self.default_config, field), getattr(self.audio_config, field)
            if want != got:
                raise ValueError(
                    f"{type(self).__name__} is defined for {field}={want} (got {got}); "
                    f"use Cnn14 with {field}={got} for other front ends"
                )

    @property
    def _pool_sizes(self):
        return conv_stack_pool_sizes(len(self.channels))

    @property
    def time_halvings(self) -> int:
        return sum(1 for p in self._pool_sizes if p[0] == 2)

    @property
    def min_samples(self) -> int:
        return self._min_samples_for_frames(2 ** self.time_halvings, self.audio_config)

    def _conv_features(self, x: torch.Tensor) -> torch.Tensor:
        """Conv stack on ``(B, 1, frames, mels)``, then mean over frequency -> ``(B, C, T)``."""
        for i, pool_size in enumerate(self._pool_sizes, start=1):
            x = getattr(self, f"conv_block{i}")(x, pool_size=pool_size, pool_type="avg")
            if self.block_dropout:
                x = F.dropout(x, p=self.block_dropout, training=self.training)
        return mean_over_freq(x)

    def _features(self, waveform, mixup_lambda):
        if self.mixup_domain == "waveform":
            waveform = self._mix(waveform, mixup_lambda)
        x = self._logmel(waveform)
        if self.mixup_domain == "logmel":
            x = self._mix(x, mixup_lambda)
        return self._conv_features(x)

    def _forward(self, waveform, mixup_lambda):
        return self._clip_head(max_plus_mean_over_time(self._features(waveform, mixup_lambda)))


class Cnn14(LogmelCnn):
    """CNN14 (Table XI): six double-3x3 conv blocks, 2048-d embedding."""


class Cnn14_no_specaug(LogmelCnn):
    """CNN14 trained without SpecAugment (ablation)."""
    spec_augment = False


class Cnn14_no_dropout(LogmelCnn):
    """CNN14 without the 0.2 dropout after the conv blocks (the head keeps its 0.5 dropouts)."""
    block_dropout = 0.0


class Cnn6(LogmelCnn):
    """CNN6: four single 5x5 conv blocks, 512-d embedding."""
    block = ConvBlock5x5
    channels = CNN10_CHANNELS
    embedding_size = 512


class Cnn10(LogmelCnn):
    """CNN10: four double-3x3 conv blocks, 512-d embedding."""
    channels = CNN10_CHANNELS
    embedding_size = 512


class Cnn14_emb512(LogmelCnn):
    """CNN14 with a 512-d embedding (Table VII)."""
    embedding_size = 512


class Cnn14_emb128(LogmelCnn):
    """CNN14 with a 128-d embedding (Table VII)."""
    embedding_size = 128


class Cnn14_emb32(LogmelCnn):
    """CNN14 with a 32-d embedding (Table VII)."""
    embedding_size = 32


class Cnn14_16k(LogmelCnn):
    """CNN14 at 16 kHz (window 512, hop 160, fmax 8000); the official class asserts this front end."""
    default_config = AUDIO_16K
    fixed_config = ("sample_rate", "window_size", "hop_size", "mel_bins", "fmin", "fmax")


class Cnn14_8k(LogmelCnn):
    """CNN14 at 8 kHz (window 256, hop 80, fmax 4000); the official class asserts this front end."""
    default_config = AUDIO_8K
    fixed_config = ("sample_rate", "window_size", "hop_size", "mel_bins", "fmin", "fmax")


class Cnn14_mixup_time_domain(LogmelCnn):
    """CNN14 with mixup on the waveform instead of the log-mel (Table V)."""
    mixup_domain = "waveform"


class Cnn14_mel32(LogmelCnn):
    """CNN14 on 32 mel bins, SpecAugment frequency width 4 (Table X)."""
    default_config = AUDIO_32K.replace(mel_bins=32)
    freq_drop_width = 4


class Cnn14_mel128(LogmelCnn):
    """CNN14 on 128 mel bins, SpecAugment frequency width 16 (Table X)."""
    default_config = AUDIO_32K.replace(mel_bins=128)
    freq_drop_width = 16
