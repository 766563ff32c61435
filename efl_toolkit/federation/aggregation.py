"""What the committee adds up: pure aggregation functions apart from the code that runs rounds.

A :data:`SumFn` takes each institution's vector and public weight and returns the weighted mean
over the institutions it included. :func:`secure_aggregation` is the committee's secure
aggregation (:meth:`efl_toolkit.secure.Committee.sum`: additive shares, only the total is
opened); :func:`plaintext_aggregation` is the same mean in the clear (the reference the secure
one must match). Besides model updates the committee sums validation statistics, so a
consortium-wide score needs no institution to reveal its own: mean losses, and score histograms
from which a pooled AUC follows (:func:`auc_histograms`, :func:`auc_from_histograms`).

Example:
    >>> import numpy as np
    >>> h = auc_histograms(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), np.array([0, 1, 1]), 2)
    >>> auc_from_histograms(h)
    1.0
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

#: ``sum_fn(vectors: {name: 1-D array}, weights: {name: w}, absent: names) -> (mean, included)``
SumFn = Callable[[Mapping[str, np.ndarray], Mapping[str, float], Sequence[str]],
                 tuple[np.ndarray, tuple[str, ...]]]


def secure_aggregation(committee) -> SumFn:
    """A :data:`SumFn` that aggregates through a running committee (secure aggregation)."""
    def sum_fn(vectors, weights, absent):
        out = committee.sum(vectors, weights, absent=absent)
        return out.mean, out.run.included

    return sum_fn


def plaintext_aggregation(vectors: Mapping[str, np.ndarray], weights: Mapping[str, float],
                          absent: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """The same weighted mean in the clear (the reference secure aggregation must match).

    Example:
        >>> plaintext_aggregation({"a": np.ones(2), "b": np.zeros(2)}, {"a": 3, "b": 1}, [])
        (array([0.75, 0.75]), ('a', 'b'))
    """
    included = tuple(n for n in vectors if n not in absent)
    total = sum(weights[n] for n in included)
    return sum(weights[n] * np.asarray(vectors[n], np.float64) for n in included) / total, included


#: Score bins of the pooled AUC histograms (AUC error below 1 / HISTOGRAM_BINS).
HISTOGRAM_BINS = 200


def auc_histograms(probs: np.ndarray, labels: np.ndarray, n_classes: int,
                   bins: int = HISTOGRAM_BINS) -> np.ndarray:
    """Counts of one-vs-rest scores: ``[classes scored, 2 (negatives, positives), bins]``.

    Binary tasks score the positive class only (as MedMNIST's AUC); more classes score each.

    Example:
        >>> auc_histograms(np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 1]), 2, bins=4)[0]
        array([[1., 0., 0., 0.],
               [0., 0., 0., 1.]])
    """
    classes = [1] if n_classes == 2 else list(range(n_classes))
    out = np.zeros((len(classes), 2, bins))
    for k, c in enumerate(classes):
        idx = np.minimum((np.asarray(probs)[:, c] * bins).astype(int), bins - 1)
        positive = np.asarray(labels) == c
        out[k, 0] = np.bincount(idx[~positive], minlength=bins)
        out[k, 1] = np.bincount(idx[positive], minlength=bins)
    return out


def auc_from_histograms(hist: np.ndarray) -> float:
    """Macro AUC from :func:`auc_histograms` counts (ties within a bin count one half).

    Example:
        >>> h = auc_histograms(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]),
        ...                    np.array([0, 1, 1]), 2)
        >>> auc_from_histograms(h)
        1.0
    """
    aucs = []
    for neg, pos in np.asarray(hist, dtype=np.float64):
        if neg.sum() == 0 or pos.sum() == 0:
            continue
        below = np.cumsum(neg) - neg                 # negatives in lower bins
        pairs = float(np.sum(pos * (below + 0.5 * neg)))
        aucs.append(pairs / (neg.sum() * pos.sum()))
    return float(np.mean(aucs)) if aucs else float("nan")


def pooled_histograms(predictors: Mapping[str, Callable[[np.ndarray], np.ndarray]], shares,
                      n_classes: int, sum_fn: SumFn) -> dict[str, np.ndarray]:
    """Each predictor's :func:`auc_histograms` summed over the institutions' shares, securely.

    Args:
        predictors: ``{name: images -> probabilities}``.
        shares: ``(institution id, validation Split)`` pairs; each computes its histograms on
            its own share (empty shares are skipped).
        n_classes: Number of classes.
        sum_fn: The aggregation (secure or plaintext).

    Returns:
        ``{name: pooled counts [classes scored, 2, bins]}`` (all zero without any share).
    """
    names = list(predictors)
    classes = 1 if n_classes == 2 else n_classes
    vectors, weights = {}, {}
    for inst_id, split in shares:
        if len(split) == 0:
            continue
        hists = [auc_histograms(predictors[n](split.images), split.labels, n_classes)
                 for n in names]
        vectors[inst_id] = np.concatenate([h.ravel() for h in hists]) / len(split)
        weights[inst_id] = float(len(split))
    if not vectors:
        return {n: np.zeros((classes, 2, HISTOGRAM_BINS)) for n in names}
    mean, included = sum_fn(vectors, weights, ())
    pooled = np.rint(mean * sum(weights[i] for i in included)).reshape(len(names), classes, 2,
                                                                      -1)
    return {n: pooled[k] for k, n in enumerate(names)}


def pooled_auc(predictors: Mapping[str, Callable[[np.ndarray], np.ndarray]], shares,
               n_classes: int, sum_fn: SumFn) -> dict[str, float]:
    """Each predictor's AUC on the pooled shares (see :func:`pooled_histograms`)."""
    return {n: auc_from_histograms(h)
            for n, h in pooled_histograms(predictors, shares, n_classes, sum_fn).items()}


def youden_threshold(hist: np.ndarray) -> float:
    """The positive-class score threshold (a bin edge) with the largest ``TPR - FPR``.

    ``hist``: binary :func:`auc_histograms` counts ``[1, 2, bins]``. Among equally good edges
    the one closest to 0.5 is taken; 0.5 when either class is absent.

    Example:
        >>> h = auc_histograms(np.array([[0.8, 0.2], [0.7, 0.3], [0.6, 0.4]]),
        ...                    np.array([0, 0, 1]), 2, bins=10)
        >>> youden_threshold(h)
        0.4
    """
    neg, pos = np.asarray(hist, dtype=np.float64)[0]
    if neg.sum() == 0 or pos.sum() == 0:
        return 0.5
    bins = neg.size
    edges = np.arange(bins + 1) / bins                 # predict positive when score >= edge
    tpr = np.concatenate([np.cumsum(pos[::-1])[::-1], [0.0]]) / pos.sum()
    fpr = np.concatenate([np.cumsum(neg[::-1])[::-1], [0.0]]) / neg.sum()
    j = tpr - fpr
    best = np.flatnonzero(np.isclose(j, j.max()))
    return float(edges[best[np.argmin(np.abs(edges[best] - 0.5))]])
