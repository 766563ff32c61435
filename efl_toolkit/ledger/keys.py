"""Institution keys for a local simulation: one Ed25519 keypair per institution.

.. note:: A real deployment keeps each private key AT its institution (an HSM, a smart card, a
   key vault) and only ever shares signatures. :class:`Consortium` holds all the keys in one
   process so a notebook can play every institution; the keystore directory it can write
   (``<ledger>.keys/``, files readable by the owner only) is for that simulation only. The
   ledger file itself holds only public keys, so anyone can verify it without any secret.

Example:
    >>> consortium = Consortium.generate(["hospital-a", "hospital-b", "clinic-c"], seed=0)
    >>> consortium.ids
    ('hospital-a', 'hospital-b', 'clinic-c')
    >>> len(consortium.public_keys()["hospital-a"])
    64
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from efl_toolkit.ledger.block import Vote
from efl_toolkit.ledger.crypto import VOTE_DOMAIN, private_key_from_seed, public_key_hex, sign
from efl_toolkit.ledger.errors import LedgerError
from efl_toolkit.ledger.transactions import (
    INSTITUTION_ID,
    NO_CHAIN,
    Transaction,
    sign_transaction,
)

MEMBERS_FILE = "members.json"


def keystore_path(ledger_path: str | os.PathLike) -> Path:
    """The default keystore directory beside a ledger: ``<ledger>.keys``.

    Example:
        >>> keystore_path("out/ledger.sqlite").name
        'ledger.sqlite.keys'
    """
    p = Path(ledger_path)
    return p.with_name(p.name + ".keys")


@dataclass(frozen=True)
class Consortium:
    """The institutions' private keys, in membership order (simulation only, see module note).

    Attributes:
        keys: Institution id -> Ed25519 private key, in the order they join the genesis block.
    """

    keys: Mapping[str, Ed25519PrivateKey]

    @classmethod
    def generate(cls, ids: Sequence[str], seed: int | None = None) -> Consortium:
        """New keys for ``ids``; with a ``seed`` the keys are reproducible (tests, classes).

        Example:
            >>> a = Consortium.generate(["h1"], seed=1).public_keys()
            >>> a == Consortium.generate(["h1"], seed=1).public_keys()
            True
        """
        if len(set(ids)) != len(ids) or not ids:
            raise LedgerError(f"institution ids must be distinct and non-empty: {list(ids)}")
        for inst in ids:
            if not INSTITUTION_ID.match(inst):
                raise LedgerError(f"bad institution id {inst!r}: use letters, digits, . _ -")
        keys = {}
        for inst in ids:
            if seed is None:
                raw = secrets.token_bytes(32)
            else:
                raw = hashlib.sha256(f"efl-ledger demo key/{seed}/{inst}".encode()).digest()
            keys[inst] = private_key_from_seed(raw)
        return cls(keys)

    @property
    def ids(self) -> tuple[str, ...]:
        """Institution ids in membership order."""
        return tuple(self.keys)

    def public_keys(self) -> dict[str, str]:
        """Institution id -> public key (hex)."""
        return {inst: public_key_hex(key) for inst, key in self.keys.items()}

    def key(self, institution: str) -> Ed25519PrivateKey:
        """The private key of ``institution``; ``LedgerError`` if this consortium lacks it."""
        try:
            return self.keys[institution]
        except KeyError:
            raise LedgerError(
                f"unknown institution {institution!r}: the consortium has {list(self.keys)}"
            ) from None

    def sign(self, sender: str, tx_type: str, nonce: int, payload: dict,
             chain: str = NO_CHAIN) -> Transaction:
        """A transaction signed by ``sender``'s key for the ledger whose genesis is ``chain``."""
        return sign_transaction(self.key(sender), tx_type, sender, nonce, payload, chain)

    def vote(self, signer: str, block_hash: str) -> Vote:
        """``signer``'s vote (signature) over ``block_hash``."""
        return Vote(signer, sign(self.key(signer), VOTE_DOMAIN, bytes.fromhex(block_hash)))

    def save(self, directory: str | os.PathLike) -> Path:
        """Writes one ``<id>.key`` file per institution (mode 0600) and the member order.

        Example:
            >>> import tempfile
            >>> c = Consortium.generate(["h1", "h2"], seed=0)
            >>> d = c.save(tempfile.mkdtemp() + "/keys")
            >>> Consortium.load(d).public_keys() == c.public_keys()
            True
        """
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        for inst, key in self.keys.items():
            raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
            path = d / f"{inst}.key"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(raw.hex() + "\n")
        (d / MEMBERS_FILE).write_text(json.dumps(list(self.keys)) + "\n")
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Consortium:
        """Reads a keystore written by :meth:`save`; ``LedgerError`` names a missing file."""
        d = Path(directory)
        try:
            ids = json.loads((d / MEMBERS_FILE).read_text())
            keys = {inst: private_key_from_seed(bytes.fromhex((d / f"{inst}.key").read_text()))
                    for inst in ids}
        except (OSError, ValueError, TypeError) as err:
            raise LedgerError(f"cannot read keystore {d}: {err}") from None
        return cls(keys)
