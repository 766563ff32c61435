"""``efl party``: one MPyC party of a secure ensemble round, as its own OS process.

The same command runs on one machine (launched by :mod:`efl_toolkit.secure.parties`) and across
machines (one institution per machine, see ``docs/secure.md``)::

    efl party --index 0 --parties hostA:5000,hostB:5000,hostC:5000 \\
              --input hospital_a.npz --reveal labels --out results/

The input file is an ``.npz`` with ``probs`` (``[n_queries, n_classes]``, rows summing to 1) and
optionally ``weight`` (in ``[0, 1]``; default 1). Arguments are parsed here, never by MPyC: MPyC's
own command line is built from them and swapped into ``sys.argv`` only while ``mpyc.runtime``
is imported (its parser would otherwise prefix-match and eat options).

Outputs in ``--out``: ``party_{i}.status`` (stage, updated as the round progresses),
``party_{i}.json`` (result or error, also printed as one JSON line) and ``party_{i}.npz``
(``labels``, and ``sum`` in mean mode, when this party is a receiver).

Exit codes: 0 done, 2 bad arguments or input, 3 could not connect, 4 round timeout, 5 parties
disagree on parameters, 6 lost a peer, 1 anything else. After a failed round the process exits
at once (``os._exit``) so that no pending MPyC task can keep it alive.

Example:
    >>> from efl_toolkit.secure.party import build_parser
    >>> args = build_parser().parse_args(["--index", "1", "--parties", "a:1,b:2", "--input", "x"])
    >>> args.index, args.reveal
    (1, 'mean')
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

from efl_toolkit.atomic import write_json_atomic
from efl_toolkit.ensemble.combine import EnsembleInputError, check_probabilities
from efl_toolkit.secure.fixed_point import REVEALS
from efl_toolkit.secure.protocol import RoundMismatchError, RoundSpec, load_runtime, run_round
from efl_toolkit.secure.tls import missing_files

EXIT_CODES = {"ok": 0, "error": 1, "input": 2, "connect": 3, "bind": 3, "timeout": 4,
              "mismatch": 5, "peer-lost": 6, "quorum": 7}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


#: Largest ``--batch-rows``/``--transcript-rows``: the parties compare them as 64-bit integers.
MAX_ROWS = 2**31 - 1
#: Fewest and most fractional bits of the fixed-point encoding (``FixedPoint.for_inputs``).
FRAC_BITS_RANGE = (4, 40)


def seconds(text: str) -> float:
    """An ``argparse`` type: a finite number of seconds > 0 (argparse names the option).

    Example:
        >>> seconds("2.5")
        2.5
        >>> seconds("nan")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: 'nan' is not a finite number of seconds > 0
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of seconds > 0")
    return value


def int_in(low: int, high: int):
    """An ``argparse`` type: an integer in ``[low, high]`` (argparse names the option).

    Example:
        >>> int_in(4, 40)("16")
        16
        >>> int_in(4, 40)("99")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: 99 is not an integer in 4..40
    """
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not an integer in {low}..{high}")
        return value

    parse.__name__ = "integer"  # argparse's fallback message: "invalid integer value"
    return parse


def index_list(text: str) -> str:
    """An ``argparse`` type: comma-separated party indices (returned as given).

    Example:
        >>> index_list("0,x")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: '0,x' is not a comma-separated list of party indices
    """
    try:
        [int(item) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of party "
                                         "indices") from None
    return text


def check_index(args, minimum: int, what: str) -> list[tuple[str, int]]:
    """The addresses of ``--parties``, once ``--index`` is known to be one of them and there
    are at least ``minimum``; ``ValueError`` otherwise. Run before anything is written, so a
    wrong index never leaves ``party_{i}`` files behind."""
    addresses = parse_addresses(args.parties)
    m, i = len(addresses), args.index
    if m < minimum:
        raise ValueError(f"{what} needs at least {minimum} parties in --parties, got {m}")
    if not 0 <= i < m:
        raise ValueError(f"--index {i} is not in 0..{m - 1} (--parties lists {m} parties)")
    return addresses


def check_out_folder(out: str, index: int) -> Path:
    """Creates ``--out`` if needed and proves it writable; ``ValueError`` naming ``--out``."""
    out_dir = Path(out).resolve()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".party_{index}.probe"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"--out {out}: cannot write there ({err.strerror or err})") from None
    return out_dir


class PartyFailure(Exception):
    """A round failed at this party; ``kind`` is a key of :data:`EXIT_CODES`."""

    def __init__(self, kind: str, message: str, peers: list[int] | None = None):
        super().__init__(message)
        self.kind, self.peers = kind, list(peers or [])


def build_parser() -> argparse.ArgumentParser:
    """The ``efl party`` argument parser (``efl party make-certs`` is separate)."""
    p = argparse.ArgumentParser(
        prog="efl party", description="Run one MPyC party of a secure ensemble round. "
        "`efl party make-certs --parties M --out DIR` creates TLS certificates.")
    p.add_argument("--index", type=int, required=True, help="this party's index i (0-based)")
    p.add_argument("--parties", required=True, action="append",
                   help="host:port of every party, comma-separated, in index order")
    p.add_argument("--input", required=True, help=".npz with probs [n, C] and optional weight")
    p.add_argument("--reveal", choices=REVEALS, default="mean",
                   help="open the weighted mean (weights public) or only the argmax labels")
    p.add_argument("--receivers", default=None, type=index_list,
                   help="comma-separated party indices that learn the output (default: all)")
    p.add_argument("--threshold", type=int_in(0, MAX_ROWS), default=None,
                   help="colluding parties tolerated, t < M/2 (default: (M-1)//2)")
    p.add_argument("--frac-bits", type=int_in(*FRAC_BITS_RANGE), default=16,
                   help="fixed-point fractional bits (4..40)")
    p.add_argument("--batch-rows", type=int_in(1, MAX_ROWS), default=1000,
                   help="rows per secure argmax batch")
    p.add_argument("--transcript-rows", type=int_in(0, MAX_ROWS), default=0,
                   help="record this party's shares of the first rows (teaching)")
    p.add_argument("--out", default=".", help="folder for party_{i}.json/.npz/.status")
    p.add_argument("--name", default=None, help="institution name shown in reports")
    p.add_argument("--startup-timeout", type=seconds, default=60.0,
                   help="seconds to connect to all parties (finite, > 0)")
    p.add_argument("--round-timeout", type=seconds, default=600.0,
                   help="seconds for the round once connected (finite, > 0)")
    p.add_argument("--tls", default=None, metavar="DIR",
                   help="use TLS (MPyC --ssl) with party_{i}.crt/.key and mpyc_ca.crt from DIR")
    p.add_argument("--bind", default=None, metavar="HOST",
                   help="interface to listen on (default: 127.0.0.1 for loopback addresses, "
                        "else all interfaces)")
    p.add_argument("--parent-pid", type=int, default=None,
                   help="exit if this process (the supervisor) disappears")
    p.add_argument("--verbose", action="store_true", help="keep MPyC's log messages")
    return p


def parse_addresses(values: list[str]) -> list[tuple[str, int]]:
    """``["h0:p0,h1:p1", "h2:p2"]`` -> ``[(h0, p0), (h1, p1), (h2, p2)]``.

    Example:
        >>> parse_addresses(["127.0.0.1:5000,127.0.0.1:5001"])
        [('127.0.0.1', 5000), ('127.0.0.1', 5001)]
    """
    out = []
    for item in ",".join(values).split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"party address {item.strip()!r} is not host:port")
        out.append((host, int(port)))
    return out


def load_input(path: str, name: str) -> tuple[np.ndarray, float]:
    """Reads and checks ``probs`` (and ``weight``, default 1) from an ``.npz`` or ``.npy``.

    Any unreadable file (truncated, not an npz, pickled objects) or malformed field (``weight``
    that is not a single number) is a ``ValueError`` naming the file and the field.
    """
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"{name}: input file {path} does not exist")
    try:
        if file.suffix == ".npy":
            probs, weight = np.load(file, allow_pickle=False), 1.0
        else:
            with np.load(file, allow_pickle=False) as data:
                if not hasattr(data, "files"):
                    raise ValueError(f"{name}: {path} is a single array, not an .npz with "
                                     "'probs' and 'weight'")
                if "probs" not in data.files:
                    raise ValueError(f"{name}: {path} has no array 'probs' (found "
                                     f"{data.files})")
                probs = data["probs"]
                raw_weight = data["weight"] if "weight" in data.files else np.float64(1.0)
    except ValueError as err:
        if str(err).startswith(f"{name}: "):
            raise
        if "pickle" in str(err):  # numpy's hint to allow_pickle: never for an input file
            raise ValueError(f"{name}: cannot read input file {path}: {file.name} is not a "
                             "NumPy .npz archive (or holds pickled objects, which are "
                             "refused)") from None
        raise ValueError(f"{name}: cannot read input file {path} ({err})") from None
    except Exception as err:  # noqa: BLE001 - zipfile.BadZipFile, EOFError, OSError, ...
        raise ValueError(f"{name}: cannot read input file {path}: {type(err).__name__}: "
                         f"{err} (truncated or not an .npz?)") from None
    if file.suffix != ".npy":
        if raw_weight.ndim != 0 or not (np.issubdtype(raw_weight.dtype, np.number)
                                        and not np.issubdtype(raw_weight.dtype,
                                                              np.complexfloating)):
            raise ValueError(f"{name}: {path}: field 'weight' must be a single real number, got "
                             f"an array of shape {list(raw_weight.shape)} and dtype "
                             f"{raw_weight.dtype}")
        weight = float(raw_weight)
    try:
        probs = check_probabilities(probs, name=f"{name} ({path})")
    except EnsembleInputError as err:
        raise ValueError(str(err)) from None
    if not np.isfinite(weight) or not 0.0 <= weight <= 1.0:
        raise ValueError(f"{name}: weight {weight} must be in [0, 1]; divide data sizes or "
                         "scores by a public bound")
    return probs, weight


def write_input(path, probs, weight: float = 1.0) -> Path:
    """Writes a party input file (``probs`` and ``weight``).

    Example:
        >>> import tempfile, os
        >>> p = write_input(os.path.join(tempfile.mkdtemp(), "a.npz"), [[0.2, 0.8]], 0.5)
        >>> load_input(str(p), "party 0")[1]
        0.5
    """
    path = Path(path)
    np.savez(path, probs=np.asarray(probs, dtype=np.float64), weight=np.float64(weight))
    return path


def mpyc_arguments(addresses, index: int, threshold: int, *, tls: bool, verbose: bool
                   ) -> list[str]:
    """MPyC's own command line for this party."""
    args = []
    for host, port in addresses:
        args += ["-P", f"{host}:{port}"]
    args += ["-I", str(index), "-T", str(threshold)]
    if tls:
        args.append("--ssl")
    if not verbose:
        args.append("--no-log")
    return args


def unconnected_peers(mpc) -> list[int]:
    return [p.pid for p in mpc.parties if p.pid != mpc.pid and p.protocol is None]


def lost_peers(mpc) -> list[int]:
    lost = []
    for p in mpc.parties:
        if p.pid == mpc.pid:
            continue
        transport = getattr(p.protocol, "transport", None)
        if p.protocol is None or transport is None or transport.is_closing():
            lost.append(p.pid)
    return lost


def awaited_peers(mpc) -> list[int]:
    """Peers this party is waiting for a message from (pending receive futures)."""
    waiting = []
    for p in mpc.parties:
        buffers = getattr(p.protocol, "buffers", None) if p.pid != mpc.pid else None
        if buffers and any(isinstance(v, asyncio.Future) and not v.done()
                           for v in buffers.values()):
            waiting.append(p.pid)
    return waiting


def describe(peers: list[int], addresses) -> str:
    return ", ".join(f"party {i} ({addresses[i][0]}:{addresses[i][1]})" for i in peers)


HANDSHAKE = "efl-party/handshake/v1"


async def connect(mpc, timeout: float, addresses) -> None:
    """``mpc.start()`` and an MPyC handshake with every peer, together bounded by ``timeout``.

    MPyC counts a peer as connected as soon as a TCP connection to its port opens, even when
    some other service answers there and never speaks MPyC. So start-up is done only when every
    peer has also returned the handshake token over MPyC (``mpc.transfer``); a peer that does
    not within the start-up timeout is named (exit code 3), instead of the round waiting for
    its whole timeout.
    """
    deadline = time.monotonic() + timeout
    try:
        await asyncio.wait_for(mpc.start(), timeout)
    except TimeoutError:
        missing = unconnected_peers(mpc)
        raise PartyFailure("connect", f"could not connect to {describe(missing, addresses)} "
                           f"within {timeout:g} s (check addresses, firewalls, that every "
                           "party was started, and TLS files)", missing) from None
    except OSError as err:
        raise PartyFailure("bind", f"cannot listen on port {addresses[mpc.pid][1]}: {err}",
                           [mpc.pid]) from None
    try:
        tokens = await asyncio.wait_for(mpc.transfer(HANDSHAKE),
                                        max(deadline - time.monotonic(), 0.5))
    except TimeoutError:
        silent = awaited_peers(mpc) or unconnected_peers(mpc) or [
            p.pid for p in mpc.parties if p.pid != mpc.pid]
        raise PartyFailure("connect", f"{describe(silent, addresses)} accepted the connection "
                           f"but did not complete the MPyC handshake within {timeout:g} s: is "
                           "another service listening on that port, or an efl party of another "
                           "version?", silent) from None
    wrong = [i for i, token in enumerate(tokens) if token != HANDSHAKE]
    if wrong:
        raise PartyFailure("connect", f"{describe(wrong, addresses)} answered the MPyC handshake "
                           "with something else: not an efl party of this version", wrong)


async def supervised(mpc, coro, timeout: float, addresses):
    """Runs ``coro`` while watching peers: fails fast on a lost peer, names awaited ones."""
    task = asyncio.ensure_future(coro)
    deadline = time.monotonic() + timeout
    while True:
        done, _ = await asyncio.wait({task}, timeout=0.2)
        if done:
            return task.result()
        lost = lost_peers(mpc)
        if lost:
            task.cancel()
            raise PartyFailure("peer-lost", f"lost the connection to {describe(lost, addresses)}",
                               lost)
        if time.monotonic() > deadline:
            waiting = awaited_peers(mpc)
            task.cancel()
            who = describe(waiting, addresses) if waiting else "the other parties"
            raise PartyFailure("timeout", f"round not finished within {timeout:g} s; still "
                               f"waiting for messages from {who}", waiting)


async def session(mpc, args, spec: RoundSpec, probs, weight, addresses, status) -> dict:
    """Connect, run the round, shut down; returns the result fields (raises PartyFailure)."""
    t0 = time.monotonic()
    status("connecting")
    await connect(mpc, args.startup_timeout, addresses)
    t1 = time.monotonic()
    status("connected")
    try:
        out = await supervised(mpc, run_round(mpc, spec, [probs], [weight]),
                               args.round_timeout, addresses)
    except RoundMismatchError as err:
        raise PartyFailure("mismatch", str(err)) from None
    t2 = time.monotonic()
    bytes_sent = sum(p.protocol.nbytes_sent for p in mpc.parties
                     if p.pid != mpc.pid and p.protocol is not None)
    status("opened")
    try:
        await asyncio.wait_for(mpc.shutdown(), 10.0)
        clean = True
    except (TimeoutError, OSError):
        clean = False
    return {"connect_seconds": t1 - t0, "compute_seconds": t2 - t1, "bytes_sent": bytes_sent,
            "clean_shutdown": clean, "output": out}


def watch_parent(parent_pid: int) -> None:
    """Exits this process (code 70) within 0.5 s of its supervisor's death, however it died
    (SIGKILL included): the party is re-parented, so ``os.getppid()`` changes. No orphaned
    parties; tested in ``tests/test_supervisor.py``."""
    def loop():
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                os._exit(70)

    threading.Thread(target=loop, name="efl-parent-watch", daemon=True).start()


def tls_workdir(out_dir: Path, index: int) -> Path:
    return out_dir / f".party_{index}_tls"


def enter_tls_dir(tls_dir: str, index: int, out_dir: Path) -> None:
    """MPyC reads ``.config/`` of the working directory: make one that points at ``tls_dir``.

    The working directory is ``out_dir/.party_{i}_tls``; :func:`finish` removes it.
    """
    missing = missing_files(tls_dir, index)
    if missing:
        raise ValueError(f"party {index}: TLS folder {tls_dir} lacks {', '.join(missing)} "
                         "(create them with `efl party make-certs`)")
    work = tls_workdir(out_dir, index)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    (work / ".config").symlink_to(Path(tls_dir).resolve(), target_is_directory=True)
    os.chdir(work)


def prepare(args) -> tuple[list, int, RoundSpec, np.ndarray, float]:
    """Checks arguments and input before anything connects (raises ValueError)."""
    addresses = check_index(args, 2, "a secure round")
    m, i = len(addresses), args.index
    t = (m - 1) // 2 if args.threshold is None else args.threshold
    if t < 0 or 2 * t >= m:
        raise ValueError(f"threshold (colluders) {t} needs t < M/2 with M={m} parties "
                         f"(at most {(m - 1) // 2})")
    receivers = None
    if args.receivers:
        receivers = tuple(int(r) for r in index_list(args.receivers).split(","))
    spec = RoundSpec(reveal=args.reveal, receivers=receivers, frac_bits=args.frac_bits,
                     batch_rows=args.batch_rows, transcript_rows=args.transcript_rows).check(m)
    probs, weight = load_input(args.input, args.name or f"party {i}")
    return addresses, t, spec, probs, weight


def result_payload(args, addresses, t, spec, outcome) -> tuple[dict, dict]:
    out = outcome.pop("output")
    payload = {"party": args.index, "name": args.name, "ok": True, "stage": "done",
               "address": "{}:{}".format(*addresses[args.index]), "n_parties": len(addresses),
               "threshold": t, "reveal": spec.reveal, "tls": bool(args.tls),
               "receivers": None if spec.receivers is None else list(spec.receivers),
               "received": out.labels is not None,
               "fixed_point": {"frac_bits": out.fixed_point.frac_bits,
                               "bit_length": out.fixed_point.bit_length,
                               "error_bound": out.fixed_point.error_bound},
               "public_weights": None if out.public_weights is None
               else out.public_weights.tolist(),
               "view": out.view, **outcome}
    arrays = {}
    if out.labels is not None:
        arrays["labels"] = out.labels
    if out.sum is not None:
        arrays["sum"] = out.sum
    return payload, arrays


def finish(out_dir: Path, index: int, payload: dict, arrays: dict) -> int:
    """Writes the result files, prints the JSON line; returns the exit code."""
    shutil.rmtree(tls_workdir(out_dir, index), ignore_errors=True)
    if arrays:
        np.savez(out_dir / f"party_{index}.npz", **arrays)
    write_json_atomic(out_dir / f"party_{index}.json", payload)
    line = {k: v for k, v in payload.items() if k != "view"}
    print(json.dumps(line), flush=True)
    return EXIT_CODES.get(payload.get("error_kind", "ok"), 1)


def parse_party_arguments(parser: argparse.ArgumentParser, argv: list[str],
                          min_parties: int, what: str) -> tuple[argparse.Namespace, Path] | int:
    """Parses a party's command line and checks ``--index`` and ``--out`` before anything is
    written; returns ``(args, out folder)``, or the exit code after one ``efl party: error``
    line."""
    parser.error = lambda message: parser.exit(2, f"efl party: error: {message}\n")
    args = parser.parse_args(argv)
    try:  # nothing is written for a wrong --index or an unwritable --out
        check_index(args, min_parties, what)
        return args, check_out_folder(args.out, args.index)
    except ValueError as err:
        print(f"efl party: error: {err}", file=sys.stderr)
        return EXIT_CODES["input"]


def start_runtime(args: argparse.Namespace, addresses, threshold: int):
    """This process's MPyC runtime for party ``args.index``, listening on the right interface
    (``--bind``, else 127.0.0.1 for loopback addresses, else all interfaces)."""
    mpc = load_runtime(mpyc_arguments(addresses, args.index, threshold, tls=bool(args.tls),
                                      verbose=args.verbose))
    host = addresses[args.index][0]
    bind = args.bind or (host if host in LOOPBACK else None)
    if bind:
        mpc._loop.create_server = functools.partial(mpc._loop.create_server, host=bind)
    return mpc


def main(argv: list[str]) -> int:
    """Entry point of ``efl party`` (``argv`` excludes the words ``efl party``)."""
    if argv and argv[0] == "make-certs":
        from efl_toolkit.secure.tls import main as certs_main

        return certs_main(argv[1:])
    if "--committee" in argv:
        from efl_toolkit.secure.compute_party import main as compute_party_main

        return compute_party_main(argv)
    parsed = parse_party_arguments(build_parser(), argv, 2, "a secure round")
    if isinstance(parsed, int):
        return parsed
    args, out_dir = parsed
    index = args.index
    status_path = out_dir / f"party_{index}.status"
    stage = {"stage": "starting"}

    def status(name: str) -> None:
        stage["stage"] = name
        write_json_atomic(status_path, {"stage": name, "time": time.time(), "pid": os.getpid()})

    status("starting")
    failed = {"party": index, "name": args.name, "ok": False}
    try:
        args.input = str(Path(args.input).resolve())
        addresses, t, spec, probs, weight = prepare(args)
        if args.tls:
            enter_tls_dir(args.tls, index, out_dir)
    except ValueError as err:
        status("failed")
        print(f"efl party: error: {err}", file=sys.stderr, flush=True)
        return finish(out_dir, index, {**failed, "stage": "input", "error_kind": "input",
                                       "error": str(err), "peers": []}, {})
    if args.parent_pid:
        watch_parent(args.parent_pid)
    mpc = start_runtime(args, addresses, t)
    try:
        outcome = mpc.run(session(mpc, args, spec, probs, weight, addresses, status))
    except PartyFailure as err:
        reached = stage["stage"]
        status("failed")
        print(f"efl party: error: {err}", file=sys.stderr, flush=True)
        code = finish(out_dir, index, {**failed, "stage": reached, "error_kind": err.kind,
                                       "error": str(err), "peers": err.peers}, {})
        os._exit(code)
    except Exception as err:  # noqa: BLE001 - report any crash as this party's error
        reached = stage["stage"]
        status("failed")
        print(f"efl party: error: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        code = finish(out_dir, index, {**failed, "stage": reached, "error_kind": "error",
                                       "error": f"{type(err).__name__}: {err}", "peers": []}, {})
        os._exit(code)
    payload, arrays = result_payload(args, addresses, t, spec, outcome)
    code = finish(out_dir, index, payload, arrays)
    status("done")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
