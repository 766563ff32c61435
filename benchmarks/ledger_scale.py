"""Ledger at scale: 10,000 blocks of 4 signatures each, verified in full and incrementally.

What is measured (one run, printed as JSON; ``run(quick)`` returns the same dict):

* ``build``: a chain of ``blocks`` blocks (3 institutions; each block holds one signed round
  transaction and the 3 members' votes: 4 Ed25519 signatures per block) signed in memory and
  written in batches, so the 10,000-block chain exists in seconds (this is set-up, not the
  append rate);
* ``append``: the real writer path on top of it (:meth:`Ledger.commit_block`: submit with a
  signature check, all seven block checks, 3 votes, one SQL transaction with fsync, a signed
  checkpoint written atomically), blocks per second over ``append_blocks`` blocks;
* ``verify_full_seconds``: :func:`~efl_toolkit.ledger.reader.open_ledger` of the whole chain
  (read every row, every check of every block: hash links, Merkle roots, 4 signatures, quorum,
  rules), and ``ed25519_verify_us``: what one signature verification costs here;
* ``verify_incremental_seconds``: :func:`~efl_toolkit.ledger.incremental.verify_since` from a
  checkpoint at height ``blocks - 101`` over the last 100 blocks, and its ratio to the full one;
* ``inclusion_proof``: bytes (JSON of the RFC 9162 audit path) and microseconds to build and to
  check a proof of one transaction in a 64-transaction block.

Usage:
    .venv/bin/python benchmarks/ledger_scale.py [--blocks 10000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from efl_toolkit.ledger import Consortium, Ledger, ModelRegistry, TxType, open_ledger, store
from efl_toolkit.ledger.block import Block, make_header, proposer_for, to_stored
from efl_toolkit.ledger.checkpoint import checkpoint_of
from efl_toolkit.ledger.crypto import VOTE_DOMAIN, private_key_from_seed, public_key_hex, verify
from efl_toolkit.ledger.incremental import verify_since
from efl_toolkit.ledger.merkle import inclusion_proof, verify_inclusion
from efl_toolkit.ledger.verify import verify_chain

MEMBERS = ("hospital-a", "hospital-b", "clinic-c")


def round_tx(consortium: Consortium, i: int, nonces: dict, genesis: str, version: str):
    """The ``i``-th benchmark transaction: ROUND_START r<i> (even i), else ROUND_FAILED."""
    sender = MEMBERS[i % len(MEMBERS)]
    nonces[sender] = nonces.get(sender, -1) + 1
    if i % 2 == 0:
        payload = {"round_id": f"r{i}", "versions": [version], "protocol": {"k": i}}
        return consortium.sign(sender, TxType.ROUND_START, nonces[sender], payload, genesis)
    payload = {"round_id": f"r{i - 1}", "reason": "benchmark"}
    return consortium.sign(sender, TxType.ROUND_FAILED, nonces[sender], payload, genesis)


def build_chain(path: str | os.PathLike, n_blocks: int, batch: int = 1000) -> Consortium:
    """Writes a valid ``n_blocks``-block chain at ``path`` (genesis, one model commit, then one
    round transaction per block), signing in memory and inserting ``batch`` blocks per SQL
    transaction. Returns the consortium (its keystore is saved beside the ledger)."""
    consortium = Consortium.generate(list(MEMBERS), seed=0)
    ticks = iter(range(1_000_000, 10**15, 1000))
    ledger = Ledger.create(path, consortium, clock=lambda: next(ticks), save_keys=True)
    version = ModelRegistry(ledger).model_commit("hospital-a", "cnn", b"scale weights", None,
                                                 "cnn", {"accuracy": 0.5}, {})
    nonces = dict(ledger.state.nonces)
    genesis, prev, height = ledger.state.genesis_hash, ledger.head_hash, ledger.height
    ledger.close()
    conn = store.open_store(path, readonly=False)
    pending = []
    for i in range(n_blocks - height - 1):
        height += 1
        tx = round_tx(consortium, i, nonces, genesis, version)
        header = make_header(height, prev, [tx], next(ticks), proposer_for(height, MEMBERS))
        votes = tuple(consortium.vote(m, header.hash) for m in MEMBERS)
        pending.append(to_stored(Block(header, (tx,), votes)))
        prev = header.hash
        if len(pending) == batch:
            store.write_blocks(conn, pending)
            pending = []
    store.write_blocks(conn, pending)
    store.close_store(conn, writer=True)
    return consortium


def _ed25519_us(n: int = 2000) -> float:
    key = private_key_from_seed(bytes(range(32)))
    public, message = public_key_hex(key), bytes(32)
    signature = key.sign(VOTE_DOMAIN + message).hex()
    start = time.perf_counter()
    for _ in range(n):
        verify(public, signature, VOTE_DOMAIN, message)
    return (time.perf_counter() - start) / n * 1e6


def bench_append(path: Path, n: int) -> dict:
    """Blocks per second through the real writer on top of the existing chain."""
    ledger = Ledger.open(path)
    nonces, genesis = dict(ledger.state.nonces), ledger.state.genesis_hash
    version = next(iter(ledger.state.versions))
    offset = 2 * ledger.height  # fresh round ids
    start = time.perf_counter()
    for i in range(n):
        ledger.submit(round_tx(ledger.consortium, offset + 2 * i, nonces, genesis, version))
        ledger.commit_block()
    seconds = time.perf_counter() - start
    ledger.close()
    return {"blocks": n, "seconds": round(seconds, 3), "blocks_per_second": round(n / seconds, 1)}


def bench_verify(path: Path, last: int = 100) -> dict:
    """Full verification, then incremental verification of the last ``last`` blocks."""
    start, cpu = time.perf_counter(), time.process_time()
    view = open_ledger(path)
    full, full_cpu = time.perf_counter() - start, time.process_time() - cpu
    assert view.report.ok, view.report.summary()
    n = view.report.n_blocks
    view.close()
    conn = store.open_store(path)
    old = store.read_blocks(conn)[: n - last]
    scan = verify_chain(old, None)  # what a verifier kept from its last full run
    checkpoint = checkpoint_of([b.hash for b in old], old[0].hash.decode())
    start = time.perf_counter()
    result = verify_since(conn, scan, checkpoint, None)
    incremental = time.perf_counter() - start
    conn.close()
    assert result.report.ok and result.blocks_checked == last, result.report.summary()
    return {"blocks": n, "signatures_per_block": 4, "verify_full_seconds": round(full, 3),
            "verify_full_cpu_seconds": round(full_cpu, 3),  # all threads; wall on a busy box
            "checkpoint_height": n - last - 1, "incremental_blocks": last,
            "verify_incremental_seconds": round(incremental, 4),
            "incremental_vs_full": round(incremental / full, 4),
            "ed25519_verify_us": round(_ed25519_us(), 1)}


def bench_inclusion(n_leaves: int = 64, repeats: int = 2000) -> dict:
    """Size and time of an RFC 9162 inclusion proof of one transaction in a block."""
    leaves = [os.urandom(300) for _ in range(n_leaves)]
    from efl_toolkit.ledger.merkle import merkle_root

    root = merkle_root(leaves)
    start = time.perf_counter()
    for _ in range(repeats):
        proof = inclusion_proof(leaves, n_leaves // 3)
    build = (time.perf_counter() - start) / repeats
    start = time.perf_counter()
    for _ in range(repeats):
        assert verify_inclusion(leaves[n_leaves // 3], proof, root, n_leaves)
    check = (time.perf_counter() - start) / repeats
    return {"block_transactions": n_leaves, "path_hashes": len(proof.path),
            "proof_bytes": len(json.dumps(proof.to_dict())),
            "build_us": round(build * 1e6, 1), "verify_us": round(check * 1e6, 1)}


def run(quick: bool = False, blocks: int = 10_000) -> dict:
    """All figures above as one dict (``quick``: 10,000 blocks still, fewer appends)."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "ledger.sqlite"
        start = time.perf_counter()
        build_chain(path, blocks)
        built = time.perf_counter() - start
        verified = bench_verify(path)
        appended = bench_append(path, 20 if quick else 100)
    return {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                        "load_average": [round(x, 2) for x in os.getloadavg()]},
            "build_seconds": round(built, 2), "verify": verified, "append": appended,
            "inclusion_proof": bench_inclusion()}


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: prints :func:`run`'s JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.blocks < 200:
        parser.error("--blocks must be at least 200 (the incremental part checks the last 100)")
    json.dump(run(args.quick, args.blocks), sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
