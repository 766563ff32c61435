"""How different are the institutions? Numbers for label, quantity and feature (device) skew.

Federated learning is hard exactly when institutions differ. This module measures how much they
do, from the institutions themselves (what each one actually holds):

* **label skew**: mean total-variation distance between each institution's class distribution and
  the pooled one (0: identical, towards 1: disjoint classes);
* **quantity skew**: ratio of the largest to the smallest training share;
* **missing classes**: (institution, class) pairs with no training example at all;
* **feature skew**: spread of the institutions' mean pixel brightness and contrast (what their
  imaging devices did to the images).

:func:`compare_partitions` builds the institutions under several partition settings with one
seed and returns one row of these numbers per setting (notebook 01 compares IID with strong
Dirichlet skew).

Example:
    >>> from efl_toolkit.data import load_dataset
    >>> from efl_toolkit.course.heterogeneity import compare_partitions
    >>> rows = compare_partitions(load_dataset("breastmnist"), 3,
    ...                           {"iid": {"scheme": "iid"}, "skewed": {"alpha": 0.1}})
    >>> rows[0]["label_skew"] < rows[1]["label_skew"]
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from efl_toolkit.data.institution import Institution, make_institutions
from efl_toolkit.data.medmnist import Dataset


def _check(institutions: Sequence[Institution], n_classes: int) -> None:
    if not institutions:
        raise ValueError("no institutions given")
    if int(n_classes) < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes!r}")
    for inst in institutions:
        if inst.n_train == 0:
            raise ValueError(f"{inst.id}: holds no training examples")
        if int(inst.train.labels.max()) >= n_classes:
            raise ValueError(f"{inst.id}: holds label {int(inst.train.labels.max())} but "
                             f"n_classes={n_classes}")


def class_distributions(institutions: Sequence[Institution], n_classes: int) -> np.ndarray:
    """Each institution's training class proportions, ``[n_institutions, n_classes]``.

    Example:
        >>> import numpy as np
        >>> from efl_toolkit.data.medmnist import Split
        >>> from efl_toolkit.data.institution import CapacityProfile
        >>> s = Split(np.zeros((4, 2, 2, 1), np.float32), np.array([0, 1, 1, 1], np.int32))
        >>> inst = Institution("a", s, s, CapacityProfile.preset("small"))
        >>> class_distributions([inst], 2).tolist()
        [[0.25, 0.75]]
    """
    _check(institutions, n_classes)
    counts = np.stack([inst.train.class_counts(n_classes) for inst in institutions])
    return counts / counts.sum(axis=1, keepdims=True)


def institution_label_skew(institutions: Sequence[Institution], n_classes: int) -> float:
    """Mean total-variation distance of each institution's class mix from the pooled mix.

    The pooled mix is that of all institutions' training shares together.

    Example:
        >>> import numpy as np
        >>> from efl_toolkit.data.medmnist import Split
        >>> from efl_toolkit.data.institution import CapacityProfile
        >>> def inst(name, labels):
        ...     s = Split(np.zeros((len(labels), 2, 2, 1), np.float32), np.array(labels))
        ...     return Institution(name, s, s, CapacityProfile.preset("small"))
        >>> institution_label_skew([inst("a", [0, 0]), inst("b", [1, 1])], 2)
        0.5
    """
    local = class_distributions(institutions, n_classes)
    counts = np.stack([inst.train.class_counts(n_classes) for inst in institutions])
    pooled = counts.sum(axis=0) / counts.sum()
    return float(np.mean(0.5 * np.abs(local - pooled).sum(axis=1)))


def heterogeneity_stats(institutions: Sequence[Institution], n_classes: int) -> dict:
    """Label, quantity and feature skew of a set of institutions, as one plain dict.

    Returns:
        ``label_skew``, ``size_ratio`` (largest / smallest training share), ``min_train``,
        ``max_train``, ``missing_classes`` (institution-class pairs without examples),
        ``brightness_spread`` and ``contrast_spread`` (max - min over institutions of the mean
        pixel value and of the mean per-image standard deviation).

    Example:
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> ds = load_dataset("breastmnist")
        >>> stats = heterogeneity_stats(make_institutions(ds, 3, scheme="iid"), ds.n_classes)
        >>> stats["missing_classes"], stats["size_ratio"] < 1.1
        (0, True)
    """
    _check(institutions, n_classes)
    sizes = np.array([inst.n_train for inst in institutions])
    counts = np.stack([inst.train.class_counts(n_classes) for inst in institutions])
    brightness = np.array([float(inst.train.images.mean()) for inst in institutions])
    contrast = np.array([float(inst.train.images.std(axis=(1, 2, 3)).mean())
                         for inst in institutions])
    return {
        "label_skew": institution_label_skew(institutions, n_classes),
        "size_ratio": float(sizes.max() / sizes.min()),
        "min_train": int(sizes.min()),
        "max_train": int(sizes.max()),
        "missing_classes": int((counts == 0).sum()),
        "brightness_spread": float(brightness.max() - brightness.min()),
        "contrast_spread": float(contrast.max() - contrast.min()),
    }


def compare_partitions(dataset: Dataset, n_institutions: int,
                       settings: Mapping[str, Mapping], *, seed: int = 0) -> list[dict]:
    """Builds institutions under each setting and measures their heterogeneity.

    Args:
        dataset: The dataset whose training split is partitioned.
        n_institutions: Number of institutions.
        settings: ``{name: keyword arguments of make_institutions}``, e.g.
            ``{"iid": {"scheme": "iid"}, "alpha=0.1": {"scheme": "dirichlet", "alpha": 0.1}}``.
            ``scheme`` defaults to ``"dirichlet"``.
        seed: The same seed for every setting, so only the setting differs.

    Returns:
        One row per setting: ``{"setting": name, **heterogeneity_stats(...)}``.

    Raises:
        ValueError: Empty settings; errors of :func:`make_institutions` are re-raised with the
            setting's name in front.

    Example:
        >>> from efl_toolkit.data import load_dataset
        >>> rows = compare_partitions(load_dataset("breastmnist"), 2, {"iid": {"scheme": "iid"}})
        >>> rows[0]["setting"], rows[0]["missing_classes"]
        ('iid', 0)
    """
    if not settings:
        raise ValueError("settings is empty: give at least one {name: make_institutions kwargs}")
    rows = []
    for name, kwargs in settings.items():
        kwargs = {"scheme": "dirichlet", **kwargs, "seed": seed}
        try:
            institutions = make_institutions(dataset, n_institutions, **kwargs)
        except ValueError as error:
            raise type(error)(f"setting {name!r}: {error}") from error
        rows.append({"setting": name, **heterogeneity_stats(institutions, dataset.n_classes)})
    return rows
