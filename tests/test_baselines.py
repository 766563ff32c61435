"""Centralized (upper bound, efl_toolkit.baselines) and each institution alone (the method's
level 1, efl_toolkit.federation.level1, also the lower bound), on test."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from efl_toolkit.baselines import train_centralized
from efl_toolkit.config import TrainConfig, get_config
from efl_toolkit.data import load_dataset
from efl_toolkit.data.institution import CapacityProfile, Institution
from efl_toolkit.data.medmnist import Split
from efl_toolkit.federation.level1 import (
    best_single,
    institution_architectures,
    train_each_alone,
)
from efl_toolkit.training import evaluate, predict_proba

CONFIG = TrainConfig(epochs=3, batch_size=16, learning_rate=3e-3, augment=False)


@pytest.fixture
def dataset(make_npz):
    return load_dataset(make_npz(n_channels=3, n_classes=3, sizes=(90, 30, 45), side=20))


def institutions_of(dataset, tiers, architectures=None):
    n = len(dataset.train)
    parts = np.array_split(np.arange(n), len(tiers))
    out = []
    for i, (part, tier) in enumerate(zip(parts, tiers, strict=True)):
        cut = int(len(part) * 0.8)
        out.append(Institution(
            id=f"hospital-{'abc'[i]}", train=dataset.train.subset(part[:cut]),
            val=dataset.train.subset(part[cut:]), capacity=CapacityProfile.preset(tier),
            architectures=architectures[i] if architectures else ()))
    return out


def test_centralized_trains_on_the_pooled_split_and_evaluates_on_test(dataset):
    result = train_centralized(dataset, "mlp", CONFIG, jax.random.key(0))
    assert result.name == "centralized" and result.architectures == ("mlp",)
    assert result.n_train == len(dataset.train)
    assert result.test_probs.shape == (len(dataset.test), 3)
    again = evaluate(predict_proba(result.trained[0].model, dataset.test.images),
                     dataset.test.labels, 3)
    assert result.test.accuracy == pytest.approx(again.accuracy)
    assert result.per_model["mlp"].accuracy == pytest.approx(again.accuracy)
    assert result.test.accuracy >= 0.8  # the synthetic task is easy
    json.dumps(result.to_dict())


def test_each_alone_uses_own_data_own_architectures_and_a_mean_ensemble(dataset):
    institutions = institutions_of(dataset, ["tiny", "small", "medium"],
                                   architectures=[(), (), ("cnn", "logistic")])
    results = train_each_alone(institutions, dataset, get_config().replace(train=CONFIG),
                               jax.random.key(0))
    assert list(results) == ["hospital-a", "hospital-b", "hospital-c"]
    assert results["hospital-a"].architectures == ("logistic",)  # assigned from capacity
    assert results["hospital-c"].architectures == ("cnn", "logistic")  # given
    for inst in institutions:
        result = results[inst.id]
        assert result.n_train == inst.n_train
        assert all(t.n_train == inst.n_train for t in result.trained)
        probs = [predict_proba(t.model, dataset.test.images) for t in result.trained]
        assert np.allclose(result.test_probs, np.mean(probs, axis=0), atol=1e-6)
    best = best_single(results)
    assert best.test.accuracy == max(r.test.accuracy for r in results.values())


def test_each_alone_is_reproducible_and_keys_differ_between_institutions(dataset):
    twins = institutions_of(dataset, ["tiny", "tiny"])
    twins = [twins[0], Institution("hospital-b", twins[0].train, twins[0].val,
                                   twins[0].capacity)]
    first = train_each_alone(twins, dataset, CONFIG, jax.random.key(3))
    second = train_each_alone(twins, dataset, CONFIG, jax.random.key(3))
    a, b = first["hospital-a"].test_probs, first["hospital-b"].test_probs
    assert np.array_equal(a, second["hospital-a"].test_probs)
    assert not np.allclose(a, b)  # same data, different institution key
    with pytest.raises(ValueError, match="distinct"):
        train_each_alone([twins[0], twins[0]], dataset, CONFIG, jax.random.key(0))


def test_architectures_follow_capacity_and_the_real_dataset(dataset):
    breast = load_dataset("breastmnist")
    big = Institution("h", breast.train, Split(breast.val.images, breast.val.labels),
                      CapacityProfile.preset("large"))
    assert institution_architectures(big, breast)[0] == "resnet"
    tiny = institutions_of(dataset, ["tiny"])[0]
    assert institution_architectures(tiny, dataset) == ("logistic",)
