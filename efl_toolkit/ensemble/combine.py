"""Plaintext ensembles of class probabilities: the reference for every secure result.

Institutions that train different architectures cannot average their weights, so they combine
*predictions*: each member (a model, or a whole institution) gives a probability matrix
``[n_queries, n_classes]`` whose rows sum to 1. This module offers the three classic rules:

* :func:`mean_probabilities`: the plain average of the members' probabilities;
* :func:`weighted_mean`: an average with one non-negative weight per member, e.g. from
  :func:`weights_from_scores` (own validation score) or :func:`weights_from_sizes` (data size);
* :func:`majority_vote`: each member votes for its argmax class (optionally weighted).

Ties in every argmax are broken towards the **lowest class index**, exactly like ``np.argmax``;
the secure ensemble uses the same rule, so plaintext and secure labels can be compared exactly.

Example:
    >>> import numpy as np
    >>> from efl_toolkit.ensemble import weighted_mean, majority_vote, argmax_labels
    >>> a = np.array([[0.9, 0.1], [0.4, 0.6]])
    >>> b = np.array([[0.2, 0.8], [0.3, 0.7]])
    >>> weighted_mean([a, b], [3, 1]).round(3).tolist()
    [[0.725, 0.275], [0.375, 0.625]]
    >>> argmax_labels(weighted_mean([a, b], [3, 1])).tolist()
    [0, 1]
    >>> majority_vote([a, b]).tolist()  # one vote each on row 0: tie -> lowest class
    [0, 1]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: Rows of a probability matrix must sum to 1 within this tolerance.
ROW_SUM_ATOL = 1e-3

METHODS = ("mean", "weighted", "vote")


class EnsembleInputError(ValueError):
    """Raised when predictions or weights cannot be combined (names the member and problem)."""


def check_probabilities(probs, *, name: str = "predictions", atol: float = ROW_SUM_ATOL
                        ) -> np.ndarray:
    """Validates one probability matrix and returns it as ``float64 [n, C]``.

    Args:
        probs: Array-like of shape ``[n_queries, n_classes]``.
        name: Used in error messages (e.g. the institution id).
        atol: Tolerance on the row sums.

    Raises:
        EnsembleInputError: If the matrix is not 2-D, empty, not finite, negative, or a row does
            not sum to about 1 (the first bad row is named).

    Example:
        >>> check_probabilities([[0.5, 0.5]]).dtype
        dtype('float64')
    """
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] < 2:
        raise EnsembleInputError(
            f"{name}: expected a probability matrix [n_queries >= 1, n_classes >= 2], "
            f"got shape {arr.shape}")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise EnsembleInputError(f"{name}: row {int(np.argmax(bad))} is not finite (NaN or inf)")
    neg = (arr < 0).any(axis=1)
    if neg.any():
        row = int(np.argmax(neg))
        raise EnsembleInputError(f"{name}: row {row} has a negative probability "
                                 f"({arr[row].min():.4g})")
    sums = arr.sum(axis=1)
    off = np.abs(sums - 1.0) > atol
    if off.any():
        row = int(np.argmax(off))
        raise EnsembleInputError(f"{name}: row {row} sums to {sums[row]:.6g}, not 1 "
                                 f"(tolerance {atol}); pass probabilities, not logits")
    return arr


def check_predictions(predictions, *, atol: float = ROW_SUM_ATOL
                      ) -> tuple[tuple[str, ...], np.ndarray]:
    """Validates the members' probability matrices and stacks them.

    Args:
        predictions: A sequence of ``[n, C]`` arrays (members named ``member-0``...) or a mapping
            ``{name: [n, C] array}`` (insertion order kept).
        atol: Tolerance on the row sums.

    Returns:
        ``(names, stacked)`` with ``stacked`` of shape ``[M, n, C]`` (float64).

    Raises:
        EnsembleInputError: On an empty list, a bad matrix, or members that disagree on the
            number of queries or classes (both members are named).

    Example:
        >>> names, stacked = check_predictions({"a": [[1.0, 0.0]], "b": [[0.5, 0.5]]})
        >>> names, stacked.shape
        (('a', 'b'), (2, 1, 2))
    """
    if isinstance(predictions, Mapping):
        names = tuple(str(k) for k in predictions)
        arrays = list(predictions.values())
    elif isinstance(predictions, (Sequence, np.ndarray)):
        arrays = list(predictions)
        names = tuple(f"member-{i}" for i in range(len(arrays)))
    else:
        kind = type(predictions).__name__
        raise EnsembleInputError(f"predictions must be a list or dict of [n, C] arrays, got {kind}")
    if not arrays:
        raise EnsembleInputError("predictions is empty: need at least one member")
    checked = [check_probabilities(a, name=n, atol=atol)
               for n, a in zip(names, arrays, strict=True)]
    ref_name, ref = names[0], checked[0]
    for name, arr in zip(names[1:], checked[1:], strict=True):
        if arr.shape[1] != ref.shape[1]:
            raise EnsembleInputError(f"{name} has {arr.shape[1]} classes but {ref_name} has "
                                     f"{ref.shape[1]}: all members must share the class list")
        if arr.shape[0] != ref.shape[0]:
            raise EnsembleInputError(f"{name} has {arr.shape[0]} queries but {ref_name} has "
                                     f"{ref.shape[0]}: all members must answer the same queries")
    return names, np.stack(checked)


def normalize_weights(weights, n_members: int, *, names: Sequence[str] | None = None
                      ) -> np.ndarray:
    """Checks one non-negative weight per member and rescales them to sum to 1.

    Args:
        weights: ``None`` (equal weights), a sequence, or a mapping name -> weight (needs
            ``names``).
        n_members: Number of members.
        names: Member names, for mappings and error messages.

    Raises:
        EnsembleInputError: Wrong count, missing name, a negative or non-finite weight, or all
            weights zero.

    Weights are first scaled to a maximum of 1, so finite weights whose sum would overflow
    (three weights of ``1e308``) or underflow normalize like any others, and the plaintext and
    secure paths (which both call this) agree.

    Example:
        >>> normalize_weights([1, 3], 2).tolist()
        [0.25, 0.75]
        >>> normalize_weights([1e308, 1e308, 1e308], 3).round(3).tolist()
        [0.333, 0.333, 0.333]
    """
    names = tuple(names) if names is not None else tuple(f"member-{i}" for i in range(n_members))
    if weights is None:
        return np.full(n_members, 1.0 / n_members)
    if isinstance(weights, Mapping):
        missing = [n for n in names if n not in weights]
        if missing:
            raise EnsembleInputError(f"weights has no entry for {missing[0]!r}")
        weights = [weights[n] for n in names]
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.size != n_members:
        raise EnsembleInputError(f"got {w.size} weights for {n_members} members")
    for name, value in zip(names, w, strict=True):
        if not np.isfinite(value) or value < 0:
            raise EnsembleInputError(
                f"weight of {name} is {value}: weights must be finite and >= 0")
    largest = w.max()
    if largest <= 0:
        raise EnsembleInputError("all weights are zero")
    w = w / largest  # first scale to max 1: finite weights whose sum overflows stay exact
    return w / w.sum()


def weights_from_scores(scores, *, floor: float = 0.0) -> np.ndarray:
    """Weights proportional to each member's own validation score above ``floor``.

    With ``floor`` at chance level (e.g. 0.5 accuracy for two balanced classes) a member that is
    no better than chance gets (almost) no say. A tiny epsilon keeps every weight positive.

    Example:
        >>> weights_from_scores([0.9, 0.7], floor=0.5).round(3).tolist()
        [0.667, 0.333]
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not np.isfinite(s).all():
        raise EnsembleInputError(f"scores must be finite, got {s.tolist()}")
    return normalize_weights(np.maximum(s - floor, 1e-6), s.size)


def weights_from_sizes(sizes) -> np.ndarray:
    """Weights proportional to each member's number of training examples.

    Example:
        >>> weights_from_sizes([100, 300]).tolist()
        [0.25, 0.75]
    """
    return normalize_weights(np.asarray(sizes, dtype=np.float64), len(np.atleast_1d(sizes)))


def argmax_labels(probs) -> np.ndarray:
    """Predicted class per row; ties go to the lowest class index (``np.argmax``'s rule).

    Example:
        >>> argmax_labels([[0.5, 0.5], [0.2, 0.8]]).tolist()
        [0, 1]
    """
    return np.argmax(np.asarray(probs), axis=1).astype(np.int64)


def prior_corrected(probs, prior) -> np.ndarray:
    """Post-hoc logit adjustment: ``p_c / prior_c``, renormalized per row.

    Its argmax is the balanced decision (Menon et al. 2021, "Long-tail learning via logit
    adjustment", ICLR): a classifier whose probabilities follow the training prior then no
    longer favours the majority class, which is what balanced accuracy rewards. For two classes
    the transform is monotone in ``p_1``, so the AUC is unchanged.

    Args:
        probs: ``[n, C]`` probabilities.
        prior: ``[C]`` class frequencies (positive; normalized here).

    Example:
        >>> prior_corrected([[0.7, 0.3]], [0.75, 0.25]).round(3).tolist()
        [[0.437, 0.562]]
    """
    p = np.asarray(probs, dtype=np.float64)
    pi = np.asarray(prior, dtype=np.float64)
    if pi.shape != (p.shape[-1],) or not np.all(np.isfinite(pi)) or (pi <= 0).any():
        raise ValueError(f"prior must be {p.shape[-1]} positive class frequencies, got "
                         f"{pi.tolist()}")
    adjusted = p / (pi / pi.sum())
    return adjusted / adjusted.sum(axis=-1, keepdims=True)


def mean_probabilities(predictions) -> np.ndarray:
    """Average of the members' probability matrices, ``[n, C]``.

    Example:
        >>> mean_probabilities([[[1.0, 0.0]], [[0.0, 1.0]]]).tolist()
        [[0.5, 0.5]]
    """
    _, stacked = check_predictions(predictions)
    return stacked.mean(axis=0)


def weighted_mean(predictions, weights=None) -> np.ndarray:
    """Weighted average of the members' probability matrices (weights rescaled to sum 1).

    Example:
        >>> weighted_mean([[[1.0, 0.0]], [[0.0, 1.0]]], [1, 3]).tolist()
        [[0.25, 0.75]]
    """
    names, stacked = check_predictions(predictions)
    w = normalize_weights(weights, len(names), names=names)
    return np.tensordot(w, stacked, axes=1)


def vote_shares(predictions, weights=None) -> np.ndarray:
    """Share of the (weighted) votes each class receives, ``[n, C]``; rows sum to 1.

    Example:
        >>> vote_shares([[[0.9, 0.1]], [[0.2, 0.8]], [[0.3, 0.7]]]).round(3).tolist()
        [[0.333, 0.667]]
    """
    names, stacked = check_predictions(predictions)
    w = normalize_weights(weights, len(names), names=names)
    n_classes = stacked.shape[2]
    one_hot = np.eye(n_classes)[np.argmax(stacked, axis=2)]  # [M, n, C]
    return np.tensordot(w, one_hot, axes=1)


def majority_vote(predictions, weights=None) -> np.ndarray:
    """Class with the most (weighted) member votes; ties go to the lowest class index.

    Example:
        >>> majority_vote([[[0.9, 0.1]], [[0.2, 0.8]], [[0.3, 0.7]]]).tolist()
        [1]
    """
    return argmax_labels(vote_shares(predictions, weights))


@dataclass(frozen=True)
class Combined:
    """The result of combining members: scores per class and the predicted labels.

    Attributes:
        probabilities: ``[n, C]``: (weighted) mean probabilities, or vote shares for ``vote``.
        labels: ``[n]`` predicted classes.
        method: ``"mean"``, ``"weighted"`` or ``"vote"``.
        weights: The normalized member weights used.
    """

    probabilities: np.ndarray
    labels: np.ndarray
    method: str
    weights: np.ndarray


def combine(predictions, method: str = "mean", weights=None) -> Combined:
    """Combines members with one of :data:`METHODS` and returns scores and labels.

    Args:
        predictions: List or dict of ``[n, C]`` probability matrices.
        method: ``"mean"`` (weights ignored), ``"weighted"`` or ``"vote"`` (optionally weighted).
        weights: Member weights for ``weighted`` and ``vote``.

    Example:
        >>> combine([[[0.9, 0.1]], [[0.2, 0.8]]], "weighted", [1, 1]).labels.tolist()
        [0]
    """
    if method not in METHODS:
        raise EnsembleInputError(f"unknown ensemble method {method!r}; choose one of {METHODS}")
    names, stacked = check_predictions(predictions)
    w = normalize_weights(None if method == "mean" else weights, len(names), names=names)
    vote = method == "vote"
    probs = vote_shares(list(stacked), w) if vote else np.tensordot(w, stacked, axes=1)
    return Combined(probabilities=probs, labels=argmax_labels(probs), method=method, weights=w)
