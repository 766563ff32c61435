"""FedAvg: real rounds on small learnable data, exact weighted aggregation, explicit keys, and
the clear error when architectures differ."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

from efl_toolkit.baselines.fedavg import fedavg_train
from efl_toolkit.config import TrainConfig
from efl_toolkit.data import Split, load_dataset, make_institutions
from efl_toolkit.federation.fedavg import (
    ArchitectureMismatchError,
    average_parameters,
    check_averageable,
    fedavg_init,
    fedavg_model,
    fedavg_round,
    mismatch_reason,
    parameter_shapes,
    weighted_average,
)
from efl_toolkit.models import build_model
from efl_toolkit.rng import institution_key
from efl_toolkit.training import evaluate, predict_proba, train_local

CONFIG = TrainConfig(epochs=1, batch_size=16, learning_rate=5e-3, augment=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small learnable dataset split unevenly among three institutions."""
    from conftest import write_medmnist_npz

    path = write_medmnist_npz(tmp_path_factory.mktemp("fedavg") / "blobs.npz",
                              sizes=(150, 20, 60), side=16, seed=3)
    dataset = load_dataset(path)
    institutions = make_institutions(dataset, 3, scheme="quantity", beta=2.0,
                                     device_skew=False, seed=0)
    return dataset, institutions


def accuracy(model, split: Split) -> float:
    return evaluate(predict_proba(model, split.images), split.labels, 2, warn=False).accuracy


def flat_params(tree) -> dict:
    return {path: np.asarray(var.get_value()) for path, var in nnx.to_flat_state(tree)}


def abstract_model(arch: str, image_shape):
    return nnx.eval_shape(lambda: build_model(arch, image_shape, 2, nnx.Rngs(0)))


def test_a_few_rounds_improve_test_accuracy(tiny):
    dataset, institutions = tiny
    key = jax.random.key(0)
    start = fedavg_init("logistic", dataset.image_shape, 2, jax.random.fold_in(key, 0))
    before = accuracy(fedavg_model(start), dataset.test)
    run = fedavg_train(institutions, dataset.test, key, CONFIG, arch="logistic", rounds=4,
                       progress=False)
    assert [row["round"] for row in run.history] == [1, 2, 3, 4]
    assert run.state.round == 4 and run.accuracy == run.history[-1]["accuracy"]
    assert run.accuracy >= 0.9 > before + 0.2
    assert run.auc > 0.9
    assert run.accuracy == pytest.approx(accuracy(fedavg_model(run.state), dataset.test))


def test_round_is_the_n_train_weighted_average_of_local_training(tiny):
    dataset, institutions = tiny
    state = fedavg_init("logistic", dataset.image_shape, 2, jax.random.key(1))
    key = jax.random.key(2)
    new = fedavg_round(state, institutions, key, CONFIG, local_epochs=2)

    sizes = np.array([inst.n_train for inst in institutions], float)
    assert len(set(sizes)) == 3  # quantity skew: the weights really differ
    np.testing.assert_allclose(new.weights, sizes / sizes.sum())
    assert new.round == 1 and state.round == 0  # the old state is untouched

    # the same local training by hand, with the documented per-institution keys
    config = dataclasses.replace(CONFIG, epochs=2)
    local = []
    for index, inst in enumerate(institutions):
        empty = Split(inst.train.images[:0], inst.train.labels[:0])
        result = train_local(fedavg_model(state), inst.train, empty,
                             institution_key(key, index, 0), config, n_classes=2,
                             progress=False)
        local.append(flat_params(nnx.state(result.model, nnx.Param)))
    expected = {path: sum(w * p[path] for w, p in zip(sizes / sizes.sum(), local, strict=True))
                for path in local[0]}
    got = flat_params(new.params)
    assert got.keys() == expected.keys()
    for path in got:
        np.testing.assert_allclose(got[path], expected[path], rtol=1e-5, atol=1e-6)
    assert not np.allclose(local[0][("linear", "kernel")], local[1][("linear", "kernel")])


def test_aggregation_is_a_pluggable_pure_function(tiny):
    dataset, institutions = tiny
    state = fedavg_init("logistic", dataset.image_shape, 2, jax.random.key(3))
    seen = []

    def spy(trees, weights):
        seen.append((len(trees), np.asarray(weights)))
        return weighted_average(trees, weights)

    default = fedavg_round(state, institutions, jax.random.key(4), CONFIG)
    plugged = fedavg_round(state, institutions, jax.random.key(4), CONFIG, aggregate=spy)
    (n_trees, weights), = seen
    sizes = np.array([inst.n_train for inst in institutions], float)
    assert n_trees == 3
    np.testing.assert_allclose(weights, sizes / sizes.sum())
    a, b = flat_params(default.params), flat_params(plugged.params)
    assert all(np.array_equal(a[p], b[p]) for p in a)

    first_only = fedavg_round(state, institutions, jax.random.key(4), CONFIG,
                              aggregate=lambda trees, weights: trees[0])
    assert not np.allclose(flat_params(first_only.params)[("linear", "kernel")],
                           a[("linear", "kernel")])
    assert first_only.round == 1 and first_only.weights == default.weights


def test_keys_make_rounds_reproducible(tiny):
    dataset, institutions = tiny
    state = fedavg_init("logistic", dataset.image_shape, 2, jax.random.key(5))
    a = flat_params(fedavg_round(state, institutions, jax.random.key(7), CONFIG).params)
    b = flat_params(fedavg_round(state, institutions, jax.random.key(7), CONFIG).params)
    c = flat_params(fedavg_round(state, institutions, jax.random.key(8), CONFIG).params)
    assert all(np.array_equal(a[p], b[p]) for p in a)
    assert not all(np.array_equal(a[p], c[p]) for p in a)


def test_mixed_architectures_raise_naming_the_institutions():
    models = {  # abstract models: shapes only, nothing is allocated
        "hospital-a": abstract_model("mlp", (28, 28, 1)),
        "hospital-b": abstract_model("cnn", (28, 28, 1)),
    }
    with pytest.raises(ArchitectureMismatchError) as error:
        average_parameters(models)
    message = str(error.value)
    assert "hospital-a (MLP)" in message and "hospital-b (SmallCNN)" in message
    assert "parameter trees differ" in message and "ensemble" in message
    assert "hidden1/kernel (784, 128)" in message or "conv1/kernel" in message


def test_same_architecture_other_shapes_name_the_parameter():
    models = {
        "hospital-a": abstract_model("cnn", (28, 28, 1)),
        "hospital-c": abstract_model("cnn", (32, 32, 1)),
    }
    with pytest.raises(ArchitectureMismatchError,
                       match=r"hospital-a .* hospital-c .*parameter dense/kernel has shape "
                             r"\(3136, 128\) at hospital-a but \(4096, 128\) at hospital-c"):
        check_averageable(models)


class TinyBatchNormNet(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.linear = nnx.Linear(4, 3, rngs=rngs)
        self.norm = nnx.BatchNorm(3, rngs=rngs)

    def __call__(self, x):
        return self.norm(self.linear(x), use_running_average=True)


def test_average_covers_batchnorm_statistics():
    a, b = TinyBatchNormNet(nnx.Rngs(0)), TinyBatchNormNet(nnx.Rngs(1))
    b.norm.mean[...] = b.norm.mean[...] + 4.0
    avg = average_parameters({"x": a, "y": b}, [1, 3])
    np.testing.assert_allclose(np.asarray(avg.norm.mean[...]),
                               0.25 * np.asarray(a.norm.mean[...])
                               + 0.75 * np.asarray(b.norm.mean[...]), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(avg.linear.kernel[...]),
                               0.25 * np.asarray(a.linear.kernel[...])
                               + 0.75 * np.asarray(b.linear.kernel[...]), rtol=1e-5, atol=1e-7)
    assert parameter_shapes(avg) == parameter_shapes(a)


def test_bad_inputs_are_named(tiny):
    dataset, institutions = tiny
    state = fedavg_init("logistic", dataset.image_shape, 2, jax.random.key(0))
    empty = dataclasses.replace(institutions[1], train=Split(
        institutions[1].train.images[:0], institutions[1].train.labels[:0]))
    with pytest.raises(ValueError, match=f"{institutions[1].id}: has no training data"):
        fedavg_round(state, [institutions[0], empty], jax.random.key(0), CONFIG)
    with pytest.raises(ValueError, match="local_epochs"):
        fedavg_round(state, institutions, jax.random.key(0), CONFIG, local_epochs=0)
    with pytest.raises(ValueError, match="at least one institution"):
        fedavg_round(state, [], jax.random.key(0), CONFIG)
    with pytest.raises(ValueError, match="evaluation split is empty"):
        fedavg_train(institutions, Split(dataset.test.images[:0], dataset.test.labels[:0]),
                     jax.random.key(0), CONFIG, arch="logistic", rounds=1, progress=False)
    with pytest.raises(ValueError, match="weights"):
        average_parameters({"a": fedavg_model(state), "b": fedavg_model(state)}, [1, -1])
    assert mismatch_reason({"w": (1,)}, {"w": (1,)}) is None
