"""Evaluation metrics against scikit-learn and hand-computed values."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from sklearn import metrics

from efl_toolkit.training.evaluate import auc_score, confusion_matrix, evaluate


def random_probs(n: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, n - n_classes)])
    logits = rng.normal(size=(n, n_classes)) + 1.5 * np.eye(n_classes)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probs, labels


def test_hand_computed_binary_example():
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3], [0.2, 0.8], [0.55, 0.45]])
    labels = np.array([0, 0, 1, 1, 1])
    result = evaluate(probs, labels, 2)
    assert result.accuracy == pytest.approx(2 / 5)  # predictions 0, 1, 0, 1, 0
    assert result.confusion_matrix.tolist() == [[1, 1], [2, 1]]
    assert result.per_class_recall.tolist() == pytest.approx([1 / 2, 1 / 3])
    # positive scores 0.3, 0.8, 0.45 vs negatives 0.1, 0.6: pairs won 1 + 2 + 1 = 4 of 6
    assert result.auc == pytest.approx(4 / 6)
    assert result.balanced_accuracy == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert result.n == 5


@pytest.mark.parametrize("n_classes", [2, 3, 7])
def test_metrics_agree_with_sklearn(n_classes):
    probs, labels = random_probs(300, n_classes, seed=n_classes)
    result = evaluate(probs, labels, n_classes)
    predictions = probs.argmax(axis=1)
    assert result.accuracy == pytest.approx(metrics.accuracy_score(labels, predictions))
    expected_auc = (metrics.roc_auc_score(labels, probs[:, 1]) if n_classes == 2 else
                    metrics.roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    assert result.auc == pytest.approx(expected_auc)
    assert np.allclose(result.per_class_recall,
                       metrics.recall_score(labels, predictions, average=None,
                                            labels=list(range(n_classes))))
    assert np.array_equal(result.confusion_matrix,
                          metrics.confusion_matrix(labels, predictions,
                                                   labels=list(range(n_classes))))
    assert result.balanced_accuracy == pytest.approx(
        metrics.balanced_accuracy_score(labels, predictions))


def test_absent_class_gives_nan_recall_and_a_warned_partial_macro_auc():
    probs, labels = random_probs(200, 4, seed=1)
    keep = labels != 2
    probs, labels = probs[keep], labels[keep]
    with pytest.warns(RuntimeWarning, match=r"classes \[2\] have no example"):
        result = evaluate(probs, labels, 4)
    assert math.isnan(result.per_class_recall[2])
    assert not np.isnan(result.per_class_recall[[0, 1, 3]]).any()
    expected = np.mean([metrics.roc_auc_score(labels == k, probs[:, k]) for k in (0, 1, 3)])
    assert result.auc == pytest.approx(expected)
    assert result.confusion_matrix[2].sum() == 0


def test_single_class_labels_give_nan_auc_with_a_warning_or_silently():
    probs = np.array([[0.3, 0.7], [0.6, 0.4]])
    with pytest.warns(RuntimeWarning, match="only class"):
        assert math.isnan(evaluate(probs, np.array([1, 1]), 2).auc)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(auc_score(probs, np.array([1, 1]), 2, warn=False))


def test_to_dict_is_json_ready_with_none_for_nan():
    result = evaluate(np.array([[0.2, 0.8], [0.4, 0.6]]), np.array([1, 1]), 2, warn=False)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["auc"] is None
    assert data["per_class_recall"] == [None, 1.0]
    assert data["confusion_matrix"] == [[0, 0], [0, 2]]
    assert data["accuracy"] == 1.0


def test_confusion_matrix_counts_pairs():
    assert confusion_matrix(np.array([2, 0, 2]), np.array([2, 1, 0]), 3).tolist() == [
        [0, 0, 1], [1, 0, 0], [0, 0, 1]]


@pytest.mark.parametrize("probs, labels, message", [
    (np.ones((3, 3)) / 3, np.array([0, 1, 2]), r"shape \[N, 2\]"),
    (np.ones((3, 2)) / 2, np.array([0, 1]), "3 probability rows but 2 labels"),
    (np.ones((2, 2)) / 2, np.array([0, 2]), r"labels must lie in \[0, 2\)"),
    (np.zeros((0, 2)), np.zeros(0), "empty"),
    (np.array([[np.nan, 1.0]]), np.array([0]), "NaN"),
])
def test_bad_input_is_rejected_with_a_clear_message(probs, labels, message):
    with pytest.raises(ValueError, match=message):
        evaluate(probs, labels, 2)
