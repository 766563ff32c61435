"""A trained federation the playground re-combines: institutions and their level-1 models.

:func:`train_federation` partitions the data as a configuration says and trains every
institution's own models once; everything else in :mod:`efl_toolkit.playground` reuses the
result. Sweeps use light models (:data:`LIGHT_TIERS`: an MLP and a logistic regression) so that a
whole federation trains in a second or two on a laptop.

Example:
    >>> light_capacities(3)
    ['small', 'tiny', 'small']
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from efl_toolkit.config import ExperimentConfig
from efl_toolkit.data import Dataset, Institution, load_dataset, make_institutions
from efl_toolkit.ensemble import weights_from_scores, weights_from_sizes
from efl_toolkit.federation.level1 import LocalResult, train_each_alone
from efl_toolkit.federation.level2 import WEIGHT_FLOOR, own_validation_auc
from efl_toolkit.rng import experiment_keys
from efl_toolkit.training import evaluate

#: Capacity tiers cycled over the institutions in sweeps: MLP + logistic, then logistic only.
LIGHT_TIERS = ("small", "tiny")


@dataclass(frozen=True)
class Federation:
    """Institutions with their trained level-1 models: everything the re-combinations need.

    Attributes:
        config: The configuration it was trained under.
        dataset: The dataset (its test split is the shared query set).
        institutions: The institutions, in order.
        results: Each institution's level-1 result (models, local-ensemble test probabilities).
        val_auc: Each institution's level-1 AUC on its OWN validation share: what it reports
            about itself (chance level 0.5 where undefined).
        poisoned: ``{institution: kind}`` of the institutions :func:`poison` altered.
        lies: ``{institution: claimed AUC}`` of institutions reporting a made-up validation AUC
            instead of the one they measured.
    """

    config: ExperimentConfig
    dataset: Dataset
    institutions: tuple[Institution, ...]
    results: dict[str, LocalResult]
    val_auc: dict[str, float]
    poisoned: dict[str, str] = dataclasses.field(default_factory=dict)
    lies: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(inst.id for inst in self.institutions)

    @property
    def test_probs(self) -> dict[str, np.ndarray]:
        """Each institution's level-1 probabilities on the shared test split."""
        return {i: self.results[i].test_probs for i in self.ids}

    @property
    def val_weights(self) -> dict[str, float]:
        """Level-2 weights from the self-reported validation AUCs (as in the pipeline)."""
        w = weights_from_scores([self.val_auc[i] for i in self.ids], floor=WEIGHT_FLOOR)
        return dict(zip(self.ids, w.tolist(), strict=True))

    @property
    def size_weights(self) -> dict[str, float]:
        """Level-2 weights proportional to the training-share sizes."""
        w = weights_from_sizes([inst.n_train for inst in self.institutions])
        return dict(zip(self.ids, w.tolist(), strict=True))


def light_capacities(n: int, tiers: Sequence[str] = LIGHT_TIERS) -> list[str]:
    """``tiers`` repeated to ``n`` institutions.

    Example:
        >>> light_capacities(3)
        ['small', 'tiny', 'small']
    """
    return list(itertools.islice(itertools.cycle(tiers), n))


def train_federation(config: ExperimentConfig, dataset: Dataset | None = None, *,
                     tiers: Sequence[str] | None = LIGHT_TIERS,
                     progress: bool = False) -> Federation:
    """Partitions the data as ``config`` says and trains every institution's level-1 models.

    Args:
        config: The experiment configuration (partition, alpha, institutions, training, seed).
        dataset: The dataset (default: loaded from ``config.dataset``).
        tiers: Capacity tiers cycled over the institutions (default light: logistic and MLP);
            ``None`` keeps the preset's spread of tiers, exactly as the pipeline does.
        progress: Show a progress bar per model.

    Example:
        >>> fed = train_federation(get_config(n_institutions=2))  # doctest: +SKIP
        >>> fed.ids  # doctest: +SKIP
        ('hospital-a', 'hospital-b')
    """
    dataset = dataset if dataset is not None else load_dataset(config.dataset)
    n = config.n_institutions
    institutions = tuple(make_institutions(
        dataset, n, scheme=config.partition, alpha=config.dirichlet_alpha,
        device_skew=config.device_skew, val_fraction=config.val_fraction, seed=config.seed,
        capacities=None if tiers is None else light_capacities(n, tiers)))
    results = train_each_alone(institutions, dataset, config, experiment_keys(config.seed).params,
                               progress=progress)
    val_auc = {inst.id: own_validation_auc(inst, results[inst.id], dataset.n_classes)
               for inst in institutions}
    return Federation(config, dataset, institutions, results, val_auc)


def score_on_test(fed: Federation, probs: np.ndarray) -> dict:
    """Accuracy, balanced accuracy and AUC of ``probs`` on the federation's test split.

    Example:
        >>> score_on_test(fed, fed.test_probs["hospital-a"])["auc"]  # doctest: +SKIP
        0.74
    """
    ev = evaluate(probs, fed.dataset.test.labels, fed.dataset.n_classes, warn=False)
    return {"accuracy": ev.accuracy, "balanced_accuracy": ev.balanced_accuracy, "auc": ev.auc}
