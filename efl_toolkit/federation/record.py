"""Recording the method on the ledger: one path for every model version.

:func:`commit_versions` is the ONE function that commits model versions (the end-to-end
pipeline, the playground and the ledger lessons all go through it): each version's serialized
parameters go to the artifact store, its MODEL_COMMIT (signed by its institution) carries the
architecture, metrics, a summary of the data it was trained on and its parent version. The
helpers build what it records:

* :func:`new_version` serializes a trained model into a :class:`NewVersion`;
* :func:`data_summary`: an institution's training share (sizes, class counts, device, tier);
* :func:`model_metrics`: training outcome and test scores of a level-1 model;
* :func:`validation_scores`: a model's scores on the institution's OWN validation share;
* :func:`record_local_results` commits every institution's level-1 models in one block;
  :func:`commit_model` commits one model scored on its own validation share;
* :func:`group_round_recorder` commits every federated round's global model (lineage: parent
  = the previous round's version); :func:`record_fine_tuned` the keepers' fine-tuned models.

Example:
    >>> import tempfile
    >>> from efl_toolkit.ledger import Consortium, Ledger, ModelRegistry
    >>> ledger = Ledger.create(tempfile.mkdtemp() + "/l.sqlite",
    ...                        Consortium.generate(["a", "b"], seed=0))
    >>> versions = commit_versions(ModelRegistry(ledger), "a",
    ...                            {"m": NewVersion(b"w", "mlp", {"acc": 0.7}, {"n_train": 3})})
    >>> versions["m"][:12], ledger.height
    ('50e721e49c01', 1)
    >>> ledger.close()
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from flax import nnx

from efl_toolkit.data.institution import Institution
from efl_toolkit.data.medmnist import Dataset
from efl_toolkit.federation.fedavg import FedAvgState, fedavg_model
from efl_toolkit.federation.groups import Group, GroupResult, GroupRound
from efl_toolkit.federation.level1 import LocalResult
from efl_toolkit.ledger.backend import LedgerWriter
from efl_toolkit.training import EvaluationResult, TrainResult, evaluate, predict_proba
from efl_toolkit.training.serialize import params_to_bytes

#: ``metrics(institution, trained, test_evaluation) -> dict`` for :func:`record_local_results`.
MetricsFn = Callable[[Institution, TrainResult, EvaluationResult], dict]


class NewVersion(NamedTuple):
    """One model version to commit (a tuple: ``(params, architecture, metrics, data_summary,
    parent)``).

    Attributes:
        params: Serialized parameters (their SHA-256 is the version).
        architecture: Architecture name.
        metrics: Numbers only (the ledger rejects NaN).
        data_summary: What the model was trained on.
        parent: Version this one descends from (``None`` for a first version).
    """

    params: bytes
    architecture: str
    metrics: Mapping[str, float]
    data_summary: Mapping[str, Any]
    parent: str | None = None


def commit_versions(registry: LedgerWriter, institution_id: str,
                    models: Mapping[str, NewVersion | tuple], *,
                    commit: bool = True) -> dict[str, str]:
    """Commits an institution's model versions: artifact + signed MODEL_COMMIT each.

    Args:
        registry: Any ledger backend's write side (:class:`~efl_toolkit.ledger.backend.
            LedgerWriter`): a ``ModelRegistry`` over a writable ``Ledger``, an
            ``EmbeddedBackend`` or an ``EvmBackend``.
        institution_id: The committing institution (a consortium member).
        models: ``{model id: NewVersion}`` (the model id names the model line).
        commit: Seal the pool into one block afterwards (``False``: leave the transactions
            pending, e.g. to put several institutions' commits in one block).

    Returns:
        ``{model id: version hash}``, in ``models`` order.

    Raises:
        TransactionRejected: Unknown institution, wrong parent, duplicate version, NaN
            metric...; that model and the ones after it are not recorded.
    """
    versions = {}
    for model_id, version in models.items():
        params, architecture, metrics, summary, parent = NewVersion(*version)
        versions[model_id] = registry.model_commit(institution_id, model_id, params, parent,
                                                   architecture, dict(metrics), dict(summary),
                                                   commit=False)
    if commit and versions:
        registry.seal()
    return versions


def new_version(model: nnx.Module, architecture: str, metrics: Mapping[str, float],
                data_summary: Mapping[str, Any], parent: str | None = None) -> NewVersion:
    """A :class:`NewVersion` holding ``model``'s serialized parameters."""
    return NewVersion(params_to_bytes(model), architecture, metrics, data_summary, parent)


def data_summary(institution: Institution, n_classes: int,
                 dataset: Dataset | None = None) -> dict:
    """What a model commit says about the institution's training share.

    ``dataset`` (its name) is included when given.

    Example:
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> ds = load_dataset("breastmnist")
        >>> sorted(data_summary(make_institutions(ds, 2, seed=0)[0], 2, ds))
        ['capacity', 'class_counts', 'dataset', 'device', 'n_train', 'n_val']
    """
    summary = {"dataset": dataset.name} if dataset is not None else {}
    return {**summary, "n_train": institution.n_train, "n_val": institution.n_val,
            "class_counts": institution.train.class_counts(n_classes).tolist(),
            "device": institution.device.name, "capacity": institution.capacity.tier}


def model_metrics(trained: TrainResult, evaluation: EvaluationResult) -> dict:
    """A level-1 model's training outcome and test scores (an undefined AUC left out)."""
    metrics = {"best_epoch": int(trained.best_epoch), "epochs_run": len(trained.history),
               "test_accuracy": round(float(evaluation.accuracy), 6)}
    if np.isfinite(trained.best_val_metric):
        metrics[f"best_{trained.monitor}"] = round(float(trained.best_val_metric), 6)
    if np.isfinite(evaluation.auc):
        metrics["test_auc"] = round(float(evaluation.auc), 6)
    return metrics


def validation_scores(model: nnx.Module, institution: Institution, n_classes: int, *,
                      prefix: str = "val_", auc: float | None = None) -> dict:
    """``model``'s accuracy and AUC on the institution's OWN validation share.

    Args:
        model: A Flax NNX model.
        institution: Its institution.
        n_classes: Number of classes.
        prefix: Key prefix (``val_accuracy``, ``val_auc``).
        auc: Report this AUC instead of the measured one (an institution that lies).

    An undefined AUC (one class in the share) is left out: the ledger accepts numbers only.
    """
    scores = evaluate(predict_proba(model, institution.val.images), institution.val.labels,
                      n_classes, warn=False)
    reported = scores.auc if auc is None else auc
    out = {f"{prefix}accuracy": round(float(scores.accuracy), 6)}
    if np.isfinite(reported):
        out[f"{prefix}auc"] = round(float(reported), 6)
    return out


def record_local_results(registry: LedgerWriter, institutions: Sequence[Institution],
                         results: Mapping[str, LocalResult], dataset: Dataset, *,
                         metrics: MetricsFn | None = None) -> dict[str, dict[str, str]]:
    """Commits every institution's level-1 models (model id = architecture) in one block.

    Args:
        registry: A registry over a writable ledger whose members are the institutions.
        institutions: The institutions, in order.
        results: Their level-1 results, by id.
        dataset: The dataset (its name and class count go into the data summaries).
        metrics: What each commit reports (default :func:`model_metrics`).

    Returns:
        ``{institution: {architecture: version hash}}``.
    """
    def default(_inst: Institution, trained: TrainResult, evaluation: EvaluationResult) -> dict:
        return model_metrics(trained, evaluation)

    metrics = metrics or default
    versions: dict[str, dict[str, str]] = {}
    for inst in institutions:
        result = results[inst.id]
        summary = data_summary(inst, dataset.n_classes, dataset)
        versions[inst.id] = commit_versions(registry, inst.id, {
            arch: new_version(trained.model, arch, metrics(inst, trained, evaluation), summary)
            for trained, (arch, evaluation) in zip(result.trained, result.per_model.items(),
                                                   strict=True)}, commit=False)
    registry.seal()
    return versions


def commit_model(registry: LedgerWriter, institution: Institution, model: nnx.Module, *,
                 architecture: str, n_classes: int, model_id: str | None = None,
                 parent: str | None = None, commit: bool = True) -> str:
    """Records one ``model`` of ``institution``, scored on its own validation share.

    The metrics are :func:`validation_scores` (``val_accuracy``, ``val_auc``); the data summary
    is :func:`data_summary`. The serialized parameters go to the artifact store, so
    :meth:`ModelRegistry.checkout` can give them back, hash-checked.

    Args:
        registry: A registry over a writable :class:`~efl_toolkit.ledger.Ledger`.
        institution: The institution (a consortium member).
        model: A Flax NNX model.
        architecture: Its architecture name.
        n_classes: Number of classes.
        model_id: Name of the model line (default: the architecture).
        parent: Version this one descends from (``None`` for a first version).
        commit: Put it in a block at once (``False``: leave it in the pool, to batch).

    Returns:
        The version hash (SHA-256 of the parameters).

    Example:
        >>> version = commit_model(registry, institution, model, architecture="logistic",
        ...                        n_classes=2)  # doctest: +SKIP
    """
    version = new_version(model, architecture, validation_scores(model, institution, n_classes),
                          data_summary(institution, n_classes), parent)
    model_id = model_id or architecture
    return commit_versions(registry, institution.id, {model_id: version},
                           commit=commit)[model_id]


def group_model_id(architecture: str) -> str:
    """The model line of a federated group's global model on the ledger."""
    return f"group-{architecture}"


def group_round_recorder(registry: LedgerWriter, dataset: Dataset
                         ) -> Callable[[Group, GroupRound, FedAvgState], str]:
    """``on_round`` for :func:`~efl_toolkit.federation.groups.train_groups`: every round's
    global model becomes a MODEL_COMMIT of the group's coordinator (its first member), model id
    ``group-<architecture>``, whose parent is the previous round's version. The commit names the
    round's participants, who dropped out or was excluded (and why) and the SHA-256 of the
    aggregated update, so the ledger's version control shows the lineage of rounds.
    """
    last: dict[str, str] = {}

    def record(group: Group, rnd: GroupRound, state: FedAvgState) -> str:
        metrics = {"round": rnd.round, "participants": len(rnd.participants),
                   "seconds": round(rnd.seconds, 3)}
        if np.isfinite(rnd.val_loss):
            metrics["consortium_val_loss"] = round(rnd.val_loss, 6)
        if np.isfinite(rnd.val_auc):
            metrics["consortium_val_auc"] = round(rnd.val_auc, 6)
        summary = {"dataset": dataset.name, "group": list(group.members),
                   "participants": list(rnd.participants), "dropped": list(rnd.dropped),
                   "excluded": dict(rnd.excluded), "update_sha256": rnd.update_sha256,
                   "aggregation": "secure (committee)"}
        model_id = group_model_id(group.architecture)
        version = new_version(fedavg_model(state), group.architecture, metrics, summary,
                              last.get(model_id))
        last[model_id] = commit_versions(registry, group.members[0], {model_id: version})[model_id]
        return last[model_id]

    return record


def record_fine_tuned(registry: LedgerWriter, results: Mapping[str, GroupResult],
                      institutions: Sequence[Institution], dataset: Dataset) -> dict[str, dict]:
    """Commits each keeper's fine-tuned model (model id ``<architecture>-fine-tuned``; the group
    version it started from is in its data summary), in one block.

    Returns:
        ``{institution: {architecture: version}}`` of the model in each local ensemble: the
        fine-tuned version, or the group's kept version.
    """
    by_id = {inst.id: inst for inst in institutions}
    kept: dict[str, dict] = {inst.id: {} for inst in institutions}
    for arch, res in results.items():
        for name, model in res.models.items():
            if not res.fine_tuned.get(name):
                if res.version is not None:
                    kept[name][arch] = res.version
                continue
            summary = {**data_summary(by_id[name], dataset.n_classes, dataset),
                       "base_version": res.version, "group": list(res.group.members)}
            version = new_version(model, arch, validation_scores(model, by_id[name],
                                                                 dataset.n_classes), summary)
            kept[name][arch] = commit_versions(registry, name, {f"{arch}-fine-tuned": version},
                                               commit=False)[f"{arch}-fine-tuned"]
    registry.seal()
    return kept
