"""Plaintext ensembles (mean, weighted mean, majority vote) and the hierarchical ensemble.

These are the references the secure ensemble (:mod:`efl_toolkit.secure`) is tested against.

Example:
    >>> from efl_toolkit.ensemble import combine
    >>> combine([[[0.9, 0.1]], [[0.2, 0.8]]], "mean").probabilities.tolist()
    [[0.55, 0.45]]
"""

from efl_toolkit.ensemble.combine import (
    METHODS,
    ROW_SUM_ATOL,
    Combined,
    EnsembleInputError,
    argmax_labels,
    check_predictions,
    check_probabilities,
    combine,
    majority_vote,
    mean_probabilities,
    normalize_weights,
    prior_corrected,
    vote_shares,
    weighted_mean,
    weights_from_scores,
    weights_from_sizes,
)
from efl_toolkit.ensemble.hierarchical import (
    HierarchicalEnsemble,
    hierarchical_ensemble,
    level1_ensembles,
    local_ensemble,
)

__all__ = [
    "prior_corrected",
    "METHODS",
    "ROW_SUM_ATOL",
    "Combined",
    "EnsembleInputError",
    "HierarchicalEnsemble",
    "argmax_labels",
    "check_predictions",
    "check_probabilities",
    "combine",
    "hierarchical_ensemble",
    "level1_ensembles",
    "local_ensemble",
    "majority_vote",
    "mean_probabilities",
    "normalize_weights",
    "vote_shares",
    "weighted_mean",
    "weights_from_scores",
    "weights_from_sizes",
]
