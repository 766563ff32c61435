"""Level 2 of the method: how much say each institution gets in the ensemble across them.

Two rules, both "AUC above chance (:data:`WEIGHT_FLOOR`), normalized":

* :func:`consortium_weights` (the hierarchical method): every institution's local ensemble is
  scored on the validation shares of *all* institutions. Each institution computes, on its own
  share, a histogram of every local ensemble's scores for its positive and negative examples;
  the committee adds the histograms (secure aggregation), and the AUC comes from the pooled
  histograms (:func:`efl_toolkit.federation.aggregation.pooled_auc`, exact up to the bin
  width). No institution's own score or labels are revealed, and one tiny, skewed share can no
  longer zero a good institution.
* :func:`level2_weights` (``ensemble_only``, the first design): the AUC an institution reports on
  its OWN validation share, which the consortium has to take on trust.

The weighted mean itself is computed under secret sharing by the committee
(:func:`efl_toolkit.secure.committee_ensemble`).

Example:
    >>> level2_weights([], {}, 2)
    {}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from efl_toolkit.data.institution import Institution
from efl_toolkit.ensemble import weights_from_scores
from efl_toolkit.federation.aggregation import (
    SumFn,
    pooled_auc,
    pooled_histograms,
    youden_threshold,
)
from efl_toolkit.federation.level1 import LocalResult
from efl_toolkit.training import evaluate, predict_proba

#: Level-2 weights: each institution's own validation AUC above this floor (chance level).
WEIGHT_FLOOR = 0.5


def own_validation_auc(institution: Institution, result: LocalResult, n_classes: int) -> float:
    """The level-1 AUC an institution measures on its OWN validation share (0.5 if undefined).

    Only the institution itself can compute this (no data leaves it); a consortium has to take
    its word for it, which is why notebook 07 shows what a lying institution can do.

    Example:
        >>> import jax
        >>> from efl_toolkit.config import TrainConfig
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> from efl_toolkit.federation.level1 import train_institution
        >>> ds = load_dataset("breastmnist")
        >>> inst = make_institutions(ds, 2, capacities=["tiny", "tiny"], seed=0)[0]
        >>> res = train_institution(inst, ds, TrainConfig(epochs=1), jax.random.key(0))
        >>> 0.0 <= own_validation_auc(inst, res, ds.n_classes) <= 1.0
        True
    """
    probs = np.mean([predict_proba(t.model, institution.val.images) for t in result.trained],
                    axis=0)
    auc = evaluate(probs, institution.val.labels, n_classes, warn=False).auc
    return WEIGHT_FLOOR if np.isnan(auc) else float(auc)


def level2_weights(institutions: Sequence[Institution], alone: Mapping[str, LocalResult],
                   n_classes: int) -> dict[str, float]:
    """Each institution's level-2 weight: its own validation AUC above chance, normalized.

    Scores at or below chance (AUC 0.5) get almost no say.

    Example:
        >>> level2_weights([], {}, 2)
        {}
    """
    if not institutions:
        return {}
    scores = [own_validation_auc(inst, alone[inst.id], n_classes) for inst in institutions]
    weights = weights_from_scores(scores, floor=WEIGHT_FLOOR)
    return {inst.id: float(w) for inst, w in zip(institutions, weights, strict=True)}


def consortium_validation_auc(predictors: Mapping[str, Callable[[np.ndarray], np.ndarray]],
                              institutions: Sequence[Institution], n_classes: int,
                              sum_fn: SumFn) -> dict[str, float]:
    """Each local ensemble's AUC on the pooled validation shares of all institutions, securely.

    Args:
        predictors: ``{institution: images -> probabilities}``: each local ensemble (its models
            are shared with the consortium for scoring; data never leaves an institution).
        institutions: Whose validation shares score them.
        n_classes: Number of classes.
        sum_fn: Secure aggregation (:func:`efl_toolkit.federation.aggregation.secure_aggregation`).

    Returns:
        ``{institution: pooled validation AUC}`` (NaN where undefined).
    """
    return pooled_auc(predictors, [(i.id, i.val) for i in institutions], n_classes, sum_fn)


def consortium_class_prior(institutions: Sequence[Institution], n_classes: int,
                           sum_fn: SumFn) -> np.ndarray:
    """The class frequencies of all institutions' training shares pooled, securely.

    Each institution gives its own class frequencies with its ``n_train`` as public weight; the
    committee's weighted mean is the pooled prior, with no institution's counts revealed. One
    example per class is added (Laplace smoothing) so no class has prior 0.

    Example:
        >>> from efl_toolkit.federation.aggregation import plaintext_aggregation
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> ds = load_dataset("breastmnist")
        >>> consortium_class_prior(make_institutions(ds, 3, seed=0), 2,
        ...                        plaintext_aggregation).round(3).tolist()
        [0.268, 0.732]
    """
    vectors, weights = {}, {}
    for inst in institutions:
        if inst.n_train:
            vectors[inst.id] = inst.train.class_counts(n_classes) / inst.n_train
            weights[inst.id] = float(inst.n_train)
    mean, included = sum_fn(vectors, weights, ())
    counts = mean * sum(weights[i] for i in included) + 1.0
    return counts / counts.sum()


def operating_point(predict: Callable[[np.ndarray], np.ndarray],
                    institutions: Sequence[Institution], n_classes: int, sum_fn: SumFn,
                    prior: np.ndarray) -> np.ndarray:
    """The level-2 decision rule as an effective class prior for :func:`prior_corrected`.

    Two classes: the threshold ``t`` on the positive-class score that maximizes Youden's
    ``J = TPR - FPR`` (the balanced-accuracy optimum) on the pooled validation shares, from
    histograms the committee sums (:func:`~efl_toolkit.federation.aggregation.youden_threshold`)
    ; returned as ``[1 - t, t]`` (``p_1 >= t`` predicts positive). More classes: ``prior``.
    """
    if n_classes != 2:
        return np.asarray(prior, dtype=np.float64)
    hist = pooled_histograms({"ensemble": predict}, [(i.id, i.val) for i in institutions],
                             n_classes, sum_fn)["ensemble"]
    t = min(max(youden_threshold(hist), 1e-3), 1 - 1e-3)
    return np.array([1.0 - t, t])


def consortium_weights(scores: Mapping[str, float]) -> dict[str, float]:
    """Level-2 weights from consortium validation AUCs: above chance, normalized.

    Example:
        >>> {k: round(v, 3) for k, v in consortium_weights({"a": 0.8, "b": 0.7,
        ...                                                   "c": float("nan")}).items()}
        {'a': 0.6, 'b': 0.4, 'c': 0.0}
    """
    names = list(scores)
    values = [WEIGHT_FLOOR if np.isnan(scores[n]) else scores[n] for n in names]
    weights = weights_from_scores(values, floor=WEIGHT_FLOOR)
    return {n: float(w) for n, w in zip(names, weights, strict=True)}
