"""The EVM ledger against a real node process: Anvil, from the npm package ``@foundry-rs/anvil``
(``make``/``.ci/run`` install it into ``.tools/anvil``), started on 127.0.0.1 on a free port.

Skipped with a message only when the binary is absent AND ``EFL_REQUIRE_ANVIL`` is unset (CI sets
it, so there a missing Anvil fails instead of skipping).
"""

from __future__ import annotations

import argparse
import io
import os

import pytest

pytest.importorskip("web3", reason="the evm extra is not installed: pip install '.[evm]'")

from browser.sample_ledger import INSTITUTIONS  # noqa: E402
from test_ledger_evm import REVERTS, make, rejection, write_sample  # noqa: E402

from efl_toolkit.explorer import ExplorerWidget  # noqa: E402
from efl_toolkit.ledger import LedgerError  # noqa: E402
from efl_toolkit.ledger.cli import main as ledger_main  # noqa: E402
from efl_toolkit.ledger.evm import DESCRIPTOR, Anvil, EvmBackend, find_anvil  # noqa: E402


@pytest.fixture
def anvil():
    if find_anvil() is None:
        if os.environ.get("EFL_REQUIRE_ANVIL"):
            pytest.fail("EFL_REQUIRE_ANVIL is set but no Anvil binary was found: "
                        "npm install --prefix .tools/anvil @foundry-rs/anvil")
        pytest.skip("Anvil not installed (npm install --prefix .tools/anvil @foundry-rs/anvil; "
                    "CI sets EFL_REQUIRE_ANVIL=1 and runs this)")
    with Anvil() as node:
        yield node


def ledger_cli(command: str, path: str, **extra) -> tuple[int, str]:
    out = io.StringIO()
    code = ledger_main(argparse.Namespace(ledger_command=command, path=path, **extra), out)
    return code, out.getvalue()


def test_the_registry_on_a_real_anvil_node(anvil, tmp_path):
    chain = EvmBackend.create(anvil.url, list(INSTITUTIONS), tmp_path / "out")
    embedded = make("embedded", tmp_path / "embedded")
    try:
        versions = write_sample(chain)
        assert versions == write_sample(embedded)
        chain.add_key("mallory")
        for case in ("unregistered sender", "parent of another institution",
                     "duplicate version", "round result for an unknown round"):
            # Anvil mines the reverted transaction and web3 raises its own error on replay:
            # still the embedded ledger's error, word for word
            assert rejection(lambda c=case: REVERTS[c](chain, versions)) == rejection(
                lambda c=case: REVERTS[c](embedded, versions)), case
        assert chain.verify().ok

        descriptor = str(tmp_path / "out" / DESCRIPTOR)
        again = EvmBackend.attach(descriptor)  # a reader elsewhere: indexes by get_logs
        assert [v.version for v in again.history()] == [v.version for v in chain.history()]
        assert again.lineage("round-1").institutions == tuple(sorted(INSTITUTIONS))

        code, text = ledger_cli("verify", descriptor)
        assert code == 0 and f"verified: {chain.height() + 1} blocks" in text, text
        widget = ExplorerWidget(descriptor, refresh_seconds=None)  # the explorer on a path
        try:
            widget.verify_button.click()
            assert widget.last_report.ok and widget.backend.height() == chain.height()
        finally:
            widget.close()
        code, text = ledger_cli("log", f"evm:{anvil.url}#{chain.contract.address}",
                                institution="hospital-a")
        assert code == 0 and text.count("version ") == 2 and versions["a1"] in text
        height = chain.get(versions["b1"]).where.height
        code, text = ledger_cli("show", descriptor, height=height)
        assert code == 0 and "MODEL_COMMIT from hospital-b" in text and versions["b1"] in text

        chain.artifacts.path(versions["b1"]).write_bytes(b"other weights")
        code, text = ledger_cli("verify", descriptor)
        assert code == 1 and f"FAILED at height {height}: artifact hash" in text, text
    finally:
        embedded.close()


def test_a_node_dying_mid_run_fails_naming_the_last_confirmed_height(anvil, tmp_path):
    chain = EvmBackend.create(anvil.url, ["a", "b"], tmp_path)
    v1 = chain.model_commit("a", "cnn", b"w1", None, "cnn", {"acc": 0.5}, {})
    confirmed = chain.get(v1).where.height
    anvil.kill()
    with pytest.raises(LedgerError) as caught:
        chain.model_commit("a", "cnn", b"w2", v1, "cnn", {"acc": 0.6}, {})
    message = str(caught.value)
    assert anvil.url in message and f"last confirmed height {confirmed}" in message, message
    code, _ = ledger_cli("verify", str(tmp_path / DESCRIPTOR))
    assert code == 2  # the reader names the unreachable node instead of crashing
