"""Level 2 of the method: how much say each institution gets in the ensemble across them.

Today's rule: an institution's weight is the AUC of its local ensemble on its OWN validation
share, above chance (:data:`WEIGHT_FLOOR`), normalized. The weighted mean itself is computed
under secret sharing by :func:`efl_toolkit.secure.secure_ensemble` (see
:func:`efl_toolkit.pipeline.run_secure_round`).

Example:
    >>> level2_weights([], {}, 2)
    {}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from efl_toolkit.data.institution import Institution
from efl_toolkit.ensemble import weights_from_scores
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
