"""Registry: names, families, default front ends, overrides, paper numbers and checkpoints."""

import dataclasses

import pytest

from panns_core import paper
from panns_core.config import AUDIO_8K, AUDIO_16K, AUDIO_32K, CLASSES_NUM
from panns_core.models import (CHECKPOINTS, FAMILIES, Cnn14, Cnn14_16k, ModelInfo, Transfer_Cnn14,
                               create_model, default_kwargs, list_models, model_info)

TABLE_XI_MODELS = ["Cnn6", "Cnn10", "Cnn14", "ResNet22", "ResNet38", "ResNet54", "MobileNetV1",
                   "MobileNetV2", "DaiNet19", "LeeNet11", "LeeNet24", "Res1dNet31", "Res1dNet51",
                   "Wavegram_Cnn14", "Wavegram_Logmel_Cnn14"]

RELEASED = ["Cnn14_mAP=0.431.pth", "Cnn14_16k_mAP=0.438.pth", "Cnn14_8k_mAP=0.416.pth",
            "Cnn14_emb512_mAP=0.420.pth", "CNN14_emb128_mAP=0.412.pth", "Cnn14_emb32_mAP=0.364.pth",
            "Cnn6_mAP=0.343.pth", "Cnn10_mAP=0.380.pth", "ResNet22_mAP=0.430.pth", "ResNet38_mAP=0.434.pth",
            "ResNet54_mAP=0.429.pth", "MobileNetV1_mAP=0.389.pth", "MobileNetV2_mAP=0.383.pth",
            "LeeNet11_mAP=0.266.pth", "LeeNet24_mAP=0.336.pth", "DaiNet19_mAP=0.295.pth",
            "Res1dNet31_mAP=0.365.pth", "Res1dNet51_mAP=0.355.pth", "Wavegram_Cnn14_mAP=0.389.pth",
            "Wavegram_Logmel_Cnn14_mAP=0.439.pth", "Cnn14_DecisionLevelMax_mAP=0.385.pth",
            "Cnn14_DecisionLevelAtt_mAP=0.425.pth"]


def test_list_models_has_all_30_classes_table_xi_first(official_spec):
    names = list_models()
    assert len(names) == 30 and sorted(names) == sorted(official_spec)
    assert names[:15] == TABLE_XI_MODELS


def test_families_partition_the_zoo():
    by_family = {f: list_models(f) for f in FAMILIES}
    assert by_family["ResNet"] == ["ResNet22", "ResNet38", "ResNet54"]
    assert by_family["MobileNet"] == ["MobileNetV1", "MobileNetV2"]
    assert by_family["1D CNN"] == ["DaiNet19", "LeeNet11", "LeeNet24", "Res1dNet31", "Res1dNet51"]
    assert by_family["Wavegram"] == ["Wavegram_Cnn14", "Wavegram_Logmel_Cnn14", "Wavegram_Logmel128_Cnn14"]
    assert sum(len(v) for v in by_family.values()) == 30
    # the 15 Table XI architectures carry the paper's family labels
    assert all(model_info(n).family == paper.FAMILIES[n] for n in TABLE_XI_MODELS)
    with pytest.raises(ValueError, match="unknown family"):
        list_models("Transformer")


@pytest.mark.parametrize("name,config", [
    ("Cnn14", AUDIO_32K), ("Cnn14_16k", AUDIO_16K), ("Cnn14_8k", AUDIO_8K),
    ("Cnn14_mel32", AUDIO_32K.replace(mel_bins=32)), ("Cnn14_mel128", AUDIO_32K.replace(mel_bins=128)),
    ("Wavegram_Logmel128_Cnn14", AUDIO_32K.replace(mel_bins=128)), ("LeeNet11", AUDIO_32K),
])
def test_default_config_per_model(official_spec, name, config):
    info = model_info(name)
    assert info.config == config
    expected = {**config.model_kwargs(), "classes_num": CLASSES_NUM}
    assert default_kwargs(name) == expected
    # the spec's constructor kwargs agree except for the class count
    assert {k: v for k, v in official_spec[name]["kwargs"].items() if k != "classes_num"} == config.model_kwargs()


def test_create_model_uses_own_config_and_accepts_overrides():
    model = create_model("Cnn14_16k")
    assert isinstance(model, Cnn14_16k) and model.audio_config == AUDIO_16K
    assert model.fc_audioset.out_features == 527 and model.embedding_size == 2048
    small = create_model("Cnn6", classes_num=10, mel_bins=128, fmax=16000)
    assert small.audio_config == AUDIO_32K.replace(mel_bins=128, fmax=16000)
    assert small.fc_audioset.out_features == 10 and small.bn0.num_features == 128
    assert small.logmel_extractor.melW.shape == (513, 128)
    transfer = create_model("Transfer_Cnn14", classes_num=5, freeze_base=True)
    assert isinstance(transfer, Transfer_Cnn14) and transfer.fc_transfer.out_features == 5
    assert transfer.base.fc_audioset.out_features == 527


def test_create_model_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown model 'Cnn15'"):
        create_model("Cnn15")
    with pytest.raises(ValueError, match="no constructor argument"):
        create_model("Cnn6", dropout=0.1)
    with pytest.raises(ValueError, match="unknown model"):
        model_info("cnn14")


def test_model_info_fields_and_paper_numbers():
    info = model_info("Wavegram_Logmel_Cnn14")
    assert isinstance(info, ModelInfo)
    assert [f.name for f in dataclasses.fields(ModelInfo)] == [
        "name", "cls", "config", "family", "paper_name", "embedding_size", "paper", "checkpoint"]
    assert info.paper_name == "Wavegram-Logmel-CNN" and info.embedding_size == 2048
    assert info.paper == {**paper.TABLE_XI["Wavegram_Logmel_Cnn14"], **paper.TABLE_XII["Wavegram_Logmel_Cnn14"]}
    assert info.checkpoint == "Wavegram_Logmel_Cnn14_mAP=0.439.pth"
    assert model_info("Cnn14").cls is Cnn14 and model_info("Cnn14").paper_name == "CNN14"
    for name in TABLE_XI_MODELS:
        numbers = model_info(name).paper
        assert set(numbers) == {"mAP", "AUC", "d_prime", "mult_adds", "params"}
    assert model_info("Cnn14_emb32").paper is None


def test_paper_parameter_counts_equal_the_built_models():
    """Table XII's parameter column equals our trainable parameters (small models built here)."""
    for name in ("Cnn6", "Cnn10", "MobileNetV1", "MobileNetV2", "LeeNet11", "DaiNet19"):
        model = create_model(name)
        assert sum(p.numel() for p in model.parameters() if p.requires_grad) == model_info(name).paper["params"]


def test_embedding_sizes(official_spec):
    for name, rec in official_spec.items():
        if "embedding" in rec["outputs"]:
            assert model_info(name).embedding_size == rec["outputs"]["embedding"][1], name


def test_checkpoint_keys_are_the_released_files():
    assert sorted(CHECKPOINTS.values()) == sorted(RELEASED)
    for name, key in CHECKPOINTS.items():
        # Zenodo spells the emb128 file with capitals; every other file starts with the class name.
        assert key.lower().startswith(name.lower() + "_map=") and model_info(name).checkpoint == key
    assert model_info("Cnn14_DecisionLevelAvg").checkpoint is None


def test_released_checkpoint_registry_agrees_when_present():
    checkpoints = pytest.importorskip("panns_core.checkpoints")
    for key in CHECKPOINTS.values():  # that registry matches file names case-insensitively
        assert key in checkpoints.RELEASED_CHECKPOINTS, key
