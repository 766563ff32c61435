"""The secure ensemble protocol: MPyC coroutines that every party runs.

One round, as seen by party ``i`` of ``m`` (passive security, honest majority, Shamir sharing with
threshold ``t < m/2``):

1. **Agree** on the public parameters: every party secret-shares its header (reveal mode,
   receivers, fixed-point format, matrix shape; in mean mode also its public weight) and all
   headers are opened. A party with different parameters is named and the round stops.
2. **Share**: the party encodes ``w_i * P_i`` (:mod:`efl_toolkit.secure.fixed_point`) and
   secret-shares it (``mpc.input``); it receives one share of every institution's matrix.
3. **Add**: the shares of the weighted sum are the sums of the shares (no communication).
4. **Open** either the weighted sum (``reveal="mean"``; labels are then its argmax) or only the
   argmax labels (``reveal="labels"``: a tournament of ``C - 1`` secure comparisons per row,
   :func:`efl_toolkit.secure.fast_argmax.secure_argmax`, in batches of rows), to all parties or
   to ``receivers``.

:func:`run_round` is the coroutine; :func:`run_in_process` runs it in *this* process as a single
MPyC party (``m = 1``). That path is for tests and teaching only: a single party holds every
input in the clear, so **there is no secrecy** (its "shares" are the values themselves). Real
secrecy needs ``m`` separate party processes (:mod:`efl_toolkit.secure.parties`).

Example:
    >>> import numpy as np
    >>> from efl_toolkit.secure.protocol import RoundSpec, run_in_process
    >>> probs = [np.array([[0.9, 0.1]]), np.array([[0.2, 0.8]]), np.array([[0.3, 0.7]])]
    >>> out = run_in_process(RoundSpec(reveal="labels"), probs, [1.0, 1.0, 1.0])
    >>> out.labels.tolist()   # computed by ONE in-process party: no secrecy
    [1]
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from efl_toolkit.secure.fast_argmax import compare_bits, fast_randomness, secure_argmax
from efl_toolkit.secure.fixed_point import (
    DEFAULT_FRAC_BITS,
    REVEALS,
    FixedPoint,
    local_contribution,
    normalize_units,
    weight_units,
)

PROTOCOL_VERSION = 1
HEADER_FIELDS = ("protocol_version", "reveal", "receivers", "frac_bits", "bit_length",
                 "n_inputs", "n_queries", "n_classes", "batch_rows", "transcript_rows",
                 "weight_units")


class RoundMismatchError(RuntimeError):
    """Parties disagree on a public parameter of the round (the party and field are named)."""


@dataclass(frozen=True)
class RoundSpec:
    """Public parameters of a round; every party must use the same ones.

    Attributes:
        reveal: ``"mean"``: open the weighted mean (weights public); ``"labels"``: open only the
            argmax labels (the mean and the weights stay secret).
        receivers: Parties that learn the output; ``None``: all parties.
        frac_bits: Fractional bits of the fixed-point encoding.
        batch_rows: Rows per secure-argmax batch (bounds memory and message size).
        transcript_rows: Rows of shares each party records for teaching (0: none).
    """

    reveal: str = "mean"
    receivers: tuple[int, ...] | None = None
    frac_bits: int = DEFAULT_FRAC_BITS
    batch_rows: int = 1000
    transcript_rows: int = 0

    def check(self, n_parties: int | None = None) -> RoundSpec:
        """Raises ``ValueError`` naming the bad field; returns ``self``."""
        if self.reveal not in REVEALS:
            raise ValueError(f"reveal must be one of {REVEALS}, got {self.reveal!r}")
        if self.batch_rows < 1 or self.transcript_rows < 0:
            raise ValueError("batch_rows must be >= 1 and transcript_rows >= 0")
        FixedPoint.for_inputs(1, self.frac_bits)
        if self.receivers is not None:
            if not self.receivers or len(set(self.receivers)) != len(self.receivers):
                raise ValueError(f"receivers must be distinct party indices, got {self.receivers}")
            bad = [r for r in self.receivers
                   if r < 0 or (n_parties is not None and r >= n_parties)]
            if bad:
                upper = "" if n_parties is None else f" (0..{n_parties - 1})"
                raise ValueError(f"receiver {bad[0]} is not a party index{upper}")
        return self

    def receivers_mask(self) -> int:
        return 0 if self.receivers is None else sum(1 << r for r in self.receivers)

    def header(self, fp: FixedPoint, shape: tuple[int, int], weight: float | None) -> list[int]:
        """The integers every party opens to check agreement (see :data:`HEADER_FIELDS`)."""
        units = weight_units(weight) if self.reveal == "mean" else 0
        return [PROTOCOL_VERSION, REVEALS.index(self.reveal), self.receivers_mask(),
                fp.frac_bits, fp.bit_length, fp.n_inputs, shape[0], shape[1], self.batch_rows,
                self.transcript_rows, units]


@dataclass(frozen=True)
class RoundOutput:
    """What one party obtains from a round.

    Attributes:
        labels: Argmax labels ``[n]``, or ``None`` if this party is not a receiver.
        sum: Encoded weighted sum ``[n, C]`` (mean mode, receivers only), else ``None``.
        public_weights: Normalized public weights (mean mode), else ``None``.
        fixed_point: The round's fixed-point format.
        view: What this party saw, for the teaching transcript (``None`` unless asked).
    """

    labels: np.ndarray | None
    sum: np.ndarray | None
    public_weights: np.ndarray | None
    fixed_point: FixedPoint
    view: dict | None = None


async def exchange_headers(mpc, header: Sequence[int]) -> np.ndarray:
    """Opens every party's header: returns an ``[m, len(header)]`` integer array."""
    sec64 = mpc.SecInt(64)
    shared = mpc.input(sec64.array(np.asarray(header, dtype=np.int64)))
    opened = await mpc.output(mpc.np_vstack(shared))
    return np.asarray(opened, dtype=object).astype(np.int64)


def check_headers(headers: np.ndarray, own: Sequence[int], pid: int,
                  fields: Sequence[str] = HEADER_FIELDS[:-1]) -> None:
    """Raises :class:`RoundMismatchError` for the first party whose parameters differ.

    Only the first ``len(fields)`` entries are compared (later ones may differ by design,
    e.g. each party's own public weight).
    """
    for party, theirs in enumerate(headers):
        for name, mine, other in zip(fields, own, theirs, strict=False):
            if int(mine) != int(other):
                raise RoundMismatchError(
                    f"party {party} disagrees with party {pid} on {name}: {int(other)} vs "
                    f"{int(mine)}; every party must run the round with the same parameters")


def share_contributions(mpc, sectype, contributions: Sequence[np.ndarray]) -> list:
    """Secret-shares the encoded inputs: one secure array per institution, in party order.

    With ``m > 1`` parties each contributes exactly one matrix; the single in-process party
    (``m = 1``) inputs all of them itself.
    """
    if len(mpc.parties) == 1:
        return [mpc.input(sectype.array(c))[0] for c in contributions]
    if len(contributions) != 1:
        raise ValueError("with several parties, each party contributes exactly one matrix")
    return mpc.input(sectype.array(contributions[0]))


async def open_labels(mpc, total, fp: FixedPoint, spec: RoundSpec) -> np.ndarray | None:
    """Secure argmax per row, opened to the receivers only; batches of ``spec.batch_rows``.

    Ties go to the lowest class index. The comparisons use the shortest exact length
    (:func:`~efl_toolkit.secure.fast_argmax.compare_bits`) and, with several parties, MPyC's
    randomness is drawn in batches (:func:`~efl_toolkit.secure.fast_argmax.fast_randomness`).
    """
    receivers = None if spec.receivers is None else list(spec.receivers)
    bits = min(compare_bits(fp.n_inputs, fp.frac_bits), fp.bit_length)
    parts = []
    with fast_randomness(enabled=len(mpc.parties) > 1):
        for start in range(0, total.shape[0], spec.batch_rows):
            label = secure_argmax(mpc, total[start:start + spec.batch_rows], bits)
            parts.append(await mpc.output(label, receivers=receivers))
    if parts[0] is None:
        return None
    return np.concatenate([np.asarray(p, dtype=object).astype(np.int64) for p in parts])


async def record_view(mpc, shared: list, total, contributions, rows: int) -> dict:
    """This party's shares of every input and of the sum (first ``rows`` rows), as ints."""
    async def share_of(x):
        return np.asarray((await mpc.gather(x[:rows])).value, dtype=object).tolist()

    return {
        "party": mpc.pid,
        "threshold": mpc.threshold,
        "modulus": int(type(total).sectype.field.modulus),
        "rows": rows,
        "own_contributions": [np.asarray(c[:rows]).tolist() for c in contributions],
        "input_shares": [await share_of(x) for x in shared],
        "sum_share": await share_of(total),
    }


async def run_round(mpc, spec: RoundSpec, probs: Sequence[np.ndarray],
                    weights: Sequence[float]) -> RoundOutput:
    """One secure round at this party (the coroutine every party runs).

    Args:
        mpc: A started MPyC runtime.
        spec: Public round parameters (identical at all parties; checked).
        probs: This party's probability matrix as a one-element list (all matrices for ``m=1``).
        weights: Matching weights in ``[0, 1]`` (public in mean mode, private in labels mode).

    Returns:
        This party's :class:`RoundOutput`.
    """
    m = len(mpc.parties)
    spec.check(m)
    n_inputs = m if m > 1 else len(probs)
    fp = FixedPoint.for_inputs(n_inputs, spec.frac_bits)
    shape = tuple(np.shape(probs[0]))
    if m > 1:
        own = spec.header(fp, shape, weights[0])
        headers = await exchange_headers(mpc, own)
        check_headers(headers, own, mpc.pid)
        units = [int(h[-1]) for h in headers]
    else:
        units = [weight_units(w) if spec.reveal == "mean" else 0 for w in weights]
    public = normalize_units(units) if spec.reveal == "mean" else None
    mine = public if m == 1 else (None if public is None else public[mpc.pid:mpc.pid + 1])
    effective = weights if mine is None else mine
    contributions = [local_contribution(p, w, fp) for p, w in zip(probs, effective, strict=True)]

    sectype = mpc.SecInt(fp.bit_length)
    shared = share_contributions(mpc, sectype, contributions)
    total = shared[0]
    for x in shared[1:]:
        total = total + x
    rows = min(spec.transcript_rows, shape[0])
    view = await record_view(mpc, shared, total, contributions, rows) if rows else None

    receivers = None if spec.receivers is None else list(spec.receivers)
    opened_sum = None
    if spec.reveal == "mean":
        opened = await mpc.output(total, receivers=receivers)
        if opened is not None:
            opened_sum = np.asarray(opened, dtype=object).astype(np.int64)
        labels = None if opened_sum is None else np.argmax(opened_sum, axis=1).astype(np.int64)
    else:
        labels = await open_labels(mpc, total, fp, spec)
    if view is not None:
        view["opened"] = {
            "sum": None if opened_sum is None else opened_sum[:rows].tolist(),
            "labels": None if labels is None else labels[:rows].tolist(),
        }
    return RoundOutput(labels=labels, sum=opened_sum, public_weights=public, fixed_point=fp,
                       view=view)


@contextlib.contextmanager
def mpyc_argv(mpyc_args: Sequence[str] = ("--no-log",)):
    """Imports of ``mpyc`` inside this block see exactly ``mpyc_args`` as the command line.

    The ``mpyc`` package parses ``sys.argv`` (with prefix matching) when it is first imported,
    so a caller's own options (``efl demo --out``) would be taken for MPyC's.
    """
    saved_argv = sys.argv
    sys.argv = [saved_argv[0] if saved_argv else "efl-party", *mpyc_args]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # mpyc 0.11 uses numpy.core
            yield
    finally:
        sys.argv = saved_argv


def load_runtime(mpyc_args: Sequence[str], *, keep_event_loop_policy: bool = False):
    """Imports MPyC's runtime with exactly ``mpyc_args`` as its command line.

    MPyC parses ``sys.argv`` (with prefix matching) when ``mpyc.runtime`` is first imported, so
    the arguments are swapped in for the import and restored afterwards. With
    ``keep_event_loop_policy`` MPyC does not install uvloop's event loop policy (use it when
    importing into a notebook kernel or test process). A runtime imported earlier is reused.
    """
    if "mpyc.runtime" in sys.modules:
        return sys.modules["mpyc.runtime"].mpc
    saved_env = os.environ.get("MPYC_NOUVLOOP")
    if keep_event_loop_policy:
        os.environ["MPYC_NOUVLOOP"] = "1"
    try:
        with mpyc_argv(mpyc_args):
            from mpyc.runtime import mpc
    finally:
        if saved_env is None:
            os.environ.pop("MPYC_NOUVLOOP", None)
        else:
            os.environ["MPYC_NOUVLOOP"] = saved_env
    return mpc


def run_in_process(spec: RoundSpec, probs: Sequence[np.ndarray],
                   weights: Sequence[float]) -> RoundOutput:
    """Runs a round with this process as the only MPyC party (``m = 1``): NO secrecy.

    For tests and teaching: it shows the same arithmetic as a real round, but one party sees
    every input in the clear. Runs in a worker thread with MPyC's own event loop, so it also
    works inside a running Jupyter event loop.

    Example:
        >>> out = run_in_process(RoundSpec(), [np.array([[0.6, 0.4]])] * 2, [1.0, 0.5])
        >>> out.fixed_point.decode(out.sum).round(4).tolist()
        [[0.6, 0.4]]
    """
    def work() -> RoundOutput:
        mpc = load_runtime(["--no-log"], keep_event_loop_policy=True)
        if len(mpc.parties) != 1:
            raise RuntimeError(f"mpyc.runtime in this process is set up for {len(mpc.parties)} "
                               "parties; the in-process path needs a single-party runtime")
        return mpc.run(run_round(mpc, spec, list(probs), list(weights)))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="efl-mpyc") as pool:
        return pool.submit(work).result()
