"""RFC 9162 Merkle trees: agreement with pymerkle (an independent implementation) and proofs
that fail under every corruption."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymerkle import InmemoryTree
from pymerkle import verify_consistency as pymerkle_verify_consistency

from efl_toolkit.ledger.merkle import (
    EMPTY_ROOT,
    ConsistencyProof,
    InclusionProof,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

leaves_strategy = st.lists(st.binary(max_size=40), min_size=1, max_size=70, unique=True)


def pymerkle_tree(leaves: list[bytes]) -> InmemoryTree:
    tree = InmemoryTree(algorithm="sha256")
    for leaf in leaves:
        tree.append_entry(leaf)
    return tree


def test_hashing_prefixes_follow_rfc9162():
    import hashlib

    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"L", b"R") == hashlib.sha256(b"\x01LR").digest()
    assert merkle_root([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert merkle_root([b"a", b"b", b"c"]) == node_hash(
        node_hash(leaf_hash(b"a"), leaf_hash(b"b")), leaf_hash(b"c"))


@settings(max_examples=60, deadline=None)
@given(leaves_strategy)
def test_roots_and_inclusion_paths_agree_with_pymerkle(leaves):
    tree = pymerkle_tree(leaves)
    for size in range(1, len(leaves) + 1):
        assert merkle_root(leaves[:size]) == tree.get_root(size)
    for index in range(len(leaves)):
        theirs = tree.prove_inclusion(index + 1)  # pymerkle counts leaves from 1
        ours = inclusion_proof(leaves, index)
        assert ours.path == tuple(theirs.path[1:])  # their path starts with the leaf hash
        assert verify_inclusion(leaves[index], ours, tree.get_root(), len(leaves))


@settings(max_examples=60, deadline=None)
@given(leaves_strategy, st.data())
def test_consistency_proofs_verify_against_pymerkle_roots(leaves, data):
    tree = pymerkle_tree(leaves)
    old = data.draw(st.integers(1, len(leaves)))
    proof = consistency_proof(leaves, old)
    assert verify_consistency(proof, tree.get_root(old), tree.get_root(), old, len(leaves))
    # pymerkle's own proof between the same roots agrees that they are consistent
    pymerkle_verify_consistency(tree.get_root(old), tree.get_root(),
                                tree.prove_consistency(old, len(leaves)))
    if old < len(leaves):  # and a wrong old root is refused
        wrong_old = tree.get_root(old - 1) if old > 1 else b"\0" * 32
        assert not verify_consistency(proof, wrong_old, tree.get_root(), old, len(leaves))


def _mutations(proof: InclusionProof, n_leaves: int):
    """Every kind of corruption of an inclusion proof: index, size, path."""
    for delta in (-2, -1, 1, 2, n_leaves):
        yield "index", InclusionProof(proof.index + delta, proof.size, proof.path)
        yield "size", InclusionProof(proof.index, proof.size + delta, proof.path)
    for i in range(len(proof.path)):
        flipped = bytes([proof.path[i][0] ^ 1]) + proof.path[i][1:]
        yield "path element", InclusionProof(proof.index, proof.size,
                                             proof.path[:i] + (flipped,) + proof.path[i + 1:])
        yield "path shortened", InclusionProof(proof.index, proof.size,
                                               proof.path[:i] + proof.path[i + 1:])
    yield "path extended", InclusionProof(proof.index, proof.size, proof.path + (EMPTY_ROOT,))
    yield "path extended", InclusionProof(proof.index, proof.size, (EMPTY_ROOT,) + proof.path)
    if len(proof.path) > 1:
        yield "path reordered", InclusionProof(proof.index, proof.size, proof.path[::-1])


@settings(max_examples=80, deadline=None)
@given(leaves_strategy, st.data())
def test_every_corrupted_inclusion_proof_fails(leaves, data):
    index = data.draw(st.integers(0, len(leaves) - 1))
    root = merkle_root(leaves)
    proof = inclusion_proof(leaves, index)
    assert verify_inclusion(leaves[index], proof, root, len(leaves))
    for kind, bad in _mutations(proof, len(leaves)):
        if (bad.index, bad.size, bad.path) == (proof.index, proof.size, proof.path):
            continue  # e.g. a reordered path of identical hashes: not a corruption
        assert not verify_inclusion(leaves[index], bad, root, len(leaves)), kind
    assert not verify_inclusion(leaves[index] + b"!", proof, root, len(leaves)), "leaf"
    other = data.draw(st.integers(0, len(leaves) - 1))
    if other != index:
        assert not verify_inclusion(leaves[other], proof, root, len(leaves)), "other leaf"
    assert not verify_inclusion(leaves[index], proof, bytes([root[0] ^ 1]) + root[1:],
                                len(leaves)), "root"
    assert not verify_inclusion(leaves[index], proof, merkle_root(leaves + [b"extra"]),
                                len(leaves)), "root"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=20), min_size=2, max_size=40, unique=True), st.data())
def test_every_corrupted_consistency_proof_fails(leaves, data):
    old = data.draw(st.integers(1, len(leaves) - 1))
    proof = consistency_proof(leaves, old)
    old_root, new_root = merkle_root(leaves[:old]), merkle_root(leaves)
    n = len(leaves)
    assert verify_consistency(proof, old_root, new_root, old, n)
    bad = [ConsistencyProof(old + d, len(leaves), proof.path) for d in (-1, 1) if old + d > 0]
    bad += [ConsistencyProof(old, len(leaves) + d, proof.path) for d in (-1, 1)]
    for i in range(len(proof.path)):
        flipped = bytes([proof.path[i][0] ^ 1]) + proof.path[i][1:]
        bad.append(ConsistencyProof(old, len(leaves), proof.path[:i] + (flipped,)
                                    + proof.path[i + 1:]))
        bad.append(ConsistencyProof(old, len(leaves), proof.path[:i] + proof.path[i + 1:]))
    for corrupted in bad:
        if corrupted.old_size == corrupted.new_size or corrupted.old_size > corrupted.new_size:
            continue
        assert not verify_consistency(corrupted, old_root, new_root, old, n), corrupted
    assert not verify_consistency(proof, old_root, merkle_root(leaves[:-1] + [b"changed"]), old, n)
    assert not verify_consistency(proof, merkle_root(leaves[1:old + 1]), new_root, old, n)


def test_proof_arguments_out_of_range_are_refused():
    with pytest.raises(ValueError, match="out of range"):
        inclusion_proof([b"a"], 1)
    with pytest.raises(ValueError, match="between 1 and 2"):
        consistency_proof([b"a", b"b"], 0)
    assert not verify_inclusion(b"a", InclusionProof(0, 0, ()), merkle_root([b"a"]), 0)
    assert not verify_consistency(ConsistencyProof(2, 1, ()), EMPTY_ROOT, EMPTY_ROOT, 2, 1)
