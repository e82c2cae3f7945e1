"""Tiny generated stand-ins for the six transfer datasets, in each one's exact layout.

The stand-ins let the *same* parsers, fold protocols and training code run
offline (tests, the smoke profile). Each writes the dataset's real folder names,
file-name conventions, metadata files and columns, native sample rate and
channel count (48 kHz stereo for DCASE 2019, 22.05 kHz for GTZAN ...), but with
few classes, few clips and short durations. GTZAN's stand-in includes a corrupt
``jazz.00054.wav`` like the real dataset.

Sounds are class-dependent so that a small backbone can learn them: each class
has its own fundamental frequency (log-spaced 150 Hz - 4 kHz), harmonic
series and amplitude-modulation rate, with per-clip jitter, random onset and
background noise.
"""

from __future__ import annotations

import csv
import os

import numpy as np
import soundfile as sf

from panns_core.transfer.datasets import RAVDESS_EMOTIONS

STANDIN_TASKS = ("esc50", "dcase2019_task1", "dcase2018_task2", "msos", "gtzan", "ravdess")


def class_sound(label: int, classes_num: int, seconds: float, sample_rate: int,
                rng: np.random.Generator, channels: int = 1) -> np.ndarray:
    """A clip of class ``label``: (samples,) or (samples, channels) float32 in [-1, 1]."""
    n = max(1, int(round(seconds * sample_rate)))
    t = np.arange(n) / sample_rate
    f0 = 150.0 * (4000.0 / 150.0) ** (label / max(1, classes_num - 1)) * rng.uniform(0.97, 1.03)
    f0 = min(f0, 0.4 * sample_rate / 3)
    tone = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in (1, 2, 3))
    am = 0.6 + 0.4 * np.sin(2 * np.pi * (1.5 + 1.5 * label) * t)
    onset = int(rng.integers(0, max(1, n // 4)))
    envelope = np.zeros(n)
    envelope[onset:] = 1.0
    x = 0.25 * tone * am * envelope + 0.02 * rng.standard_normal(n)
    x = (x / max(1.0, np.abs(x).max() / 0.9)).astype(np.float32)
    if channels == 1:
        return x
    # Stereo: the same source with a small inter-channel delay and independent noise.
    right = np.roll(x, int(rng.integers(1, 20))) + 0.01 * rng.standard_normal(n).astype(np.float32)
    return np.stack([x, np.clip(right, -1, 1)], axis=1).astype(np.float32)


def _write(path: str, audio: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, audio, sample_rate, subtype=subtype)


def _write_csv(path: str, header: list[str], rows: list, delimiter: str = ",") -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def make_esc50(root: str, *, classes=("dog", "rooster", "rain", "sea_waves", "crackling_fire"),
               clips_per_fold: int = 2, seconds: float = 1.0, seed: int = 0) -> str:
    """``ESC-50-master/{audio,meta/esc50.csv}``; names ``{FOLD}-{CLIP_ID}-{TAKE}-{TARGET}.wav``, 44.1 kHz mono."""
    rng = np.random.default_rng(seed)
    base = os.path.join(root, "ESC-50-master")
    rows = []
    for target, category in enumerate(classes):
        for fold in range(1, 6):
            src = 100000 + 1000 * target + fold
            for take in "ABCDEFGH"[:clips_per_fold]:
                name = f"{fold}-{src}-{take}-{target}.wav"
                _write(os.path.join(base, "audio", name), class_sound(target, len(classes), seconds, 44100, rng), 44100)
                rows.append([name, fold, target, category, "False", f"{src}.ogg", take])
    rows.sort(key=lambda r: r[0])
    _write_csv(os.path.join(base, "meta", "esc50.csv"),
               ["filename", "fold", "target", "category", "esc10", "src_file", "take"], rows)
    return root


def make_dcase2019_task1(root: str, *, scenes=("airport", "bus", "park", "street_traffic"),
                         train_per_class: int = 6, test_per_class: int = 3, seconds: float = 1.0,
                         seed: int = 0) -> str:
    """``TAU-urban-acoustic-scenes-2019-development/{audio,meta.csv,evaluation_setup/}``, 48 kHz stereo.

    Setup files are tab-separated with paths relative to the dataset folder; train and
    evaluate come from different cities/locations, as in the official split.
    """
    rng = np.random.default_rng(seed)
    base = os.path.join(root, "TAU-urban-acoustic-scenes-2019-development")
    meta, train, evaluate, test = [], [], [], []
    for label, scene in enumerate(scenes):
        for i in range(train_per_class + test_per_class):
            city, location = ("barcelona", 0) if i < train_per_class else ("milan", 1)
            name = f"audio/{scene}-{city}-{location}-{100 + i}-a.wav"
            _write(os.path.join(base, name),
                   class_sound(label, len(scenes), seconds, 48000, rng, channels=2), 48000, subtype="PCM_24")
            meta.append([name, scene, f"{city}-{location}", "a"])
            (train if i < train_per_class else evaluate).append([name, scene])
            if i >= train_per_class:
                test.append([name])
    _write_csv(os.path.join(base, "meta.csv"), ["filename", "scene_label", "identifier", "source_label"], meta, "\t")
    setup = os.path.join(base, "evaluation_setup")
    _write_csv(os.path.join(setup, "fold1_train.csv"), ["filename", "scene_label"], train, "\t")
    _write_csv(os.path.join(setup, "fold1_evaluate.csv"), ["filename", "scene_label"], evaluate, "\t")
    _write_csv(os.path.join(setup, "fold1_test.csv"), ["filename"], test, "\t")
    return root


def make_dcase2018_task2(root: str, *, labels=("Bark", "Cello", "Laughter", "Saxophone"),
                         train_per_class: int = 6, test_per_class: int = 3, seconds: float = 1.0,
                         seed: int = 0) -> str:
    """``FSDKaggle2018.{audio_train,audio_test,meta}/``; variable-length 44.1 kHz clips (0.4-2.5 x ``seconds``)."""
    rng = np.random.default_rng(seed)
    train_rows, test_rows = [], []
    for label_index, label in enumerate(labels):
        for i in range(train_per_class + test_per_class):
            fname = f"{rng.integers(0, 16 ** 8):08x}.wav"
            is_train = i < train_per_class
            folder = "FSDKaggle2018.audio_train" if is_train else "FSDKaggle2018.audio_test"
            length = seconds * rng.uniform(0.4, 2.5)
            _write(os.path.join(root, folder, fname), class_sound(label_index, len(labels), length, 44100, rng), 44100)
            freesound_id = int(rng.integers(1000, 400000))
            if is_train:
                train_rows.append([fname, label, int(rng.integers(0, 2)), freesound_id, "Attribution"])
            else:
                test_rows.append([fname, label, "Public", freesound_id, "Attribution"])
    meta = os.path.join(root, "FSDKaggle2018.meta")
    _write_csv(os.path.join(meta, "train_post_competition.csv"),
               ["fname", "label", "manually_verified", "freesound_id", "license"], train_rows)
    _write_csv(os.path.join(meta, "test_post_competition_scoring_clips.csv"),
               ["fname", "label", "usage", "freesound_id", "license"], test_rows)
    return root


MSOS_EVENTS = {"Effects": "Beep", "Human": "Laughter", "Music": "Guitar", "Nature": "Rain", "Urban": "Traffic"}


def make_msos(root: str, *, dev_per_class: int = 6, eval_per_class: int = 3, seconds: float = 1.0,
              seed: int = 0) -> str:
    """``Development/<Category>/<File>`` + ``Logsheet_Development.csv``; ``Evaluation/<File>`` + ``Logsheet_EvaluationMaster.csv``."""
    rng = np.random.default_rng(seed)
    categories = sorted(MSOS_EVENTS)
    dev, ev = [], []
    for label, category in enumerate(categories):
        for i in range(dev_per_class + eval_per_class):
            is_dev = i < dev_per_class
            name = f"{MSOS_EVENTS[category].lower()}_{rng.integers(0, 10 ** 6):06d}.wav"
            path = (os.path.join(root, "Development", category, name) if is_dev
                    else os.path.join(root, "Evaluation", name))
            _write(path, class_sound(label, len(categories), seconds, 44100, rng), 44100)
            (dev if is_dev else ev).append([category, MSOS_EVENTS[category], name])
    _write_csv(os.path.join(root, "Logsheet_Development.csv"), ["Category", "Event", "File"], dev)
    _write_csv(os.path.join(root, "Logsheet_EvaluationMaster.csv"), ["Category", "Event", "File"], ev)
    return root


def make_gtzan(root: str, *, genres=("blues", "classical", "jazz", "metal"), clips_per_genre: int = 10,
               seconds: float = 1.0, seed: int = 0, corrupt: bool = True) -> str:
    """``genres/<genre>/<genre>.000NN.wav`` at 22.05 kHz, plus a corrupt ``jazz.00054.wav`` like the real set."""
    rng = np.random.default_rng(seed)
    base = os.path.join(root, "genres")
    for label, genre in enumerate(genres):
        for number in range(clips_per_genre):
            _write(os.path.join(base, genre, f"{genre}.{number:05d}.wav"),
                   class_sound(label, len(genres), seconds, 22050, rng), 22050)
    if corrupt and "jazz" in genres:
        # A RIFF/WAVE header that promises data which is not there: no decoder can read it.
        with open(os.path.join(base, "jazz", "jazz.00054.wav"), "wb") as f:
            f.write(b"RIFF\x24\x80\x00\x00WAVEfmt \x10\x00\x00\x00" + bytes(rng.integers(0, 256, 64, dtype=np.uint8)))
    return root


def make_ravdess(root: str, *, actors=(1, 2, 7, 8, 13, 14, 19, 20), seconds: float = 1.0, seed: int = 0) -> str:
    """``Actor_XX/03-01-EE-II-01-01-XX.wav`` at 48 kHz: every emotion for each actor (two actors per fold)."""
    rng = np.random.default_rng(seed)
    for actor in actors:
        for emotion in range(1, len(RAVDESS_EMOTIONS) + 1):
            intensity = 1 if emotion == 1 else int(rng.integers(1, 3))  # neutral has no strong intensity
            name = f"03-01-{emotion:02d}-{intensity:02d}-01-01-{actor:02d}.wav"
            _write(os.path.join(root, f"Actor_{actor:02d}", name),
                   class_sound(emotion - 1, len(RAVDESS_EMOTIONS), seconds, 48000, rng), 48000)
    return root


MAKERS = {"esc50": make_esc50, "dcase2019_task1": make_dcase2019_task1, "dcase2018_task2": make_dcase2018_task2,
          "msos": make_msos, "gtzan": make_gtzan, "ravdess": make_ravdess}


def make_standin(task: str, root: str, **kwargs) -> str:
    """Write the stand-in of ``task`` under ``root`` (once: an existing stand-in is reused)."""
    if task not in MAKERS:
        raise ValueError(f"no synthetic stand-in for {task!r}; known: {list(MAKERS)}")
    stamp = os.path.join(root, ".standin_complete")
    if not os.path.exists(stamp):
        MAKERS[task](root, **kwargs)
        with open(stamp, "w") as f:
            f.write(task + "\n")
    return root
