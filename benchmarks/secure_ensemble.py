"""Benchmark: secure mean and secure argmax with real MPyC party processes, next to numpy.

Prints one JSON document:

* ``shapes``: for 3 parties on 1000x10 and 10000x2 inputs, the time of numpy's weighted mean and
  argmax, and of the secure round in both modes (``reveal="mean"``: secure sum + open;
  ``reveal="labels"``: secure sum + secure argmax + open labels). For the secure rounds,
  ``wall_seconds`` is the whole ``secure_ensemble`` call (process start, connection, round,
  shutdown); ``compute_seconds`` is the slowest party's time once connected; ``bytes_per_party``
  is the mean number of bytes a party sent. Ratios are secure wall (and compute) over numpy.
* ``scaling``: the same on one shape for M = 3, 5, 7 parties.

Usage:
    python benchmarks/secure_ensemble.py [--scaling-shape 1000x10] [--parties 3,5,7]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from efl_toolkit.ensemble import argmax_labels, weighted_mean
from efl_toolkit.secure import plaintext_reference, secure_ensemble


def make_inputs(m: int, n: int, c: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [rng.dirichlet(np.ones(c), size=n) for _ in range(m)], rng.uniform(0.2, 1.0, size=m)


def numpy_seconds(preds, weights, repeats: int = 20) -> dict:
    stacked = np.stack(preds)
    w = weights / weights.sum()
    times_mean, times_argmax = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        mean = np.tensordot(w, stacked, axes=1)
        t1 = time.perf_counter()
        argmax_labels(mean)
        t2 = time.perf_counter()
        times_mean.append(t1 - t0)
        times_argmax.append(t2 - t1)
    return {"mean_seconds": float(np.median(times_mean)),
            "mean_plus_argmax_seconds": float(np.median(times_mean) + np.median(times_argmax))}


def secure_seconds(preds, weights, reveal: str) -> dict:
    t0 = time.perf_counter()
    res = secure_ensemble(preds, weights, reveal=reveal, timeout=600)
    wall = time.perf_counter() - t0
    ref = plaintext_reference(preds, weights, reveal=reveal)
    out = {"wall_seconds": wall,
           "compute_seconds": max(p.compute_seconds for p in res.parties),
           "connect_seconds": max(p.connect_seconds for p in res.parties),
           "bytes_per_party": int(np.mean([p.bytes_sent for p in res.parties])),
           "labels_equal_reference": bool((res.labels == ref.labels).all())}
    if reveal == "mean":
        out["max_abs_error_vs_numpy"] = float(np.abs(res.mean - weighted_mean(preds, weights))
                                              .max())
        out["error_bound"] = res.fixed_point.error_bound
    return out


def one_shape(m: int, n: int, c: int) -> dict:
    preds, weights = make_inputs(m, n, c)
    plain = numpy_seconds(preds, weights)
    mean = secure_seconds(preds, weights, "mean")
    labels = secure_seconds(preds, weights, "labels")
    return {
        "parties": m, "shape": [n, c], "numpy": plain, "secure_mean": mean,
        "secure_labels": labels,
        "ratio_mean_wall": mean["wall_seconds"] / plain["mean_seconds"],
        "ratio_mean_compute": mean["compute_seconds"] / plain["mean_seconds"],
        "ratio_labels_wall": labels["wall_seconds"] / plain["mean_plus_argmax_seconds"],
        "ratio_labels_compute": labels["compute_seconds"] / plain["mean_plus_argmax_seconds"],
    }


def parse_shape(text: str) -> tuple[int, int]:
    n, c = text.lower().split("x")
    return int(n), int(c)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="1000x10,10000x2")
    parser.add_argument("--scaling-shape", default="1000x10")
    parser.add_argument("--parties", default="3,5,7")
    args = parser.parse_args()
    started = time.perf_counter()
    shapes = [one_shape(3, *parse_shape(s)) for s in args.shapes.split(",")]
    n, c = parse_shape(args.scaling_shape)
    scaling = [one_shape(int(m), n, c) for m in args.parties.split(",")]
    print(json.dumps({
        "benchmark": "secure_ensemble",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "shapes": shapes, "scaling": scaling,
        "total_seconds": time.perf_counter() - started,
    }, indent=2))


if __name__ == "__main__":
    main()
