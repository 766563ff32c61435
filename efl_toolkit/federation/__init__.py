"""The method: hierarchical ensemble and federated learning across institutions.

==========  ======================================================================================
level1      every institution's local models and local ensemble (:func:`train_each_alone`,
            :func:`train_institution`, :class:`LocalResult`)
groups      federated learning among the institutions that afford the same architecture, with
            FedAvg (:mod:`~efl_toolkit.federation.fedavg`, McMahan et al. 2017) and secure
            aggregation (to come)
level2      the ensemble across institutions and its weights (:func:`level2_weights`,
            :func:`own_validation_auc`); the secure round is
            :func:`efl_toolkit.pipeline.run_secure_round`
record      ONE path that commits model versions to the ledger (:func:`commit_versions`)
==========  ======================================================================================

Baselines that bracket the method live in :mod:`efl_toolkit.baselines`.

Example:
    >>> from efl_toolkit.federation import WEIGHT_FLOOR
    >>> WEIGHT_FLOOR
    0.5
"""

from efl_toolkit.federation.fedavg import (
    ArchitectureMismatchError,
    FedAvgState,
    average_parameters,
    fedavg_init,
    fedavg_model,
    fedavg_round,
    weighted_average,
)
from efl_toolkit.federation.level1 import (
    LocalResult,
    best_single,
    institution_architectures,
    train_each_alone,
    train_institution,
)
from efl_toolkit.federation.level2 import WEIGHT_FLOOR, level2_weights, own_validation_auc
from efl_toolkit.federation.record import (
    NewVersion,
    commit_model,
    commit_versions,
    data_summary,
    model_metrics,
    new_version,
    record_local_results,
    validation_scores,
)

__all__ = [
    "WEIGHT_FLOOR",
    "ArchitectureMismatchError",
    "FedAvgState",
    "LocalResult",
    "NewVersion",
    "average_parameters",
    "best_single",
    "commit_model",
    "commit_versions",
    "data_summary",
    "fedavg_init",
    "fedavg_model",
    "fedavg_round",
    "institution_architectures",
    "level2_weights",
    "model_metrics",
    "new_version",
    "own_validation_auc",
    "record_local_results",
    "train_each_alone",
    "train_institution",
    "validation_scores",
    "weighted_average",
]
