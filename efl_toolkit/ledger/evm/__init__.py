"""The ledger on an EVM chain: a Vyper registry contract, a web3.py backend, an Anvil launcher.

=========  ===================================================================================
contract   ``Registry.vy`` (package data) compiled by the ``vyper`` package, cached by hash
node       connect (in-process py-evm or a JSON-RPC URL), keys, signed sends, error mapping
index      the backend's own event index (members, versions, rounds, per-block entries)
reader     blocks, checks, verification, version graph, search (the explorer's read side)
backend    EvmBackend: create / attach, the writes, registry queries
anvil      start and stop an Anvil node from the ``@foundry-rs/anvil`` npm package
=========  ===================================================================================

Needs the ``evm`` extra: ``pip install 'efl_toolkit[evm]'`` (``web3[tester]``, ``vyper``).
"""

from efl_toolkit.ledger.evm.anvil import Anvil, find_anvil
from efl_toolkit.ledger.evm.backend import DESCRIPTOR, KEYSTORE, EvmBackend

__all__ = ["DESCRIPTOR", "KEYSTORE", "Anvil", "EvmBackend", "find_anvil"]
