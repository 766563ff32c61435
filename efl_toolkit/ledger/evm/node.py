"""Talking to an EVM node: connect (in-process py-evm or any JSON-RPC URL), institution keys,
signed transactions, and turning every failure into the ledger's own errors.

* :func:`connect`: ``None`` gives an in-process chain (``web3[tester]``, py-evm); a URL gives an
  HTTP provider with a short timeout, checked at once: an unreachable URL fails within seconds
  naming the URL.
* :class:`Keys`: one secp256k1 key per institution plus the consortium admin's (eth-account),
  stored as JSON (mode 0600) beside the ledger, like the embedded ledger's keystore. Simulation
  only: in a real consortium every institution keeps its own key on its own machine.
* :class:`Sender`: signs a contract call with the institution's own key, sends the raw
  transaction and waits for the receipt. A revert (whichever exception the provider raises, or a
  receipt with status 0) becomes :class:`RevertedCall` carrying the contract's reason code; a
  node that stops answering becomes :class:`~efl_toolkit.ledger.errors.LedgerError` naming the
  URL and the last confirmed height.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from efl_toolkit.atomic import write_json_atomic
from efl_toolkit.ledger.errors import LedgerError

#: Gas limit of every call (no estimate round trip); the largest commit uses far less.
GAS = 3_000_000
#: Seconds an HTTP request to the node may take before the node counts as unreachable.
RPC_TIMEOUT = 3.0
#: Reason codes the contract reverts with (see ``Registry.vy``).
REASONS = ("already registered", "not a member", "already approved", "duplicate version",
           "unknown parent", "foreign parent", "round exists", "unknown round version",
           "round never started", "round closed")


class RevertedCall(Exception):
    """The contract refused a call; ``code`` is one of :data:`REASONS` (or the raw text)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def reason_code(error: BaseException | str) -> str | None:
    """The contract's reason code inside any provider's revert error text, or ``None``.

    Example:
        >>> reason_code("execution reverted: not a member")
        'not a member'
    """
    text = str(error)
    return next((code for code in REASONS if code in text), None)


def connect(url: str | None):
    """A connected ``Web3``: in-process py-evm when ``url`` is ``None``, else JSON-RPC over HTTP.

    Raises:
        LedgerError: the node at ``url`` does not answer within :data:`RPC_TIMEOUT` seconds
            (the message names the URL), or ``web3`` is not installed.
    """
    try:
        from web3 import EthereumTesterProvider, Web3
    except ImportError:
        raise LedgerError("the EVM backend needs web3: pip install 'efl_toolkit[evm]'") from None
    if url is None:
        return Web3(EthereumTesterProvider())
    if not url.startswith(("http://", "https://")):
        raise LedgerError(f"EVM node URL must start with http:// or https://, got {url!r}")
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": RPC_TIMEOUT},
                                exception_retry_configuration=None))  # fail fast, say why
    try:
        w3.eth.chain_id  # noqa: B018 - the first request proves the node answers
    except Exception as err:  # requests/OSError/RPC errors: all mean "no usable node here"
        text = str(err)
        why = ("connection refused" if "refused" in text.lower() else
               f"no answer within {RPC_TIMEOUT:g} s" if "timed out" in text.lower() else
               f"{type(err).__name__}: {text[:160]}")
        raise LedgerError(f"cannot reach the EVM node at {url} ({why})") from None
    return w3


class Keys:
    """The admin's and each institution's private keys (``eth_account`` accounts).

    Args:
        admin: Hex private key of the consortium admin (deploys, registers).
        institutions: ``{institution id: hex private key}``.
    """

    def __init__(self, admin: str, institutions: dict[str, str]) -> None:
        from eth_account import Account

        self.admin = Account.from_key(admin)
        self.accounts = {name: Account.from_key(key) for name, key in institutions.items()}

    @classmethod
    def generate(cls, institutions: Iterable[str]) -> Keys:
        """Fresh random keys for the admin and every institution."""
        return cls(os.urandom(32).hex(), {name: os.urandom(32).hex() for name in institutions})

    def add(self, institution: str) -> str:
        """A fresh key for ``institution`` (kept here, not registered); returns its address."""
        from eth_account import Account

        self.accounts[institution] = Account.from_key(os.urandom(32).hex())
        return self.accounts[institution].address

    def save(self, path: str | os.PathLike) -> Path:
        """Writes the keys as JSON readable by the owner only (0600)."""
        data = {"admin": self.admin.key.hex(),
                "institutions": {n: a.key.hex() for n, a in self.accounts.items()}}
        out = write_json_atomic(path, data)
        os.chmod(out, 0o600)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> Keys:
        """Reads keys written by :meth:`save` (``LedgerError`` if unreadable)."""
        try:
            data = json.loads(Path(path).read_text("utf-8"))
            return cls(data["admin"], data["institutions"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise LedgerError(f"{path}: not an EVM keystore ({err})") from None


class Sender:
    """Signs and sends contract calls; tracks nonces and the last confirmed block.

    Args:
        w3: A connected ``Web3``.
        where: What to name in errors (the node URL, or ``in-process chain``).
    """

    def __init__(self, w3: Any, where: str) -> None:
        self.w3, self.where = w3, where
        self.confirmed = -1  # the last block this process saw a receipt in
        with self.rpc():
            self.chain_id = w3.eth.chain_id
            self.gas_price = int(w3.eth.gas_price) * 2  # 0 on a free-gas consortium chain
            self.confirmed = w3.eth.block_number
        self._nonces: dict[str, int] = {}

    def rpc(self):
        """A context manager turning a lost connection into one clear ``LedgerError``."""
        return _NodeErrors(self)

    def fund(self, addresses: Iterable[str], wei: int = 10**20) -> None:
        """Gives each address ``wei`` from the node's first unlocked account (a development
        node: eth-tester, Anvil); on a node without unlocked accounts (a consortium chain whose
        accounts are funded, or free gas) nothing is sent."""
        with self.rpc():
            if not self.w3.eth.accounts:
                return
            funder = self.w3.eth.accounts[0]
            hashes = [self.w3.eth.send_transaction({"from": funder, "to": a, "value": wei})
                      for a in addresses if self.w3.eth.get_balance(a) < wei // 10]
            for tx_hash in hashes:
                self._confirm(self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30))

    def send(self, account: Any, call: Any) -> Any:
        """Signs ``call`` (a contract function call or constructor) with ``account``, sends it
        and returns the receipt.

        Raises:
            RevertedCall: the contract refused it (reason code).
            LedgerError: the node stopped answering (names the last confirmed height).
        """
        with self.rpc():
            nonce = self._nonces.get(account.address)
            if nonce is None:
                nonce = self.w3.eth.get_transaction_count(account.address, "pending")
            try:
                tx = call.build_transaction({"from": account.address, "nonce": nonce,
                                             "gas": GAS, "gasPrice": self.gas_price,
                                             "chainId": self.chain_id})
                raw = account.sign_transaction(tx).raw_transaction
                tx_hash = self.w3.eth.send_raw_transaction(raw)
            except _connection_errors():
                raise
            except Exception as err:  # a revert (any provider's error class) or a refusal
                code = reason_code(err)
                if code is None:
                    raise LedgerError(f"the EVM node at {self.where} refused the transaction "
                                      f"({type(err).__name__}: {str(err)[:200]})") from None
                raise RevertedCall(code) from None
            self._nonces[account.address] = nonce + 1
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30,
                                                               poll_latency=0.02)
            self._confirm(receipt)
            if receipt["status"] != 1:
                raise RevertedCall(self._why(account, call))
            return receipt

    def _why(self, account: Any, call: Any) -> str:
        """Replays a failed call (nothing changed since: the state it failed on) for its reason."""
        try:
            call.call({"from": account.address})
        except Exception as err:
            return reason_code(err) or str(err)[:200]
        return "reverted (no reason given)"

    def _confirm(self, receipt: Any) -> None:
        self.confirmed = max(self.confirmed, int(receipt["blockNumber"]))


_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError)


def _connection_errors() -> tuple[type[BaseException], ...]:
    try:
        import requests
        from web3.exceptions import ProviderConnectionError, TimeExhausted
    except ImportError:
        return _CONNECTION_ERRORS
    return (*_CONNECTION_ERRORS, requests.RequestException, ProviderConnectionError,
            TimeExhausted)


class _NodeErrors:
    def __init__(self, sender: Sender) -> None:
        self.sender = sender

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, err, tb) -> bool:
        if err is not None and isinstance(err, _connection_errors()):
            raise LedgerError(
                f"the EVM node at {self.sender.where} stopped answering ({type(err).__name__}); "
                f"last confirmed height {self.sender.confirmed}") from None
        return False
