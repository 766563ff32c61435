"""Ledger throughput: signed-transaction appends per second and full verification time.

What is measured (one run, printed as JSON):

* ``append``: ``--tx`` signed ROUND_START/ROUND_FAILED transactions, each signed (Ed25519),
  validated on submit (signature, nonce, rules), then committed in blocks of ``--batch``: every
  block is re-checked (hash link, Merkle root, 3 vote signatures, rules; a transaction signature
  already verified on submit is not verified twice), voted by the 3 members and written in one
  SQLite transaction (WAL, synchronous=FULL, fsync per block).
* ``append_one_tx_blocks``: the same, one transaction per block (the fsync-bound worst case).
* ``verify``: a fresh read-only open of a 1,000-block chain (each block: 1 signed transaction,
  3 votes on a 3-member consortium, i.e. 4 Ed25519 verifications per block) plus re-verification
  of every hash link, Merkle root, signature, quorum and rule.
* ``evm_in_process`` / ``evm_anvil`` (needs the ``evm`` extra; Anvil only when its binary is
  found, see ``make anvil``): the same kind of writes (rounds started and failed, each signed by
  its institution's secp256k1 key) sent to the Vyper registry contract and awaited one receipt
  at a time (py-evm in this process, or a real Anvil node over HTTP), then ``verify`` of the
  whole registry (receipts re-read, event count, block hashes, artifacts).
* ``side_by_side``: transactions per second and verification seconds of each engine.

:func:`run` (``quick=True``: a few hundred embedded and a few dozen EVM transactions) returns
the same dictionary for ``benchmarks/run_all.py``.

Usage:
    .venv/bin/python benchmarks/ledger_throughput.py [--tx 3000] [--batch 100] [--blocks 1000]
        [--evm-tx 200] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

from efl_toolkit.ledger import Consortium, Ledger, ModelRegistry, TxType, open_ledger

MEMBERS = ("hospital-a", "hospital-b", "clinic-c")


def _round_txs(ledger: Ledger, i: int) -> None:
    sender = MEMBERS[i % len(MEMBERS)]
    if i % 2 == 0:
        ledger.transact(sender, TxType.ROUND_START, {
            "round_id": f"r{i}", "versions": [ledger_version(ledger)], "protocol": {"k": i}})
    else:
        ledger.transact(sender, TxType.ROUND_FAILED, {"round_id": f"r{i - 1}",
                                                      "reason": "benchmark"})


def ledger_version(ledger: Ledger) -> str:
    """The one model version the benchmark rounds refer to."""
    return next(iter(ledger.state.versions))


def _new_ledger(directory: str, name: str) -> Ledger:
    ledger = Ledger.create(os.path.join(directory, name), Consortium.generate(MEMBERS, seed=0))
    ModelRegistry(ledger).model_commit("hospital-a", "cnn", b"benchmark weights", None, "cnn",
                                       {"accuracy": 0.5}, {"n_train": 1})
    return ledger


def bench_append(directory: str, name: str, n_tx: int, batch: int) -> dict:
    """Appends ``n_tx`` signed transactions in blocks of ``batch``; returns rates."""
    ledger = _new_ledger(directory, name)
    start = time.perf_counter()
    for i in range(n_tx):
        _round_txs(ledger, i)
        if (i + 1) % batch == 0:
            ledger.commit_block()
    if ledger.pending:
        ledger.commit_block()
    seconds = time.perf_counter() - start
    height = ledger.height
    ledger.close()
    return {"transactions": n_tx, "batch": batch, "seconds": round(seconds, 3),
            "tx_per_second": round(n_tx / seconds, 1), "blocks": height}


def bench_verify(directory: str, n_blocks: int) -> dict:
    """Builds a chain of ``n_blocks`` one-transaction blocks, then times open + verify."""
    ledger = _new_ledger(directory, "verify.sqlite")
    for i in range(n_blocks - ledger.height - 1):
        _round_txs(ledger, i)
        ledger.commit_block()
    ledger.close()
    path = os.path.join(directory, "verify.sqlite")
    start = time.perf_counter()
    view = open_ledger(path)
    seconds = time.perf_counter() - start
    report = view.report
    again = view.verify()
    view.close()
    assert report.ok and again.ok, report.summary()
    return {"blocks": report.n_blocks, "transactions": report.n_txs,
            "signatures_per_block": 4, "open_and_verify_seconds": round(seconds, 3),
            "verify_seconds": round(again.seconds, 3)}


def bench_evm(directory: str, n_tx: int, url: str | None) -> dict:
    """``n_tx`` signed round transactions on the EVM registry (``url``: a node, ``None``: an
    in-process chain), one receipt awaited at a time; then a full ``verify``."""
    from efl_toolkit.ledger.evm import EvmBackend

    chain = EvmBackend.create(url, list(MEMBERS), directory)
    version = chain.model_commit("hospital-a", "cnn", b"benchmark weights", None, "cnn",
                                 {"accuracy": 0.5}, {"n_train": 1})
    start = time.perf_counter()
    for i in range(n_tx):
        sender = MEMBERS[i % len(MEMBERS)]
        if i % 2 == 0:
            chain.start_round(sender, f"r{i}", [version], {"k": i})
        else:
            chain.fail_round(sender, f"r{i - 1}", "benchmark")
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    report = chain.verify()
    verify_seconds = time.perf_counter() - start
    chain.close()
    assert report.ok, report.summary
    return {"transactions": n_tx, "seconds": round(seconds, 3),
            "tx_per_second": round(n_tx / seconds, 1), "blocks": report.n_blocks,
            "verify_seconds": round(verify_seconds, 3), "node": url or "in-process py-evm"}


def _evm_parts(directory: str, n_tx: int) -> dict:
    try:
        from efl_toolkit.ledger.evm import Anvil, find_anvil
    except ImportError as err:
        skipped = {"skipped": f"the evm extra is not installed ({err})"}
        return {"evm_in_process": skipped, "evm_anvil": skipped}
    parts = {"evm_in_process": bench_evm(os.path.join(directory, "evm"), n_tx, None)}
    if find_anvil() is None:
        parts["evm_anvil"] = {"skipped": "Anvil not found (make anvil)"}
    else:
        with Anvil() as node:
            parts["evm_anvil"] = bench_evm(os.path.join(directory, "anvil"), 2 * n_tx, node.url)
    return parts


def run(quick: bool = False, tx: int = 3000, batch: int = 100, blocks: int = 1000,
        evm_tx: int = 200) -> dict:
    """Every measurement as one dictionary (``quick``: 300 embedded transactions, a 100-block
    verification and 30 EVM transactions, 60 on Anvil)."""
    if quick:
        tx, blocks, evm_tx = 300, 100, 30
    with tempfile.TemporaryDirectory() as d:
        result = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "load_average_1min_at_start": round(os.getloadavg()[0], 2)},
            "append": bench_append(d, "batched.sqlite", tx, batch),
            "append_one_tx_blocks": bench_append(d, "single.sqlite", 100 if quick else 300, 1),
            "verify": bench_verify(d, blocks),
            **_evm_parts(d, evm_tx),
        }
    result["side_by_side"] = {
        f"embedded (blocks of {batch})": {
            "tx_per_second": result["append"]["tx_per_second"],
            "verify_seconds": result["verify"]["open_and_verify_seconds"],
            "verify_blocks": result["verify"]["blocks"]},
        "embedded (one tx per block)": {
            "tx_per_second": result["append_one_tx_blocks"]["tx_per_second"]},
        **{name: {"tx_per_second": part["tx_per_second"],
                  "verify_seconds": part["verify_seconds"], "verify_blocks": part["blocks"]}
           for name, part in ((k, result[k]) for k in ("evm_in_process", "evm_anvil"))
           if "skipped" not in part}}
    result["targets"] = {
        "append_tx_per_second_at_least_1000": result["append"]["tx_per_second"] >= 1000,
        f"verify_{result['verify']['blocks']}_blocks_under_1s":
            result["verify"]["open_and_verify_seconds"] < 1.0,
    }
    return result


def main() -> None:
    """Runs the measurements and prints one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tx", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--blocks", type=int, default=1000)
    parser.add_argument("--evm-tx", type=int, default=200)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(json.dumps(run(args.quick, args.tx, args.batch, args.blocks, args.evm_tx), indent=2))


if __name__ == "__main__":
    main()
