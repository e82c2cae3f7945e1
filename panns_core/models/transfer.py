"""Transfer heads on a pretrained PANN: a generic wrapper and the official ``Transfer_Cnn14``.

:class:`TransferModel` puts a new head on the ``embedding`` of any backbone:
``hidden_layers=0`` is a linear classifier (the paper's Freeze_L1 when frozen,
fine-tuning when not), ``hidden_layers=2`` a 3-layer MLP (Freeze_L3). With
``freeze_base=True`` the backbone's parameters are frozen **and** it stays in
eval mode even when the wrapper is put in ``train()`` - unlike the official
``Transfer_Cnn14``, whose frozen base keeps batch-statistics BatchNorm, dropout
and SpecAugment on during training.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from panns_core.config import CLASSES_NUM

from .blocks import init_layer
from .cnn import Cnn14
from .frontend import check_mixup_lambda, do_mixup

OUTPUT_ACTIVATIONS = ("log_softmax", "softmax", "sigmoid", "logits")


def _activate(logits: torch.Tensor, output: str) -> torch.Tensor:
    if output == "log_softmax":
        return torch.log_softmax(logits, dim=-1)
    if output == "softmax":
        return torch.softmax(logits, dim=-1)
    if output == "sigmoid":
        return torch.sigmoid(logits)
    return logits


class TransferModel(nn.Module):
    """New classifier on ``base(waveform)['embedding']``.

    Args:
        base: any model of the zoo that returns an ``embedding`` (not the DecisionLevel models).
        classes_num: classes of the new task.
        freeze_base: freeze the backbone and keep it in eval mode.
        hidden_layers: number of hidden ``Linear(D, D) + ReLU`` layers before the output layer.
        output: ``"log_softmax"`` (single-label tasks, as the official fine-tuning code),
            ``"softmax"`` (class probabilities, for inference), ``"sigmoid"`` (multi-label) or ``"logits"``.

    With a frozen base and ``mixup_lambda`` in training, the base embeds all 2B clips in
    eval mode and the embeddings are mixed pairwise (the base cannot mix in eval mode).
    """

    def __init__(self, base: nn.Module, classes_num: int, freeze_base: bool = False,
                 hidden_layers: int = 0, output: str = "log_softmax"):
        super().__init__()
        if not getattr(base, "returns_embedding", True):
            raise ValueError(f"{type(base).__name__} returns no 'embedding'; use a clip-level model as the base")
        if output not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"output must be one of {OUTPUT_ACTIVATIONS}, got {output!r}")
        if int(hidden_layers) < 0:
            raise ValueError(f"hidden_layers must be >= 0, got {hidden_layers}")
        if int(classes_num) < 1:
            raise ValueError(f"classes_num must be >= 1, got {classes_num}")
        self.base = base
        self.freeze_base = bool(freeze_base)
        self.output = output
        self.embedding_size = int(base.embedding_size)
        self.audio_config = getattr(base, "audio_config", None)
        self.classes_num = int(classes_num)
        layers = []
        for _ in range(int(hidden_layers)):
            layers += [nn.Linear(self.embedding_size, self.embedding_size), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(self.embedding_size, self.classes_num))
        self.head = nn.Sequential(*layers)
        for layer in self.head:
            if isinstance(layer, nn.Linear):
                init_layer(layer)
        if self.freeze_base:
            for p in self.base.parameters():
                p.requires_grad_(False)
            self.base.eval()

    @property
    def min_samples(self) -> int:
        """Shortest input the backbone's pooling stack accepts (0 when it does not say)."""
        return int(getattr(self.base, "min_samples", 0) or 0)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_base:
            self.base.eval()
        return self

    def forward(self, waveform: torch.Tensor, mixup_lambda=None) -> dict:
        if self.freeze_base:
            with torch.no_grad():
                embedding = self.base(waveform)["embedding"]
            if self.training and mixup_lambda is not None:
                embedding = do_mixup(embedding, check_mixup_lambda(mixup_lambda, embedding.shape[0]))
        else:
            embedding = self.base(waveform, mixup_lambda)["embedding"]
        return {"clipwise_output": _activate(self.head(embedding), self.output), "embedding": embedding}


class Transfer_Cnn14(nn.Module):
    """The official fine-tuning class: ``base`` = Cnn14(527 classes), ``fc_transfer`` on its embedding.

    Same state_dict, constructor and outputs (``clipwise_output`` = log_softmax) as the
    official ``finetune_template.Transfer_Cnn14``, including its behaviour that a frozen
    base stays in whatever mode the wrapper is in; use :class:`TransferModel` for a
    frozen base that really stays in eval mode.
    """

    def __init__(self, sample_rate=None, window_size=None, hop_size=None, mel_bins=None,
                 fmin=None, fmax=None, classes_num=CLASSES_NUM, freeze_base=False):
        super().__init__()
        self.base = Cnn14(sample_rate, window_size, hop_size, mel_bins, fmin, fmax, CLASSES_NUM)
        self.fc_transfer = nn.Linear(self.base.embedding_size, int(classes_num), bias=True)
        init_layer(self.fc_transfer)
        self.freeze_base = bool(freeze_base)
        if self.freeze_base:
            for p in self.base.parameters():
                p.requires_grad_(False)
        self.audio_config = self.base.audio_config
        self.embedding_size = self.base.embedding_size
        self.classes_num = int(classes_num)

    def load_from_pretrain(self, pretrained_checkpoint_path) -> None:
        """Load a released AudioSet Cnn14 checkpoint into ``base`` (``weights_only=True``).

        Reads the file with :mod:`panns_core.checkpoint_io` (the registry-free
        layer), so the model package does not import :mod:`panns_core.checkpoints`.
        """
        from panns_core.checkpoint_io import CheckpointError, read_checkpoint

        state, _ = read_checkpoint(pretrained_checkpoint_path)
        expected = self.base.state_dict()
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
        if missing or unexpected or wrong:
            example = (wrong or missing or unexpected)[0]
            raise CheckpointError(
                f"{pretrained_checkpoint_path}: not an AudioSet Cnn14 checkpoint for this front end "
                f"({len(missing)} tensors missing, {len(unexpected)} extra, {len(wrong)} of another shape, "
                f"e.g. {example!r}); panns_core.checkpoints.load_checkpoint names the model it fits")
        self.base.load_state_dict(state)

    def forward(self, waveform: torch.Tensor, mixup_lambda=None) -> dict:
        output_dict = self.base(waveform, mixup_lambda)
        output_dict["clipwise_output"] = torch.log_softmax(self.fc_transfer(output_dict["embedding"]), dim=-1)
        return output_dict
