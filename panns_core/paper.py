"""Every number the PANNs paper reports, keyed by artefact id.

Source: Kong et al., "PANNs", IEEE/ACM TASLP 2020. Where the translated text we
work from is garbled, the value is ``None`` (never guessed); Table XII was settled
against the official counter (all 15 rows match it exactly).

Model-level tables are keyed by the official class name (``Cnn14``,
``Wavegram_Logmel_Cnn14``, ...); :data:`PAPER_NAMES` gives the paper's label.
Ablation tables are lists of row dicts in the paper's order.
"""

from __future__ import annotations

ARTEFACT_IDS = (
    [f"table_{r}" for r in ("IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII",
                             "XIII", "XIV", "XV", "XVI", "XVII", "XVIII")]
    + ["fig_3"] + [f"fig_4{c}" for c in "abcdef"] + ["fig_5"]
    + [f"fig_{i}" for i in range(6, 13)]
)
"""Every table and figure of the paper that the pipeline regenerates."""

# Paper label of each official class, as printed in Tables XI/XII.
PAPER_NAMES = {
    "Cnn6": "CNN6",
    "Cnn10": "CNN10",
    "Cnn14": "CNN14",
    "ResNet22": "ResNet22",
    "ResNet38": "ResNet38",
    "ResNet54": "ResNet54",
    "MobileNetV1": "MobileNetV1",
    "MobileNetV2": "MobileNetV2",
    "DaiNet19": "DaiNet",
    "LeeNet11": "LeeNet11",
    "LeeNet24": "LeeNet24",
    "Res1dNet31": "Res1dNet31",
    "Res1dNet51": "Res1dNet51",
    "Wavegram_Cnn14": "Wavegram-CNN",
    "Wavegram_Logmel_Cnn14": "Wavegram-Logmel-CNN",
}

# Family of each Table XI architecture (Fig. 5 colours them by family).
FAMILIES = {
    "Cnn6": "CNN", "Cnn10": "CNN", "Cnn14": "CNN",
    "ResNet22": "ResNet", "ResNet38": "ResNet", "ResNet54": "ResNet",
    "MobileNetV1": "MobileNet", "MobileNetV2": "MobileNet",
    "DaiNet19": "1D CNN", "LeeNet11": "1D CNN", "LeeNet24": "1D CNN",
    "Res1dNet31": "1D CNN", "Res1dNet51": "1D CNN",
    "Wavegram_Cnn14": "Wavegram", "Wavegram_Logmel_Cnn14": "Wavegram",
}


def _row(mAP, AUC, d_prime):
    return {"mAP": mAP, "AUC": AUC, "d_prime": d_prime}


# Table IV: comparison with previous systems on the AudioSet eval set.
TABLE_IV = [
    {"system": "Random guess", **_row(0.005, 0.500, 0.000)},
    {"system": "Google CNN", **_row(0.314, 0.959, 2.452)},
    {"system": "Single-level attention", **_row(0.337, 0.968, 2.612)},
    {"system": "Multi-level attention", **_row(0.360, 0.970, 2.660)},
    {"system": "Feature-level attention", **_row(0.369, 0.969, 2.640)},
    {"system": "TAL Net (Wang et al.)", **_row(0.362, 0.965, 2.554)},
    {"system": "DeepRes", **_row(0.392, 0.971, 2.682)},
    {"system": "Proposed CNN14", "model": "Cnn14", **_row(0.431, 0.973, 2.732)},
]

# Table V: data balancing and augmentation (CNN14). Keys name our TrainConfig values.
TABLE_V = [
    {"training_set": "balanced_train", "balanced": "none", "augmentation": "none", **_row(0.224, 0.894, 1.763)},
    {"training_set": "balanced_train", "balanced": "balanced", "augmentation": "none", **_row(0.221, 0.879, 1.652)},
    {"training_set": "balanced_train", "balanced": "balanced", "augmentation": "mixup", **_row(0.278, 0.905, 1.850)},
    {"training_set": "full_train", "balanced": "none", "augmentation": "none", **_row(0.375, 0.971, 2.690)},
    {"training_set": "full_train", "balanced": "balanced", "augmentation": "none", **_row(0.416, 0.968, 2.613)},
    {"training_set": "full_train", "balanced": "balanced", "augmentation": "mixup", **_row(0.431, 0.973, 2.732)},
    {"training_set": "full_train", "balanced": "balanced", "augmentation": "mixup_waveform",
     "model": "Cnn14_mixup_time_domain", **_row(0.425, 0.973, 2.720)},
]

# Table VI: hop size (CNN14); time resolution in ms at 32 kHz.
TABLE_VI = [
    {"hop_size": 1000, "time_resolution_ms": 31.25, **_row(0.400, 0.969, 2.645)},
    {"hop_size": 640, "time_resolution_ms": 20.00, **_row(0.417, 0.972, 2.711)},
    {"hop_size": 500, "time_resolution_ms": 15.63, **_row(0.417, 0.971, 2.682)},
    {"hop_size": 320, "time_resolution_ms": 10.00, **_row(0.431, 0.973, 2.732)},
]

# Table VII: embedding dimension (CNN14). The 512 row's AUC is garbled in our copy.
TABLE_VII = [
    {"embedding_size": 32, "model": "Cnn14_emb32", **_row(0.364, 0.958, 2.437)},
    {"embedding_size": 128, "model": "Cnn14_emb128", **_row(0.412, 0.969, 2.634)},
    {"embedding_size": 512, "model": "Cnn14_emb512", **_row(0.420, None, 2.689)},
    {"embedding_size": 2048, "model": "Cnn14", **_row(0.431, 0.973, 2.732)},
]

# Table VIII: amount of training data (fraction of the downloaded full train set).
TABLE_VIII = [
    {"data_fraction": 0.5, **_row(0.406, 0.964, 2.543)},
    {"data_fraction": 0.8, **_row(0.426, 0.971, 2.677)},
    {"data_fraction": 1.0, **_row(0.431, 0.973, 2.732)},
]

# Table IX: sample rate (CNN14 with the window and hop scaled to the rate).
TABLE_IX = [
    {"sample_rate": 8000, "model": "Cnn14_8k", **_row(0.406, 0.970, 2.654)},
    {"sample_rate": 16000, "model": "Cnn14_16k", **_row(0.427, 0.973, 2.719)},
    {"sample_rate": 32000, "model": "Cnn14", **_row(0.431, 0.973, 2.732)},
]

# Table X: mel bins (CNN14).
TABLE_X = [
    {"mel_bins": 32, "model": "Cnn14_mel32", **_row(0.413, 0.971, 2.691)},
    {"mel_bins": 64, "model": "Cnn14", **_row(0.431, 0.973, 2.732)},
    {"mel_bins": 128, "model": "Cnn14_mel128", **_row(0.442, 0.973, 2.735)},
]

# Table XI: architectures. ResNet22's d-prime is garbled in our copy.
TABLE_XI = {
    "Cnn6": _row(0.343, 0.965, 2.568),
    "Cnn10": _row(0.380, 0.971, 2.678),
    "Cnn14": _row(0.431, 0.973, 2.732),
    "ResNet22": _row(0.430, 0.973, None),
    "ResNet38": _row(0.434, 0.974, 2.737),
    "ResNet54": _row(0.429, 0.971, 2.675),
    "MobileNetV1": _row(0.389, 0.970, 2.653),
    "MobileNetV2": _row(0.383, 0.968, 2.624),
    "DaiNet19": _row(0.295, 0.958, 2.437),
    "LeeNet11": _row(0.266, 0.953, 2.371),
    "LeeNet24": _row(0.336, 0.963, 2.525),
    "Res1dNet31": _row(0.365, 0.958, 2.444),
    "Res1dNet51": _row(0.355, 0.948, 2.295),
    "Wavegram_Cnn14": _row(0.389, 0.968, 2.612),
    "Wavegram_Logmel_Cnn14": _row(0.439, 0.973, 2.720),
}

# Table XII: multiply-adds for one 10-s clip (the paper's convention: 2 per MAC,
# STFT-as-convolution, BatchNorm, ReLU and pooling modules included) and trainable
# parameters. Printed to 3 decimals of 1e9.
TABLE_XII = {
    "Cnn6": {"mult_adds": 21.986e9, "params": 4_837_455},
    "Cnn10": {"mult_adds": 28.166e9, "params": 5_219_279},
    "Cnn14": {"mult_adds": 42.220e9, "params": 80_753_615},
    "ResNet22": {"mult_adds": 30.081e9, "params": 63_675_087},
    "ResNet38": {"mult_adds": 48.962e9, "params": 73_783_247},
    "ResNet54": {"mult_adds": 54.563e9, "params": 104_318_159},
    "MobileNetV1": {"mult_adds": 3.614e9, "params": 4_796_303},
    "MobileNetV2": {"mult_adds": 2.810e9, "params": 4_075_343},
    "DaiNet19": {"mult_adds": 30.395e9, "params": 4_385_807},
    "LeeNet11": {"mult_adds": 4.741e9, "params": 748_367},
    "LeeNet24": {"mult_adds": 26.369e9, "params": 10_003_791},
    "Res1dNet31": {"mult_adds": 32.688e9, "params": 80_464_463},
    "Res1dNet51": {"mult_adds": 61.833e9, "params": 106_538_063},
    "Wavegram_Cnn14": {"mult_adds": 44.234e9, "params": 80_991_759},
    "Wavegram_Logmel_Cnn14": {"mult_adds": 53.510e9, "params": 81_065_487},
}
MULT_ADDS_DECIMALS = 3
"""Table XII prints multiply-adds as x.xxx e9: compare at this many decimals of 1e9."""

# Tables XIII-XVIII: transfer to six tasks. CNN14 is the transferred model.
TRANSFER_TASKS = {
    # task key: (table id, figure id, display name)
    "esc50": ("table_XIII", "fig_6", "ESC-50"),
    "dcase2019_task1": ("table_XIV", "fig_7", "DCASE 2019 Task 1"),
    "dcase2018_task2": ("table_XV", "fig_8", "DCASE 2018 Task 2"),
    "msos": ("table_XVI", "fig_9", "MSoS"),
    "gtzan": ("table_XVII", "fig_10", "GTZAN"),
    "ravdess": ("table_XVIII", "fig_11", "RAVDESS"),
}
TRANSFER = {
    "esc50": {"metric": "accuracy", "sota": 0.865, "scratch": 0.833, "finetune": 0.947,
              "freeze_l1": 0.908, "freeze_l3": 0.918},
    "dcase2019_task1": {"metric": "accuracy", "sota": 0.851, "scratch": 0.691, "finetune": 0.764,
                        "freeze_l1": 0.589, "freeze_l3": 0.607},
    "dcase2018_task2": {"metric": "mAP@3", "sota": 0.954, "scratch": 0.902, "finetune": 0.941,
                        "freeze_l1": 0.717, "freeze_l3": 0.768},
    "msos": {"metric": "accuracy", "sota": 0.930, "scratch": 0.760, "finetune": 0.960,
             "freeze_l1": 0.886, "freeze_l3": 0.930},
    "gtzan": {"metric": "accuracy", "sota": 0.939, "scratch": 0.758, "finetune": 0.915,
              "freeze_l1": 0.827, "freeze_l3": 0.858},
    "ravdess": {"metric": "accuracy", "sota": 0.645, "scratch": 0.692, "finetune": 0.721,
                "freeze_l1": 0.397, "freeze_l3": 0.401},
}
TRANSFER_STRATEGIES = ("scratch", "finetune", "freeze_l1", "freeze_l3")

# Training setup the paper reports (Section III).
SETUP = {
    "sample_rate": 32000, "window_size": 1024, "hop_size": 320, "mel_bins": 64,
    "fmin": 50, "fmax": 14000, "clip_seconds": 10, "batch_size": 32,
    "learning_rate": 1e-3, "iterations": 600_000, "classes": 527,
    "train_clips_listed": 2_063_839, "train_clips_downloaded": 1_934_187,
    "balanced_clips_listed": 22_160, "balanced_clips_downloaded": 20_550,
    "eval_clips_listed": 20_371, "eval_clips_downloaded": 18_887,
}

# Figures: what each shows, for captions and for the manifest.
FIGURES = {
    "fig_3": "Class-wise AP vs training iteration for classes ranked 1-10, 250-260 and 517-527 by training clips",
    "fig_4a": "mAP vs iteration: architectures (train dashed, eval solid)",
    "fig_4b": "mAP vs iteration: data balancing and augmentation",
    "fig_4c": "mAP vs iteration: embedding size",
    "fig_4d": "mAP vs iteration: amount of training data",
    "fig_4e": "mAP vs iteration: sample rate",
    "fig_4f": "mAP vs iteration: mel bins",
    "fig_5": "mAP vs multiply-adds of the 15 architectures, one colour per family",
    "fig_6": "ESC-50: accuracy vs training clips per class",
    "fig_7": "DCASE 2019 Task 1: accuracy vs training clips per class",
    "fig_8": "DCASE 2018 Task 2: mAP@3 vs training clips per class",
    "fig_9": "MSoS: accuracy vs training clips per class",
    "fig_10": "GTZAN: accuracy vs training clips per class",
    "fig_11": "RAVDESS: accuracy vs training clips per class",
    "fig_12": "AP of all 527 classes with training-clip counts and label quality",
}

TABLES = {
    "table_IV": "Comparison with previous systems",
    "table_V": "Data balancing and augmentation",
    "table_VI": "Hop size",
    "table_VII": "Embedding dimension",
    "table_VIII": "Amount of training data",
    "table_IX": "Sample rate",
    "table_X": "Mel bins",
    "table_XI": "Architectures",
    "table_XII": "Multiply-adds and parameters",
    **{table: f"Transfer to {name}" for table, _, name in TRANSFER_TASKS.values()},
}


def paper_name(class_name: str) -> str:
    """The paper's label of an official class (the class name itself if it has none)."""
    return PAPER_NAMES.get(class_name, class_name)
