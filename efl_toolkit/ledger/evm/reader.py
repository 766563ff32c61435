"""The read side of the EVM backend: blocks, checks, verification, the version graph, search,
all answered from the backend's :class:`~efl_toolkit.ledger.evm.index.EventIndex` and cached
block headers (the explorer's :class:`~efl_toolkit.ledger.backend.LedgerReader`).

Verification (:meth:`ChainReader.verify`) trusts nothing it indexed: it re-reads the receipt of
every indexed transaction and decodes its events again, compares the contract's own event
counter with the index (a missing event is a gap), checks that each indexed block is still the
chain's block at that height (same hash: no reorganisation or other chain), and hashes every
committed version's artifact in the content-addressed store (a modified file is reported with
the height of its commit). What the chain itself guarantees (signatures, consensus, hash links)
is the node's job: a proof-of-authority consortium's validators, or a single Anvil process.
"""

from __future__ import annotations

from typing import Any

from eth_utils import event_abi_to_log_topic

from efl_toolkit.ledger.evm.index import Entry, EventIndex, hex32
from efl_toolkit.ledger.records import (
    BlockRow,
    BlockView,
    CheckResult,
    InstitutionView,
    SearchHit,
    TxView,
    VerifyReport,
    VersionNode,
    report_from_problems,
    version_counts,
    version_graph,
)
from efl_toolkit.ledger.state import Where

CHECKS = ("block hash", "hash link", "events", "artifact hash")


class ChainReader:
    """Reads one registry contract through its event index (subclassed by ``EvmBackend``).

    Args:
        w3: A connected ``Web3``.
        contract: The registry contract (web3 contract object).
        index: The event index to fill.
        sender: The :class:`~efl_toolkit.ledger.evm.node.Sender` (its ``rpc()`` maps a lost node).
        deploy_block: The contract's deployment block (no events before it).
    """

    def __init__(self, w3: Any, contract: Any, index: EventIndex, sender: Any,
                 deploy_block: int) -> None:
        self.w3, self.contract, self.index, self.sender = w3, contract, index, sender
        self.deploy_block = self.synced = deploy_block
        self._headers: dict[int, dict] = {}
        self._topics = {event_abi_to_log_topic(abi): abi["name"] for abi in contract.abi
                        if abi["type"] == "event"}

    # ---- indexing ----------------------------------------------------------------------------
    def absorb(self, receipt: Any) -> None:
        """Indexes a receipt's events (first any blocks other writers added before it)."""
        height = int(receipt["blockNumber"])
        if height - 1 > self.synced:
            self.sync(height - 1)
        self._apply_logs(receipt["logs"])
        self.synced = max(self.synced, height)

    def sync(self, to: int | None = None) -> None:
        """Indexes the contract's events in blocks after the last indexed one, up to ``to``
        (default: the chain head) with one ``get_logs`` call."""
        with self.sender.rpc():
            to = self.w3.eth.block_number if to is None else to
            if to > self.synced:
                self._apply_logs(self.w3.eth.get_logs({
                    "address": self.contract.address, "fromBlock": self.synced + 1,
                    "toBlock": to}))
                self.synced = to

    def _decode(self, logs: Any) -> list[tuple[str, dict, Where, str]]:
        out = []
        for log in sorted(logs, key=lambda x: (x["blockNumber"], x["logIndex"])):
            name = self._topics.get(bytes(log["topics"][0])) if log["topics"] else None
            if name is None or log["address"] != self.contract.address:
                continue
            args = dict(self.contract.events[name]().process_log(log)["args"])
            height = int(log["blockNumber"])
            where = Where(height, int(log["transactionIndex"]), hex32(log["transactionHash"]),
                          int(self._header(height)["timestamp"]) * 1000)
            out.append((name, args, where, hex32(log["blockHash"])))
        return out

    def _apply_logs(self, logs: Any) -> None:
        for name, args, where, block_hash in self._decode(logs):
            self.index.apply(name, args, where, block_hash)

    def _header(self, height: int) -> dict:
        if height not in self._headers:
            with self.sender.rpc():
                block = self.w3.eth.get_block(height)
            self._headers[height] = {"hash": hex32(block["hash"]),
                                     "parent": hex32(block["parentHash"]),
                                     "timestamp": int(block["timestamp"]),
                                     "miner": str(block.get("miner", "?")),
                                     "root": hex32(block["transactionsRoot"])}
        return self._headers[height]

    # ---- LedgerReader ------------------------------------------------------------------------
    def height(self) -> int:
        """The chain head's height (new events of other writers are indexed first)."""
        self.sync()
        return self.synced

    def head(self) -> str:
        """The chain head's block hash."""
        return self._header(self.height())["hash"]

    def _row(self, height: int) -> BlockRow:
        h = self._header(height)
        return BlockRow(height=height, hash=h["hash"], proposer=h["miner"],
                        n_transactions=len(self.index.entries.get(height, [])),
                        timestamp=float(h["timestamp"]))

    def blocks(self, start: int, stop: int) -> list[BlockRow]:
        """Rows of heights ``start <= h < stop`` (``n_transactions``: this registry's events)."""
        return [self._row(h) for h in range(max(start, 0), min(stop, self.height() + 1))]

    def block(self, height: int) -> BlockView:
        """One block with this registry's events decoded (``KeyError`` for a missing height)."""
        if not 0 <= height <= self.height():
            raise KeyError(f"no block {height}: the chain's height is {self.synced}")
        h = self._header(height)
        txs = tuple(TxView(index=i, tx_hash=e.where.tx_id, type=e.type, sender=e.sender,
                           payload=e.payload, signature_ok=None)
                    for i, e in enumerate(self.index.entries.get(height, [])))
        return BlockView(row=self._row(height), prev_hash=h["parent"], merkle_root=h["root"],
                         transactions=txs, header={"contract": self.contract.address,
                                                   "signatures": "checked by the node"})

    def check_block(self, height: int) -> list[CheckResult]:
        """``block hash`` (still the indexed block), ``hash link`` (parent hash), ``events``
        (receipts re-read and decoded match the index), ``artifact hash`` (stored bytes hash to
        each committed version)."""
        h, entries = self._header(height), self.index.entries.get(height, [])
        indexed = self.index.block_hashes.get(height, h["hash"])
        results = [CheckResult("block hash", indexed == h["hash"], "" if indexed == h["hash"]
                               else f"indexed block {indexed[:12]} is now {h['hash'][:12]} on "
                                    "the chain (reorganised or another chain)")]
        link = height == 0 or self._header(height - 1)["hash"] == h["parent"]
        results.append(CheckResult("hash link", link, "" if link else
                                   f"parent hash {h['parent'][:12]} is not block {height - 1}"))
        results.append(self._check_events(entries))
        problems = [self.artifacts.problem(e.payload["version"]) for e in entries
                    if e.type == "MODEL_COMMIT"]
        problems = [p for p in problems if p]
        results.append(CheckResult("artifact hash", not problems, "; ".join(problems)))
        return results

    def _check_events(self, entries: list[Entry]) -> CheckResult:
        with self.sender.rpc():
            logs = [log for tx in dict.fromkeys(e.where.tx_id for e in entries)
                    for log in self.w3.eth.get_transaction_receipt("0x" + tx)["logs"]]
        fresh = EventIndex()
        fresh.members, fresh.rounds = dict(self.index.members), dict(self.index.rounds)
        decoded = self._decode(logs)
        seen = [(fresh.fold(n, a, w)[0], int(a["seq"])) for n, a, w, _ in decoded]
        expected = [(e.payload, e.seq) for e in entries]
        if seen == expected:
            return CheckResult("events", True)
        return CheckResult("events", False, f"the chain's receipts hold {len(seen)} events that "
                           f"differ from the {len(expected)} indexed")

    def verify(self) -> VerifyReport:
        """Re-reads every indexed receipt, compares the contract's event count, checks block
        hashes and links and every artifact; failures come with their heights."""
        height = self.height()
        problems: list[tuple[int, str, str]] = list((h, "events", r) for h, r in self.index.gaps)
        with self.sender.rpc():
            counted = int(self.contract.functions.n_events().call())
        if counted != self.index.last_seq:
            problems.append((height, "events", f"the contract counts {counted} events, the "
                             f"index holds {self.index.last_seq}"))
        for h in sorted(self.index.entries):
            problems += [(h, r.name, r.reason) for r in self.check_block(h) if r.ok is False]
        return report_from_problems(height + 1, self._header(height)["hash"], problems)

    def institutions(self) -> list[InstitutionView]:
        """Registered institutions (address as public key), in registration order."""
        counts = version_counts(self.index.versions.values())
        return [InstitutionView(id=m.institution, public_key=m.public_key,
                                registered_height=m.height,
                                n_model_versions=counts.get(m.institution, 0),
                                details={"name": m.name, "address": m.public_key})
                for m in self.index.members.values()]

    def model_versions(self) -> list[VersionNode]:
        """The version graph (model commits and rounds), in height order."""
        return version_graph(self.index.versions.values(), self.index.rounds.values())

    def find(self, prefix: str) -> list[SearchHit]:
        """Blocks, transactions, versions and rounds whose hash (or round id) starts with
        ``prefix`` (``0x`` and case ignored)."""
        key = prefix.lower().removeprefix("0x")
        if not key:
            return []
        hits = [SearchHit("block", h, self._header(h)["hash"], f"block {h}")
                for h in range(self.height() + 1) if self._header(h)["hash"].startswith(key)]
        for height, entries in sorted(self.index.entries.items()):
            hits += [SearchHit("tx", height, e.where.tx_id, f"{e.type} from {e.sender}, block "
                               f"{height}") for e in entries if e.where.tx_id.startswith(key)]
        hits += [SearchHit("version", v.where.height, v.version,
                           f"{v.institution} {v.model_id} ({v.architecture})")
                 for v in self.index.versions.values() if v.version.startswith(key)]
        hits += [SearchHit("round", r.started.height, r.round_id, f"round {r.round_id}, started "
                           f"in block {r.started.height}")
                 for r in self.index.rounds.values() if r.round_id.lower().startswith(key)]
        return hits
