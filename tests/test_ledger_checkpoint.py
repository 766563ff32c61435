"""Signed checkpoints (C2SP tlog-checkpoint notes): truncation, forks, and trust anchors.

Issue 10, fault 7: deleting the newest blocks left a shorter chain that verified, and a ledger
re-forged with new keys under the same names verified ``OK`` like the real one. A kept
checkpoint exposes truncation and forks (with heights); trusted keys and the genesis hash,
obtained out of band, reject a re-forged ledger naming the institution whose key differs.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import sqlite3
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pymerkle import InmemoryTree

from efl_toolkit.cli import main as efl
from efl_toolkit.ledger import Consortium, Ledger, LedgerError, ModelRegistry, open_ledger
from efl_toolkit.ledger.checkpoint import (
    Checkpoint,
    CheckpointError,
    checkpoint_path,
    compare,
    read_checkpoint,
    read_trusted_keys,
    verifier_key,
    verify_signatures,
)

IDS = ["hospital-a", "hospital-b", "clinic-c"]


def build(path, seed=2, n_commits=5, first=b"a0"):
    consortium = Consortium.generate(IDS, seed=seed)
    ledger = Ledger.create(path, consortium)
    reg = ModelRegistry(ledger)
    parent = None
    for i in range(n_commits):
        parent = reg.model_commit("hospital-a", "cnn", first + bytes([i]), parent, "cnn",
                                  {"accuracy": 0.5 + i / 100}, {})
    ledger.close()
    return consortium


@pytest.fixture
def real(tmp_path):
    path = tmp_path / "real" / "ledger.sqlite"
    consortium = build(path)
    kept = tmp_path / "kept.checkpoint"
    shutil.copy(checkpoint_path(path), kept)  # what an auditor keeps out of band
    keys = tmp_path / "trusted.keys"
    keys.write_text("".join(verifier_key(i, k) + "\n"
                            for i, k in consortium.public_keys().items()))
    return path, consortium, kept, keys


def copy_ledger(src, dst_dir, with_checkpoint=False):
    dst_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst_dir / src.name)
    shutil.copytree(src.parent / "artifacts", dst_dir / "artifacts")
    if with_checkpoint:
        shutil.copy(checkpoint_path(src), checkpoint_path(dst_dir / src.name))
    return dst_dir / src.name


def delete_newest(path, n):
    conn = sqlite3.connect(path)
    (head,) = conn.execute("SELECT MAX(height) FROM blocks").fetchone()
    conn.execute("DELETE FROM blocks WHERE height > ?", (head - n,))
    conn.execute("DELETE FROM txs WHERE height > ?", (head - n,))
    conn.commit()
    conn.close()


def test_the_note_is_a_c2sp_checkpoint_cosigned_by_every_institution(real):
    path, consortium, kept, _ = real
    text = kept.read_text(encoding="utf-8")
    body, blank, sigs = text.partition("\n\n")
    origin, size, root = body.split("\n")
    view = open_ledger(path)
    assert origin == f"efl-ledger/{view.headers()[0].hash}"
    assert int(size) == view.height + 1 == 6
    tree = InmemoryTree(algorithm="sha256")  # independent RFC 9162 implementation
    for h in view.block_hashes():
        tree.append_entry(h)
    assert base64.b64decode(root) == tree.get_root()
    lines = sigs.splitlines()
    assert [line.split(" ")[1] for line in lines] == IDS
    for line, (name, key) in zip(lines, consortium.public_keys().items(), strict=True):
        assert line.startswith("\u2014 ")
        raw = base64.b64decode(line.split(" ")[2])
        pub = bytes.fromhex(key)
        assert raw[:4] == hashlib.sha256(name.encode() + b"\n\x01" + pub).digest()[:4]
        Ed25519PublicKey.from_public_bytes(pub).verify(raw[4:], (body + "\n").encode())
    assert Checkpoint.parse(text).to_note() == text
    view.close()


def test_checkpoint_command_prints_and_writes_the_note(real, tmp_path, capsys):
    path, _, kept, _ = real
    assert efl(["ledger", "checkpoint", str(path)]) == 0
    assert capsys.readouterr().out == kept.read_text()
    out = tmp_path / "sub" / "cp.txt"
    out.parent.mkdir()
    assert efl(["ledger", "checkpoint", str(path), "--out", str(out)]) == 0
    assert out.read_text() == kept.read_text()


def test_truncation_is_reported_with_heights(real, tmp_path, capsys):
    path, _, kept, _ = real
    copy = copy_ledger(path, tmp_path / "copy")
    delete_newest(copy, 2)
    assert efl(["ledger", "verify", str(copy)]) == 0  # alone, the shorter chain verifies
    capsys.readouterr()
    assert efl(["ledger", "verify", str(copy), "--checkpoint", str(kept)]) == 1
    out = capsys.readouterr().out
    assert "OK: 4 blocks" in out
    assert "TRUNCATED: the checkpoint covers heights 0..5 (6 blocks) but the ledger ends at " \
           "height 3; blocks 4..5 are missing" in out


def test_truncation_is_caught_by_the_checkpoint_beside_the_ledger(real, tmp_path, capsys):
    path, consortium, _, _ = real
    copy = copy_ledger(path, tmp_path / "copy", with_checkpoint=True)
    delete_newest(copy, 1)
    assert efl(["ledger", "verify", str(copy)]) == 1
    out = capsys.readouterr().out
    assert "checkpoint ledger.sqlite.checkpoint: TRUNCATED" in out
    assert "blocks 5..5 are missing" in out
    with pytest.raises(LedgerError, match="refusing to append.*TRUNCATED"):
        Ledger.open(copy, consortium)


def test_a_ledger_that_grew_is_consistent_by_proof(real, tmp_path, capsys):
    path, consortium, kept, _ = real
    ledger = Ledger.open(path, consortium)
    ModelRegistry(ledger).model_commit("hospital-b", "mlp", b"b", None, "mlp", {}, {})
    ledger.commit_block()
    ledger.close()
    assert efl(["ledger", "verify", str(path), "--checkpoint", str(kept)]) == 0
    out = capsys.readouterr().out
    assert "consistent with the checkpoint at height 5: the ledger grew to height 7" in out
    view = open_ledger(path)
    verdict = view.check_checkpoint(read_checkpoint(kept))
    assert verdict.ok and verdict.proof_hashes > 0
    view.close()


def fork(path, consortium, tmp_path, name, payload):
    copy = copy_ledger(path, tmp_path / name)
    ledger = Ledger.open(copy, consortium)
    ModelRegistry(ledger).model_commit("clinic-c", "vit", payload, None, "vit", {}, {})
    ledger.close()
    return copy


def test_a_fork_of_the_same_size_is_reported(real, tmp_path, capsys):
    path, consortium, _, _ = real
    left = fork(path, consortium, tmp_path, "left", b"left")
    right = fork(path, consortium, tmp_path, "right", b"right")
    left_cp = read_checkpoint(checkpoint_path(left))
    right_cp = read_checkpoint(checkpoint_path(right))
    assert left_cp.size == right_cp.size == 7 and left_cp.root != right_cp.root
    assert efl(["ledger", "verify", str(right), "--checkpoint",
                str(checkpoint_path(left))]) == 1
    out = capsys.readouterr().out
    assert "FORK at height 6: the checkpoint and the ledger both cover 7 blocks" in out


def test_a_rewritten_then_longer_history_is_a_fork(real, tmp_path):
    path, consortium, _, _ = real
    left = fork(path, consortium, tmp_path, "left", b"left")
    right = fork(path, consortium, tmp_path, "right", b"right")
    ledger = Ledger.open(right, consortium)
    ledger.commit_block()
    ledger.close()
    view = open_ledger(right)
    verdict = view.check_checkpoint(read_checkpoint(checkpoint_path(left)))
    assert verdict.status == "fork" and "first 7 blocks (heights 0..6)" in verdict.message
    assert "ends at height 7" in verdict.message
    view.close()


def test_compare_unit_cases():
    hashes = [bytes([i]) * 4 for i in range(9)]
    from efl_toolkit.ledger.checkpoint import checkpoint_of

    for n in range(1, 9):
        cp = checkpoint_of(hashes[:n], "g")
        assert compare(cp, hashes, "g").ok
        assert compare(cp, hashes[:n], "g").ok
        assert compare(cp, hashes[:n - 1], "g").status == "truncated"
        changed = hashes[:n - 1] + [b"x"] + hashes[n:]
        assert compare(cp, changed, "g").status == "fork"
        assert compare(cp, hashes, "other").status == "other ledger"


@pytest.fixture
def forged(real, tmp_path):
    """The whole ledger re-forged with new keys under the same names (another first commit)."""
    path = tmp_path / "forged" / "ledger.sqlite"
    build(path, seed=99, first=b"evil")
    return path


def test_a_reforged_ledger_verifies_alone_but_not_against_anchors(real, forged, capsys):
    path, consortium, kept, keys = real
    assert efl(["ledger", "verify", str(forged)]) == 0  # the fault: OK like the real one
    capsys.readouterr()
    assert efl(["ledger", "verify", str(forged), "--trusted-keys", str(keys)]) == 1
    out = capsys.readouterr().out
    assert "FAILED at height 0: signature: 'hospital-a' registered another key than its " \
           "trusted one" in out
    genesis = open_ledger(path).headers()[0].hash
    assert efl(["ledger", "verify", str(forged), "--genesis", genesis]) == 1
    assert f"genesis hash is not the pinned {genesis[:16]}" in capsys.readouterr().out
    assert efl(["ledger", "verify", str(forged), "--checkpoint", str(kept)]) == 1
    out = capsys.readouterr().out
    assert "checkpoint is signed for 'hospital-a', 'hospital-b', 'clinic-c' by another key" \
        in out
    # the real ledger passes every anchor
    assert efl(["ledger", "verify", str(path), "--trusted-keys", str(keys), "--genesis", genesis,
                "--checkpoint", str(kept)]) == 0


def test_a_forged_checkpoint_is_rejected_naming_the_key(real, forged):
    path, consortium, kept, keys = real
    forged_cp = read_checkpoint(checkpoint_path(forged))
    with pytest.raises(CheckpointError, match=r"signed for 'hospital-a'.* by another key"):
        verify_signatures(forged_cp, read_trusted_keys(keys))
    # one institution's signature by a foreign key: named, even with a quorum of others
    real_cp = read_checkpoint(kept)
    mixed = Checkpoint(real_cp.origin, real_cp.size, real_cp.root,
                       real_cp.signatures[:2] + forged_cp.signatures[2:])
    with pytest.raises(CheckpointError, match="'clinic-c' by another key"):
        verify_signatures(mixed, consortium.public_keys())
    # a known key whose signature does not verify
    bad = real_cp.signatures[0]
    flipped = type(bad)(bad.name, bad.key_id, bytes([bad.signature[0] ^ 1]) + bad.signature[1:])
    with pytest.raises(CheckpointError, match="'hospital-a' does not verify"):
        verify_signatures(Checkpoint(real_cp.origin, real_cp.size, real_cp.root,
                                     (flipped,) + real_cp.signatures[1:]),
                          consortium.public_keys())
    # too few signatures for a quorum (3 of 3 needed)
    with pytest.raises(CheckpointError, match="2 valid signatures of 3"):
        verify_signatures(Checkpoint(real_cp.origin, real_cp.size, real_cp.root,
                                     real_cp.signatures[:2]), consortium.public_keys())


def test_trusted_keys_accept_json_and_reject_garbage(real, tmp_path, forged, capsys):
    path, consortium, _, _ = real
    js = tmp_path / "keys.json"
    import json

    js.write_text(json.dumps(consortium.public_keys()))
    assert efl(["ledger", "verify", str(path), "--trusted-keys", str(js)]) == 0
    assert efl(["ledger", "verify", str(forged), "--trusted-keys", str(js)]) == 1
    capsys.readouterr()
    missing = dict(consortium.public_keys())
    missing.pop("clinic-c")
    js.write_text(json.dumps(missing))
    assert efl(["ledger", "verify", str(path), "--trusted-keys", str(js)]) == 1
    assert "genesis registers 'clinic-c', which is not among the trusted" in \
        capsys.readouterr().out
    junk = tmp_path / "junk.keys"
    junk.write_text("hospital-a+0000+AAAA\n")
    assert efl(["ledger", "verify", str(path), "--trusted-keys", str(junk)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("efl ledger verify: error: --trusted-keys: ") and err.count("\n") == 1


@pytest.mark.parametrize("note", [
    "", "no blank line\n", "o\n1\n\n\u2014 a AAAAAAAA\n", "o\nx\nAAAA\n\n\u2014 a AAAAAAAA\n",
    "o\n01\n" + base64.b64encode(bytes(32)).decode() + "\n\n\u2014 a AAAAAAAA\n",
    "o\n1\n" + base64.b64encode(bytes(32)).decode() + "\n\n- a AAAAAAAA\n",
    "o\n1\n" + base64.b64encode(bytes(32)).decode() + "\n\n",
    "o\n1\n" + base64.b64encode(bytes(32)).decode() + "\next\n\n\u2014 a AAAAAAAA\n",
])
def test_malformed_checkpoint_files_are_bad_input(real, tmp_path, capsys, note):
    path, _, _, _ = real
    bad = tmp_path / "bad.checkpoint"
    bad.write_text(note, encoding="utf-8")
    assert efl(["ledger", "verify", str(path), "--checkpoint", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("efl ledger verify: error: --checkpoint: ") and err.count("\n") == 1
    assert "bad.checkpoint" in err


def test_checkpoint_of_a_ledger_without_one_is_a_clean_error(real, tmp_path):
    path, _, _, _ = real
    copy = copy_ledger(path, tmp_path / "bare")
    run = subprocess.run([sys.executable, "-m", "efl_toolkit.cli", "ledger", "checkpoint",
                          str(copy)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.startswith("efl ledger checkpoint: error: ") and \
        run.stderr.count("\n") == 1 and "no checkpoint next to it" in run.stderr
