"""Model zoo and capacity assignment: every architecture, shapes, one step lowers the loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from efl_toolkit.config import TrainConfig
from efl_toolkit.data.institution import CapacityProfile
from efl_toolkit.data.medmnist import Split
from efl_toolkit.models import (
    ARCHITECTURES,
    architecture_names,
    assign_architectures,
    build_model,
    estimate_cost,
)
from efl_toolkit.models.capacity import fits
from efl_toolkit.models.zoo import max_pool_2x2
from efl_toolkit.training import predict_proba, train_local

ARCHS = architecture_names()
EMPTY = Split(np.zeros((0, 16, 16, 3), np.float32), np.zeros((0,), np.int32))


def test_registry_holds_five_distinct_architectures():
    assert ARCHS == ("logistic", "mlp", "vit", "cnn", "resnet")
    assert len({ARCHITECTURES[a].builder for a in ARCHS}) == 5


@nnx.jit(static_argnames="train")
def forward(model, images, train, key):
    return model(images, train=train, key=key)


@pytest.mark.parametrize("arch", ARCHS)
def test_output_shape_for_grayscale_colour_sizes_and_classes(arch):
    for image_shape, n_classes in [((28, 28, 1), 2), ((20, 24, 3), 5), ((64, 64, 3), 7)]:
        model = nnx.eval_shape(lambda s=image_shape, c=n_classes: build_model(arch, s, c,
                                                                              nnx.Rngs(0)))
        images = jnp.zeros((3, *image_shape))
        for train in (False, True):
            logits = nnx.eval_shape(lambda m, x, t=train: m(x, train=t, key=jax.random.key(0)),
                                    model, images)
            assert logits.shape == (3, n_classes), (image_shape, train)
    model = build_model(arch, (20, 24, 3), 5, nnx.Rngs(0))
    images = np.random.default_rng(0).random((3, 20, 24, 3), np.float32)
    probs = predict_proba(model, images)
    assert probs.shape == (3, 5) and np.all(np.isfinite(probs))


@pytest.mark.parametrize("arch", ARCHS)
def test_one_training_step_lowers_the_loss(arch):
    rng = np.random.default_rng(0)
    images = rng.random((32, 16, 16, 3), np.float32)
    labels = np.arange(32, dtype=np.int32) % 3
    images[labels == 1, :8] += 0.5  # learnable: class-dependent brightness
    split = Split(images, labels)
    model = build_model(arch, (16, 16, 3), 3, nnx.Rngs(0))
    config = TrainConfig(epochs=1, batch_size=32, learning_rate=1e-3, weight_decay=0.0,
                         augment=False)
    result = train_local(model, split, EMPTY, jax.random.key(0), config, progress=False)
    assert len(result.history) == 1

    def loss(m):  # training-mode loss with a fixed dropout key: same mask before and after
        logits = forward(m, jnp.asarray(images), True, jax.random.key(7))
        return float(optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean())

    assert loss(result.model) < loss(model)


def test_training_mode_differs_from_evaluation_mode_where_it_should():
    x = jnp.asarray(np.random.default_rng(0).random((8, 16, 16, 1), np.float32))
    key = jax.random.key(0)
    logistic = build_model("logistic", (16, 16, 1), 2, nnx.Rngs(0))
    assert jnp.allclose(forward(logistic, x, False, key), forward(logistic, x, True, key))
    for arch in ("mlp", "cnn", "resnet"):  # dropout or batch statistics
        model = build_model(arch, (16, 16, 1), 2, nnx.Rngs(0))
        evaluation = forward(model, x, False, key)
        assert jnp.allclose(evaluation, forward(model, x, False, jax.random.key(3))), arch
        assert not jnp.allclose(evaluation, forward(model, x, True, key)), arch
    # a training-mode call updates BatchNorm's running statistics, evaluation does not
    assert not jnp.allclose(evaluation, forward(model, x, False, key))


def test_dropout_needs_a_key_in_training_mode():
    model = build_model("mlp", (8, 8, 1), 2, nnx.Rngs(0))
    with pytest.raises(ValueError, match="key"):
        model(jnp.zeros((2, 8, 8, 1)), train=True)


def test_bad_names_and_shapes_are_rejected():
    with pytest.raises(ValueError, match="unknown architecture 'vgg'"):
        build_model("vgg", (28, 28, 1), 2, nnx.Rngs(0))
    with pytest.raises(ValueError, match="image_shape"):
        build_model("cnn", (28, 28), 2, nnx.Rngs(0))
    with pytest.raises(ValueError, match="n_classes"):
        build_model("cnn", (28, 28, 1), 1, nnx.Rngs(0))


def test_max_pool_matches_flax_max_pool_including_odd_sizes():
    x = jnp.asarray(np.random.default_rng(0).random((2, 7, 9, 3), np.float32))
    expected = nnx.max_pool(x, (2, 2), strides=(2, 2))
    assert jnp.array_equal(max_pool_2x2(x), expected)


def test_max_pool_gradients_match_flax_without_ties_and_forward_mode_works():
    x = jnp.asarray(np.random.default_rng(1).random((2, 7, 9, 3), np.float32))  # no ties
    weights = jnp.asarray(np.random.default_rng(2).random((2, 3, 4, 3), np.float32))

    def loss(pool):
        return lambda x: jnp.sum(weights * pool(x))

    flax_pool = lambda x: nnx.max_pool(x, (2, 2), strides=(2, 2))  # noqa: E731
    ours = jax.grad(loss(max_pool_2x2))(x)
    assert jnp.allclose(ours, jax.grad(loss(flax_pool))(x))
    assert float(jnp.sum(ours != 0)) == 2 * 3 * 4 * 3  # one maximum per window
    tangent = jnp.ones_like(x)
    assert jnp.allclose(jax.jvp(max_pool_2x2, (x,), (tangent,))[1],
                        jax.jvp(flax_pool, (x,), (tangent,))[1])


def test_costs_are_measured_and_ordered():
    costs = {a: estimate_cost(a, (28, 28, 1), 2) for a in ARCHS}
    assert costs["logistic"].n_params == 28 * 28 * 2 + 2
    assert costs["logistic"].forward_flops == 2 * 28 * 28 * 2
    # small CNN: conv1 + conv2 + dense + out (2 FLOPs per multiply-add)
    cnn = 2 * (28 * 28 * 9 * 32 + 14 * 14 * 9 * 32 * 64 + 7 * 7 * 64 * 128 + 128 * 2)
    assert costs["cnn"].forward_flops == cnn
    assert costs["cnn"].train_flops_per_sample == 3 * cnn
    assert costs["resnet"].forward_flops > costs["cnn"].forward_flops > costs["mlp"].forward_flops
    assert costs["resnet"].param_bytes > 4 * costs["resnet"].n_params  # + batch statistics
    bigger = estimate_cost("cnn", (64, 64, 3), 2)
    assert bigger.forward_flops > costs["cnn"].forward_flops


def test_capacity_tiers_map_to_growing_architectures():
    shape = (28, 28, 1)
    picks = {tier: assign_architectures(CapacityProfile.preset(tier), shape, 2)
             for tier in ("tiny", "small", "medium", "large")}
    assert picks["tiny"] == ("logistic",)
    assert picks["small"] == ("mlp", "logistic")
    assert picks["medium"][0] == "cnn"
    assert picks["large"][0] == "resnet" and len(picks["large"]) == 2
    large3 = assign_architectures(CapacityProfile.preset("large"), shape, 2, max_models=3)
    assert large3[:2] == picks["large"] and len(large3) == 3


def test_assignment_respects_the_summed_budget():
    profile = CapacityProfile("custom", compute_gflops=6.0, storage_mb=2.0)
    chosen = assign_architectures(profile, (28, 28, 1), 2, max_models=5, n_samples=200)
    costs = [estimate_cost(a, (28, 28, 1), 2) for a in chosen]
    assert sum(c.epoch_gflops(200) for c in costs) <= 6.0
    assert sum(c.storage_mb for c in costs) <= 2.0
    assert all(fits(c, profile, 200) for c in costs)
    # more data per epoch costs more compute: the same budget affords less
    cheaper = assign_architectures(profile, (28, 28, 1), 2, max_models=5, n_samples=5000)
    assert ARCHITECTURES[cheaper[0]].rank < ARCHITECTURES[chosen[0]].rank


def test_nothing_fits_falls_back_to_the_cheapest_and_bad_arguments_fail():
    broke = CapacityProfile("broke", compute_gflops=0.0, storage_mb=0.0)
    assert assign_architectures(broke, (64, 64, 3), 10) == ("logistic",)
    with pytest.raises(ValueError, match="max_models"):
        assign_architectures(broke, (28, 28, 1), 2, max_models=0)
    with pytest.raises(ValueError, match="unknown candidate"):
        assign_architectures(broke, (28, 28, 1), 2, candidates=("cnn", "vgg"))
