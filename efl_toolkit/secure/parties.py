"""Launch and supervise the M party processes of one secure round on this machine.

Each party is a real OS process (``python -m efl_toolkit.cli party ...``, i.e. ``efl party``)
talking MPyC over TCP on 127.0.0.1, on ports chosen free (bind to port 0, release; a collision is
detected and the round relaunched on new ports). Inputs travel as ``.npz`` files in a temporary
folder; each party writes a status file, a JSON result and an ``.npz`` of opened arrays.

Supervision is plain polling of ``subprocess.Popen`` objects (every 50 ms), with no event loop:
it behaves the same in a script, in a worker thread and inside a running Jupyter kernel.

* Start-up timeout: every party must report "connected" in time, else the round fails and names
  the parties that did not connect.
* Round timeout: each party stops itself after ``round_timeout`` and says whose messages it was
  still waiting for; the supervisor stops everything a few seconds later at the latest.
* A party that dies or fails makes the round fail at once, naming it.
* On any failure, every party's process group gets SIGKILL and is reaped: no process survives
  the call (and each party also exits by itself if its supervisor disappears).

Example:
    >>> import numpy as np
    >>> from efl_toolkit.secure.parties import PartyInput, launch_parties
    >>> from efl_toolkit.secure.protocol import RoundSpec
    >>> inputs = [PartyInput(np.array([[0.9, 0.1], [0.4, 0.6]]), 1.0, f"h{i}") for i in range(3)]
    >>> run = launch_parties(inputs, RoundSpec(reveal="labels"))   # 3 real processes
    >>> run.arrays[0]["labels"].tolist(), [r.status for r in run.reports]
    ([0, 1], ['ok', 'ok', 'ok'])
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from efl_toolkit.secure.party import write_input
from efl_toolkit.secure.protocol import RoundSpec

POLL_SECONDS = 0.05
#: Extra seconds the supervisor grants beyond a party's own timeouts before killing it.
GRACE_SECONDS = 5.0
#: After the first party fails, seconds to let the others report before everything is stopped.
SETTLE_SECONDS = 1.0
PORT_ATTEMPTS = 3
HOST = "127.0.0.1"

_live_groups: set[int] = set()


def _kill_live_groups() -> None:
    for pgid in list(_live_groups):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


atexit.register(_kill_live_groups)


@dataclass(frozen=True)
class PartyInput:
    """One party's private input: its probabilities, its weight in ``[0, 1]``, its name."""

    probs: np.ndarray
    weight: float = 1.0
    name: str = ""


@dataclass(frozen=True)
class PartyReport:
    """How one party process went.

    Attributes:
        index: Party index.
        name: Institution name.
        address: ``host:port`` it listened on.
        pid: Its process id.
        command: Exact command line it ran (``shell_command`` quotes it).
        returncode: Exit code (negative: killed by that signal; ``None``: never ended).
        status: ``ok``; for a culprit ``died``, ``failed`` (its own error), ``hung`` or
            ``unconnected``; for the others ``timeout`` (waited for a peer), ``peer-lost``
            (a peer's connection dropped) or ``stopped`` (killed by the supervisor).
        stage: Last stage it reported (``starting``, ``connecting``, ``connected``...).
        connect_seconds: Seconds to connect to all peers.
        compute_seconds: Seconds of the round once connected.
        bytes_sent: Bytes it sent to its peers.
        received: Whether the output was opened to it.
        error: Its own error message, if any.
        log_tail: Last lines of its stdout/stderr.
    """

    index: int
    name: str
    address: str
    pid: int | None
    command: tuple[str, ...]
    returncode: int | None
    status: str
    stage: str | None = None
    connect_seconds: float | None = None
    compute_seconds: float | None = None
    bytes_sent: int | None = None
    received: bool = False
    error: str | None = None
    log_tail: str = ""

    @property
    def shell_command(self) -> str:
        return shlex.join(self.command)


class SecureRoundError(RuntimeError):
    """A secure round failed.

    Attributes:
        parties: Indices of the parties at fault.
        reports: One :class:`PartyReport` per party (status, error, log tail, command).
        kind: Status of the first culprit: ``died``, ``failed``, ``hung`` or ``unconnected``.
    """

    def __init__(self, message: str, parties: Sequence[int] = (),
                 reports: Sequence[PartyReport] = (), kind: str = "error"):
        super().__init__(message)
        self.parties = tuple(parties)
        self.reports = tuple(reports)
        self.kind = kind


@dataclass(frozen=True)
class PartyRun:
    """A finished round: per-party reports, JSON results and opened arrays."""

    reports: tuple[PartyReport, ...]
    results: tuple[dict, ...]
    arrays: tuple[dict, ...]
    seconds: float
    workdir: str | None = None


@dataclass
class _Launched:
    index: int
    name: str
    address: str
    command: list[str]
    process: subprocess.Popen
    out_dir: Path
    log_path: Path
    killed: bool = False

    def read_json(self, suffix: str) -> dict | None:
        path = self.out_dir / f"party_{self.index}.{suffix}"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def free_ports(n: int, host: str = HOST) -> list[int]:
    """``n`` distinct TCP ports that were free a moment ago (bind to 0, then release).

    Example:
        >>> len(set(free_ports(3)))
        3
    """
    sockets, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


def party_command(index: int, addresses: Sequence[str], input_path: Path, out_dir: Path,
                  spec: RoundSpec, *, threshold: int, startup_timeout: float,
                  round_timeout: float, name: str = "", tls_dir: Path | None = None,
                  python: str = sys.executable, parent_pid: int | None = None) -> list[str]:
    """The exact ``efl party`` command line of party ``index``.

    Example:
        >>> cmd = party_command(1, ["127.0.0.1:5000", "127.0.0.1:5001"], Path("in.npz"),
        ...                     Path("out"), RoundSpec(), threshold=0, startup_timeout=10,
        ...                     round_timeout=60, python="python")
        >>> " ".join(cmd[:8])
        'python -m efl_toolkit.cli party --index 1 --parties 127.0.0.1:5000,127.0.0.1:5001'
    """
    cmd = [python, "-m", "efl_toolkit.cli", "party", "--index", str(index),
           "--parties", ",".join(addresses), "--input", str(input_path), "--out", str(out_dir),
           "--reveal", spec.reveal, "--threshold", str(threshold),
           "--frac-bits", str(spec.frac_bits), "--batch-rows", str(spec.batch_rows),
           "--transcript-rows", str(spec.transcript_rows),
           "--startup-timeout", f"{startup_timeout:g}", "--round-timeout", f"{round_timeout:g}"]
    if spec.receivers is not None:
        cmd += ["--receivers", ",".join(str(r) for r in spec.receivers)]
    if name:
        cmd += ["--name", name]
    if tls_dir is not None:
        cmd += ["--tls", str(tls_dir)]
    if parent_pid is not None:
        cmd += ["--parent-pid", str(parent_pid)]
    return cmd


def _stop(launched: Sequence[_Launched]) -> None:
    """SIGKILL every still-running party's process group and reap it."""
    for party in launched:
        proc = party.process
        if proc.poll() is None:
            party.killed = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
    for party in launched:
        with contextlib.suppress(subprocess.TimeoutExpired):
            party.process.wait(timeout=10)
        _live_groups.discard(party.process.pid)


def _watch(launched: Sequence[_Launched], startup_timeout: float, round_timeout: float
           ) -> tuple[str, dict[int, str]]:
    """Polls until all parties end (``ok``) or the round fails; returns outcome and stages."""
    start = time.monotonic()
    startup_deadline = start + startup_timeout + GRACE_SECONDS
    round_deadline = None
    first_failure = None
    while True:
        time.sleep(POLL_SECONDS)
        now = time.monotonic()
        codes = [p.process.poll() for p in launched]
        stages = {p.index: (p.read_json("status") or {}).get("stage") for p in launched}
        if all(c == 0 for c in codes):
            return "ok", stages
        if any(c not in (None, 0) for c in codes):
            first_failure = first_failure or now
            if all(c is not None for c in codes) or now - first_failure > SETTLE_SECONDS:
                return "failed", stages
            continue
        connected = all(s in ("connected", "opened", "done") for s in stages.values())
        if round_deadline is None and connected:
            round_deadline = now + round_timeout + GRACE_SECONDS
        if round_deadline is None and now > startup_deadline:
            return "startup-timeout", stages
        if round_deadline is not None and now > round_deadline:
            return "round-timeout", stages


def _classify(party: _Launched, result: dict | None) -> tuple[str, str | None]:
    """Status from the party's own report, or from how its process ended."""
    code = party.process.returncode
    if result is not None and result.get("ok"):
        return "ok", None
    if result is not None:
        kind = result.get("error_kind")
        status = {"connect": "unconnected", "timeout": "timeout", "peer-lost": "peer-lost"}
        return status.get(kind, "failed"), result.get("error")
    if party.killed:
        return "stopped", "stopped by the supervisor"
    if code is not None and code < 0:
        return "died", f"killed by signal {signal.Signals(-code).name}"
    return "died", f"exited with code {code} without a result"


def _blame(reports: list[PartyReport], results: Sequence[dict | None]) -> list[int]:
    """Parties at fault (relabels silent ones as ``hung``/``unconnected`` in ``reports``).

    Crashed or self-failed parties first; else the parties the others were waiting for; else
    the parties that never answered.
    """
    culprits = [r.index for r in reports if r.status in ("died", "failed")]
    if culprits:
        return culprits
    votes: dict[int, int] = {}
    for res in results:
        for peer in (res or {}).get("peers", []):
            votes[peer] = votes.get(peer, 0) + 1
    silent = [r.index for r in reports if r.status == "stopped"]
    if votes:
        top = max(votes.values())
        culprits = sorted(p for p, v in votes.items() if v == top)
        silent_top = [p for p in culprits if p in silent]
        culprits = silent_top or culprits
    else:
        culprits = silent or [r.index for r in reports if r.status != "ok"]
    for i in culprits:
        r = reports[i]
        if r.status == "stopped":
            early = r.stage in (None, "starting", "connecting")
            status = "unconnected" if early else "hung"
            error = (f"never connected (last stage: {r.stage or 'not started'})" if early
                     else f"stopped responding after stage '{r.stage}'")
            reports[i] = dataclasses.replace(r, status=status, error=error)
    return culprits


_VICTIM_VERBS = {"unconnected": "could not connect to it within {startup:g} s",
                 "timeout": "waited {round:g} s for its messages",
                 "peer-lost": "lost their connection to it"}


def _describe_failure(blamed: list[int], reports: Sequence[PartyReport],
                      startup_timeout: float, round_timeout: float) -> str:
    """One sentence per blamed party, with what the other parties observed."""
    parts = []
    for i in blamed:
        r = reports[i]
        why = r.error or r.status
        for status, verb in _VICTIM_VERBS.items():
            victims = [o.index for o in reports if o.index != i and o.status == status
                       and o.error and f"party {i} (" in o.error]
            if victims:
                noun = "parties" if len(victims) > 1 else "party"
                why += (f"; {noun} {', '.join(map(str, victims))} " +
                        verb.format(startup=startup_timeout, round=round_timeout))
        label = f"party {i} (" + (f"{r.name}, " if r.name else "") + f"{r.address})"
        parts.append(f"{label} {r.status}: {why}")
    return ("secure round failed: " + "; ".join(parts) +
            f". All {len(reports)} party processes have ended.")


def _reports(launched: Sequence[_Launched], results, stages) -> list[PartyReport]:
    reports = []
    for party, result in zip(launched, results, strict=True):
        status, error = _classify(party, result)
        res = result or {}
        reports.append(PartyReport(
            index=party.index, name=party.name, address=party.address, pid=party.process.pid,
            command=tuple(party.command), returncode=party.process.returncode, status=status,
            stage=res.get("stage") or stages.get(party.index),
            connect_seconds=res.get("connect_seconds"), compute_seconds=res.get("compute_seconds"),
            bytes_sent=res.get("bytes_sent"), received=bool(res.get("received")), error=error,
            log_tail=party.log_tail()))
    return reports


def _spawn(index: int, cmd: list[str], workdir: Path, name: str, address: str) -> _Launched:
    log_path = workdir / f"party_{index}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=workdir, env=env, start_new_session=True)
    _live_groups.add(proc.pid)
    return _Launched(index, name, address, cmd, proc, workdir, log_path)


def _run_once(inputs: Sequence[PartyInput], spec: RoundSpec, workdir: Path, *, threshold: int,
              startup_timeout: float, round_timeout: float, tls_dir: Path | None, python: str,
              on_spawn: Callable[[list[int]], None] | None) -> tuple[str, PartyRun, list]:
    ports = free_ports(len(inputs))
    addresses = [f"{HOST}:{p}" for p in ports]
    for path in workdir.glob("party_*.*"):
        path.unlink()
    launched = []
    start = time.monotonic()
    try:
        for i, item in enumerate(inputs):
            input_path = write_input(workdir / f"input_{i}.npz", item.probs, item.weight)
            cmd = party_command(i, addresses, input_path, workdir, spec, threshold=threshold,
                                startup_timeout=startup_timeout, round_timeout=round_timeout,
                                name=item.name, tls_dir=tls_dir, python=python,
                                parent_pid=os.getpid())
            launched.append(_spawn(i, cmd, workdir, item.name, addresses[i]))
        if on_spawn is not None:
            on_spawn([p.process.pid for p in launched])
        outcome, stages = _watch(launched, startup_timeout, round_timeout)
    finally:
        _stop(launched)
    seconds = time.monotonic() - start
    results = [p.read_json("json") for p in launched]
    arrays = []
    for p in launched:
        path = workdir / f"party_{p.index}.npz"
        arrays.append(dict(np.load(path)) if path.is_file() else {})
    reports = _reports(launched, results, stages)
    run = PartyRun(tuple(reports), tuple(r or {} for r in results), tuple(arrays), seconds)
    return outcome, run, results


def launch_parties(inputs: Sequence[PartyInput], spec: RoundSpec, *, threshold: int | None = None,
                   startup_timeout: float = 30.0, round_timeout: float = 120.0,
                   tls_dir: str | Path | None = None, python: str = sys.executable,
                   keep_files: bool = False,
                   on_spawn: Callable[[list[int]], None] | None = None) -> PartyRun:
    """Runs one secure round with ``len(inputs)`` real party processes on 127.0.0.1.

    Args:
        inputs: One :class:`PartyInput` per party (party ``i`` gets ``inputs[i]``).
        spec: Public round parameters.
        threshold: Colluders tolerated ``t`` (default ``(M-1)//2``); must satisfy ``t < M/2``.
        startup_timeout: Seconds for all parties to start and connect.
        round_timeout: Seconds for the round once connected.
        tls_dir: Folder with TLS files for every party (see :mod:`efl_toolkit.secure.tls`).
        python: Interpreter for the party processes.
        keep_files: Keep the temporary folder (inputs, logs, results); its path is in
            ``PartyRun.workdir``.
        on_spawn: Called with the party PIDs right after they start (e.g. to show them).

    Returns:
        A :class:`PartyRun` when every party finished.

    Raises:
        ValueError: Bad arguments (before any process starts).
        SecureRoundError: A party could not connect, failed, died or hung; the message names it.
    """
    m = len(inputs)
    if m < 2:
        raise ValueError(f"a secure round needs at least 2 parties, got {m}")
    t = (m - 1) // 2 if threshold is None else int(threshold)
    if t < 0 or 2 * t >= m:
        raise ValueError(f"colluders t={t} not allowed with M={m} parties: need t < M/2 "
                         f"(at most {(m - 1) // 2}; t={t} needs at least {2 * t + 1} parties)")
    if startup_timeout <= 0 or round_timeout <= 0:
        raise ValueError("timeouts must be positive")
    spec.check(m)
    tls_path = Path(tls_dir).resolve() if tls_dir is not None else None
    workdir = Path(tempfile.mkdtemp(prefix="efl-round-"))
    try:
        for attempt in range(PORT_ATTEMPTS):
            outcome, run, results = _run_once(
                inputs, spec, workdir, threshold=t, startup_timeout=startup_timeout,
                round_timeout=round_timeout, tls_dir=tls_path, python=python, on_spawn=on_spawn)
            if outcome == "ok":
                return PartyRun(run.reports, run.results, run.arrays, run.seconds,
                                str(workdir) if keep_files else None)
            port_clash = any((r or {}).get("error_kind") == "bind" for r in results)
            if not (port_clash and attempt + 1 < PORT_ATTEMPTS):
                break
        reports = list(run.reports)
        blamed = _blame(reports, results)
        message = _describe_failure(blamed, reports, startup_timeout, round_timeout)
        raise SecureRoundError(message, blamed, reports, kind=reports[blamed[0]].status)
    finally:
        if not keep_files:
            shutil.rmtree(workdir, ignore_errors=True)
