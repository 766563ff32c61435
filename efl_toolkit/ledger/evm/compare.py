"""The same round on two ledger engines, side by side (notebook 09 and the benchmark).

:func:`record_round` writes one small but complete history through the backend interface (each
institution commits a first model version and a second one whose parent is the first, then a
round over the newest versions is started and finished); run on two engines it yields the same
version hashes, the same lineage and the same refusals. :func:`engine_row` verifies one engine
and says what it holds; :data:`GUARANTEES` says what each engine does and does not guarantee.

Example:
    >>> import tempfile
    >>> from efl_toolkit.ledger.backend import create_backend
    >>> backend, _ = create_backend("embedded", tempfile.mkdtemp() + "/l.sqlite", ["a", "b"])
    >>> versions = record_round(backend, {"a": "logistic", "b": "logistic"}, (8, 8, 1), 2)
    >>> [len(v) for v in versions.values()], backend.lineage("round-1").round.status
    ([2, 2], 'done')
    >>> engine_row("embedded", backend)["verified"]
    True
    >>> backend.close()
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from efl_toolkit.ledger.crypto import sha256_hex

#: What each engine guarantees (rows of a table: one property, one column per engine).
GUARANTEES = (
    {"property": "who keeps the history", "embedded": "one SQLite file, one writer process",
     "evm (in-process or Anvil)": "one node process", "evm on a PoA consortium chain":
     "every validator node (one per institution)"},
    {"property": "who holds the signing keys", "embedded": "the simulation holds all",
     "evm (in-process or Anvil)": "the simulation holds all (one per institution)",
     "evm on a PoA consortium chain": "each institution its own"},
    {"property": "rules enforced by", "embedded": "the writer and every verifier",
     "evm (in-process or Anvil)": "the contract, run by the node",
     "evm on a PoA consortium chain": "the contract, run by every validator"},
    {"property": "a changed record", "embedded": "detected (hash link, Merkle root, signature)",
     "evm (in-process or Anvil)": "detected (receipts re-read, block hashes)",
     "evm on a PoA consortium chain": "refused by the other validators"},
    {"property": "truncation / rewrite", "embedded": "only against a checkpoint kept elsewhere",
     "evm (in-process or Anvil)": "possible by the node's owner",
     "evm on a PoA consortium chain": "needs a majority of the validators"},
    {"property": "a swapped model file", "embedded": "detected by its hash (verify)",
     "evm (in-process or Anvil)": "detected by its hash (verify)",
     "evm on a PoA consortium chain": "detected by its hash (verify)"},
    {"property": "membership", "embedded": "fixed by the genesis block",
     "evm (in-process or Anvil)": "admin, or > 2/3 of the members",
     "evm on a PoA consortium chain": "admin, or > 2/3 of the members"},
)


def record_round(backend, architectures: Mapping[str, str], image_shape: tuple[int, ...],
                 n_classes: int, *, seed: int = 0, round_id: str = "round-1"
                 ) -> dict[str, list[str]]:
    """Commits two versions per institution (the second's parent is the first) of freshly
    initialised zoo models, then starts and finishes ``round_id`` over the newest versions.

    Args:
        backend: Any ledger backend (:class:`~efl_toolkit.ledger.backend.LedgerBackend`).
        architectures: ``{institution: zoo architecture}``.
        image_shape: ``(height, width, channels)`` of the images the models take.
        n_classes: Number of classes.
        seed: Parameters of version k of institution i come from ``nnx.Rngs(seed + 100*i + k)``.
        round_id: The round's id.

    Returns:
        ``{institution: [v1, v2]}`` (SHA-256 hex of the serialized parameters).
    """
    from flax import nnx

    from efl_toolkit.models.zoo import build_model
    from efl_toolkit.training.serialize import params_to_bytes

    versions: dict[str, list[str]] = {}
    for i, (institution, arch) in enumerate(architectures.items()):
        parent = None
        for k in range(2):
            params = params_to_bytes(build_model(arch, image_shape, n_classes,
                                                 nnx.Rngs(seed + 100 * i + k)))
            parent = backend.model_commit(institution, arch, params, parent, arch,
                                          {"version": k + 1}, {"initialised_with_seed": seed})
            versions.setdefault(institution, []).append(parent)
        backend.seal()
    newest = [v[-1] for v in versions.values()]
    coordinator = next(iter(architectures))
    backend.start_round(coordinator, round_id, newest, {"protocol": "demo"})
    backend.finish_round(coordinator, round_id, sha256_hex(",".join(newest).encode()),
                         {"institutions": len(newest)})
    return versions


def engine_row(name: str, backend) -> dict:
    """One engine verified: height, versions and rounds held, verdict, seconds to verify."""
    started = time.perf_counter()
    report = backend.verify()
    return {"engine": name, "height": backend.height(), "versions": len(backend.history()),
            "rounds": len(backend.rounds()), "verified": report.ok,
            "verify seconds": round(time.perf_counter() - started, 3),
            "first failure": report.summary if not report.ok else "-"}
