"""Run a committee of compute parties on this machine: :class:`Committee`, :func:`secure_sum`.

:class:`Committee` starts ``M`` compute-party processes (``efl party --committee --serve``) once
and keeps them connected, so many rounds (every federated-averaging round of a training run)
cost no new processes. Each round: the institutions' shares are written into the parties'
inboxes (:mod:`efl_toolkit.secure.shares`; here the calling process plays every institution),
a round file is published, and every compute party runs
:func:`efl_toolkit.secure.committee.run_committee_round`. The supervisor polls the parties'
result files and processes: a party that dies or hangs fails the round within
``round_timeout`` (named), and every process is killed and reaped when the committee closes or
fails. Institutions whose share did not reach every party are left out (``dropped``).

Example:
    >>> import numpy as np
    >>> vectors = {"a": np.array([1.0, 2.0]), "b": np.array([0.5, -1.0])}
    >>> secure_sum(vectors, [1.0, 2.0]).round(4).tolist()     # 3 compute-party processes
    [2.0, 0.0]
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from efl_toolkit.atomic import write_json_atomic
from efl_toolkit.secure.committee import CommitteeRound
from efl_toolkit.secure.compute_party import MIN_COMMITTEE, STOP_FILE
from efl_toolkit.secure.fixed_point import WEIGHT_BITS, weight_units
from efl_toolkit.secure.parties import (
    GRACE_SECONDS,
    HOST,
    POLL_SECONDS,
    PORT_ATTEMPTS,
    SETTLE_SECONDS,
    PartyReport,
    SecureRoundError,
    _Launched,
    _spawn,
    _stop,
    free_ports,
)
from efl_toolkit.secure.shares import (
    MAX_BIT_LENGTH,
    Share,
    deliver,
    make_shares,
    to_signed_sum,
)


@dataclass(frozen=True)
class CommitteeRun:
    """One finished committee round.

    Attributes:
        round: The round's public parameters.
        included: Institutions whose shares every compute party received (roster order).
        dropped: Roster institutions left out.
        weight_units: Public weights of the included institutions (units of ``2^-30``).
        results: Each compute party's JSON result.
        arrays: Each compute party's opened arrays (``local_sum``, ``sum``, ``labels``).
        seconds: Wall time from publishing the round to the last result.
        sent: What each institution sent each party (first transcript rows), when recorded.
    """

    round: CommitteeRound
    included: tuple[str, ...]
    dropped: tuple[str, ...]
    weight_units: tuple[int, ...]
    results: tuple[dict, ...]
    arrays: tuple[dict, ...]
    seconds: float
    sent: dict | None = None

    @property
    def weight_sum(self) -> float:
        """Sum of the included institutions' public weights (what the output is divided by)."""
        return sum(self.weight_units) / (1 << WEIGHT_BITS)


class Committee:
    """``M`` compute-party processes on 127.0.0.1 that serve rounds until closed.

    Args:
        size: ``M >= 3`` compute parties.
        colluders: ``t < M/2`` (default ``(M-1)//2``).
        startup_timeout: Seconds for every party to start and connect.
        round_timeout: Seconds a round may take once published.
        tls: ``True`` for throw-away certificates (MPyC over TLS), or a folder of them.
        on_spawn: Called with the compute parties' PIDs right after they start.

    Use as a context manager; :meth:`close` stops and reaps every process.

    Raises:
        ValueError: ``size < 3`` or bad ``colluders`` (before any process starts).
        SecureRoundError: A party could not connect, died or hung (named).
    """

    def __init__(self, size: int = 3, *, colluders: int | None = None,
                 startup_timeout: float = 30.0, round_timeout: float = 120.0,
                 tls: bool | str | Path = False, python: str = sys.executable,
                 on_spawn: Callable[[list[int]], None] | None = None):
        if int(size) != size or size < MIN_COMMITTEE:
            raise ValueError(f"a committee needs at least {MIN_COMMITTEE} compute parties "
                             f"(honest majority, t >= 1), got {size}")
        t = (size - 1) // 2 if colluders is None else int(colluders)
        if t < 0 or 2 * t >= size:
            raise ValueError(f"colluders={t} needs colluders < M/2 with M={size} "
                             f"(at most {(size - 1) // 2})")
        for name, value in (("startup_timeout", startup_timeout),
                            ("round_timeout", round_timeout)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
        self.size, self.threshold = int(size), t
        self.startup_timeout, self.round_timeout = startup_timeout, round_timeout
        self.tls, self.python, self.on_spawn = tls, python, on_spawn
        self.workdir: Path | None = None
        self.launched: list[_Launched] = []
        self.addresses: list[str] = []
        self._rounds = itertools.count()
        self._published = 0
        self._cert_dir: Path | None = None

    # -- life cycle ------------------------------------------------------------------------
    def __enter__(self) -> Committee:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def inbox(self, party: int) -> Path:
        """The folder compute party ``party`` reads shares from."""
        assert self.workdir is not None, "start the committee first"
        return self.workdir / f"inbox_{party}"

    @property
    def inboxes(self) -> list[Path]:
        return [self.inbox(j) for j in range(self.size)]

    def start(self) -> Committee:
        """Starts the processes and waits until all are connected (on any failure, including
        an interrupt, everything started so far is stopped and removed). A port taken between
        choosing it and the party listening on it (another process, or a peer's outgoing
        connection given that port by the kernel) is a clash, not a fault: up to
        ``PORT_ATTEMPTS`` starts on fresh ports, as for one party per institution."""
        for attempt in range(PORT_ATTEMPTS):
            try:
                return self._start()
            except SecureRoundError as err:
                self.close()
                if err.kind != "bind" or attempt + 1 == PORT_ATTEMPTS:
                    raise
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _start(self) -> Committee:
        self.launched = []
        self.workdir = Path(tempfile.mkdtemp(prefix="efl-committee-"))
        (self.workdir / "rounds").mkdir()
        tls_dir = None
        if self.tls is True:
            from efl_toolkit.secure.tls import make_certificates

            self._cert_dir = Path(make_certificates(self.workdir / "tls", self.size, days=1))
            tls_dir = self._cert_dir
        elif self.tls:
            tls_dir = Path(self.tls).resolve()
        self.addresses = [f"{HOST}:{p}" for p in free_ports(self.size)]
        for j in range(self.size):
            self.inbox(j).mkdir()
            cmd = [self.python, "-m", "efl_toolkit.cli", "party", "--committee", "--index",
                   str(j), "--parties", ",".join(self.addresses), "--inbox", str(self.inbox(j)),
                   "--serve", str(self.workdir / "rounds"), "--out", str(self.workdir),
                   "--threshold", str(self.threshold),
                   "--startup-timeout", f"{self.startup_timeout:g}",
                   "--round-timeout", f"{self.round_timeout:g}", "--parent-pid", str(os.getpid())]
            if tls_dir is not None:
                cmd += ["--tls", str(tls_dir)]
            self.launched.append(_spawn(j, cmd, self.workdir, f"compute-{j}", self.addresses[j]))
        if self.on_spawn is not None:
            self.on_spawn([p.process.pid for p in self.launched])
        deadline = time.monotonic() + self.startup_timeout + GRACE_SECONDS
        while True:
            time.sleep(POLL_SECONDS)
            stages = [(p.read_json("status") or {}).get("stage") for p in self.launched]
            if all(s == "connected" for s in stages):
                return self
            self._fail_if_dead("start-up")
            if time.monotonic() > deadline:
                late = [p.index for p, s in zip(self.launched, stages, strict=True)
                        if s != "connected"]
                self._abort(f"compute part{'ies' if len(late) > 1 else 'y'} "
                            f"{', '.join(map(str, late))} did not connect within "
                            f"{self.startup_timeout:g} s", late, "unconnected")

    def close(self) -> None:
        """Tells the parties to stop, waits briefly, then kills and reaps what is left."""
        if self.workdir is None:
            return
        with contextlib.suppress(OSError):      # started far enough to have a rounds folder?
            (self.workdir / "rounds" / STOP_FILE).touch()
        end = time.monotonic() + 5.0
        while time.monotonic() < end and any(p.process.poll() is None for p in self.launched):
            time.sleep(POLL_SECONDS)
        _stop(self.launched)
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = None

    def reports(self, status: str = "ok", results: Sequence[dict] = ()
                ) -> tuple[PartyReport, ...]:
        """One :class:`PartyReport` per compute party (command, pid, address, log tail; with a
        round's ``results`` also its seconds and bytes sent in that round)."""
        rounds = dict(enumerate(results))
        return tuple(PartyReport(
            index=p.index, name=p.name, address=p.address, pid=p.process.pid,
            command=tuple(p.command), returncode=p.process.returncode,
            status=status if p.process.returncode in (None, 0) else "died",
            compute_seconds=rounds.get(p.index, {}).get("seconds"),
            bytes_sent=rounds.get(p.index, {}).get("bytes_sent"),
            log_tail=p.log_tail()) for p in self.launched)

    def _abort(self, message: str, culprits: Sequence[int], kind: str):
        reports = self.reports("stopped")
        _stop(self.launched)
        raise SecureRoundError(f"committee failed: {message}. All {self.size} compute-party "
                               "processes have ended.", culprits, reports, kind=kind)

    def _fail_if_dead(self, during: str) -> None:
        if all(p.process.poll() is None for p in self.launched):
            return
        time.sleep(SETTLE_SECONDS)      # let the other parties report what they observed
        dead = [p for p in self.launched if p.process.poll() is not None]
        infos = {q.index: q.read_json("json") or {} for q in dead}
        clash = next((q for q in dead if infos[q.index].get("error_kind") == "bind"), None)
        if clash is not None:   # its port was taken before it could listen: start() retries
            self._abort(f"compute party {clash.index} ({clash.address}) could not listen: "
                        f"{infos[clash.index].get('error')}", [clash.index], "bind")
        verdicts = {"timeout": ("stopped responding", "hung"),
                    "connect": ("never connected", "unconnected")}
        for kind_seen, (what, kind) in verdicts.items():
            # parties that waited in vain name the silent one(s): the ones all of them name
            named = [set(int(j) for j in infos[q.index].get("peers") or [] if int(j) != q.index)
                     for q in dead if infos[q.index].get("error_kind") == kind_seen]
            named = [n for n in named if n]
            if named:
                awaited = sorted(set.intersection(*named) or set.union(*named))
                reporter = next(q for q in dead
                                if infos[q.index].get("error_kind") == kind_seen)
                names = ", ".join(f"compute party {j} ({self.addresses[j]})" for j in awaited)
                self._abort(f"{names} {what} during {during}: compute party "
                            f"{reporter.index} {infos[reporter.index].get('error')}",
                            awaited, kind)
        # else a party that died without a word (killed), else one that did not merely lose a
        # peer: the one that went away, not those left behind
        p = next((q for q in dead if not infos[q.index]), None) or next(
            (q for q in dead if infos[q.index].get("error_kind") != "peer-lost"), dead[0])
        info = infos[p.index]
        why = info.get("error") or f"exited with code {p.process.returncode}"
        self._abort(f"compute party {p.index} ({p.address}) ended during {during}: {why}",
                    [q.index for q in dead], "failed" if info else "died")

    # -- rounds ----------------------------------------------------------------------------
    def next_round_id(self, prefix: str = "round") -> str:
        return f"{prefix}-{os.getpid()}-{next(self._rounds)}"

    def submit(self, rnd: CommitteeRound, institution: str, contribution: np.ndarray,
               weight: float = 0.0) -> list[Share]:
        """Plays ``institution``: splits its encoded contribution and delivers the shares."""
        fp = rnd.fixed_point()
        shares = make_shares(contribution, round_id=rnd.round_id, institution=institution,
                             n_parties=self.size, kind=rnd.kind, bit_length=fp.bit_length,
                             frac_bits=fp.frac_bits, weight_units=weight_units(weight))
        deliver(shares, self.inboxes)
        return shares

    def run(self, rnd: CommitteeRound) -> CommitteeRun:
        """Publishes ``rnd`` (shares already delivered) and collects every party's result.

        Raises:
            SecureRoundError: A compute party died or hung (the committee is then closed), or
                the round failed at the parties (bad share, too few institutions: ``kind`` is
                ``"input"`` or ``"quorum"``; the committee stays usable).
        """
        assert self.workdir is not None, "start the committee first"
        rnd.check(self.size)
        k, self._published = self._published, self._published + 1
        started = time.monotonic()
        write_json_atomic(self.workdir / "rounds" / f"round_{k:05d}.json",
                          json.loads(rnd.to_json()))
        deadline = started + self.round_timeout + GRACE_SECONDS
        while True:
            time.sleep(POLL_SECONDS / 5)
            results = [p.read_json(f"r{k}.json") for p in self.launched]
            if all(r is not None for r in results):
                break
            self._fail_if_dead(f"round {rnd.round_id}")
            if time.monotonic() > deadline:
                late = [p.index for p, r in zip(self.launched, results, strict=True) if r is None]
                self._abort(f"round {rnd.round_id}: compute parties {late} gave no result "
                            f"within {self.round_timeout:g} s", late, "hung")
        seconds = time.monotonic() - started
        failed = [r for r in results if not r.get("ok")]
        if failed:
            first = next((r for r in failed if "peers" not in r), failed[0])
            raise SecureRoundError(f"round {rnd.round_id} failed at compute party "
                                   f"{first['party']}: {first['error']}", [first["party"]],
                                   self.reports(), kind=first.get("error_kind", "failed"))
        arrays = []
        for p in self.launched:
            path = self.workdir / f"party_{p.index}.r{k}.npz"
            arrays.append(dict(np.load(path)) if path.is_file() else {})
        included = tuple(results[0]["included"])
        return CommitteeRun(rnd, included, tuple(n for n in rnd.roster if n not in included),
                            tuple(results[0]["weight_units"]), tuple(results), tuple(arrays),
                            seconds)

    def sum(self, vectors: Mapping[str, np.ndarray], weights=None, *,
            frac_bits: int = 16, round_id: str | None = None,
            min_institutions: int = 1, absent: Sequence[str] = ()) -> SecureSum:
        """Secure aggregation: the weighted sum ``sum_i w_i x_i`` of same-shaped arrays.

        Each institution encodes ``(w_i / max w) * x_i`` with ``frac_bits`` fractional bits,
        splits it and delivers the shares; each compute party adds its shares and hands over its
        local sum, an additive share of the total (so only the total is revealed). Exact up to
        the encoding: ``|error| <= N * max(w) * 2^-(f+1)`` per entry. Institutions in ``absent``
        are in the roster but submit nothing (a dropout, for teaching and tests).

        Raises:
            ValueError: Non-finite or differently shaped arrays, bad weights, or a value too
                large for the fixed-point range (the institution is named).
        """
        names, arrays, w = check_sum_inputs(vectors, weights, frac_bits)
        scale = float(w.max())
        rnd = CommitteeRound(round_id or self.next_round_id("sum"), "sum", tuple(names),
                             tuple(arrays[0].shape), frac_bits=frac_bits,
                             min_institutions=min_institutions).check(self.size)
        fp = rnd.fixed_point()
        for name, x, wi in zip(names, arrays, w / scale, strict=True):
            if name not in absent:
                self.submit(rnd, name, fp.encode(wi * x), float(wi))
        run = self.run(rnd)
        total = to_signed_sum([a["local_sum"] for a in run.arrays], int(run.results[0]["modulus"]))
        return SecureSum(total=fp.decode(total) * scale, run=run, scale=scale)


@dataclass(frozen=True)
class SecureSum:
    """A secure aggregation's result: ``total`` (the weighted sum over ``run.included``)."""

    total: np.ndarray
    run: CommitteeRun
    scale: float

    @property
    def mean(self) -> np.ndarray:
        """``total`` divided by the included institutions' weights (renormalized mean)."""
        return self.total / (self.run.weight_sum * self.scale)


def check_sum_inputs(vectors, weights, frac_bits: int
                     ) -> tuple[list[str], list[np.ndarray], np.ndarray]:
    """Checks a secure sum's inputs before anything is shared; returns names, arrays, weights.

    Raises:
        ValueError: Non-finite or differently shaped arrays, bad weights, or a weighted value
            beyond the fixed-point range of ``SecInt(30)`` (the institution is named).
    """
    names, arrays = _check_vectors(vectors)
    w = _check_weights(weights, names)
    limit = 2.0 ** (MAX_BIT_LENGTH - 1 - frac_bits) / len(names)
    for name, x, wi in zip(names, arrays, w / w.max(), strict=True):
        if x.size and float(np.abs(x).max()) * wi >= limit:
            raise ValueError(f"{name}: values up to {float(np.abs(x).max()):.4g} exceed the "
                             f"fixed-point range (+-{limit:.4g} for {len(names)} "
                             f"institutions at frac_bits={frac_bits}); scale them down")
    return names, arrays, w


def _check_vectors(vectors) -> tuple[list[str], list[np.ndarray]]:
    items = (list(vectors.items()) if isinstance(vectors, Mapping)
             else [(f"institution-{i}", v) for i, v in enumerate(vectors)])
    if not items:
        raise ValueError("secure_sum needs at least one array")
    names = [str(n) for n, _ in items]
    arrays = [np.asarray(v, dtype=np.float64) for _, v in items]
    for name, x in zip(names, arrays, strict=True):
        if x.shape != arrays[0].shape:
            raise ValueError(f"{name}: shape {list(x.shape)} differs from {names[0]}'s "
                             f"{list(arrays[0].shape)}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name}: contains NaN or infinite values")
    return names, arrays


def _check_weights(weights, names: Sequence[str]) -> np.ndarray:
    if weights is None:
        return np.ones(len(names))
    if isinstance(weights, Mapping):
        unknown = sorted(set(weights) - set(names))
        if unknown:
            raise ValueError(f"weights name unknown institutions: {', '.join(unknown)}")
        weights = [weights.get(n, 0.0) for n in names]
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(names),) or not np.all(np.isfinite(w)) or (w < 0).any() or w.max() <= 0:
        raise ValueError(f"need {len(names)} finite non-negative weights with a positive "
                         f"maximum, got {list(np.atleast_1d(w))}")
    return w


def secure_sum(vectors, weights=None, committee: int = 3, *, frac_bits: int = 16,
               timeout: float = 120.0, startup_timeout: float = 30.0) -> np.ndarray:
    """The weighted sum of same-shaped float arrays by a committee of compute processes.

    Args:
        vectors: One array per institution (list, or dict name -> array), same shape.
        weights: Public non-negative weights (default all 1).
        committee: Compute parties ``M >= 3``.
        frac_bits: Fractional bits of the encoding.

    Returns:
        ``sum_i weights[i] * vectors[i]``, shaped like the inputs (within the fixed-point bound).

    The compute parties' local sums are opened directly (they are additive shares of the total
    and reveal only it); see :meth:`Committee.sum`. For many rounds keep one
    :class:`Committee` open instead of calling this repeatedly.
    """
    check_sum_inputs(vectors, weights, frac_bits)          # before any process starts
    with Committee(committee, round_timeout=timeout, startup_timeout=startup_timeout) as c:
        return c.sum(vectors, weights, frac_bits=frac_bits).total
