"""Datasets, partitions, imaging devices and institutions.

Example:
    >>> from efl_toolkit.data import load_dataset, make_institutions
    >>> ds = load_dataset("breastmnist")
    >>> [inst.id for inst in make_institutions(ds, 3, scheme="dirichlet", alpha=0.5, seed=0)]
    ['hospital-a', 'hospital-b', 'hospital-c']
"""

from efl_toolkit.data.devices import (
    DEVICE_PROFILES,
    DeviceProfile,
    apply_device,
    device_profiles,
    gaussian_blur,
    random_device_profile,
)
from efl_toolkit.data.institution import (
    CAPACITY_TIERS,
    CapacityProfile,
    Institution,
    capacity_spread,
    format_summary_table,
    institution_ids,
    institutions_from_config,
    make_institutions,
    summary_table,
)
from efl_toolkit.data.medmnist import (
    Dataset,
    DatasetError,
    Split,
    embedded_datasets,
    load_dataset,
)
from efl_toolkit.data.partition import (
    SCHEMES,
    PartitionError,
    check_partition,
    dirichlet_partition,
    iid_partition,
    label_distributions,
    label_skew,
    partition,
    quantity_skew_partition,
    train_val_split,
)

_LAZY = {"plot_class_distribution", "plot_device_examples"}  # matplotlib only when plotting


def __getattr__(name: str):
    if name in _LAZY:
        from efl_toolkit.data import plots

        return getattr(plots, name)
    raise AttributeError(f"module 'efl_toolkit.data' has no attribute {name!r}")


__all__ = [
    "CAPACITY_TIERS",
    "DEVICE_PROFILES",
    "SCHEMES",
    "CapacityProfile",
    "Dataset",
    "DatasetError",
    "DeviceProfile",
    "Institution",
    "PartitionError",
    "Split",
    "apply_device",
    "capacity_spread",
    "check_partition",
    "device_profiles",
    "dirichlet_partition",
    "embedded_datasets",
    "format_summary_table",
    "gaussian_blur",
    "iid_partition",
    "institution_ids",
    "institutions_from_config",
    "label_distributions",
    "label_skew",
    "load_dataset",
    "make_institutions",
    "partition",
    "plot_class_distribution",
    "plot_device_examples",
    "quantity_skew_partition",
    "random_device_profile",
    "summary_table",
    "train_val_split",
]
