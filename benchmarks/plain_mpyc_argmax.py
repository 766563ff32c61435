"""The plain MPyC baseline: each party inputs a ``SecFxp(32,16)`` array, the sum's argmax is opened.

What a researcher would write without the toolkit (MPyC's documented ``np_argmax``, its default
fixed-point type, nothing tuned); ``--mean`` opens the weighted mean instead (the sum, divided
by the public weights' sum after opening). ``benchmarks/secure_ensemble.py`` times it next to
the toolkit on the same inputs.

Run M parties over loopback by hand (one line per party, same ``--seed``)::

    python benchmarks/plain_mpyc_argmax.py --rows 1000 --classes 10 -M3 -I0 &
    python benchmarks/plain_mpyc_argmax.py --rows 1000 --classes 10 -M3 -I1 &
    python benchmarks/plain_mpyc_argmax.py --rows 1000 --classes 10 -M3 -I2

or all of them from one command: ``python benchmarks/plain_mpyc_argmax.py --local 3``. Party 0
prints one JSON line: the labels, their digest and the seconds from start to opened labels.
Inputs: party ``i`` holds ``weight_i * P_i`` from :func:`inputs` (seeded, identical to what the
benchmark gives the toolkit).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
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
    if args.mean:
        mean = np.asarray(mpc.run(mpc.output(total)), dtype=float) / weights.sum()
        labels = np.argmax(mean, axis=1)
    else:
        labels = mpc.run(mpc.output(mpc.np_argmax(total, axis=1)))
    mpc.run(mpc.shutdown())
    labels = np.asarray(labels, dtype=float).astype(np.int64)
    if mpc.pid == 0:
        print(json.dumps({"parties": len(mpc.parties), "open": "mean" if args.mean else "argmax",
                          "rows": args.rows,
                          "classes": args.classes, "seconds": time.perf_counter() - t0,
                          "labels_sha256": labels_digest(labels),
                          "labels": labels.tolist()}))


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on loopback (the OS picks them)."""
    socks = [socket.socket() for _ in range(n)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports


def party_commands(parties: int, rows: int, classes: int, seed: int, mean: bool) -> list[list]:
    """The command line of every party, on free loopback ports."""
    own = ["--rows", str(rows), "--classes", str(classes), "--seed", str(seed)]
    own += ["--mean"] if mean else []
    addresses = [arg for port in free_ports(parties) for arg in ("-P", f"127.0.0.1:{port}")]
    return [[sys.executable, __file__, *own, *addresses, f"-I{i}", "--no-log"]
            for i in range(parties)]


def run_parties(commands: list[list], timeout: float = 1800) -> str:
    """Starts every party, waits for all; returns party 0's stdout (raises if one failed)."""
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for cmd in commands]
    outs = [p.communicate(timeout=timeout)[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError(f"plain MPyC party exit codes {[p.returncode for p in procs]}")
    return outs[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mean", action="store_true", help="open the mean, not the argmax")
    parser.add_argument("--local", type=int, default=0,
                        help="start this many parties on loopback (otherwise: be one party)")
    args, rest = parser.parse_known_args()
    if args.local:
        print(run_parties(party_commands(args.local, args.rows, args.classes, args.seed,
                                         args.mean)), end="")
        return 0
    sys.argv = [sys.argv[0], *rest]            # MPyC parses its own options at import
    party(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
