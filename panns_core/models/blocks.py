"""Building blocks shared by the model families, each defined once.

Module attribute names (``conv1``, ``bn1``, ...) and registration order follow
the official checkpoints: they decide the ``state_dict`` keys and their order.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from panns_core.config import CLASSES_NUM, AudioConfig

from .frontend import check_mixup_lambda, check_waveform, do_mixup


# ----------------------------------------------------------------------------- init
def init_layer(layer: nn.Module) -> None:
    """Xavier-uniform weights and zero bias, the official init for every conv/linear layer."""
    nn.init.xavier_uniform_(layer.weight)
    if getattr(layer, "bias", None) is not None:
        layer.bias.data.fill_(0.0)


def init_bn(bn: nn.Module, weight: float = 1.0) -> None:
    """BatchNorm scale ``weight`` (1, or 0 for the last BN of a residual branch) and zero shift."""
    bn.bias.data.fill_(0.0)
    bn.weight.data.fill_(weight)


def conv_bn_pairs_init(*pairs) -> None:
    """Initialise ``(conv, bn)`` pairs, as every official block does for its layers."""
    for conv, bn in pairs:
        init_layer(conv)
        init_bn(bn)


# ----------------------------------------------------------------------------- pooling
def pool2d(x: torch.Tensor, pool_size=(2, 2), pool_type: str = "avg") -> torch.Tensor:
    """The official ConvBlock pooling: ``avg``, ``max`` or their sum ``avg+max``."""
    if pool_type == "avg":
        return F.avg_pool2d(x, kernel_size=pool_size)
    if pool_type == "max":
        return F.max_pool2d(x, kernel_size=pool_size)
    if pool_type == "avg+max":
        return F.avg_pool2d(x, kernel_size=pool_size) + F.max_pool2d(x, kernel_size=pool_size)
    raise ValueError(f"pool_type must be 'avg', 'max' or 'avg+max', got {pool_type!r}")


def mean_over_freq(x: torch.Tensor) -> torch.Tensor:
    """Mean over the frequency axis of ``(B, C, T, F)`` -> ``(B, C, T)``."""
    return torch.mean(x, dim=3)


def max_plus_mean_over_time(x: torch.Tensor) -> torch.Tensor:
    """Global pooling over the last (time) axis: max + mean, as every PANNs clip head does."""
    return torch.max(x, dim=-1)[0] + torch.mean(x, dim=-1)


# ----------------------------------------------------------------------------- 2-D conv blocks
class ConvBlock(nn.Module):
    """Two 3x3 conv-BN-ReLU layers then pooling (CNN10/CNN14, the ResNets' stem and tail)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=(3, 3), stride=(1, 1),
                               padding=(1, 1), bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=(3, 3), stride=(1, 1),
                               padding=(1, 1), bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        conv_bn_pairs_init((self.conv1, self.bn1), (self.conv2, self.bn2))

    def forward(self, x, pool_size=(2, 2), pool_type="avg"):
        x = F.relu_(self.bn1(self.conv1(x)))
        x = F.relu_(self.bn2(self.conv2(x)))
        return pool2d(x, pool_size, pool_type)


class ConvBlock5x5(nn.Module):
    """One 5x5 conv-BN-ReLU layer then pooling (CNN6)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=(5, 5), stride=(1, 1),
                               padding=(2, 2), bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        conv_bn_pairs_init((self.conv1, self.bn1))

    def forward(self, x, pool_size=(2, 2), pool_type="avg"):
        x = F.relu_(self.bn1(self.conv1(x)))
        return pool2d(x, pool_size, pool_type)


# ----------------------------------------------------------------------------- base class
class PannsModel(nn.Module):
    """Common interface: official constructor keywords, input checks, the clip head.

    Subclasses set ``default_config`` (their own front end) and implement
    ``_forward(waveform, mixup_lambda)`` where ``mixup_lambda`` is ``None`` unless
    the model is training. ``audio_config`` and ``embedding_size`` are plain
    attributes read by training and transfer code.
    """

    default_config = AudioConfig()
    returns_embedding = True

    def __init__(self, sample_rate=None, window_size=None, hop_size=None, mel_bins=None,
                 fmin=None, fmax=None, classes_num=CLASSES_NUM):
        super().__init__()
        given = dict(sample_rate=sample_rate, window_size=window_size, hop_size=hop_size,
                     mel_bins=mel_bins, fmin=fmin, fmax=fmax)
        self.audio_config = self.default_config.replace(**{k: v for k, v in given.items() if v is not None})
        if int(classes_num) < 1:
            raise ValueError(f"{type(self).__name__}: classes_num must be >= 1, got {classes_num}")
        self.classes_num = int(classes_num)

    # The official head: dropout, fc1 + ReLU, dropped-out embedding, and clipwise
    # output from the *un-dropped* fc1 activations (models.py:222-223).
    def _build_head(self, in_features: int, embedding_size: int) -> None:
        self.embedding_size = embedding_size
        self.fc1 = nn.Linear(in_features, embedding_size, bias=True)
        self.fc_audioset = nn.Linear(embedding_size, self.classes_num, bias=True)
        init_layer(self.fc1)
        init_layer(self.fc_audioset)

    def _clip_head(self, pooled: torch.Tensor, pre_dropout: bool = True) -> dict:
        x = F.dropout(pooled, p=0.5, training=self.training) if pre_dropout else pooled
        x = F.relu_(self.fc1(x))
        embedding = F.dropout(x, p=0.5, training=self.training)
        clipwise_output = torch.sigmoid(self.fc_audioset(x))
        return {"clipwise_output": clipwise_output, "embedding": embedding}

    @property
    def min_samples(self) -> int:
        """Shortest input (in samples) the pooling stack accepts; shorter clips raise ValueError."""
        raise NotImplementedError

    def forward(self, waveform: torch.Tensor, mixup_lambda=None) -> dict:
        """``waveform`` (batch, samples) float in [-1, 1] -> official output dict.

        Floating-point input of another dtype is cast to the model's dtype.
        ``mixup_lambda`` (shape ``(batch,)``, pairs ``[lam, 1-lam]``) is used only in
        training, where the batch is halved at the architecture's official mixing point.
        """
        check_waveform(waveform, self.min_samples, type(self).__name__)
        dtype = self.fc1.weight.dtype
        if waveform.dtype != dtype:  # e.g. float64 audio into a float32 model
            waveform = waveform.to(dtype)
        lam = None
        if self.training and mixup_lambda is not None:
            lam = check_mixup_lambda(mixup_lambda, waveform.shape[0])
        return self._forward(waveform, lam)

    def _forward(self, waveform, mixup_lambda):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def _mix(x, mixup_lambda):
        """Mix pairs when a lambda vector is given (training with mixup), else pass through."""
        return x if mixup_lambda is None else do_mixup(x, mixup_lambda)

    def extra_repr(self) -> str:
        return f"audio_config={self.audio_config}, classes_num={self.classes_num}"
