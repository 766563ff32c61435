"""Seeded partitioners: split a training set's indices among N institutions.

Every partitioner is a pure function of ``(labels, n_institutions, rng, params)`` and returns a
list of ``n_institutions`` sorted ``int64`` index arrays that together cover every index exactly
once: nothing is dropped and nothing is duplicated. An institution that would end up with fewer
than ``min_per_institution`` examples is an error (after a bounded number of redraws for the
random schemes), never a silently empty institution.

Schemes:

* ``iid``: a random permutation cut into near-equal shares.
* ``dirichlet``: label skew; each class is divided among institutions with proportions drawn
  from ``Dirichlet(alpha)`` (small ``alpha``: each institution sees few classes).
* ``quantity``: quantity skew; label-agnostic shares whose sizes follow ``Dirichlet(beta)``
  (small ``beta``: very unequal sizes).

Example:
    >>> import numpy as np
    >>> labels = np.array([0, 0, 0, 1, 1, 1, 1, 0, 1, 0])
    >>> parts = dirichlet_partition(labels, 2, np.random.default_rng(0), alpha=1.0)
    >>> sorted(np.concatenate(parts).tolist()) == list(range(10))
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SCHEMES = ("iid", "dirichlet", "quantity")


class PartitionError(ValueError):
    """A partition that cannot be made; names the institution when one is at fault.

    Attributes:
        institution: Index of the institution the problem concerns, or ``None``.
    """

    def __init__(self, message: str, institution: int | None = None):
        super().__init__(message)
        self.institution = institution


def as_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A NumPy generator from an int seed, or the generator itself.

    Example:
        >>> int(as_rng(3).integers(0, 100)) == int(as_rng(3).integers(0, 100))
        True
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        raise ValueError("an explicit seed or numpy Generator is required (got None)")
    return np.random.default_rng(seed)


def iid_partition(labels: np.ndarray, n_institutions: int,
                  rng: int | np.random.Generator) -> list[np.ndarray]:
    """Random near-equal shares (sizes differ by at most one).

    Args:
        labels: Class index of every training example, ``[N]``.
        n_institutions: Number of shares, ``1 <= n_institutions <= N``.
        rng: Seed or NumPy generator.

    Returns:
        ``n_institutions`` sorted index arrays covering ``range(N)`` exactly once.

    Example:
        >>> [len(p) for p in iid_partition(np.zeros(10, int), 3, 0)]
        [4, 3, 3]
    """
    labels = _check_labels(labels, n_institutions, min_per_institution=1)
    order = as_rng(rng).permutation(len(labels))
    return [np.sort(part) for part in np.array_split(order, n_institutions)]


def dirichlet_partition(labels: np.ndarray, n_institutions: int,
                        rng: int | np.random.Generator, *, alpha: float = 1.0,
                        min_per_institution: int = 1, max_draws: int = 100
                        ) -> list[np.ndarray]:
    """Label skew: each class is split among institutions with ``Dirichlet(alpha)`` proportions.

    A draw that leaves some institution with fewer than ``min_per_institution`` examples is
    redrawn, at most ``max_draws`` times in all; then :class:`PartitionError` names the
    institution that came up short most often.

    Args:
        labels: Class index of every training example, ``[N]``.
        n_institutions: Number of institutions.
        rng: Seed or NumPy generator.
        alpha: Dirichlet concentration (> 0); ``0.1`` is strongly skewed, ``100`` near IID.
        min_per_institution: Fewest examples any institution may receive (>= 1).
        max_draws: Bound on the number of redraws.

    Returns:
        ``n_institutions`` sorted index arrays covering ``range(N)`` exactly once.

    Example:
        >>> labels = np.repeat([0, 1, 2], 20)
        >>> parts = dirichlet_partition(labels, 3, 0, alpha=0.1)
        >>> sum(len(p) for p in parts)
        60
    """
    labels = _check_labels(labels, n_institutions, min_per_institution)
    if not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"dirichlet alpha must be > 0 and finite, got {alpha}")
    rng = as_rng(rng)
    by_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    shortfalls = np.zeros(n_institutions, dtype=np.int64)
    fewest = np.zeros(n_institutions, dtype=np.int64)
    for _ in range(max_draws):
        shares: list[list[np.ndarray]] = [[] for _ in range(n_institutions)]
        for members in by_class:
            proportions = rng.dirichlet(np.full(n_institutions, float(alpha)))
            cuts = (np.cumsum(proportions)[:-1] * len(members)).astype(np.int64)
            for share, piece in zip(shares, np.split(members, cuts), strict=True):
                share.append(piece)
        parts = [np.sort(np.concatenate(share)) for share in shares]
        sizes = np.array([len(p) for p in parts])
        if sizes.min() >= min_per_institution:
            return parts
        shortfalls += sizes < min_per_institution
        fewest = sizes
    worst = int(np.argmax(shortfalls))
    raise PartitionError(
        f"dirichlet partition (alpha={alpha}) left institution #{worst} with fewer than "
        f"{min_per_institution} examples in {int(shortfalls[worst])} of {max_draws} draws "
        f"(last draw sizes {fewest.tolist()}); raise alpha, lower n_institutions or "
        "min_per_institution",
        institution=worst,
    )


def quantity_skew_partition(labels: np.ndarray, n_institutions: int,
                            rng: int | np.random.Generator, *, beta: float = 0.5,
                            min_per_institution: int = 1) -> list[np.ndarray]:
    """Quantity skew: label-agnostic shares whose sizes follow ``Dirichlet(beta)``.

    Every institution first gets ``min_per_institution`` examples; the rest is divided in
    proportions drawn from ``Dirichlet(beta)`` (largest-remainder rounding), so no redraw is
    ever needed.

    Args:
        labels: Class index of every training example, ``[N]``.
        n_institutions: Number of institutions.
        rng: Seed or NumPy generator.
        beta: Dirichlet concentration of the sizes (> 0); small values give unequal sizes.
        min_per_institution: Fewest examples any institution receives (>= 1).

    Returns:
        ``n_institutions`` sorted index arrays covering ``range(N)`` exactly once.

    Example:
        >>> parts = quantity_skew_partition(np.zeros(100, int), 4, 0, beta=0.3)
        >>> sum(len(p) for p in parts), min(len(p) for p in parts) >= 1
        (100, True)
    """
    labels = _check_labels(labels, n_institutions, min_per_institution)
    if not (np.isfinite(beta) and beta > 0):
        raise ValueError(f"quantity-skew beta must be > 0 and finite, got {beta}")
    rng = as_rng(rng)
    spare = len(labels) - n_institutions * min_per_institution
    proportions = rng.dirichlet(np.full(n_institutions, float(beta)))
    sizes = min_per_institution + _largest_remainder(proportions, spare)
    order = rng.permutation(len(labels))
    return [np.sort(part) for part in np.split(order, np.cumsum(sizes)[:-1])]


def partition(labels: np.ndarray, n_institutions: int, rng: int | np.random.Generator, *,
              scheme: str = "dirichlet", alpha: float = 1.0, beta: float = 0.5,
              min_per_institution: int = 1) -> list[np.ndarray]:
    """Dispatches to :func:`iid_partition`, :func:`dirichlet_partition` or
    :func:`quantity_skew_partition` by name.

    Example:
        >>> [len(p) for p in partition(np.arange(9) % 3, 3, 0, scheme="iid")]
        [3, 3, 3]
    """
    if scheme == "iid":
        parts = iid_partition(labels, n_institutions, rng)
        sizes = [len(p) for p in parts]
        if min(sizes) < min_per_institution:
            short = int(np.argmin(sizes))
            raise PartitionError(
                f"iid partition gives institution #{short} only {sizes[short]} examples "
                f"(< min_per_institution={min_per_institution}); lower n_institutions",
                institution=short,
            )
        return parts
    if scheme == "dirichlet":
        return dirichlet_partition(labels, n_institutions, rng, alpha=alpha,
                                   min_per_institution=min_per_institution)
    if scheme == "quantity":
        return quantity_skew_partition(labels, n_institutions, rng, beta=beta,
                                       min_per_institution=min_per_institution)
    raise ValueError(f"unknown partition scheme {scheme!r}; choose one of {list(SCHEMES)}")


def check_partition(parts: Sequence[np.ndarray], n_samples: int) -> None:
    """Raises :class:`PartitionError` unless ``parts`` cover ``range(n_samples)`` exactly once.

    Example:
        >>> check_partition([np.array([0, 2]), np.array([1])], 3)
    """
    counts = np.zeros(n_samples, dtype=np.int64)
    for i, part in enumerate(parts):
        part = np.asarray(part)
        if len(part) and (part.min() < 0 or part.max() >= n_samples):
            raise PartitionError(f"institution #{i} holds indices outside [0, {n_samples})", i)
        np.add.at(counts, part, 1)
    if (counts > 1).any():
        raise PartitionError(f"indices held twice: {np.flatnonzero(counts > 1)[:10].tolist()}")
    if (counts == 0).any():
        raise PartitionError(f"indices dropped: {np.flatnonzero(counts == 0)[:10].tolist()}")


def label_distributions(labels: np.ndarray, parts: Sequence[np.ndarray],
                        n_classes: int) -> np.ndarray:
    """Each institution's class proportions, ``[n_institutions, n_classes]``.

    Example:
        >>> label_distributions(np.array([0, 1, 1, 1]), [np.array([0, 1]), np.array([2, 3])], 2)
        array([[0.5, 0.5],
               [0. , 1. ]])
    """
    labels = np.asarray(labels)
    counts = np.stack([np.bincount(labels[p], minlength=n_classes) for p in parts])
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)


def label_skew(labels: np.ndarray, parts: Sequence[np.ndarray], n_classes: int) -> float:
    """Mean total-variation distance between each institution's label distribution and the
    pooled one: 0 for identical distributions, up to 1 for disjoint ones.

    Example:
        >>> labels = np.array([0, 0, 1, 1])
        >>> label_skew(labels, [np.array([0, 1]), np.array([2, 3])], 2)
        0.5
    """
    labels = np.asarray(labels)
    pooled = np.bincount(labels, minlength=n_classes) / len(labels)
    local = label_distributions(labels, parts, n_classes)
    return float(np.mean(0.5 * np.abs(local - pooled).sum(axis=1)))


def _check_labels(labels: np.ndarray, n_institutions: int, min_per_institution: int
                  ) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D array of class indices, got shape {labels.shape}")
    if int(n_institutions) != n_institutions or n_institutions < 1:
        raise ValueError(f"n_institutions must be an integer >= 1, got {n_institutions!r}")
    if min_per_institution < 1:
        raise ValueError(f"min_per_institution must be >= 1, got {min_per_institution}")
    needed = n_institutions * min_per_institution
    if len(labels) < needed:
        raise PartitionError(
            f"cannot give {n_institutions} institutions at least {min_per_institution} "
            f"example(s) each from only {len(labels)} training examples"
        )
    return labels


def _largest_remainder(proportions: np.ndarray, total: int) -> np.ndarray:
    exact = proportions * total
    sizes = np.floor(exact).astype(np.int64)
    leftover = total - int(sizes.sum())
    sizes[np.argsort(-(exact - sizes), kind="stable")[:leftover]] += 1
    return sizes


def train_val_split(indices: np.ndarray, labels: np.ndarray, val_fraction: float,
                    rng: int | np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Carves a validation share out of one institution's indices, stratified by class.

    The share has ``max(1, round(val_fraction * n))`` examples (none when ``val_fraction`` is 0),
    divided among classes in proportion to their counts (largest-remainder rounding), so every
    class keeps its share in both parts as far as the counts allow.

    Args:
        indices: The institution's indices into the training split.
        labels: Labels of the whole training split.
        val_fraction: Fraction in ``[0, 1)`` to hold out.
        rng: Seed or NumPy generator.

    Returns:
        ``(train_indices, val_indices)``, both sorted, disjoint, together equal to ``indices``.

    Example:
        >>> labels = np.array([0] * 10 + [1] * 10)
        >>> train, val = train_val_split(np.arange(20), labels, 0.2, 0)
        >>> len(train), np.bincount(labels[val]).tolist()
        (16, [2, 2])
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    indices = np.asarray(indices, dtype=np.int64)
    if val_fraction == 0 or len(indices) == 0:
        return np.sort(indices), np.zeros(0, dtype=np.int64)
    rng = as_rng(rng)
    n_val = max(1, int(round(val_fraction * len(indices))))
    local = np.asarray(labels)[indices]
    classes, counts = np.unique(local, return_counts=True)
    quotas = _largest_remainder(counts / counts.sum(), n_val)
    val = [rng.choice(indices[local == c], size=q, replace=False)
           for c, q in zip(classes, quotas, strict=True)]
    val_idx = np.sort(np.concatenate(val)).astype(np.int64)
    return np.setdiff1d(indices, val_idx), val_idx
