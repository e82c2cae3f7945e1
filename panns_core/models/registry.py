"""Model registry: every official class by name, its default front end and the paper's numbers.

>>> model = create_model("Cnn14_16k")            # 16 kHz front end, 527 classes
>>> model_info("Wavegram_Logmel_Cnn14").paper["mAP"]
0.439
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from panns_core import paper
from panns_core.config import CLASSES_NUM, AudioConfig
from panns_core.released import RELEASED_CHECKPOINTS

from . import cnn, conv1d, mobilenet, resnet, sed, transfer, wavegram

FAMILIES = ("CNN", "ResNet", "MobileNet", "1D CNN", "Wavegram")

# name -> (class, family), in the paper's order (Table XI first, then the variants).
_MODELS: dict[str, tuple[type, str]] = {
    "Cnn6": (cnn.Cnn6, "CNN"),
    "Cnn10": (cnn.Cnn10, "CNN"),
    "Cnn14": (cnn.Cnn14, "CNN"),
    "ResNet22": (resnet.ResNet22, "ResNet"),
    "ResNet38": (resnet.ResNet38, "ResNet"),
    "ResNet54": (resnet.ResNet54, "ResNet"),
    "MobileNetV1": (mobilenet.MobileNetV1, "MobileNet"),
    "MobileNetV2": (mobilenet.MobileNetV2, "MobileNet"),
    "DaiNet19": (conv1d.DaiNet19, "1D CNN"),
    "LeeNet11": (conv1d.LeeNet11, "1D CNN"),
    "LeeNet24": (conv1d.LeeNet24, "1D CNN"),
    "Res1dNet31": (conv1d.Res1dNet31, "1D CNN"),
    "Res1dNet51": (conv1d.Res1dNet51, "1D CNN"),
    "Wavegram_Cnn14": (wavegram.Wavegram_Cnn14, "Wavegram"),
    "Wavegram_Logmel_Cnn14": (wavegram.Wavegram_Logmel_Cnn14, "Wavegram"),
    "Cnn14_no_specaug": (cnn.Cnn14_no_specaug, "CNN"),
    "Cnn14_no_dropout": (cnn.Cnn14_no_dropout, "CNN"),
    "Cnn14_mixup_time_domain": (cnn.Cnn14_mixup_time_domain, "CNN"),
    "Cnn14_emb512": (cnn.Cnn14_emb512, "CNN"),
    "Cnn14_emb128": (cnn.Cnn14_emb128, "CNN"),
    "Cnn14_emb32": (cnn.Cnn14_emb32, "CNN"),
    "Cnn14_16k": (cnn.Cnn14_16k, "CNN"),
    "Cnn14_8k": (cnn.Cnn14_8k, "CNN"),
    "Cnn14_mel32": (cnn.Cnn14_mel32, "CNN"),
    "Cnn14_mel128": (cnn.Cnn14_mel128, "CNN"),
    "Wavegram_Logmel128_Cnn14": (wavegram.Wavegram_Logmel128_Cnn14, "Wavegram"),
    "Cnn14_DecisionLevelMax": (sed.Cnn14_DecisionLevelMax, "CNN"),
    "Cnn14_DecisionLevelAvg": (sed.Cnn14_DecisionLevelAvg, "CNN"),
    "Cnn14_DecisionLevelAtt": (sed.Cnn14_DecisionLevelAtt, "CNN"),
    "Transfer_Cnn14": (transfer.Transfer_Cnn14, "CNN"),
}

# Released checkpoint of each class: derived from the one data table in panns_core.released
# (file name, URL, checksum), which panns_core.checkpoints also reads, so the two never disagree.
CHECKPOINTS = {entry.model_name: filename for filename, entry in RELEASED_CHECKPOINTS.items()}

CONSTRUCTOR_KWARGS = ("sample_rate", "window_size", "hop_size", "mel_bins", "fmin", "fmax", "classes_num")


@dataclass(frozen=True)
class ModelInfo:
    """What the zoo knows about one class without building it."""

    name: str
    cls: type
    config: AudioConfig
    family: str
    paper_name: str
    embedding_size: int
    paper: dict | None
    checkpoint: str | None


def _lookup(name: str) -> tuple[type, str]:
    try:
        return _MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(_MODELS)}") from None


def list_models(family: str | None = None) -> list[str]:
    """Class names of the zoo (Table XI's 15 first), optionally of one family."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; families: {FAMILIES}")
    return [name for name, (_, fam) in _MODELS.items() if family is None or fam == family]


def _paper_numbers(name: str) -> dict | None:
    if name not in paper.TABLE_XI:
        return None
    return {**paper.TABLE_XI[name], **paper.TABLE_XII.get(name, {})}


def model_info(name: str) -> ModelInfo:
    """Registry entry of ``name``: class, default front end, family, paper numbers, checkpoint."""
    cls, family = _lookup(name)
    embedding_cls = cnn.Cnn14 if cls is transfer.Transfer_Cnn14 else cls
    return ModelInfo(
        name=name, cls=cls, config=embedding_cls.default_config, family=family,
        paper_name=paper.paper_name(name), embedding_size=embedding_cls.embedding_size,
        paper=_paper_numbers(name), checkpoint=CHECKPOINTS.get(name),
    )


def default_kwargs(name: str) -> dict:
    """The constructor keywords ``create_model(name)`` uses (its own front end, 527 classes)."""
    info = model_info(name)
    kwargs = {**info.config.model_kwargs(), "classes_num": CLASSES_NUM}
    if info.cls is transfer.Transfer_Cnn14:
        kwargs["freeze_base"] = False
    return kwargs


def create_model(name: str, **overrides) -> nn.Module:
    """Build ``name`` with its default front end; ``overrides`` replace any constructor keyword."""
    kwargs = default_kwargs(name)
    unknown = sorted(set(overrides) - set(kwargs))
    if unknown:
        raise ValueError(f"{name} has no constructor argument(s) {unknown}; accepted: {sorted(kwargs)}")
    kwargs.update(overrides)
    return model_info(name).cls(**kwargs)
