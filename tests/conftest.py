"""Shared test fixtures: small MedMNIST-format files made on the fly."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("EFL_PRESET", "classroom_fast")
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")


def write_medmnist_npz(path: Path, *, n_channels: int = 1, n_classes: int = 2,
                       sizes: tuple[int, int, int] = (60, 20, 20), side: int = 28,
                       seed: int = 0) -> Path:
    """Writes a small learnable MedMNIST-format file: class k has a bright blob at spot k."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in zip(("train", "val", "test"), sizes, strict=True):
        labels = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, n - n_classes)])
        images = rng.integers(0, 60, size=(n, side, side, n_channels)).astype(np.uint8)
        for i, label in enumerate(labels):
            row, col = divmod(int(label) * 5 % (side - 6), side - 6)
            images[i, row:row + 6, col:col + 6, :] = 230
        arrays[f"{split}_images"] = images[..., 0] if n_channels == 1 else images
        arrays[f"{split}_labels"] = labels.astype(np.uint8)[:, None]
    np.savez_compressed(path, **arrays)
    return path


@pytest.fixture
def make_npz(tmp_path):
    """Factory fixture: ``make_npz(n_channels=3, n_classes=5)`` returns a path to a new file."""
    counter = iter(range(10_000))

    def factory(**kwargs) -> Path:
        return write_medmnist_npz(tmp_path / f"synthetic_{next(counter)}.npz", **kwargs)

    return factory


@pytest.fixture(scope="session")
def breastmnist_experiment(tmp_path_factory):
    """The default experiment (``efl demo``'s job) on the embedded BreastMNIST, run once.

    Returns ``(ExperimentResult, out_dir)``; several test files check different claims on it.
    """
    from efl_toolkit.config import get_config
    from efl_toolkit.pipeline import run_experiment

    out = tmp_path_factory.mktemp("breastmnist_demo")
    return run_experiment(get_config("classroom_fast"), out, progress=False,
                          log=lambda *_: None), out
