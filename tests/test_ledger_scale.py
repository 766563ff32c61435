"""The ledger at scale (functional, never timed): a 10,000-block chain of 4 signatures per block
verifies; incremental verification from a checkpoint reads and checks only the new blocks (the
SQL it runs is traced); signatures verified in a parallel batch give exactly the serial
outcomes."""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from efl_toolkit.ledger import Consortium, Ledger, open_ledger, store
from efl_toolkit.ledger.block import decode_votes, encode_votes
from efl_toolkit.ledger.checkpoint import checkpoint_of
from efl_toolkit.ledger.crypto import (
    TX_DOMAIN,
    VOTE_DOMAIN,
    private_key_from_seed,
    public_key_hex,
    sign,
    verified_in_batch,
    verify,
)
from efl_toolkit.ledger.incremental import verify_since
from efl_toolkit.ledger.merkle import Frontier, merkle_root
from efl_toolkit.ledger.verify import verify_chain

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from ledger_scale import bench_inclusion, build_chain  # noqa: E402

N_BLOCKS = 10_000
SINCE = 9_900  # the checkpoint covers heights 0..9899


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scale") / "ledger.sqlite"
    build_chain(path, N_BLOCKS)
    return path


def _copy(path: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "ledger.sqlite"
    with sqlite3.connect(path) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    return copy


def _scan_until(path: Path, n: int):
    """What a verifier kept after fully verifying the first ``n`` blocks: scan + checkpoint."""
    conn = store.open_store(path)
    old = store.read_blocks(conn)[:n]
    conn.close()
    scan = verify_chain(old, None)
    assert scan.report.ok and scan.report.n_blocks == n
    return scan, checkpoint_of([b.hash for b in old], old[0].hash.decode())


def test_ten_thousand_blocks_of_four_signatures_verify(chain):
    with open_ledger(chain) as view:
        report = view.report
        assert report.ok, report.summary()
        assert (report.n_blocks, report.n_txs) == (N_BLOCKS, N_BLOCKS + 2)  # genesis: 3 txs
        block = view.block(5_000)
        assert len(block.transactions) == 1 and len(decode_votes(
            view._stored[5_000].votes)) == 3  # 1 transaction + 3 votes = 4 signatures


def test_incremental_verification_reads_and_checks_only_the_new_blocks(chain):
    scan, checkpoint = _scan_until(chain, SINCE)
    conn = store.open_store(chain)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    result = verify_since(conn, scan, checkpoint, None)
    conn.close()
    assert result.report.ok, result.report.summary()
    assert (result.blocks_checked, result.rows_read) == (100, 200)  # 100 blocks + 100 txs
    assert result.report.n_blocks == N_BLOCKS and len(scan.checks) == N_BLOCKS
    content = [s for s in statements if "header" in s or "FROM txs" in s]
    assert len(content) == 2 and all(f"height >= {SINCE}" in s for s in content), content
    with open_ledger(chain) as view:
        assert result.report.head_hash == view.report.head_hash
        assert scan.state.height == view.state.height == N_BLOCKS - 1


def test_incremental_verification_catches_new_and_rewritten_blocks(chain, tmp_path):
    copy = _copy(chain, tmp_path)
    with sqlite3.connect(copy) as db:  # a new block loses votes; an old one is re-headered
        (votes,) = db.execute("SELECT votes FROM blocks WHERE height = 9950").fetchone()
        db.execute("UPDATE blocks SET votes = ? WHERE height = 9950",
                   (encode_votes(decode_votes(votes)[:1]),))
        db.execute("UPDATE blocks SET header = x'00' WHERE height = 10")
    scan, checkpoint = _scan_until(chain, SINCE)
    conn = store.open_store(copy)
    result = verify_since(conn, scan, checkpoint, None)
    assert (result.report.height, result.report.check) == (9950, "quorum")
    # the old row was not read (only a full verification finds it)
    assert verify_chain(store.read_blocks(conn)[:20], None).report.height == 10
    with sqlite3.connect(copy) as db:  # an old block's hash column rewritten: a fork
        db.execute("UPDATE blocks SET hash = ? WHERE height = 10", (b"ab" * 32,))
    scan, checkpoint = _scan_until(chain, SINCE)
    result = verify_since(conn, scan, checkpoint, None)
    conn.close()
    assert (result.report.height, result.report.check) == (SINCE - 1, "hash link")
    assert "FORK" in result.report.reason


def test_incremental_verification_refuses_a_failed_scan_or_a_foreign_checkpoint(chain):
    scan, checkpoint = _scan_until(chain, 50)
    conn = store.open_store(chain)
    with pytest.raises(ValueError, match="covers 49 blocks, the scan 50"):
        verify_since(conn, scan, checkpoint_of([b"x"] * 49, "g"), None)
    scan.report = replace(scan.report, ok=False, height=3, check="quorum", reason="demo")
    with pytest.raises(ValueError, match="the earlier scan failed"):
        verify_since(conn, scan, checkpoint, None)
    conn.close()


def test_batched_signatures_give_the_serial_outcomes():
    key = private_key_from_seed(bytes(range(32)))
    public = public_key_hex(key)
    messages = [str(i).encode() for i in range(600)]
    good = [(public, sign(key, TX_DOMAIN, m), TX_DOMAIN, m) for m in messages]
    bad = [(public, good[1][1], TX_DOMAIN, b"\x00"),            # another message's signature
           (public, good[2][1], VOTE_DOMAIN, b"2"),                # another domain
           (public, "zz" * 64, TX_DOMAIN, b"\x03")]             # not hex
    with verified_in_batch(good + bad, threads=2) as n:
        assert n == len(good) + len(bad)
        assert [verify(*item) for item in good] == [True] * len(good)
        assert [verify(*item) for item in bad] == [False] * len(bad)


def test_inclusion_proof_figures():
    figures = bench_inclusion(n_leaves=64, repeats=10)
    assert figures["path_hashes"] == 6  # log2(64)
    assert figures["proof_bytes"] > 6 * 64  # six 32-byte hashes in hex


def test_the_writers_growing_tree_gives_the_rfc_9162_root(tmp_path):
    leaves = [bytes([i]) * (i % 5 + 1) for i in range(140)]
    tree = Frontier()
    roots = [tree.root()]
    for leaf in leaves:
        tree.append(leaf)
        roots.append(tree.root())
    assert roots == [merkle_root(leaves[:n]) for n in range(len(leaves) + 1)]
    ledger = Ledger.create(tmp_path / "ledger.sqlite", Consortium.generate(["a", "b", "c"], 0))
    for _ in range(6):
        ledger.commit_block()
        assert ledger.checkpoint() == checkpoint_of(ledger.block_hashes(), ledger.origin[11:])
    ledger.close()
    with open_ledger(tmp_path / "ledger.sqlite") as view:  # the checkpoint file agrees
        assert view.check_checkpoint(view.stored_checkpoint()).status == "consistent"
        assert view.stored_checkpoint().size == 7
