"""Datasets, partitions and institutions."""

from efl_toolkit.data.medmnist import (
    Dataset,
    DatasetError,
    Split,
    embedded_datasets,
    load_dataset,
)

__all__ = ["Dataset", "DatasetError", "Split", "embedded_datasets", "load_dataset"]
