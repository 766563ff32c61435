"""Benchmark: the secure ensemble and secure aggregation with real MPyC processes, next to numpy.

Prints one JSON document (times in seconds; every figure is the min and median of interleaved
repeats, measured side by side in one run, with the load average before and after):

* ``vs_plain``: the toolkit against the plain MPyC script ``benchmarks/plain_mpyc_argmax.py``
  (``SecFxp(32,16)`` inputs, summed, ``np_argmax`` opened; or the mean) on the same 1000x10
  inputs of 3 institutions, each a whole run from process start to opened result: plain,
  toolkit with one party per institution (3 parties, like the plain script) and toolkit with a
  committee of 3, interleaved. ``argmax_speedup_vs_plain`` and ``mean_speedup_vs_plain`` are
  ratios of minimums (plain / toolkit, one party per institution; goals >= 3 and >= 1);
  ``*_median`` the ratios of medians. ``labels_identical_to_plain`` compares the labels.

* ``committee_sweep``: labels mode on 1000x10 with a committee of 3 compute parties, for
  N = 3, 10, 30, 100 institutions: ``round`` is one round on a running committee (shares
  written, round run, labels opened), ``one_shot`` a whole ``secure_ensemble`` call (process
  start included). ``ratio_n100_vs_n3`` compares the rounds (goal <= 1.5).
* ``per_institution``: the first design (every institution its own party) against the committee
  for N = 3, 5, 7 on the same inputs; ``speedup`` = old wall / committee one-shot wall (goal at
  N = 7: >= 5).
* ``secure_sum``: 10 updates of 100,000 float32 entries: a round on a running committee, a
  one-shot ``secure_sum`` and numpy's sum (goal: one-shot under 1 s on 2 cores).
* ``mean``: mean mode on 1000x10 with N = 3 (committee and per-institution).

Every secure result is checked: labels equal the plaintext argmax of the same encoded values,
sums and means are within the fixed-point bound.

Usage:
    python benchmarks/secure_ensemble.py [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from efl_toolkit.ensemble import weighted_mean
from efl_toolkit.secure import (
    Committee,
    committee_ensemble,
    plaintext_reference,
    secure_ensemble,
    secure_sum,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plain_mpyc_argmax import inputs, labels_digest, party_commands, run_parties  # noqa: E402


def make_inputs(n_inst: int, rows: int, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    preds = {f"h{i:03d}": rng.dirichlet(np.ones(classes), size=rows) for i in range(n_inst)}
    return preds, rng.uniform(0.2, 1.0, size=n_inst)


def stats(samples: list[float]) -> dict:
    return {"min": min(samples), "median": statistics.median(samples), "n": len(samples)}


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def check_labels(res, preds, weights, committee) -> None:
    ref = plaintext_reference(preds, weights, reveal=res.reveal, committee=committee)
    if not np.array_equal(res.labels, ref.labels):
        raise AssertionError("secure labels differ from the plaintext reference")


def committee_sweep(sizes, repeats: int) -> dict:
    inputs = {n: make_inputs(n, 1000, 10, seed=n) for n in sizes}
    rounds = {n: [] for n in sizes}
    one_shot = {n: [] for n in sizes}
    with Committee(3, round_timeout=600) as c:
        for _ in range(repeats):
            for n in sizes:                                    # interleaved
                preds, w = inputs[n]
                secs, res = timed(lambda p=preds, w=w: committee_ensemble(c, p, w,
                                                                        reveal="labels"))
                check_labels(res, preds, w, 3)
                rounds[n].append(secs)
    for _ in range(repeats):
        for n in sizes:
            preds, w = inputs[n]
            secs, res = timed(lambda p=preds, w=w: secure_ensemble(p, w, reveal="labels",
                                                                   timeout=600))
            check_labels(res, preds, w, 3)
            one_shot[n].append(secs)
    rows = [{"institutions": n, "round": stats(rounds[n]), "one_shot": stats(one_shot[n])}
            for n in sizes]
    return {"shape": [1000, 10], "committee": 3, "rows": rows,
            "ratio_n100_vs_n3": (stats(rounds[sizes[-1]])["min"] / stats(rounds[sizes[0]])["min"]
                                 if sizes[0] == 3 and sizes[-1] == 100 else None)}


def per_institution(sizes, repeats: int) -> list[dict]:
    rows = []
    for n in sizes:
        preds, w = make_inputs(n, 1000, 10, seed=100 + n)
        old, new = [], []
        for _ in range(repeats):
            secs, res = timed(lambda p=preds, w=w: secure_ensemble(
                p, w, reveal="labels", committee=None, timeout=600))
            check_labels(res, preds, w, None)
            old.append(secs)
            secs, res = timed(lambda p=preds, w=w: secure_ensemble(p, w, reveal="labels",
                                                                   timeout=600))
            check_labels(res, preds, w, 3)
            new.append(secs)
        rows.append({"institutions": n, "one_party_per_institution": stats(old),
                     "committee_of_3": stats(new), "speedup": min(old) / min(new)})
    return rows


def sum_benchmark(repeats: int) -> dict:
    rng = np.random.default_rng(0)
    updates = {f"h{i}": rng.normal(scale=0.05, size=100_000).astype(np.float32)
               for i in range(10)}
    exact = np.sum(list(updates.values()), axis=0, dtype=np.float64)
    plain, rounds, shots = [], [], []
    with Committee(3) as c:
        for _ in range(repeats):
            secs, _ = timed(lambda: np.sum(list(updates.values()), axis=0, dtype=np.float64))
            plain.append(secs)
            secs, out = timed(lambda: c.sum(updates))
            rounds.append(secs)
    for _ in range(repeats):
        secs, total = timed(lambda: secure_sum(updates))
        shots.append(secs)
    error = float(np.abs(out.total - exact).max())
    if error > 10 * 2.0 ** -17 or float(np.abs(total - exact).max()) > 10 * 2.0 ** -17:
        raise AssertionError("secure sum outside the fixed-point bound")
    return {"updates": 10, "entries": 100_000, "numpy": stats(plain),
            "round_on_running_committee": stats(rounds), "one_shot": stats(shots),
            "max_abs_error": error, "error_bound": 10 * 2.0 ** -17,
            "ratio_round_vs_numpy": min(rounds) / min(plain)}


def mean_benchmark(repeats: int) -> dict:
    preds, w = make_inputs(3, 1000, 10, seed=7)
    times = {"committee_of_3": [], "one_party_per_institution": []}
    for _ in range(repeats):
        for mode, committee in (("committee_of_3", 3), ("one_party_per_institution", None)):
            secs, res = timed(lambda c=committee: secure_ensemble(preds, w, reveal="mean",
                                                                  committee=c))
            if np.abs(res.mean - weighted_mean(list(preds.values()), w)).max() > \
                    res.fixed_point.error_bound:
                raise AssertionError("secure mean outside the fixed-point bound")
            times[mode].append(secs)
    return {"shape": [1000, 10], "institutions": 3, **{k: stats(v) for k, v in times.items()}}


def plain_run(parties: int, rows: int, classes: int, seed: int, mean: bool) -> tuple[float, dict]:
    """Wall seconds of the plain script's ``parties`` processes, and party 0's JSON line."""
    commands = party_commands(parties, rows, classes, seed, mean)
    secs, out = timed(lambda: run_parties(commands))
    return secs, json.loads(out.strip().splitlines()[-1])


def vs_plain(repeats: int, parties: int = 3, rows: int = 1000, classes: int = 10,
             seed: int = 0) -> dict:
    """The toolkit and the plain MPyC script side by side, interleaved (see the module doc)."""
    probs, w = inputs(parties, rows, classes, seed)
    preds = {f"h{i}": p for i, p in enumerate(probs)}
    cases = {"argmax": ("labels", False), "mean": ("mean", True)}
    times: dict[str, list[float]] = {}
    inner: dict[str, list[float]] = {}
    same_as_plain = True
    load = [os.getloadavg()]
    for _ in range(repeats):
        for case, (reveal, mean) in cases.items():
            secs, line = plain_run(parties, rows, classes, seed, mean)
            times.setdefault(f"plain_{case}", []).append(secs)
            inner.setdefault(f"plain_{case}", []).append(line["seconds"])
            for mode, committee in (("per_institution", None), ("committee_of_3", 3)):
                secs, res = timed(lambda r=reveal, c=committee: secure_ensemble(
                    preds, w, reveal=r, committee=c, timeout=1800))
                check_labels(res, preds, w, committee)
                same_as_plain &= labels_digest(res.labels) == line["labels_sha256"]
                times.setdefault(f"toolkit_{case}_{mode}", []).append(secs)
                inner.setdefault(f"toolkit_{case}_{mode}", []).append(
                    max(p.compute_seconds or 0.0 for p in res.parties))
        load.append(os.getloadavg())
    out: dict = {"shape": [rows, classes], "parties": parties, "repeats": repeats,
                 "wall": {k: stats(v) for k, v in times.items()},
                 "in_round": {k: stats(v) for k, v in inner.items()},  # connected -> opened
                 "labels_identical_to_plain": bool(same_as_plain), "load_average": load}
    for case in cases:
        for mode in ("per_institution", "committee_of_3"):
            plain, tool = times[f"plain_{case}"], times[f"toolkit_{case}_{mode}"]
            key = f"{case}_speedup_vs_plain" + ("" if mode == "per_institution" else "_committee")
            out[key] = min(plain) / min(tool)
            out[f"{key}_median"] = statistics.median(plain) / statistics.median(tool)
    return out


def run(repeats: int = 3, quick: bool = False) -> dict:
    """All secure figures as one JSON-ready dict (``quick``: fewer sizes, one repeat)."""
    started = time.perf_counter()
    load_before = os.getloadavg()
    plain = vs_plain(2 if quick else repeats)
    repeats = 1 if quick else repeats
    sweep = committee_sweep([3, 10, 30, 100] if not quick else [3, 30], repeats)
    old = per_institution([3, 5, 7] if not quick else [3, 7], repeats)
    return {
        "benchmark": "secure_ensemble",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "argmax_speedup_vs_plain": plain["argmax_speedup_vs_plain"],
        "mean_speedup_vs_plain": plain["mean_speedup_vs_plain"],
        "vs_plain": plain,
        "committee_sweep": sweep, "per_institution": old,
        "secure_sum": sum_benchmark(repeats), "mean": mean_benchmark(repeats),
        "total_seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer sizes, one repeat")
    args = parser.parse_args()
    print(json.dumps(run(args.repeats, args.quick), indent=2))


if __name__ == "__main__":
    main()
