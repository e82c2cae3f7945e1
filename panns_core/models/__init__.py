"""The PANNs model zoo: every class of the official implementation under its official name.

Build models with :func:`create_model` (each model's own default front end) or
directly, e.g. ``Cnn14(sample_rate=32000, window_size=1024, hop_size=320,
mel_bins=64, fmin=50, fmax=14000, classes_num=527)``. All keywords are optional
and default to the class's front end. ``forward(waveform, mixup_lambda=None)``
takes ``(batch, samples)`` float32 audio and returns the official output dict.
"""

from .blocks import ConvBlock, ConvBlock5x5, PannsModel, init_bn, init_layer
from .cnn import (Cnn6, Cnn10, Cnn14, Cnn14_8k, Cnn14_16k, Cnn14_emb32, Cnn14_emb128, Cnn14_emb512,
                  Cnn14_mel32, Cnn14_mel128, Cnn14_mixup_time_domain, Cnn14_no_dropout,
                  Cnn14_no_specaug, LogmelCnn)
from .conv1d import DaiNet19, LeeNet11, LeeNet24, Res1dNet31, Res1dNet51
from .frontend import LogmelFrontEnd, do_mixup
from .mobilenet import MobileNetV1, MobileNetV2
from .registry import (CHECKPOINTS, FAMILIES, ModelInfo, create_model, default_kwargs, list_models,
                       model_info)
from .resnet import ResNet22, ResNet38, ResNet54
from .sed import Cnn14_DecisionLevelAtt, Cnn14_DecisionLevelAvg, Cnn14_DecisionLevelMax
from .transfer import Transfer_Cnn14, TransferModel
from .wavegram import Wavegram_Cnn14, Wavegram_Logmel128_Cnn14, Wavegram_Logmel_Cnn14

__all__ = [
    "create_model", "list_models", "model_info", "default_kwargs", "ModelInfo", "FAMILIES", "CHECKPOINTS",
    "TransferModel", "do_mixup", "LogmelFrontEnd", "PannsModel", "ConvBlock", "ConvBlock5x5",
    "LogmelCnn", "init_layer", "init_bn",
    "Cnn6", "Cnn10", "Cnn14", "ResNet22", "ResNet38", "ResNet54", "MobileNetV1", "MobileNetV2",
    "DaiNet19", "LeeNet11", "LeeNet24", "Res1dNet31", "Res1dNet51", "Wavegram_Cnn14",
    "Wavegram_Logmel_Cnn14", "Cnn14_no_specaug", "Cnn14_no_dropout", "Cnn14_mixup_time_domain",
    "Cnn14_emb512", "Cnn14_emb128", "Cnn14_emb32", "Cnn14_16k", "Cnn14_8k", "Cnn14_mel32",
    "Cnn14_mel128", "Wavegram_Logmel128_Cnn14", "Cnn14_DecisionLevelMax", "Cnn14_DecisionLevelAvg",
    "Cnn14_DecisionLevelAtt", "Transfer_Cnn14",
]
