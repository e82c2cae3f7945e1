"""Scores of the paper: mAP, mean AUC and d-prime for tagging; accuracy and mAP@3 for transfer.

The official evaluation (``pytorch/evaluate.py``) calls scikit-learn's
``average_precision_score`` / ``roc_auc_score`` with ``average=None`` on the
whole 527-column matrix. That crashes (or yields NaN) as soon as a class has no
positive clip in the evaluated set, which happens on every subset, on small
corpora and on capped smoke evaluations. Here a class is *evaluated* only when it
has at least one positive and one negative clip; the others are excluded from
the means, listed, and their per-class entries are ``None``. For the evaluated
classes every number equals scikit-learn's.

Two d-prime conventions exist and both are reported, labelled:

* ``d_prime`` (official, used by the paper's tables): ``d'(mean AUC)``;
* ``d_prime_mean_per_class``: the mean over classes of ``d'(AUC_k)``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

AUC_CLIP = 1e-7
"""An AUC of exactly 0 or 1 maps to an infinite d-prime; it is clipped this far from the edge
(d' = sqrt(2) * ppf(1 - 1e-7), about 7.35) so that statistics files stay valid JSON."""


def d_prime(auc):
    """Official d-prime ``sqrt(2) * Phi^-1(AUC)`` (``utilities.d_prime``), finite at AUC 0 and 1."""
    auc = np.clip(np.asarray(auc, dtype=np.float64), AUC_CLIP, 1.0 - AUC_CLIP)
    value = norm.ppf(auc) * math.sqrt(2.0)
    return float(value) if value.ndim == 0 else value


def _as_2d(name: str, array) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (clips, classes), got shape {array.shape}")
    return array


def _check_pair(target, output) -> tuple[np.ndarray, np.ndarray]:
    """Validate the (clips, classes) target/score pair and return float64 copies."""
    target = _as_2d("target", target)
    output = _as_2d("output", output)
    if target.shape != output.shape:
        raise ValueError(f"target shape {target.shape} differs from output shape {output.shape}")
    if target.shape[0] == 0:
        raise ValueError("cannot score an empty set (0 clips)")
    target = target.astype(np.float64)
    if not np.isin(target, (0.0, 1.0)).all():
        raise ValueError("target must be binary (0/1 or bool); got other values")
    output = output.astype(np.float64)
    if not np.isfinite(output).all():
        raise ValueError("output contains NaN or infinite scores")
    return target, output


def audio_tagging_metrics(target, output) -> dict:
    """mAP, mean AUC, both d-primes and per-class AP/AUC of multi-label clip scores.

    ``target``: (clips, classes) binary; ``output``: (clips, classes) scores.
    Returns a JSON-serialisable dict: ``mAP``, ``mAUC``, ``d_prime`` (official, from
    the mean AUC), ``d_prime_mean_per_class``, ``AP`` and ``AUC`` (lists with
    ``None`` for excluded classes), ``classes_evaluated`` (count),
    ``classes_without_positives`` and ``classes_without_negatives`` (index lists),
    ``num_clips``. With no evaluable class the means are ``None``.
    """
    target, output = _check_pair(target, output)
    positives = target.sum(axis=0)
    negatives = target.shape[0] - positives
    no_pos = np.flatnonzero(positives == 0)
    no_neg = np.flatnonzero((negatives == 0) & (positives > 0))
    cols = np.flatnonzero((positives > 0) & (negatives > 0))

    classes_num = target.shape[1]
    ap_list: list = [None] * classes_num
    auc_list: list = [None] * classes_num
    result = {
        "mAP": None,
        "mAUC": None,
        "d_prime": None,
        "d_prime_mean_per_class": None,
        "classes_evaluated": int(cols.size),
        "classes_without_positives": no_pos.tolist(),
        "classes_without_negatives": no_neg.tolist(),
        "num_clips": int(target.shape[0]),
    }
    if cols.size:
        ap = np.atleast_1d(average_precision_score(target[:, cols], output[:, cols], average=None))
        auc = np.atleast_1d(roc_auc_score(target[:, cols], output[:, cols], average=None))
        for k, a, u in zip(cols, ap, auc):
            ap_list[k] = float(a)
            auc_list[k] = float(u)
        mean_auc = float(np.mean(auc))
        result.update(
            mAP=float(np.mean(ap)),
            mAUC=mean_auc,
            d_prime=d_prime(mean_auc),
            d_prime_mean_per_class=float(np.mean(d_prime(auc))),
        )
    result["AP"] = ap_list
    result["AUC"] = auc_list
    return result


def _class_indices(target, classes_num: int) -> np.ndarray:
    """Accept class indices (N,) or one-hot / multi-hot rows (N, C); return indices (N,)."""
    target = np.asarray(target)
    if target.ndim == 2:
        if target.shape[1] != classes_num:
            raise ValueError(f"target has {target.shape[1]} columns, scores have {classes_num}")
        return target.argmax(axis=1)
    if target.ndim != 1:
        raise ValueError(f"target must be class indices (N,) or one-hot (N, C), got shape {target.shape}")
    if target.size and (target.min() < 0 or target.max() >= classes_num):
        raise ValueError(f"class index out of range [0, {classes_num})")
    return target.astype(np.int64)


def _scores(output) -> np.ndarray:
    output = _as_2d("output", output).astype(np.float64)
    if output.shape[0] == 0:
        raise ValueError("cannot score an empty set (0 clips)")
    return output


def accuracy(target, output) -> float:
    """Fraction of clips whose highest-scoring class is the true class (transfer tasks)."""
    output = _scores(output)
    labels = _class_indices(target, output.shape[1])
    if labels.shape[0] != output.shape[0]:
        raise ValueError(f"{labels.shape[0]} targets for {output.shape[0]} score rows")
    return float(np.mean(output.argmax(axis=1) == labels))


def map_at_k(target_indices, scores, k: int = 3) -> float:
    """DCASE 2018 Task 2 mean average precision at k (one true label per clip).

    Each clip scores ``1 / rank`` when its label is among the top ``k`` predictions
    (rank 1 = best; ties broken by class order) and 0 otherwise.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    scores = _scores(scores)
    labels = _class_indices(target_indices, scores.shape[1])
    if labels.shape[0] != scores.shape[0]:
        raise ValueError(f"{labels.shape[0]} targets for {scores.shape[0]} score rows")
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    hits = top == labels[:, None]
    ranks = np.arange(1, top.shape[1] + 1, dtype=np.float64)
    return float(np.mean((hits / ranks).sum(axis=1)))
