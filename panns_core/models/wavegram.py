"""Wavegram-CNN and Wavegram-Logmel-CNN (the paper's best system).

The Wavegram is a learned time-frequency map computed from the waveform by 1-D
convolutions: after three conv blocks (length / 5 / 4 / 4 / 4, i.e. one step per
320 samples, the log-mel hop) the channels are split into 4 groups of
``mel_bins / 2`` "frequency bins" and treated as a 4-channel image, which a 2-D
conv block maps to the same shape as the log-mel after its first conv block.

Deviation, documented: where the two branches differ by one time step (clips
whose length is not a multiple of 640 samples; the official code crashes in
``torch.cat`` there) both are cropped to the shorter one.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchlibrosa.augmentation import SpecAugmentation

from .blocks import (ConvBlock, PannsModel, conv_bn_pairs_init, init_bn, init_layer,
                     max_plus_mean_over_time, mean_over_freq)
from .cnn import CNN14_CHANNELS
from .frontend import (DEFAULT_FREQ_DROP_WIDTH, SPEC_AUG_STRIPES, SPEC_AUG_TIME_DROP_WIDTH,
                       LogmelFrontEnd)

WAVEGRAM_GROUPS = 4
"""The Wavegram's channels are split into this many image channels."""
WAVEGRAM_HOP = 5 * 4 * 4 * 4
"""Samples per Wavegram time step before pre_block4 (= the official 320-sample hop)."""


class ConvPreWavBlock(nn.Module):
    """Conv1d(3) -> BN -> ReLU -> dilated Conv1d(3, dilation 2) -> BN -> ReLU -> max-pool."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv1d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.conv2 = nn.Conv1d(out_channels, out_channels, kernel_size=3, stride=1, dilation=2,
                               padding=2, bias=False)
        self.bn1 = nn.BatchNorm1d(out_channels)
        self.bn2 = nn.BatchNorm1d(out_channels)
        conv_bn_pairs_init((self.conv1, self.bn1), (self.conv2, self.bn2))

    def forward(self, x, pool_size: int):
        x = F.relu_(self.bn1(self.conv1(x)))
        x = F.relu_(self.bn2(self.conv2(x)))
        return F.max_pool1d(x, kernel_size=pool_size)


class _WavegramModel(PannsModel):
    """Shared Wavegram branch (``pre_*`` modules) and CNN14 trunk (``conv_block2..6``)."""

    embedding_size = 2048

    def _build_wavegram(self, freq_bins: int) -> None:
        self.wavegram_freq_bins = freq_bins
        self.pre_conv0 = nn.Conv1d(1, 64, kernel_size=11, stride=5, padding=5, bias=False)
        self.pre_bn0 = nn.BatchNorm1d(64)
        init_layer(self.pre_conv0)
        init_bn(self.pre_bn0)
        channels = WAVEGRAM_GROUPS * freq_bins
        self.pre_block1 = ConvPreWavBlock(64, 64)
        self.pre_block2 = ConvPreWavBlock(64, 128)
        self.pre_block3 = ConvPreWavBlock(128, channels)
        self.pre_block4 = ConvBlock(WAVEGRAM_GROUPS, 64)

    def _build_trunk(self, conv_block2_in: int) -> None:
        self.conv_block1 = ConvBlock(1, 64)
        in_channels = conv_block2_in
        for i, out_channels in enumerate(CNN14_CHANNELS[1:], start=2):
            setattr(self, f"conv_block{i}", ConvBlock(in_channels, out_channels))
            in_channels = out_channels
        self._build_head(in_channels, type(self).embedding_size)

    def _wavegram(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, samples) -> (B, 64, samples // 640, freq_bins), like the log-mel after conv_block1."""
        a = F.relu_(self.pre_bn0(self.pre_conv0(waveform[:, None, :])))
        for block in (self.pre_block1, self.pre_block2, self.pre_block3):
            a = block(a, pool_size=4)
        a = a.reshape(a.shape[0], -1, self.wavegram_freq_bins, a.shape[-1]).transpose(2, 3)
        return self.pre_block4(a, pool_size=(2, 1))

    def _trunk(self, x: torch.Tensor) -> dict:
        """conv_block2..6 with 0.2 dropout before each and after the last, then the clip head."""
        x = F.dropout(x, p=0.2, training=self.training)
        for i in range(2, 7):
            pool = (2, 2) if i < 6 else (1, 1)
            x = getattr(self, f"conv_block{i}")(x, pool_size=pool, pool_type="avg")
            x = F.dropout(x, p=0.2, training=self.training)
        return self._clip_head(max_plus_mean_over_time(mean_over_freq(x)))

    @property
    def min_samples(self) -> int:
        # pre_conv0 gives ceil(samples / 5) steps; pre_blocks 1-3 divide by 64, pre_block4 by 2,
        # and conv_blocks 2-5 by 16 more: at least 64 * 2 * 16 = 2048 steps are needed.
        return 5 * (64 * 2 * 16 - 1) + 1


class Wavegram_Cnn14(_WavegramModel):
    """Wavegram-CNN: CNN14's blocks 2-6 on the Wavegram alone.

    Like the official class it also builds ``bn0``, a SpecAugment module and
    ``conv_block1``, which its forward never uses; they are kept so that the
    released checkpoint loads unchanged.
    """

    def __init__(self, sample_rate=None, window_size=None, hop_size=None, mel_bins=None,
                 fmin=None, fmax=None, classes_num=527):
        super().__init__(sample_rate, window_size, hop_size, mel_bins, fmin, fmax, classes_num)
        self._build_wavegram(freq_bins=32)
        self.spec_augmenter = SpecAugmentation(
            time_drop_width=SPEC_AUG_TIME_DROP_WIDTH, time_stripes_num=SPEC_AUG_STRIPES,
            freq_drop_width=DEFAULT_FREQ_DROP_WIDTH, freq_stripes_num=SPEC_AUG_STRIPES)
        self.bn0 = nn.BatchNorm2d(64)
        init_bn(self.bn0)
        self._build_trunk(conv_block2_in=64)

    def _forward(self, waveform, mixup_lambda):
        return self._trunk(self._mix(self._wavegram(waveform), mixup_lambda))


class Wavegram_Logmel_Cnn14(LogmelFrontEnd, _WavegramModel):
    """Wavegram-Logmel-CNN: Wavegram and log-mel (after conv_block1) concatenated on channels.

    The Wavegram's frequency axis has ``mel_bins / 2`` bins to match the log-mel branch.
    """

    freq_drop_width = DEFAULT_FREQ_DROP_WIDTH

    def __init__(self, sample_rate=None, window_size=None, hop_size=None, mel_bins=None,
                 fmin=None, fmax=None, classes_num=527):
        super().__init__(sample_rate, window_size, hop_size, mel_bins, fmin, fmax, classes_num)
        cfg = self.audio_config
        if cfg.hop_size != WAVEGRAM_HOP:
            raise ValueError(
                f"{type(self).__name__}: the Wavegram advances {WAVEGRAM_HOP} samples per step, so the "
                f"log-mel hop_size must be {WAVEGRAM_HOP} (got {cfg.hop_size}); resample the audio to "
                "32 kHz instead of changing the hop"
            )
        if cfg.mel_bins % 2:
            raise ValueError(f"{type(self).__name__}: mel_bins must be even, got {cfg.mel_bins}")
        self._build_wavegram(freq_bins=cfg.mel_bins // 2)
        self._build_logmel(cfg, self.freq_drop_width, freq_halvings=5)
        init_bn(self.bn0)
        self._build_trunk(conv_block2_in=128)

    @property
    def min_samples(self) -> int:
        return max(_WavegramModel.min_samples.fget(self),
                   self._min_samples_for_frames(32, self.audio_config))

    def _forward(self, waveform, mixup_lambda):
        wavegram = self._wavegram(waveform)
        x = self._logmel(waveform)
        x, wavegram = self._mix(x, mixup_lambda), self._mix(wavegram, mixup_lambda)
        x = self.conv_block1(x, pool_size=(2, 2), pool_type="avg")
        steps = min(x.shape[2], wavegram.shape[2])
        x = torch.cat((x[:, :, :steps], wavegram[:, :, :steps]), dim=1)
        return self._trunk(x)


class Wavegram_Logmel128_Cnn14(Wavegram_Logmel_Cnn14):
    """Wavegram-Logmel-CNN on 128 mel bins (SpecAugment frequency width 16)."""

    default_config = Wavegram_Logmel_Cnn14.default_config.replace(mel_bins=128)
    freq_drop_width = 16
