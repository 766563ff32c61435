"""The explorer in a real browser: JupyterLab on 127.0.0.1, driven in headless Chromium.

The test makes a ledger with the real ledger API and a notebook that displays the explorer on
it, starts a throwaway JupyterLab server (``tests/browser/lab.py``), opens the notebook in
Debian's Chromium through Playwright, runs all cells, clicks *Verify chain* and *Tamper*, and
checks what the page shows. It also appends a block from outside and waits for the page to list
it. A second test measures the explorer's block detail at a laptop size (1280x800, file browser
open) and a desktop size (1920x1080): badges, hashes and the payload must be fully visible (element
boxes measured in the page), and searching a public-key prefix finds the institution.
Screenshots go to ``$EFL_ARTIFACTS`` or ``tests/artifacts/`` (git-ignored).

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

ARTIFACTS = Path(os.environ.get("EFL_ARTIFACTS") or Path(__file__).parent / "artifacts")
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


#: Measures the block detail in the page: every box a reader needs, against the detail panel.
MEASURE_DETAIL = """() => {
  const box = e => { const r = e.getBoundingClientRect();
                     return {left: r.left, right: r.right, top: r.top, bottom: r.bottom,
                             width: r.width, height: r.height}; };
  const detail = document.querySelector('.efl-block-detail');
  const all = sel => [...detail.querySelectorAll(sel)];
  const fit = e => ({...box(e), scroll: e.scrollWidth, client: e.clientWidth,
                     text: e.textContent.slice(0, 40)});
  return {viewport: {width: window.innerWidth, height: window.innerHeight},
          detail: {...box(detail), scroll: detail.scrollWidth, client: detail.clientWidth},
          badges: all('.efl-badge').map(fit),
          cells: all('.efl-fields td').map(fit),
          payloads: all('.efl-payload').map(e => ({...fit(e),
                                                   whiteSpace: getComputedStyle(e).whiteSpace,
                                                   lines: e.textContent.split('\\n').length}))};
}"""


def assert_detail_fully_visible(m: dict, size: str) -> None:
    """Badges, header cells and payloads lie inside the detail panel, inside the window, and
    need no hidden scrolling (badges and cells); the panel is wide enough to read."""
    panel, width = m["detail"], m["viewport"]["width"]
    assert panel["right"] <= width + 1 and panel["left"] >= 0, f"{size}: panel off screen {m}"
    assert panel["width"] >= 440, f"{size}: the detail panel is only {panel['width']:.0f} px"
    assert panel["scroll"] <= panel["client"] + 1, f"{size}: the panel scrolls sideways"
    assert len(m["badges"]) >= 5 and m["payloads"] and m["cells"], f"{size}: {m}"
    for kind in ("badges", "cells", "payloads"):
        for e in m[kind]:
            inside = (e["left"] >= panel["left"] - 1 and e["right"] <= panel["right"] + 1
                      and e["right"] <= width + 1 and e["width"] > 0)
            assert inside, f"{size}: {kind[:-1]} {e['text']!r} is cut: {e} vs panel {panel}"
            if kind != "payloads":  # a payload scrolls on purpose; badges and cells never do
                assert e["scroll"] <= e["client"] + 1, f"{size}: {e['text']!r} is clipped"
    for e in m["payloads"]:
        assert e["whiteSpace"] == "pre" and e["width"] >= 400, f"{size}: payload {e}"
        assert e["lines"] > 3, f"{size}: the payload is not pretty-printed: {e}"


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_explorer_detail_fully_visible_at_laptop_and_desktop_sizes(tmp_path):
    _require_browser()
    from playwright.sync_api import sync_playwright

    from efl_toolkit.explorer.ledger_backend import LedgerBackend

    root = tmp_path / "root"
    root.mkdir()
    ledger = root / "ledger.sqlite"
    make_sample_ledger(ledger)
    backend = LedgerBackend(ledger)
    try:
        institution = backend.institutions()[1]
    finally:
        backend.close()
    write_explorer_notebook(root / "explorer.ipynb", ledger.name, refresh_seconds=0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    with JupyterLab(root=root, home=tmp_path / "jupyter") as lab, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.set_default_timeout(WAIT_MS)
        try:
            page.goto(lab.url("lab/tree/explorer.ipynb"))
            page.wait_for_selector("#jupyterlab-splash", state="detached")
            lab.wait_for_kernel("explorer.ipynb")
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")
            page.click(".lm-MenuBar-itemLabel:text-is('Run')")
            page.click(".lm-Menu-item[data-command='runmenu:run-all']")
            page.wait_for_selector(".efl-explorer .efl-block-detail .efl-payload")
            page.select_option(".efl-block-list select", index=N_BLOCKS - 1 - 3)  # newest first
            page.wait_for_selector(".efl-block-detail h4:has-text('block 3')")

            for width, height, file_browser in ((1920, 1080, False), (1280, 800, True)):
                size = f"{width}x{height}"
                page.set_viewport_size({"width": width, "height": height})
                if file_browser and not page.locator("#filebrowser").is_visible():
                    tab = page.locator(".jp-SideBar .lm-TabBar-tab[data-id='filebrowser']")
                    if tab.count():
                        tab.first.click()
                    else:
                        page.keyboard.press("Control+Shift+F")  # View > File Browser
                if file_browser:
                    page.wait_for_selector("#filebrowser", state="visible")
                page.wait_for_timeout(500)  # let the flex layout settle after the resize
                page.locator(".efl-block-detail").scroll_into_view_if_needed()
                page.screenshot(path=str(ARTIFACTS / f"explorer_detail_{size}.png"))
                page.locator(".efl-block-detail").screenshot(
                    path=str(ARTIFACTS / f"explorer_detail_panel_{size}.png"))
                assert_detail_fully_visible(page.evaluate(MEASURE_DETAIL), size)

            page.fill(".efl-search input", institution.public_key[:8])
            page.press(".efl-search input", "Enter")
            found = page.wait_for_selector(
                f".efl-search-results:has-text('institution {institution.id}')")
            assert "institution" in found.inner_text()
            page.screenshot(path=str(ARTIFACTS / "explorer_search_public_key.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "explorer_layout_failure.png"))
            print(lab.log())
            raise
        finally:
            browser.close()


def test_search_finds_institutions_by_public_key_prefix_without_a_browser(tmp_path):
    """The same search in the kernel alone (cheap; the browser test above repeats it)."""
    from efl_toolkit.explorer import ExplorerWidget

    ledger = tmp_path / "ledger.sqlite"
    make_sample_ledger(ledger)
    explorer = ExplorerWidget(ledger, refresh_seconds=None)
    try:
        institution = explorer.backend.institutions()[2]
        hits = explorer.search(institution.public_key[:8].upper())
        assert [(h.kind, h.hash) for h in hits] == [("institution", institution.public_key)]
        assert f"institution {institution.id}" in explorer.search_results.value
        detail = explorer.block_detail.value
        assert "<wbr>" in detail and "hos<wbr>" not in detail  # hashes only break in groups
        assert '\n  &quot;' in detail  # payload pretty-printed with indent 2
    finally:
        explorer.close()
