"""The explorer in a real browser: JupyterLab on 127.0.0.1, driven in headless Chromium.

The test makes a ledger with the real ledger API and a notebook that displays the explorer on
it, starts a throwaway JupyterLab server (``tests/browser/lab.py``), opens the notebook in
Debian's Chromium through Playwright, runs all cells, clicks *Verify chain* and *Tamper*, and
checks what the page shows. It also appends a block from outside and waits for the page to list
it. Screenshots go to ``tests/artifacts/`` (git-ignored).

Without Chromium or Playwright the test is skipped with the reason, unless
``EFL_REQUIRE_BROWSER=1`` (set by ``.ci/run``): then it fails.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from browser.lab import CHROMIUM, CHROMIUM_ARGS, JupyterLab, browser_unavailable_reason
from browser.notebook import write_explorer_notebook
from browser.sample_ledger import append_empty_block, make_sample_ledger

ARTIFACTS = Path(__file__).parent / "artifacts"
N_BLOCKS = 8  # the sample ledger: genesis .. round result
WAIT_MS = 60_000  # generous: the kernel, the widget manager and 2 shared cores


def _require_browser() -> None:
    reason = browser_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("EFL_REQUIRE_BROWSER") == "1":
        pytest.fail(f"EFL_REQUIRE_BROWSER=1 but the browser test cannot run: {reason}")
    pytest.skip(reason)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.browser
@pytest.mark.timeout(240)
def test_explorer_in_jupyterlab_verify_tamper_and_live_refresh(tmp_path):
    _require_browser()
    from playwright.sync_api import sync_playwright

    root = tmp_path / "root"
    root.mkdir()
    ledger = root / "ledger.sqlite"
    make_sample_ledger(ledger)
    write_explorer_notebook(root / "explorer.ipynb", ledger.name, refresh_seconds=1.0)
    ARTIFACTS.mkdir(exist_ok=True)

    with JupyterLab(root=root, home=tmp_path / "jupyter") as lab, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.set_default_timeout(WAIT_MS)
        try:
            page.goto(lab.url("lab/tree/explorer.ipynb"))
            page.wait_for_selector("#jupyterlab-splash", state="detached")
            lab.wait_for_kernel("explorer.ipynb")
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")

            page.click(".lm-MenuBar-itemLabel:text-is('Run')")
            page.click(".lm-Menu-item[data-command='runmenu:run-all']")
            page.wait_for_selector(".efl-explorer .efl-verify-button")
            options = page.locator(".efl-block-list select option")
            assert options.count() == N_BLOCKS, page.inner_text(".efl-block-list")
            assert options.first.inner_text().split()[0] == str(N_BLOCKS - 1)

            before = _digest(ledger)
            page.click(".efl-verify-button")
            expected = f"verified: {N_BLOCKS} blocks, height {N_BLOCKS - 1}"
            page.wait_for_selector(f".efl-verify-status:has-text('{expected}')")
            page.screenshot(path=str(ARTIFACTS / "explorer.png"))

            page.click(".efl-tabs .lm-TabBar-tab:has-text('Model graph')")
            page.wait_for_selector(".efl-dag svg .efl-dag-node")
            assert page.locator(".efl-dag svg .efl-dag-node").count() == 5  # 4 versions, a round
            page.screenshot(path=str(ARTIFACTS / "explorer_graph.png"))

            page.click(".efl-tabs .lm-TabBar-tab:has-text('Tamper')")
            page.select_option(".efl-tamper-kind select", "edit_payload")
            page.fill(".efl-tamper-height input", "3")
            page.press(".efl-tamper-height input", "Enter")
            page.click(".efl-tamper-button")
            status = page.wait_for_selector(
                ".efl-tamper-status:has-text('broken check: merkle root at height 3')")
            text = status.inner_text()
            assert "Tampered a scratch copy" in text
            assert f"Original ledger: \u2714 {expected}" in text
            page.screenshot(path=str(ARTIFACTS / "explorer_tamper.png"))
            assert _digest(ledger) == before  # the original file was never written

            assert append_empty_block(ledger) == N_BLOCKS  # a new block arrives from outside
            page.wait_for_function(
                "n => document.querySelectorAll('.efl-block-list select option').length === n",
                arg=N_BLOCKS + 1)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "explorer_failure.png"))
            print(lab.log())  # shown by pytest with the failure
            raise
        finally:
            browser.close()
