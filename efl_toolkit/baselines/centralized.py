"""The centralized baseline (the upper bound): one model on everybody's pooled data.

One model is trained on the pooled official training split and early-stopped on the official
validation split: what a single hospital holding everybody's data would get, i.e. exactly what
privacy rules forbid. It is evaluated on the official test split, like every other result.

Example:
    >>> import jax
    >>> from efl_toolkit.config import TrainConfig
    >>> from efl_toolkit.data import load_dataset
    >>> ds = load_dataset("breastmnist")
    >>> result = train_centralized(ds, "logistic", TrainConfig(epochs=2), jax.random.key(0))
    >>> 0.5 < result.test.accuracy <= 1.0
    True
"""

from __future__ import annotations

import jax

from efl_toolkit.config import ExperimentConfig, TrainConfig
from efl_toolkit.data.medmnist import Dataset
from efl_toolkit.federation.level1 import LocalResult, evaluate_models, train_config
from efl_toolkit.training.local import train_local


def train_centralized(dataset: Dataset, arch: str = "cnn",
                      config: TrainConfig | ExperimentConfig | None = None,
                      key: jax.Array | None = None, *, progress: bool = False,
                      monitor: str = "val_loss") -> LocalResult:
    """The upper bound: one model on the pooled training split, evaluated on the test split.

    Args:
        dataset: The dataset (its official train, val and test splits are used).
        arch: Architecture name.
        config: Training hyper-parameters (a ``TrainConfig`` or an ``ExperimentConfig``).
        key: PRNG key (default ``jax.random.key(0)``).
        progress: Show a progress bar.
        monitor: Early-stopping criterion (see :func:`~efl_toolkit.training.train_local`).

    Returns:
        A :class:`~efl_toolkit.federation.level1.LocalResult` named ``"centralized"`` with one
        model.

    Example:
        >>> from efl_toolkit.data import load_dataset
        >>> ds = load_dataset("breastmnist")
        >>> r = train_centralized(ds, "logistic", TrainConfig(epochs=1), jax.random.key(1))
        >>> r.name, r.architectures
        ('centralized', ('logistic',))
    """
    key = jax.random.key(0) if key is None else key
    result = train_local(arch, dataset.train, dataset.val, key, train_config(config),
                         n_classes=dataset.n_classes, progress=progress, monitor=monitor,
                         description=f"centralized {arch}")
    return evaluate_models("centralized", [result], [arch], dataset, len(dataset.train))
