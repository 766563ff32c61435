"""Partitioners: complete and disjoint, seeded, and actually skewed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from efl_toolkit.data import (
    PartitionError,
    check_partition,
    dirichlet_partition,
    iid_partition,
    label_distributions,
    label_skew,
    load_dataset,
    partition,
    quantity_skew_partition,
    train_val_split,
)

LABELS = np.random.default_rng(7).integers(0, 5, size=2000)  # five classes, near-balanced

PARTITIONERS = {
    "iid": lambda labels, n, seed: iid_partition(labels, n, seed),
    "dirichlet": lambda labels, n, seed: dirichlet_partition(labels, n, seed, alpha=0.5),
    "quantity": lambda labels, n, seed: quantity_skew_partition(labels, n, seed, beta=0.5),
}


def as_sets(parts):
    return [p.tolist() for p in parts]


@pytest.mark.parametrize("scheme", list(PARTITIONERS))
@pytest.mark.parametrize("n", [1, 2, 5, 13])
def test_every_index_exactly_once(scheme, n):
    parts = PARTITIONERS[scheme](LABELS, n, 0)
    assert len(parts) == n
    assert sum(len(p) for p in parts) == len(LABELS)
    assert all(len(p) >= 1 for p in parts)
    merged = np.concatenate(parts)
    assert np.array_equal(np.sort(merged), np.arange(len(LABELS)))
    check_partition(parts, len(LABELS))
    assert all(p.dtype == np.int64 and np.all(np.diff(p) > 0) for p in parts)


@pytest.mark.parametrize("scheme", list(PARTITIONERS))
def test_same_seed_reproduces_and_other_seeds_differ(scheme):
    first = PARTITIONERS[scheme](LABELS, 4, 11)
    again = PARTITIONERS[scheme](LABELS, 4, 11)
    other = PARTITIONERS[scheme](LABELS, 4, 12)
    assert as_sets(first) == as_sets(again)
    assert as_sets(first) != as_sets(other)
    from_generator = PARTITIONERS[scheme](LABELS, 4, np.random.default_rng(11))
    assert as_sets(from_generator) == as_sets(first)


def test_iid_sizes_differ_by_at_most_one_and_keep_label_mix():
    parts = iid_partition(LABELS, 7, 3)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    assert label_skew(LABELS, parts, 5) < 0.06


def test_dirichlet_small_alpha_skews_labels_far_more_than_iid():
    iid = np.mean([label_skew(LABELS, iid_partition(LABELS, 5, s), 5) for s in range(5)])
    skewed = np.mean([label_skew(LABELS, dirichlet_partition(LABELS, 5, s, alpha=0.1), 5)
                      for s in range(5)])
    mild = np.mean([label_skew(LABELS, dirichlet_partition(LABELS, 5, s, alpha=100.0), 5)
                    for s in range(5)])
    assert skewed > 0.4 and skewed > 8 * iid
    assert mild < 0.1 < skewed
    # with alpha=0.1 a typical institution is dominated by one class (IID: about 1/5 each)
    top_share = np.mean([np.median(label_distributions(
        LABELS, dirichlet_partition(LABELS, 5, s, alpha=0.1), 5).max(axis=1)) for s in range(5)])
    assert top_share > 0.5


def test_dirichlet_on_real_binary_labels():
    labels = load_dataset("breastmnist").train.labels
    parts = dirichlet_partition(labels, 3, 0, alpha=0.1, min_per_institution=10)
    check_partition(parts, len(labels))
    assert min(len(p) for p in parts) >= 10
    assert label_skew(labels, parts, 2) > label_skew(labels, iid_partition(labels, 3, 0), 2)


def test_quantity_skew_gives_unequal_sizes_but_similar_label_mix():
    parts = quantity_skew_partition(LABELS, 5, 0, beta=0.3)
    sizes = np.array([len(p) for p in parts])
    assert sizes.max() > 4 * sizes.min()
    big = [p for p in parts if len(p) >= 100]
    assert label_skew(LABELS, big, 5) < 0.1


def test_quantity_skew_respects_minimum():
    parts = quantity_skew_partition(LABELS, 10, 0, beta=0.05, min_per_institution=50)
    assert min(len(p) for p in parts) >= 50
    check_partition(parts, len(LABELS))


def test_dispatcher_matches_named_functions():
    assert as_sets(partition(LABELS, 3, 5, scheme="iid")) == as_sets(iid_partition(LABELS, 3, 5))
    assert as_sets(partition(LABELS, 3, 5, scheme="dirichlet", alpha=0.3)) == as_sets(
        dirichlet_partition(LABELS, 3, 5, alpha=0.3))
    assert as_sets(partition(LABELS, 3, 5, scheme="quantity", beta=0.2)) == as_sets(
        quantity_skew_partition(LABELS, 3, 5, beta=0.2))
    with pytest.raises(ValueError, match=r"unknown partition scheme 'pathological'"):
        partition(LABELS, 3, 0, scheme="pathological")


@pytest.mark.parametrize("scheme", list(PARTITIONERS))
def test_fewer_than_one_institution_is_an_error(scheme):
    for n in (0, -2):
        with pytest.raises(ValueError, match=r"n_institutions must be an integer >= 1"):
            PARTITIONERS[scheme](LABELS, n, 0)


@pytest.mark.parametrize("scheme", list(PARTITIONERS))
def test_more_institutions_than_examples_is_an_error(scheme):
    with pytest.raises(PartitionError, match=r"cannot give 6 institutions at least 1 example"
                                             r"\(s\) each from only 5 training examples"):
        PARTITIONERS[scheme](np.array([0, 1, 0, 1, 0]), 6, 0)


def test_impossible_dirichlet_names_the_institution_after_bounded_redraws():
    labels = np.repeat([0, 1], 50)
    with pytest.raises(PartitionError, match=r"left institution #\d+ with fewer than 5 "
                                             r"examples in \d+ of 20 draws") as info:
        dirichlet_partition(labels, 12, 0, alpha=0.01, min_per_institution=5, max_draws=20)
    assert 0 <= info.value.institution < 12


def test_iid_dispatch_enforces_minimum_and_names_institution():
    with pytest.raises(PartitionError, match=r"institution #\d+ only 3 examples") as info:
        partition(np.zeros(10, int), 3, 0, scheme="iid", min_per_institution=4)
    assert info.value.institution is not None


@pytest.mark.parametrize("bad", [{"alpha": 0.0}, {"alpha": -1.0}])
def test_dirichlet_rejects_non_positive_alpha(bad):
    with pytest.raises(ValueError, match=r"alpha must be > 0"):
        dirichlet_partition(LABELS, 3, 0, **bad)


def test_quantity_rejects_non_positive_beta():
    with pytest.raises(ValueError, match=r"beta must be > 0"):
        quantity_skew_partition(LABELS, 3, 0, beta=0)


def test_labels_must_be_one_dimensional():
    with pytest.raises(ValueError, match=r"labels must be a 1-D array"):
        iid_partition(LABELS.reshape(-1, 2), 2, 0)


def test_seed_none_is_refused():
    with pytest.raises(ValueError, match=r"explicit seed"):
        iid_partition(LABELS, 2, None)


def test_check_partition_detects_drops_duplicates_and_strays():
    with pytest.raises(PartitionError, match=r"indices dropped: \[2\]"):
        check_partition([np.array([0]), np.array([1])], 3)
    with pytest.raises(PartitionError, match=r"indices held twice: \[1\]"):
        check_partition([np.array([0, 1]), np.array([1, 2])], 3)
    with pytest.raises(PartitionError, match=r"institution #1 holds indices outside"):
        check_partition([np.array([0, 1]), np.array([2, 3])], 3)


def test_label_skew_extremes():
    labels = np.repeat([0, 1], 10)
    assert label_skew(labels, [np.arange(0, 20, 2), np.arange(1, 20, 2)], 2) == 0.0
    assert label_skew(labels, [np.arange(10), np.arange(10, 20)], 2) == pytest.approx(0.5)


def test_train_val_split_is_stratified_disjoint_and_complete():
    indices = np.arange(100, 300)
    labels = np.zeros(400, int)
    labels[100:160] = 1  # 60 of class 1, 140 of class 0 in the share
    train, val = train_val_split(indices, labels, 0.15, 0)
    assert len(val) == 30 and len(train) == 170
    assert np.bincount(labels[val], minlength=2).tolist() == [21, 9]
    assert np.intersect1d(train, val).size == 0
    assert np.array_equal(np.union1d(train, val), indices)
    again = train_val_split(indices, labels, 0.15, 0)
    assert np.array_equal(again[1], val)
    assert not np.array_equal(train_val_split(indices, labels, 0.15, 1)[1], val)


def test_train_val_split_edge_cases():
    labels = np.array([0, 1, 1, 0, 1])
    train, val = train_val_split(np.arange(5), labels, 0.0, 0)
    assert len(val) == 0 and np.array_equal(train, np.arange(5))
    train, val = train_val_split(np.arange(5), labels, 0.01, 0)
    assert len(val) == 1 and len(train) == 4  # a non-zero fraction always holds out one
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\)"):
            train_val_split(np.arange(5), labels, bad, 0)


@settings(max_examples=60, deadline=None)
@given(n_samples=st.integers(1, 300), n_classes=st.integers(1, 6), data=st.data(),
       scheme=st.sampled_from(["iid", "dirichlet", "quantity"]), seed=st.integers(0, 2**31))
def test_any_feasible_partition_is_complete_and_disjoint(n_samples, n_classes, data, scheme,
                                                         seed):
    labels = np.random.default_rng(seed).integers(0, n_classes, size=n_samples)
    n = data.draw(st.integers(1, min(n_samples, 8)))
    try:
        parts = partition(labels, n, seed, scheme=scheme, alpha=1.0, beta=1.0)
    except PartitionError as error:  # only a Dirichlet draw can fail, and it says who
        assert scheme == "dirichlet" and error.institution is not None
        return
    assert len(parts) == n and min(len(p) for p in parts) >= 1
    check_partition(parts, n_samples)
