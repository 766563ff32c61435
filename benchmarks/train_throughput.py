"""Training throughput (samples/s) of every zoo architecture, JAX against its PyTorch twin.

For each architecture of the zoo (``efl_toolkit/models/zoo.py``) the same run measures:

* ``jax``: ``TrainResult.samples_per_second`` of a real :func:`train_local` call (one epoch,
  no validation, no augmentation; the first step, which compiles, is excluded);
* ``jax_compile_seconds``: the training step's XLA compilation alone, in a fresh process with
  JAX's persistent compilation cache off (what a first run pays), and
  ``jax_compile_seconds_with_cache`` the same in this process (a load when the cache has it);
* ``torch``: the PyTorch eager twin (``benchmarks/torch_twins.py``: same layers, batch size,
  per-image standardization, AdamW, cross-entropy) when PyTorch is installed, at its default
  threads and at one thread (``torch_configurations``); ``torch`` is the faster configuration
  (by median: under load, PyTorch's OpenMP threads wait for each other and one thread wins),
  its first step reported apart as ``torch_first_step_seconds``.

Repeats interleave JAX and PyTorch architecture by architecture, so both see the same machine
load. Each figure is given as min, median and every run; ``ratio_vs_torch`` is the ratio of
medians (JAX over PyTorch: above 1 means JAX trains faster), ``ratio_vs_torch_of_max`` the
ratio of the best runs. The 1/5/15-minute load average before and after is reported: other
processes skew every number, PyTorch's OpenMP threads most of all.

Usage:
    python benchmarks/train_throughput.py [--quick] [--steps 60] [--repeats 5]
        [--batch-size 64] [--image-shape 28,28,1] [--classes 2] [--archs cnn,resnet]

Prints one JSON object (``run()`` returns it). Without PyTorch (``pip install torch==2.13.0``)
``torch`` says why the comparison was skipped and no ratio is given.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from efl_toolkit.config import TrainConfig
from efl_toolkit.data.medmnist import Split
from efl_toolkit.models.zoo import BUILTIN_ARCHITECTURES, build_model
from efl_toolkit.training import local
from efl_toolkit.training.local import train_local

TORCH_MISSING = ("skipped: PyTorch is not installed (pip install torch==2.13.0 to compare every "
                 "architecture with its PyTorch eager twin)")
#: (steps, repeats) of a full and a ``--quick`` run.
FULL, QUICK = (60, 5), (20, 3)


def synthetic_split(n: int, image_shape: tuple[int, int, int], n_classes: int) -> Split:
    """``n`` uniform random images ``float32 [n, H, W, C]`` in [0, 1] and random labels."""
    rng = np.random.default_rng(0)
    images = rng.random((n, *image_shape), dtype=np.float32)
    labels = rng.integers(0, n_classes, n).astype(np.int32)
    return Split(images, labels)


def jax_samples_per_second(arch: str, train: Split, n_classes: int, batch_size: int,
                           seed: int) -> float:
    """Samples/s of one epoch of real ``train_local`` (no validation, no augmentation)."""
    config = TrainConfig(epochs=1, batch_size=batch_size, augment=False)
    empty = Split(np.zeros((0, *train.images.shape[1:]), np.float32), np.zeros((0,), np.int32))
    result = train_local(arch, train, empty, jax.random.key(seed), config, n_classes=n_classes,
                         progress=False)
    return result.samples_per_second


def jax_compile_seconds(arch: str, image_shape: tuple[int, int, int], n_classes: int,
                        batch_size: int) -> float:
    """Seconds to compile (or load from JAX's persistent cache) ``train_local``'s step."""
    model = build_model(arch, image_shape, n_classes, nnx.Rngs(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    weight_decay = TrainConfig().weight_decay
    opt_state = local._optimizer(weight_decay).init(params)
    step = local._train_step(graphdef, weight_decay, False)
    images = np.zeros((batch_size, *image_shape), np.float32)
    args = (params, rest, opt_state, images, np.zeros(batch_size, np.int32),
            jax.random.key(0), np.int32(0), np.float32(1e-3))
    started = time.perf_counter()
    step.lower(*args).compile()
    return time.perf_counter() - started


def cold_compile_seconds(archs, image_shape, n_classes: int, batch_size: int) -> dict:
    """:func:`jax_compile_seconds` per architecture in a fresh process without the cache.

    JAX decides once per process whether its persistent cache is used, so a first run's cost
    is measured in a subprocess with ``EFL_JAX_CACHE=off``.
    """
    env = {key: value for key, value in os.environ.items()
           if key != "JAX_COMPILATION_CACHE_DIR"}
    env["EFL_JAX_CACHE"] = "off"
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import train_throughput as t; "
            "print(json.dumps({a: t.jax_compile_seconds(a, tuple(json.loads(sys.argv[3])), "
            "int(sys.argv[4]), int(sys.argv[5])) for a in sys.argv[2].split(',')}))")
    done = subprocess.run([sys.executable, "-c", code, str(Path(__file__).resolve().parent),
                           ",".join(archs), json.dumps(list(image_shape)), str(n_classes),
                           str(batch_size)], env=env, capture_output=True, text=True,
                          check=False, timeout=1800)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _stats(runs: list[float], digits: int = 1) -> dict:
    return {"min": round(min(runs), digits), "median": round(statistics.median(runs), digits),
            "runs": [round(r, digits) for r in runs]}


def _torch_trainers(archs, image_shape, n_classes, batch_size):
    """``({arch: run}, version, threads)``, or ``None`` without PyTorch."""
    try:
        import torch
        import torch_twins
    except ImportError:
        return None
    return ({arch: torch_twins.trainer(arch, image_shape, n_classes, batch_size)
             for arch in archs}, torch.__version__, torch.get_num_threads())


def run(quick: bool = False, *, archs: tuple[str, ...] | None = None, steps: int | None = None,
        repeats: int | None = None, batch_size: int = 64,
        image_shape: tuple[int, int, int] = (28, 28, 1), n_classes: int = 2) -> dict:
    """Measures every architecture (JAX, and its PyTorch twin when installed), interleaved.

    Args:
        quick: Fewer steps and repeats (:data:`QUICK` instead of :data:`FULL`).
        archs: Architectures (default: every built-in one of the zoo).
        steps: Training steps per measurement (at least 2: the first compiles).
        repeats: Interleaved measurements per architecture and framework.
        batch_size, image_shape, n_classes: The synthetic task.

    Returns:
        The report: ``jax``/``torch`` samples/s stats per architecture, ``jax_compile_seconds``,
        ``ratio_vs_torch`` (absent without PyTorch), load averages.

    Raises:
        ValueError: Unknown architecture or fewer than 2 steps.
    """
    default_steps, default_repeats = QUICK if quick else FULL
    steps, repeats = steps or default_steps, repeats or default_repeats
    archs = tuple(archs or BUILTIN_ARCHITECTURES)
    unknown = sorted(set(archs) - set(BUILTIN_ARCHITECTURES))
    if unknown:
        raise ValueError(f"unknown architectures {unknown}; choose from "
                         f"{list(BUILTIN_ARCHITECTURES)}")
    if steps < 2:
        raise ValueError(f"steps must be at least 2 (the first step compiles), got {steps}")
    train = synthetic_split(steps * batch_size, image_shape, n_classes)
    torch_side = _torch_trainers(archs, image_shape, n_classes, batch_size)

    load_before = os.getloadavg()
    cold = cold_compile_seconds(archs, image_shape, n_classes, batch_size)
    cached = {arch: jax_compile_seconds(arch, image_shape, n_classes, batch_size)
              for arch in archs}
    jax_runs: dict[str, list[float]] = {arch: [] for arch in archs}
    torch_runs: dict[str, list[float]] = {arch: [] for arch in archs}
    torch_one_thread: dict[str, list[float]] = {arch: [] for arch in archs}
    torch_first: dict[str, list[float]] = {arch: [] for arch in archs}
    for repeat in range(repeats):
        for arch in archs:
            jax_runs[arch].append(jax_samples_per_second(arch, train, n_classes, batch_size,
                                                         repeat))
            if torch_side is not None:
                first, rate = torch_side[0][arch](train, steps)
                torch_first[arch].append(first)
                torch_runs[arch].append(rate)
                torch_one_thread[arch].append(torch_side[0][arch](train, steps, threads=1)[1])
    load_after = os.getloadavg()

    report = {
        "benchmark": "train_throughput",
        "unit": "training samples per second (compilation / first step excluded)",
        "batch_size": batch_size, "image_shape": list(image_shape), "n_classes": n_classes,
        "steps": steps, "repeats": repeats,
        "jax_backend": jax.default_backend(),
        "xla_compiler_options": local.training_compiler_options(),
        "load_average": {"before_1_5_15m": [round(v, 2) for v in load_before],
                         "after_1_5_15m": [round(v, 2) for v in load_after]},
        "jax": {arch: _stats(runs) for arch, runs in jax_runs.items()},
        "jax_compile_seconds": {arch: round(s, 2) if isinstance(s, float) else s
                                for arch, s in cold.items()},
        "jax_compile_seconds_with_cache": {arch: round(s, 2) for arch, s in cached.items()},
    }
    if max(load_before[0], load_after[0]) > 1.0:
        report["load_note"] = ("other processes were running (1-minute load average above 1 on "
                               f"{os.cpu_count()} cores): every number is lower than on a quiet "
                               "machine, and PyTorch's OpenMP threads suffer most")
    if torch_side is None:
        report["torch"] = TORCH_MISSING
        return report
    # PyTorch at its default threads and at one thread: under load its OpenMP threads wait
    # for each other and one thread is faster; the ratio is against the faster of the two
    both = {arch: {"default_threads": _stats(torch_runs[arch]),
                   "one_thread": _stats(torch_one_thread[arch])} for arch in archs}
    report["torch"] = {arch: max(stats.values(), key=lambda s: s["median"])
                       for arch, stats in both.items()}
    report["torch_configurations"] = both
    report["torch_version"], report["torch_threads"] = torch_side[1], torch_side[2]
    report["torch_first_step_seconds"] = {arch: round(statistics.median(s), 3)
                                          for arch, s in torch_first.items()}
    report["ratio_vs_torch"] = {
        arch: round(report["jax"][arch]["median"] / report["torch"][arch]["median"], 3)
        for arch in archs}
    report["ratio_vs_torch_of_max"] = {
        arch: round(max(jax_runs[arch]) / max(torch_runs[arch] + torch_one_thread[arch]), 3)
        for arch in archs}
    return report


def main(argv: list[str] | None = None) -> dict:
    """Command line: parses ``argv``, prints and returns :func:`run`'s report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"steps, repeats = {QUICK}")
    parser.add_argument("--steps", type=int, help=f"training steps per measurement ({FULL[0]})")
    parser.add_argument("--repeats", type=int, help=f"interleaved repeats ({FULL[1]})")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-shape", default="28,28,1", help="H,W,C")
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--archs", default=",".join(BUILTIN_ARCHITECTURES))
    args = parser.parse_args(argv)
    try:
        report = run(args.quick, archs=tuple(args.archs.split(",")), steps=args.steps,
                     repeats=args.repeats, batch_size=args.batch_size,
                     image_shape=tuple(int(s) for s in args.image_shape.split(",")),
                     n_classes=args.classes)
    except ValueError as error:
        parser.error(str(error))
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
