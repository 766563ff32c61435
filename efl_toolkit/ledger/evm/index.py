"""The EVM backend's own index of its events, keyed by block (queries never scan the chain).

eth-tester's ``get_logs`` slows down quadratically as the chain grows (19 s at 400 blocks was
measured), and a consortium node should not be asked for every log on every query either. The
backend decodes the events of each receipt it gets (or, when it attaches to an existing
deployment, of one ``get_logs`` sweep) and :meth:`EventIndex.apply` folds them into the same
records as the embedded ledger (:class:`~efl_toolkit.ledger.state.Member`, ``ModelVersion``,
``Round``), plus the per-block list of entries the explorer shows. The contract numbers its events
(``seq`` 1, 2, 3...), so a gap is noticed.

Example:
    >>> from efl_toolkit.ledger.state import Where
    >>> index = EventIndex()
    >>> index.apply("InstitutionRegistered", {"member": "0xA1", "name": "a", "by": "0xAD",
    ...             "seq": 1}, Where(3, 0, "ab" * 32, 1000), "cd" * 32)
    >>> index.members["0xA1"].institution, index.entries[3][0].type
    ('a', 'REGISTER_INSTITUTION')
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from efl_toolkit.ledger.state import Member, ModelVersion, Round, Where

ZERO = "00" * 32

#: Contract event -> the transaction type the embedded ledger gives the same record.
EVENT_TYPES = {"InstitutionRegistered": "REGISTER_INSTITUTION",
               "RegistrationApproved": "REGISTRATION_APPROVAL",
               "ModelCommitted": "MODEL_COMMIT", "RoundStarted": "ROUND_START",
               "RoundFinished": "ROUND_RESULT", "RoundFailed": "ROUND_FAILED"}


def hex32(value: bytes | str) -> str:
    """64 lowercase hex digits of a ``bytes32`` (no ``0x``)."""
    return value.hex() if isinstance(value, bytes | bytearray) else value.removeprefix("0x")


@dataclass(frozen=True)
class Entry:
    """One event of a block as the explorer shows it (``type`` as on the embedded ledger)."""

    where: Where
    type: str
    sender: str
    payload: dict
    seq: int


class EventIndex:
    """Members, versions, rounds and per-block entries, folded from decoded events."""

    def __init__(self) -> None:
        self.members: dict[str, Member] = {}  # address -> Member
        self.versions: dict[str, ModelVersion] = {}
        self.rounds: dict[str, Round] = {}
        self.tags: list = []  # the contract has no tags (ModelRegistry reads this list)
        self.tx_index: dict[str, Where] = {}  # transaction hash -> where (Audit reads this)
        self.entries: dict[int, list[Entry]] = {}  # block height -> entries, in log order
        self.block_hashes: dict[int, str] = {}
        self.last_seq = 0
        self.gaps: list[tuple[int, str]] = []  # (height, "event N missing") for verify

    def name_of(self, address: str) -> str:
        """The institution id registered for ``address`` (the address itself if none)."""
        member = self.members.get(address)
        return member.institution if member else address

    def address_of(self, institution: str) -> str | None:
        """The address registered for ``institution``, or ``None``."""
        return next((a for a, m in self.members.items() if m.institution == institution), None)

    def apply(self, event: str, args: dict[str, Any], where: Where, block_hash: str) -> None:
        """Folds one decoded event (``args`` as web3 decodes them) into the records."""
        seq = int(args["seq"])
        if seq != self.last_seq + 1:
            self.gaps.append((where.height, f"event {self.last_seq + 1} is missing "
                                            f"(next indexed event is {seq})"))
        self.last_seq = max(self.last_seq, seq)
        payload, sender = self.fold(event, args, where)
        self.entries.setdefault(where.height, []).append(
            Entry(where, EVENT_TYPES[event], sender, payload, seq))
        self.block_hashes[where.height] = block_hash
        self.tx_index.setdefault(where.tx_id, where)

    def fold(self, event: str, a: dict[str, Any], where: Where) -> tuple[dict, str]:
        """Updates the records for one event; returns (payload as the explorer shows it,
        sender id)."""
        if event == "InstitutionRegistered":
            self.members[a["member"]] = Member(a["name"], a["member"], a["name"], where.height)
            return {"institution": a["name"], "address": a["member"]}, self.name_of(a["by"])
        if event == "RegistrationApproved":
            return ({"address": a["member"], "approvals": a["approvals"]},
                    self.name_of(a["approver"]))
        if event == "ModelCommitted":
            parent = hex32(a["parent"])
            record = ModelVersion(hex32(a["version"]), self.name_of(a["institution"]),
                                  a["model_id"], None if parent == ZERO else parent,
                                  a["architecture"], json.loads(a["metrics"]),
                                  json.loads(a["data_summary"]), where)
            self.versions[record.version] = record
            payload = {k: getattr(record, k) for k in ("institution", "model_id", "version",
                                                       "parent", "architecture", "metrics",
                                                       "data_summary")}
            return payload, record.institution
        if event == "RoundStarted":
            started = Round(a["round_id"], self.name_of(a["coordinator"]),
                            tuple(hex32(v) for v in a["versions"]), json.loads(a["protocol"]),
                            where)
            self.rounds[started.round_id] = started
            return ({"round_id": started.round_id, "versions": list(started.versions),
                     "protocol": started.protocol}, started.coordinator)
        round_id = self._round_id(hex32(a["round_key"]))
        current = self.rounds[round_id]
        if event == "RoundFinished":
            ended = replace(current, status="done", result_hash=hex32(a["result_hash"]),
                            metrics=json.loads(a["metrics"]), ended=where)
            payload = {"round_id": round_id, "result_hash": ended.result_hash,
                       "metrics": ended.metrics}
        else:
            ended = replace(current, status="failed", reason=a["reason"], ended=where)
            payload = {"round_id": round_id, "reason": a["reason"]}
        self.rounds[round_id] = ended
        return payload, self.name_of(a["sender"])

    def _round_id(self, key: str) -> str:
        from eth_utils import keccak

        for round_id in self.rounds:
            if keccak(text=round_id).hex() == key:
                return round_id
        raise KeyError(f"round key {key[:12]} closes a round that was never started")
