"""Load MedMNIST-format ``.npz`` files: the embedded datasets or any file of that format.

A MedMNIST-format file holds six arrays: ``train_images, train_labels, val_images, val_labels,
test_images, test_labels``. Images are ``uint8`` of shape ``[N, H, W]`` (grayscale) or
``[N, H, W, C]`` (colour); labels are integers of shape ``[N]`` or ``[N, 1]`` (multi-label
files with more label columns are rejected: the toolkit does single-label classification).

Two datasets ship inside the package (MedMNIST v2, CC BY 4.0): ``breastmnist`` and
``pneumoniamnist``. Nothing is ever downloaded at run time; see ``data_scripts/fetch_medmnist.py``.

Example:
    >>> from efl_toolkit.data import load_dataset
    >>> ds = load_dataset("breastmnist")
    >>> ds.n_classes, ds.n_channels, ds.image_shape
    (2, 1, (28, 28, 1))
    >>> ds.train.images.dtype, ds.train.images.shape
    (dtype('float32'), (546, 28, 28, 1))
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")
REQUIRED_KEYS = tuple(f"{s}_{k}" for s in SPLITS for k in ("images", "labels"))

#: Class names of the 2D MedMNIST v2 datasets (from the official INFO), where known.
KNOWN_CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "breastmnist": ("malignant", "normal, benign"),
    "pneumoniamnist": ("normal", "pneumonia"),
    "pathmnist": ("adipose", "background", "debris", "lymphocytes", "mucus",
                  "smooth muscle", "normal colon mucosa", "cancer-associated stroma",
                  "colorectal adenocarcinoma epithelium"),
    "dermamnist": ("actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma",
                   "benign keratosis-like lesions", "dermatofibroma", "melanoma",
                   "melanocytic nevi", "vascular lesions"),
    "octmnist": ("choroidal neovascularization", "diabetic macular edema", "drusen", "normal"),
    "retinamnist": ("0", "1", "2", "3", "4"),
    "bloodmnist": ("basophil", "eosinophil", "erythroblast", "immature granulocytes",
                   "lymphocyte", "monocyte", "neutrophil", "platelet"),
    "organamnist": ("bladder", "femur-left", "femur-right", "heart", "kidney-left",
                    "kidney-right", "liver", "lung-left", "lung-right", "pancreas", "spleen"),
}
KNOWN_CLASS_NAMES["tissuemnist"] = (
    "Collecting Duct, Connecting Tubule", "Distal Convoluted Tubule",
    "Glomerular endothelial cells", "Interstitial endothelial cells", "Leukocytes",
    "Podocytes", "Proximal Tubule Segments", "Thick Ascending Limb",
)
KNOWN_CLASS_NAMES["organcmnist"] = KNOWN_CLASS_NAMES["organamnist"]
KNOWN_CLASS_NAMES["organsmnist"] = KNOWN_CLASS_NAMES["organamnist"]

#: Embedded files and their official MD5 (MedMNIST 3.0.2 INFO).
EMBEDDED_MD5 = {
    "breastmnist": "750601b1f35ba3300ea97c75c52ff8f6",
    "pneumoniamnist": "28209eda62fecd6e6a2d98b1501bb15f",
}


class DatasetError(ValueError):
    """A dataset file or name that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Split:
    """One split of a dataset.

    Attributes:
        images: ``float32`` array ``[N, H, W, C]`` scaled to ``[0, 1]``.
        labels: ``int32`` array ``[N]`` of class indices.
    """

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: np.ndarray) -> Split:
        """The rows at ``indices`` (a new split; the arrays are copied)."""
        indices = np.asarray(indices, dtype=np.int64)
        return Split(self.images[indices], self.labels[indices])

    def class_counts(self, n_classes: int) -> np.ndarray:
        """Number of examples of each class, ``[n_classes]``."""
        return np.bincount(self.labels, minlength=n_classes)


@dataclass(frozen=True)
class Dataset:
    """A MedMNIST-format dataset with its three splits.

    Attributes:
        name: Dataset name (the file stem for a path).
        train, val, test: The official splits.
        class_names: One name per class (``"0"``, ``"1"``... where not known).
        source: Where the data came from (``embedded:NAME`` or a file path).
    """

    name: str
    train: Split
    val: Split
    test: Split
    class_names: tuple[str, ...]
    source: str

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])  # type: ignore[return-value]

    @property
    def n_channels(self) -> int:
        return int(self.train.images.shape[-1])

    def summary(self) -> dict:
        """Plain-dict summary (the ``dataset`` section of ``report.json``)."""
        return {
            "name": self.name,
            "n_classes": self.n_classes,
            "channels": self.n_channels,
            "image_shape": list(self.image_shape),
            "n_train": len(self.train),
            "n_val": len(self.val),
            "n_test": len(self.test),
            "class_names": list(self.class_names),
            "source": self.source,
        }


def embedded_datasets() -> tuple[str, ...]:
    """Names of the datasets shipped inside the package."""
    return tuple(sorted(EMBEDDED_MD5))


def embedded_path(name: str) -> Path:
    """Path of an embedded ``.npz`` file."""
    if name not in EMBEDDED_MD5:
        raise DatasetError(
            f"unknown dataset name {name!r}: embedded datasets are {list(embedded_datasets())}; "
            "pass a path to a MedMNIST-format .npz for any other dataset"
        )
    return Path(str(resources.files("efl_toolkit.data") / "embedded" / f"{name}.npz"))


def md5sum(path: str | os.PathLike) -> str:
    """MD5 hex digest of a file (MedMNIST publishes MD5s for its files)."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_dataset(name_or_path: str | os.PathLike, class_names: tuple[str, ...] | None = None
                 ) -> Dataset:
    """Loads an embedded dataset by name, or any MedMNIST-format ``.npz`` by path.

    Args:
        name_or_path: ``"breastmnist"``, ``"pneumoniamnist"`` or a path to a ``.npz`` file.
        class_names: Optional class names (at least one per class in the labels; more declare
            classes absent from the file); by default known MedMNIST names (matched on the file
            stem, e.g. ``dermamnist_64.npz``) or ``"0"``, ``"1"``, ...

    Returns:
        The dataset with images as ``float32 [N, H, W, C]`` in ``[0, 1]`` and labels ``int32 [N]``.

    Raises:
        DatasetError: Unknown name, missing file, missing keys, bad shapes, mismatched
            image/label counts, or labels that are not class indices. The message names the file.
    """
    text = os.fspath(name_or_path)
    looks_like_path = text.endswith(".npz") or "/" in text or os.sep in text or Path(
        text).is_file()
    if looks_like_path:
        path = Path(text)
        if not path.is_file():
            raise DatasetError(f"dataset file not found: {path}")
        source = str(path)
        name = path.stem
    else:
        path = embedded_path(text.lower())
        source = f"embedded:{text.lower()}"
        name = text.lower()
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in REQUIRED_KEYS if k not in archive.files]
            if missing:
                raise DatasetError(
                    f"{path}: not a MedMNIST-format file, missing keys {missing} "
                    f"(found {sorted(archive.files)})"
                )
            raw = {k: archive[k] for k in REQUIRED_KEYS}
    except DatasetError:
        raise
    except Exception as error:  # zipfile.BadZipFile, ValueError for pickled arrays, OSError
        if isinstance(error, ValueError) and "pickle" in str(error):  # never allow_pickle
            raise DatasetError(f"{path}: cannot read as .npz: {Path(path).name} is not a NumPy "
                               ".npz archive (or holds pickled objects, which are refused)"
                               ) from None
        raise DatasetError(f"{path}: cannot read as .npz ({type(error).__name__}: {error})"
                           ) from error

    splits = {s: _make_split(path, s, raw[f"{s}_images"], raw[f"{s}_labels"]) for s in SPLITS}
    shapes = {s: splits[s].images.shape[1:] for s in SPLITS}
    if len(set(shapes.values())) != 1:
        raise DatasetError(f"{path}: splits have different image shapes {shapes}")
    n_classes = 1 + max(int(splits[s].labels.max(initial=0)) for s in SPLITS)
    if n_classes < 2:
        raise DatasetError(f"{path}: labels hold a single class; classification needs two or more")
    names = class_names or _default_class_names(name, n_classes)
    if len(names) < n_classes:
        raise DatasetError(
            f"{path}: {len(names)} class names given but the labels hold {n_classes} classes"
        )
    return Dataset(name, splits["train"], splits["val"], splits["test"], tuple(names), source)


#: Channel counts a [N, H, W, C] image file may have.
CHANNELS = (1, 3, 4)


def _make_split(path: Path, split: str, images: np.ndarray, labels: np.ndarray) -> Split:
    shape = tuple(images.shape)
    if images.ndim == 3:
        images = images[..., None]
    supported = ("only 2D images are supported: [N, H, W] (grayscale) or [N, H, W, C] with "
                 f"C in {CHANNELS} channels (grayscale, RGB, RGBA)")
    if images.ndim == 5 or (images.ndim == 4 and images.shape[-1] > max(CHANNELS)):
        raise DatasetError(
            f"{path}: {split}_images has shape {shape}: these look like 3D volumes "
            "([N, D, H, W] or [N, D, H, W, C], e.g. a MedMNIST 3D file such as organmnist3d); "
            f"3D volumes are not supported, {supported}")
    if images.ndim == 4 and images.shape[-1] not in CHANNELS:
        raise DatasetError(
            f"{path}: {split}_images has shape {shape}: {images.shape[-1]} channels are not "
            f"supported; {supported}")
    if images.ndim != 4:
        raise DatasetError(f"{path}: {split}_images has shape {shape}; {supported}")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DatasetError(
            f"{path}: {split}_labels has shape {labels.shape}; expected [N] or [N, 1] "
            "(multi-label files are not supported)"
        )
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(
            f"{path}: {split}_images has {images.shape[0]} images but {split}_labels has "
            f"{labels.shape[0]} labels"
        )
    if images.shape[0] == 0:
        raise DatasetError(f"{path}: split {split!r} is empty")
    if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)):
        raise DatasetError(f"{path}: {split}_labels has dtype {labels.dtype}; expected integers")
    if not np.issubdtype(labels.dtype, np.integer) and not np.all(np.mod(labels, 1) == 0):
        raise DatasetError(f"{path}: {split}_labels are not integer class indices")
    if labels.min() < 0:
        raise DatasetError(f"{path}: {split}_labels has negative class index {labels.min()}")
    if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
        raise DatasetError(f"{path}: {split}_images has dtype {images.dtype}; expected numbers")
    if not np.all(np.isfinite(images)):
        raise DatasetError(f"{path}: {split}_images contains non-finite values")
    low, high = float(images.min()), float(images.max())
    if low < 0 or high > 255:
        raise DatasetError(
            f"{path}: {split}_images values span [{low:g}, {high:g}]; expected pixel values in "
            "[0, 255] (uint8) or [0, 1]"
        )
    scale = 255.0 if (images.dtype == np.uint8 or high > 1.0) else 1.0
    return Split(
        images=(images.astype(np.float32) / np.float32(scale)),
        labels=labels.astype(np.int32),
    )


def _default_class_names(name: str, n_classes: int) -> tuple[str, ...]:
    base = name.split("_")[0].lower()
    known = KNOWN_CLASS_NAMES.get(base)
    if known is not None and len(known) >= n_classes:
        return known
    return tuple(str(i) for i in range(n_classes))
