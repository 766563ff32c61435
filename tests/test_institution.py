"""Institutions: partition + validation share + device + capacity, summaries and plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from efl_toolkit.config import get_config  # noqa: E402
from efl_toolkit.data import (  # noqa: E402
    DEVICE_PROFILES,
    CapacityProfile,
    DeviceProfile,
    Institution,
    PartitionError,
    apply_device,
    capacity_spread,
    format_summary_table,
    institution_ids,
    institutions_from_config,
    label_skew,
    load_dataset,
    make_institutions,
    plot_class_distribution,
    plot_device_examples,
    summary_table,
)


@pytest.fixture(scope="module")
def breast():
    return load_dataset("breastmnist")


def all_indices(institutions):
    return np.concatenate([np.concatenate([i.train_indices, i.val_indices])
                           for i in institutions])


@pytest.mark.parametrize("scheme", ["iid", "dirichlet", "quantity"])
def test_institutions_cover_the_training_split_exactly_once(breast, scheme):
    insts = make_institutions(breast, 4, scheme=scheme, seed=0)
    assert [i.id for i in insts] == ["hospital-a", "hospital-b", "hospital-c", "hospital-d"]
    merged = all_indices(insts)
    assert len(merged) == len(breast.train)
    assert np.array_equal(np.sort(merged), np.arange(len(breast.train)))
    for inst in insts:
        assert inst.n_train == len(inst.train_indices) >= 1
        assert inst.n_val == len(inst.val_indices) >= 1
        assert inst.n_val == pytest.approx(0.15 * (inst.n_train + inst.n_val), abs=1)
        np.testing.assert_array_equal(inst.train.labels, breast.train.labels[inst.train_indices])
        np.testing.assert_array_equal(inst.val.labels, breast.train.labels[inst.val_indices])


def test_validation_share_is_stratified(breast):
    for inst in make_institutions(breast, 3, scheme="iid", seed=0):
        train_share = inst.train.class_counts(2) / inst.n_train
        val_share = inst.val.class_counts(2) / inst.n_val
        assert np.abs(train_share - val_share).max() < 1.5 / inst.n_val + 0.01


def test_without_device_skew_images_are_the_datasets_rows(breast):
    insts = make_institutions(breast, 3, device_skew=False, seed=0)
    for inst in insts:
        assert inst.device.is_identity
        np.testing.assert_array_equal(inst.train.images, breast.train.images[inst.train_indices])
        np.testing.assert_array_equal(inst.val.images, breast.train.images[inst.val_indices])


def test_device_skew_applies_each_institutions_own_device_to_train_and_val(breast):
    insts = make_institutions(breast, 6, scheme="iid", seed=0)
    assert len({i.device.name for i in insts}) == 6
    means = []
    for inst in insts:
        raw_train = breast.train.images[inst.train_indices]
        raw_val = breast.train.images[inst.val_indices]
        for split in (inst.train, inst.val):
            assert split.images.min() >= 0.0 and split.images.max() <= 1.0
        if inst.device.is_identity:
            np.testing.assert_array_equal(inst.train.images, raw_train)
        else:
            assert np.abs(inst.train.images - raw_train).mean() > 0.01
            assert np.abs(inst.val.images - raw_val).mean() > 0.01
        if inst.device.noise_std == 0:  # deterministic devices: exactly apply_device
            np.testing.assert_allclose(inst.train.images,
                                       apply_device(raw_train, inst.device, 0), atol=1e-6)
        means.append(round(float(inst.train.images.mean()), 3))
    assert len(set(means)) == 6  # the same IID data looks different at each institution


def test_official_splits_stay_clean(breast):
    before = (breast.train.images.copy(), breast.test.images.copy())
    make_institutions(breast, 3, seed=0)
    np.testing.assert_array_equal(breast.train.images, before[0])
    np.testing.assert_array_equal(breast.test.images, before[1])


def test_seeds_reproduce_and_differ(breast):
    a = make_institutions(breast, 3, seed=4)
    b = make_institutions(breast, 3, seed=4)
    c = make_institutions(breast, 3, seed=5)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.train_indices, y.train_indices)
        np.testing.assert_array_equal(x.train.images, y.train.images)
        assert x.device == y.device
    assert any(not np.array_equal(x.train_indices, z.train_indices)
               for x, z in zip(a, c, strict=True))


def test_device_skew_does_not_change_the_partition(breast):
    with_devices = make_institutions(breast, 3, seed=2, device_skew=True)
    without = make_institutions(breast, 3, seed=2, device_skew=False)
    for x, y in zip(with_devices, without, strict=True):
        np.testing.assert_array_equal(x.train_indices, y.train_indices)
        np.testing.assert_array_equal(x.val_indices, y.val_indices)


def test_dirichlet_alpha_controls_label_skew(breast):
    labels = breast.train.labels

    def skew(**kwargs):
        insts = make_institutions(breast, 4, device_skew=False, seed=0, **kwargs)
        return label_skew(labels, [np.concatenate([i.train_indices, i.val_indices])
                                   for i in insts], 2)

    assert skew(scheme="dirichlet", alpha=0.1) > 3 * skew(scheme="iid")


def test_default_capacities_differ_and_explicit_ones_are_used(breast):
    insts = make_institutions(breast, 3, seed=0)
    assert [i.capacity.tier for i in insts] == ["small", "medium", "large"]
    custom = make_institutions(breast, 2, seed=0,
                               capacities=["tiny", CapacityProfile("edge", 0.5, 0.2)],
                               ids=["clinic-1", "clinic-2"])
    assert [i.id for i in custom] == ["clinic-1", "clinic-2"]
    assert [i.capacity.tier for i in custom] == ["tiny", "edge"]


def test_capacity_spread_and_ids():
    assert [c.tier for c in capacity_spread(1)] == ["medium"]
    assert [c.tier for c in capacity_spread(2)] == ["small", "large"]
    assert [c.tier for c in capacity_spread(4)] == ["tiny", "small", "medium", "large"]
    for n in range(2, 9):
        tiers = [c.tier for c in capacity_spread(n)]
        assert tiers[0] != tiers[-1] and len(tiers) == n
    ids = institution_ids(30)
    assert ids[0] == "hospital-a" and ids[25] == "hospital-z" and ids[26] == "hospital-aa"
    assert len(set(ids)) == 30


def test_institutions_from_config(breast):
    config = get_config("classroom_fast").replace(partition="quantity", seed=3)
    insts = institutions_from_config(breast, config)
    assert len(insts) == config.n_institutions
    direct = make_institutions(breast, config.n_institutions, scheme="quantity", seed=3,
                               alpha=config.dirichlet_alpha, val_fraction=config.val_fraction)
    for x, y in zip(insts, direct, strict=True):
        np.testing.assert_array_equal(x.train_indices, y.train_indices)


def test_colour_dataset_with_many_classes(make_npz):
    ds = load_dataset(make_npz(n_channels=3, n_classes=6, sizes=(120, 20, 20)))
    insts = make_institutions(ds, 3, scheme="dirichlet", alpha=0.5, seed=0)
    assert np.array_equal(np.sort(all_indices(insts)), np.arange(120))
    assert all(i.train.images.shape[1:] == (28, 28, 3) for i in insts)


def test_fewer_than_one_institution(breast):
    for n in (0, -1):
        with pytest.raises(ValueError, match=r"n_institutions must be an integer >= 1"):
            make_institutions(breast, n)


def test_more_institutions_than_examples(make_npz):
    ds = load_dataset(make_npz(sizes=(10, 4, 4)))
    with pytest.raises(PartitionError, match=r"cannot give 11 institutions .* from only 10"):
        make_institutions(ds, 11, scheme="iid")


def test_impossible_dirichlet_names_the_institution(breast):
    with pytest.raises(PartitionError, match=r"^hospital-[a-z]+: dirichlet partition "
                                             r"\(alpha=0.001\) left institution #\d+"):
        make_institutions(breast, 12, alpha=0.001, seed=0)


def test_validation_carving_that_leaves_no_training_data_names_the_institution(make_npz):
    ds = load_dataset(make_npz(sizes=(6, 4, 4)))
    with pytest.raises(PartitionError, match=r"hospital-a: its 1 example\(s\) leave nothing to "
                                             r"train on"):
        make_institutions(ds, 6, scheme="iid", min_per_institution=1)
    insts = make_institutions(ds, 6, scheme="iid", min_per_institution=1, val_fraction=0.0)
    assert [i.n_train for i in insts] == [1] * 6 and all(i.n_val == 0 for i in insts)


def test_bad_ids_capacities_and_scheme(breast):
    with pytest.raises(ValueError, match=r"need 3 distinct institution ids"):
        make_institutions(breast, 3, ids=["a", "b"])
    with pytest.raises(ValueError, match=r"need 2 distinct institution ids"):
        make_institutions(breast, 2, ids=["a", "a"])
    with pytest.raises(ValueError, match=r"got 1 capacity profiles for 2 institutions"):
        make_institutions(breast, 2, capacities=["large"])
    with pytest.raises(ValueError, match=r"unknown capacity tier 'huge'"):
        make_institutions(breast, 1, capacities=["huge"])
    with pytest.raises(ValueError, match=r"unknown partition scheme 'label'"):
        make_institutions(breast, 2, scheme="label")


def test_summary_table_rows_and_text(breast):
    insts = make_institutions(breast, 3, seed=0)
    rows = summary_table(insts, breast.n_classes)
    assert [r["id"] for r in rows] == ["hospital-a", "hospital-b", "hospital-c"]
    for row, inst in zip(rows, insts, strict=True):
        assert row["tier"] == inst.capacity.tier and row["device"] == inst.device.name
        assert sum(row["class_counts"]) == row["n_train"] == inst.n_train
        assert sum(row["val_class_counts"]) == row["n_val"] == inst.n_val
    assert sum(r["n_train"] + r["n_val"] for r in rows) == len(breast.train)
    text = format_summary_table(rows, breast.class_names)
    lines = text.splitlines()
    assert len(lines) == 4 and "malignant" in lines[0] and "n_train" in lines[0]
    for row, line in zip(rows, lines[1:], strict=True):
        assert line.split()[:2] == [row["id"], row["tier"]]
        assert line.split()[-2:] == [str(c) for c in row["class_counts"]]
    assert format_summary_table([]) == "(no institutions)"


def test_institution_dataclass_defaults():
    from efl_toolkit.data.medmnist import Split
    split = Split(np.zeros((2, 28, 28, 1), np.float32), np.array([0, 1], np.int32))
    inst = Institution("h", split, split, CapacityProfile.preset("small"))
    assert inst.device == DeviceProfile() and inst.architectures == ()
    assert inst.train_indices is None and inst.n_val == 2


def test_plot_class_distribution_returns_figure(breast):
    insts = make_institutions(breast, 3, alpha=0.3, seed=0)
    fig = plot_class_distribution(insts, breast.class_names)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    heights = np.array([p.get_height() for p in ax.patches]).reshape(2, 3)
    counts = np.stack([i.train.class_counts(2) for i in insts]).T
    np.testing.assert_array_equal(heights, counts)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(breast.class_names)
    fig.canvas.draw()

    host = Figure()
    given_ax = host.add_subplot()
    assert plot_class_distribution(insts, breast.class_names, ax=given_ax,
                                   normalize=True) is host
    shares = np.array([p.get_height() for p in given_ax.patches]).reshape(2, 3).sum(axis=0)
    np.testing.assert_allclose(shares, 1.0)
    with pytest.raises(ValueError, match=r"labels hold 2 classes but 1 class names"):
        plot_class_distribution(insts, ("a",))
    wider = plot_class_distribution(insts, ("a", "b", "absent"))  # a class nobody holds
    assert len(wider.axes[0].patches) == 9


def test_plot_device_examples_returns_figure(breast):
    insts = make_institutions(breast, 3, seed=0)
    fig = plot_device_examples(breast.test.images[0], insts)
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    assert fig.axes[0].get_title() == "original"
    assert fig.axes[1].get_title() == f"{insts[0].id}\n{insts[0].device.name}"
    fig.canvas.draw()
    named = plot_device_examples(breast.test.images[0][..., 0], list(DEVICE_PROFILES.values()))
    assert [a.get_title() for a in named.axes[1:]] == list(DEVICE_PROFILES)
    colour = plot_device_examples(np.random.default_rng(0).random((28, 28, 3)),
                                  [DEVICE_PROFILES["soft-focus"]])
    assert len(colour.axes) == 2
    with pytest.raises(ValueError, match=r"expected one image"):
        plot_device_examples(breast.test.images[:2], [DEVICE_PROFILES["reference"]])
