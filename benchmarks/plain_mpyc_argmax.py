"""The plain MPyC baseline: each party inputs a ``SecFxp(32,16)`` array, the sum's argmax is opened.

What a researcher would write without the toolkit (MPyC's documented ``np_argmax``, its default
fixed-point type, nothing tuned). ``benchmarks/secure_ensemble.py`` times it next to the toolkit
on the same inputs.

Run M parties over loopback by hand (one line per party, same ``--seed``)::

    python benchmarks/plain_mpyc_argmax.py --rows 1000 --classes 10 -M3 -I0 &
    python benchmarks/plain_mpyc_argmax.py --rows 1000 --classes 10 -M3 -I1 &
    python benchmarks/plain_mpyc_argmax.py --rows 1000 --classes 10 -M3 -I2

or all of them from one command: ``python benchmarks/plain_mpyc_argmax.py --local 3``. Party 0
prints one JSON line with its labels' digest and the seconds from start to opened labels.
Inputs: party ``i`` holds ``weight_i * P_i`` from :func:`inputs` (seeded, identical to what the
benchmark gives the toolkit).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time

import numpy as np


def inputs(parties: int, rows: int, classes: int, seed: int = 0):
    """The benchmark's inputs: Dirichlet probability rows ``[rows, classes]`` and weights.

    Returns ``(probs, weights)``: ``parties`` matrices and weights in ``[0.2, 1.0]``.
    """
    rng = np.random.default_rng(seed)
    probs = [rng.dirichlet(np.ones(classes), size=rows) for _ in range(parties)]
    return probs, rng.uniform(0.2, 1.0, size=parties)


def labels_digest(labels) -> str:
    """A short SHA-256 of the labels (int64), to compare parties' and runs' outputs."""
    return hashlib.sha256(np.asarray(labels, dtype=np.int64).tobytes()).hexdigest()[:16]


def party(args) -> None:
    """One MPyC party (MPyC reads ``-M``/``-I``/``-P`` itself from the command line)."""
    from mpyc.runtime import mpc

    probs, weights = inputs(len(mpc.parties), args.rows, args.classes, args.seed)
    secfxp = mpc.SecFxp(32, 16)
    mine = weights[mpc.pid] * probs[mpc.pid]
    t0 = time.perf_counter()
    mpc.run(mpc.start())
    xs = mpc.input(secfxp.array(mine))
    total = xs[0]
    for x in xs[1:]:
        total = total + x
    labels = mpc.run(mpc.output(mpc.np_argmax(total, axis=1)))
    mpc.run(mpc.shutdown())
    labels = np.asarray(labels, dtype=float).astype(np.int64)
    if mpc.pid == 0:
        print(json.dumps({"parties": len(mpc.parties), "rows": args.rows,
                          "classes": args.classes, "seconds": time.perf_counter() - t0,
                          "labels_sha256": labels_digest(labels),
                          "labels": labels.tolist() if args.print_labels else None}))


def local(args) -> int:
    """Starts ``args.local`` party processes on loopback and waits for all of them."""
    own = ["--rows", str(args.rows), "--classes", str(args.classes), "--seed", str(args.seed)]
    own += ["--print-labels"] if args.print_labels else []
    procs = [subprocess.Popen([sys.executable, __file__, *own, f"-M{args.local}", f"-I{i}",
                               "--no-log"]) for i in range(args.local)]
    return max(p.wait() for p in procs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--print-labels", action="store_true")
    parser.add_argument("--local", type=int, default=0,
                        help="start this many parties on loopback (otherwise: be one party)")
    args, rest = parser.parse_known_args()
    if args.local:
        return local(args)
    sys.argv = [sys.argv[0], *rest]            # MPyC parses its own options at import
    party(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
