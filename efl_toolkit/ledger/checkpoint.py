"""Signed checkpoints: the tree head of the chain, co-signed by the institutions (C2SP format).

Deleting the newest blocks of a hash-linked chain leaves a shorter chain that verifies; so does
a whole chain re-forged with new keys. A *checkpoint* pins what the chain was: a
`C2SP tlog-checkpoint <https://c2sp.org/tlog-checkpoint>`_ note whose text is::

    efl-ledger/<genesis block hash>          origin: which ledger
    12                                       tree size: number of blocks (heights 0..11)
    <base64 RFC 9162 root over the block hashes, in height order>

followed by a blank line and one `signed-note <https://c2sp.org/signed-note>`_ signature line
per institution, each an Ed25519 signature over the note text by that institution's ledger key,
acting as a witness::

    — hospital-a <base64(key ID || signature)>     key ID = SHA-256(name || 0x0A || 0x01 ||
                                                    public key)[:4]

A checkpoint is valid when more than 2/3 of the institutions signed it (the block quorum). The
writer (:class:`~efl_toolkit.ledger.chain.Ledger`) writes the latest one next to the ledger
(``<ledger>.checkpoint``, atomically) after every block, and refuses to sign one inconsistent
with the checkpoint already there. A verifier who kept a checkpoint checks a ledger against it
with :func:`compare`: an RFC 9162 consistency proof shows the ledger only grew since; a shorter
ledger is reported as *truncated*, a different history as a *fork*, each with the heights.

Trust is anchored out of band: signatures are checked against the institutions' public keys the
verifier already holds (:func:`read_trusted_keys`: a file of C2SP verifier keys
``name+keyid+base64(0x01 || key)``, or JSON ``{"name": "<hex key>"}``), and a signature line
of a known institution made by another key is named, never silently ignored.

Example:
    >>> from efl_toolkit.ledger.keys import Consortium
    >>> c = Consortium.generate(["h1", "h2", "h3"], seed=0)
    >>> cp = sign_checkpoint(Checkpoint("efl-ledger/" + "ab" * 32, 3, bytes(32)), c)
    >>> parsed = Checkpoint.parse(cp.to_note())
    >>> parsed == cp, verify_signatures(parsed, c.public_keys())
    (True, ['h1', 'h2', 'h3'])
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from efl_toolkit.ledger.block import quorum_size
from efl_toolkit.ledger.crypto import fingerprint, loads_json, public_key_hex, verify
from efl_toolkit.ledger.errors import LedgerError
from efl_toolkit.ledger.merkle import consistency_proof, merkle_root, verify_consistency

ORIGIN_PREFIX = "efl-ledger/"
ED25519_TYPE = b"\x01"
SIG_PREFIX = "\u2014 "  # em dash, space
MAX_SIGNATURES = 64
CHECKPOINT_SUFFIX = ".checkpoint"
_NAME = re.compile(r"^[^\s+]+$")
_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,18})$")


class CheckpointError(LedgerError):
    """A checkpoint note is malformed, or its signatures cannot be trusted."""


def checkpoint_path(ledger_path: str | os.PathLike) -> Path:
    """Where a ledger's latest checkpoint lives: ``<ledger>.checkpoint``.

    Example:
        >>> checkpoint_path("out/ledger.sqlite").name
        'ledger.sqlite.checkpoint'
    """
    p = Path(ledger_path)
    return p.with_name(p.name + CHECKPOINT_SUFFIX)


def origin_of(genesis_hash: str) -> str:
    """The origin line of a ledger: ``efl-ledger/<genesis hash>``.

    Example:
        >>> origin_of("00" * 32)[:14]
        'efl-ledger/000'
    """
    return ORIGIN_PREFIX + genesis_hash


def key_id(name: str, public_key: str) -> bytes:
    """C2SP key ID of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || key)[:4].

    Example:
        >>> key_id("h1", "00" * 32).hex()
        'c5c826d5'
    """
    return hashlib.sha256(name.encode() + b"\n" + ED25519_TYPE
                          + bytes.fromhex(public_key)).digest()[:4]


def verifier_key(name: str, public_key: str) -> str:
    """The C2SP verifier key string ``name+<key ID hex>+base64(0x01 || key)``.

    Example:
        >>> verifier_key("h1", "00" * 32).split("+")[:2]
        ['h1', 'c5c826d5']
    """
    raw = ED25519_TYPE + bytes.fromhex(public_key)
    return f"{name}+{key_id(name, public_key).hex()}+{base64.b64encode(raw).decode()}"


def parse_verifier_key(text: str) -> tuple[str, str]:
    """``(name, public key hex)`` of a verifier key string; ``CheckpointError`` if malformed.

    Example:
        >>> parse_verifier_key(verifier_key("h1", "11" * 32)) == ("h1", "11" * 32)
        True
    """
    parts = text.strip().split("+", 2)
    if len(parts) != 3 or not parts[0] or not _NAME.match(parts[0]):
        raise CheckpointError(f"verifier key {text.strip()[:40]!r} is not name+keyid+key")
    name, kid, b64 = parts
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise CheckpointError(f"verifier key of {name!r}: key is not base64") from None
    if len(raw) != 33 or raw[:1] != ED25519_TYPE:
        raise CheckpointError(f"verifier key of {name!r}: not an Ed25519 (type 0x01) key")
    public_key = raw[1:].hex()
    if kid.lower() != key_id(name, public_key).hex():
        raise CheckpointError(f"verifier key of {name!r}: key ID {kid} does not match its key")
    return name, public_key


def read_trusted_keys(path: str | os.PathLike) -> dict[str, str]:
    """Institution -> public key (hex) from a file of verifier keys (one a line, ``#``
    comments allowed) or a JSON object ``{"name": "<64 hex>"}``; ``CheckpointError`` names the
    file and what is wrong.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "keys.txt")
        >>> _ = open(p, "w").write(verifier_key("h1", "11" * 32) + "\\n")
        >>> read_trusted_keys(p) == {"h1": "11" * 32}
        True
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{p}: cannot read trusted keys: {err}") from None
    keys: dict[str, str] = {}
    if text.lstrip().startswith("{"):
        try:
            obj = loads_json(text)
        except ValueError as err:
            raise CheckpointError(f"{p}: trusted keys are not valid JSON: {err}") from None
        for name, key in obj.items():
            if not isinstance(key, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", key):
                raise CheckpointError(f"{p}: key of {name!r} is not 64 hex characters")
            keys[name] = key.lower()
    else:
        for line in text.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                try:
                    name, key = parse_verifier_key(line)
                except CheckpointError as err:
                    raise CheckpointError(f"{p}: {err}") from None
                if name in keys and keys[name] != key:
                    raise CheckpointError(f"{p}: two different keys for {name!r}")
                keys[name] = key
    if not keys:
        raise CheckpointError(f"{p}: holds no trusted keys")
    return keys


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key ID, Ed25519 signature (64 bytes)."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        """The ``— name base64(key ID || signature)`` line (without newline)."""
        return f"{SIG_PREFIX}{self.name} {base64.b64encode(self.key_id + self.signature).decode()}"


@dataclass(frozen=True)
class Checkpoint:
    """A tree head of the chain and its signatures.

    Attributes:
        origin: ``efl-ledger/<genesis hash>``.
        size: Number of blocks it covers (heights ``0 .. size - 1``).
        root: RFC 9162 root over the stored block hashes of those heights.
        signatures: Signature lines, in note order.
    """

    origin: str
    size: int
    root: bytes
    signatures: tuple[NoteSignature, ...] = ()

    @property
    def height(self) -> int:
        """Height of the last block it covers."""
        return self.size - 1

    def text(self) -> bytes:
        """The signed note text (origin, size, root; each line ending in a newline)."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n".encode()

    def to_note(self) -> str:
        """The whole note: text, blank line, signature lines."""
        lines = "".join(s.line() + "\n" for s in self.signatures)
        return self.text().decode() + "\n" + lines

    @classmethod
    def parse(cls, note: str | bytes) -> Checkpoint:
        """Parses a checkpoint note; ``CheckpointError`` names the malformed part.

        Example:
            >>> Checkpoint.parse("x\\n1\\nAAAA\\n\\n")
            Traceback (most recent call last):
            ...
            efl_toolkit.ledger.checkpoint.CheckpointError: checkpoint root hash is not 32 \
base64-encoded bytes
        """
        if isinstance(note, bytes):
            try:
                note = note.decode("utf-8")
            except UnicodeDecodeError:
                raise CheckpointError("checkpoint note is not valid UTF-8") from None
        if any(ord(ch) < 0x20 and ch != "\n" for ch in note):
            raise CheckpointError("checkpoint note holds control characters")
        text, sep, sigs = note.rpartition("\n\n")
        if not sep:
            raise CheckpointError("checkpoint note has no blank line before its signatures")
        lines = text.split("\n")
        if len(lines) < 3:
            raise CheckpointError("checkpoint note text needs origin, tree size and root hash")
        if len(lines) > 3:
            raise CheckpointError("checkpoint note has extension lines; efl checkpoints have "
                                  "none")
        origin, size_text, root_text = lines
        if not origin or not _NAME.match(origin):
            raise CheckpointError(f"checkpoint origin {origin[:40]!r} is empty or has spaces")
        if not _DECIMAL.match(size_text):
            raise CheckpointError(f"checkpoint tree size {size_text[:20]!r} is not a decimal "
                                  "number")
        try:
            root = base64.b64decode(root_text, validate=True)
        except (binascii.Error, ValueError):
            root = b""
        if len(root) != 32:
            raise CheckpointError("checkpoint root hash is not 32 base64-encoded bytes")
        if not sigs.endswith("\n"):
            raise CheckpointError("checkpoint note does not end with a newline")
        signatures = []
        for line in sigs[:-1].split("\n"):
            if not line.startswith(SIG_PREFIX):
                raise CheckpointError(f"checkpoint signature line {line[:40]!r} does not start "
                                      "with an em dash")
            name, _, b64 = line[len(SIG_PREFIX):].partition(" ")
            try:
                raw = base64.b64decode(b64, validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if not name or not _NAME.match(name) or len(raw) < 5:
                raise CheckpointError(f"checkpoint signature line {line[:40]!r} is malformed")
            signatures.append(NoteSignature(name, raw[:4], raw[4:]))
        if not signatures:
            raise CheckpointError("checkpoint note has no signatures")
        if len(signatures) > MAX_SIGNATURES:
            raise CheckpointError(f"checkpoint note has more than {MAX_SIGNATURES} signatures")
        return cls(origin, int(size_text), root, tuple(signatures))


def sign_checkpoint(checkpoint: Checkpoint, consortium, signers: Sequence[str] | None = None
                    ) -> Checkpoint:
    """``checkpoint`` with a signature line by each of ``signers`` (default: every key held)."""
    text = checkpoint.text()
    sigs = []
    for name in (signers if signers is not None else consortium.ids):
        key = consortium.key(name)
        sigs.append(NoteSignature(name, key_id(name, public_key_hex(key)), key.sign(text)))
    return replace(checkpoint, signatures=tuple(sigs))


def verify_signatures(checkpoint: Checkpoint, keys: Mapping[str, str],
                      quorum: int | None = None) -> list[str]:
    """The institutions whose signatures verify; ``CheckpointError`` if fewer than ``quorum``
    (default: more than 2/3 of ``keys``), if a known institution's signature fails, or if a
    signature line names a known institution but was made by another key (that institution is
    named: the checkpoint comes from other keys than the ones trusted).
    """
    needed = quorum_size(len(keys)) if quorum is None else quorum
    text, good, other_key = checkpoint.text(), [], []
    for sig in checkpoint.signatures:
        key = keys.get(sig.name)
        if key is None:
            continue  # C2SP: unknown keys are ignored
        if sig.key_id != key_id(sig.name, key):
            other_key.append(sig.name)
            continue
        if not verify(key, sig.signature.hex(), b"", text):
            raise CheckpointError(f"checkpoint signature of {sig.name!r} does not verify")
        if sig.name not in good:
            good.append(sig.name)
    if other_key:
        names = ", ".join(repr(n) for n in other_key)
        raise CheckpointError(
            f"checkpoint is signed for {names} by another key than the trusted one "
            f"(trusted fingerprint {fingerprint(keys[other_key[0]])}): a checkpoint of another "
            "consortium or a forgery")
    if len(good) < needed:
        raise CheckpointError(f"checkpoint carries {len(good)} valid signatures of "
                              f"{len(keys)} institutions; more than 2/3 ({needed}) needed")
    return good


def checkpoint_of(block_hashes: Sequence[bytes], genesis_hash: str) -> Checkpoint:
    """The unsigned checkpoint of a chain whose stored block hashes are ``block_hashes``."""
    return Checkpoint(origin_of(genesis_hash), len(block_hashes), merkle_root(block_hashes))


@dataclass(frozen=True)
class Comparison:
    """How a ledger relates to a checkpoint.

    Attributes:
        status: ``"consistent"`` (same tree, or the ledger only grew: proof verified),
            ``"truncated"`` (fewer blocks than the checkpoint covers), ``"fork"`` (same size and
            another root, or the checkpoint's tree is not a prefix), ``"other ledger"`` (another
            origin: another genesis).
        message: One line for people.
        checkpoint_height: Last height the checkpoint covers.
        ledger_height: Last height of the ledger.
        proof_hashes: Length of the consistency proof checked (``None`` if none was).
    """

    status: str
    message: str
    checkpoint_height: int
    ledger_height: int
    proof_hashes: int | None = None

    @property
    def ok(self) -> bool:
        """True if the ledger is consistent with the checkpoint."""
        return self.status == "consistent"


def compare(checkpoint: Checkpoint, block_hashes: Sequence[bytes], genesis_hash: str | None
            ) -> Comparison:
    """Compares a ledger (its stored block hashes, in height order) with ``checkpoint``.

    Signatures are not checked here (see :func:`verify_signatures`).

    Example:
        >>> hashes = [b"h0", b"h1", b"h2"]
        >>> cp = checkpoint_of(hashes, "g")
        >>> compare(cp, hashes + [b"h3"], "g").status, compare(cp, hashes[:2], "g").status
        ('consistent', 'truncated')
    """
    n, m = checkpoint.size, len(block_hashes)
    cp_h, led_h = n - 1, m - 1
    if genesis_hash is None or checkpoint.origin != origin_of(genesis_hash):
        return Comparison("other ledger", f"the checkpoint is for another ledger (origin "
                          f"{checkpoint.origin[:40]}...; this ledger's genesis is "
                          f"{str(genesis_hash)[:16]}): a fork from genesis or a re-forged "
                          "ledger", cp_h, led_h)
    if m < n:
        return Comparison("truncated", f"TRUNCATED: the checkpoint covers heights 0..{cp_h} "
                          f"({n} blocks) but the ledger ends at height {led_h}; blocks "
                          f"{m}..{cp_h} are missing", cp_h, led_h)
    root = merkle_root(block_hashes)
    if m == n:
        if root == checkpoint.root:
            return Comparison("consistent", f"consistent with the checkpoint at height {cp_h} "
                              "(same tree head)", cp_h, led_h, 0)
        return Comparison("fork", f"FORK at height {cp_h}: the checkpoint and the ledger both "
                          f"cover {n} blocks with different roots "
                          f"({checkpoint.root.hex()[:16]} vs {root.hex()[:16]}); history at or "
                          f"below height {cp_h} was rewritten", cp_h, led_h)
    if n == 0:
        return Comparison("consistent", "the checkpoint covers no blocks", cp_h, led_h, 0)
    proof = consistency_proof(block_hashes, n)
    if verify_consistency(proof, checkpoint.root, root, n, m):
        return Comparison("consistent", f"consistent with the checkpoint at height {cp_h}: the "
                          f"ledger grew to height {led_h} (RFC 9162 consistency proof of "
                          f"{len(proof.path)} hashes verified)", cp_h, led_h, len(proof.path))
    return Comparison("fork", f"FORK: the ledger's first {n} blocks (heights 0..{cp_h}) do not "
                      f"hash to the checkpoint's root; history at or below height {cp_h} was "
                      f"rewritten (the ledger now ends at height {led_h})", cp_h, led_h,
                      len(proof.path))


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Reads and parses a checkpoint file; ``CheckpointError`` names the file."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as err:
        raise CheckpointError(f"{p}: cannot read checkpoint: {err.strerror or err}") from None
    if len(data) > 64 * 1024:
        raise CheckpointError(f"{p}: {len(data)} bytes is too large for a checkpoint note")
    try:
        return Checkpoint.parse(data)
    except CheckpointError as err:
        raise CheckpointError(f"{p}: not a checkpoint note: {err}") from None


def write_checkpoint(path: str | os.PathLike, checkpoint: Checkpoint) -> Path:
    """Writes a checkpoint note atomically (temporary file, fsync, rename)."""
    from efl_toolkit.atomic import write_text_atomic

    return write_text_atomic(path, checkpoint.to_note())
