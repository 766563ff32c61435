"""Hierarchical ensemble: each institution combines its own models, then institutions combine.

Level 1 happens inside one institution (its models never leave it, so plaintext is fine).
Level 2 combines the institutions' level-1 probabilities; in plaintext here, or privately with
:func:`efl_toolkit.secure.secure_hierarchical_ensemble`, which reuses level 1 from this module.

Example:
    >>> import numpy as np
    >>> from efl_toolkit.ensemble import hierarchical_ensemble
    >>> models = {
    ...     "hospital-a": [np.array([[0.9, 0.1]]), np.array([[0.7, 0.3]])],  # two models
    ...     "hospital-b": [np.array([[0.2, 0.8]])],                          # one model
    ... }
    >>> h = hierarchical_ensemble(models, level2_weights={"hospital-a": 1, "hospital-b": 3})
    >>> h.level1["hospital-a"].tolist()
    [[0.8, 0.2]]
    >>> h.probabilities.round(3).tolist(), h.labels.tolist()
    ([[0.35, 0.65]], [1])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from efl_toolkit.ensemble.combine import (
    METHODS,
    EnsembleInputError,
    check_predictions,
    combine,
)


@dataclass(frozen=True)
class HierarchicalEnsemble:
    """Both levels of a hierarchical ensemble.

    Attributes:
        institution_ids: Institutions in level-2 order.
        level1: Each institution's own combined probabilities ``[n, C]``.
        probabilities: Level-2 scores ``[n, C]`` (mean probabilities or vote shares).
        labels: Level-2 predicted classes ``[n]`` (ties: lowest class index).
        level2_weights: Normalized institution weights used at level 2.
        level1_method: Rule used inside each institution.
        level2_method: Rule used across institutions.
    """

    institution_ids: tuple[str, ...]
    level1: dict[str, np.ndarray]
    probabilities: np.ndarray
    labels: np.ndarray
    level2_weights: np.ndarray
    level1_method: str
    level2_method: str


def local_ensemble(model_probs: Sequence, method: str = "mean", weights=None) -> np.ndarray:
    """Level 1: one institution combines its own models' probabilities.

    Args:
        model_probs: The institution's models' ``[n, C]`` probability matrices.
        method: ``"mean"``, ``"weighted"`` or ``"vote"`` (vote shares are returned).
        weights: One weight per model for ``weighted``/``vote``.

    Example:
        >>> local_ensemble([[[0.9, 0.1]], [[0.7, 0.3]]]).tolist()
        [[0.8, 0.2]]
    """
    named = {f"model-{i}": probs for i, probs in enumerate(model_probs)}
    return combine(named, method, weights).probabilities


def level1_ensembles(models_by_institution: Mapping[str, Sequence], method: str = "mean",
                     weights: Mapping[str, Sequence[float]] | None = None
                     ) -> dict[str, np.ndarray]:
    """Runs :func:`local_ensemble` for every institution; errors name the institution.

    Example:
        >>> level1_ensembles({"a": [[[1.0, 0.0]], [[0.0, 1.0]]]})["a"].tolist()
        [[0.5, 0.5]]
    """
    if not isinstance(models_by_institution, Mapping) or not models_by_institution:
        raise EnsembleInputError("models_by_institution must be a non-empty dict "
                                 "{institution id: [model probability matrices]}")
    out = {}
    for inst, models in models_by_institution.items():
        if isinstance(models, np.ndarray) and models.ndim == 2:
            models = [models]
        try:
            inst_weights = None if weights is None else weights.get(inst)
            out[str(inst)] = local_ensemble(models, method, inst_weights)
        except EnsembleInputError as err:
            raise EnsembleInputError(f"institution {inst!r}, level 1: {err}") from None
    return out


def hierarchical_ensemble(models_by_institution: Mapping[str, Sequence], *,
                          level1: str = "mean",
                          level1_weights: Mapping[str, Sequence[float]] | None = None,
                          level2: str = "weighted", level2_weights=None) -> HierarchicalEnsemble:
    """Two-level plaintext ensemble: inside each institution, then across institutions.

    Args:
        models_by_institution: ``{institution id: [model probs [n, C], ...]}`` (a single array
            counts as one model).
        level1: Rule inside an institution (one of ``mean``, ``weighted``, ``vote``).
        level1_weights: ``{institution id: [weight per model]}`` for level 1.
        level2: Rule across institutions (one of ``mean``, ``weighted``, ``vote``).
        level2_weights: Institution weights (list in dict order, or dict by id), e.g. from their
            validation scores or data sizes; ``None`` means equal.

    Raises:
        EnsembleInputError: Unknown rule, bad matrices (naming the institution), or institutions
            that disagree on the number of queries or classes.

    Example:
        >>> h = hierarchical_ensemble({"a": [[[0.6, 0.4]]], "b": [[[0.0, 1.0]]]}, level2="vote")
        >>> h.labels.tolist()  # one vote each: tie -> lowest class
        [0]
    """
    for level in (level1, level2):
        if level not in METHODS:
            raise EnsembleInputError(f"unknown ensemble method {level!r}; choose one of {METHODS}")
    per_inst = level1_ensembles(models_by_institution, level1, level1_weights)
    names, _ = check_predictions(per_inst)
    top = combine(per_inst, level2, level2_weights)
    return HierarchicalEnsemble(
        institution_ids=names, level1=per_inst, probabilities=top.probabilities,
        labels=top.labels, level2_weights=top.weights, level1_method=level1,
        level2_method=level2)
