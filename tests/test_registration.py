"""A researcher's own Flax NNX architecture and level-2 rule, registered from OUTSIDE the package,
reach the pipeline, the report and the ledger (issue 13, item 7)."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from flax import nnx

from efl_toolkit.config import ConfigError, get_config
from efl_toolkit.ensemble import weighted_mean
from efl_toolkit.federation.level2 import (
    RuleInputs,
    apply_rule,
    register_rule,
    rule_names,
    unregister_rule,
)
from efl_toolkit.ledger import open_ledger
from efl_toolkit.models import architecture_names, register_architecture, unregister_architecture
from efl_toolkit.pipeline import run_experiment

ARCH, RULE = "test-pixel-linear", "test_favour_first"


class PixelLinear(nnx.Module):
    """A researcher's model: raw pixels -> logits (the zoo's calling convention)."""

    def __init__(self, image_shape, n_classes, *, rngs: nnx.Rngs):
        height, width, channels = image_shape
        self.linear = nnx.Linear(height * width * channels, n_classes, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool = False, key: jax.Array | None = None):
        return self.linear(x.reshape(x.shape[0], -1))


CALLS: list[RuleInputs] = []


def favour_first(inputs: RuleInputs) -> dict[str, float]:
    """A researcher's level-2 rule: the first institution counts three times the others."""
    CALLS.append(inputs)
    return {inst.id: 3.0 if k == 0 else 1.0 for k, inst in enumerate(inputs.institutions)}


@pytest.fixture(scope="module")
def registered():
    register_architecture(ARCH, PixelLinear, capacity="small", description="pixels -> logits")
    register_rule(RULE, favour_first)
    yield
    unregister_architecture(ARCH)
    unregister_rule(RULE)


@pytest.fixture(scope="module")
def run(registered, tmp_path_factory):
    from conftest import write_medmnist_npz

    folder = tmp_path_factory.mktemp("registered")
    npz = write_medmnist_npz(folder / "blobs.npz", sizes=(90, 30, 30))
    # small: by registration (capacity="small"); medium and large: by the config
    config = get_config("classroom_fast", dataset=str(npz), rule=RULE, rounds=2,
                        finetune_epochs=0, architectures={"medium": [ARCH], "large": [ARCH]},
                        train={"epochs": 2, "patience": 1})
    CALLS.clear()
    result = run_experiment(config, folder / "out", progress=False, log=lambda *_: None)
    return result, json.loads((folder / "out" / "report.json").read_text()), folder / "out"


def test_report_names_the_registered_architecture_and_rule(run):
    result, report, _ = run
    assert report["config"]["level2_rule"] == RULE
    assert report["config"]["effective"]["rule"] == RULE
    assert report["ensembles"]["secure_mean"]["level2_rule"] == RULE
    assert report["ensembles"]["plaintext_mean"]["level2_rule"] == RULE
    by_capacity = report["config"]["architectures_by_capacity"]
    assert by_capacity["small"] == by_capacity["medium"] == by_capacity["large"] == [ARCH]
    assert [inst["architectures"] for inst in report["institutions"]] == [[ARCH]] * 3
    assert [g["architecture"] for g in report["groups"]] == [ARCH]
    assert f"level-2 rule `{RULE}`" in (run[2] / "report.md").read_text()


def test_ledger_holds_versions_of_the_registered_architecture(run):
    result, report, out = run
    with open_ledger(out / report["ledger"]["path"]) as view:
        assert view.report.ok
        versions = view.model_versions()
        (rnd,) = view.rounds()
    assert versions and {v.architecture for v in versions} == {ARCH}
    assert {v.model_id for v in versions} >= {f"group-{ARCH}"}
    assert set(rnd.versions) <= {v.version for v in versions}


def test_the_rules_weights_were_the_ones_used(run):
    result, report, out = run
    ids = [inst.id for inst in result.institutions]
    expected = {ids[0]: 0.6, ids[1]: 0.2, ids[2]: 0.2}
    assert len(CALLS) == 1 and CALLS[0].method == "hierarchical"
    assert sorted(CALLS[0].predictors) == sorted(ids)
    assert result.weights == pytest.approx(expected)
    assert report["ensembles"]["plaintext_mean"]["weights"] == pytest.approx(expected)
    with open_ledger(out / "ledger.sqlite") as view:
        (rnd,) = view.rounds()
    assert rnd.protocol["weights"] == pytest.approx(expected)          # what the committee used
    level1 = [result.level1_probs[i] for i in ids]
    np.testing.assert_allclose(result.plaintext_probs,
                               weighted_mean(level1, [0.6, 0.2, 0.2]), atol=1e-12)
    bound = report["ensembles"]["secure_mean"]["error_bound"]
    assert np.max(np.abs(result.secure.mean - result.plaintext_probs)) <= bound


def test_registration_is_checked_and_undone(registered):
    assert ARCH in architecture_names() and RULE in rule_names()
    with pytest.raises(ValueError, match="already registered"):
        register_architecture("cnn", PixelLinear)
    with pytest.raises(ValueError, match="unknown capacity tier 'huge'"):
        register_architecture("other", PixelLinear, capacity="huge")
    with pytest.raises(ValueError, match="already registered"):
        register_rule(RULE, favour_first)
    with pytest.raises(ConfigError, match="rule must be 'auto' or a registered level-2 rule"):
        get_config(rule="nope")
    with pytest.raises(ConfigError, match=r"architectures.small: unknown architecture 'nope'"):
        get_config(architectures={"small": ["nope"]})


def test_a_rule_that_answers_badly_is_named():
    from efl_toolkit.data import load_dataset, make_institutions

    insts = tuple(make_institutions(load_dataset("breastmnist"), 2, seed=0))
    inputs = RuleInputs(insts, {}, 2, lambda *_: None)
    register_rule("test_bad", lambda _: {insts[0].id: 1.0})
    try:
        with pytest.raises(ValueError, match="rule 'test_bad' must return one weight per "
                                             "institution"):
            apply_rule("test_bad", inputs)
        register_rule("test_bad", lambda _: {insts[0].id: -1.0, insts[1].id: 1.0},
                      replace=True)
        with pytest.raises(ValueError, match="rule 'test_bad': weight of hospital-a is -1.0"):
            apply_rule("test_bad", inputs)
    finally:
        unregister_rule("test_bad")
    assert apply_rule("equal", inputs) == {insts[0].id: 0.5, insts[1].id: 0.5}


class WrongLogits(PixelLinear):
    """Five logits whatever the number of classes."""

    def __init__(self, image_shape, n_classes, *, rngs: nnx.Rngs):
        super().__init__(image_shape, 5, rngs=rngs)


class Broken(nnx.Module):
    """A model whose forward pass cannot run (a shape mismatch inside)."""

    def __init__(self, image_shape, n_classes, *, rngs: nnx.Rngs):
        self.linear = nnx.Linear(4, n_classes, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool = False, key: jax.Array | None = None):
        return self.linear(x[:, :1, 0, 0])


@pytest.mark.parametrize("builder, message", [
    (WrongLogits, "returns outputs of shape (1, 5) for one image; expected (1, 2) logits"),
    (Broken, "cannot run on images (28, 28, 1) with 2 classes: TypeError"),
])
def test_a_registered_model_that_cannot_work_is_named_before_training(builder, message):
    from efl_toolkit.federation.groups import form_groups
    from efl_toolkit.models.capacity import estimate_cost

    name = f"test-bad-{builder.__name__.lower()}"
    register_architecture(name, builder)
    try:
        with pytest.raises(ValueError) as caught:
            estimate_cost(name, (28, 28, 1), 2)
        assert str(caught.value).startswith(f"architecture {name!r} ") and message in str(
            caught.value), caught.value
        assert "\n" not in str(caught.value)
        # registered but not chosen: forming groups (which costs every architecture) says so too
        from efl_toolkit.data import load_dataset, make_institutions

        dataset = load_dataset("breastmnist")
        with pytest.raises(ValueError, match=f"architecture {name!r}"):
            form_groups(make_institutions(dataset, 3, seed=0), dataset)
    finally:
        unregister_architecture(name)
