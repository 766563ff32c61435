"""The MedMNIST loader: embedded files, any MedMNIST-format file, and every bad input."""

from __future__ import annotations

import numpy as np
import pytest

from efl_toolkit.data import DatasetError, embedded_datasets, load_dataset
from efl_toolkit.data.medmnist import EMBEDDED_MD5, KNOWN_CLASS_NAMES, embedded_path, md5sum

# Official MD5s (MedMNIST 3.0.2 medmnist/info.py), written out here independently of the code.
OFFICIAL = {"breastmnist": "750601b1f35ba3300ea97c75c52ff8f6",
            "pneumoniamnist": "28209eda62fecd6e6a2d98b1501bb15f"}


def arrays(n=(12, 4, 4), side=28, channels=None, n_classes=2, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for split, size in zip(("train", "val", "test"), n, strict=True):
        shape = (size, side, side) if channels is None else (size, side, side, channels)
        out[f"{split}_images"] = rng.integers(0, 256, size=shape).astype(np.uint8)
        labels = np.arange(size) % n_classes
        out[f"{split}_labels"] = labels.astype(np.uint8)[:, None]
    return out


def write(tmp_path, name="custom.npz", **overrides):
    data = arrays()
    data.update(overrides)
    data = {k: v for k, v in data.items() if v is not None}
    path = tmp_path / name
    np.savez(path, **data)
    return path


@pytest.mark.parametrize("name, n_train, n_val, n_test", [
    ("breastmnist", 546, 78, 156), ("pneumoniamnist", 4708, 524, 624)])
def test_embedded_dataset_shapes_and_official_md5(name, n_train, n_val, n_test):
    assert md5sum(embedded_path(name)) == OFFICIAL[name] == EMBEDDED_MD5[name]
    ds = load_dataset(name)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (n_train, n_val, n_test)
    assert ds.image_shape == (28, 28, 1) and ds.n_channels == 1 and ds.n_classes == 2
    for split in (ds.train, ds.val, ds.test):
        assert split.images.dtype == np.float32 and split.labels.dtype == np.int32
        assert split.images.min() >= 0.0 and split.images.max() <= 1.0
        assert split.images.max() > 0.9  # scaled from uint8, not left in [0, 255] or crushed
        assert set(np.unique(split.labels)) == {0, 1}
    assert ds.source == f"embedded:{name}"
    assert ds.class_names == KNOWN_CLASS_NAMES[name]


def test_embedded_names_and_case_insensitive_lookup():
    assert embedded_datasets() == ("breastmnist", "pneumoniamnist")
    assert load_dataset("BreastMNIST").class_names == ("malignant", "normal, benign")
    assert load_dataset("pneumoniamnist").class_names == ("normal", "pneumonia")


def test_summary_dict():
    summary = load_dataset("breastmnist").summary()
    assert summary["name"] == "breastmnist" and summary["n_classes"] == 2
    assert summary["channels"] == 1 and summary["n_train"] == 546 and summary["n_test"] == 156


@pytest.mark.parametrize("n_channels, n_classes", [(1, 2), (1, 5), (3, 2), (3, 7)])
def test_loads_grayscale_and_colour_files_with_any_class_count(make_npz, n_channels, n_classes):
    path = make_npz(n_channels=n_channels, n_classes=n_classes, sizes=(40, 12, 10))
    ds = load_dataset(path)
    assert ds.n_channels == n_channels and ds.n_classes == n_classes
    assert ds.image_shape == (28, 28, n_channels)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (40, 12, 10)
    assert ds.class_names == tuple(str(i) for i in range(n_classes))
    assert ds.name == path.stem and ds.source == str(path)
    raw = np.load(path)
    expected = raw["train_images"].astype(np.float32) / 255
    if n_channels == 1:
        expected = expected[..., None]
    np.testing.assert_allclose(ds.train.images, expected, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(ds.train.labels, raw["train_labels"][:, 0])


def test_loads_string_path_flat_labels_and_float_images(tmp_path):
    data = arrays()
    data["train_labels"] = data["train_labels"][:, 0].astype(np.int64)
    for split in ("train", "val", "test"):
        data[f"{split}_images"] = data[f"{split}_images"].astype(np.float32) / 255
    path = tmp_path / "floats.npz"
    np.savez(path, **data)
    ds = load_dataset(str(path))
    np.testing.assert_allclose(ds.train.images[..., 0], data["train_images"], atol=1e-7)
    assert ds.train.labels.tolist() == data["train_labels"].tolist()


def test_larger_images_load(tmp_path):
    path = tmp_path / "big.npz"
    np.savez(path, **arrays(side=64, channels=3))
    assert load_dataset(path).image_shape == (64, 64, 3)


def test_known_class_names_follow_the_file_stem(tmp_path):
    path = tmp_path / "dermamnist_64.npz"
    np.savez(path, **arrays(n_classes=7, n=(14, 7, 7)))
    ds = load_dataset(path)
    assert ds.class_names == KNOWN_CLASS_NAMES["dermamnist"] and ds.n_classes == 7


def test_known_dataset_keeps_all_class_names_when_a_file_lacks_the_top_class(tmp_path):
    path = tmp_path / "bloodmnist.npz"
    np.savez(path, **arrays(n_classes=5))
    ds = load_dataset(path)
    assert ds.n_classes == 8 and ds.class_names[0] == "basophil"


def test_explicit_class_names(make_npz):
    path = make_npz(n_classes=3)
    assert load_dataset(path, class_names=("a", "b", "c")).class_names == ("a", "b", "c")
    assert load_dataset(path, class_names=("a", "b", "c", "d")).n_classes == 4
    with pytest.raises(DatasetError, match=r"2 class names given but the labels hold 3"):
        load_dataset(path, class_names=("a", "b"))


def test_unknown_dataset_name():
    with pytest.raises(DatasetError, match=r"unknown dataset name 'dermamnist'.*breastmnist"):
        load_dataset("dermamnist")


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nowhere.npz"
    with pytest.raises(DatasetError, match=r"dataset file not found: .*nowhere\.npz"):
        load_dataset(missing)


def test_file_that_is_not_npz(tmp_path):
    path = tmp_path / "garbage.npz"
    path.write_bytes(b"this is not a zip archive")
    with pytest.raises(DatasetError, match=r"garbage\.npz: cannot read as \.npz"):
        load_dataset(path)


def test_missing_keys_are_listed(tmp_path):
    path = write(tmp_path, "nokeys.npz", val_labels=None, test_images=None)
    with pytest.raises(DatasetError, match=r"nokeys\.npz: not a MedMNIST-format file, missing "
                                           r"keys \['val_labels', 'test_images'\]"):
        load_dataset(path)


def test_mismatched_image_and_label_counts(tmp_path):
    path = write(tmp_path, "mismatch.npz", val_labels=np.zeros((3, 1), np.uint8))
    with pytest.raises(DatasetError, match=r"mismatch\.npz: val_images has 4 images but "
                                           r"val_labels has 3 labels"):
        load_dataset(path)


@pytest.mark.parametrize("override, message", [
    ({"train_images": np.zeros((12, 28), np.uint8)}, r"train_images has shape \(12, 28\)"),
    ({"test_images": np.zeros((4, 28, 28, 2), np.uint8)}, r"test_images has shape"),
    ({"train_labels": np.zeros((12, 3), np.uint8)}, r"train_labels has shape \(12, 3\).*"
                                                    r"multi-label"),
    ({"val_labels": np.array([0, 1, -1, 0])}, r"val_labels has negative class index -1"),
    ({"val_labels": np.array([0, 0.5, 1, 0])}, r"val_labels are not integer class indices"),
    ({"val_labels": np.array(["a", "b", "a", "b"])}, r"val_labels has dtype <U1"),
    ({"test_images": np.zeros((0, 28, 28), np.uint8),
      "test_labels": np.zeros((0,), np.uint8)}, r"split 'test' is empty"),
    ({"val_images": np.full((4, 28, 28), np.nan, np.float32)}, r"val_images contains "
                                                               r"non-finite"),
    ({"val_images": np.full((4, 28, 28), -3.0, np.float32)}, r"val_images values span "
                                                             r"\[-3, -3\]"),
    ({"val_images": np.zeros((4, 32, 32), np.uint8)}, r"splits have different image shapes"),
])
def test_bad_arrays_are_named(tmp_path, override, message):
    path = write(tmp_path, "bad.npz", **override)
    with pytest.raises(DatasetError, match=r"bad\.npz: " + message):
        load_dataset(path)


def test_single_class_labels_are_rejected(tmp_path):
    data = arrays(n_classes=1)
    path = tmp_path / "oneclass.npz"
    np.savez(path, **data)
    with pytest.raises(DatasetError, match=r"oneclass\.npz: labels hold a single class"):
        load_dataset(path)


def test_pickled_object_arrays_are_refused(tmp_path):
    path = write(tmp_path, "pickled.npz", train_labels=np.array([object()] * 12))
    with pytest.raises(DatasetError, match=r"pickled\.npz: cannot read as \.npz"):
        load_dataset(path)


def test_a_directory_named_like_a_dataset_does_not_shadow_it(tmp_path, monkeypatch):
    (tmp_path / "breastmnist").mkdir()
    monkeypatch.chdir(tmp_path)
    assert load_dataset("breastmnist").source == "embedded:breastmnist"
