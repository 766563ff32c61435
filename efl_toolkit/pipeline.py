"""The end-to-end experiment behind ``efl demo`` and notebook 06.

One call runs the flow of DESIGN.md: load the data, partition it into institutions, train each
institution's capacity-assigned models (level 1: its local ensemble), record the consortium and
every model version on the ledger, combine the institutions' probabilities in a secure MPyC
round of real party processes (level 2), record the round and its result, score everything
against the baselines (centralized, each institution alone, the plaintext ensemble, FedAvg on a
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from efl_toolkit.baselines import FedAvgRun, fedavg_train, train_centralized
from efl_toolkit.config import ExperimentConfig
from efl_toolkit.data import Dataset, Institution, institutions_from_config, load_dataset
from efl_toolkit.ensemble import weighted_mean
from efl_toolkit.federation.level1 import LocalResult, train_each_alone
from efl_toolkit.federation.level2 import level2_weights
from efl_toolkit.federation.record import record_local_results
from efl_toolkit.ledger import Consortium, Ledger, ModelRegistry, hash_array, keystore_path
from efl_toolkit.rng import experiment_keys
from efl_toolkit.secure import DEFAULT_FRAC_BITS, SecureEnsembleResult, secure_ensemble
from efl_toolkit.training import EvaluationResult, evaluate

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
        alone: Each institution's level-1 result (its models and local ensemble), by id.
        weights: Level-2 weight of each institution (from its own validation share).
        plaintext_probs: Plaintext weighted ensemble of the level-1 test probabilities.
        plaintext: Its evaluation.
        secure: The secure round (real MPyC party processes).
        secure_eval: Evaluation of the secure ensemble's opened mean.
        centralized: The pooled-data upper bound.
        fedavg: FedAvg on a homogeneous small CNN.
        versions: Ledger version of every model, ``{institution: {architecture: version}}``.
        ledger_path: The ledger file.
        seconds: Wall time per stage.
        report: The ``report.json`` content (``None`` when nothing was written).
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
    for name in ("report.json", "report.md"):  # report.json last written = run complete
        (out / name).unlink(missing_ok=True)
    for leftover in [*out.glob(".report.*.tmp-*"), *out.glob(f"{LEDGER_FILE}.checkpoint*")]:
        leftover.unlink(missing_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal", ".creating", ".creating-wal",
                   ".creating-shm"):
        Path(f"{ledger_path}{suffix}").unlink(missing_ok=True)
    return ledger_path


def with_helper_parties(level1_probs: dict[str, np.ndarray], weights: dict[str, float],
                        n_parties: int | None) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Adds compute-only parties so that ``n_parties`` processes run the round.

    Every institution is one party. Extra parties (``helper-1``...) hold no data: they input a
    uniform matrix with weight 0, so the weighted mean is unchanged, and they raise the number of
    shares an adversary must collect (``t < M/2``). Fewer parties than institutions would make a
    party hold two institutions' inputs in the clear, so that is refused.

    Example:
        >>> probs, w = with_helper_parties({"a": np.eye(2), "b": np.eye(2)}, {"a": .5, "b": .5}, 3)
        >>> list(probs), w["helper-1"]
        (['a', 'b', 'helper-1'], 0.0)
    """
    n_inst = len(level1_probs)
    if n_parties is None or n_parties == n_inst:
        return dict(level1_probs), dict(weights)
    if n_parties < n_inst:
        raise ValueError(f"--parties {n_parties}: each of the {n_inst} institutions must be its "
                         f"own MPyC party, so at least {n_inst} parties are needed")
    shape = next(iter(level1_probs.values())).shape
    inputs, input_weights = dict(level1_probs), dict(weights)
    for k in range(1, n_parties - n_inst + 1):
        inputs[f"helper-{k}"] = np.full(shape, 1.0 / shape[1])
        input_weights[f"helper-{k}"] = 0.0
    return inputs, input_weights


def run_secure_round(ledger: Ledger, versions: dict[str, dict[str, str]],
                     level1_probs: dict[str, np.ndarray], weights: dict[str, float],
                     n_parties: int | None, dataset: Dataset, *,
                     frac_bits: int = DEFAULT_FRAC_BITS) -> SecureEnsembleResult:
    """Records ROUND_START, runs the secure round, records ROUND_RESULT (or ROUND_FAILED).

    ``frac_bits`` is the fixed-point precision of the round (``config.fixed_point_bits``).

    Raises:
        SecureRoundError: The round failed (recorded on the ledger first).
    """
    registry = ModelRegistry(ledger)
    coordinator = next(iter(versions))
    inputs, input_weights = with_helper_parties(level1_probs, weights, n_parties)
    protocol = {"protocol": "mpyc-shamir-weighted-mean", "reveal": "mean",
                "parties": len(inputs), "weights": input_weights, "frac_bits": frac_bits,
                "queries": len(dataset.test), "query_set": f"{dataset.name}:test"}
    all_versions = [v for per_inst in versions.values() for v in per_inst.values()]
    registry.start_round(coordinator, ROUND_ID, all_versions, protocol)
    try:
        result = secure_ensemble(inputs, input_weights, reveal="mean", timeout=ROUND_TIMEOUT,
                                 frac_bits=frac_bits)
    except Exception as error:
        registry.fail_round(coordinator, ROUND_ID, f"{type(error).__name__}: {error}"[:500])
        raise
    metrics = evaluate(result.mean, dataset.test.labels, dataset.n_classes, warn=False)
    round_metrics = {"accuracy": round(float(metrics.accuracy), 6), "seconds":
                     round(result.seconds, 3), "parties": result.n_parties}
    if np.isfinite(metrics.auc):
        round_metrics["auc"] = round(float(metrics.auc), 6)
    registry.finish_round(coordinator, ROUND_ID, hash_array(result.mean), round_metrics)
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
    log(f"[1/6] {dataset.name}: {len(dataset.train)} train / {len(dataset.val)} val / "
        f"{len(dataset.test)} test, {dataset.n_classes} classes, images {dataset.image_shape}")
    institutions = tuple(institutions_from_config(dataset, config))
    ledger_path = prepare_out_dir(out_dir)
    t = timed("data", started)

    log(f"[2/6] level 1: {len(institutions)} institutions train their own models")
    alone = train_each_alone(institutions, dataset, config.train, keys.params,
                             progress=progress)
    for inst in institutions:
        res = alone[inst.id]
        log(f"      {inst.id:<12} {inst.capacity.tier:<7} {'+'.join(res.architectures):<14} "
            f"n_train={inst.n_train:<5} test acc={res.test.accuracy:.3f} auc={res.test.auc:.3f}")
    t = timed("local_training", t)

    log("[3/6] ledger: consortium genesis and model commits")
    consortium = Consortium.generate([inst.id for inst in institutions])
    ledger = Ledger.create(ledger_path, consortium, save_keys=True)
    try:
        versions = record_local_results(ModelRegistry(ledger), institutions, alone, dataset)
        t = timed("ledger_models", t)

        weights = level2_weights(institutions, alone, dataset.n_classes)
        level1 = {inst.id: alone[inst.id].test_probs for inst in institutions}
        plaintext_probs = weighted_mean(list(level1.values()), list(weights.values()))
        log(f"[4/6] level 2: secure weighted mean over {len(institutions)} MPyC party "
            f"processes (weights {', '.join(f'{w:.2f}' for w in weights.values())})")
        secure = run_secure_round(ledger, versions, level1, weights, config.n_parties, dataset,
                                  frac_bits=config.fixed_point_bits)
        t = timed("secure_round", t)
    finally:
        ledger.close()

    log("[5/6] baselines: centralized small CNN and FedAvg (homogeneous small CNN)")
    centralized = train_centralized(dataset, "cnn", config.train,
                                    jax.random.fold_in(keys.params, 10_000), progress=progress)
    fedavg = fedavg_train(institutions, dataset.test, jax.random.fold_in(keys.params, 20_000),
                          config.train, arch="cnn", progress=progress)
    t = timed("baselines", t)

    n_classes = dataset.n_classes
    result = ExperimentResult(
        config=config, dataset=dataset, institutions=institutions, alone=alone,
        weights=weights, plaintext_probs=plaintext_probs,
        plaintext=evaluate(plaintext_probs, dataset.test.labels, n_classes, warn=False),
        secure=secure,
        secure_eval=evaluate(secure.mean, dataset.test.labels, n_classes, warn=False),
        centralized=centralized, fedavg=fedavg, versions=versions, ledger_path=ledger_path,
        seconds=stage)
    if write:
        from efl_toolkit.report import write_outputs

        log(f"[6/6] report: {Path(out_dir) / 'report.json'}")
        report = write_outputs(result, out_dir, total_seconds=time.perf_counter() - started)
        result = dataclasses.replace(result, report=report)
    return result
