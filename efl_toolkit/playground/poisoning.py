"""A poisoned or a broken institution: what it does to the ensemble and to the weights.

Two ways to go wrong (:data:`POISON_KINDS`): a *malicious* member trains and validates on flipped
labels (its own validation score then looks honest, and it may simply lie about it), and a
*broken* member whose data export labelled everything as one class. :func:`poison` retrains only
that member; :func:`claims_rows` shows what each member reports about itself and the level-2
weight that earns it.

Example:
    >>> import numpy as np
    >>> from efl_toolkit.data import Split
    >>> s = Split(np.zeros((2, 2, 2, 1), np.float32), np.array([0, 1], np.int32))
    >>> poisoned_split(s, "flip_labels", 2).labels.tolist()
    [1, 0]
"""

from __future__ import annotations

import dataclasses

import numpy as np

from efl_toolkit.data import Split
from efl_toolkit.federation.level1 import train_institution
from efl_toolkit.playground.federation import Federation, own_validation_auc
from efl_toolkit.rng import experiment_keys, institution_key

#: The ways an institution can go wrong in :func:`poison`.
POISON_KINDS = {
    "flip_labels": "malicious: trains AND validates on labels shifted to the next class, so its "
                   "own validation score looks as good as an honest one",
    "one_class": "broken: a faulty export labels every image with the first class; its models "
                 "answer that class for everything, and its own validation score is undefined",
}


def poisoned_split(split: Split, kind: str, n_classes: int) -> Split:
    """``split`` as a poisoned (``flip_labels``) or broken (``one_class``) institution has it.

    Example:
        >>> s = Split(np.zeros((3, 2, 2, 1), np.float32), np.array([0, 1, 2], np.int32))
        >>> poisoned_split(s, "flip_labels", 3).labels.tolist()
        [1, 2, 0]
        >>> poisoned_split(s, "one_class", 3).labels.tolist()
        [0, 0, 0]
    """
    if kind == "flip_labels":
        return Split(split.images, ((split.labels + 1) % n_classes).astype(split.labels.dtype))
    if kind == "one_class":
        return Split(split.images, np.zeros_like(split.labels))
    raise ValueError(f"unknown poison kind {kind!r}; choose one of {sorted(POISON_KINDS)}")


def poison(fed: Federation, institution: str, kind: str, *, claim: float | None = None,
           progress: bool = False) -> Federation:
    """The federation with ``institution`` poisoned (see :data:`POISON_KINDS`); only it retrains.

    The altered institution trains with the same key as before. By default it reports the
    validation AUC it measures on its own (altered) validation share, as an honest member
    would; with ``claim`` it reports that number instead (a lie nobody can check directly).

    Raises:
        ValueError: Unknown institution (the known ones are named), unknown kind, or a claim
            outside [0, 1].

    Example:
        >>> bad = poison(fed, "hospital-c", "flip_labels", claim=0.95)  # doctest: +SKIP
        >>> bad.poisoned, bad.val_auc["hospital-c"]  # doctest: +SKIP
        ({'hospital-c': 'flip_labels'}, 0.95)
    """
    if institution not in fed.ids:
        raise ValueError(f"no institution {institution!r} in this federation; it has "
                         f"{list(fed.ids)}")
    if kind not in POISON_KINDS:
        raise ValueError(f"unknown poison kind {kind!r}; choose one of {sorted(POISON_KINDS)}")
    if claim is not None and not 0.0 <= claim <= 1.0:
        raise ValueError(f"{institution}: a claimed AUC must be in [0, 1], got {claim}")
    index = fed.ids.index(institution)
    n_classes = fed.dataset.n_classes
    old = fed.institutions[index]
    bad = dataclasses.replace(old, train=poisoned_split(old.train, kind, n_classes),
                              val=poisoned_split(old.val, kind, n_classes))
    result = train_institution(bad, fed.dataset, fed.config,
                               institution_key(experiment_keys(fed.config.seed).params, index),
                               progress=progress)
    measured = own_validation_auc(bad, result, n_classes)
    lies = {k: v for k, v in fed.lies.items() if k != institution}
    if claim is not None:
        lies[institution] = float(claim)
    return dataclasses.replace(
        fed, institutions=fed.institutions[:index] + (bad,) + fed.institutions[index + 1:],
        results={**fed.results, institution: result},
        val_auc={**fed.val_auc, institution: measured if claim is None else float(claim)},
        poisoned={**fed.poisoned, institution: kind}, lies=lies)


def claims_rows(fed: Federation) -> list[dict]:
    """What each institution reports about itself, the weight that earns it, and the truth.

    ``test_auc`` is the institution's real quality on the shared test split: known here
    because the course holds every label, not something a consortium sees.
    """
    weights = fed.val_weights
    return [{"institution": i, "status": fed.poisoned.get(i, "honest")
             + (" (lies)" if i in fed.lies else ""),
             "models": "+".join(fed.results[i].architectures),
             "own_val_auc (claimed)": fed.val_auc[i], "level2_weight": weights[i],
             "test_auc (truth)": fed.results[i].test.auc} for i in fed.ids]
