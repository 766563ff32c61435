"""The end-to-end experiment behind ``efl demo`` and notebook 06.

One call runs the method (``docs/design.md``): load the data, partition it into institutions,
train each institution alone (level 1 of the first design, and the lower bound), record the
consortium and every model version on the ledger, start a committee of compute-party processes,
train every federated group under secure aggregation (each round a MODEL_COMMIT whose parent is
the previous round's version), weigh the institutions' local ensembles by a consortium-wide
validation AUC computed securely (or the level-2 rule ``config.rule`` names,
:mod:`efl_toolkit.federation.level2`), combine their test probabilities in a secure round of the
committee (level 2), record the round and its result, score everything against the baselines
(centralized, each institution alone, the first design ``ensemble_only``, FedAvg on a
homogeneous small CNN) and write ``report.json``, ``report.md`` and plots
(:mod:`efl_toolkit.report`).

Example:
    >>> from efl_toolkit.config import get_config
    >>> from efl_toolkit.pipeline import run_experiment
    >>> result = run_experiment(get_config("classroom_fast"), "efl_out")  # doctest: +SKIP
    >>> result.report["ledger"]["verified"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np

from efl_toolkit.baselines import FedAvgRun, fedavg_train, train_centralized
from efl_toolkit.config import ExperimentConfig
from efl_toolkit.data import Dataset, Institution, institutions_from_config, load_dataset
from efl_toolkit.ensemble import prior_corrected, weighted_mean
from efl_toolkit.federation.aggregation import secure_aggregation
from efl_toolkit.federation.groups import (
    GroupResult,
    LocalEnsemble,
    form_groups,
    local_ensembles,
    train_groups,
)
from efl_toolkit.federation.level1 import LocalResult, train_each_alone
from efl_toolkit.federation.level2 import (
    RuleInputs,
    apply_rule,
    consortium_class_prior,
    consortium_validation_auc,
    describe_weights,
    level2_weights,
    operating_point,
    resolve_rule,
)
from efl_toolkit.federation.record import (
    group_round_recorder,
    record_fine_tuned,
    record_local_results,
)
from efl_toolkit.ledger import Ledger, hash_array, keystore_path
from efl_toolkit.ledger.backend import LedgerBackend, as_backend, create_backend
from efl_toolkit.models.capacity import with_architectures
from efl_toolkit.rng import experiment_keys
from efl_toolkit.secure import (
    DEFAULT_FRAC_BITS,
    Committee,
    SecureEnsembleResult,
    committee_ensemble,
)
from efl_toolkit.training import EvaluationResult, evaluate, predict_proba

LEDGER_FILE = "ledger.sqlite"
ROUND_ID = "round-1"
#: Seconds a secure round may take once its parties are connected.
ROUND_TIMEOUT = 300.0


@dataclass(frozen=True)
class ExperimentResult:
    """Everything one run produced.

    Attributes:
        config: The configuration that ran.
        dataset: The dataset (official splits; the test split is the shared query set).
        institutions: The institutions with their private shares.
        alone: Each institution's models trained alone and their local ensemble, by id.
        weights: Level-2 weight of each institution in the method's ensemble.
        plaintext_probs: The method's level-2 ensemble computed in plaintext.
        plaintext: Its evaluation.
        secure: The secure round (committee of compute-party processes).
        secure_eval: Evaluation of the secure ensemble's opened mean (the method's result).
        centralized: The pooled-data upper bound.
        fedavg: FedAvg on a homogeneous small CNN.
        versions: Ledger version of every level-1 model, ``{institution: {arch: version}}``.
        ledger_path: The ledger file (embedded) or the EVM descriptor ``ledger.evm.json``.
        seconds: Wall time per stage.
        report: The ``report.json`` content (``None`` when nothing was written).
        groups: The federated groups (empty for ``method="ensemble_only"``), by architecture.
        local: Each institution's local ensemble in the method (after the groups).
        validation_auc: Consortium-wide validation AUC of each local ensemble (hierarchical).
        ensemble_only_probs: The first design's ensemble (alone models, own-validation
            weights), plaintext.
        ensemble_only: Its evaluation.
        level1_probs: Each institution's local-ensemble test probabilities in the method.
        class_prior: The consortium's pooled training class frequencies (computed securely).
        decision_prior: The level-2 decision rule as an effective prior (``decide``).
        ledger_backend: The EVM backend, still open (an in-process chain lives only as long
            as this object); ``None`` for the embedded ledger (closed: read ``ledger_path``).
    """

    config: ExperimentConfig
    dataset: Dataset
    institutions: tuple[Institution, ...]
    alone: dict[str, LocalResult]
    weights: dict[str, float]
    plaintext_probs: np.ndarray
    plaintext: EvaluationResult
    secure: SecureEnsembleResult
    secure_eval: EvaluationResult
    centralized: LocalResult
    fedavg: FedAvgRun
    versions: dict[str, dict[str, str]]
    ledger_path: Path
    seconds: dict[str, float]
    report: dict | None = None
    groups: dict[str, GroupResult] = field(default_factory=dict)
    local: dict[str, LocalEnsemble | LocalResult] = field(default_factory=dict)
    validation_auc: dict[str, float] = field(default_factory=dict)
    ensemble_only_probs: np.ndarray | None = None
    ensemble_only: EvaluationResult | None = None
    level1_probs: dict[str, np.ndarray] = field(default_factory=dict)
    class_prior: np.ndarray | None = None
    decision_prior: np.ndarray | None = None
    ledger_backend: LedgerBackend | None = None

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """The method's level-2 decision rule (``config.decision``) applied to probabilities."""
        if self.config.decision == "balanced" and self.decision_prior is not None:
            return prior_corrected(probs, self.decision_prior)
        return probs


def _predictor(local: LocalEnsemble | LocalResult) -> Callable[[np.ndarray], np.ndarray]:
    """``images -> probabilities`` of an institution's local ensemble (either kind)."""
    if isinstance(local, LocalEnsemble):
        return local.predict
    return lambda x: np.mean([predict_proba(t.model, x) for t in local.trained], axis=0)


def opened_probabilities(secure: SecureEnsembleResult, n_classes: int) -> np.ndarray:
    """The secure round's opened mean ``[n, C]``, or its opened labels one-hot
    (``reveal="labels"``: accuracy is exact, AUC is that of hard labels)."""
    if secure.mean is not None:
        return secure.mean
    return np.eye(n_classes)[np.asarray(secure.labels, dtype=np.int64)]


def prepare_out_dir(out_dir: str | Path) -> Path:
    """Creates ``out_dir`` and clears a previous run's ledger, keystore, checkpoint, artifacts
    and report there (also what a run killed half-way left: temporary files, a ``-wal``), so
    nothing of an older or unfinished run is presented as this run's.

    Returns:
        The ledger path inside ``out_dir``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ledger_path = out / LEDGER_FILE
    for stale in (keystore_path(ledger_path), out / "artifacts"):
        shutil.rmtree(stale, ignore_errors=True)
    for name in ("ledger.evm.json", "ledger.evm.keys.json", "report.json", "report.md"):
        (out / name).unlink(missing_ok=True)
    for leftover in [*out.glob(".report.*.tmp-*"), *out.glob(f"{LEDGER_FILE}.checkpoint*")]:
        leftover.unlink(missing_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal", ".creating", ".creating-wal",
                   ".creating-shm"):
        Path(f"{ledger_path}{suffix}").unlink(missing_ok=True)
    return ledger_path


def run_secure_round(ledger: Ledger | LedgerBackend, versions: Mapping[str, Mapping[str, str]],
                     level1_probs: Mapping[str, np.ndarray], weights: Mapping[str, float],
                     committee: Committee | int, dataset: Dataset, *,
                     frac_bits: int = DEFAULT_FRAC_BITS,
                     decide: Callable[[np.ndarray], np.ndarray] | None = None,
                     reveal: str = "mean") -> SecureEnsembleResult:
    """Records ROUND_START, runs the level-2 secure round, records ROUND_RESULT (or FAILED).

    Args:
        ledger: A writable ledger (or any ledger backend) whose members are the institutions.
        versions: The model versions taking part, ``{institution: {arch: version}}``.
        level1_probs: Each institution's local-ensemble test probabilities ``[n, C]``.
        weights: Public level-2 weights (the mean is renormalized over who is included).
        committee: A running :class:`~efl_toolkit.secure.Committee`, or its size to start one.
        dataset: The dataset (its test split is the query set).
        frac_bits: Fixed-point precision of the round (``config.fixed_point_bits``).
        decide: The level-2 decision rule for the recorded metrics (default: argmax).
        reveal: What the committee opens: ``"mean"`` or only the ``"labels"``.

    Raises:
        SecureRoundError: The round failed (recorded on the ledger first).
    """
    registry = as_backend(ledger)
    coordinator = next(iter(versions))
    size = committee if isinstance(committee, int) else committee.size
    protocol = {"protocol": "committee-additive-shares+mpyc-shamir", "reveal": reveal,
                "compute_parties": size, "institutions": list(level1_probs),
                "weights": dict(weights), "frac_bits": frac_bits,
                "queries": len(dataset.test), "query_set": f"{dataset.name}:test"}
    # keepers of one group model share its version: list each version once
    all_versions = list(dict.fromkeys(v for per_inst in versions.values()
                                      for v in per_inst.values()))
    registry.start_round(coordinator, ROUND_ID, all_versions, protocol)
    try:
        if isinstance(committee, int):
            with Committee(committee, round_timeout=ROUND_TIMEOUT) as running:
                result = committee_ensemble(running, dict(level1_probs), dict(weights),
                                            frac_bits=frac_bits, reveal=reveal)
        else:
            result = committee_ensemble(committee, dict(level1_probs), dict(weights),
                                        frac_bits=frac_bits, reveal=reveal)
    except Exception as error:
        registry.fail_round(coordinator, ROUND_ID, f"{type(error).__name__}: {error}"[:500])
        raise
    opened = opened_probabilities(result, dataset.n_classes)
    scored = opened if decide is None or result.mean is None else decide(opened)
    metrics = evaluate(scored, dataset.test.labels, dataset.n_classes, warn=False)
    round_metrics = {"accuracy": round(float(metrics.accuracy), 6),
                     "balanced_accuracy": round(float(metrics.balanced_accuracy), 6),
                     "seconds": round(result.seconds, 3), "parties": result.n_parties,
                     "included": len(result.included)}
    if np.isfinite(metrics.auc):
        round_metrics["auc"] = round(float(metrics.auc), 6)
    registry.finish_round(coordinator, ROUND_ID, hash_array(
        result.mean if result.mean is not None else result.labels), round_metrics)
    return result


def run_experiment(config: ExperimentConfig, out_dir: str | Path = "efl_out", *,
                   progress: bool = True, log: Callable[[str], None] = print,
                   write: bool = True) -> ExperimentResult:
    """Runs the whole experiment and (by default) writes the report files into ``out_dir``.

    Args:
        config: The experiment configuration (e.g. ``get_config("classroom_fast")``).
        out_dir: Output folder: ``report.json``, ``report.md``, plots, ``ledger.sqlite``.
        progress: Show progress bars while training.
        log: Where stage messages go (``print`` by default).
        write: Write ``report.json``, ``report.md`` and plots (the ledger is always written).

    Returns:
        An :class:`ExperimentResult`.

    Raises:
        DatasetError: The dataset cannot be loaded (the message names the file).
        SecureRoundError: A party failed (named); the failure is recorded on the ledger.
    """
    started = time.perf_counter()
    stage: dict[str, float] = {}

    def timed(name: str, since: float) -> float:
        now = time.perf_counter()
        stage[name] = round(now - since, 3)
        return now

    keys = experiment_keys(config.seed)
    dataset = load_dataset(config.dataset)
    log(f"[1/7] {dataset.name}: {len(dataset.train)} train / {len(dataset.val)} val / "
        f"{len(dataset.test)} test, {dataset.n_classes} classes, images {dataset.image_shape}")
    institutions = with_architectures(institutions_from_config(dataset, config),
                                      config.architectures)
    groups = form_groups(institutions, dataset)            # checks capacities up front
    if config.ledger.startswith("evm:"):  # an unreachable node fails now, not after training
        from efl_toolkit.ledger.evm.node import connect

        connect(config.ledger.removeprefix("evm:"))
    ledger_path = prepare_out_dir(out_dir)
    t = timed("data", started)

    log(f"[2/7] each institution alone: {len(institutions)} institutions train their own "
        "models on their own shares")
    alone = train_each_alone(institutions, dataset, config.train, keys.params,
                             progress=progress)
    for inst in institutions:
        res = alone[inst.id]
        log(f"      {inst.id:<12} {inst.capacity.tier:<7} {'+'.join(res.architectures):<14} "
            f"n_train={inst.n_train:<5} test acc={res.test.accuracy:.3f} auc={res.test.auc:.3f}")
    t = timed("local_training", t)
    n_classes, labels = dataset.n_classes, dataset.test.labels
    own_weights = level2_weights(institutions, alone, n_classes)
    only_probs = weighted_mean([alone[i.id].test_probs for i in institutions],
                               list(own_weights.values()))

    log(f"[3/7] ledger ({config.ledger}): consortium genesis and the models trained alone")
    ledger, ledger_path = create_backend(config.ledger, ledger_path,
                                         [inst.id for inst in institutions])
    group_results: dict[str, GroupResult] = {}
    validation_auc: dict[str, float] = {}
    try:
        registry = ledger
        versions = record_local_results(registry, institutions, alone, dataset)
        t = timed("ledger_models", t)
        with Committee(config.n_parties, round_timeout=ROUND_TIMEOUT) as committee:
            sum_fn = secure_aggregation(committee)
            prior = consortium_class_prior(institutions, n_classes, sum_fn)
            if config.method == "hierarchical":
                log(f"[4/7] federated groups under secure aggregation (committee of "
                    f"{committee.size} compute parties): "
                    + "; ".join(f"{g.architecture}: {', '.join(g.members)}" for g in groups))
                alone_models = {(i.id, arch): tr.model for i in institutions
                                for arch, tr in zip(alone[i.id].architectures,
                                                    alone[i.id].trained, strict=True)}
                group_results = train_groups(
                    groups, institutions, dataset, config, jax.random.fold_in(keys.params, 30_000),
                    sum_fn, alone_models=alone_models,
                    on_round=group_round_recorder(registry, dataset), progress=progress)
                local = local_ensembles(group_results, institutions)
                versions = {name: {**versions[name], **kept} for name, kept in
                            record_fine_tuned(registry, group_results, institutions,
                                              dataset).items()}
                validation_auc = consortium_validation_auc(
                    {name: ens.predict for name, ens in local.items()}, institutions,
                    n_classes, sum_fn)
                predictors = {name: ens.predict for name, ens in local.items()}
                level1 = {name: ens.predict(dataset.test.images) for name, ens in local.items()}
                t = timed("groups", t)
            else:
                local = dict(alone)
                predictors = {inst.id: _predictor(alone[inst.id]) for inst in institutions}
                level1 = {inst.id: alone[inst.id].test_probs for inst in institutions}
            rule_name = resolve_rule(config.rule, config.method)
            weights = (own_weights if rule_name == "own_auc" and config.method == "ensemble_only"
                       else apply_rule(rule_name, RuleInputs(
                           institutions, predictors, n_classes, sum_fn, config.method,
                           validation_auc)))
            rule = prior
            if config.decision == "balanced":
                predictors = [_predictor(local[name]) for name in weights]
                rule = operating_point(
                    lambda x: weighted_mean([f(x) for f in predictors], list(weights.values())),
                    institutions, n_classes, sum_fn, prior)

            def decide(probs: np.ndarray) -> np.ndarray:
                return prior_corrected(probs, rule) if config.decision == "balanced" else probs

            plaintext_probs = weighted_mean(list(level1.values()), list(weights.values()))
            opens = "" if config.reveal == "mean" else " (opening only its labels)"
            log(f"[5/7] level 2: secure weighted mean by the committee{opens} over "
                f"{len(institutions)} institutions, "
                + describe_weights(weights, rule_name, validation_auc or None))
            secure = run_secure_round(ledger, versions, level1, weights, committee, dataset,
                                      frac_bits=config.fixed_point_bits, decide=decide,
                                      reveal=config.reveal)
        t = timed("secure_round", t)
    finally:
        if ledger.kind == "embedded":
            ledger.close()

    log("[6/7] baselines: centralized small CNN and FedAvg (homogeneous small CNN)")
    centralized = train_centralized(dataset, "cnn", config.train,
                                    jax.random.fold_in(keys.params, 10_000), progress=progress)
    fedavg = fedavg_train(institutions, dataset.test, jax.random.fold_in(keys.params, 20_000),
                          config.train, arch="cnn", progress=progress)
    t = timed("baselines", t)

    result = ExperimentResult(
        config=config, dataset=dataset, institutions=institutions, alone=alone,
        weights=weights, plaintext_probs=plaintext_probs,
        plaintext=evaluate(decide(plaintext_probs), labels, n_classes, warn=False),
        secure=secure, secure_eval=evaluate(
            decide(opened_probabilities(secure, n_classes)) if secure.mean is not None
            else opened_probabilities(secure, n_classes), labels, n_classes, warn=False),
        centralized=centralized, fedavg=fedavg, versions=versions, ledger_path=ledger_path,
        seconds=stage, groups=group_results, local=local, validation_auc=validation_auc,
        ensemble_only_probs=only_probs,
        ensemble_only=evaluate(only_probs, labels, n_classes, warn=False), level1_probs=level1,
        class_prior=prior, decision_prior=rule,
        ledger_backend=None if ledger.kind == "embedded" else ledger)
    if write:
        from efl_toolkit.report import write_outputs

        log(f"[7/7] report: {Path(out_dir) / 'report.json'}")
        report = write_outputs(result, out_dir, total_seconds=time.perf_counter() - started)
        result = dataclasses.replace(result, report=report)
    return result
