"""Experiment configuration: frozen dataclasses and named presets.

Two presets ship with the toolkit:

* ``classroom_fast`` (the default): few epochs, three institutions; the whole demo finishes in
  about a minute on a 2-core laptop, and every notebook runs under it in CI.
* ``paper``: more epochs and more institutions, closer to the paper's experiments.

The environment variable ``EFL_PRESET`` selects the preset that :func:`get_config` returns when
no name is given; CI sets it to ``classroom_fast`` so notebooks stay quick.

Example:
    >>> from efl_toolkit.config import get_config
    >>> cfg = get_config("classroom_fast")
    >>> cfg.n_institutions
    3
    >>> cfg.replace(n_institutions=5).n_institutions
    5
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

METHODS = ("hierarchical", "ensemble_only")
DECISIONS = ("balanced", "argmax")
PRESET_ENV_VAR = "EFL_PRESET"
DEFAULT_PRESET = "classroom_fast"
PARTITIONS = ("iid", "dirichlet", "quantity")
#: What the level-2 secure round opens: the weighted mean (and its labels) or only the labels.
REVEALS = ("mean", "labels")
#: Ledger engines: ``embedded`` (signed SQLite file), ``evm`` (in-process EVM chain) or
#: ``evm:RPC_URL`` (any Ethereum JSON-RPC node); see :mod:`efl_toolkit.ledger.backend`.
LEDGERS = ("embedded", "evm", "evm:RPC_URL")
#: ``rule="auto"``: the method's own level-2 rule (``consortium_auc`` for ``hierarchical``,
#: ``own_auc`` for ``ensemble_only``); see :mod:`efl_toolkit.federation.level2`.
AUTO_RULE = "auto"
#: Seeds are in ``[0, SEED_LIMIT)``: they become 32-bit RNG keys.
SEED_LIMIT = 2**32


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the option and its range."""


def _check_number(name: str, value, *, integer: bool = False, low: float | None = None,
                  low_open: bool = False, high: float | None = None,
                  high_open: bool = False) -> None:
    """Raises :class:`ConfigError` unless ``value`` is a finite number in the given range."""
    kind = "an integer" if integer else "a number"
    ok_type = (isinstance(value, numbers.Integral) if integer
               else isinstance(value, numbers.Real)) and not isinstance(value, bool)
    if not ok_type or not math.isfinite(float(value)):
        raise ConfigError(f"{name} must be {kind}, finite, got {value!r}")
    def show(bound) -> str:
        return str(bound) if isinstance(bound, int) else f"{bound:g}"

    if low is not None and (value <= low if low_open else value < low):
        raise ConfigError(f"{name} must be {'>' if low_open else '>='} {show(low)}, got "
                          f"{value!r}")
    if high is not None and (value >= high if high_open else value > high):
        raise ConfigError(f"{name} must be {'<' if high_open else '<='} {show(high)}, got "
                          f"{value!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of local training at one institution.

    Attributes:
        epochs: Maximum number of passes over the institution's training share.
        batch_size: Mini-batch size.
        learning_rate: Peak learning rate of the Adam(W) optimiser.
        weight_decay: Decoupled weight decay.
        patience: Early stopping: epochs without validation improvement before stopping.
        augment: Random flips and small shifts of training images.
    """

    epochs: int = 15
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 5
    augment: bool = True

    def __post_init__(self) -> None:
        _check_number("train.epochs", self.epochs, integer=True, low=1)
        _check_number("train.batch_size", self.batch_size, integer=True, low=1)
        _check_number("train.learning_rate", self.learning_rate, low=0, low_open=True)
        _check_number("train.weight_decay", self.weight_decay, low=0)
        _check_number("train.patience", self.patience, integer=True, low=0)


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines one experiment run.

    Attributes:
        name: Preset name this config came from.
        dataset: Embedded dataset name or a path to a MedMNIST-format ``.npz``.
        n_institutions: Number of institutions the training split is partitioned into.
        partition: ``"iid"``, ``"dirichlet"`` or ``"quantity"``.
        dirichlet_alpha: Concentration of the Dirichlet label skew (smaller: more skewed).
        device_skew: Give each institution its own imaging-device profile.
        val_fraction: Share of each institution's data held out for its own validation.
        n_parties: Compute parties of the committee that runs every secure round (``M >= 3``;
            the institutions only hand them additive shares, see ``docs/secure.md``).
        fixed_point_bits: Fractional bits of the fixed-point encoding of secure rounds.
        method: ``"hierarchical"`` (federated groups, then the secure ensemble; the default)
            or ``"ensemble_only"`` (each institution trains alone, then the secure ensemble:
            the first design).
        rounds: Maximum federated-averaging rounds per group.
        local_epochs: Local epochs per federated round.
        round_patience: Stop a group after this many rounds without a better consortium
            validation loss.
        finetune_epochs: Epochs a keeper may fine-tune its group model on its own share (0:
            never).
        decision: How the method's level 2 turns probabilities into labels: ``"balanced"``
            (two classes: the operating point with the best ``TPR - FPR`` on the pooled
            validation shares; more classes: divide by the consortium's class prior; both
            computed securely by the committee) or ``"argmax"``.
        train: Local training hyper-parameters.
        seed: Master seed; data, parameter and sampling keys are derived from it separately.
        rule: The level-2 weighting rule, a name registered in
            :mod:`efl_toolkit.federation.level2` (``consortium_auc``, ``own_auc``, ``equal``,
            ``n_train`` or one's own, :func:`~efl_toolkit.federation.level2.register_rule`);
            ``"auto"`` (the default): ``consortium_auc`` for ``hierarchical``, ``own_auc`` for
            ``ensemble_only``.
        reveal: What the level-2 secure round opens: ``"mean"`` (the weighted mean, the
            default) or ``"labels"`` (only the argmax labels; needs ``decision="argmax"``,
            and AUC is then computed from the opened labels).
        architectures: ``{capacity tier: (architecture, ...)}``: what institutions of that tier
            train (names registered in :mod:`efl_toolkit.models.zoo`, e.g. by
            :func:`~efl_toolkit.models.register_architecture`). A tier not named keeps the
            measured assignment (:func:`~efl_toolkit.models.capacity.assign_architectures`:
            28x28 grayscale, 2 classes: tiny logistic, small mlp + logistic, medium cnn +
            vit, large resnet + cnn).
        ledger: Where the ledger lives: ``"embedded"`` (default, ``ledger.sqlite``), ``"evm"``
            (a Vyper contract on an in-process EVM chain) or ``"evm:http://host:port"`` (on any
            Ethereum JSON-RPC node: Anvil, Besu/Geth proof-of-authority).
    """

    name: str = DEFAULT_PRESET
    dataset: str = "breastmnist"
    n_institutions: int = 3
    partition: str = "dirichlet"
    dirichlet_alpha: float = 1.0
    device_skew: bool = True
    val_fraction: float = 0.15
    n_parties: int = 3
    fixed_point_bits: int = 16
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    method: str = "hierarchical"
    rounds: int = 10
    local_epochs: int = 1
    round_patience: int = 4
    finetune_epochs: int = 3
    decision: str = "balanced"
    rule: str = AUTO_RULE
    reveal: str = "mean"
    # a dict is unhashable: left out of the hash (configs stay hashable), kept in ``==``
    architectures: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    ledger: str = "embedded"

    def __post_init__(self) -> None:
        """Rejects values that cannot work, up front, with one message naming the option
        (non-finite or non-positive numbers, e.g. ``dirichlet_alpha=inf``)."""
        _check_number("n_institutions", self.n_institutions, integer=True, low=1)
        if self.partition not in PARTITIONS:
            raise ConfigError(f"partition must be one of {list(PARTITIONS)}, got "
                              f"{self.partition!r}")
        _check_number("dirichlet_alpha", self.dirichlet_alpha, low=0, low_open=True)
        _check_number("val_fraction", self.val_fraction, low=0, low_open=True, high=1,
                      high_open=True)  # own validation drives early stopping and the weights
        _check_number("n_parties", self.n_parties, integer=True, low=3)
        _check_number("fixed_point_bits", self.fixed_point_bits, integer=True, low=4, high=20)
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {list(METHODS)}, got {self.method!r}")
        _check_number("rounds", self.rounds, integer=True, low=1)
        _check_number("local_epochs", self.local_epochs, integer=True, low=1)
        _check_number("round_patience", self.round_patience, integer=True, low=1)
        _check_number("finetune_epochs", self.finetune_epochs, integer=True, low=0)
        if self.decision not in DECISIONS:
            raise ConfigError(f"decision must be one of {list(DECISIONS)}, got "
                              f"{self.decision!r}")
        _check_number("seed", self.seed, integer=True, low=0, high=SEED_LIMIT,
                      high_open=True)  # RNG keys take 32-bit seeds
        if not isinstance(self.train, TrainConfig):
            raise ConfigError(f"train must be a TrainConfig, got {type(self.train).__name__}")
        self._check_level2()
        if not isinstance(self.ledger, str) or not (
                self.ledger in ("embedded", "evm")
                or self.ledger.startswith(("evm:http://", "evm:https://"))):
            raise ConfigError(f"ledger must be one of {list(LEDGERS)} (an http:// or https:// "
                              f"URL), got {self.ledger!r}")
        object.__setattr__(self, "architectures", _checked_architectures(self.architectures))

    def _check_level2(self) -> None:
        if not isinstance(self.rule, str) or not self.rule:
            raise ConfigError(f"rule must be a rule name (a string), got {self.rule!r}")
        if self.rule != AUTO_RULE:
            from efl_toolkit.federation.level2 import rule_names  # heavy: only when named

            if self.rule not in rule_names():
                raise ConfigError(f"rule must be {AUTO_RULE!r} or a registered level-2 rule "
                                  f"{list(rule_names())}, got {self.rule!r}")
        if self.reveal not in REVEALS:
            raise ConfigError(f"reveal must be one of {list(REVEALS)}, got {self.reveal!r}")
        if self.reveal == "labels" and self.decision != "argmax":
            raise ConfigError("reveal='labels' opens only the argmax labels: it needs "
                              f"decision='argmax', got decision={self.decision!r}")

    def replace(self, **changes) -> ExperimentConfig:
        """Returns a copy with ``changes`` applied (``train`` may be a dict of changes)."""
        train = changes.pop("train", None)
        if isinstance(train, dict):
            train = dataclasses.replace(self.train, **train)
        if train is not None:
            changes["train"] = train
        return dataclasses.replace(self, **changes)


def _checked_architectures(mapping) -> dict[str, tuple[str, ...]]:
    """``{tier: (names...)}`` with known tiers and registered, distinct architecture names."""
    if not isinstance(mapping, Mapping):
        raise ConfigError("architectures must be a mapping {capacity tier: [architecture, ...]}"
                          f", got {type(mapping).__name__}")
    from efl_toolkit.data.institution import CAPACITY_TIERS as TIERS  # no JAX

    checked = {}
    for tier, names in mapping.items():
        if tier not in TIERS:
            raise ConfigError(f"architectures: unknown capacity tier {tier!r}; choose from "
                              f"{list(TIERS)}")
        if isinstance(names, str) or not isinstance(names, (list, tuple)) or not names or \
                not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
            raise ConfigError(f"architectures.{tier} must be a non-empty list of distinct "
                              f"architecture names, got {names!r}")
        checked[tier] = tuple(names)
    if checked:
        from efl_toolkit.models.zoo import architecture_names  # heavy: only when named

        known = architecture_names()
        for tier, names in checked.items():
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ConfigError(f"architectures.{tier}: unknown architecture {unknown[0]!r}; "
                                  f"registered: {list(known)}")
    return checked


PRESETS: dict[str, ExperimentConfig] = {
    "classroom_fast": ExperimentConfig(
        name="classroom_fast",
        n_institutions=3,
        train=TrainConfig(epochs=12, batch_size=32, learning_rate=1e-3, patience=4,
                          augment=False),
    ),
    "paper": ExperimentConfig(
        name="paper",
        n_institutions=5,
        train=TrainConfig(epochs=40, batch_size=32, learning_rate=1e-3, patience=15),
        rounds=30, local_epochs=2, round_patience=8, finetune_epochs=5,
    ),
}


def get_config(name: str | None = None, **overrides) -> ExperimentConfig:
    """Returns a preset by name (default: ``$EFL_PRESET`` or ``classroom_fast``).

    Args:
        name: Preset name; ``None`` reads the ``EFL_PRESET`` environment variable.
        **overrides: Fields to replace in the preset (``train`` may be a dict).

    Raises:
        ValueError: If the preset name is unknown; :class:`ConfigError` (a ``ValueError``) if an
            override cannot work (e.g. ``dirichlet_alpha=inf``, ``n_institutions=0``).
    """
    name = name or os.environ.get(PRESET_ENV_VAR) or DEFAULT_PRESET
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    config = PRESETS[name]
    return config.replace(**overrides) if overrides else config


_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def _check_toml_types(cls, table: Mapping, where: str, prefix: str = "") -> dict:
    """The fields of ``table`` checked against ``cls``'s fields: known names, TOML types."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    changes = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(f"{where}: unknown field {name!r}; fields: "
                              f"{', '.join(prefix + f for f in fields)}")
        kind = str(fields[key].type)
        if key == "train":
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}: field 'train' must be a table [train], got "
                                  f"{type(value).__name__}")
            value = _check_toml_types(TrainConfig, value, where, "train.")
        elif kind in _TYPES:
            ok = isinstance(value, _TYPES[kind]) and not (kind != "bool"
                                                          and isinstance(value, bool))
            if not ok:
                raise ConfigError(f"{where}: field {name!r} must be {kind}, got "
                                  f"{type(value).__name__} {value!r}")
        changes[key] = value
    return changes


def config_from_toml(path: str | os.PathLike, base: ExperimentConfig | None = None
                     ) -> ExperimentConfig:
    """A config from a TOML file: ``base`` (default: the preset the file's ``name`` names, or
    :func:`get_config`'s) with the file's fields applied.

    Any :class:`ExperimentConfig` field may appear at the top level; ``[train]`` holds
    :class:`TrainConfig` fields and ``[architectures]`` maps capacity tiers to lists of
    architecture names. ``name`` must be a preset; it starts from that preset (unless ``base``
    is given: then ``base`` and its name win, as ``efl demo --preset`` does).

    Raises:
        ConfigError: One line naming the file and the field: a missing or unreadable file, bad
            TOML, an unknown field, a wrong type or a value out of range.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        ...     _ = f.write('rule = "equal"\\n[train]\\nepochs = 2\\n')
        >>> cfg = config_from_toml(f.name)
        >>> cfg.rule, cfg.train.epochs
        ('equal', 2)
    """
    import tomllib

    where = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            table = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such config file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{where}: cannot read the config file ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{where}: not valid TOML ({error})") from None
    changes = _check_toml_types(ExperimentConfig, table, where)
    if base is None:
        name = changes.get("name")
        if name is not None and name not in PRESETS:
            raise ConfigError(f"{where}: name = {name!r} is not a preset (one of "
                              f"{', '.join(sorted(PRESETS))}); the preset names the run")
        base = get_config(name)
    else:  # the caller chose the preset (``--preset``): it names the run
        changes.pop("name", None)
    try:
        return base.replace(**changes)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None
    except TypeError as error:  # e.g. a TrainConfig field given twice
        raise ConfigError(f"{where}: {error}") from None
