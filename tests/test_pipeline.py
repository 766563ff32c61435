"""The end-to-end pipeline: report.json contract, ledger, secure round, `efl demo` itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from efl_toolkit.config import get_config
from efl_toolkit.data import load_dataset
from efl_toolkit.federation.record import NewVersion, commit_versions
from efl_toolkit.ledger import Consortium, Ledger, ModelRegistry, open_ledger
from efl_toolkit.pipeline import (
    ROUND_ID,
    prepare_out_dir,
    run_experiment,
    run_secure_round,
)
from efl_toolkit.report import REQUIRED_KEYS

EFL = [sys.executable, "-m", "efl_toolkit.cli"]


def _fast(dataset, **overrides):
    return get_config("classroom_fast", dataset=str(dataset),
                      train={"epochs": 2, "patience": 2}, **overrides)


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory):
    """One run on a colour, 5-class MedMNIST-format file the toolkit has never seen."""
    from conftest import write_medmnist_npz

    folder = tmp_path_factory.mktemp("colour")
    npz = write_medmnist_npz(folder / "colourmnist.npz", n_channels=3, n_classes=5,
                             sizes=(150, 40, 50))
    result = run_experiment(_fast(npz, n_parties=4), folder / "out", progress=False,
                            log=lambda *_: None)
    return result, folder / "out"


def test_efl_demo_command_on_an_unseen_colour_multiclass_file(tmp_path):
    """`efl demo --dataset PATH.npz` on a colour, 7-class file (the command line, end to end)."""
    from conftest import write_medmnist_npz

    npz = write_medmnist_npz(tmp_path / "sevenmnist.npz", n_channels=3, n_classes=7,
                             sizes=(140, 35, 42), seed=3)
    out = tmp_path / "out"
    run = subprocess.run([*EFL, "demo", "--dataset", str(npz), "--out", str(out), "--seed", "2",
                          "--institutions", "3"], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "EFL_PRESET": "classroom_fast"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert (report["dataset"]["n_classes"], report["dataset"]["channels"]) == (7, 3)
    assert report["ensembles"]["secure_mean"]["label_agreement"] == 1.0
    assert report["ledger"]["verified"] is True
    assert "hierarchical ensemble (secure, committee of 3)" in run.stdout
    assert [g["architecture"] for g in report["groups"]]


def test_report_json_has_the_design_contract(colour_run):
    result, out = colour_run
    report = json.loads((out / "report.json").read_text())
    assert set(REQUIRED_KEYS) <= set(report)
    ds = report["dataset"]
    assert (ds["name"], ds["n_classes"], ds["channels"], ds["n_train"], ds["n_test"]) == (
        "colourmnist", 5, 3, 150, 50)
    for inst in report["institutions"]:
        assert {"id", "architectures", "n_train", "test_accuracy", "test_auc"} <= set(inst)
        assert inst["architectures"] and inst["n_train"] > 0
    assert sum(i["n_train"] + i["n_val"] for i in report["institutions"]) == 150
    secure = report["ensembles"]["secure_mean"]
    # the figures, not just the keys: recomputed by scikit-learn from the saved probabilities
    from test_independent_references import assert_scores

    saved = np.load(out / "probs.npz")
    assert_scores(secure, saved["secure_scored"], saved["labels"])
    assert 0 < secure["seconds"] <= report["timings"]["secure_round_seconds"]
    assert {"accuracy", "auc", "balanced_accuracy"} <= set(report["ensembles"]["plaintext_mean"])
    assert {"accuracy", "balanced_accuracy", "auc"} <= set(report["ensembles"]["ensemble_only"])
    for entry in (secure, *report["baselines"].values()):
        assert {"accuracy", "balanced_accuracy", "auc"} <= set(entry)
    groups = {g["architecture"]: g for g in report["groups"]}
    assert groups and all({"architecture", "members", "rounds", "version"} <= set(g)
                          for g in groups.values())
    assert all(g["alone"] == (len(g["members"]) == 1) for g in groups.values())
    assert report["config"]["effective"]["method"] == "hierarchical"

    def every_accuracy_has_a_balanced_one(node, path="report"):
        if isinstance(node, dict):
            if "accuracy" in node:
                assert "balanced_accuracy" in node, path
            for key, value in node.items():
                every_accuracy_has_a_balanced_one(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                every_accuracy_has_a_balanced_one(value, f"{path}[{i}]")

    every_accuracy_has_a_balanced_one(report)
    assert {"accuracy", "auc"} <= set(report["baselines"]["centralized"])
    assert {"accuracy", "auc"} <= set(report["baselines"]["best_single_institution"])
    stages = {k: v for k, v in report["timings"].items() if k != "total_seconds"}
    assert {"local_training_seconds", "secure_round_seconds"} <= set(stages)
    assert report["timings"]["total_seconds"] >= sum(stages.values())   # stages run in turn
    for plot in report["plots"]:
        assert (out / plot).stat().st_size > 1000, plot
    assert (out / "report.md").read_text().startswith("# efl_toolkit experiment: colourmnist")


def test_secure_round_by_a_committee_of_four_matches_plaintext(colour_run):
    result, out = colour_run
    report = json.loads((out / "report.json").read_text())
    secure = report["ensembles"]["secure_mean"]
    assert secure["parties"] == secure["committee"] == 4   # compute parties, not institutions
    assert secure["included"] == [i["id"] for i in report["institutions"]]
    assert secure["max_abs_diff_vs_plaintext"] <= secure["error_bound"]
    assert secure["label_agreement"] == 1.0
    assert report["ensembles"]["plaintext_mean"]["accuracy"] == secure["accuracy"]
    np.testing.assert_allclose(result.secure.mean, result.plaintext_probs,
                               atol=result.secure.fixed_point.error_bound)


def test_ledger_records_models_and_round(colour_run):
    result, out = colour_run
    report = json.loads((out / "report.json").read_text())
    view = open_ledger(out / report["ledger"]["path"])
    try:
        assert view.report.ok and report["ledger"]["verified"] is True
        assert view.head_hash == report["ledger"]["head"]
        committed = {v.version: v for v in view.model_versions()}
        expected = {v for per in result.versions.values() for v in per.values()}
        assert expected <= set(committed)
        (rnd,) = view.rounds()
        assert rnd.status == "done" and set(rnd.versions) == expected
        for arch, group in result.groups.items():      # lineage: one chain of rounds
            chain = [r.version for r in group.rounds]
            assert len(set(chain)) == len(chain) == len(group.rounds)
            for parent, child in zip([None, *chain], chain, strict=False):
                record = committed[child]
                assert record.parent == parent and record.model_id == f"group-{arch}"
                assert record.institution == group.group.members[0]
        types = [tx.type for h in range(view.height + 1) for tx in view.block(h).transactions]
        assert types.count("REGISTER_INSTITUTION") == 3
        assert "ROUND_START" in types and "ROUND_RESULT" in types
    finally:
        view.close()
    verified = subprocess.run([*EFL, "ledger", "verify", str(out / "ledger.sqlite")],
                              capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_prepare_out_dir_clears_previous_ledger(tmp_path):
    ledger = prepare_out_dir(tmp_path)
    ledger.write_bytes(b"old run")
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "notes.txt").write_text("keep me")
    assert prepare_out_dir(tmp_path) == ledger and not ledger.exists()
    assert not (tmp_path / "artifacts").exists() and (tmp_path / "notes.txt").exists()


def test_efl_demo_errors_name_the_problem(tmp_path):
    missing = subprocess.run([*EFL, "demo", "--dataset", str(tmp_path / "nope.npz"), "--out",
                              str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "nope.npz" in missing.stderr
    unknown = subprocess.run([*EFL, "demo", "--dataset", "octmnistx", "--out",
                              str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and "octmnistx" in unknown.stderr


def test_demo_on_embedded_breastmnist(breastmnist_experiment):
    """The README's main job, seed 0: three institutions with three architecture sets, a
    secure result equal to the plaintext one, a verified ledger (the accuracy claims, over
    seeds and against a validation-chosen best institution, are in test_claims.py)."""
    result, out = breastmnist_experiment
    report = json.loads((out / "report.json").read_text())
    secure = report["ensembles"]["secure_mean"]
    assert report["dataset"]["name"] == "breastmnist" and secure["parties"] == 3
    assert len({tuple(i["architectures"]) for i in report["institutions"]}) == 3
    assert secure["label_agreement"] == 1.0
    assert report["ledger"]["verified"] is True
    verify = subprocess.run([*EFL, "ledger", "verify", str(out / "ledger.sqlite")],
                            capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0 and "OK" in verify.stdout


def test_config_fixed_point_bits_reach_the_secure_round(tmp_path, make_npz):
    config = get_config("classroom_fast", fixed_point_bits=8)
    dataset = load_dataset(make_npz(sizes=(20, 6, 8), side=8))
    rng = np.random.default_rng(0)
    probs = {f"hospital-{c}": rng.dirichlet(np.ones(2), size=len(dataset.test)) for c in "ab"}
    ledger_path = prepare_out_dir(tmp_path / "out")
    ledger = Ledger.create(ledger_path, Consortium.generate(list(probs), seed=0))
    registry = ModelRegistry(ledger)
    versions = {inst: commit_versions(registry, inst, {
        "mlp": NewVersion(inst.encode(), "mlp", {"acc": 0.5}, {})}) for inst in probs}
    try:
        result = run_secure_round(ledger, versions, probs, {inst: 0.5 for inst in probs}, 3,
                                  dataset, frac_bits=config.fixed_point_bits)
    finally:
        ledger.close()
    assert result.fixed_point.frac_bits == 8
    np.testing.assert_allclose(result.mean, np.mean(list(probs.values()), axis=0),
                               atol=result.fixed_point.error_bound)
    with open_ledger(ledger_path) as view:
        assert {r.round_id: r for r in view.rounds()}[ROUND_ID].protocol["frac_bits"] == 8


def test_ensemble_only_method_trains_no_groups(tmp_path, make_npz):
    config = _fast(make_npz(sizes=(90, 24, 30)), method="ensemble_only")
    result = run_experiment(config, tmp_path / "out", progress=False, log=lambda *_: None)
    assert result.groups == {} and result.report["groups"] == []
    np.testing.assert_allclose(result.secure.mean, result.ensemble_only_probs,
                               atol=result.secure.fixed_point.error_bound)
    assert result.report["ensembles"]["secure_mean"]["method"] == "ensemble_only"


def test_a_group_version_kept_by_two_institutions_is_listed_once(tmp_path):
    """Two keepers of one group model share its version; ROUND_START must still be valid."""
    rng = np.random.default_rng(1)
    names = ["hospital-a", "hospital-b"]
    probs = {n: rng.dirichlet(np.ones(2), size=6) for n in names}
    ledger = Ledger.create(prepare_out_dir(tmp_path / "out"), Consortium.generate(names, seed=2))
    registry = ModelRegistry(ledger)
    shared = commit_versions(registry, "hospital-a", {
        "group-cnn": NewVersion(b"group model", "cnn", {"round": 1}, {})})["group-cnn"]
    own = commit_versions(registry, "hospital-b", {
        "mlp": NewVersion(b"own model", "mlp", {"acc": 0.5}, {})})["mlp"]
    versions = {"hospital-a": {"cnn": shared}, "hospital-b": {"cnn": shared, "mlp": own}}

    class Split:                                   # the query set: 6 test labels
        labels = np.array([0, 1, 0, 1, 1, 0])

        def __len__(self):
            return 6

    dataset = type("D", (), {"test": Split(), "n_classes": 2, "name": "toy"})()
    try:
        run_secure_round(ledger, versions, probs, {n: 0.5 for n in names}, 3, dataset)
    finally:
        ledger.close()
    with open_ledger(ledger.path) as view:
        (rnd,) = view.rounds()
        assert rnd.status == "done" and list(rnd.versions) == [shared, own]
