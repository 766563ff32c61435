"""A small, verifiable, permissioned ledger for a consortium of institutions.

Signed transactions (Ed25519) in blocks linked by SHA-256, RFC 9162 Merkle roots, proposers
rotating among the institutions, blocks final with more than 2/3 of the institutions' votes,
SQLite storage with one SQL transaction per block, model version control over a content-addressed
artifact store. Every module is short enough to read in one sitting:

=============  =================================================================================
merkle         RFC 9162 roots, inclusion and consistency proofs
crypto         canonical JSON, SHA-256, Ed25519 sign/verify
keys           Consortium: the institutions' private keys (simulation only)
transactions   Transaction, TxType, payload schemas
block          BlockHeader, Vote, Block, quorum size, proposer rotation
state          ChainState and the chain rules (membership, replay, parents, rounds)
verify         the seven checks, BlockChecks, VerificationReport
store          SQLite (WAL while writing, synchronous=FULL, one SQL transaction per block;
               one self-contained file when closed; read-only opens never write)
checkpoint     signed checkpoints (C2SP tlog-checkpoint notes co-signed by the institutions),
               truncation / fork detection, trusted verifier keys
artifacts      content-addressed artifact store, deterministic array packing
reader         LedgerView / open_ledger: THE READ API (below)
chain          Ledger: pool, propose, vote, append
registry       ModelRegistry: commit, checkout, history, diff, tag, lineage, rounds
audit          who committed what and when, rounds of an institution, dependencies
tamper         scratch copies and byte flips for demonstrations and tests
cli            ``efl ledger verify|log|show|checkpoint``
records        the read records every engine returns (blocks, checks, reports, version graph)
backend        the interface both engines implement (EmbeddedBackend here; ``evm/``: the same
               registry as a Vyper contract on an EVM chain, needs the ``evm`` extra)
=============  =================================================================================

Read API (for the explorer and any reader; nothing here writes)::

    view = open_ledger(path)              # LedgerError only if not a usable ledger file
    view.report                           # VerificationReport(ok, height, check, reason,
                                          #   n_blocks, n_txs, head_hash, seconds); .summary()
    view.height, view.head_hash           # int, str
    view.headers(start=0, stop=None)      # [HeaderInfo(height, hash, prev_hash, merkle_root,
                                          #   timestamp, proposer, n_txs, signers, ok, problem)]
    view.block(height)                    # BlockInfo(header, transactions=[TxInfo(height, index,
                                          #   tx_id, type, sender, nonce, payload, signature,
                                          #   signature_ok, size)], votes=[VoteInfo(signer,
                                          #   signature, ok)], checks)
    view.checks(height)                   # BlockChecks(height, results=[CheckResult(check, ok,
                                          #   reason)] in CHECKS order, tx_signatures,
                                          #   vote_signatures); .ok, .first_failure, .get(name)
    view.verify() / view.refresh()        # re-read the file, re-verify, return the report
    view.institutions()                   # [InstitutionInfo(institution, name, public_key,
                                          #   fingerprint, height)]
    view.model_versions(institution=None, model_id=None)
                                          # [ModelVersion(version, institution, model_id, parent,
                                          #   architecture, metrics, data_summary, where)]
    view.rounds(), view.tags()            # [Round(...)], [Tag(version, tag, sender, where)]
    view.find(prefix)                     # [Match(kind: block|tx|version|round, key, height,
                                          #   index)]
    view.transaction(tx_id)               # TxInfo
    view.inclusion_proof(tx_id)           # TxProof(height, tx_id, leaf, proof, root,
                                          #   size).verify()
    view.chain_root(h), view.consistency_proof(h1, h2)
    view.checkpoint(), view.stored_checkpoint()   # Checkpoint(origin, size, root, signatures)
    view.check_checkpoint(cp, trusted_keys=None)  # Comparison(status: consistent|truncated|
                                          #   fork|other ledger|bad signatures, message, ...)
    format_timestamp(ms)                  # '2024-05-01T12:00:00.000Z'

``CHECKS`` = ("encoding", "hash link", "merkle root", "signature", "quorum", "rules",
"artifact hash"); a ``CheckResult.ok`` of ``None`` means "not checked".

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "ledger.sqlite")
    >>> consortium = Consortium.generate(["hospital-a", "hospital-b", "clinic-c"], seed=0)
    >>> ledger = Ledger.create(path, consortium)
    >>> registry = ModelRegistry(ledger)
    >>> v1 = registry.model_commit("hospital-a", "cnn", b"params-1", None, "cnn",
    ...                            {"accuracy": 0.8}, {"n_train": 100})
    >>> ledger.close()
    >>> view = open_ledger(path)
    >>> view.report.ok, view.height, view.model_versions()[0].version == v1
    (True, 1, True)
"""

from efl_toolkit.ledger.artifacts import ArtifactStore, hash_array, pack_arrays, unpack_arrays
from efl_toolkit.ledger.audit import Audit, Dependencies
from efl_toolkit.ledger.block import Block, BlockHeader, Vote, quorum_size
from efl_toolkit.ledger.chain import Ledger
from efl_toolkit.ledger.errors import (
    ArtifactError,
    BlockRejected,
    LedgerError,
    TransactionRejected,
)
from efl_toolkit.ledger.keys import Consortium, keystore_path
from efl_toolkit.ledger.reader import LedgerView, artifacts_dir, open_ledger
from efl_toolkit.ledger.registry import Lineage, MetricDiff, ModelRegistry
from efl_toolkit.ledger.state import Member, ModelVersion, Round, Tag, Where
from efl_toolkit.ledger.transactions import Transaction, TxType
from efl_toolkit.ledger.verify import CHECKS, BlockChecks, CheckResult, VerificationReport
from efl_toolkit.ledger.views import (
    BlockInfo,
    HeaderInfo,
    InstitutionInfo,
    Match,
    TxInfo,
    TxProof,
    VoteInfo,
    format_timestamp,
)

__all__ = [
    "CHECKS", "ArtifactError", "ArtifactStore", "Audit", "Block", "BlockChecks", "BlockHeader",
    "BlockInfo", "BlockRejected", "CheckResult", "Consortium", "Dependencies", "HeaderInfo",
    "InstitutionInfo", "Ledger", "LedgerError", "LedgerView", "Lineage", "Match", "Member",
    "MetricDiff", "ModelRegistry", "ModelVersion", "Round", "Tag", "Transaction",
    "TransactionRejected", "TxInfo", "TxProof", "TxType", "VerificationReport", "Vote",
    "VoteInfo", "Where", "artifacts_dir", "format_timestamp", "hash_array", "keystore_path",
    "open_ledger", "pack_arrays", "quorum_size", "unpack_arrays",
]
