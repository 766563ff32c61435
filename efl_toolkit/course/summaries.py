"""Plain-dict rows summarizing institutions, their architectures and their trained models.

Notebooks and reports print these rows with :func:`efl_toolkit.course.viz.format_table` and
plot them with the functions of :mod:`efl_toolkit.course.viz`; they hold only numbers and
strings, so they also go straight into JSON.

* :func:`architecture_rows`: every architecture's measured size and training cost;
* :func:`capacity_rows`: each institution's budget, the architectures it affords and their cost;
* :func:`model_rows`: every trained model: epochs, validation score, test metrics, version hash;
* :func:`institution_rows`: each institution's local ensemble (level 1) on the test split;
* :func:`training_histories`: per-epoch histories keyed ``"institution/arch"`` for plotting;
* :func:`majority_class_accuracy`: the accuracy of always answering the most frequent class.

Example:
    >>> from efl_toolkit.data import load_dataset, make_institutions
    >>> ds = load_dataset("breastmnist")
    >>> rows = capacity_rows(make_institutions(ds, 3, seed=0), ds)
    >>> [(r["id"], r["tier"]) for r in rows]
    [('hospital-a', 'small'), ('hospital-b', 'medium'), ('hospital-c', 'large')]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from efl_toolkit.data.institution import Institution
from efl_toolkit.data.medmnist import Dataset
from efl_toolkit.federation.level1 import LocalResult, institution_architectures
from efl_toolkit.models.capacity import REFERENCE_SAMPLES, estimate_cost
from efl_toolkit.models.zoo import ARCHITECTURES, architecture_names
from efl_toolkit.training.serialize import version_hash


def capacity_rows(institutions: Sequence[Institution], dataset: Dataset) -> list[dict]:
    """Each institution's budget, its architectures and what they cost per epoch.

    Architectures are the institution's own when set, else those its capacity affords for its
    training-set size (:func:`efl_toolkit.federation.level1.institution_architectures`).

    Returns:
        Rows with ``id``, ``tier``, ``budget_gflops``, ``budget_mb``, ``n_train``,
        ``architectures``, ``params`` (per architecture), ``gflops_per_epoch`` (sum over its
        models) and ``storage_mb`` (sum).

    Example:
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> ds = load_dataset("breastmnist")
        >>> row = capacity_rows(make_institutions(ds, 3, seed=0), ds)[0]
        >>> row["gflops_per_epoch"] <= row["budget_gflops"]
        True
    """
    rows = []
    for inst in institutions:
        archs = institution_architectures(inst, dataset)
        costs = [estimate_cost(arch, dataset.image_shape, dataset.n_classes) for arch in archs]
        rows.append({
            "id": inst.id,
            "tier": inst.capacity.tier,
            "budget_gflops": inst.capacity.compute_gflops,
            "budget_mb": inst.capacity.storage_mb,
            "n_train": inst.n_train,
            "architectures": list(archs),
            "params": [cost.n_params for cost in costs],
            "gflops_per_epoch": sum(cost.epoch_gflops(inst.n_train) for cost in costs),
            "storage_mb": sum(cost.storage_mb for cost in costs),
        })
    return rows


def _check_results(results: Mapping[str, LocalResult]) -> None:
    if not results:
        raise ValueError("no training results given")
    for name, result in results.items():
        if len(result.trained) != len(result.architectures):
            raise ValueError(f"{name}: {len(result.trained)} trained models for "
                             f"{len(result.architectures)} architectures")


def model_rows(results: Mapping[str, LocalResult]) -> list[dict]:
    """One row per trained model.

    Returns:
        Rows with ``institution``, ``arch``, ``epochs_run``, ``best_epoch``, ``stopped_early``,
        ``best_val_loss`` (the monitored value), ``test_accuracy``, ``test_auc``, ``seconds``
        and ``version`` (the full SHA-256 version hash; ``course.show`` shortens it to 12
        characters with the full value on hover).

    Example:
        >>> import jax
        >>> from efl_toolkit.federation.level1 import train_each_alone
        >>> from efl_toolkit.config import TrainConfig
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> ds = load_dataset("breastmnist")
        >>> insts = make_institutions(ds, 2, capacities=["tiny", "tiny"], seed=0)
        >>> res = train_each_alone(insts, ds, TrainConfig(epochs=1), jax.random.key(0))
        >>> [(r["institution"], r["arch"], len(r["version"])) for r in model_rows(res)]
        [('hospital-a', 'logistic', 64), ('hospital-b', 'logistic', 64)]
    """
    _check_results(results)
    rows = []
    for name, result in results.items():
        for arch, trained in zip(result.architectures, result.trained, strict=True):
            test = result.per_model[arch]
            rows.append({
                "institution": name,
                "arch": arch,
                "epochs_run": len(trained.history),
                "best_epoch": trained.best_epoch,
                "stopped_early": trained.stopped_early,
                f"best_{trained.monitor}": trained.best_val_metric,
                "test_accuracy": test.accuracy,
                "test_auc": test.auc,
                "seconds": trained.seconds,
                "version": version_hash(trained.model),
            })
    return rows


def institution_rows(results: Mapping[str, LocalResult]) -> list[dict]:
    """Each institution's local ensemble (mean of its models) on the test split.

    Example:
        >>> import jax
        >>> from efl_toolkit.federation.level1 import train_each_alone
        >>> from efl_toolkit.config import TrainConfig
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> ds = load_dataset("breastmnist")
        >>> insts = make_institutions(ds, 2, capacities=["tiny", "tiny"], seed=0)
        >>> res = train_each_alone(insts, ds, TrainConfig(epochs=1), jax.random.key(0))
        >>> [r["name"] for r in institution_rows(res)]
        ['hospital-a', 'hospital-b']
    """
    _check_results(results)
    return [{"name": name, "architectures": list(result.architectures),
             "n_train": result.n_train, "accuracy": result.test.accuracy,
             "auc": result.test.auc, "balanced_accuracy": result.test.balanced_accuracy}
            for name, result in results.items()]


def training_histories(results: Mapping[str, LocalResult]) -> dict[str, tuple[dict, ...]]:
    """Per-epoch histories keyed ``"institution/arch"`` (input of
    :func:`efl_toolkit.course.viz.plot_training_curves`).

    Example:
        >>> import jax
        >>> from efl_toolkit.federation.level1 import train_each_alone
        >>> from efl_toolkit.config import TrainConfig
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> ds = load_dataset("breastmnist")
        >>> insts = make_institutions(ds, 2, capacities=["tiny", "tiny"], seed=0)
        >>> res = train_each_alone(insts, ds, TrainConfig(epochs=1), jax.random.key(0))
        >>> list(training_histories(res))
        ['hospital-a/logistic', 'hospital-b/logistic']
    """
    _check_results(results)
    return {f"{name}/{arch}": trained.history
            for name, result in results.items()
            for arch, trained in zip(result.architectures, result.trained, strict=True)}


def architecture_rows(image_shape: tuple[int, int, int], n_classes: int,
                      n_samples: int = REFERENCE_SAMPLES) -> list[dict]:
    """Every registered architecture with its measured size and training cost.

    Args:
        image_shape: ``(H, W, C)`` of the dataset.
        n_classes: Number of classes.
        n_samples: Training examples per epoch used for the compute column.

    Example:
        >>> [r["arch"] for r in architecture_rows((28, 28, 1), 2)]
        ['logistic', 'mlp', 'vit', 'cnn', 'resnet']
    """
    rows = []
    for arch in architecture_names():
        cost = estimate_cost(arch, tuple(image_shape), n_classes)
        rows.append({"arch": arch, "params": cost.n_params, "storage_mb": cost.storage_mb,
                     "mflops_per_image": cost.forward_flops / 1e6,
                     f"gflops_per_epoch_{n_samples}": cost.epoch_gflops(n_samples),
                     "description": ARCHITECTURES[arch].description})
    return rows


def majority_class_accuracy(labels, n_classes: int) -> float:
    """Accuracy of always answering the most frequent class: the bar every model must clear.

    Example:
        >>> majority_class_accuracy([0, 1, 1, 1], 2)
        0.75
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes)
    if counts.sum() == 0:
        raise ValueError("no labels given")
    return float(counts.max() / counts.sum())
