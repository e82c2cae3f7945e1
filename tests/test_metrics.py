"""Metrics against scikit-learn, the official d-prime, edge cases, transfer metrics, mixup lambdas."""

import json
import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

from panns_core.metrics import accuracy, audio_tagging_metrics, d_prime, map_at_k
from panns_core.mixup import Mixup


def _random_set(seed=0, clips=60, classes=7):
    rng = np.random.RandomState(seed)
    target = (rng.rand(clips, classes) < 0.3).astype(np.float32)
    output = np.clip(0.3 * target + 0.7 * rng.rand(clips, classes), 0, 1).astype(np.float32)
    return target, output


def test_equals_sklearn_on_every_class():
    target, output = _random_set()
    m = audio_tagging_metrics(target, output)
    ap = average_precision_score(target, output, average=None)
    auc = roc_auc_score(target, output, average=None)
    assert m["AP"] == [float(x) for x in ap]
    assert m["AUC"] == [float(x) for x in auc]
    assert m["mAP"] == float(np.mean(ap))
    assert m["mAUC"] == float(np.mean(auc))
    assert m["d_prime"] == pytest.approx(norm.ppf(np.mean(auc)) * math.sqrt(2), abs=1e-12)
    assert m["d_prime_mean_per_class"] == pytest.approx(np.mean(norm.ppf(auc) * math.sqrt(2)), abs=1e-12)
    assert m["classes_evaluated"] == 7
    assert m["classes_without_positives"] == [] and m["num_clips"] == 60


def test_classes_without_positives_or_negatives_are_excluded_not_nan():
    target, output = _random_set(seed=1, classes=6)
    target[:, 2] = 0  # no positives
    target[:, 4] = 0
    target[:, 5] = 1  # no negatives
    m = audio_tagging_metrics(target, output)
    keep = [0, 1, 3]
    ap = average_precision_score(target[:, keep], output[:, keep], average=None)
    auc = roc_auc_score(target[:, keep], output[:, keep], average=None)
    assert m["classes_without_positives"] == [2, 4]
    assert m["classes_without_negatives"] == [5]
    assert m["classes_evaluated"] == 3
    assert [m["AP"][k] for k in (2, 4, 5)] == [None, None, None]
    assert [m["AUC"][k] for k in keep] == [float(x) for x in auc]
    assert m["mAP"] == float(np.mean(ap))
    assert m["mAUC"] == float(np.mean(auc))
    assert not any(isinstance(v, float) and math.isnan(v) for v in m.values())
    json.dumps(m, allow_nan=False)  # statistics lines must stay strict JSON


def test_no_evaluable_class_gives_none_means_not_crash():
    m = audio_tagging_metrics(np.zeros((4, 3)), np.random.rand(4, 3))
    assert m["mAP"] is None and m["mAUC"] is None and m["d_prime"] is None
    assert m["classes_without_positives"] == [0, 1, 2] and m["classes_evaluated"] == 0


def test_perfect_scores_give_finite_d_prime():
    target = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=float)
    m = audio_tagging_metrics(target, target)
    assert m["mAP"] == 1.0 and m["mAUC"] == 1.0
    assert math.isfinite(m["d_prime"]) and m["d_prime"] > 7
    assert d_prime(0.5) == 0.0
    assert d_prime(0.973) == pytest.approx(2.732, abs=1e-2)  # CNN14 row (AUC printed rounded)


@pytest.mark.parametrize(
    "target, output, message",
    [
        (np.zeros((3, 2)), np.zeros((3, 3)), "differs"),
        (np.zeros(3), np.zeros(3), "2-D"),
        (np.full((2, 2), 2.0), np.zeros((2, 2)), "binary"),
        (np.zeros((2, 2)), np.array([[0, np.nan], [0, 0]]), "NaN"),
        (np.zeros((0, 2)), np.zeros((0, 2)), "empty"),
    ],
)
def test_bad_input_raises_clear_errors(target, output, message):
    with pytest.raises(ValueError, match=message):
        audio_tagging_metrics(target, output)


def test_accuracy_with_indices_and_one_hot():
    scores = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    labels = np.array([1, 0, 1, 0])
    assert accuracy(labels, scores) == 0.75
    assert accuracy(np.eye(3)[labels], scores) == 0.75
    with pytest.raises(ValueError, match="out of range"):
        accuracy(np.array([0, 1, 2, 3]), scores)


def test_map_at_3_matches_dcase_definition():
    scores = np.array(
        [
            [0.9, 0.5, 0.1, 0.0],  # label 0 at rank 1 -> 1
            [0.9, 0.5, 0.1, 0.0],  # label 1 at rank 2 -> 1/2
            [0.9, 0.5, 0.1, 0.0],  # label 2 at rank 3 -> 1/3
            [0.9, 0.5, 0.1, 0.0],  # label 3 at rank 4 -> 0
        ]
    )
    labels = np.array([0, 1, 2, 3])
    assert map_at_k(labels, scores, k=3) == pytest.approx((1 + 1 / 2 + 1 / 3 + 0) / 4)
    assert map_at_k(labels, scores, k=1) == 0.25
    with pytest.raises(ValueError, match="k must be"):
        map_at_k(labels, scores, k=0)


def test_mixup_lambdas_follow_the_official_stream_and_resume():
    mixup = Mixup(1.0, random_seed=1234)
    lam = mixup.get_lambda(8)
    reference = np.random.RandomState(1234)
    expected = []
    for _ in range(4):
        v = reference.beta(1.0, 1.0, 1)[0]
        expected += [v, 1 - v]
    np.testing.assert_array_equal(lam, np.asarray(expected, dtype=np.float32))
    np.testing.assert_allclose(lam[0::2] + lam[1::2], 1.0, rtol=1e-6)

    state = json.loads(json.dumps(mixup.state_dict()))  # plain data, no numpy
    after = mixup.get_lambda(6)
    other = Mixup(1.0, random_seed=0)
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.get_lambda(6), after)
    with pytest.raises(ValueError, match="even"):
        mixup.get_lambda(3)
    with pytest.raises(ValueError, match="alpha"):
        Mixup(0.5).load_state_dict(state)
