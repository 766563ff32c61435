"""A federation on a real ledger: signed claims, a real secure round, and reading them back.

Example:
    >>> rec = record_federation(fed, "scratch")  # doctest: +SKIP
    >>> [r["committed_by"] for r in ledger_claims(rec.ledger_path)]  # doctest: +SKIP
    ['hospital-a', 'hospital-b', 'hospital-c']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from efl_toolkit.data import Institution
from efl_toolkit.federation.record import record_local_results, validation_scores
from efl_toolkit.ledger import Consortium, Ledger, LedgerError, ModelRegistry, open_ledger
from efl_toolkit.pipeline import ROUND_ID, prepare_out_dir, run_secure_round
from efl_toolkit.playground.federation import Federation
from efl_toolkit.secure import SecureEnsembleResult
from efl_toolkit.training import TrainResult


@dataclass(frozen=True)
class RecordedRound:
    """A federation committed to a fresh ledger and combined in a real secure round.

    Attributes:
        ledger_path: The ledger file.
        versions: ``{institution: {architecture: version}}``.
        weights: The public level-2 weights the round used.
        secure: The secure round's result.
    """

    ledger_path: Path
    versions: dict[str, dict[str, str]]
    weights: dict[str, float]
    secure: SecureEnsembleResult


def _claims(fed: Federation, inst: Institution, trained: TrainResult) -> dict:
    """What a model's MODEL_COMMIT reports about validation on the institution's own share.

    ``own_val_accuracy`` and ``own_val_auc``: this model's scores; ``ensemble_val_auc``: the
    institution's local-ensemble AUC, the claim its level-2 weight comes from. A liar reports
    its lie for both AUCs.
    """
    lie = fed.lies.get(inst.id)
    return {**validation_scores(trained.model, inst, fed.dataset.n_classes, prefix="own_val_",
                                auc=lie),
            "ensemble_val_auc": round(float(fed.val_auc[inst.id]), 6)}


def record_federation(fed: Federation, out_dir: str | Path,
                      weights: Mapping[str, float] | None = None) -> RecordedRound:
    """Commits every model with its self-reported claims, then runs and records a secure round.

    Each MODEL_COMMIT is signed by its institution and carries what it reports about its own
    validation share (the model's AUC and accuracy, and the local ensemble's AUC that its
    level-2 weight comes from: :attr:`Federation.val_auc`, which holds a liar's lie) and a
    summary of its own data; ROUND_START records the public
    weights; ROUND_RESULT the hash of the opened mean (see
    :func:`efl_toolkit.pipeline.run_secure_round`; commits go through
    :func:`efl_toolkit.federation.record.record_local_results`). Keys come from the config's
    seed (a classroom simulation).

    Args:
        fed: The federation (poisoned or not).
        out_dir: Folder for ``ledger.sqlite`` and its artifacts (a previous run's are removed).
        weights: Public level-2 weights (default: :attr:`Federation.val_weights`).
    """
    ledger_path = prepare_out_dir(out_dir)
    weights = dict(fed.val_weights if weights is None else weights)
    ledger = Ledger.create(ledger_path, Consortium.generate(list(fed.ids), seed=fed.config.seed))
    try:
        versions = record_local_results(
            ModelRegistry(ledger), fed.institutions, fed.results, fed.dataset,
            metrics=lambda inst, trained, _test: _claims(fed, inst, trained))
        secure = run_secure_round(ledger, versions, fed.test_probs, weights,
                                  fed.config.n_parties, fed.dataset,
                                  frac_bits=fed.config.fixed_point_bits)
    finally:
        ledger.close()
    return RecordedRound(ledger_path, versions, weights, secure)


def ledger_claims(ledger_path: str | Path, round_id: str = ROUND_ID) -> list[dict]:
    """Per institution, what the verified ledger says it claimed and which weight it got.

    Returns:
        Rows ``institution``, ``committed_by`` (the signer of its commits), ``signatures_ok``,
        ``models``, ``claimed_val_auc`` (the committed local-ensemble validation AUC),
        ``class_counts``, ``height`` (block of its commits) and ``round_weight`` (from
        ROUND_START).

    Raises:
        LedgerError: The file is not a ledger, does not verify, or has no round ``round_id``.
    """
    with open_ledger(ledger_path) as view:
        if not view.report.ok:
            raise LedgerError(f"{ledger_path}: does not verify: {view.report.summary()}")
        rounds = {r.round_id: r for r in view.rounds()}
        if round_id not in rounds:
            raise LedgerError(f"{ledger_path}: no round {round_id!r}; rounds: {sorted(rounds)}")
        weights = rounds[round_id].protocol.get("weights", {})
        rows = []
        for info in view.institutions():
            commits = view.model_versions(info.institution)
            txs = [view.transaction(v.where.tx_id) for v in commits]
            claimed = {v.metrics.get("ensemble_val_auc") for v in commits}
            rows.append({
                "institution": info.institution,
                "committed_by": ", ".join(sorted({tx.sender for tx in txs})),
                "signatures_ok": all(tx.signature_ok for tx in txs),
                "models": "+".join(v.model_id for v in commits),
                "claimed_val_auc": claimed.pop() if len(claimed) == 1 else None,
                "class_counts": commits[0].data_summary.get("class_counts") if commits else None,
                "height": commits[0].where.height if commits else None,
                "round_weight": weights.get(info.institution)})
    return rows
