"""Sound event detection: CNN14 with decision-level pooling (max, average, attention).

The time axis after CNN14's five poolings (one step per 32 frames) is smoothed by
``max_pool1d(3) + avg_pool1d(3)`` (stride 1), the classifier is applied to every
segment, and the clip output pools the segments. ``framewise_output`` repeats
each segment 32 times and pads to the STFT frame count with the last frame
(31 x 32 = 992 -> 1001 frames for 10 s).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import init_bn, init_layer
from .cnn import LogmelCnn


def interpolate(x: torch.Tensor, ratio: int) -> torch.Tensor:
    """Nearest-neighbour upsampling of ``(B, T, C)`` along time: each step repeated ``ratio`` times."""
    batch, steps, classes = x.shape
    return x[:, :, None, :].repeat(1, 1, ratio, 1).reshape(batch, steps * ratio, classes)


def pad_framewise_output(x: torch.Tensor, frames_num: int) -> torch.Tensor:
    """Pad ``(B, T, C)`` to ``frames_num`` steps by repeating the last step."""
    missing = frames_num - x.shape[1]
    if missing <= 0:
        return x[:, :frames_num]
    return torch.cat((x, x[:, -1:, :].repeat(1, missing, 1)), dim=1)


def smooth_segments(x: torch.Tensor) -> torch.Tensor:
    """Local max + local mean over 3 segments (stride 1, zero-padded mean as in the official code)."""
    return F.max_pool1d(x, kernel_size=3, stride=1, padding=1) + F.avg_pool1d(x, kernel_size=3, stride=1, padding=1)


class AttBlock(nn.Module):
    """Attention pooling: softmax over time of clamp(att(x), -10, 10) weights sigmoid(cla(x)).

    ``bn_att`` is built (and stored in checkpoints) but never used, as in the official class.
    """

    def __init__(self, n_in: int, n_out: int, activation: str = "linear"):
        super().__init__()
        if activation not in ("linear", "sigmoid"):
            raise ValueError(f"activation must be 'linear' or 'sigmoid', got {activation!r}")
        self.activation = activation
        self.att = nn.Conv1d(n_in, n_out, kernel_size=1, stride=1, padding=0, bias=True)
        self.cla = nn.Conv1d(n_in, n_out, kernel_size=1, stride=1, padding=0, bias=True)
        self.bn_att = nn.BatchNorm1d(n_out)
        init_layer(self.att)
        init_layer(self.cla)
        init_bn(self.bn_att)

    def forward(self, x):
        """x: (B, n_in, T) -> clipwise (B, n_out), attention and segmentwise (B, n_out, T)."""
        norm_att = torch.softmax(torch.clamp(self.att(x), -10, 10), dim=-1)
        cla = self.cla(x)
        if self.activation == "sigmoid":
            cla = torch.sigmoid(cla)
        return torch.sum(norm_att * cla, dim=2), norm_att, cla


class _DecisionLevelCnn14(LogmelCnn):
    """CNN14 trunk with a segment-level classifier; returns framewise and clipwise outputs."""

    returns_embedding = False

    @property
    def interpolate_ratio(self) -> int:
        """Frames per segment: the conv stack halves time this many times."""
        return 2 ** self.time_halvings

    def _segment_embeddings(self, waveform, mixup_lambda):
        """(B, T, 2048) segment embeddings after smoothing, dropout, fc1 and ReLU."""
        x = smooth_segments(self._features(waveform, mixup_lambda))
        x = F.dropout(x, p=0.5, training=self.training)
        return F.relu_(self.fc1(x.transpose(1, 2)))

    def _segmentwise(self, embeddings):  # pragma: no cover - abstract
        raise NotImplementedError

    def _forward(self, waveform, mixup_lambda):
        frames_num = self.audio_config.frames(waveform.shape[1])
        clipwise, segmentwise = self._segmentwise(self._segment_embeddings(waveform, mixup_lambda))
        framewise = pad_framewise_output(interpolate(segmentwise, self.interpolate_ratio), frames_num)
        return {"framewise_output": framewise, "clipwise_output": clipwise}


class Cnn14_DecisionLevelMax(_DecisionLevelCnn14):
    """SED model of the released checkpoint: clipwise = max over segments."""

    def _segmentwise(self, x):
        segmentwise = torch.sigmoid(self.fc_audioset(F.dropout(x, p=0.5, training=self.training)))
        return torch.max(segmentwise, dim=1)[0], segmentwise


class Cnn14_DecisionLevelAvg(_DecisionLevelCnn14):
    """Clipwise = mean over segments."""

    def _segmentwise(self, x):
        segmentwise = torch.sigmoid(self.fc_audioset(F.dropout(x, p=0.5, training=self.training)))
        return torch.mean(segmentwise, dim=1), segmentwise


class Cnn14_DecisionLevelAtt(_DecisionLevelCnn14):
    """Clipwise = attention-weighted sum of segment probabilities (``att_block``, no fc_audioset)."""

    def _build_head(self, in_features: int, embedding_size: int) -> None:
        self.embedding_size = embedding_size
        self.fc1 = nn.Linear(in_features, embedding_size, bias=True)
        self.att_block = AttBlock(embedding_size, self.classes_num, activation="sigmoid")
        init_layer(self.fc1)

    def _segmentwise(self, x):
        x = F.dropout(x.transpose(1, 2), p=0.5, training=self.training)
        clipwise, _, segmentwise = self.att_block(x)
        return clipwise, segmentwise.transpose(1, 2)
