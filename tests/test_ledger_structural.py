"""Structural tampering: rows deleted, added or renumbered, votes duplicated, reordered or
missing, time running backwards, an artifact vanishing mid-verification, an empty ledger. Each is
done with sqlite3 on a scratch copy and must fail at the exact height under the named check
(``verify.CHECKS``) with a reason that says what is wrong."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from efl_toolkit.ledger import ArtifactStore, Consortium, Ledger, ModelRegistry, open_ledger
from efl_toolkit.ledger.block import BlockHeader, Vote, decode_votes, encode_votes
from efl_toolkit.ledger.store import create_store, read_blocks
from efl_toolkit.ledger.tamper import copy_for_tamper
from efl_toolkit.ledger.verify import verify_chain

MEMBERS = ["hospital-a", "hospital-b", "clinic-c", "clinic-d"]  # quorum 3 of 4
CONSORTIUM = Consortium.generate(MEMBERS, seed=21)


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    """Heights: 0 genesis (4 registrations), 1 a commit, 2 three transactions (two commits and
    a tag), 3 a round started, 4 the round finished. Timestamps 1000, 2000, ..."""
    path = tmp_path_factory.mktemp("structural") / "ledger.sqlite"
    ticks = iter(range(1000, 100_000, 1000))
    ledger = Ledger.create(path, CONSORTIUM, clock=lambda: next(ticks))
    reg = ModelRegistry(ledger)
    v1 = reg.model_commit("hospital-a", "cnn", b"a-weights" * 30, None, "cnn", {"acc": 0.7}, {})
    vb = reg.model_commit("hospital-b", "cnn", b"b-weights" * 30, None, "cnn", {"acc": 0.6}, {},
                          commit=False)
    reg.model_commit("clinic-c", "cnn", b"c-weights" * 30, None, "cnn", {"acc": 0.65}, {},
                     commit=False)
    reg.tag(v1, "deployed", commit=False)
    ledger.commit_block()
    reg.start_round("clinic-d", "round-1", [v1, vb], {"parties": 3})
    reg.finish_round("clinic-d", "round-1", "ef" * 32, {"acc": 0.8})
    assert ledger.height == 4 and ledger.report.ok
    ledger.close()
    return path


def _scratch(original: Path, tmp_path: Path) -> tuple[Path, sqlite3.Connection]:
    path = copy_for_tamper(original, tmp_path / "scratch" / "ledger.sqlite")
    return path, sqlite3.connect(path, isolation_level=None)


def _fails_at(path: Path, height: int, check: str, reason: str) -> None:
    with open_ledger(path) as view:
        report = view.report
    assert (report.ok, report.height, report.check) == (False, height, check), report.summary()
    assert reason in report.reason, report.summary()


def _votes(conn, height: int) -> list[Vote]:
    (raw,) = conn.execute("SELECT votes FROM blocks WHERE height = ?", (height,)).fetchone()
    return list(decode_votes(bytes(raw)))


def test_the_untouched_copy_verifies(original, tmp_path):
    path, conn = _scratch(original, tmp_path)
    conn.close()
    with open_ledger(path) as view:
        assert view.report.ok and view.height == 4


ROW_ATTACKS = {
    "last transaction row deleted": (
        "DELETE FROM txs WHERE height = 2 AND idx = 2",
        2, "header says 3 transactions, 2 stored"),
    "middle transaction row deleted": (
        "DELETE FROM txs WHERE height = 2 AND idx = 1",
        2, "transaction rows skip from index 0 to 2"),
    "orphan transaction row (no block row)": (
        "INSERT INTO txs(height, idx, tx_id, body) SELECT 5, idx, tx_id, body FROM txs "
        "WHERE height = 4",
        5, "transaction rows at height 5 have no block row"),
    "extra transaction row in a block": (
        "INSERT INTO txs(height, idx, tx_id, body) SELECT 3, 1, tx_id, body FROM txs "
        "WHERE height = 4",
        3, "header says 1 transactions, 2 stored"),
    "gap in transaction indices": (
        "UPDATE txs SET idx = 7 WHERE height = 2 AND idx = 2",
        2, "transaction rows skip from index 1 to 7"),
    "block row holding another height's header": (
        "UPDATE blocks SET header = (SELECT header FROM blocks WHERE height = 3) "
        "WHERE height = 2",
        2, "row 2 holds a header of height 3"),
}


@pytest.mark.parametrize("attack", sorted(ROW_ATTACKS))
def test_rows_deleted_added_or_renumbered(original, tmp_path, attack):
    sql, height, reason = ROW_ATTACKS[attack]
    path, conn = _scratch(original, tmp_path)
    conn.execute(sql)
    conn.close()
    _fails_at(path, height, "encoding", reason)


def test_one_signers_vote_duplicated_to_fake_a_quorum(original, tmp_path):
    path, conn = _scratch(original, tmp_path)
    votes = _votes(conn, 3)
    proposer = next(v for v in votes if v.signer == "clinic-d")  # height 3 is clinic-d's turn
    other = next(v for v in votes if v.signer == "hospital-a")
    faked = [proposer, other, other]  # 3 votes (a quorum of 4 by count), 2 signers
    conn.execute("UPDATE blocks SET votes = ? WHERE height = 3", (encode_votes(faked),))
    conn.close()
    _fails_at(path, 3, "quorum", "'hospital-a' voted twice")


def test_votes_reordered(original, tmp_path):
    path, conn = _scratch(original, tmp_path)
    votes = _votes(conn, 2)
    reordered = b"[" + b",".join(encode_votes([v])[1:-1] for v in reversed(votes)) + b"]"
    conn.execute("UPDATE blocks SET votes = ? WHERE height = 2", (reordered,))
    conn.close()
    _fails_at(path, 2, "encoding", "votes are not in canonical form")


def test_the_proposers_vote_missing_with_a_quorum_of_others(original, tmp_path):
    path, conn = _scratch(original, tmp_path)
    votes = [v for v in _votes(conn, 1) if v.signer != "hospital-b"]  # height 1: hospital-b
    assert len(votes) == 3  # still 3 of 4 valid signatures: only the proposer rule fails
    conn.execute("UPDATE blocks SET votes = ? WHERE height = 1", (encode_votes(votes),))
    conn.close()
    _fails_at(path, 1, "quorum", "the proposer 'hospital-b' did not sign")


def test_a_timestamp_moving_backwards_even_when_every_key_signs(original, tmp_path):
    """An insider holding every key re-signs block 3 with a time before block 2's: hash link,
    Merkle root, signatures and quorum hold, only the rule on time fails."""
    path, conn = _scratch(original, tmp_path)
    conn.text_factory = bytes
    (raw,) = conn.execute("SELECT header FROM blocks WHERE height = 3").fetchone()
    h = BlockHeader.from_bytes(raw)
    forged = BlockHeader(h.height, h.prev_hash, h.merkle_root, 1500, h.proposer, h.n_txs)
    votes = [CONSORTIUM.vote(m, forged.hash) for m in MEMBERS]
    conn.execute("UPDATE blocks SET header = ?, hash = ?, votes = ? WHERE height = 3",
                 (forged.to_bytes(), forged.hash.encode(), encode_votes(votes)))
    conn.close()
    _fails_at(path, 3, "rules", "timestamp 1500 is earlier than the previous block's 3000")
    with open_ledger(path) as view:
        assert [c.check for c in view.checks(3).results if c.ok is False] == ["rules"]
        assert view.checks(4).get("hash link").ok is False  # block 4 still links to the old 3


class _VanishingStore(ArtifactStore):
    """A real artifact store in which ``victim`` is deleted from disk as soon as verification
    asks about the first artifact (i.e. while ``verify`` runs)."""

    def __init__(self, directory, victim: str) -> None:
        super().__init__(directory)
        self.victim = victim

    def problem(self, digest: str) -> str | None:
        self.path(self.victim).unlink(missing_ok=True)
        return super().problem(digest)


def test_an_artifact_deleted_while_verify_runs(original, tmp_path):
    path, conn = _scratch(original, tmp_path)
    conn.close()
    with open_ledger(path) as view:
        victim = view.block(2).transactions[1].payload["version"]  # clinic-c's, at height 2
        blocks = read_blocks(view._conn)
        store = _VanishingStore(view.artifacts.directory, victim)
    report = verify_chain(blocks, store).report
    assert (report.height, report.check) == (2, "artifact hash"), report.summary()
    assert f"artifact {victim[:12]} is missing" in report.reason
    assert not (store.directory / victim).exists()


def test_an_empty_ledger(tmp_path):
    path = tmp_path / "empty.sqlite"
    create_store(path).close()
    _fails_at(path, 0, "encoding", "the ledger has no genesis block")
    with open_ledger(path) as view:
        assert view.height == -1 and view.report.n_blocks == 0
