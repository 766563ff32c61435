"""Training throughput (samples/s) of every zoo architecture, and JAX vs PyTorch for the small CNN.

Each JAX number is ``TrainResult.samples_per_second`` of a real :func:`train_local` run (the
functional ``jax.jit`` step over ``nnx.split`` state, compiled with
``training_compiler_options()``, compilation excluded) on synthetic data. For the small CNN
(``cnn``) three more numbers are measured in the same run:

* ``torch``: the same network in PyTorch eager mode (same layers and per-image standardization,
  AdamW, cross-entropy, batch size, no augmentation), when PyTorch is installed;
* ``functional_step_xla_default_options``: the same step compiled with XLA's default options
  (YNNPACK also runs the convolutions: the configuration before the speed-up);
* ``per_step_nnx_jit``: the same model and optimiser under a per-step ``nnx.jit`` (XLA
  defaults; pays a graph traversal on every call).

Repeats alternate JAX and PyTorch, so both see the same machine load; every ratio is a ratio of
medians over repeats of this one run. The machine's load average is reported: other processes
skew every number, PyTorch's OpenMP threads most of all.

Usage:
    python benchmarks/train_throughput.py [--steps 60] [--repeats 5] [--batch-size 64]
        [--image-shape 28,28,1] [--classes 2] [--archs logistic,mlp,vit,cnn,resnet]

Prints one JSON object. Without PyTorch (``pip install torch==2.13.0``) the ``torch`` entry says
why it was skipped and no ratio against PyTorch is given.
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
from efl_toolkit.training import local
from efl_toolkit.training.local import train_local

TORCH_MISSING = ("skipped: PyTorch is not installed (pip install torch==2.13.0 to compare the "
                 "small CNN with PyTorch eager)")


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


def xla_default_step_samples_per_second(arch: str, train: Split, n_classes: int,
                                        batch_size: int, steps: int) -> float:
    """``train_local``'s step and loop, but compiled with XLA's default options."""
    model = build_model(arch, tuple(train.images.shape[1:]), n_classes, nnx.Rngs(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    weight_decay = TrainConfig().weight_decay
    opt_state = local._optimizer(weight_decay).init(params)
    step = local._train_step(graphdef, weight_decay, False, xla_defaults=True)
    key, lr = jax.random.key(0), np.float32(2e-3)
    started = 0.0
    for index in range(steps):
        batch = slice(index * batch_size, (index + 1) * batch_size)
        params, rest, opt_state, loss = step(params, rest, opt_state, train.images[batch],
                                             train.labels[batch], key, np.int32(index), lr)
        if index == 0:  # exclude compilation
            loss.block_until_ready()
            started = time.perf_counter()
    loss.block_until_ready()
    return (steps - 1) * batch_size / (time.perf_counter() - started)


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
    """A PyTorch twin of ``SmallCNN``; returns ``(run(train, steps) -> samples/s, version,
    threads)``. Raises ``ImportError`` without PyTorch."""
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
            mean = x.mean(dim=(1, 2, 3), keepdim=True)  # per-image standardization, as in JAX
            x = (x - mean) / (x.std(dim=(1, 2, 3), keepdim=True, correction=0) + 1e-3)
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


def _median(runs: list[float]) -> float:
    return round(statistics.median(runs), 1)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps per measurement")
    parser.add_argument("--repeats", type=int, default=5, help="measurements per architecture")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-shape", default="28,28,1", help="H,W,C")
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--archs", default=",".join(architecture_names()))
    args = parser.parse_args(argv)
    image_shape = tuple(int(s) for s in args.image_shape.split(","))
    archs = args.archs.split(",")
    unknown = sorted(set(archs) - set(architecture_names()))
    if unknown:
        parser.error(f"unknown architectures {unknown}; choose from {list(architecture_names())}")
    if args.steps < 2:
        parser.error("--steps must be at least 2 (the first step compiles)")
    train = synthetic_split(args.steps * args.batch_size, image_shape, args.classes)

    try:
        torch_run, torch_version, torch_threads = torch_cnn_trainer(
            image_shape, args.classes, args.batch_size)
    except ImportError:
        torch_run = None

    load_before = os.getloadavg()
    jax_runs: dict[str, list[float]] = {arch: [] for arch in archs}
    variants: dict[str, list[float]] = {"functional_step_xla_default_options": [],
                                        "per_step_nnx_jit": []}
    torch_runs: list[float] = []
    for repeat in range(args.repeats):
        for arch in archs:
            jax_runs[arch].append(jax_samples_per_second(arch, train, args.classes,
                                                         args.batch_size, repeat))
            if arch != "cnn":
                continue
            if torch_run is not None:
                torch_runs.append(torch_run(train, args.steps))
            variants["functional_step_xla_default_options"].append(
                xla_default_step_samples_per_second(arch, train, args.classes, args.batch_size,
                                                    args.steps))
            variants["per_step_nnx_jit"].append(
                nnx_jit_samples_per_second(arch, train, args.classes, args.batch_size,
                                           args.steps))
    load_after = os.getloadavg()

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
                    "xla_compiler_options": local.training_compiler_options()},
        "load_average": {"before_1_5_15m": [round(v, 2) for v in load_before],
                         "after_1_5_15m": [round(v, 2) for v in load_after]},
        "jax": {arch: _median(runs) for arch, runs in jax_runs.items()},
        "jax_runs": {arch: [round(r, 1) for r in runs] for arch, runs in jax_runs.items()},
    }
    if max(load_before[0], load_after[0]) > 0.5:
        report["load_note"] = ("other processes were running (1-minute load average above "
                               "0.5): every number is lower than on a quiet machine, and "
                               "PyTorch's OpenMP threads suffer most")
    if "cnn" in jax_runs:
        cnn = statistics.median(jax_runs["cnn"])
        report["jax_cnn_variants"] = {
            name: {"cnn": _median(runs), "cnn_runs": [round(r, 1) for r in runs],
                   "ratio_train_local_over_this": round(cnn / statistics.median(runs), 3)}
            for name, runs in variants.items()}
    if torch_run is None:
        report["torch"] = TORCH_MISSING
    elif "cnn" not in jax_runs:
        report["torch"] = "skipped: the small CNN ('cnn') is not among --archs"
    else:
        torch_median = statistics.median(torch_runs)
        report["torch"] = {"version": torch_version, "threads": torch_threads,
                           "cnn": round(torch_median, 1),
                           "cnn_runs": [round(r, 1) for r in torch_runs]}
        report["ratio_jax_over_torch"] = {
            "cnn": round(cnn / torch_median, 3),
            "cnn_per_repeat": [round(j / t, 3) for j, t in zip(jax_runs["cnn"], torch_runs,
                                                                 strict=True)],
            "cnn_xla_default_options": round(
                statistics.median(variants["functional_step_xla_default_options"])
                / torch_median, 3),
        }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
