"""Research playground: sweeps over the experiment's knobs, and a poisoned or broken institution.

Notebook 07 asks "what if?" questions about the end-to-end experiment. To keep the answers fast a
federation is trained once (:func:`train_federation`) and its level-1 probabilities are then
re-combined in many ways without retraining; only the data-side knobs retrain, with light models.

===============  =================================================================================
federation       :class:`Federation`, :func:`train_federation` (light tiers by default)
recombine        level-2 rules (:func:`rule_rows`), fixed-point precision (:func:`precision_rows`,
                 :func:`precision_round`: one real MPyC round), :func:`scenario_rows`
sweeps           :func:`sweep` over ``dirichlet_alpha`` / ``n_institutions`` (retrains, averages
                 over seeds), :func:`plot_sweep`
poisoning        :func:`poison`: a malicious (flipped labels, maybe lying) or broken (one class)
                 member; :func:`claims_rows`
checks           what an honest consortium can check: :func:`agreement_matrix`,
                 :func:`consensus_rows`, :func:`leave_one_out_rows`, :func:`evidence_rows`
recorded         :func:`record_federation` (signed claims + a real secure round on a ledger),
                 :func:`ledger_claims`
===============  =================================================================================

Example:
    >>> from efl_toolkit.config import get_config
    >>> fed = train_federation(get_config("classroom_fast"))  # doctest: +SKIP
    >>> [row["rule"] for row in rule_rows(fed)][:3]  # doctest: +SKIP
    ['mean', 'weighted by size', 'weighted by own validation AUC']
"""

from efl_toolkit.playground.checks import (
    agreement_matrix,
    consensus_rows,
    evidence_rows,
    leave_one_out_rows,
    plot_agreement,
)
from efl_toolkit.playground.federation import (
    LIGHT_TIERS,
    Federation,
    light_capacities,
    own_validation_auc,
    score_on_test,
    train_federation,
)
from efl_toolkit.playground.poisoning import POISON_KINDS, claims_rows, poison, poisoned_split
from efl_toolkit.playground.recombine import (
    precision_round,
    precision_rows,
    rule_rows,
    scenario_rows,
)
from efl_toolkit.playground.recorded import RecordedRound, ledger_claims, record_federation
from efl_toolkit.playground.sweeps import federation_row, plot_sweep, sweep

__all__ = [
    "LIGHT_TIERS",
    "POISON_KINDS",
    "Federation",
    "RecordedRound",
    "agreement_matrix",
    "claims_rows",
    "consensus_rows",
    "evidence_rows",
    "federation_row",
    "leave_one_out_rows",
    "ledger_claims",
    "light_capacities",
    "own_validation_auc",
    "plot_agreement",
    "plot_sweep",
    "poison",
    "poisoned_split",
    "precision_round",
    "precision_rows",
    "record_federation",
    "rule_rows",
    "scenario_rows",
    "score_on_test",
    "sweep",
    "train_federation",
]
