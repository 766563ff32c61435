"""Messages that say what is wrong and how to fix it (issue 10, fault 4).

* A 3D MedMNIST-style file (``[N, 28, 28, 28]`` volumes) was rejected with "expected [N, H, W]
  or [N, H, W, C]" although its shape has that form: say that 3D volumes are not supported and
  which channel counts are.
* ``dirichlet_alpha=inf`` produced 200 RuntimeWarnings and then a hint to "raise alpha":
  non-finite or non-positive numeric options are rejected up front with one message.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from efl_toolkit.config import ConfigError, ExperimentConfig, TrainConfig, get_config
from efl_toolkit.data import DatasetError, load_dataset, make_institutions
from efl_toolkit.data.partition import dirichlet_partition, quantity_skew_partition


def write_npz(path, image_shape, n=6):
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, *image_shape), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(-1, 1)
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("image_shape", [(28, 28, 28), (28, 28, 28, 1), (64, 64, 64),
                                         (28, 28, 28, 3)])
def test_3d_volumes_are_named_as_such(tmp_path, image_shape):
    path = write_npz(tmp_path / "organmnist3d.npz", image_shape)
    with pytest.raises(DatasetError) as err:
        load_dataset(path)
    message = str(err.value)
    assert "3D volumes are not supported" in message
    assert "C in (1, 3, 4) channels" in message
    assert "expected [N, H, W] or [N, H, W, C]" not in message


def test_an_unsupported_channel_count_is_named(tmp_path):
    path = write_npz(tmp_path / "two.npz", (28, 28, 2))
    with pytest.raises(DatasetError, match=r"2 channels are not supported; only 2D images .* "
                                           r"C in \(1, 3, 4\)"):
        load_dataset(path)


def test_supported_shapes_still_load(tmp_path):
    for shape in [(28, 28), (28, 28, 1), (28, 28, 3), (28, 28, 4)]:
        assert load_dataset(write_npz(tmp_path / f"ok{len(shape)}{shape[-1]}.npz", shape))


BAD_OPTIONS = [
    ({"dirichlet_alpha": math.inf}, "dirichlet_alpha must be a number, finite, got inf"),
    ({"dirichlet_alpha": math.nan}, "dirichlet_alpha must be a number, finite, got nan"),
    ({"dirichlet_alpha": 0.0}, "dirichlet_alpha must be > 0, got 0.0"),
    ({"dirichlet_alpha": -1}, "dirichlet_alpha must be > 0, got -1"),
    ({"val_fraction": math.nan}, "val_fraction must be a number, finite, got nan"),
    ({"n_institutions": 0}, "n_institutions must be >= 1, got 0"),
    ({"n_institutions": 2.5}, "n_institutions must be an integer, finite, got 2.5"),
    ({"n_parties": 0}, "n_parties must be >= "),
    ({"train": {"learning_rate": math.inf}}, "train.learning_rate must be a number, finite"),
    ({"train": {"epochs": 0}}, "train.epochs must be >= 1, got 0"),
    ({"train": {"batch_size": -3}}, "train.batch_size must be >= 1, got -3"),
    ({"partition": "random"}, "partition must be one of ['iid', 'dirichlet', 'quantity']"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_OPTIONS)
def test_bad_numeric_options_fail_up_front_with_one_message(overrides, message):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not a single RuntimeWarning on the way
        with pytest.raises(ConfigError) as err:
            get_config("classroom_fast", **overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_configs_are_checked_however_they_are_built():
    with pytest.raises(ConfigError, match="dirichlet_alpha"):
        ExperimentConfig(dirichlet_alpha=math.inf)
    with pytest.raises(ConfigError, match="dirichlet_alpha"):
        get_config("paper").replace(dirichlet_alpha=-math.inf)
    with pytest.raises(ConfigError, match="train.patience"):
        TrainConfig(patience=-1)
    assert get_config("classroom_fast", dirichlet_alpha=1e6).dirichlet_alpha == 1e6


@pytest.mark.parametrize("value", [math.inf, math.nan, 0.0, -2.0])
def test_partitions_reject_non_finite_concentrations_without_warnings(value):
    labels = np.repeat([0, 1], 50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="alpha must be > 0 and finite"):
            dirichlet_partition(labels, 3, 0, alpha=value)
        with pytest.raises(ValueError, match="beta must be > 0 and finite"):
            quantity_skew_partition(labels, 3, 0, beta=value)
        with pytest.raises(ValueError, match="alpha must be > 0 and finite"):
            make_institutions(load_dataset("breastmnist"), 3, alpha=value)
