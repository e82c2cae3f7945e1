"""MobileNetV1 and MobileNetV2 on log-mel spectrograms.

As in the official code, striding is done by an ``AvgPool2d(stride)`` placed
right after the (depthwise) 3x3 convolution, which itself has stride 1; the
pooling module sits at index 1 of each ``nn.Sequential`` and so shifts the
checkpoint keys (``features.N.0`` conv, ``features.N.2`` BN, ...).
"""

from __future__ import annotations

import torch.nn as nn

from .blocks import PannsModel, init_bn, init_layer, max_plus_mean_over_time, mean_over_freq
from .frontend import DEFAULT_FREQ_DROP_WIDTH, LogmelFrontEnd


def _sequential(*layers) -> nn.Sequential:
    """``nn.Sequential`` with official init: xavier for convs, (1, 0) for BatchNorms."""
    seq = nn.Sequential(*layers)
    for layer in seq:
        if isinstance(layer, nn.Conv2d):
            init_layer(layer)
        elif isinstance(layer, nn.BatchNorm2d):
            init_bn(layer)
    return seq


def conv3x3_pool_bn(inp: int, oup: int, stride: int, groups: int = 1, act=nn.ReLU) -> list:
    """3x3 conv (stride 1) -> AvgPool2d(stride) -> BN -> activation."""
    return [nn.Conv2d(inp, oup, 3, 1, 1, groups=groups, bias=False), nn.AvgPool2d(stride),
            nn.BatchNorm2d(oup), act(inplace=True)]


def conv1x1_bn(inp: int, oup: int, act=None) -> list:
    """Pointwise conv -> BN [-> activation]."""
    layers = [nn.Conv2d(inp, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
    return layers + ([act(inplace=True)] if act is not None else [])


class LogmelMobileNet(LogmelFrontEnd, PannsModel):
    """Log-mel front end -> ``features`` -> mean over frequency -> max+mean over time -> head."""

    time_halvings = 5
    embedding_size = 1024
    head_in_features = 1024
    head_pre_dropout = True

    def __init__(self, sample_rate=None, window_size=None, hop_size=None, mel_bins=None,
                 fmin=None, fmax=None, classes_num=527):
        super().__init__(sample_rate, window_size, hop_size, mel_bins, fmin, fmax, classes_num)
        self._build_logmel(self.audio_config, DEFAULT_FREQ_DROP_WIDTH, freq_halvings=self.time_halvings)
        self.features = self._build_features()
        self._build_head(self.head_in_features, type(self).embedding_size)

    def _build_features(self) -> nn.Sequential:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def min_samples(self) -> int:
        return self._min_samples_for_frames(2 ** self.time_halvings, self.audio_config)

    def _forward(self, waveform, mixup_lambda):
        x = self._mix(self._logmel(waveform), mixup_lambda)
        x = mean_over_freq(self.features(x))
        return self._clip_head(max_plus_mean_over_time(x), pre_dropout=self.head_pre_dropout)


# (in, out, stride) of the 13 depthwise-separable layers after the stem.
MOBILENET_V1_LAYERS = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1),
                       (256, 512, 2)] + [(512, 512, 1)] * 5 + [(512, 1024, 2), (1024, 1024, 1)]


class MobileNetV1(LogmelMobileNet):
    """MobileNetV1: a 3x3 stem and 13 depthwise-separable layers, 1024-d embedding."""

    def _build_features(self):
        layers = [_sequential(*conv3x3_pool_bn(1, 32, 2))]
        for inp, oup, stride in MOBILENET_V1_LAYERS:
            layers.append(_sequential(*conv3x3_pool_bn(inp, inp, stride, groups=inp),
                                      *conv1x1_bn(inp, oup, act=nn.ReLU)))
        return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [1x1 expand] -> depthwise 3x3 + AvgPool(stride) -> 1x1 project (+ skip)."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual stride must be 1 or 2, got {stride}")
        hidden = round(inp * expand_ratio)
        self.use_res_connect = stride == 1 and inp == oup
        expand = conv1x1_bn(inp, hidden, act=nn.ReLU6) if expand_ratio != 1 else []
        self.conv = _sequential(*expand, *conv3x3_pool_bn(hidden, hidden, stride, groups=hidden, act=nn.ReLU6),
                                *conv1x1_bn(hidden, oup))

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


# (expansion t, channels c, repeats n, first stride s), as in the MobileNetV2 paper.
MOBILENET_V2_SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                        (6, 96, 3, 2), (6, 160, 3, 1), (6, 320, 1, 1)]


class MobileNetV2(LogmelMobileNet):
    """MobileNetV2: stem, 17 inverted residual blocks, 1x1 conv to 1280, 1024-d embedding.

    The official head has no dropout before ``fc1`` (it is commented out).
    """

    head_in_features = 1280
    head_pre_dropout = False

    def _build_features(self):
        layers = [_sequential(*conv3x3_pool_bn(1, 32, 2, act=nn.ReLU6))]
        channels = 32
        for t, c, n, s in MOBILENET_V2_SETTING:
            for i in range(n):
                layers.append(InvertedResidual(channels, c, s if i == 0 else 1, expand_ratio=t))
                channels = c
        layers.append(_sequential(*conv1x1_bn(channels, 1280, act=nn.ReLU6)))
        return nn.Sequential(*layers)
