"""RFC 9162 Merkle trees: roots, inclusion proofs and consistency proofs.

The tree hash (RFC 9162 section 2.1.1) of ``n`` leaves ``D[0:n]``::

    MTH({})      = SHA-256()                         (the empty tree)
    MTH({d0})    = SHA-256(0x00 || d0)               (a leaf)
    MTH(D[0:n])  = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))   k = largest power of 2 < n

The 0x00 / 0x01 prefixes make a leaf hash never equal an inner-node hash (no second-preimage
tricks). An *inclusion proof* is the list of sibling hashes from a leaf up to the root; a
*consistency proof* shows that the tree of the first ``m`` leaves is a prefix of the tree of ``n``
leaves (nothing was rewritten, only appended). The verifiers are the RFC's algorithms 2.1.3.2
and 2.1.4.2 step by step; they return ``False`` for every malformed proof and never raise.

A tree is identified by its *tree head*, the pair (size, root), and verifiers take BOTH from a
trusted place (here: a block header, which commits to ``merkle_root`` and ``n_txs``). A proof's
own size claim is not bound by the root alone: the path of leaf 0 of a 3-leaf tree also
"verifies" as leaf 0 of a 4-leaf tree with the same root, so the trusted size must be compared.

Example:
    >>> leaves = [b"a", b"b", b"c"]
    >>> root = merkle_root(leaves)
    >>> proof = inclusion_proof(leaves, 2)
    >>> verify_inclusion(b"c", proof, root, 3)
    True
    >>> verify_inclusion(b"x", proof, root, 3)
    False
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one leaf.

    Example:
        >>> leaf_hash(b"").hex()[:16]
        '6e340b9cffb37a98'
    """
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an inner node.

    Example:
        >>> len(node_hash(leaf_hash(b"a"), leaf_hash(b"b")))
        32
    """
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def root_of_hashes(hashes: Sequence[bytes]) -> bytes:
    """The tree hash over already-hashed leaves (bottom-up; an odd last node moves up as is).

    Pairing bottom-up and promoting an unpaired last node builds exactly RFC 9162's
    left-balanced tree, without recursion.

    Example:
        >>> root_of_hashes([leaf_hash(b"a")]) == leaf_hash(b"a")
        True
    """
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The RFC 9162 tree hash of the leaf data ``leaves`` (32 bytes).

    Example:
        >>> merkle_root([]).hex()[:16]
        'e3b0c44298fc1c14'
    """
    return root_of_hashes([leaf_hash(d) for d in leaves])


class Frontier:
    """An append-only RFC 9162 tree kept as its perfect subtrees: ``append`` and ``root`` cost
    O(log n) hashes instead of the O(n) of :func:`merkle_root` (a writer's checkpoint after
    every block). The root is :func:`merkle_root` of the leaves appended so far.

    Example:
        >>> tree = Frontier([b"a", b"b", b"c"])
        >>> tree.root() == merkle_root([b"a", b"b", b"c"]), tree.size
        (True, 3)
    """

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self.size = 0
        self._peaks: list[tuple[int, bytes]] = []  # (subtree height, hash), largest first
        for leaf in leaves:
            self.append(leaf)

    def append(self, leaf: bytes) -> None:
        """Adds one leaf (its data, hashed here) on the right."""
        node, height = leaf_hash(leaf), 0
        while self._peaks and self._peaks[-1][0] == height:
            node = node_hash(self._peaks.pop()[1], node)
            height += 1
        self._peaks.append((height, node))
        self.size += 1

    def root(self) -> bytes:
        """The tree hash of every leaf appended (``EMPTY_ROOT`` for none)."""
        if not self._peaks:
            return EMPTY_ROOT
        node = self._peaks[-1][1]
        for _, left in reversed(self._peaks[:-1]):
            node = node_hash(left, node)
        return node


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


@dataclass(frozen=True)
class InclusionProof:
    """Proof that leaf ``index`` (0-based) is in the tree of ``size`` leaves.

    Attributes:
        index: Position of the leaf, 0-based.
        size: Number of leaves of the tree the proof is against.
        path: Sibling hashes from the leaf up to the root.
    """

    index: int
    size: int
    path: tuple[bytes, ...]

    def to_dict(self) -> dict:
        """A JSON-friendly view (hex hashes)."""
        return {"index": self.index, "size": self.size, "path": [h.hex() for h in self.path]}


@dataclass(frozen=True)
class ConsistencyProof:
    """Proof that the tree of ``old_size`` leaves is a prefix of the tree of ``new_size``.

    Attributes:
        old_size: Leaves of the earlier tree.
        new_size: Leaves of the later tree.
        path: The RFC 9162 consistency path.
    """

    old_size: int
    new_size: int
    path: tuple[bytes, ...]

    def to_dict(self) -> dict:
        """A JSON-friendly view (hex hashes)."""
        return {
            "old_size": self.old_size,
            "new_size": self.new_size,
            "path": [h.hex() for h in self.path],
        }


def _inclusion_path(index: int, hashes: Sequence[bytes]) -> list[bytes]:
    n = len(hashes)
    if n <= 1:
        return []
    k = _split(n)
    if index < k:
        return _inclusion_path(index, hashes[:k]) + [root_of_hashes(hashes[k:])]
    return _inclusion_path(index - k, hashes[k:]) + [root_of_hashes(hashes[:k])]


def inclusion_proof(leaves: Sequence[bytes], index: int) -> InclusionProof:
    """The inclusion proof of ``leaves[index]`` in the tree of all ``leaves`` (RFC 9162 PATH).

    Example:
        >>> inclusion_proof([b"a", b"b", b"c"], 0).size
        3
    """
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf index {index} out of range for {len(leaves)} leaves")
    hashes = [leaf_hash(d) for d in leaves]
    return InclusionProof(index, len(leaves), tuple(_inclusion_path(index, hashes)))


def root_from_inclusion(leaf: bytes, proof: InclusionProof) -> bytes | None:
    """The root implied by ``leaf`` and ``proof`` (RFC 9162 2.1.3.2), or ``None`` if malformed.

    Example:
        >>> proof = inclusion_proof([b"a", b"b"], 1)
        >>> root_from_inclusion(b"b", proof) == merkle_root([b"a", b"b"])
        True
    """
    if not (isinstance(proof.index, int) and isinstance(proof.size, int)):
        return None
    if proof.index < 0 or proof.index >= proof.size:
        return None
    fn, sn = proof.index, proof.size - 1
    r = leaf_hash(leaf)
    for p in proof.path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(leaf: bytes, proof: InclusionProof, root: bytes, size: int) -> bool:
    """True if ``proof`` shows that leaf data ``leaf`` is in the tree with head (size, root).

    Example:
        >>> leaves = [b"a", b"b", b"c", b"d", b"e"]
        >>> verify_inclusion(b"d", inclusion_proof(leaves, 3), merkle_root(leaves), 5)
        True
    """
    if proof.size != size:
        return False
    computed = root_from_inclusion(leaf, proof)
    return computed is not None and computed == root


def _subproof(m: int, hashes: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(hashes)
    if m == n:
        return [] if complete else [root_of_hashes(hashes)]
    k = _split(n)
    if m <= k:
        return _subproof(m, hashes[:k], complete) + [root_of_hashes(hashes[k:])]
    return _subproof(m - k, hashes[k:], False) + [root_of_hashes(hashes[:k])]


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> ConsistencyProof:
    """Proof that the first ``old_size`` leaves' tree is a prefix of the tree of ``leaves``.

    Example:
        >>> proof = consistency_proof([b"a", b"b", b"c"], 2)
        >>> (proof.old_size, proof.new_size)
        (2, 3)
    """
    n = len(leaves)
    if not 0 < old_size <= n:
        raise ValueError(f"old size {old_size} must be between 1 and {n}")
    hashes = [leaf_hash(d) for d in leaves]
    path = [] if old_size == n else _subproof(old_size, hashes, True)
    return ConsistencyProof(old_size, n, tuple(path))


def verify_consistency(proof: ConsistencyProof, old_root: bytes, new_root: bytes,
                       old_size: int, new_size: int) -> bool:
    """True if ``proof`` shows the tree head (old_size, old_root) is a prefix of
    (new_size, new_root).

    RFC 9162 section 2.1.4.2, step by step.

    Example:
        >>> leaves = [b"a", b"b", b"c", b"d", b"e"]
        >>> proof = consistency_proof(leaves, 3)
        >>> verify_consistency(proof, merkle_root(leaves[:3]), merkle_root(leaves), 3, 5)
        True
    """
    if (proof.old_size, proof.new_size) != (old_size, new_size):
        return False
    first, second, path = proof.old_size, proof.new_size, list(proof.path)
    if not (isinstance(first, int) and isinstance(second, int)) or not 0 < first <= second:
        return False
    if first == second:
        return not path and old_root == new_root
    if not path:
        return False
    if first & (first - 1) == 0:  # an exact power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
