"""Generated corpus: official formats, determinism, class balance / long tail, learnability."""

import filecmp
import os

import h5py
import numpy as np
import pytest
import soundfile as sf
from scipy.signal import stft

from panns_core.data.audioset import (
    read_class_labels, read_qa_true_counts, read_segments_csv, segments_targets,
)
from panns_core.data.pack import pack_dataset, waveform_path
from panns_core.data.synthetic import MAX_CLASSES, CorpusConfig, generate_corpus, plan_corpus

TINY = dict(num_classes=24, clip_seconds=0.5, sample_rate=16000, balanced_per_class=2, eval_per_class=1,
            unbalanced_clips=30, bank_size=2)
REAL = os.path.join(os.path.dirname(__file__), "..", "panns_core", "resources", "class_labels_indices.csv")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn") / "a"
    return str(root), generate_corpus(str(root), seed=3, **TINY)


def test_format_matches_acquisition_layout(tiny):
    root, info = tiny
    labels = read_class_labels(os.path.join(root, "metadata", "class_labels_indices.csv"))
    real = read_class_labels(REAL)
    assert len(labels) == 24
    for mid, name in zip(labels.mids, labels.names):
        assert real.names[real.index_of(mid)] == name  # real AudioSet mids and names
    first = open(os.path.join(root, "metadata", "eval_segments.csv")).read().splitlines()
    assert first[0].startswith("# Segments csv created") and first[2] == "# YTID, start_seconds, end_seconds, positive_labels"
    for split, n in (("balanced_train", 48), ("unbalanced_train", 30), ("eval", 24)):
        segs = read_segments_csv(os.path.join(root, "metadata", f"{split}_segments.csv"))
        assert len(segs) == n == info.counts[split]
        assert all(len(s.ytid) == 11 and 1 <= len(s.labels) <= 3 for s in segs)
        for s in segs:
            x, sr = sf.read(os.path.join(root, "audios", split, f"Y{s.ytid}.wav"), dtype="int16")
            assert sr == 16000 and x.shape == (8000,)
        if split != "unbalanced_train":
            counts = segments_targets(segs, labels).sum(0)
            assert counts.min() >= n // 24
    qa = read_qa_true_counts(os.path.join(root, "metadata", "qa_true_counts.csv"))
    assert [q.mid for q in qa] == labels.mids and all(q.num_true <= q.num_rated for q in qa)


def test_deterministic_by_seed_and_workers(tiny, tmp_path):
    root, _ = tiny
    again = str(tmp_path / "b")
    generate_corpus(again, seed=3, workers=2, **TINY)
    for rel in ("metadata/eval_segments.csv", "metadata/unbalanced_train_segments.csv",
                "metadata/class_labels_indices.csv", "metadata/qa_true_counts.csv"):
        assert filecmp.cmp(os.path.join(root, rel), os.path.join(again, rel), shallow=False)
    for split in ("eval", "unbalanced_train"):
        names = sorted(os.listdir(os.path.join(root, "audios", split)))
        assert names == sorted(os.listdir(os.path.join(again, "audios", split)))
        for n in names[:10]:
            assert filecmp.cmp(os.path.join(root, "audios", split, n), os.path.join(again, "audios", split, n),
                               shallow=False)
    other = plan_corpus(CorpusConfig(seed=4, **TINY))["clips"]["eval"]
    assert [c.ytid for c in other] != [c.ytid for c in plan_corpus(CorpusConfig(seed=3, **TINY))["clips"]["eval"]]


def test_unbalanced_is_long_tailed():
    plan = plan_corpus(CorpusConfig(num_classes=MAX_CLASSES, unbalanced_clips=3000, seed=0))
    counts = np.zeros(MAX_CLASSES)
    for c in plan["clips"]["unbalanced_train"]:
        counts[c.labels] += 1
    assert counts.min() >= 1 and counts.max() / counts.min() > 8
    n_events = np.bincount([len(c.labels) for c in plan["clips"]["unbalanced_train"]])
    assert n_events[0] == 0 and n_events[1] > n_events[2] > n_events[3] > 0


def test_packs_and_classes_are_recognisable(tmp_path):
    """Single clean events: a nearest-centroid classifier on log spectra, trained on
    balanced_train and tested on eval (sounds from a held-out variant bank), is far above chance."""
    root = str(tmp_path / "rec")
    generate_corpus(root, num_classes=MAX_CLASSES, clip_seconds=1.0, sample_rate=16000, balanced_per_class=4,
                    eval_per_class=3, unbalanced_clips=0, bank_size=3, max_events=1, event_count_probs=(1.0,),
                    difficulty="easy", label_quality=(1.0, 1.0), splits=("balanced_train", "eval"))
    results = pack_dataset(root, splits=("eval", "balanced_train"), sample_rate=16000, clip_seconds=1.0)
    assert {k: r.packed for k, r in results.items()} == {"eval.h5": 3 * MAX_CLASSES, "balanced_train.h5": 4 * MAX_CLASSES}

    def features(split):
        with h5py.File(waveform_path(root, split), "r") as hf:
            x, y = hf["waveform"][:] / 32767.0, hf["target"][:].argmax(1)
        power = np.log(np.abs(stft(x, nperseg=512, axis=-1)[2]) ** 2 + 1e-8)
        return np.concatenate([power.mean(-1), power.std(-1)], 1), y

    xtr, ytr = features("balanced_train")
    xte, yte = features("eval")
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    centroids = np.stack([((xtr - mu) / sd)[ytr == k].mean(0) for k in range(MAX_CLASSES)])
    pred = ((((xte - mu) / sd)[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert (pred == yte).mean() > 0.5  # chance is 1/MAX_CLASSES


def test_bad_config():
    with pytest.raises(ValueError, match="num_classes"):
        CorpusConfig(num_classes=MAX_CLASSES + 1)
    with pytest.raises(ValueError, match="difficulty"):
        CorpusConfig(difficulty="brutal")
    with pytest.raises(ValueError, match="preset"):
        generate_corpus("/nonexistent", preset="huge")


def test_classes_are_picked_by_name(tmp_path):
    from panns_core.data.synthetic import CLASS_BY_NAME

    names = ["Steam", "Speech", "Whistling"]
    info = generate_corpus(str(tmp_path / "named"), classes=names, clip_seconds=0.5, sample_rate=16000,
                           balanced_per_class=2, eval_per_class=1, unbalanced_clips=4, bank_size=2, max_events=1,
                           event_count_probs=(1.0,))
    assert info.config.num_classes == 3
    labels = (tmp_path / "named" / "metadata" / "class_labels_indices.csv").read_text().splitlines()[1:]
    assert [line.split(",", 2)[2].strip('"') for line in labels] == names
    assert info.class_counts["balanced_train"] == [2, 2, 2]
    assert CLASS_BY_NAME["Steam"].cue == "energy in 4-8 kHz only"
    with pytest.raises(ValueError, match="unknown: \\['Purr'\\]"):
        CorpusConfig(classes=["Purr"])
    with pytest.raises(ValueError, match="disagrees"):
        CorpusConfig(classes=names, num_classes=2)


def test_designed_cues_lie_where_the_settings_act():
    """Steam, Whistling and Sizzle (the 4-8 kHz cue classes): nothing left after resampling to 8 kHz, intact at 16 kHz."""
    from panns_core.data import synthetic as S
    from panns_core.data.resample import resample

    sr, n = 32000, 16000
    rng = np.random.default_rng(0)
    for synth in (S._steam, S._whistling, S._sizzle):
        for _ in range(5):
            x = S._unit_rms(synth(rng, n, sr))
            assert np.sqrt(np.mean(resample(x, sr, 8000) ** 2)) < 0.01
            assert np.sqrt(np.mean(resample(x, sr, 16000) ** 2)) > 0.9
