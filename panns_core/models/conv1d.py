"""Time-domain (1-D) CNNs: LeeNet11, LeeNet24, DaiNet19, Res1dNet31, Res1dNet51.

They read the raw waveform, so mixup (in training) is applied to the waveform.
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from .blocks import PannsModel, conv_bn_pairs_init, init_bn, init_layer, max_plus_mean_over_time
from .resnet import conv3x3, make_stage


class WaveformModel(PannsModel):
    """Base for models on ``(B, 1, samples)``; the audio config is kept for the registry only."""

    def _forward(self, waveform, mixup_lambda):
        x = self._mix(waveform[:, None, :], mixup_lambda)
        return self._clip_head(max_plus_mean_over_time(self._features(x)), pre_dropout=True)


def _max_pool(x, pool_size: int):
    """LeeNet pooling: max-pool with ``pool_size // 2`` padding (no pooling for size 1)."""
    return F.max_pool1d(x, kernel_size=pool_size, padding=pool_size // 2) if pool_size != 1 else x


class LeeNetConvBlock(nn.Module):
    """Conv1d (kernel k, given stride, padding k//2) -> BN -> ReLU [-> max-pool]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride,
                               padding=kernel_size // 2, bias=False)
        self.bn1 = nn.BatchNorm1d(out_channels)
        conv_bn_pairs_init((self.conv1, self.bn1))

    def forward(self, x, pool_size: int = 1):
        return _max_pool(F.relu_(self.bn1(self.conv1(x))), pool_size)


class LeeNetConvBlock2(nn.Module):
    """Two conv-BN-ReLU layers (the first strided) [-> max-pool]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride,
                               padding=kernel_size // 2, bias=False)
        self.conv2 = nn.Conv1d(out_channels, out_channels, kernel_size, stride=1,
                               padding=kernel_size // 2, bias=False)
        self.bn1 = nn.BatchNorm1d(out_channels)
        self.bn2 = nn.BatchNorm1d(out_channels)
        conv_bn_pairs_init((self.conv1, self.bn1), (self.conv2, self.bn2))

    def forward(self, x, pool_size: int = 1):
        x = F.relu_(self.bn1(self.conv1(x)))
        return _max_pool(F.relu_(self.bn2(self.conv2(x))), pool_size)


class _LeeNet(WaveformModel):
    """Sample-level CNN (Lee et al.): a stride-3 first block, then blocks with max-pool 3."""

    block = LeeNetConvBlock
    channels = ()
    dropout = 0.0
    last_pool = 3

    def __init__(self, sample_rate=None, window_size=None, hop_size=None, mel_bins=None,
                 fmin=None, fmax=None, classes_num=527):
        super().__init__(sample_rate, window_size, hop_size, mel_bins, fmin, fmax, classes_num)
        in_channels = 1
        for i, out_channels in enumerate(self.channels, start=1):
            setattr(self, f"conv_block{i}", self.block(in_channels, out_channels, 3, 3 if i == 1 else 1))
            in_channels = out_channels
        self._build_head(in_channels, type(self).embedding_size)

    @property
    def min_samples(self) -> int:
        # Padded pooling never shrinks a length below 1: any non-empty clip works.
        return 1

    def _features(self, x):
        n = len(self.channels)
        for i in range(1, n + 1):
            pool = 1 if i == 1 else (self.last_pool if i == n else 3)
            x = getattr(self, f"conv_block{i}")(x, pool_size=pool)
            if self.dropout and i < n:
                x = F.dropout(x, p=self.dropout, training=self.training)
        return x


class LeeNet11(_LeeNet):
    """LeeNet11: nine single-conv blocks, no dropout in the stack, 512-d embedding."""
    channels = (64, 64, 64, 128, 128, 128, 128, 128, 256)
    embedding_size = 512


class LeeNet24(_LeeNet):
    """LeeNet24: nine double-conv blocks, dropout 0.1 between blocks, 1024-d embedding."""
    block = LeeNetConvBlock2
    channels = (64, 96, 128, 128, 256, 256, 512, 512, 1024)
    embedding_size = 1024
    dropout = 0.1
    last_pool = 1


class DaiNetResBlock(nn.Module):
    """Four conv-BN layers with a residual connection (projected when the channels change).

    ``downsample``/``bn_downsample`` exist in every block, as in the official class,
    even where the shapes match and they are never used (conv_block1).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(in_channels, out_channels, kernel_size, padding=pad, bias=False)
        self.conv2 = nn.Conv1d(out_channels, out_channels, kernel_size, padding=pad, bias=False)
        self.conv3 = nn.Conv1d(out_channels, out_channels, kernel_size, padding=pad, bias=False)
        self.conv4 = nn.Conv1d(out_channels, out_channels, kernel_size, padding=pad, bias=False)
        self.downsample = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm1d(out_channels)
        self.bn2 = nn.BatchNorm1d(out_channels)
        self.bn3 = nn.BatchNorm1d(out_channels)
        self.bn4 = nn.BatchNorm1d(out_channels)
        self.bn_downsample = nn.BatchNorm1d(out_channels)
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4, self.downsample):
            init_layer(conv)
        for bn in (self.bn1, self.bn2, self.bn3, self.bn_downsample):
            init_bn(bn)
        init_bn(self.bn4, weight=0.0)

    def forward(self, x):
        out = F.relu_(self.bn1(self.conv1(x)))
        out = F.relu_(self.bn2(self.conv2(out)))
        out = F.relu_(self.bn3(self.conv3(out)))
        out = self.bn4(self.conv4(out))
        identity = x if x.shape == out.shape else self.bn_downsample(self.downsample(x))
        return F.relu(out + identity)


class DaiNet19(WaveformModel):
    """DaiNet (Dai et al.): an 80-tap stride-4 conv, then four residual blocks with max-pool 4."""

    embedding_size = 512
    conv0_kernel, conv0_stride, pool = 80, 4, 4

    def __init__(self, sample_rate=None, window_size=None, hop_size=None, mel_bins=None,
                 fmin=None, fmax=None, classes_num=527):
        super().__init__(sample_rate, window_size, hop_size, mel_bins, fmin, fmax, classes_num)
        self.conv0 = nn.Conv1d(1, 64, kernel_size=self.conv0_kernel, stride=self.conv0_stride,
                               padding=0, bias=False)
        self.bn0 = nn.BatchNorm1d(64)
        conv_bn_pairs_init((self.conv0, self.bn0))
        for i, (cin, cout) in enumerate(((64, 64), (64, 128), (128, 256), (256, 512)), start=1):
            setattr(self, f"conv_block{i}", DaiNetResBlock(cin, cout, 3))
        self._build_head(512, type(self).embedding_size)

    @property
    def min_samples(self) -> int:
        # conv0 output must survive three max-pools of 4.
        return self.conv0_kernel + (self.pool ** 3 - 1) * self.conv0_stride

    def _features(self, x):
        x = self.bn0(self.conv0(x))
        for i in (1, 2, 3):
            x = F.max_pool1d(getattr(self, f"conv_block{i}")(x), kernel_size=self.pool)
        return self.conv_block4(x)


class BasicBlock1d(nn.Module):
    """1-D residual block: [max-pool(stride)] -> 3-tap conv -> 3-tap conv with dilation 2."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        self.stride = stride
        self.conv1 = conv3x3(inplanes, planes, dim=1, dilation=1)
        self.bn1 = nn.BatchNorm1d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, dim=1, dilation=2)
        self.bn2 = nn.BatchNorm1d(planes)
        self.downsample = downsample
        init_layer(self.conv1)
        init_bn(self.bn1)
        init_layer(self.conv2)
        init_bn(self.bn2, weight=0.0)

    def forward(self, x):
        out = F.max_pool1d(x, kernel_size=self.stride) if self.stride != 1 else x
        out = F.dropout(self.relu(self.bn1(self.conv1(out))), p=0.1, training=self.training)
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNetStages1d(nn.Module):
    """Seven stages (64 ... 2048 planes); stages 2-7 divide the length by 4."""

    planes = (64, 128, 256, 512, 1024, 1024, 2048)
    strides = (1, 4, 4, 4, 4, 4, 4)

    def __init__(self, layers):
        super().__init__()
        inplanes = 64
        for i, (planes, blocks, stride) in enumerate(zip(self.planes, layers, self.strides), start=1):
            stage, inplanes = make_stage(BasicBlock1d, inplanes, planes, blocks, stride, dim=1)
            setattr(self, f"layer{i}", stage)

    def forward(self, x):
        for i in range(1, len(self.planes) + 1):
            x = getattr(self, f"layer{i}")(x)
        return x


class _Res1dNet(WaveformModel):
    """conv0 (11 taps, stride 5) -> BN -> seven residual stages -> head."""

    layers = ()
    embedding_size = 2048

    def __init__(self, sample_rate=None, window_size=None, hop_size=None, mel_bins=None,
                 fmin=None, fmax=None, classes_num=527):
        super().__init__(sample_rate, window_size, hop_size, mel_bins, fmin, fmax, classes_num)
        self.conv0 = nn.Conv1d(1, 64, kernel_size=11, stride=5, padding=5, bias=False)
        self.bn0 = nn.BatchNorm1d(64)
        conv_bn_pairs_init((self.conv0, self.bn0))
        self.resnet = ResNetStages1d(self.layers)
        self._build_head(2048, type(self).embedding_size)

    @property
    def min_samples(self) -> int:
        # conv0 gives ceil(samples / 5) steps; six stride-4 stages need 4**6 of them.
        return 5 * (4 ** 6 - 1) + 1

    def _features(self, x):
        return self.resnet(self.bn0(self.conv0(x)))


class Res1dNet31(_Res1dNet):
    """Res1dNet31: [2, 2, 2, 2, 2, 2, 2] blocks."""
    layers = (2, 2, 2, 2, 2, 2, 2)


class Res1dNet51(_Res1dNet):
    """Res1dNet51: [2, 3, 4, 6, 4, 3, 2] blocks."""
    layers = (2, 3, 4, 6, 4, 3, 2)

