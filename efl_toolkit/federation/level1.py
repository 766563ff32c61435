"""Level 1 of the method: every institution's local models and its local ensemble.

Each institution trains the architectures its capacity affords (or the ones it was given) on
its own training share, early-stopped on its own validation share; its **local ensemble** is the
mean of its models' class probabilities. Nothing leaves the institution but, later, its
probabilities on the shared query set (level 2, :mod:`efl_toolkit.federation.level2`).

:func:`train_each_alone` is also the lower-bound baseline ("each institution alone",
:mod:`efl_toolkit.baselines`). Every result is evaluated on the dataset's official test split.

Example:
    >>> import jax
    >>> from efl_toolkit.config import TrainConfig
    >>> from efl_toolkit.data import load_dataset, make_institutions
    >>> ds = load_dataset("breastmnist")
    >>> inst = make_institutions(ds, 2, capacities=["tiny", "tiny"], seed=0)[0]
    >>> result = train_institution(inst, ds, TrainConfig(epochs=1), jax.random.key(0))
    >>> result.name, result.architectures, 0.0 <= result.test.accuracy <= 1.0
    ('hospital-a', ('logistic',), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jax
import numpy as np

from efl_toolkit.config import ExperimentConfig, TrainConfig
from efl_toolkit.data.institution import Institution
from efl_toolkit.data.medmnist import Dataset
from efl_toolkit.models.capacity import assign_architectures
from efl_toolkit.rng import institution_key
from efl_toolkit.training.evaluate import EvaluationResult, evaluate
from efl_toolkit.training.local import TrainResult, predict_proba, train_local


@dataclass(frozen=True)
class LocalResult:
    """Test-split outcome of one institution's local models and local ensemble.

    (The centralized baseline returns one too, named ``"centralized"``, with one model.)

    Attributes:
        name: The institution id (or ``"centralized"``).
        architectures: The architectures trained (one model each).
        test: Evaluation of the mean of the models' test probabilities (the local ensemble;
            the model itself when there is one).
        per_model: Test evaluation of each model, by architecture.
        trained: The training results (models, histories), in ``architectures`` order.
        test_probs: ``[N_test, C]`` probabilities behind ``test``.
        n_train: Training examples used.
    """

    name: str
    architectures: tuple[str, ...]
    test: EvaluationResult
    per_model: dict[str, EvaluationResult]
    trained: tuple[TrainResult, ...]
    test_probs: np.ndarray
    n_train: int

    def to_dict(self) -> dict:
        """JSON-ready summary: accuracy, AUC, per-model metrics, sizes, training time."""
        return {
            "name": self.name,
            "architectures": list(self.architectures),
            "n_train": self.n_train,
            "accuracy": self.test.to_dict()["accuracy"],
            "auc": self.test.to_dict()["auc"],
            "test": self.test.to_dict(),
            "per_model": {arch: {"accuracy": ev.to_dict()["accuracy"], "auc": ev.to_dict()["auc"],
                                 "best_epoch": tr.best_epoch, "epochs_run": len(tr.history),
                                 "seconds": round(tr.seconds, 3)}
                          for (arch, ev), tr in zip(self.per_model.items(), self.trained,
                                                    strict=True)},
        }


def train_config(config: TrainConfig | ExperimentConfig | None) -> TrainConfig:
    """The training hyper-parameters of a ``TrainConfig``, an ``ExperimentConfig`` or ``None``.

    Example:
        >>> train_config(None) == TrainConfig()
        True
    """
    if config is None:
        return TrainConfig()
    return config.train if isinstance(config, ExperimentConfig) else config


def evaluate_models(name: str, trained: Sequence[TrainResult], architectures: Sequence[str],
                    dataset: Dataset, n_train: int) -> LocalResult:
    """Scores each trained model and their mean (the local ensemble) on the test split."""
    n_classes = dataset.n_classes
    probs = [predict_proba(result.model, dataset.test.images) for result in trained]
    per_model = {arch: evaluate(p, dataset.test.labels, n_classes, warn=False)
                 for arch, p in zip(architectures, probs, strict=True)}
    mean = np.mean(probs, axis=0)
    return LocalResult(name, tuple(architectures),
                       evaluate(mean, dataset.test.labels, n_classes, warn=False),
                       per_model, tuple(trained), mean, n_train)


def institution_architectures(institution: Institution, dataset: Dataset,
                              max_models: int = 2) -> tuple[str, ...]:
    """The institution's own architectures, or those its capacity affords if none are set.

    The compute budget is judged on an epoch of a reference-size share
    (:data:`~efl_toolkit.models.capacity.REFERENCE_SAMPLES`), so a tier maps to the same
    architectures whatever the partition: tiny -> logistic, small -> mlp + logistic,
    medium -> cnn + vit, large -> resnet + cnn (28x28 grayscale, two classes).

    Example:
        >>> from efl_toolkit.data import load_dataset
        >>> from efl_toolkit.data.institution import CapacityProfile
        >>> ds = load_dataset("breastmnist")
        >>> inst = Institution("h", ds.train, ds.val, CapacityProfile.preset("tiny"))
        >>> institution_architectures(inst, ds)
        ('logistic',)
    """
    if institution.architectures:
        return tuple(institution.architectures)
    return assign_architectures(institution.capacity, dataset.image_shape, dataset.n_classes,
                                max_models=max_models)


def train_institution(institution: Institution, dataset: Dataset,
                      config: TrainConfig | ExperimentConfig | None, key: jax.Array, *,
                      progress: bool = False, monitor: str = "val_loss") -> LocalResult:
    """Trains one institution's architectures on its own share and evaluates them on test.

    Each architecture gets its own key: ``fold_in(key, architecture position)``.
    """
    architectures = institution_architectures(institution, dataset)
    trained = [
        train_local(arch, institution.train, institution.val, jax.random.fold_in(key, position),
                    train_config(config), n_classes=dataset.n_classes, progress=progress,
                    monitor=monitor, description=f"{institution.id} {arch}")
        for position, arch in enumerate(architectures)
    ]
    return evaluate_models(institution.id, trained, architectures, dataset, institution.n_train)


def train_each_alone(institutions: Sequence[Institution], dataset: Dataset,
                     config: TrainConfig | ExperimentConfig | None = None,
                     key: jax.Array | None = None, *, progress: bool = False,
                     monitor: str = "val_loss") -> dict[str, LocalResult]:
    """Level 1 for every institution: each trains on its own share only.

    Alone, this is also the lower-bound baseline (no collaboration at all).

    Args:
        institutions: The institutions (architectures unset: assigned from their capacity).
        dataset: The dataset whose official test split evaluates every institution.
        config: Training hyper-parameters.
        key: PRNG key; institution ``i`` uses ``institution_key(key, i)``.
        progress: Show progress bars.
        monitor: Early-stopping criterion.

    Returns:
        ``{institution id: LocalResult}`` in the institutions' order.

    Raises:
        ValueError: Duplicate institution ids.

    Example:
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> ds = load_dataset("breastmnist")
        >>> insts = make_institutions(ds, 3, capacities=["tiny"] * 3, seed=0)
        >>> results = train_each_alone(insts, ds, TrainConfig(epochs=1), jax.random.key(0))
        >>> list(results) == [i.id for i in insts]
        True
    """
    ids = [inst.id for inst in institutions]
    if len(set(ids)) != len(ids):
        raise ValueError(f"institution ids must be distinct, got {ids}")
    key = jax.random.key(0) if key is None else key
    return {
        inst.id: train_institution(inst, dataset, config, institution_key(key, index),
                                   progress=progress, monitor=monitor)
        for index, inst in enumerate(institutions)
    }


def best_single(results: dict[str, LocalResult]) -> LocalResult:
    """The institution whose local ensemble has the highest test accuracy (ties: AUC).

    Example:
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> ds = load_dataset("breastmnist")
        >>> results = train_each_alone(make_institutions(ds, 2, capacities=["tiny", "small"]),
        ...                            ds, TrainConfig(epochs=1), jax.random.key(0))
        >>> best_single(results).name in results
        True
    """
    if not results:
        raise ValueError("best_single needs at least one result")
    return max(results.values(),
               key=lambda r: (r.test.accuracy, -np.inf if np.isnan(r.test.auc) else r.test.auc))
