"""Federated groups: institutions that afford the same architecture learn it together.

The paper's "hierarchical ensemble *and* federated learning" (Stephanie et al. 2023): for every
architecture that some institution keeps in its local ensemble, the *group* is every
institution whose capacity affords training it (:func:`form_groups`). The group trains one
model by federated averaging (McMahan et al. 2017, :mod:`efl_toolkit.federation.fedavg`); each
round's weighted sum of the members' models goes through the committee's **secure
aggregation** (:meth:`efl_toolkit.secure.Committee.sum`), so no member's model is seen in the
clear. After every round the members score the new global model on their own validation
shares and the committee sums those scores too (a consortium-wide validation AUC and loss); the
best round's model is kept. Finally each *keeper* (a member whose local ensemble holds the
architecture) may fine-tune it on its own share and keeps the fine-tuned model only if its own
validation loss improves. A group of one trains alone, as in level 1.

Faults are part of the protocol: a member whose update holds NaN or has the wrong shapes is
excluded before anything is shared (named in the round record); a member that drops out of a
round is left out by the committee's agreement; the round goes on over the others.

Example:
    >>> from efl_toolkit.data import load_dataset, make_institutions
    >>> ds = load_dataset("breastmnist")
    >>> insts = make_institutions(ds, 3, seed=0)
    >>> [(g.architecture, g.members, g.keepers) for g in form_groups(insts, ds)][:2]
    [('logistic', ('hospital-a', 'hospital-b', 'hospital-c'), ('hospital-a',)), \
('mlp', ('hospital-a', 'hospital-b', 'hospital-c'), ('hospital-a',))]
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np
from flax import nnx

from efl_toolkit.config import TrainConfig
from efl_toolkit.data.institution import Institution
from efl_toolkit.data.medmnist import Dataset
from efl_toolkit.federation.aggregation import SumFn, pooled_auc
from efl_toolkit.federation.fedavg import (
    FedAvgState,
    fedavg_init,
    fedavg_model,
    local_updates,
    next_state,
)
from efl_toolkit.federation.level1 import institution_architectures
from efl_toolkit.models.capacity import estimate_cost, fits
from efl_toolkit.models.zoo import architecture_names
from efl_toolkit.progress import Progress
from efl_toolkit.training.local import predict_proba, train_local

FAULTS = ("drop", "nan", "shape")


@dataclass(frozen=True)
class Group:
    """One federated group.

    Attributes:
        architecture: The model structure the group trains.
        members: Institutions whose capacity affords it (they train it together).
        keepers: Members whose local ensemble includes it.
    """

    architecture: str
    members: tuple[str, ...]
    keepers: tuple[str, ...]

    @property
    def alone(self) -> bool:
        return len(self.members) == 1


def form_groups(institutions: Sequence[Institution], dataset: Dataset) -> tuple[Group, ...]:
    """One group per architecture that some institution keeps (level-1 assignment), with every
    institution that affords it alone (:func:`~efl_toolkit.models.capacity.fits`) as a member.

    Raises:
        ValueError: An institution whose capacity affords no architecture (named, with what
            the cheapest one needs).
    """
    shape, n_classes = dataset.image_shape, dataset.n_classes
    costs = {a: estimate_cost(a, shape, n_classes) for a in architecture_names()}
    for inst in institutions:
        if not any(fits(c, inst.capacity) for c in costs.values()):
            cheapest = min(costs.values(), key=lambda c: c.train_flops_per_sample)
            raise ValueError(
                f"{inst.id}: its capacity ({inst.capacity.compute_gflops:g} GFLOP per epoch, "
                f"{inst.capacity.storage_mb:g} MB) affords no architecture; the cheapest, "
                f"{cheapest.arch}, needs {cheapest.epoch_gflops(1000):.3g} GFLOP per epoch and "
                f"{cheapest.storage_mb:.3g} MB")
    keeps = {inst.id: institution_architectures(inst, dataset) for inst in institutions}
    groups = []
    for arch in architecture_names():
        keepers = tuple(i.id for i in institutions if arch in keeps[i.id])
        if keepers:
            members = tuple(i.id for i in institutions
                            if i.id in keepers or fits(costs[arch], i.capacity))
            groups.append(Group(arch, members, keepers))
    return tuple(groups)


@dataclass(frozen=True)
class GroupRound:
    """What happened in one federated round of a group (recorded on the ledger)."""

    round: int
    participants: tuple[str, ...]
    dropped: tuple[str, ...]
    excluded: dict[str, str]
    val_loss: float
    val_auc: float
    seconds: float
    update_sha256: str
    version: str | None = None


@dataclass(frozen=True)
class GroupResult:
    """A trained group.

    Attributes:
        group: The group.
        state: The kept global model (best consortium validation loss).
        rounds: One :class:`GroupRound` per round run (empty for a group of one).
        best_round: Round whose global model was kept (0 for a group of one).
        models: The model each keeper puts in its local ensemble.
        fine_tuned: Whether that keeper kept its fine-tuned model.
        seconds: Wall time.
    """

    group: Group
    state: FedAvgState | None
    rounds: tuple[GroupRound, ...]
    best_round: int
    models: dict[str, nnx.Module]
    fine_tuned: dict[str, bool] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def version(self) -> str | None:
        """Ledger version of the kept global model, if the rounds were recorded."""
        kept = [r.version for r in self.rounds if r.round == self.best_round]
        return kept[0] if kept else None

    def summary(self) -> dict:
        """JSON-ready facts for ``report.json``."""
        return {"architecture": self.group.architecture, "members": list(self.group.members),
                "keepers": list(self.group.keepers), "alone": self.group.alone,
                "rounds": len(self.rounds), "best_round": self.best_round,
                "version": self.version, "fine_tuned": dict(self.fine_tuned),
                "dropped": {str(r.round): list(r.dropped) for r in self.rounds if r.dropped},
                "excluded": {str(r.round): r.excluded for r in self.rounds if r.excluded},
                "consortium_val_loss": [round(r.val_loss, 6) for r in self.rounds],
                "consortium_val_auc": [None if np.isnan(r.val_auc) else round(r.val_auc, 6)
                                       for r in self.rounds],
                "seconds": round(self.seconds, 3)}


def flatten(tree: Any) -> tuple[np.ndarray, list[tuple[str, tuple[int, ...]]]]:
    """The float leaves of a variable tree as one ``float64`` vector, and their paths/shapes."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    parts, spec = [], []
    for path, leaf in leaves:
        arr = np.asarray(leaf)
        if np.issubdtype(arr.dtype, np.floating):
            parts.append(arr.astype(np.float64).ravel())
            spec.append((jax.tree_util.keystr(path), arr.shape))
    return (np.concatenate(parts) if parts else np.zeros(0)), spec


def unflatten(vector: np.ndarray, like: Any) -> Any:
    """The tree ``like`` with its float leaves replaced, in order, from ``vector``."""
    leaves, treedef = jax.tree.flatten(like)
    out, offset = [], 0
    for leaf in leaves:
        arr = np.asarray(leaf)
        if np.issubdtype(arr.dtype, np.floating):
            out.append(vector[offset:offset + arr.size].reshape(arr.shape).astype(arr.dtype))
            offset += arr.size
        else:
            out.append(leaf)
    return jax.tree.unflatten(treedef, out)


def update_problem(vector: np.ndarray, spec, expected) -> str | None:
    """Why an update must not be shared: wrong shapes or non-finite values; else ``None``."""
    if spec != expected:
        for (path, shape), (want_path, want) in zip(spec, expected, strict=False):
            if (path, shape) != (want_path, want):
                return f"wrong shapes: {path} is {list(shape)}, the group model has {list(want)}"
        return f"wrong shapes: {len(spec)} arrays, the group model has {len(expected)}"
    if not np.all(np.isfinite(vector)):
        return f"NaN or infinite values in {int(np.sum(~np.isfinite(vector)))} entries"
    return None


def consortium_val_loss(model: nnx.Module, members: Sequence[Institution],
                        sum_fn: SumFn) -> float:
    """Cross-entropy of ``model`` pooled over the members' validation shares, securely.

    Each member computes its mean loss on its own share; the committee forms the
    ``n_val``-weighted mean, so no member's own score is revealed.
    """
    vectors, weights = {}, {}
    for inst in members:
        if inst.n_val == 0:
            continue
        probs = predict_proba(model, inst.val.images)
        picked = probs[np.arange(inst.n_val), inst.val.labels]
        vectors[inst.id] = np.array([float(np.mean(-np.log(np.clip(picked, 1e-7, 1.0))))])
        weights[inst.id] = float(inst.n_val)
    if not vectors:
        return float("nan")
    return float(sum_fn(vectors, weights, ())[0][0])


def _faulty(name: str, trees: dict, fault: str | None) -> None:
    if fault == "nan":
        trees[name] = jax.tree.map(lambda x: x * np.nan if np.issubdtype(np.asarray(x).dtype,
                                                                           np.floating) else x,
                                   trees[name])
    elif fault == "shape":
        leaves, treedef = jax.tree.flatten(trees[name])
        leaves[0] = np.zeros((*np.shape(leaves[0]), 2), dtype=np.asarray(leaves[0]).dtype)
        trees[name] = jax.tree.unflatten(treedef, leaves)


def federated_round(state: FedAvgState, members: Sequence[Institution], positions, key,
                    config: TrainConfig, sum_fn: SumFn, *, local_epochs: int = 1,
                    faults: Mapping[str, str] | None = None) -> tuple[FedAvgState, GroupRound]:
    """One round: local training, checks, secure aggregation of the ``n_train``-weighted mean.

    ``faults`` (for teaching and tests) makes a member ``"drop"`` out, or send ``"nan"`` or
    ``"shape"``-broken parameters, in this round.
    """
    started = time.perf_counter()
    faults = dict(faults or {})
    trained = local_updates(state, members, key, config, local_epochs=local_epochs,
                            positions=positions)
    graphdef = nnx.split(fedavg_model(state))[0]
    expected = flatten(nnx.split(fedavg_model(state))[1])[1]
    trees = {name: nnx.split(model)[1] for name, model in trained.items()}
    vectors, excluded = {}, {}
    for name in trees:
        _faulty(name, trees, faults.get(name))
        vector, spec = flatten(trees[name])
        problem = update_problem(vector, spec, expected)
        if problem:
            excluded[name] = problem
        else:
            vectors[name] = vector
    if not vectors:
        raise ValueError(f"round {state.round + 1}: every member's update was excluded: "
                         f"{excluded}")
    weights = {m.id: float(m.n_train) for m in members if m.id in vectors}
    absent = [name for name, f in faults.items() if f == "drop" and name in vectors]
    mean, included = sum_fn(vectors, weights, absent)
    like = trees[included[0]]
    new = next_state(state, graphdef, unflatten(mean, like),
                     [weights[n] / sum(weights[i] for i in included) for n in included])
    model = fedavg_model(new)
    n_classes = int(np.asarray(predict_proba(model, members[0].train.images[:1])).shape[1])
    record = GroupRound(
        round=new.round, participants=tuple(included),
        dropped=tuple(n for n in vectors if n not in included), excluded=excluded,
        val_loss=consortium_val_loss(model, members, sum_fn),
        val_auc=pooled_auc({"global": lambda x: predict_proba(model, x)},
                           [(m.id, m.val) for m in members], n_classes, sum_fn)["global"],
        seconds=time.perf_counter() - started,
        update_sha256=hashlib.sha256(np.ascontiguousarray(mean).tobytes()).hexdigest())
    return new, record


def selection_key(record: GroupRound) -> tuple[float, float]:
    """Rounds are ranked by consortium validation AUC, then by lower validation loss."""
    auc = -np.inf if np.isnan(record.val_auc) else record.val_auc
    return (auc, -record.val_loss if np.isfinite(record.val_loss) else -np.inf)


def train_group(group: Group, institutions: Mapping[str, Institution], dataset: Dataset,
                config: TrainConfig, key: jax.Array, sum_fn: SumFn, *, rounds: int,
                local_epochs: int = 1, patience: int = 5, finetune_epochs: int = 0,
                positions: Mapping[str, int] | None = None,
                faults: Mapping[int, Mapping[str, str]] | None = None,
                on_round: Callable[[GroupRound, FedAvgState], str | None] | None = None,
                progress: bool = False) -> GroupResult:
    """Trains one group: federated rounds under secure aggregation, then fine-tuning.

    Args:
        group: The group (see :func:`form_groups`).
        institutions: Every institution by id.
        dataset: Its image shape and class count are used.
        config: Local hyper-parameters (a group of one trains ``config.epochs`` alone).
        key: The group's key: ``fold_in(key, 0)`` initialises, ``fold_in(key, 1)`` drives the
            rounds (member keys folded in per round and roster position), ``fold_in(key, 2)``
            the fine-tuning.
        sum_fn: Secure aggregation (e.g. a committee's ``sum``; see :data:`SumFn`).
        rounds: Maximum federated rounds; stops after ``patience`` rounds without a better
            consortium validation score (:func:`selection_key`: the members' validation shares
            pooled by the committee: AUC, then loss).
        local_epochs: Local epochs per round.
        finetune_epochs: Fine-tuning epochs per keeper (0: none).
        positions: Roster position of each institution (default: order in ``institutions``).
        faults: ``{round: {member: "drop" | "nan" | "shape"}}`` (teaching and tests).
        on_round: Called after every round (e.g. to commit the global model); its return value
            is stored as the round's ``version``.
        progress: Show a progress bar.

    Returns:
        A :class:`GroupResult`.
    """
    started = time.perf_counter()
    positions = positions or {name: i for i, name in enumerate(institutions)}
    missing = [m for m in group.members if m not in institutions]
    if missing:
        raise ValueError(f"group {group.architecture}: members {missing} are not among the "
                         f"institutions given ({list(institutions)})")
    for r, per_member in (faults or {}).items():
        for member, fault in per_member.items():
            if fault not in FAULTS or member not in group.members:
                raise ValueError(f"faults[{r}][{member!r}] = {fault!r}: a fault is one of "
                                 f"{FAULTS} for a member of {list(group.members)}")
    members = [institutions[m] for m in group.members]
    if group.alone:
        inst = members[0]
        trained = train_local(group.architecture, inst.train, inst.val, jax.random.fold_in(key, 0),
                              config, n_classes=dataset.n_classes, progress=progress,
                              description=f"{inst.id} {group.architecture} (alone)")
        return GroupResult(group, None, (), 0, {inst.id: trained.model}, {inst.id: False},
                           time.perf_counter() - started)
    state = fedavg_init(group.architecture, dataset.image_shape, dataset.n_classes,
                        jax.random.fold_in(key, 0))
    best, records, since = state, [], 0
    bar = Progress(rounds, f"group {group.architecture} ({len(members)} members)",
                   unit="round", enabled=progress)
    for r in range(rounds):
        state, record = federated_round(
            state, members, [positions[m.id] for m in members], jax.random.fold_in(key, 1),
            config, sum_fn, local_epochs=local_epochs, faults=(faults or {}).get(r + 1))
        if on_round is not None:
            record = dataclasses.replace(record, version=on_round(record, state))
        records.append(record)
        bar.update(val_auc=f"{record.val_auc:.3f}", val_loss=f"{record.val_loss:.3f}")
        if len(records) == 1 or selection_key(record) > max(map(selection_key, records[:-1])):
            best, since = state, 0
        else:
            since += 1
            if since >= patience:
                break
    bar.finish(stopped_at=len(records) if len(records) < rounds else None, best=best.round)
    models, tuned = finetune(group, best, institutions, dataset, config,
                             jax.random.fold_in(key, 2), finetune_epochs, positions)
    return GroupResult(group, best, tuple(records), best.round, models, tuned,
                       time.perf_counter() - started)


def finetune(group: Group, state: FedAvgState, institutions: Mapping[str, Institution],
             dataset: Dataset, config: TrainConfig, key: jax.Array, epochs: int,
             positions: Mapping[str, int]) -> tuple[dict[str, nnx.Module], dict[str, bool]]:
    """Each keeper fine-tunes the group model on its own share; it keeps the fine-tuned model
    only if its own validation loss improves (else the group model)."""
    global_model = fedavg_model(state)
    models, tuned = {}, {}
    for name in group.keepers:
        inst = institutions[name]
        models[name], tuned[name] = global_model, False
        if epochs < 1 or inst.n_val == 0:
            continue
        probs = predict_proba(global_model, inst.val.images)
        base = float(np.mean(-np.log(np.clip(probs[np.arange(inst.n_val), inst.val.labels],
                                             1e-7, 1.0))))
        result = train_local(global_model, inst.train, inst.val,
                             jax.random.fold_in(key, positions[name]),
                             dataclasses.replace(config, epochs=epochs),
                             n_classes=dataset.n_classes, progress=False)
        if result.best_val_metric < base:
            models[name], tuned[name] = result.model, True
    return models, tuned


def train_groups(groups: Sequence[Group], institutions: Sequence[Institution], dataset: Dataset,
                 config, key: jax.Array, sum_fn: SumFn, *,
                 alone_models: Mapping[tuple[str, str], nnx.Module] | None = None,
                 on_round: Callable[[Group, GroupRound, FedAvgState], str | None] | None = None,
                 faults: Mapping[str, Mapping[int, Mapping[str, str]]] | None = None,
                 progress: bool = False) -> dict[str, GroupResult]:
    """Trains every group (``config``: an :class:`~efl_toolkit.config.ExperimentConfig`).

    Group ``g`` uses ``fold_in(key, g)``. A group of one reuses the level-1 model in
    ``alone_models[(institution, architecture)]`` when given (it trained alone already).
    ``faults`` maps an architecture to :func:`train_group`'s ``faults``.

    Returns:
        ``{architecture: GroupResult}``.
    """
    by_id = {inst.id: inst for inst in institutions}
    positions = {inst.id: i for i, inst in enumerate(institutions)}
    results = {}
    for g, group in enumerate(groups):
        reuse = (alone_models or {}).get((group.members[0], group.architecture))
        if group.alone and reuse is not None:
            results[group.architecture] = GroupResult(group, None, (), 0,
                                                      {group.members[0]: reuse},
                                                      {group.members[0]: False})
            continue
        hook = None if on_round is None else (lambda rec, st, grp=group: on_round(grp, rec, st))
        results[group.architecture] = train_group(
            group, by_id, dataset, config.train, jax.random.fold_in(key, g), sum_fn,
            rounds=config.rounds, local_epochs=config.local_epochs,
            patience=config.round_patience, finetune_epochs=config.finetune_epochs,
            positions=positions, faults=(faults or {}).get(group.architecture),
            on_round=hook, progress=progress)
    return results


@dataclass(frozen=True)
class LocalEnsemble:
    """An institution's local ensemble in the hierarchical method (level 1 after the groups).

    Attributes:
        name: Institution id.
        architectures: Its architectures (what its capacity assigns it).
        models: The model of each: the group model, its fine-tuned copy, or its own (alone).
        sources: ``"group"``, ``"fine-tuned"`` or ``"alone"`` per model.
    """

    name: str
    architectures: tuple[str, ...]
    models: tuple[nnx.Module, ...]
    sources: tuple[str, ...]

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Mean class probabilities of its models ``[n, C]``."""
        return np.mean([predict_proba(m, images) for m in self.models], axis=0)


def local_ensembles(results: Mapping[str, GroupResult],
                    institutions: Sequence[Institution]) -> dict[str, LocalEnsemble]:
    """Each institution's models from the groups it keeps, in its architectures' order."""
    out = {}
    for inst in institutions:
        archs, models, sources = [], [], []
        for arch, res in results.items():
            if inst.id in res.models:
                archs.append(arch)
                models.append(res.models[inst.id])
                sources.append("alone" if res.group.alone else
                               "fine-tuned" if res.fine_tuned.get(inst.id) else "group")
        out[inst.id] = LocalEnsemble(inst.id, tuple(archs), tuple(models), tuple(sources))
    return out
