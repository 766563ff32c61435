# pragma version ~=0.4.3
"""
@title efl_toolkit model registry and audit trail
@notice Institutions (registered by the admin or a quorum of members) commit model versions
        (the SHA-256 of their parameters) with the parent rule enforced here: the parent must
        exist and belong to the same institution and model; a version is committed once.
        Rounds are started over known versions and closed once (result or failure).
        Every change emits an event; `n_events` counts them so a reader can tell a missing one.
        Revert reasons are short codes that the Python backend maps to the embedded ledger's
        messages.
"""

MAX_JSON: constant(uint256) = 8192
MAX_VERSIONS: constant(uint256) = 256

struct Version:
    owner: address
    model: bytes32

event InstitutionRegistered:
    member: indexed(address)
    name: String[64]
    by: address
    seq: uint256

event RegistrationApproved:
    member: indexed(address)
    approver: address
    approvals: uint256
    seq: uint256

event ModelCommitted:
    version: indexed(bytes32)
    parent: bytes32
    institution: address
    model_id: String[128]
    architecture: String[128]
    metrics: String[MAX_JSON]
    data_summary: String[MAX_JSON]
    seq: uint256

event RoundStarted:
    round_key: indexed(bytes32)
    round_id: String[128]
    coordinator: address
    versions: DynArray[bytes32, MAX_VERSIONS]
    protocol: String[MAX_JSON]
    seq: uint256

event RoundFinished:
    round_key: indexed(bytes32)
    sender: address
    result_hash: bytes32
    metrics: String[MAX_JSON]
    seq: uint256

event RoundFailed:
    round_key: indexed(bytes32)
    sender: address
    reason: String[512]
    seq: uint256

admin: public(address)
names: public(HashMap[address, String[64]])
is_member: public(HashMap[address, bool])
n_members: public(uint256)
approvals: HashMap[address, HashMap[address, bool]]
n_approvals: public(HashMap[address, uint256])
versions: public(HashMap[bytes32, Version])
round_status: public(HashMap[bytes32, uint8])  # 0 none, 1 open, 2 done, 3 failed
n_events: public(uint256)


@deploy
def __init__():
    self.admin = msg.sender


@internal
def _next() -> uint256:
    self.n_events += 1
    return self.n_events


@internal
def _add(member: address, name: String[64]):
    self.is_member[member] = True
    self.names[member] = name
    self.n_members += 1
    log InstitutionRegistered(member=member, name=name, by=msg.sender, seq=self._next())


@external
def register(member: address, name: String[64]):
    """
    @notice The admin registers at once; a member's call is one approval, and the institution
            joins when more than 2/3 of the members approved.
    """
    assert not self.is_member[member], "already registered"
    if msg.sender == self.admin:
        self._add(member, name)
        return
    assert self.is_member[msg.sender], "not a member"
    assert not self.approvals[member][msg.sender], "already approved"
    self.approvals[member][msg.sender] = True
    self.n_approvals[member] += 1
    log RegistrationApproved(member=member, approver=msg.sender,
                             approvals=self.n_approvals[member], seq=self._next())
    if 3 * self.n_approvals[member] > 2 * self.n_members:
        self._add(member, name)


@external
def commit(version: bytes32, parent: bytes32, model_id: String[128], architecture: String[128],
           metrics: String[MAX_JSON], data_summary: String[MAX_JSON]):
    assert self.is_member[msg.sender], "not a member"
    assert self.versions[version].owner == empty(address), "duplicate version"
    model: bytes32 = keccak256(model_id)
    if parent != empty(bytes32):
        record: Version = self.versions[parent]
        assert record.owner != empty(address), "unknown parent"
        assert record.owner == msg.sender and record.model == model, "foreign parent"
    self.versions[version] = Version(owner=msg.sender, model=model)
    log ModelCommitted(version=version, parent=parent, institution=msg.sender, model_id=model_id,
                       architecture=architecture, metrics=metrics, data_summary=data_summary,
                       seq=self._next())


@external
def start_round(round_id: String[128], versions: DynArray[bytes32, MAX_VERSIONS],
                protocol: String[MAX_JSON]):
    assert self.is_member[msg.sender], "not a member"
    key: bytes32 = keccak256(round_id)
    assert self.round_status[key] == 0, "round exists"
    for v: bytes32 in versions:
        assert self.versions[v].owner != empty(address), "unknown round version"
    self.round_status[key] = 1
    log RoundStarted(round_key=key, round_id=round_id, coordinator=msg.sender, versions=versions,
                     protocol=protocol, seq=self._next())


@internal
def _close(round_id: String[128], status: uint8) -> bytes32:
    assert self.is_member[msg.sender], "not a member"
    key: bytes32 = keccak256(round_id)
    assert self.round_status[key] != 0, "round never started"
    assert self.round_status[key] == 1, "round closed"
    self.round_status[key] = status
    return key


@external
def finish_round(round_id: String[128], result_hash: bytes32, metrics: String[MAX_JSON]):
    key: bytes32 = self._close(round_id, 2)
    log RoundFinished(round_key=key, sender=msg.sender, result_hash=result_hash, metrics=metrics,
                      seq=self._next())


@external
def fail_round(round_id: String[128], reason: String[512]):
    key: bytes32 = self._close(round_id, 3)
    log RoundFailed(round_key=key, sender=msg.sender, reason=reason, seq=self._next())
