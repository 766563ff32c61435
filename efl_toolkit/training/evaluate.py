"""Evaluation of class probabilities: accuracy, AUC, per-class recall, confusion matrix.

AUC follows MedMNIST: for two classes the ROC AUC of the positive-class probability; for more,
the macro average of one-vs-rest AUCs. A class with no example in ``labels`` has no defined
one-vs-rest AUC (and no recall): it is left out of the macro average with a warning, and its
recall is NaN. If fewer than two classes are present at all, the AUC is NaN.

Example:
    >>> import numpy as np
    >>> from efl_toolkit.training.evaluate import evaluate
    >>> probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8]])
    >>> result = evaluate(probs, np.array([0, 1, 1, 1]), n_classes=2)
    >>> result.accuracy, result.auc
    (0.75, 1.0)
    >>> result.confusion_matrix.tolist()
    [[1, 0], [1, 2]]
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score


@dataclass(frozen=True)
class EvaluationResult:
    """Metrics of one set of predictions.

    Attributes:
        accuracy: Share of argmax predictions equal to the label.
        auc: ROC AUC (binary) or macro one-vs-rest AUC; NaN when undefined.
        per_class_recall: ``[n_classes]`` recall of each class (NaN for absent classes).
        confusion_matrix: ``int64 [n_classes, n_classes]``; rows are true classes, columns
            predicted classes.
        n: Number of evaluated examples.
    """

    accuracy: float
    auc: float
    per_class_recall: np.ndarray
    confusion_matrix: np.ndarray
    n: int

    @property
    def balanced_accuracy(self) -> float:
        """Mean recall over the classes present in the labels."""
        present = self.per_class_recall[~np.isnan(self.per_class_recall)]
        return float(present.mean()) if present.size else math.nan

    def to_dict(self) -> dict:
        """JSON-ready plain dict (NaN becomes ``None``).

        Example:
            >>> r = evaluate(np.array([[0.8, 0.2], [0.1, 0.9]]), np.array([0, 1]), 2)
            >>> r.to_dict()["per_class_recall"]
            [1.0, 1.0]
        """
        def clean(value: float):
            return None if math.isnan(value) else float(value)

        return {
            "accuracy": clean(self.accuracy),
            "auc": clean(self.auc),
            "balanced_accuracy": clean(self.balanced_accuracy),
            "per_class_recall": [clean(v) for v in self.per_class_recall],
            "confusion_matrix": self.confusion_matrix.tolist(),
            "n": self.n,
        }


def confusion_matrix(predictions: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]`` pairs.

    Example:
        >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]), 2).tolist()
        [[1, 1], [0, 1]]
    """
    flat = np.asarray(labels, np.int64) * n_classes + np.asarray(predictions, np.int64)
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def auc_score(probs: np.ndarray, labels: np.ndarray, n_classes: int, *, warn: bool = True
              ) -> float:
    """Binary ROC AUC, or macro one-vs-rest AUC over the classes present in ``labels``.

    Example:
        >>> p = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7], [0.4, 0.4, 0.2]])
        >>> round(auc_score(p, np.array([0, 1, 2, 0]), 3), 4)
        1.0
    """
    present = np.unique(labels)
    if present.size < 2:
        if warn:
            warnings.warn(f"AUC is undefined: the labels hold only class(es) {present.tolist()}",
                          RuntimeWarning, stacklevel=2)
        return math.nan
    if n_classes == 2:
        return float(roc_auc_score(labels, probs[:, 1]))
    missing = sorted(set(range(n_classes)) - set(present.tolist()))
    if missing and warn:
        warnings.warn(f"classes {missing} have no example in the labels: the macro one-vs-rest "
                      "AUC averages over the other classes only", RuntimeWarning, stacklevel=2)
    scores = [roc_auc_score(labels == k, probs[:, k]) for k in present.tolist()]
    return float(np.mean(scores))


def evaluate(probs: np.ndarray, labels: np.ndarray, n_classes: int, *, warn: bool = True
             ) -> EvaluationResult:
    """Scores class probabilities against integer labels.

    Args:
        probs: ``[N, n_classes]`` class probabilities (rows summing to 1).
        labels: ``[N]`` integer class indices.
        n_classes: Number of classes of the task (columns of ``probs``).
        warn: Warn when the AUC is undefined or averages over fewer classes.

    Returns:
        An :class:`EvaluationResult`.

    Raises:
        ValueError: Shapes that do not match, an empty input or labels outside the classes.

    Example:
        >>> evaluate(np.array([[0.2, 0.8], [0.6, 0.4]]), np.array([1, 1]), 2, warn=False).auc
        nan
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if probs.ndim != 2 or probs.shape[1] != n_classes:
        raise ValueError(f"probs must have shape [N, {n_classes}], got {probs.shape}")
    if probs.shape[0] != labels.shape[0]:
        raise ValueError(f"{probs.shape[0]} probability rows but {labels.shape[0]} labels")
    if labels.size == 0:
        raise ValueError("cannot evaluate an empty set of predictions")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels must lie in [0, {n_classes}), found "
                         f"[{labels.min()}, {labels.max()}]")
    if not np.all(np.isfinite(probs)):
        raise ValueError("probs contains NaN or infinite values")
    predictions = probs.argmax(axis=1)
    matrix = confusion_matrix(predictions, labels, n_classes)
    support = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, np.diag(matrix) / np.maximum(support, 1), np.nan)
    return EvaluationResult(
        accuracy=float(np.mean(predictions == labels)),
        auc=auc_score(probs, labels, n_classes, warn=warn),
        per_class_recall=recall.astype(np.float64),
        confusion_matrix=matrix,
        n=int(labels.size),
    )
