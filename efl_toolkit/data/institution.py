"""Institutions: an id, a private share of the data, a capacity profile and an imaging device.

:func:`make_institutions` partitions a dataset's training split among N institutions (IID,
Dirichlet label skew or quantity skew), carves each institution's own validation share out of
its partition (stratified), passes its train and validation images through its own imaging
device (feature skew) and gives it a capacity tier. The official test split is never touched:
it stays clean as the shared query set of the ensemble.

Example:
    >>> import numpy as np
    >>> from efl_toolkit.data.medmnist import Split
    >>> from efl_toolkit.data.institution import CapacityProfile, Institution
    >>> split = Split(np.zeros((4, 28, 28, 1), np.float32), np.array([0, 1, 0, 1], np.int32))
    >>> inst = Institution("hospital-a", split, split, CapacityProfile.preset("large"))
    >>> inst.n_train, inst.capacity.tier
    (4, 'large')
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from efl_toolkit.data.devices import DeviceProfile, apply_device, device_profiles
from efl_toolkit.data.medmnist import Dataset, Split
from efl_toolkit.data.partition import PartitionError, as_rng, partition, train_val_split

__all__ = [
    "CAPACITY_TIERS", "CapacityProfile", "DeviceProfile", "Institution", "capacity_spread",
    "format_summary_table", "institution_ids", "institutions_from_config", "make_institutions",
    "summary_table",
]

#: Capacity tiers from the weakest to the strongest.
CAPACITY_TIERS = ("tiny", "small", "medium", "large")


@dataclass(frozen=True)
class CapacityProfile:
    """Compute and storage budget of one institution.

    Attributes:
        tier: A readable label (``"small"``, ``"medium"``, ``"large"``...).
        compute_gflops: Training compute the institution can spend per epoch (GFLOP).
        storage_mb: Storage available for model parameters (MB).
    """

    tier: str
    compute_gflops: float
    storage_mb: float

    @staticmethod
    def preset(tier: str) -> CapacityProfile:
        """A named capacity tier: ``tiny``, ``small``, ``medium`` or ``large``."""
        tiers = {
            "tiny": CapacityProfile("tiny", 0.05, 0.1),
            "small": CapacityProfile("small", 1.0, 1.0),
            "medium": CapacityProfile("medium", 20.0, 10.0),
            "large": CapacityProfile("large", 500.0, 200.0),
        }
        if tier not in tiers:
            raise ValueError(f"unknown capacity tier {tier!r}; choose one of {sorted(tiers)}")
        return tiers[tier]


@dataclass(frozen=True)
class Institution:
    """One healthcare institution of the federation.

    Attributes:
        id: Stable identifier, e.g. ``"hospital-a"`` (used on the ledger).
        train: The institution's private training share.
        val: The institution's own validation share (early stopping, ensemble weights).
        capacity: Compute and storage budget (decides its architectures).
        device: The imaging device profile applied to its images.
        architectures: Architectures it trains (its level-1 local ensemble).
        train_indices: Rows of the dataset's training split behind ``train`` (or ``None``).
        val_indices: Rows of the dataset's training split behind ``val`` (or ``None``).
    """

    id: str
    train: Split
    val: Split
    capacity: CapacityProfile
    device: DeviceProfile = field(default_factory=DeviceProfile)
    architectures: tuple[str, ...] = ()
    train_indices: np.ndarray | None = field(default=None, repr=False, compare=False)
    val_indices: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def n_train(self) -> int:
        return len(self.train)

    @property
    def n_val(self) -> int:
        return len(self.val)

    def summary(self, n_classes: int) -> dict:
        """One plain-dict row: id, tier, budgets, device, sizes and training class counts."""
        return {
            "id": self.id,
            "tier": self.capacity.tier,
            "compute_gflops": self.capacity.compute_gflops,
            "storage_mb": self.capacity.storage_mb,
            "device": self.device.name,
            "n_train": self.n_train,
            "n_val": self.n_val,
            "class_counts": self.train.class_counts(n_classes).tolist(),
            "val_class_counts": self.val.class_counts(n_classes).tolist(),
        }


def institution_ids(n: int) -> list[str]:
    """Readable ids ``hospital-a``, ``hospital-b``, ... (``hospital-aa`` after ``z``).

    Example:
        >>> institution_ids(3), institution_ids(28)[-1]
        (['hospital-a', 'hospital-b', 'hospital-c'], 'hospital-ab')
    """
    letters = string.ascii_lowercase
    ids = []
    for i in range(n):
        suffix, k = "", i
        while True:
            suffix = letters[k % 26] + suffix
            k = k // 26 - 1
            if k < 0:
                break
        ids.append(f"hospital-{suffix}")
    return ids


def capacity_spread(n: int) -> list[CapacityProfile]:
    """A spread of capacity tiers from weak to strong, so institutions' capacities differ.

    Example:
        >>> [c.tier for c in capacity_spread(3)]
        ['small', 'medium', 'large']
        >>> [c.tier for c in capacity_spread(5)]
        ['tiny', 'small', 'medium', 'medium', 'large']
    """
    if n == 1:
        return [CapacityProfile.preset("medium")]
    tiers = CAPACITY_TIERS[1:] if n <= 3 else CAPACITY_TIERS
    positions = np.rint(np.linspace(0, len(tiers) - 1, n)).astype(int)
    return [CapacityProfile.preset(tiers[p]) for p in positions]


def make_institutions(dataset: Dataset, n_institutions: int, *, scheme: str = "dirichlet",
                      alpha: float = 1.0, beta: float = 0.5, device_skew: bool = True,
                      val_fraction: float = 0.15,
                      capacities: Sequence[CapacityProfile | str] | None = None,
                      seed: int | np.random.Generator = 0, ids: Sequence[str] | None = None,
                      min_per_institution: int | None = None) -> list[Institution]:
    """Partitions a dataset's training split into institutions with devices and capacities.

    Args:
        dataset: The loaded dataset; only its training split is divided.
        n_institutions: Number of institutions (>= 1).
        scheme: ``"iid"``, ``"dirichlet"`` (label skew) or ``"quantity"`` (quantity skew).
        alpha: Dirichlet concentration of the label skew (smaller: more skewed).
        beta: Dirichlet concentration of the quantity skew (smaller: more unequal sizes).
        device_skew: Give each institution its own imaging device (feature skew).
        val_fraction: Share of each institution's partition held out as its validation set.
        capacities: One profile (or tier name) per institution; default a spread of tiers.
        seed: Seed or NumPy generator; partition, validation carving and devices use separate
            streams derived from it.
        ids: Institution ids; default ``hospital-a``, ``hospital-b``, ...
        min_per_institution: Fewest training-split examples an institution may get; default
            ``min(10, N // n_institutions)``, and at least 2 when ``val_fraction > 0``.

    Returns:
        The institutions, in id order.

    Raises:
        PartitionError: An institution would be left with no (or too little) data; the message
            names the institution.
        ValueError: Bad counts of ids or capacities, unknown scheme or tier.

    Example:
        >>> from efl_toolkit.data import load_dataset
        >>> insts = make_institutions(load_dataset("breastmnist"), 3, seed=0)
        >>> [i.id for i in insts], sum(i.n_train + i.n_val for i in insts)
        (['hospital-a', 'hospital-b', 'hospital-c'], 546)
    """
    if int(n_institutions) != n_institutions or n_institutions < 1:
        raise ValueError(f"n_institutions must be an integer >= 1, got {n_institutions!r}")
    ids = list(ids) if ids is not None else institution_ids(n_institutions)
    if len(ids) != n_institutions or len(set(ids)) != len(ids):
        raise ValueError(f"need {n_institutions} distinct institution ids, got {ids}")
    capacities = _resolve_capacities(capacities, n_institutions)
    labels = dataset.train.labels
    if min_per_institution is None:
        floor = 2 if val_fraction > 0 else 1
        min_per_institution = max(floor, min(10, len(labels) // n_institutions))

    partition_rng, val_rng, device_rng, noise_rng = as_rng(seed).spawn(4)
    try:
        parts = partition(labels, n_institutions, partition_rng, scheme=scheme, alpha=alpha,
                          beta=beta, min_per_institution=min_per_institution)
    except PartitionError as error:
        if error.institution is None:
            raise
        raise PartitionError(f"{ids[error.institution]}: {error}", error.institution) from error
    devices = (device_profiles(n_institutions, device_rng) if device_skew
               else [DeviceProfile()] * n_institutions)

    institutions = []
    for i, (part, noise) in enumerate(zip(parts, noise_rng.spawn(n_institutions), strict=True)):
        train_idx, val_idx = train_val_split(part, labels, val_fraction, val_rng)
        if len(train_idx) == 0:
            raise PartitionError(
                f"{ids[i]}: its {len(part)} example(s) leave nothing to train on after carving "
                f"a validation share (val_fraction={val_fraction}); lower val_fraction or "
                "n_institutions", i)
        train = dataset.train.subset(train_idx)
        val = dataset.train.subset(val_idx)
        if not devices[i].is_identity:
            train = Split(apply_device(train.images, devices[i], noise), train.labels)
            val = Split(apply_device(val.images, devices[i], noise), val.labels)
        institutions.append(Institution(
            id=ids[i], train=train, val=val, capacity=capacities[i], device=devices[i],
            train_indices=train_idx, val_indices=val_idx,
        ))
    return institutions


def institutions_from_config(dataset: Dataset, config) -> list[Institution]:
    """:func:`make_institutions` with the fields of an :class:`~efl_toolkit.config.
    ExperimentConfig` (``n_institutions``, ``partition``, ``dirichlet_alpha``, ``device_skew``,
    ``val_fraction``, ``seed``).

    Example:
        >>> from efl_toolkit.config import get_config
        >>> from efl_toolkit.data import load_dataset
        >>> cfg = get_config("classroom_fast")
        >>> len(institutions_from_config(load_dataset(cfg.dataset), cfg)) == cfg.n_institutions
        True
    """
    return make_institutions(
        dataset, config.n_institutions, scheme=config.partition, alpha=config.dirichlet_alpha,
        device_skew=config.device_skew, val_fraction=config.val_fraction, seed=config.seed,
    )


def summary_table(institutions: Sequence[Institution], n_classes: int) -> list[dict]:
    """One row per institution (see :meth:`Institution.summary`).

    Example:
        >>> from efl_toolkit.data import load_dataset
        >>> rows = summary_table(make_institutions(load_dataset("breastmnist"), 2), 2)
        >>> sorted(rows[0])[:4]
        ['class_counts', 'compute_gflops', 'device', 'id']
    """
    return [inst.summary(n_classes) for inst in institutions]


def format_summary_table(rows: Sequence[dict], class_names: Sequence[str] | None = None) -> str:
    """A fixed-width text rendering of :func:`summary_table` rows (training class counts).

    Example:
        >>> print(format_summary_table([{"id": "hospital-a", "tier": "small", "device":
        ...     "reference", "n_train": 3, "n_val": 1, "class_counts": [1, 2]}], ["no", "yes"]))
        id          tier   device     n_train  n_val  no  yes
        hospital-a  small  reference  3        1      1   2
    """
    if not rows:
        return "(no institutions)"
    n_classes = len(rows[0]["class_counts"])
    names = list(class_names) if class_names is not None else [str(c) for c in range(n_classes)]
    header = ["id", "tier", "device", "n_train", "n_val"] + [n[:16] for n in names]
    body = [[str(r["id"]), str(r["tier"]), str(r["device"]), str(r["n_train"]), str(r["n_val"])]
            + [str(c) for c in r["class_counts"]] for r in rows]
    widths = [max(len(line[j]) for line in [header, *body]) for j in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
             for line in [header, *body]]
    return "\n".join(lines)


def _resolve_capacities(capacities, n: int) -> list[CapacityProfile]:
    if capacities is None:
        return capacity_spread(n)
    resolved = [c if isinstance(c, CapacityProfile) else CapacityProfile.preset(c)
                for c in capacities]
    if len(resolved) != n:
        raise ValueError(f"got {len(resolved)} capacity profiles for {n} institutions")
    return resolved
