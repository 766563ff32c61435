"""``efl party --committee``: one compute party of the committee, as its own OS process.

A compute party holds no data of its own. It reads the institutions' additive shares from its
inbox folder, agrees with the other compute parties on who is included, adds its shares and runs
the opening protocol of :mod:`efl_toolkit.secure.committee` over MPyC. Across machines::

    efl party --committee --index 0 --parties hostA:5000,hostB:5000,hostC:5000 \\
              --inbox inbox/ --round round.json --out results/ --tls certs/

runs one round (``round.json`` holds a :class:`~efl_toolkit.secure.committee.CommitteeRound`);
with ``--serve DIR`` instead of ``--round`` it stays connected and runs every round file
``DIR/round_<k>.json`` that appears, in order, until ``DIR/stop`` appears (how
:class:`~efl_toolkit.secure.committee_client.Committee` drives many federated rounds without
starting processes again).

Outputs in ``--out``: ``party_{i}.status``; per round ``party_{i}.json``/``.npz`` (one round) or
``party_{i}.r<k>.json``/``.npz`` (serving). A bad share or too few institutions fails *that round*
at every party alike (they exchange an error flag first, so the session stays in step); a lost
peer or a round timeout ends the process. Exit codes as for ``efl party``; with ``--round``, a
refused round exits 2 (a bad share, named on standard error) or 7 (too few institutions).

Example:
    >>> args = build_parser().parse_args(["--committee", "--index", "0", "--parties",
    ...                                   "a:1,b:2,c:3", "--inbox", "in", "--round", "r.json"])
    >>> args.index, args.serve
    (0, None)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from efl_toolkit.atomic import write_json_atomic
from efl_toolkit.secure.committee import (
    CommitteeRound,
    QuorumError,
    collect_shares,
    run_committee_round,
)
from efl_toolkit.secure.party import (
    EXIT_CODES,
    MAX_ROWS,
    PartyFailure,
    check_index,
    connect,
    enter_tls_dir,
    int_in,
    parse_party_arguments,
    seconds,
    start_runtime,
    supervised,
    tls_workdir,
    watch_parent,
)
from efl_toolkit.secure.protocol import exchange_headers
from efl_toolkit.secure.shares import ShareError, field_modulus

MIN_COMMITTEE = 3
STOP_FILE = "stop"


def build_parser() -> argparse.ArgumentParser:
    """The ``efl party --committee`` argument parser."""
    p = argparse.ArgumentParser(
        prog="efl party --committee",
        description="Run one compute party of a committee: add the institutions' additive "
        "shares from an inbox and open the mean, the labels or a sum over MPyC.")
    p.add_argument("--committee", action="store_true", required=True)
    p.add_argument("--index", type=int, required=True, help="this compute party's index")
    p.add_argument("--parties", required=True, action="append",
                   help="host:port of every compute party, comma-separated, in index order")
    p.add_argument("--inbox", required=True, help="folder the institutions' shares arrive in")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--round", default=None, metavar="FILE", help="run the one round in FILE")
    mode.add_argument("--serve", default=None, metavar="DIR",
                      help="run every DIR/round_<k>.json in order until DIR/stop appears")
    p.add_argument("--out", default=".", help="folder for results and status")
    p.add_argument("--threshold", type=int_in(0, MAX_ROWS), default=None,
                   help="t < M/2 (default (M-1)//2)")
    p.add_argument("--startup-timeout", type=seconds, default=60.0,
                   help="seconds to connect to all parties (finite, > 0)")
    p.add_argument("--round-timeout", type=seconds, default=600.0,
                   help="seconds per round once connected (finite, > 0)")
    p.add_argument("--idle-timeout", type=seconds, default=3600.0,
                   help="serving: exit after this long without a new round (finite, > 0)")
    p.add_argument("--tls", default=None, metavar="DIR", help="TLS files (efl party make-certs)")
    p.add_argument("--bind", default=None, metavar="HOST")
    p.add_argument("--parent-pid", type=int, default=None)
    p.add_argument("--verbose", action="store_true")
    return p


def prepare(args) -> tuple[list, int]:
    """Checks the arguments before anything connects (raises ``ValueError``)."""
    addresses = check_index(args, 1, "a committee")
    m = len(addresses)
    if m < MIN_COMMITTEE:
        raise ValueError(f"a committee needs at least {MIN_COMMITTEE} compute parties (honest "
                         f"majority with one tolerated colluder), got {m}")
    t = (m - 1) // 2 if args.threshold is None else args.threshold
    if t < 0 or 2 * t >= m:
        raise ValueError(f"threshold {t} needs t < M/2 with M={m} (at most {(m - 1) // 2})")
    for option in ("inbox", "serve"):  # a wrong folder would only show as a wait, or later
        folder = getattr(args, option)
        if folder is not None and not Path(folder).is_dir():
            what = "is a file" if Path(folder).exists() else "does not exist"
            raise ValueError(f"--{option} {folder} {what}: name an existing folder")
    if args.round is not None:
        read_round(Path(args.round)).check(m)
    return addresses, t


def read_round(path: Path) -> CommitteeRound:
    try:
        return CommitteeRound.from_json(path.read_text())
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise ValueError(f"round file {path} is unreadable: {err}") from None


async def next_round(args, k: int, last_activity: float) -> Path | None:
    """The path of round ``k`` once it appears; ``None`` when told to stop."""
    if args.round is not None:
        return Path(args.round) if k == 0 else None
    folder = Path(args.serve)
    path = folder / f"round_{k:05d}.json"
    while not path.is_file():
        if (folder / STOP_FILE).exists():
            return None
        if time.monotonic() - last_activity > args.idle_timeout:
            raise PartyFailure("timeout", f"no round for {args.idle_timeout:g} s; leaving")
        await asyncio.sleep(0.02)
    return path


async def one_round(mpc, args, rnd: CommitteeRound, m: int, inbox: Path) -> dict:
    """Collects and checks shares, then runs the round; a local error fails it everywhere."""
    error = None
    received = {}
    try:
        rnd.check(m)
        received = collect_shares(inbox, rnd, args.index, m, field_modulus(
            rnd.fixed_point().bit_length))
    except (ShareError, ValueError) as err:
        error = str(err)
    flags = await exchange_headers(mpc, [1 if error else 0])
    if error:
        return {"ok": False, "error_kind": "input", "error": error}
    failing = [int(j) for j in np.flatnonzero(flags[:, 0])]
    if failing:
        return {"ok": False, "error_kind": "input", "peers": failing,
                "error": f"compute party {failing[0]} refused an input (see its report)"}
    try:
        out = await run_committee_round(mpc, rnd, received)
    except QuorumError as err:
        return {"ok": False, "error_kind": "quorum", "error": str(err)}
    except ShareError as err:
        return {"ok": False, "error_kind": "input", "error": str(err)}
    return {"ok": True, **out}


def bytes_sent(mpc) -> int:
    """Bytes this party has sent to its peers so far."""
    return sum(p.protocol.nbytes_sent for p in mpc.parties
               if p.pid != mpc.pid and p.protocol is not None)


def write_result(out_dir: Path, index: int, k: int | None, result: dict) -> None:
    """``party_{i}[.r<k>].npz`` with the arrays and ``.json`` with the rest (written last)."""
    stem = f"party_{index}" if k is None else f"party_{index}.r{k}"
    arrays = {key: result.pop(key) for key in ("local_sum", "sum", "labels") if key in result}
    if arrays:
        np.savez(out_dir / f"{stem}.npz", **arrays)
    result["arrays"] = sorted(arrays)
    write_json_atomic(out_dir / f"{stem}.json", result)


async def serve(mpc, args, addresses, status) -> list[dict]:
    """Connects, runs rounds until told to stop, shuts down; returns each round's outcome
    (``ok``, ``error_kind``, ``error``)."""
    m = len(addresses)
    inbox, out_dir = Path(args.inbox), Path(args.out)
    status("connecting")
    await connect(mpc, args.startup_timeout, addresses)
    status("connected")
    k, last, outcomes = 0, time.monotonic(), []
    while (path := await next_round(args, k, last)) is not None:
        status(f"round {k}")
        rnd = read_round(path)
        started, sent = time.monotonic(), bytes_sent(mpc)
        result = await supervised(mpc, one_round(mpc, args, rnd, m, inbox), args.round_timeout,
                                  addresses)
        result.update(party=args.index, round=k, round_id=rnd.round_id,
                      seconds=time.monotonic() - started, bytes_sent=bytes_sent(mpc) - sent)
        outcomes.append({key: result.get(key) for key in ("ok", "error_kind", "error")})
        write_result(out_dir, args.index, None if args.round else k, result)
        status("connected")
        k, last = k + 1, time.monotonic()
    with contextlib.suppress(TimeoutError, OSError):
        await asyncio.wait_for(mpc.shutdown(), 10.0)
    return outcomes


def main(argv: list[str]) -> int:
    """Entry point of ``efl party --committee``."""
    parsed = parse_party_arguments(build_parser(), argv, 1, "a committee")
    if isinstance(parsed, int):
        return parsed
    args, out_dir = parsed
    status_path = out_dir / f"party_{args.index}.status"

    def status(stage: str) -> None:
        write_json_atomic(status_path, {"stage": stage, "time": time.time(), "pid": os.getpid()})

    def fail(kind: str, message: str, peers=()) -> int:
        status("failed")
        print(f"efl party: error: {message}", file=sys.stderr, flush=True)
        write_json_atomic(out_dir / f"party_{args.index}.json",
                          {"party": args.index, "ok": False, "fatal": True, "error_kind": kind,
                           "error": message, "peers": list(peers)})
        print(json.dumps({"party": args.index, "ok": False, "error": message}), flush=True)
        return EXIT_CODES.get(kind, 1)

    status("starting")
    try:
        args.inbox = str(Path(args.inbox).resolve())
        for name in ("round", "serve"):
            if getattr(args, name):
                setattr(args, name, str(Path(getattr(args, name)).resolve()))
        args.out = str(out_dir)
        addresses, t = prepare(args)
        if args.tls:
            enter_tls_dir(args.tls, args.index, out_dir)
    except ValueError as err:
        return fail("input", str(err))
    if args.parent_pid:
        watch_parent(args.parent_pid)
    mpc = start_runtime(args, addresses, t)
    try:
        outcomes = mpc.run(serve(mpc, args, addresses, status))
    except PartyFailure as err:
        os._exit(fail(err.kind, str(err), err.peers))
    except Exception as err:  # noqa: BLE001 - report any crash as this party's error
        os._exit(fail("error", f"{type(err).__name__}: {err}"))
    shutil.rmtree(tls_workdir(out_dir, args.index), ignore_errors=True)
    status("done")
    refused = [o for o in outcomes if not o["ok"]]
    print(json.dumps({"party": args.index, "ok": not refused, "rounds": len(outcomes),
                      "refused": refused}), flush=True)
    if args.round is not None and refused:      # one round that opened nothing: say why
        print(f"efl party: error: {refused[0]['error']}", file=sys.stderr)
        return EXIT_CODES.get(refused[0]["error_kind"], 1)
    return 0
