"""A researcher's knobs (issue 13, item 7): every `efl demo` flag and a `--config FILE.toml`
reach the effective config and report.json; bad files fail before any training, one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from efl_toolkit.cli import build_parser, config_from_args, main
from efl_toolkit.config import ConfigError, ExperimentConfig, config_from_toml, get_config
from efl_toolkit.federation.level2 import describe_weights

EFL = [sys.executable, "-m", "efl_toolkit.cli"]
FLAGS = {  # flag, value, (field path in the effective config), expected value
    "--alpha": ("0.3", ("dirichlet_alpha",), 0.3),
    "--partition": ("quantity", ("partition",), "quantity"),
    "--epochs": ("1", ("train", "epochs"), 1),
    "--rule": ("equal", ("rule",), "equal"),
    "--reveal": ("labels", ("reveal",), "labels"),
    "--decision": ("argmax", ("decision",), "argmax"),
}


def _field(config: dict, path: tuple[str, ...]):
    for key in path:
        config = config[key]
    return config


def _args(*argv: str):
    return build_parser().parse_args(["demo", *argv])


@pytest.mark.parametrize("flag", sorted(FLAGS))
def test_each_flag_reaches_the_effective_config(flag):
    value, path, expected = FLAGS[flag]
    extra = ["--decision", "argmax"] if flag == "--reveal" else []
    config = config_from_args(_args(flag, value, *extra))
    assert _field(config.__dict__ | {"train": config.train.__dict__}, path) == expected
    assert _field(config.__dict__ | {"train": config.train.__dict__}, path) != \
        _field(get_config().__dict__ | {"train": get_config().train.__dict__}, path)


def test_toml_file_then_flags_override(tmp_path):
    toml = tmp_path / "variant.toml"
    toml.write_text('name = "paper"\nrule = "n_train"\nrounds = 3\n[train]\nepochs = 7\n'
                    'patience = 2\n[architectures]\nsmall = ["mlp"]\n')
    from_file = config_from_args(_args("--config", str(toml)))
    assert (from_file.name, from_file.n_institutions) == ("paper", 5)   # `name` picks a preset
    assert (from_file.rule, from_file.rounds, from_file.train.epochs) == ("n_train", 3, 7)
    assert from_file.train.patience == 2 and from_file.architectures == {"small": ("mlp",)}
    both = config_from_args(_args("--config", str(toml), "--rule", "equal", "--epochs", "2",
                                  "--preset", "classroom_fast"))
    assert (both.rule, both.train.epochs, both.rounds, both.name) == ("equal", 2, 3,
                                                                      "classroom_fast")


@pytest.mark.parametrize("content, message", [
    ('colour = "red"\n', "unknown field 'colour'"),
    ('[train]\nepoch = 3\n', "unknown field 'train.epoch'"),
    ('rounds = "ten"\n', "field 'rounds' must be int, got str 'ten'"),
    ('dirichlet_alpha = "low"\n', "field 'dirichlet_alpha' must be float"),
    ('device_skew = 1\n', "field 'device_skew' must be bool"),
    ('[train]\nepochs = 2.5\n', "field 'train.epochs' must be int"),
    ('train = 3\n', "field 'train' must be a table"),
    ('rounds = 0\n', "rounds must be >= 1, got 0"),
    ('reveal = "labels"\n', "reveal='labels' opens only the argmax labels"),
    ('[architectures]\nhuge = ["cnn"]\n', "unknown capacity tier 'huge'"),
    ('rounds = \n', "not valid TOML"),
    ('name = "papr"\n', "name = 'papr' is not a preset"),
    ('val_fraction = 0.0\n', "val_fraction must be > 0"),
])
def test_bad_toml_is_one_line_naming_field_and_file_exit_2(tmp_path, capsys, content, message):
    toml = tmp_path / "bad.toml"
    toml.write_text(content)
    out = tmp_path / "out"
    code = main(["demo", "--config", str(toml), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"efl demo: error: {toml}: ") and message in err, err
    assert not out.exists()                                   # checked before any training


def test_missing_toml_file(tmp_path, capsys):
    code = main(["demo", "--config", str(tmp_path / "nowhere.toml"), "--out",
                 str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err == f"efl demo: error: {tmp_path / 'nowhere.toml'}: no such " \
                                "config file\n"


def test_config_fields_are_validated_naming_the_field():
    with pytest.raises(ConfigError, match=r"^reveal must be one of \['mean', 'labels'\]"):
        ExperimentConfig(reveal="sum")
    with pytest.raises(ConfigError, match="^architectures.small must be a non-empty list"):
        ExperimentConfig(architectures={"small": []})
    with pytest.raises(ConfigError, match="^architectures must be a mapping"):
        ExperimentConfig(architectures=["cnn"])
    with pytest.raises(ConfigError, match="^rule must be a rule name"):
        ExperimentConfig(rule=3)
    assert config_from_toml.__doc__ and ExperimentConfig().rule == "auto"


def test_configs_with_architectures_stay_hashable_and_comparable():
    named = ExperimentConfig(architectures={"small": ["mlp"]})
    assert named.architectures == {"small": ("mlp",)}            # lists become tuples
    assert {named, ExperimentConfig()} and named != ExperimentConfig()
    assert named == ExperimentConfig(architectures={"small": ("mlp",)})


def test_zero_weights_are_explained():
    text = describe_weights({"a": 0.5, "b": 1e-7, "c": 0.5}, "consortium_auc",
                            {"a": 0.8, "b": 0.42, "c": 0.7})
    assert "b 0.00: AUC 0.420 at or below chance" in text and "a 0.50" in text
    assert "0.00" not in describe_weights({"a": 0.5, "b": 0.5}, "own_auc")
    assert "c 0.00: the rule gave (almost) no weight" in describe_weights(
        {"a": 0.5, "c": 0.0}, "mine")


PLUGIN = """
from flax import nnx
from efl_toolkit.models import register_architecture

class PluginLinear(nnx.Module):
    def __init__(self, image_shape, n_classes, *, rngs):
        h, w, c = image_shape
        self.linear = nnx.Linear(h * w * c, n_classes, rngs=rngs)

    def __call__(self, x, *, train=False, key=None):
        return self.linear(x.reshape(x.shape[0], -1))

register_architecture("plugin-linear", PluginLinear)
"""


@pytest.mark.parametrize("plugin, message", [
    ("nowhere.py", "--plugin {tmp}/nowhere.py: no such file"),
    ("broken.py", "--plugin {tmp}/broken.py: ZeroDivisionError: division by zero"),
    ("no_such_module_xyz", "--plugin no_such_module_xyz: ModuleNotFoundError"),
])
def test_a_bad_plugin_is_one_line_exit_2(tmp_path, capsys, plugin, message):
    (tmp_path / "broken.py").write_text("1 / 0\n")
    spec = plugin if plugin.startswith("no_such") else str(tmp_path / plugin)
    code = main(["demo", "--plugin", spec, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("efl demo: error: " + message.format(tmp=tmp_path)), err


def test_flags_and_file_reach_report_json(tmp_path, make_npz):
    """One real `efl demo` run: a plugin, a TOML file naming the plugin's architecture, and
    every flag, all in report.json, report.md and the ledger."""
    npz = make_npz(sizes=(90, 30, 30))
    (tmp_path / "my_models.py").write_text(PLUGIN)
    toml = tmp_path / "variant.toml"
    toml.write_text('rule = "n_train"\nrounds = 1\nfinetune_epochs = 0\nseed = 5\n'
                    '[train]\nepochs = 3\npatience = 1\n[architectures]\n'
                    'small = ["plugin-linear"]\n')
    out = tmp_path / "out"
    flags = [arg for flag, (value, _, _) in FLAGS.items() for arg in (flag, value)]
    run = subprocess.run([*EFL, "demo", "--dataset", str(npz), "--config", str(toml),
                          "--plugin", str(tmp_path / "my_models.py"),
                          *flags, "--out", str(out)], capture_output=True, text=True,
                         timeout=900, env={**os.environ, "EFL_PRESET": "classroom_fast"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    effective = report["config"]["effective"]
    for _value, path, expected in FLAGS.values():
        assert _field(effective, path) == expected, path
    assert (effective["rounds"], effective["seed"], effective["train"]["patience"]) == (1, 5, 1)
    assert report["config"]["level2_rule"] == "equal"               # the flag beats the file
    secure = report["ensembles"]["secure_mean"]
    assert secure["reveal"] == "labels" and secure["max_abs_diff_vs_plaintext"] is None
    weights = list(report["ensembles"]["plaintext_mean"]["weights"].values())
    assert weights == pytest.approx([1 / len(weights)] * len(weights)) and len(weights) == 3
    assert report["ledger"]["verified"] is True
    assert report["config"]["architectures_by_capacity"]["small"] == ["plugin-linear"]
    small = [inst for inst in report["institutions"] if inst["capacity"] == "small"]
    assert small and all(inst["architectures"] == ["plugin-linear"] for inst in small)
    from efl_toolkit.ledger import open_ledger

    with open_ledger(out / "ledger.sqlite") as view:
        assert "plugin-linear" in {v.architecture for v in view.model_versions()}
    markdown = (out / "report.md").read_text()
    assert "level-2 rule `equal`" in markdown and "opens `labels`" in markdown
    assert "only the labels were opened" in markdown


def test_builtin_rules_are_the_designs_weights():
    """`own_auc` is the first design's weighting, `consortium_auc` the method's, `n_train` and
    `equal` what they say (the pipeline's `auto` picks the first two)."""
    import jax
    import numpy as np

    from efl_toolkit.config import TrainConfig
    from efl_toolkit.data import load_dataset, make_institutions
    from efl_toolkit.federation.aggregation import plaintext_aggregation
    from efl_toolkit.federation.level1 import train_each_alone
    from efl_toolkit.federation.level2 import (
        RuleInputs,
        apply_rule,
        consortium_validation_auc,
        consortium_weights,
        level2_weights,
    )
    from efl_toolkit.training import predict_proba

    ds = load_dataset("breastmnist")
    insts = tuple(make_institutions(ds, 3, capacities=["tiny"] * 3, seed=0))
    alone = train_each_alone(insts, ds, TrainConfig(epochs=2), jax.random.key(0))
    predictors = {i.id: (lambda r: lambda x: np.mean([predict_proba(t.model, x)
                                                      for t in r.trained], axis=0))(alone[i.id])
                  for i in insts}
    inputs = RuleInputs(insts, predictors, 2, plaintext_aggregation)
    assert apply_rule("own_auc", inputs) == pytest.approx(level2_weights(insts, alone, 2))
    pooled = consortium_validation_auc(predictors, insts, 2, plaintext_aggregation)
    assert apply_rule("consortium_auc", inputs) == pytest.approx(consortium_weights(pooled))
    sizes = np.array([i.n_train for i in insts], dtype=float)
    assert list(apply_rule("n_train", inputs).values()) == pytest.approx(sizes / sizes.sum())
    assert list(apply_rule("equal", inputs).values()) == pytest.approx([1 / 3] * 3)
