"""Training throughput (samples/s) of every zoo architecture, and JAX vs PyTorch for the small CNN.

Each JAX number is ``TrainResult.samples_per_second`` of a real :func:`train_local` run (the
functional ``jax.jit`` step over ``nnx.split`` state, compilation excluded) on synthetic data.
For the small CNN the same model is also trained with a per-step ``nnx.jit`` for comparison.
When PyTorch is installed, the same small CNN (same layers, AdamW, cross-entropy, batch size,
no augmentation) is trained in PyTorch eager mode; JAX and PyTorch runs alternate, and the
ratio is the median of the JAX runs over the median of the PyTorch runs, all in this one run.

Usage:
    python benchmarks/train_throughput.py [--steps 60] [--repeats 3] [--batch-size 64]
        [--image-shape 28,28,1] [--classes 2] [--archs logistic,mlp,vit,cnn,resnet]

Prints one JSON object. Without PyTorch (``pip install torch==2.13.0``) the ``torch`` entry says
why it was skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import jax
import numpy as np
import optax
from flax import nnx

from efl_toolkit.config import TrainConfig
from efl_toolkit.data.medmnist import Split
from efl_toolkit.models.zoo import architecture_names, build_model
from efl_toolkit.training.local import train_local

EMPTY = Split(np.zeros((0, 1, 1, 1), np.float32), np.zeros((0,), np.int32))


def synthetic_split(n: int, image_shape: tuple[int, int, int], n_classes: int) -> Split:
    rng = np.random.default_rng(0)
    images = rng.random((n, *image_shape), dtype=np.float32)
    labels = rng.integers(0, n_classes, n).astype(np.int32)
    return Split(images, labels)


def jax_samples_per_second(arch: str, train: Split, n_classes: int, batch_size: int,
                           seed: int) -> float:
    """One epoch of real ``train_local`` (no validation, no augmentation)."""
    config = TrainConfig(epochs=1, batch_size=batch_size, augment=False)
    empty = Split(np.zeros((0, *train.images.shape[1:]), np.float32), np.zeros((0,), np.int32))
    result = train_local(arch, train, empty, jax.random.key(seed), config, n_classes=n_classes,
                         progress=False)
    return result.samples_per_second


def nnx_jit_samples_per_second(arch: str, train: Split, n_classes: int, batch_size: int,
                               steps: int) -> float:
    """The same model and optimiser with a per-step ``nnx.jit`` (for comparison only)."""
    model = build_model(arch, tuple(train.images.shape[1:]), n_classes, nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adamw(2e-3, weight_decay=1e-4), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, images, labels, key):
        def loss_fn(model):
            logits = model(images, train=True, key=key)
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    key = jax.random.key(0)
    step(model, optimizer, train.images[:batch_size], train.labels[:batch_size], key)
    started = time.perf_counter()
    for index in range(1, steps):
        batch = slice(index * batch_size, (index + 1) * batch_size)
        loss = step(model, optimizer, train.images[batch], train.labels[batch],
                    jax.random.fold_in(key, index))
    loss.block_until_ready()
    return (steps - 1) * batch_size / (time.perf_counter() - started)


def torch_cnn_trainer(image_shape: tuple[int, int, int], n_classes: int, batch_size: int):
    """A PyTorch twin of ``SmallCNN``; returns ``run(train, steps) -> samples/s``."""
    import torch
    from torch import nn

    height, width, channels = image_shape

    class TorchSmallCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(channels, 32, 3, padding=1)
            self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
            self.dense = nn.Linear(max(height // 4, 1) * max(width // 4, 1) * 64, 128)
            self.out = nn.Linear(128, n_classes)
            self.dropout = nn.Dropout(0.3)

        def forward(self, x):
            x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
            x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
            x = self.dropout(torch.relu(self.dense(x.flatten(1))))
            return self.out(x)

    torch.manual_seed(0)

    def run(train: Split, steps: int) -> float:
        model = TorchSmallCNN()
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
        images = torch.from_numpy(np.ascontiguousarray(train.images.transpose(0, 3, 1, 2)))
        labels = torch.from_numpy(train.labels.astype(np.int64))
        order = np.random.default_rng(0).permutation(len(train))

        def step(index: int) -> None:
            batch = torch.from_numpy(order[index * batch_size:(index + 1) * batch_size])
            loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        model.train()
        step(0)  # warm-up, like the JAX compilation step
        started = time.perf_counter()
        for index in range(1, steps):
            step(index)
        return (steps - 1) * batch_size / (time.perf_counter() - started)

    return run, torch.__version__, torch.get_num_threads()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per architecture")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-shape", default="28,28,1", help="H,W,C")
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--archs", default=",".join(architecture_names()))
    args = parser.parse_args(argv)
    image_shape = tuple(int(s) for s in args.image_shape.split(","))
    train = synthetic_split(args.steps * args.batch_size, image_shape, args.classes)

    try:
        torch_run, torch_version, torch_threads = torch_cnn_trainer(
            image_shape, args.classes, args.batch_size)
    except ImportError:
        torch_run = None
        torch_note = ("skipped: PyTorch is not installed (pip install torch==2.13.0 to compare "
                      "the small CNN with PyTorch eager)")

    load_before = os.getloadavg()[0]  # other processes on the machine skew every number
    jax_runs: dict[str, list[float]] = {arch: [] for arch in args.archs.split(",")}
    torch_runs: list[float] = []
    nnx_jit_runs: list[float] = []
    for repeat in range(args.repeats):
        for arch in jax_runs:
            jax_runs[arch].append(jax_samples_per_second(arch, train, args.classes,
                                                         args.batch_size, repeat))
            if arch == "cnn":
                nnx_jit_runs.append(nnx_jit_samples_per_second(arch, train, args.classes,
                                                               args.batch_size, args.steps))
                if torch_run is not None:
                    torch_runs.append(torch_run(train, args.steps))

    report = {
        "benchmark": "train_throughput",
        "unit": "training samples per second (median of repeats; compilation excluded)",
        "batch_size": args.batch_size,
        "image_shape": list(image_shape),
        "n_classes": args.classes,
        "steps": args.steps,
        "repeats": args.repeats,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": sys.version.split()[0], "jax": jax.__version__,
                    "jax_backend": jax.default_backend(),
                    "load_average_1m_before_after": [round(load_before, 2),
                                                     round(os.getloadavg()[0], 2)]},
        "jax": {arch: round(statistics.median(runs), 1) for arch, runs in jax_runs.items()},
        "jax_runs": {arch: [round(r, 1) for r in runs] for arch, runs in jax_runs.items()},
    }
    if nnx_jit_runs:
        report["jax_per_step_nnx_jit"] = {"cnn": round(statistics.median(nnx_jit_runs), 1),
                                          "cnn_runs": [round(r, 1) for r in nnx_jit_runs]}
        report["ratio_functional_over_nnx_jit"] = {
            "cnn": round(statistics.median(jax_runs["cnn"]) / statistics.median(nnx_jit_runs), 3)}
    if torch_run is None:
        report["torch"] = torch_note
    elif "cnn" not in jax_runs:
        report["torch"] = "skipped: the small CNN ('cnn') is not among --archs"
    else:
        torch_median = statistics.median(torch_runs)
        report["torch"] = {"version": torch_version, "threads": torch_threads,
                           "cnn": round(torch_median, 1),
                           "cnn_runs": [round(r, 1) for r in torch_runs]}
        report["ratio_jax_over_torch"] = {
            "cnn": round(statistics.median(jax_runs["cnn"]) / torch_median, 3),
            "cnn_per_repeat": [round(j / t, 3) for j, t in zip(jax_runs["cnn"], torch_runs,
                                                                 strict=True)],
        }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
