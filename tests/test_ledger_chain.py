"""Blocks, quorum, storage and every bad input: rejected with a clear error, ledger unchanged."""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from efl_toolkit.ledger import (
    ArtifactError,
    BlockRejected,
    Consortium,
    Ledger,
    LedgerError,
    ModelRegistry,
    TransactionRejected,
    TxType,
    open_ledger,
    quorum_size,
)
from efl_toolkit.ledger.crypto import private_key_from_seed, public_key_hex
from efl_toolkit.ledger.merkle import verify_consistency
from efl_toolkit.ledger.transactions import sign_transaction

MEMBERS = ["hospital-a", "hospital-b", "clinic-c", "lab-d"]


class FakeClock:
    """A millisecond clock that advances by one per call (deterministic timestamps)."""

    def __init__(self, start: int = 1_700_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        self.now += 1
        return self.now


@pytest.fixture
def consortium():
    return Consortium.generate(MEMBERS, seed=7)


@pytest.fixture
def ledger(tmp_path, consortium):
    led = Ledger.create(tmp_path / "ledger.sqlite", consortium, clock=FakeClock())
    yield led
    led.close()


def snapshot(path: Path) -> list:
    """Every stored row, to prove that a rejection left the file as it was."""
    conn = sqlite3.connect(path)
    try:
        return (conn.execute("SELECT * FROM blocks ORDER BY height").fetchall()
                + conn.execute("SELECT * FROM txs ORDER BY height, idx").fetchall())
    finally:
        conn.close()


def commit_model(ledger: Ledger, inst: str, params: bytes, parent=None, model="cnn") -> str:
    return ModelRegistry(ledger).model_commit(inst, model, params, parent, "cnn",
                                              {"accuracy": 0.5}, {"n_train": 10})


def test_genesis_registers_every_member_and_verifies(ledger, consortium):
    assert ledger.height == 0
    assert [i.institution for i in ledger.institutions()] == MEMBERS
    assert {i.institution: i.public_key for i in ledger.institutions()} == \
        consortium.public_keys()
    block = ledger.block(0)
    assert [tx.type for tx in block.transactions] == ["REGISTER_INSTITUTION"] * 4
    assert all(tx.signature_ok for tx in block.transactions)
    assert block.header.prev_hash == "0" * 64 and block.header.proposer == "hospital-a"
    assert ledger.report.ok and ledger.verify().ok


def test_proposers_rotate_and_blocks_link(ledger):
    for _ in range(5):
        ledger.commit_block()
    headers = ledger.headers()
    assert [h.proposer for h in headers] == [MEMBERS[h % 4] for h in range(6)]
    for prev, cur in zip(headers, headers[1:], strict=False):
        assert cur.prev_hash == prev.hash
        assert cur.timestamp >= prev.timestamp
        assert len(cur.signers) == 4 and cur.ok


def test_quorum_is_more_than_two_thirds():
    assert [quorum_size(n) for n in (1, 2, 3, 4, 5, 6, 7)] == [1, 2, 3, 3, 4, 5, 5]


def test_block_with_three_of_four_signatures_is_final(ledger):
    proposer = MEMBERS[1]
    block = ledger.propose(signers=[proposer, "clinic-c", "lab-d"])
    assert ledger.append_block(block).height == 1
    assert ledger.verify().ok


def test_block_signed_by_too_few_institutions_is_rejected(ledger):
    path = ledger.path
    ledger.transact("hospital-a", TxType.ROUND_START, {
        "round_id": "r", "versions": [commit_model(ledger, "hospital-a", b"w")],
        "protocol": {}})
    before = snapshot(path)
    block = ledger.propose(signers=["clinic-c", "lab-d"])  # height 2: clinic-c proposes
    with pytest.raises(BlockRejected) as err:
        ledger.append_block(block)
    assert err.value.check == "quorum" and err.value.height == 2
    assert "2 of 4 institutions signed" in str(err.value)
    assert snapshot(path) == before and ledger.height == 1 and len(ledger.pending) == 1


def test_block_from_the_wrong_proposer_or_with_a_forged_vote_is_rejected(ledger, consortium):
    block = ledger.propose()
    from efl_toolkit.ledger.block import Block, make_header

    wrong = make_header(1, ledger.head_hash, (), block.header.timestamp, "lab-d")
    votes = tuple(consortium.vote(m, wrong.hash) for m in MEMBERS)
    with pytest.raises(BlockRejected, match="proposer is 'lab-d'.*'hospital-b'"):
        ledger.append_block(Block(wrong, (), votes))
    forged = replace(block.votes[0], signature="00" * 64)
    with pytest.raises(BlockRejected, match="bad vote signature"):
        ledger.append_block(Block(block.header, (), (forged,) + block.votes[1:]))
    outsider = Consortium.generate(["mallory"], seed=1).vote("mallory", block.hash)
    with pytest.raises(BlockRejected, match="unknown institution 'mallory'"):
        ledger.append_block(Block(block.header, (), block.votes + (outsider,)))
    with pytest.raises(BlockRejected, match="hash link"):
        bad = make_header(1, "ab" * 32, (), block.header.timestamp, "hospital-b")
        ledger.append_block(Block(bad, (), tuple(consortium.vote(m, bad.hash) for m in MEMBERS)))
    assert ledger.height == 0 and ledger.verify().ok


def test_unknown_institution_is_rejected(ledger):
    before = snapshot(ledger.path)
    with pytest.raises(TransactionRejected, match="unknown institution 'mallory'"):
        ledger.transact("mallory", TxType.ROUND_FAILED, {"round_id": "r", "reason": "x"})
    outsider = private_key_from_seed(b"m" * 32)
    tx = sign_transaction(outsider, TxType.ROUND_START, "mallory", 1,
                          {"round_id": "r", "versions": ["ab" * 32], "protocol": {}},
                          chain=ledger.state.genesis_hash)
    with pytest.raises(TransactionRejected) as err:
        ledger.submit(tx)
    assert err.value.check == "membership" and "mallory" in err.value.reason
    late = sign_transaction(outsider, TxType.REGISTER_INSTITUTION, "mallory", 0,
                            {"institution": "mallory", "public_key": public_key_hex(outsider)})
    with pytest.raises(TransactionRejected, match="membership is fixed by the genesis block"):
        ledger.submit(late)
    assert ledger.pending == () and snapshot(ledger.path) == before


def test_bad_signature_is_rejected(ledger, consortium):
    chain = ledger.state.genesis_hash
    tx = consortium.sign("hospital-a", TxType.ROUND_FAILED, 1, {"round_id": "r", "reason": "x"},
                         chain)
    altered = replace(tx, payload={"round_id": "r2", "reason": "x"})
    with pytest.raises(TransactionRejected) as err:
        ledger.submit(altered)
    assert err.value.check == "signature" and "hospital-a" in err.value.reason
    by_other = consortium.sign("hospital-b", TxType.ROUND_FAILED, 1,
                               {"round_id": "r", "reason": "x"}, chain)
    impostor = replace(by_other, sender="hospital-a")
    with pytest.raises(TransactionRejected, match="bad signature"):
        ledger.submit(impostor)
    commit_for_b = consortium.sign("hospital-a", TxType.MODEL_COMMIT, 1, {
        "institution": "hospital-b", "model_id": "m", "version": "ab" * 32, "parent": None,
        "architecture": "cnn", "metrics": {}, "data_summary": {}}, chain)
    with pytest.raises(TransactionRejected, match="must be signed by it"):
        ledger.submit(commit_for_b)
    assert ledger.pending == ()


def test_replayed_transaction_is_rejected(ledger):
    version = commit_model(ledger, "hospital-a", b"w")
    tx = ledger.transact("hospital-b", TxType.ROUND_START,
                         {"round_id": "r1", "versions": [version], "protocol": {}})
    with pytest.raises(TransactionRejected) as err:  # replay into the pool
        ledger.submit(tx)
    assert err.value.check == "replay"
    ledger.commit_block()
    before = snapshot(ledger.path)
    with pytest.raises(TransactionRejected, match="already on the chain"):  # replay of the chain
        ledger.submit(tx)
    block = ledger.propose(txs=[tx])  # a proposer trying to sneak the replay into a block
    with pytest.raises(BlockRejected) as err:
        ledger.append_block(block)
    assert err.value.check == "rules" and "replay" in err.value.reason
    assert snapshot(ledger.path) == before


def test_out_of_order_nonce_is_rejected(ledger, consortium):
    tx = consortium.sign("hospital-a", TxType.ROUND_FAILED, 5, {"round_id": "r", "reason": "x"},
                         ledger.state.genesis_hash)
    with pytest.raises(TransactionRejected, match="nonce 5, expected 1"):
        ledger.submit(tx)


def test_transaction_for_another_ledger_is_a_replay(ledger, consortium, tmp_path):
    other = Ledger.create(tmp_path / "other" / "ledger.sqlite", consortium, clock=FakeClock(5))
    assert other.state.genesis_hash != ledger.state.genesis_hash
    tx = other.transact("hospital-a", TxType.ROUND_START, {
        "round_id": "r", "versions": [commit_model(other, "hospital-a", b"w")], "protocol": {}})
    commit_model(ledger, "hospital-a", b"w")  # same version and nonce exist here too
    with pytest.raises(TransactionRejected) as err:
        ledger.submit(tx)
    assert err.value.check == "replay" and "bound to the ledger with genesis" in err.value.reason
    unbound = consortium.sign("hospital-a", TxType.ROUND_FAILED, 2,
                              {"round_id": "r", "reason": "x"})  # no chain named at all
    with pytest.raises(TransactionRejected, match="bound to the ledger with genesis 0000"):
        ledger.submit(unbound)
    other.close()


def test_wrong_parent_version_is_rejected(ledger):
    va = commit_model(ledger, "hospital-a", b"a1")
    vb = commit_model(ledger, "hospital-b", b"b1")
    registry = ModelRegistry(ledger)
    before = snapshot(ledger.path)
    with pytest.raises(TransactionRejected) as err:
        registry.model_commit("hospital-a", "cnn", b"a2", "cd" * 32, "cnn", {}, {})
    assert err.value.check == "parent version" and "not a committed version" in err.value.reason
    with pytest.raises(TransactionRejected, match="belongs to hospital-b/cnn"):
        registry.model_commit("hospital-a", "cnn", b"a2", vb, "cnn", {}, {})
    with pytest.raises(TransactionRejected, match="belongs to hospital-a/cnn, not hospital-a/mlp"):
        registry.model_commit("hospital-a", "mlp", b"a2", va, "mlp", {}, {})
    with pytest.raises(TransactionRejected, match="already committed"):
        registry.model_commit("hospital-a", "cnn", b"a1", va, "cnn", {}, {})
    assert snapshot(ledger.path) == before
    assert not (ledger.artifacts.directory / hashlib.sha256(b"a2").hexdigest()).exists()


def test_artifact_whose_bytes_do_not_match_is_rejected(ledger):
    payload = {"institution": "hospital-a", "model_id": "cnn",
               "version": hashlib.sha256(b"real").hexdigest(), "parent": None,
               "architecture": "cnn", "metrics": {}, "data_summary": {}}
    with pytest.raises(TransactionRejected) as err:
        ledger.transact("hospital-a", TxType.MODEL_COMMIT, payload, artifact=b"other bytes")
    assert err.value.check == "artifact hash" and "not to the expected" in err.value.reason
    with pytest.raises(TransactionRejected, match="missing"):
        ledger.transact("hospital-a", TxType.MODEL_COMMIT, payload)  # no artifact stored
    ledger.artifacts.directory.mkdir(exist_ok=True)
    (ledger.artifacts.directory / payload["version"]).write_bytes(b"swapped")
    with pytest.raises(TransactionRejected, match="it was modified"):
        ledger.transact("hospital-a", TxType.MODEL_COMMIT, payload)
    with pytest.raises(ArtifactError, match="refusing modified parameters"):
        ledger.artifacts.get(payload["version"])
    assert ledger.pending == () and ledger.height == 0


def test_malformed_payloads_are_rejected_with_the_field_name(ledger):
    with pytest.raises(TransactionRejected, match="NaN"):
        ModelRegistry(ledger).model_commit("hospital-a", "cnn", b"w", None, "cnn",
                                           {"auc": float("nan")}, {})
    with pytest.raises(TransactionRejected, match="misses field 'reason'"):
        ledger.transact("hospital-a", TxType.ROUND_FAILED, {"round_id": "r"})
    with pytest.raises(TransactionRejected, match="'versions' must be"):
        ledger.transact("hospital-a", TxType.ROUND_START,
                        {"round_id": "r", "versions": ["nothex"], "protocol": {}})
    with pytest.raises(ValueError):
        ledger.transact("hospital-a", "NOT_A_TYPE", {})


def test_round_lifecycle_rules(ledger):
    registry = ModelRegistry(ledger)
    version = commit_model(ledger, "hospital-a", b"w")
    with pytest.raises(TransactionRejected, match="never started"):
        registry.finish_round("hospital-a", "r1", "ab" * 32, {"accuracy": 0.9})
    with pytest.raises(TransactionRejected, match="unknown version"):
        registry.start_round("hospital-a", "r1", ["cd" * 32], {})
    registry.start_round("clinic-c", "r1", [version], {"parties": 3})
    with pytest.raises(TransactionRejected, match="already exists"):
        registry.start_round("clinic-c", "r1", [version], {})
    registry.fail_round("clinic-c", "r1", "party 2 timed out")
    with pytest.raises(TransactionRejected, match="already failed"):
        registry.finish_round("clinic-c", "r1", "ab" * 32, {})
    assert ledger.state.rounds["r1"].status == "failed"


def test_non_ledger_and_corrupt_files_are_rejected(tmp_path, ledger):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError, match=r"junk.sqlite: not a SQLite database or corrupt"):
        open_ledger(junk)
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE patients(id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(LedgerError, match=r"other.sqlite: not an efl ledger \(missing tables"):
        open_ledger(other)
    with pytest.raises(LedgerError, match="no such ledger file"):
        open_ledger(tmp_path / "missing.sqlite")
    for _ in range(3):
        commit_model(ledger, "lab-d", f"w{_}".encode())
    ledger.close()
    data = ledger.path.read_bytes()
    truncated = tmp_path / "truncated" / "ledger.sqlite"
    truncated.parent.mkdir()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(LedgerError, match=r"truncated/ledger.sqlite: .*corrupt"):
        open_ledger(truncated)
    garbled = tmp_path / "garbled" / "ledger.sqlite"
    garbled.parent.mkdir()
    garbled.write_bytes(data[:100] + b"\xff" * 4096 + data[4196:])
    with pytest.raises(LedgerError, match=r"garbled/ledger.sqlite: .*corrupt"):
        open_ledger(garbled)
    with pytest.raises(LedgerError, match="garbled"):
        Ledger.open(garbled, Consortium.generate(MEMBERS, seed=7))


def test_existing_file_is_not_overwritten(tmp_path, consortium, ledger):
    with pytest.raises(LedgerError, match="already exists"):
        Ledger.create(ledger.path, consortium)


def test_reopen_verifies_and_refuses_a_tampered_chain(tmp_path, consortium, ledger):
    commit_model(ledger, "hospital-a", b"w")
    ledger.close()
    again = Ledger.open(ledger.path, consortium)
    assert again.height == 1 and again.report.ok
    again.close()
    conn = sqlite3.connect(ledger.path)
    conn.execute("UPDATE txs SET body = replace(body, 'accuracy', 'accuracZ') WHERE height = 1")
    conn.commit()
    conn.close()
    with pytest.raises(LedgerError, match="refusing to append.*height 1: merkle root"):
        Ledger.open(ledger.path, consortium)
    assert open_ledger(ledger.path).report.height == 1  # readers can still look at it


def test_wrong_keys_cannot_open_for_writing(ledger):
    ledger.close()
    with pytest.raises(LedgerError, match="not the one registered in genesis"):
        Ledger.open(ledger.path, Consortium.generate(MEMBERS, seed=8))
    with pytest.raises(LedgerError, match="cannot reach a quorum"):
        Ledger.open(ledger.path, Consortium({m: Consortium.generate(MEMBERS, seed=7).keys[m]
                                             for m in MEMBERS[:2]}))


def test_two_writers_cannot_fork_the_file(ledger, consortium):
    second = Ledger.open(ledger.path, consortium)
    ledger.commit_block()
    with pytest.raises(LedgerError, match="another writer"):
        second.commit_block()
    second.close()
    assert open_ledger(ledger.path).report.ok


def test_keystore_beside_the_ledger_round_trips(tmp_path, consortium):
    path = tmp_path / "k" / "ledger.sqlite"
    Ledger.create(path, consortium, save_keys=True).close()
    keyfile = path.with_name("ledger.sqlite.keys") / "hospital-a.key"
    assert keyfile.stat().st_mode & 0o077 == 0
    reopened = Ledger.open(path)  # keys from <ledger>.keys/
    assert reopened.commit_block().height == 1
    reopened.close()


def test_pinned_genesis_hash(ledger, consortium, tmp_path):
    genesis = ledger.header(0).hash
    ledger.close()
    assert open_ledger(ledger.path, genesis_hash=genesis).report.ok
    other = Ledger.create(tmp_path / "o" / "ledger.sqlite", Consortium.generate(MEMBERS, seed=9))
    other.close()
    report = open_ledger(other.path, genesis_hash=genesis).report
    assert (report.height, report.check) == (0, "hash link") and "pinned" in report.reason


def test_inclusion_and_consistency_proofs_from_the_ledger(ledger):
    registry = ModelRegistry(ledger)
    for i in range(5):
        registry.model_commit(MEMBERS[i % 4], "cnn", f"w{i}".encode(), None, "cnn", {}, {},
                              commit=False)
    ledger.commit_block()
    for tx in ledger.block(1).transactions:
        proof = ledger.inclusion_proof(tx.tx_id)
        assert proof.verify() and proof.size == 5
    for _ in range(4):
        ledger.commit_block()
    for old in range(ledger.height + 1):
        proof = ledger.consistency_proof(old, ledger.height)
        assert verify_consistency(proof, ledger.chain_root(old), ledger.chain_root(ledger.height),
                                  old + 1, ledger.height + 1)


def test_read_api_find_and_headers(ledger):
    version = commit_model(ledger, "hospital-a", b"w")
    ModelRegistry(ledger).start_round("clinic-c", "round-7", [version], {"parties": 4})
    view = open_ledger(ledger.path)
    hits = {m.kind for m in view.find(version[:8])}
    assert "version" in hits and "tx" not in {m.kind for m in view.find(version[:8])
                                              if m.key == version}
    assert view.find("round-")[0].key == "round-7"
    block_hash = view.header(1).hash
    assert view.find(block_hash[:10])[0] == view.find(block_hash)[0]
    tx_id = view.block(1).transactions[0].tx_id
    assert view.transaction(tx_id).type == "MODEL_COMMIT"
    assert [c.check for c in view.checks(1).results] == [
        "encoding", "hash link", "merkle root", "signature", "quorum", "rules", "artifact hash"]
    assert all(c.ok for c in view.checks(1).results)
    assert [v.ok for v in view.block(1).votes] == [True] * 4
    with pytest.raises(LedgerError, match="no block at height 9"):
        view.block(9)
    view.close()


@pytest.mark.parametrize(("sql", "expected"), [
    ("UPDATE txs SET body = replace(body, '0.5', 'NaN') WHERE height = 1",
     "encoding: transaction 0: transaction has no canonical form"),
    ("UPDATE txs SET body = CAST(? AS BLOB) WHERE height = 1", "not valid JSON"),
    ("UPDATE txs SET body = CAST('{\"type\": 1}' AS TEXT) WHERE height = 1",
     "transaction must have exactly the fields"),
    ("UPDATE blocks SET votes = X'FFFE' WHERE height = 1", "votes are not valid JSON"),
    ("UPDATE blocks SET header = '[]' WHERE height = 1", "block header must be a JSON object"),
])
def test_odd_stored_values_give_reports_not_crashes(ledger, tmp_path, sql, expected):
    from efl_toolkit.ledger.tamper import copy_for_tamper

    commit_model(ledger, "hospital-a", b"w")
    scratch = copy_for_tamper(ledger.path, tmp_path / "s" / "ledger.sqlite")
    conn = sqlite3.connect(scratch)
    conn.execute(sql, ("[" * 100_000 + "]" * 100_000,) if "?" in sql else ())
    conn.commit()
    conn.close()
    report = open_ledger(scratch).report
    assert (report.height, report.check) == (1, "encoding") and expected in report.summary()


DEEP_JSON_PROBE = """
import struct, sys
sys.setrecursionlimit(100_000)  # what py_ecc (imported with web3) does to every process
from efl_toolkit.ledger.artifacts import PACK_MAGIC, unpack_arrays
from efl_toolkit.ledger.block import decode_votes
from efl_toolkit.ledger.transactions import Transaction
deep = b"[" * 100_000 + b"]" * 100_000
for name, decode in [("tx", Transaction.from_bytes), ("votes", decode_votes),
                     ("artifact", lambda d: unpack_arrays(
                         PACK_MAGIC + struct.pack("<Q", len(d)) + d))]:
    try:
        decode(deep)
    except ValueError as err:
        assert "nested deeper than 64" in str(err), (name, err)
        print(name, "refused")
"""


def test_hostile_nesting_is_refused_even_with_a_raised_recursion_limit():
    """A stored row of 100,000 nested brackets is an error, not a crash of the C stack, in a
    process whose recursion limit a library raised (json.loads would overflow there)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", DEEP_JSON_PROBE], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.split() == ["tx", "refused", "votes", "refused", "artifact", "refused"]


def test_non_integer_row_positions_are_a_corrupt_ledger(ledger, tmp_path):
    from efl_toolkit.ledger.tamper import copy_for_tamper

    commit_model(ledger, "hospital-a", b"w")
    scratch = copy_for_tamper(ledger.path, tmp_path / "s" / "ledger.sqlite")
    conn = sqlite3.connect(scratch)
    conn.execute("UPDATE txs SET height = 'one' WHERE height = 1")
    conn.commit()
    conn.close()
    with pytest.raises(LedgerError, match=r"s/ledger.sqlite: corrupt ledger: .*must be integers"):
        open_ledger(scratch)
