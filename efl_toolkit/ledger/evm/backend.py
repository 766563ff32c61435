"""The EVM backend: the model registry and audit trail as a Vyper contract on any
Ethereum-compatible chain (py-evm in process, Anvil, Besu/Geth proof-of-authority...).

The contract (``Registry.vy``) enforces the rules; this class signs each write with the
institution's own key, folds every receipt's events into its own :class:`EventIndex` (so queries
never scan the chain), and maps every revert to the embedded ledger's
:class:`~efl_toolkit.ledger.errors.TransactionRejected` (same check, same message). The payload
schema (numbers only, no NaN...) is checked first with the embedded ledger's own
:func:`~efl_toolkit.ledger.transactions.validate_payload`. Registry queries (``get``, ``history``,
``lineage``, ``checkout``...) are :class:`~efl_toolkit.ledger.registry.ModelRegistry`'s, read from
the index; the read side is :class:`~efl_toolkit.ledger.evm.reader.ChainReader`'s.

Example:
    >>> import tempfile
    >>> chain = EvmBackend.create(None, ["a", "b"], tempfile.mkdtemp())  # in-process chain
    >>> v1 = chain.model_commit("a", "cnn", b"w1", None, "cnn", {"acc": 0.7}, {})
    >>> chain.model_commit("b", "cnn", b"w2", v1, "cnn", {}, {})
    Traceback (most recent call last):
    ...
    efl_toolkit.ledger.errors.TransactionRejected: transaction rejected (parent version): \
parent 60c5590f72ee belongs to a/cnn, not b/cnn
    >>> chain.verify().ok
    True
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from efl_toolkit.ledger.artifacts import ArtifactStore
from efl_toolkit.ledger.audit import Audit
from efl_toolkit.ledger.crypto import canonical_json, sha256_hex
from efl_toolkit.ledger.errors import LedgerError, TransactionRejected
from efl_toolkit.ledger.evm.contract import compiled
from efl_toolkit.ledger.evm.index import ZERO, EventIndex
from efl_toolkit.ledger.evm.node import Keys, RevertedCall, Sender, connect
from efl_toolkit.ledger.evm.reader import ChainReader
from efl_toolkit.ledger.registry import ModelRegistry
from efl_toolkit.ledger.state import Member, Round
from efl_toolkit.ledger.transactions import (
    Transaction,
    TxType,
    normalize_json,
    validate_payload,
)

DESCRIPTOR = "ledger.evm.json"
KEYSTORE = "ledger.evm.keys.json"


def _b32(hex_digest: str | None) -> bytes:
    return bytes.fromhex(hex_digest or ZERO)


def _json(value: Any) -> str:
    return canonical_json(normalize_json(value, "payload")).decode("utf-8")


class EvmBackend(ChainReader, ModelRegistry):
    """:class:`~efl_toolkit.ledger.backend.LedgerBackend` on an EVM chain.

    Use :meth:`create` (deploy a new registry) or :meth:`attach` (an existing deployment).
    """

    kind = "evm"

    def __init__(self, w3: Any, address: str, keys: Keys | None, artifacts: str | os.PathLike,
                 url: str | None, deploy_block: int = 0, node: Any = None) -> None:
        self.url, self.node, self.keys = url, node, keys
        self.sender = Sender(w3, url or "in-process chain")
        self.contract = w3.eth.contract(address=address, abi=compiled().abi)
        ChainReader.__init__(self, w3, self.contract, EventIndex(), self.sender, deploy_block)
        self.artifacts = ArtifactStore(artifacts)
        ModelRegistry.__init__(self, _IndexLedger(self))

    # ---------------------------------------------------------------- set-up
    @classmethod
    def create(cls, url: str | None, institutions: list[str], out_dir: str | os.PathLike, *,
               node: Any = None) -> EvmBackend:
        """Deploys a registry, registers ``institutions`` (by the admin), writes the keystore
        and the descriptor (``ledger.evm.json``: URL, contract address, artifact folder) into
        ``out_dir``.

        Args:
            url: JSON-RPC URL of the node, or ``None`` for an in-process chain.
            institutions: Institution ids, each given its own fresh key.
            out_dir: Folder for ``artifacts/``, the keystore and the descriptor.
            node: An :class:`~efl_toolkit.ledger.evm.anvil.Anvil` to stop on :meth:`close`.

        Raises:
            LedgerError: the node is unreachable or stops answering.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        w3, keys = connect(url), Keys.generate(institutions)
        sender = Sender(w3, url or "in-process chain")
        sender.fund([keys.admin.address, *(a.address for a in keys.accounts.values())])
        contract = compiled()
        factory = w3.eth.contract(abi=contract.abi, bytecode=contract.bytecode)
        try:
            receipt = sender.send(keys.admin, factory.constructor())
        except RevertedCall as err:
            raise LedgerError(f"deploying the registry failed: {err.code}") from None
        keys.save(out / KEYSTORE)
        backend = cls(w3, receipt["contractAddress"], keys, out / "artifacts", url,
                      int(receipt["blockNumber"]), node)
        backend.sender._nonces = sender._nonces
        for name in institutions:
            backend.register_institution(name)
        backend.save_descriptor(out / DESCRIPTOR)
        return backend

    @classmethod
    def attach(cls, descriptor: str | os.PathLike) -> EvmBackend:
        """Opens the deployment a descriptor names (its keystore too, if it is beside it).

        Raises:
            LedgerError: unreadable descriptor, in-process chain (gone with its process),
                unreachable node, or no registry contract at the address.
        """
        path = Path(descriptor)
        try:
            data = json.loads(path.read_text("utf-8"))
            url, address = data["rpc_url"], data["contract"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise LedgerError(f"{path}: not an EVM ledger descriptor ({err})") from None
        if url is None:
            raise LedgerError(f"{path}: its chain ran inside the process that wrote it and is "
                              "gone; run with --ledger evm:RPC_URL to keep a chain")
        keystore = path.parent / data.get("keystore", KEYSTORE)
        return cls.connect(url, address, path.parent / data.get("artifacts", "artifacts"),
                           Keys.load(keystore) if keystore.is_file() else None,
                           int(data.get("deploy_block", 0)))

    @classmethod
    def connect(cls, url: str, address: str, artifacts: str | os.PathLike,
                keys: Keys | None = None, deploy_block: int = 0) -> EvmBackend:
        """Opens the registry at ``address`` on the node at ``url`` and indexes its events.

        Raises:
            LedgerError: unreachable node (named), or no contract at the address.
        """
        w3 = connect(url)
        try:
            address = w3.to_checksum_address(address)
            code = w3.eth.get_code(address)
        except ValueError:
            raise LedgerError(f"{address!r} is not a contract address") from None
        if not code:
            raise LedgerError(f"no contract at {address} on {url}")
        backend = cls(w3, address, keys, artifacts, url, deploy_block)
        backend.sync()
        return backend

    def save_descriptor(self, path: str | os.PathLike) -> Path:
        """Writes what :meth:`attach` needs (URL, contract address, artifact folder)."""
        path = Path(path)
        path.write_text(json.dumps(self.describe(relative_to=path.parent), indent=2) + "\n")
        return path

    def describe(self, relative_to: Path | None = None) -> dict:
        """``{"backend": "evm", "rpc_url", "contract", "chain_id", "deploy_block", ...}``."""
        artifacts = self.artifacts.directory
        if relative_to is not None and artifacts.parent == relative_to:
            artifacts = Path(artifacts.name)
        return {"backend": self.kind, "rpc_url": self.url, "contract": self.contract.address,
                "chain_id": self.sender.chain_id, "deploy_block": self.deploy_block,
                "artifacts": str(artifacts), "keystore": KEYSTORE,
                "source_sha256": compiled().source_sha256}

    def close(self) -> None:
        """Stops the node this backend was given to stop (the chain is otherwise untouched)."""
        if self.node is not None:
            self.node.stop()

    # ---------------------------------------------------------------- writes
    def _account(self, institution: str):
        account = self.keys.accounts.get(institution) if self.keys else None
        if account is None:
            raise TransactionRejected("membership", f"unknown institution {institution!r}: "
                                      f"members are {self._member_names()}")
        return account

    def _member_names(self) -> list[str]:
        return [m.institution for m in self.members()]

    def _transact(self, sender: str, tx_type: str, payload: dict, make_call: Any,
                  artifact: bytes | None = None) -> None:
        """Checks the payload as the embedded ledger does, stores ``artifact`` (content
        addressed: harmless if the call is then refused), builds the call (``make_call()``),
        signs it with the sender's key, sends it, indexes the receipt."""
        try:
            payload = normalize_json(payload, "payload")
        except ValueError as err:
            raise TransactionRejected("payload", str(err)) from None
        validate_payload(Transaction(tx_type, sender, 0, payload, ""))
        account = self._account(sender)
        if artifact is not None:
            self.artifacts.put(artifact, payload["version"])
        try:
            receipt = self.sender.send(account, make_call())
        except RevertedCall as err:
            raise self._rejection(err.code, sender, payload) from None
        self.absorb(receipt)

    def _rejection(self, code: str, sender: str, p: dict) -> TransactionRejected:
        """The embedded ledger's error for the contract's reason ``code`` (state.py's wording)."""
        rid = p.get("round_id")
        if code == "not a member":
            return TransactionRejected("membership", f"unknown institution {sender!r}: members "
                                       f"are {self._member_names()}")
        if code == "already registered":
            return TransactionRejected("membership", f"{p['institution']!r} is already "
                                       "registered")
        if code == "duplicate version":
            return TransactionRejected("parent version", f"version {p['version'][:12]} is "
                                       "already committed")
        if code == "unknown parent":
            return TransactionRejected("parent version", f"parent {p['parent'][:12]} is not a "
                                       "committed version")
        if code == "foreign parent":
            record = self.index.versions.get(p["parent"])
            owner = f"{record.institution}/{record.model_id}" if record else "another model"
            return TransactionRejected("parent version", f"parent {p['parent'][:12]} belongs to "
                                       f"{owner}, not {p['institution']}/{p['model_id']}")
        if code == "round exists":
            return TransactionRejected("round", f"round {rid!r} already exists")
        if code == "unknown round version":
            unknown = next((v for v in p["versions"] if v not in self.index.versions), "?")
            return TransactionRejected("round", f"round {rid!r} names unknown version "
                                       f"{unknown[:12]}")
        if code == "round never started":
            return TransactionRejected("round", f"round {rid!r} was never started")
        if code == "round closed":
            status = self.index.rounds[rid].status if rid in self.index.rounds else "closed"
            return TransactionRejected("round", f"round {rid!r} is already {status}")
        return TransactionRejected("contract", f"the registry contract refused it: {code}")

    def add_key(self, institution: str) -> str:
        """A fresh key for ``institution`` (funded on a development node, not registered:
        the contract still refuses its calls until it is); returns its address."""
        if self.keys is None:
            raise LedgerError("adding a key needs the keystore (ledger.evm.keys.json)")
        address = self.keys.add(institution)
        self.sender.fund([address])
        return address

    def register_institution(self, institution: str, name: str = "",
                             approver: str | None = None) -> None:
        """Registers ``institution`` (a key is made for it if it has none): by the admin, or as
        one approval of member ``approver`` (it joins once more than 2/3 of members approved).

        Raises:
            TransactionRejected: already registered, or the approver is not a member.
        """
        if self.keys is None:
            raise LedgerError("registering needs the keystore (ledger.evm.keys.json)")
        address = self.keys.accounts[institution].address if institution in \
            self.keys.accounts else self.add_key(institution)
        signer = self.keys.admin if approver is None else self._account(approver)
        call = self.contract.functions.register(address, name or institution)
        payload = {"institution": institution}
        try:
            receipt = self.sender.send(signer, call)
        except RevertedCall as err:
            raise self._rejection(err.code, approver or "admin", payload) from None
        self.absorb(receipt)

    def model_commit(self, institution: str, model_id: str, params_bytes: bytes,
                     parent: str | None, architecture: str, metrics: dict, data_summary: dict,
                     commit: bool = True) -> str:
        """Stores the parameters as an artifact and commits the version on chain (signed by
        ``institution``); returns the version (SHA-256 of the parameters).

        Raises:
            TransactionRejected: as on the embedded ledger (membership, parent version, payload).
        """
        version = sha256_hex(params_bytes)
        payload = {"institution": institution, "model_id": model_id, "version": version,
                   "parent": parent, "architecture": architecture, "metrics": metrics,
                   "data_summary": data_summary}
        f = self.contract.functions
        self._transact(institution, TxType.MODEL_COMMIT, payload, lambda: f.commit(
            _b32(version), _b32(parent), model_id, architecture, _json(metrics),
            _json(data_summary)), artifact=params_bytes)
        return version

    def seal(self) -> None:
        """Nothing to do: every call is already in a block when it returns."""

    def start_round(self, coordinator: str, round_id: str, versions: list[str],
                    protocol: dict, commit: bool = True) -> None:
        """Records a round over known versions (signed by ``coordinator``)."""
        payload = {"round_id": round_id, "versions": list(versions), "protocol": protocol}
        self._transact(coordinator, TxType.ROUND_START, payload,
                       lambda: self.contract.functions.start_round(
                           round_id, [_b32(v) for v in versions], _json(protocol)))

    def finish_round(self, sender: str, round_id: str, result_hash: str, metrics: dict,
                     commit: bool = True) -> None:
        """Closes an open round with the result's hash and metrics."""
        payload = {"round_id": round_id, "result_hash": result_hash, "metrics": metrics}
        self._transact(sender, TxType.ROUND_RESULT, payload,
                       lambda: self.contract.functions.finish_round(
                           round_id, _b32(result_hash), _json(metrics)))

    def fail_round(self, sender: str, round_id: str, reason: str, commit: bool = True) -> None:
        """Closes an open round as failed, with its reason."""
        payload = {"round_id": round_id, "reason": reason}
        self._transact(sender, TxType.ROUND_FAILED, payload,
                       lambda: self.contract.functions.fail_round(round_id, reason[:512]))

    def tag(self, version: str, name: str, commit: bool = True) -> None:
        """Not on the contract (tags stay an embedded-ledger feature)."""
        raise LedgerError("tags are not recorded by the EVM registry contract")

    # ---------------------------------------------------------------- registry queries
    def audit(self) -> Audit:
        """Audit queries (activity, commits, rounds of an institution, dependencies of a
        result), read from the event index."""
        self.sync()
        return Audit(self.ledger)

    def rounds(self) -> list[Round]:
        """Every round, in start order."""
        return list(self.index.rounds.values())

    def members(self) -> list[Member]:
        """Registered institutions, in registration order."""
        return list(self.index.members.values())


class _IndexLedger:
    """What :class:`ModelRegistry`'s and :class:`~efl_toolkit.ledger.audit.Audit`'s queries
    read (``state``, ``model_versions``, ``path``, ``artifacts``, ``height``, ``block``), served
    from the backend's event index."""

    def __init__(self, backend: EvmBackend) -> None:
        self.backend = backend
        self.state = backend.index
        self.artifacts = backend.artifacts
        self.path = f"{backend.url or 'in-process chain'} contract {backend.contract.address}"

    def model_versions(self, institution: str | None = None, model_id: str | None = None):
        return [v for v in self.state.versions.values()
                if institution in (None, v.institution) and model_id in (None, v.model_id)]

    @property
    def height(self) -> int:
        return self.backend.synced

    def block(self, height: int) -> SimpleNamespace:
        return SimpleNamespace(transactions=[
            SimpleNamespace(tx_id=e.where.tx_id, sender=e.sender, type=e.type, payload=e.payload)
            for e in self.state.entries.get(height, [])])


def open_chain(source: str) -> EvmBackend:
    """An EVM ledger from a descriptor path (``ledger.evm.json``) or
    ``evm:RPC_URL#CONTRACT_ADDRESS`` (artifacts then looked for in ``./artifacts``).

    Raises:
        LedgerError: a bad source, an unreachable node or no contract (one line each).
    """
    if source.startswith("evm:"):
        url, _, address = source.removeprefix("evm:").partition("#")
        if not address:
            raise LedgerError(f"{source!r}: name the contract, evm:RPC_URL#CONTRACT_ADDRESS")
        return EvmBackend.connect(url, address, "artifacts")
    return EvmBackend.attach(source)
