"""Heterogeneity measures on real BreastMNIST institutions and on hand-made ones."""

from __future__ import annotations

import numpy as np
import pytest

from efl_toolkit.course.heterogeneity import (
    class_distributions,
    compare_partitions,
    heterogeneity_stats,
    institution_label_skew,
)
from efl_toolkit.data import CapacityProfile, Institution, Split, load_dataset, make_institutions


@pytest.fixture(scope="module")
def breast():
    return load_dataset("breastmnist")


def institution(name, labels, brightness=0.5):
    labels = np.asarray(labels, np.int32)
    images = np.full((len(labels), 4, 4, 1), brightness, np.float32)
    split = Split(images, labels)
    return Institution(name, split, split, CapacityProfile.preset("small"))


def test_hand_made_numbers():
    a, b = institution("a", [0, 0, 0, 1], 0.2), institution("b", [1, 1], 0.7)
    assert class_distributions([a, b], 2).tolist() == [[0.75, 0.25], [0.0, 1.0]]
    # pooled mix is [0.5, 0.5]: TV distances 0.25 and 0.5
    assert institution_label_skew([a, b], 2) == pytest.approx(0.375)
    stats = heterogeneity_stats([a, b], 3)
    assert stats["size_ratio"] == 2.0 and (stats["min_train"], stats["max_train"]) == (2, 4)
    assert stats["missing_classes"] == 3  # a lacks class 2; b lacks classes 0 and 2
    assert stats["brightness_spread"] == pytest.approx(0.5)
    assert stats["contrast_spread"] == 0.0


def test_identical_institutions_have_no_skew():
    insts = [institution(n, [0, 1, 1]) for n in "abc"]
    assert institution_label_skew(insts, 2) == 0.0


def test_skew_grows_as_alpha_shrinks_on_real_data(breast):
    rows = compare_partitions(breast, 3, {
        "iid": {"scheme": "iid", "device_skew": False},
        "alpha=100": {"alpha": 100.0},
        "alpha=0.1": {"alpha": 0.1},
    }, seed=0)
    skew = {row["setting"]: row["label_skew"] for row in rows}
    assert skew["iid"] < 0.1 < skew["alpha=0.1"]
    assert skew["alpha=100"] < skew["alpha=0.1"]
    iid = rows[0]
    assert iid["missing_classes"] == 0 and iid["size_ratio"] < 1.05
    assert iid["brightness_spread"] < 0.03  # same device everywhere


def test_devices_spread_brightness_and_contrast(breast):
    same = heterogeneity_stats(make_institutions(breast, 4, scheme="iid", device_skew=False,
                                                 seed=1), 2)
    skewed = heterogeneity_stats(make_institutions(breast, 4, scheme="iid", device_skew=True,
                                                   seed=1), 2)
    assert skewed["contrast_spread"] > 3 * same["contrast_spread"]


def test_compare_is_reproducible_per_seed(breast):
    settings = {"skewed": {"alpha": 0.3}}
    assert compare_partitions(breast, 3, settings, seed=4) == compare_partitions(
        breast, 3, settings, seed=4)


def test_errors_name_the_problem(breast):
    with pytest.raises(ValueError, match="setting 'bad'"):
        compare_partitions(breast, 3, {"bad": {"scheme": "no-such-scheme"}})
    with pytest.raises(ValueError, match="settings is empty"):
        compare_partitions(breast, 3, {})
    with pytest.raises(ValueError, match="b: holds label 2 but n_classes=2"):
        heterogeneity_stats([institution("a", [0, 1]), institution("b", [2])], 2)
    with pytest.raises(ValueError, match="no institutions"):
        heterogeneity_stats([], 2)
