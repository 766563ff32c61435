"""A small but complete ledger made through the real ledger API, for the explorer tests.

Three institutions, two model versions at hospital-a (v2 derives from v1), one at hospital-b and
one at clinic-c, a tag, and one finished ensemble round over the newest versions.
"""

from __future__ import annotations

from pathlib import Path

from efl_toolkit.ledger import Consortium, Ledger, ModelRegistry

INSTITUTIONS = ("hospital-a", "hospital-b", "clinic-c")


def make_sample_ledger(path: Path, seed: int = 0) -> dict[str, str]:
    """Writes the sample ledger at ``path`` (a new file); returns the version hashes by name.

    Example:
        >>> versions = make_sample_ledger(Path(tmp) / "ledger.sqlite")  # doctest: +SKIP
        >>> sorted(versions)                                             # doctest: +SKIP
        ['a1', 'a2', 'b1', 'c1']
    """
    ledger = Ledger.create(path, Consortium.generate(list(INSTITUTIONS), seed=seed))
    try:
        registry = ModelRegistry(ledger)
        a1 = registry.model_commit("hospital-a", "cnn", b"hospital-a cnn v1", None, "cnn",
                                   {"accuracy": 0.71, "auc": 0.74}, {"n_train": 180})
        b1 = registry.model_commit("hospital-b", "mlp", b"hospital-b mlp v1", None, "mlp",
                                   {"accuracy": 0.68, "auc": 0.70}, {"n_train": 150})
        a2 = registry.model_commit("hospital-a", "cnn", b"hospital-a cnn v2", a1, "cnn",
                                   {"accuracy": 0.78, "auc": 0.81}, {"n_train": 180})
        c1 = registry.model_commit("clinic-c", "logistic", b"clinic-c logistic v1", None,
                                   "logistic", {"accuracy": 0.64, "auc": 0.66}, {"n_train": 90})
        registry.tag(a2, "deployed")
        registry.start_round("hospital-b", "round-1", [a2, b1, c1],
                             {"parties": 3, "secfxp": [32, 16]})
        registry.finish_round("hospital-b", "round-1", "ab" * 32, {"accuracy": 0.82})
    finally:
        ledger.close()
    return {"a1": a1, "a2": a2, "b1": b1, "c1": c1}


def append_empty_block(path: Path, seed: int = 0) -> int:
    """Appends one empty block to the sample ledger (as a running experiment would); returns its
    height."""
    ledger = Ledger.open(path, Consortium.generate(list(INSTITUTIONS), seed=seed))
    try:
        return ledger.commit_block().height
    finally:
        ledger.close()
