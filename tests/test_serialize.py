"""Deterministic serialization and the model version hash."""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from efl_toolkit.models.zoo import build_model
from efl_toolkit.training.serialize import (
    MAGIC,
    SerializationError,
    arrays_to_bytes,
    bytes_to_arrays,
    model_arrays,
    params_from_bytes,
    params_to_bytes,
    version_hash,
)

SHAPE = (12, 12, 1)


def test_same_parameters_give_the_same_hash():
    a = build_model("resnet", SHAPE, 3, nnx.Rngs(0))
    b = build_model("resnet", SHAPE, 3, nnx.Rngs(0))
    assert params_to_bytes(a) == params_to_bytes(b)
    # the hash by another route (no library encoder): test_independent_references.py
    assert version_hash(a) == version_hash(b)
    assert version_hash(a) != version_hash(build_model("resnet", SHAPE, 3, nnx.Rngs(1)))


def test_any_change_gives_a_new_hash():
    model = build_model("cnn", SHAPE, 2, nnx.Rngs(0))
    before = version_hash(model)
    kernel = model.conv2.kernel
    kernel[...] = kernel[...].at[0, 0, 0, 0].add(1e-6)  # one element, a tiny step
    assert version_hash(model) != before


def test_batch_statistics_are_part_of_the_version():
    model = build_model("resnet", SHAPE, 2, nnx.Rngs(0))
    before = version_hash(model)
    assert "bn_stem/mean" in model_arrays(model)
    model.bn_stem.mean[...] = model.bn_stem.mean[...] + 0.5
    assert version_hash(model) != before


SCRIPT = """
from flax import nnx
from efl_toolkit.models.zoo import build_model
from efl_toolkit.training.serialize import version_hash
print(version_hash(build_model("vit", (12, 12, 3), 4, nnx.Rngs(5))))
"""


def test_a_fresh_process_gives_the_same_hash():
    expected = version_hash(build_model("vit", (12, 12, 3), 4, nnx.Rngs(5)))
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == expected


def test_round_trip_restores_every_variable_and_predictions():
    source = build_model("resnet", SHAPE, 3, nnx.Rngs(0))
    source.bn_stem.var[...] = source.bn_stem.var[...] * 2.0
    template = build_model("resnet", SHAPE, 3, nnx.Rngs(9))
    template_hash = version_hash(template)
    restored = params_from_bytes(template, params_to_bytes(source))
    assert version_hash(restored) == version_hash(source)
    assert version_hash(template) == template_hash  # the template is left alone
    x = jnp.asarray(np.random.default_rng(0).random((2, *SHAPE), np.float32))
    assert jnp.allclose(restored(x), source(x))


def test_format_is_the_documented_one():
    data = arrays_to_bytes({"b": np.arange(3, dtype=np.int32), "a": np.ones((2, 1), np.float32)})
    assert data.startswith(MAGIC)
    assert data[len(MAGIC):len(MAGIC) + 4] == (2).to_bytes(4, "little")
    assert data[len(MAGIC) + 4:len(MAGIC) + 8] == (1).to_bytes(4, "little")  # len("a")
    decoded = bytes_to_arrays(data)
    assert list(decoded) == ["a", "b"]
    assert decoded["b"].dtype == np.int32 and decoded["b"].tolist() == [0, 1, 2]
    big_endian = {"a": np.ones((2, 1), ">f4"), "b": np.arange(3, dtype=">i4")}
    assert arrays_to_bytes(big_endian) == data  # byte order never changes the bytes


def test_bad_bytes_and_mismatched_templates_are_rejected():
    model = build_model("mlp", SHAPE, 2, nnx.Rngs(0))
    data = params_to_bytes(model)
    with pytest.raises(SerializationError, match="bad magic"):
        params_from_bytes(model, b"not a model" + data)
    with pytest.raises(SerializationError, match="truncated"):
        params_from_bytes(model, data[:-5])
    with pytest.raises(SerializationError, match="trailing"):
        params_from_bytes(model, data + b"\x00")
    with pytest.raises(SerializationError, match="missing"):
        params_from_bytes(build_model("cnn", SHAPE, 2, nnx.Rngs(0)), data)
    wrong_classes = r"out/bias: stored float32\[2\] but the template has float32\[3\]"
    with pytest.raises(SerializationError, match=wrong_classes):
        params_from_bytes(build_model("mlp", SHAPE, 3, nnx.Rngs(0)), data)


def test_hash_of_a_trained_model_is_reproducible_from_the_key():
    from efl_toolkit.config import TrainConfig
    from efl_toolkit.data.medmnist import Split
    from efl_toolkit.training.local import train_local

    rng = np.random.default_rng(0)
    split = Split(rng.random((24, *SHAPE), np.float32), (np.arange(24) % 2).astype(np.int32))
    config = TrainConfig(epochs=2, batch_size=8)

    def train(seed):
        return train_local("mlp", split, split, jax.random.key(seed), config, n_classes=2,
                           progress=False).model

    assert version_hash(train(0)) == version_hash(train(0))
    assert version_hash(train(0)) != version_hash(train(1))
