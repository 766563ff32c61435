"""The ledger on an EVM chain (in-process py-evm): contract rules, errors identical to the
embedded ledger's, verification against the artifact store, the explorer and the pipeline on
both backends.

Every chain here is a real EVM (eth-tester over py-evm) running the compiled Vyper contract;
each institution signs with its own key. The real node process (Anvil) is in
``test_ledger_evm_anvil.py``.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

pytest.importorskip("web3", reason="the evm extra is not installed: pip install '.[evm]'")

from browser.sample_ledger import INSTITUTIONS  # noqa: E402

from efl_toolkit.explorer import ExplorerBackend, ExplorerWidget  # noqa: E402
from efl_toolkit.ledger import LedgerError, TransactionRejected  # noqa: E402
from efl_toolkit.ledger.backend import LedgerBackend, create_backend  # noqa: E402
from efl_toolkit.ledger.evm import EvmBackend  # noqa: E402
from efl_toolkit.ledger.evm.anvil import free_port  # noqa: E402
from efl_toolkit.ledger.evm.node import connect  # noqa: E402

ENGINES = ("embedded", "evm")


def write_sample(backend) -> dict[str, str]:
    """The explorer's sample history (tests/browser/sample_ledger.py, without the tag) written
    through the backend interface."""
    a1 = backend.model_commit("hospital-a", "cnn", b"hospital-a cnn v1", None, "cnn",
                              {"accuracy": 0.71, "auc": 0.74}, {"n_train": 180})
    b1 = backend.model_commit("hospital-b", "mlp", b"hospital-b mlp v1", None, "mlp",
                              {"accuracy": 0.68, "auc": 0.70}, {"n_train": 150})
    a2 = backend.model_commit("hospital-a", "cnn", b"hospital-a cnn v2", a1, "cnn",
                              {"accuracy": 0.78, "auc": 0.81}, {"n_train": 180})
    c1 = backend.model_commit("clinic-c", "logistic", b"clinic-c logistic v1", None,
                              "logistic", {"accuracy": 0.64, "auc": 0.66}, {"n_train": 90})
    backend.start_round("hospital-b", "round-1", [a2, b1, c1], {"parties": 3})
    backend.finish_round("hospital-b", "round-1", "ab" * 32, {"accuracy": 0.82})
    return {"a1": a1, "a2": a2, "b1": b1, "c1": c1}


def make(engine: str, folder: Path):
    backend, _ = create_backend(engine, folder / "ledger.sqlite", list(INSTITUTIONS))
    return backend


@pytest.fixture(params=ENGINES)
def sample(request, tmp_path):
    backend = make(request.param, tmp_path)
    versions = write_sample(backend)
    yield backend, versions
    backend.close()


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def rejection(action) -> tuple[str, str]:
    with pytest.raises(TransactionRejected) as caught:
        action()
    return caught.value.check, str(caught.value)


# ---- the same rules, the same errors ------------------------------------------------------------
REVERTS = {
    "unregistered sender": lambda b, v: b.model_commit("mallory", "cnn", b"m", None, "cnn", {},
                                                       {}),
    "unknown parent": lambda b, v: b.model_commit("hospital-a", "cnn", b"x", "12" * 32, "cnn",
                                                  {}, {}),
    "parent of another institution": lambda b, v: b.model_commit(
        "hospital-b", "cnn", b"x", v["a2"], "cnn", {}, {}),
    "parent of another model": lambda b, v: b.model_commit(
        "hospital-a", "vit", b"x", v["a2"], "vit", {}, {}),
    "duplicate version": lambda b, v: b.model_commit("hospital-a", "cnn", b"hospital-a cnn v2",
                                                     v["a1"], "cnn", {}, {}),
    "round result for an unknown round": lambda b, v: b.finish_round(
        "hospital-a", "round-9", "cd" * 32, {"accuracy": 0.5}),
    "failure of an unknown round": lambda b, v: b.fail_round("hospital-a", "round-9", "x"),
    "round started twice": lambda b, v: b.start_round("hospital-a", "round-1", [v["a1"]], {}),
    "round over an unknown version": lambda b, v: b.start_round("hospital-a", "round-2",
                                                                [v["a1"], "34" * 32], {}),
    "round closed twice": lambda b, v: b.fail_round("hospital-b", "round-1", "late"),
    "NaN metric": lambda b, v: b.model_commit("hospital-a", "cnn", b"y", None, "cnn",
                                              {"auc": float("nan")}, {}),
}


def test_every_revert_is_the_embedded_ledgers_error(tmp_path):
    embedded, chain = make("embedded", tmp_path / "e"), make("evm", tmp_path / "c")
    try:
        chain.add_key("mallory")  # a real key the contract has never registered
        ve, vc = write_sample(embedded), write_sample(chain)
        assert ve == vc
        height = chain.height()
        for case, action in REVERTS.items():
            expected = rejection(lambda a=action: a(embedded, ve))
            assert rejection(lambda a=action: a(chain, vc)) == expected, case
        assert chain.index.last_seq == 3 + 6  # nothing was recorded by any refused call
        assert chain.height() > height  # ...though the reverted transactions are on chain
        assert chain.verify().ok and len(chain.history()) == 4
    finally:
        embedded.close()
        chain.close()


def test_the_contract_itself_enforces_the_rules(tmp_path):
    """Bypass the Python side: a raw call signed by an institution still reverts on chain."""
    chain = make("evm", tmp_path)
    versions = write_sample(chain)
    account = chain.keys.accounts["hospital-b"]
    call = chain.contract.functions.commit(bytes.fromhex("56" * 32), bytes.fromhex(
        versions["a1"]), "cnn", "cnn", "{}", "{}")
    from efl_toolkit.ledger.evm.node import RevertedCall
    with pytest.raises(RevertedCall, match="foreign parent"):
        chain.sender.send(account, call)
    assert chain.contract.functions.n_events().call() == chain.index.last_seq


def test_registration_by_admin_or_a_quorum_of_members(tmp_path):
    chain = make("evm", tmp_path)
    try:
        assert [m.institution for m in chain.members()] == list(INSTITUTIONS)
        assert rejection(lambda: chain.register_institution("hospital-a")) == (
            "membership", "transaction rejected (membership): 'hospital-a' is already registered")
        chain.add_key("outsider")
        assert rejection(lambda: chain.register_institution("newcomer", approver="outsider"))[0] \
            == "membership"
        chain.register_institution("newcomer", approver="hospital-a")   # 1 of 3: not yet
        chain.register_institution("newcomer", approver="hospital-b")   # 2 of 3: not > 2/3
        assert "newcomer" not in [m.institution for m in chain.members()]
        chain.register_institution("newcomer", approver="clinic-c")     # 3 of 3
        assert [m.institution for m in chain.members()][-1] == "newcomer"
        version = chain.model_commit("newcomer", "cnn", b"n1", None, "cnn", {}, {})
        assert chain.get(version[:10]).institution == "newcomer"
        assert chain.verify().ok
    finally:
        chain.close()


def test_a_transaction_the_node_refuses_is_one_ledger_error(tmp_path):
    chain = make("evm", tmp_path)
    chain.keys.add("pauper")  # a key with no funds: the node refuses before any contract code
    with pytest.raises(LedgerError, match="refused the transaction .*cannot afford"):
        chain.model_commit("pauper", "cnn", b"x", None, "cnn", {}, {})


def test_embedded_membership_is_fixed_by_genesis(tmp_path):
    embedded = make("embedded", tmp_path)
    try:
        check, message = rejection(lambda: embedded.register_institution("newcomer"))
        assert check == "membership" and "fixed by the genesis block" in message
    finally:
        embedded.close()


# ---- verification -------------------------------------------------------------------------------
def test_verify_reports_a_modified_artifact_with_its_height(sample):
    backend, versions = sample
    assert backend.verify().ok
    record = backend.get(versions["b1"])
    backend.artifacts.path(versions["b1"]).write_bytes(b"swapped weights")
    report = backend.verify()
    assert not report.ok
    first = report.first_failure
    assert (first.height, first.check) == (record.where.height, "artifact hash")
    assert versions["b1"][:12] in first.reason and "modified" in first.reason


def test_verify_rereads_the_chain_not_the_index(tmp_path):
    chain = make("evm", tmp_path)
    versions = write_sample(chain)
    entry = chain.index.entries[chain.get(versions["a2"]).where.height][0]
    entry.payload["metrics"]["accuracy"] = 0.99  # the index lies; the receipts do not
    report = chain.verify()
    assert not report.ok and report.first_failure.check == "events"
    assert report.first_failure.height == chain.get(versions["a2"]).where.height


# ---- the backend interface and the explorer, on both engines ------------------------------------
def test_both_engines_implement_the_interface_and_answer_alike(sample):
    backend, versions = sample
    assert isinstance(backend, LedgerBackend) and isinstance(backend, ExplorerBackend)
    assert [v.version for v in backend.history("hospital-a")] == [versions["a2"], versions["a1"]]
    lineage = backend.lineage("round-1")
    assert lineage.institutions == tuple(sorted(INSTITUTIONS))
    assert lineage.round.status == "done" and lineage.round.result_hash == "ab" * 32
    assert [m.institution for m in backend.members()] == list(INSTITUTIONS)
    assert backend.checkout(versions["c1"]) == b"clinic-c logistic v1"
    audit = backend.audit()
    moves = [(a.sender, a.type, a.subject) for a in audit.activity()
             if a.type.startswith(("MODEL", "ROUND"))]
    assert moves[0] == ("hospital-a", "MODEL_COMMIT", f"cnn {versions['a1'][:12]}") and \
        moves[-1] == ("hospital-b", "ROUND_RESULT", "round-1") and len(moves) == 6
    assert [r.round_id for r in audit.rounds_of("clinic-c")] == ["round-1"]
    assert audit.dependencies("ab" * 32).institutions == tuple(sorted(INSTITUTIONS))
    assert [m.version for m in audit.dependencies("round-1").ancestors][-1] == versions["a1"]
    assert backend.describe()["backend"] == backend.kind
    nodes = backend.model_versions()
    assert [n.kind for n in nodes].count("model") == 4 and nodes[-1].parents == (
        versions["a2"], versions["b1"], versions["c1"])


def test_explorer_widget_over_either_engine(sample):
    backend, versions = sample
    widget = ExplorerWidget(backend, refresh_seconds=None)
    try:
        widget.verify_button.click()
        assert widget.last_report.ok
        assert f"height {backend.height()}" in text_of(widget.verify_status.value)
        table = text_of(widget.institutions_view.value)
        for institution, n_versions in zip(INSTITUTIONS, (2, 1, 1), strict=True):
            assert re.search(rf"{institution} \S+ {n_versions} ", table), table
        svg = widget.dag_view.value
        assert svg.count('class="efl-dag-node"') == 5 and svg.count("marker-end=") == 4
        widget.search_box.value = versions["a2"][:8]
        height = backend.get(versions["a2"]).where.height
        assert widget.block_list.value == height
        detail = text_of(widget.block_detail.value)
        assert "MODEL_COMMIT" in detail and "hospital-a" in detail and versions["a1"] in detail
    finally:
        widget.close()


def test_the_same_round_on_both_engines_gives_the_same_hashes_and_lineage(tmp_path):
    from efl_toolkit.ledger.evm.compare import engine_row, record_round

    archs = {"hospital-a": "logistic", "hospital-b": "mlp"}
    embedded, chain = make("embedded", tmp_path / "e"), make("evm", tmp_path / "c")
    try:
        same = [record_round(b, archs, (8, 8, 1), 2, seed=3) for b in (embedded, chain)]
        assert same[0] == same[1]
        assert [v.parent for v in chain.history("hospital-b")] == [same[1]["hospital-b"][0], None]
        assert embedded.lineage("round-1").round.versions == chain.lineage("round-1").round.versions
        rows = [engine_row(name, b) for name, b in (("embedded", embedded), ("evm", chain))]
        assert [(r["versions"], r["rounds"], r["verified"]) for r in rows] == [(4, 1, True)] * 2
    finally:
        embedded.close()
        chain.close()


# ---- faults -------------------------------------------------------------------------------------
def test_an_unreachable_rpc_url_fails_fast_naming_it(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(LedgerError, match=f"cannot reach the EVM node at {re.escape(url)}"):
        create_backend(f"evm:{url}", tmp_path / "ledger.sqlite", ["a"])
    assert time.monotonic() - started < 5
    with pytest.raises(LedgerError, match="must start with http"):
        connect("ftp://example")


def test_the_contract_is_compiled_once_per_source_and_cached(tmp_path, monkeypatch):
    from efl_toolkit.ledger.evm import contract

    monkeypatch.setenv("EFL_CACHE_DIR", str(tmp_path))
    first = contract.compiled()
    (cached,) = (tmp_path / "vyper").glob("registry-*.json")
    assert json.loads(cached.read_text())["bytecode"] == first.bytecode
    edited = contract.source_text().replace("MAX_VERSIONS: constant(uint256) = 256",
                                            "MAX_VERSIONS: constant(uint256) = 255")
    monkeypatch.setattr(contract, "source_text", lambda: edited)
    second = contract.compiled()  # another source: compiled again, never the cached one
    assert second.source_sha256 != first.source_sha256 and second.bytecode != first.bytecode
    assert len(list((tmp_path / "vyper").glob("registry-*.json"))) == 2


def test_efl_demo_with_an_unreachable_node_fails_before_training(tmp_path):
    import subprocess
    import sys

    url = f"http://127.0.0.1:{free_port()}"
    run = subprocess.run([sys.executable, "-m", "efl_toolkit.cli", "demo", "--ledger",
                          f"evm:{url}", "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "[2/7]" not in run.stdout, run.stdout
    assert run.stderr.strip() == f"efl demo: error: cannot reach the EVM node at {url} " \
                                 "(connection refused)"


def test_a_descriptor_of_an_in_process_chain_says_it_is_gone(tmp_path):
    chain = make("evm", tmp_path)
    descriptor = json.loads((tmp_path / "ledger.evm.json").read_text())
    assert descriptor["contract"] == chain.contract.address and descriptor["rpc_url"] is None
    with pytest.raises(LedgerError, match="ran inside the process that wrote it"):
        EvmBackend.attach(tmp_path / "ledger.evm.json")


# ---- the pipeline -------------------------------------------------------------------------------
def test_pipeline_end_to_end_on_the_evm_chain(tmp_path, make_npz):
    from efl_toolkit.config import ConfigError, get_config
    from efl_toolkit.pipeline import run_experiment

    with pytest.raises(ConfigError, match="ledger must be one of"):
        get_config("classroom_fast", ledger="sqlite")
    config = get_config("classroom_fast", dataset=str(make_npz(sizes=(60, 18, 20))),
                        train={"epochs": 1, "patience": 1}, rounds=2, finetune_epochs=1,
                        ledger="evm")
    result = run_experiment(config, tmp_path / "out", progress=False, log=lambda *_: None)
    chain = result.ledger_backend
    assert isinstance(chain, EvmBackend) and result.ledger_path.name == "ledger.evm.json"
    led = result.report["ledger"]
    assert led["backend"] == "evm" and led["verified"] is True
    assert led["contract"] == chain.contract.address and led["height"] == chain.height()
    (rnd,) = chain.rounds()
    expected = {v for per in result.versions.values() for v in per.values()}
    assert rnd.status == "done" and set(rnd.versions) == expected
    assert led["round"]["round_id"] == rnd.round_id
    lines = [[r.version for r in g.rounds] for g in result.groups.values() if g.rounds]
    assert lines  # lineage of federated rounds, on chain: each round's parent the previous
    for line in lines:
        assert [v.version for v in chain.ancestors(line[-1])] == line[::-1]
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk["ledger"]["backend"] == "evm"
    assert not (tmp_path / "out" / "ledger.sqlite").exists()
    report_md = (tmp_path / "out" / "report.md").read_text()
    assert "in-process chain that ended with the run" in report_md
