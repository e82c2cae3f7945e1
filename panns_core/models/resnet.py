"""ResNet22, ResNet38 and ResNet54 on log-mel spectrograms.

The official ResNets differ from torchvision's in three ways that matter for
equivalence: a strided block first average-pools its input (2x2) and then
convolves with stride 1; the shortcut of a strided block is AvgPool2d + 1x1 conv
+ BN; and a 0.1 dropout sits inside every residual branch. The last BN of each
branch starts at zero, so each block starts as the identity.
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from .blocks import (ConvBlock, PannsModel, init_bn, init_layer, max_plus_mean_over_time,
                     mean_over_freq)
from .frontend import DEFAULT_FREQ_DROP_WIDTH, LogmelFrontEnd


def conv3x3(in_planes: int, out_planes: int, dim: int = 2, dilation: int = 1) -> nn.Module:
    conv = nn.Conv2d if dim == 2 else nn.Conv1d
    return conv(in_planes, out_planes, kernel_size=3, stride=1, padding=dilation,
                dilation=dilation, bias=False)


def conv1x1(in_planes: int, out_planes: int, dim: int = 2) -> nn.Module:
    conv = nn.Conv2d if dim == 2 else nn.Conv1d
    return conv(in_planes, out_planes, kernel_size=1, stride=1, bias=False)


def shortcut(in_planes: int, out_planes: int, stride: int, dim: int = 2):
    """Projection shortcut (None when shapes already match): [AvgPool(stride)] + 1x1 conv + BN."""
    if stride == 1 and in_planes == out_planes:
        return None
    norm = nn.BatchNorm2d if dim == 2 else nn.BatchNorm1d
    conv, bn = conv1x1(in_planes, out_planes, dim), norm(out_planes)
    init_layer(conv)
    init_bn(bn)
    if stride == 1:
        return nn.Sequential(conv, bn)
    pool = nn.AvgPool2d(kernel_size=stride) if dim == 2 else nn.AvgPool1d(kernel_size=stride)
    return nn.Sequential(pool, conv, bn)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (ResNet22/38)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        self.stride = stride
        self.conv1 = conv3x3(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        init_layer(self.conv1)
        init_bn(self.bn1)
        init_layer(self.conv2)
        init_bn(self.bn2, weight=0.0)

    def forward(self, x):
        out = F.avg_pool2d(x, kernel_size=(2, 2)) if self.stride == 2 else x
        out = F.dropout(self.relu(self.bn1(self.conv1(out))), p=0.1, training=self.training)
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 (x4 channels) residual block (ResNet54)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        self.stride = stride
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
            init_layer(conv)
            init_bn(bn)
        init_bn(self.bn3, weight=0.0)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        if self.stride == 2:
            x = F.avg_pool2d(x, kernel_size=(2, 2))
        out = self.relu(self.bn1(self.conv1(x)))
        out = F.dropout(self.relu(self.bn2(self.conv2(out))), p=0.1, training=self.training)
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def make_stage(block, inplanes: int, planes: int, blocks: int, stride: int, dim: int = 2):
    """One ResNet stage: the first block may stride/project, the rest keep the shape."""
    out_planes = planes * block.expansion
    layers = [block(inplanes, planes, stride, shortcut(inplanes, out_planes, stride, dim))]
    layers += [block(out_planes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers), out_planes


class ResNetStages(nn.Module):
    """Four stages (64, 128, 256, 512 planes); stages 2-4 halve time and frequency."""

    def __init__(self, block, layers):
        super().__init__()
        inplanes = 64
        for i, (planes, blocks, stride) in enumerate(zip((64, 128, 256, 512), layers, (1, 2, 2, 2)), 1):
            stage, inplanes = make_stage(block, inplanes, planes, blocks, stride)
            setattr(self, f"layer{i}", stage)
        self.out_channels = inplanes

    def forward(self, x):
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class LogmelResNet(LogmelFrontEnd, PannsModel):
    """conv_block1 (pool 2) -> ResNet stages -> avg-pool 2 -> conv_block_after1 -> head."""

    block = BasicBlock
    layers = (2, 2, 2, 2)
    embedding_size = 2048
    time_halvings = 5  # conv_block1, stages 2-4, and the pool after the stages

    def __init__(self, sample_rate=None, window_size=None, hop_size=None, mel_bins=None,
                 fmin=None, fmax=None, classes_num=527):
        super().__init__(sample_rate, window_size, hop_size, mel_bins, fmin, fmax, classes_num)
        self._build_logmel(self.audio_config, DEFAULT_FREQ_DROP_WIDTH, freq_halvings=self.time_halvings)
        self.conv_block1 = ConvBlock(1, 64)
        self.resnet = ResNetStages(self.block, self.layers)
        self.conv_block_after1 = ConvBlock(self.resnet.out_channels, 2048)
        self._build_head(2048, type(self).embedding_size)

    @property
    def min_samples(self) -> int:
        return self._min_samples_for_frames(2 ** self.time_halvings, self.audio_config)

    def _forward(self, waveform, mixup_lambda):
        x = self._mix(self._logmel(waveform), mixup_lambda)
        x = F.dropout(self.conv_block1(x, pool_size=(2, 2), pool_type="avg"), p=0.2, training=self.training)
        x = F.avg_pool2d(self.resnet(x), kernel_size=(2, 2))
        x = F.dropout(x, p=0.2, training=self.training)
        x = self.conv_block_after1(x, pool_size=(1, 1), pool_type="avg")
        x = F.dropout(x, p=0.2, training=self.training)
        return self._clip_head(max_plus_mean_over_time(mean_over_freq(x)))


class ResNet22(LogmelResNet):
    """ResNet22: basic blocks [2, 2, 2, 2]."""
    layers = (2, 2, 2, 2)


class ResNet38(LogmelResNet):
    """ResNet38: basic blocks [3, 4, 6, 3]."""
    layers = (3, 4, 6, 3)


class ResNet54(LogmelResNet):
    """ResNet54: bottleneck blocks [3, 4, 6, 3]."""
    block = Bottleneck
    layers = (3, 4, 6, 3)
