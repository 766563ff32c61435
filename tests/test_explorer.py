"""The ledger explorer on the Python side: its state after clicks, over a real SQLite ledger.

Every test builds a small ledger with the real ledger API (three institutions, four model
versions, a tag, a finished ensemble round: 8 blocks) and drives the widget through the same
calls a browser makes (``Button.click()``, setting widget values).
"""

from __future__ import annotations

import hashlib
import itertools
import re
import time
from pathlib import Path

import pytest
from browser.sample_ledger import INSTITUTIONS, append_empty_block, make_sample_ledger

from efl_toolkit.explorer import (
    BlockRow,
    ExplorerBackend,
    ExplorerWidget,
    ModelVersion,
    TamperableBackend,
    dag_svg,
    open_backend,
)
from efl_toolkit.explorer.dag import layout
from efl_toolkit.explorer.ledger_backend import LedgerBackend
from efl_toolkit.explorer.render import BLOCK_HEADER, block_label
from efl_toolkit.ledger import CHECKS, Consortium, Ledger, LedgerError, open_ledger
from efl_toolkit.ledger.tamper import TAMPER_KINDS, copy_for_tamper, tamper

#: Which check each named attack must break (the tampered block is height 3: hospital-a's v2).
EXPECTED_BROKEN_CHECK = {
    "edit_payload": "merkle root",
    "rewrite_history": "signature",
    "edit_header": "hash link",
    "drop_votes": "quorum",
    "corrupt_artifact": "artifact hash",
    "delete_block": "encoding",
}
N_BLOCKS = 8  # genesis, 4 model commits, tag, round start, round result


@pytest.fixture
def ledger(tmp_path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "ledger" / "ledger.sqlite"
    path.parent.mkdir()
    return path, make_sample_ledger(path)


@pytest.fixture
def explorer(ledger, tmp_path):
    backend = LedgerBackend(ledger[0], scratch_dir=tmp_path)
    widget = ExplorerWidget(backend, refresh_seconds=None)
    yield widget
    widget.close()
    backend.close()


def text_of(html: str) -> str:
    """Visible text of an HTML fragment (tags dropped, whitespace squeezed)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def fingerprint(path: Path) -> dict[str, str]:
    """SHA-256 of the ledger file, its WAL and every artifact (the -shm index is not content)."""
    files = [path, Path(f"{path}-wal"), *sorted((path.parent / "artifacts").glob("*"))]
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}


def test_initial_state_lists_blocks_newest_first_and_shows_the_head(explorer, ledger):
    assert [row.height for row in explorer.rows] == list(range(N_BLOCKS))
    heights = [value for _, value in explorer.block_list.options]
    assert heights == list(reversed(range(N_BLOCKS)))
    assert explorer.block_list.value == N_BLOCKS - 1
    head = open_ledger(ledger[0]).head_hash
    assert head[:12] in explorer.summary.value
    assert f"{N_BLOCKS} blocks" in text_of(explorer.summary.value)
    label, _ = explorer.block_list.options[-1]
    assert label.split()[0] == "0" and "hospital-a" in label and label.split()[3] == "3"
    assert "not verified yet" in text_of(explorer.verify_status.value)


def test_widgets_carry_the_stable_css_classes_the_browser_test_uses(explorer):
    expected = {
        explorer: "efl-explorer", explorer.verify_button: "efl-verify-button",
        explorer.verify_status: "efl-verify-status", explorer.tamper_button: "efl-tamper-button",
        explorer.tamper_status: "efl-tamper-status", explorer.search_box: "efl-search",
        explorer.block_list: "efl-block-list", explorer.block_detail: "efl-block-detail",
        explorer.dag_view: "efl-dag", explorer.institutions_view: "efl-institutions",
        explorer.refresh_button: "efl-refresh-button", explorer.tabs: "efl-tabs",
    }
    for widget, css_class in expected.items():
        assert css_class in widget._dom_classes


def test_verify_button_shows_verified_with_height_and_head(explorer, ledger):
    explorer.verify_button.click()
    assert explorer.last_report.ok
    status = text_of(explorer.verify_status.value)
    head = open_ledger(ledger[0]).head_hash
    assert status == f"\u2714 verified: {N_BLOCKS} blocks, height {N_BLOCKS - 1}, head {head[:12]}"
    assert "efl-badge-ok" in explorer.verify_status.value


def test_block_detail_decodes_transactions_and_badges_every_check(explorer, ledger):
    explorer.block_list.value = 3
    detail = explorer.block_detail.value
    text = text_of(detail)
    assert "block 3" in text and "MODEL_COMMIT" in text and "hospital-a" in text
    assert ledger[1]["a2"] in detail and ledger[1]["a1"] in detail  # version and its parent
    assert detail.count("efl-badge-ok") == len(CHECKS)
    for check in CHECKS:
        assert f"\u2714 {check}" in text
    assert "\u2714 valid" in text  # the transaction's signature
    assert explorer.tamper_height.value == 3  # the tamper tab follows the selection


def test_institution_view_and_model_graph(explorer, ledger):
    table = text_of(explorer.institutions_view.value)
    for institution, n_versions in zip(INSTITUTIONS, (2, 1, 1), strict=True):
        assert re.search(rf"{institution} 0 {n_versions} ", table), table
    svg = explorer.dag_view.value
    assert svg.startswith("<svg") and svg.count('class="efl-dag-node"') == 5  # 4 versions, round
    assert svg.count("marker-end=") == 1 + 3  # v1 -> v2, and three versions -> round-1
    for name in ("a1", "a2", "b1", "c1"):
        assert f'data-version="{ledger[1][name]}"' in svg
    assert "ensemble rounds" in svg and "round-1 (done)" in svg


def test_refresh_picks_up_new_blocks_and_keeps_the_selection(explorer, ledger):
    assert explorer.refresh() is False
    explorer.block_list.value = 2
    assert append_empty_block(ledger[0]) == N_BLOCKS
    assert explorer.refresh() is True
    assert [row.height for row in explorer.rows] == list(range(N_BLOCKS + 1))
    assert explorer.block_list.options[0][1] == N_BLOCKS
    assert explorer.block_list.value == 2
    assert "block 2" in text_of(explorer.block_detail.value)
    assert explorer.tamper_height.max == N_BLOCKS
    assert explorer.refresh() is False


def test_background_poll_refreshes_and_close_stops_it(ledger):
    widget = ExplorerWidget(ledger[0], refresh_seconds=0.05)
    try:
        assert widget.polling
        append_empty_block(ledger[0])
        deadline = time.monotonic() + 20
        while len(widget.rows) < N_BLOCKS + 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(widget.rows) == N_BLOCKS + 1
        assert widget.block_list.options[0][1] == N_BLOCKS
    finally:
        widget.close()
    assert not widget.polling
    assert widget.comm is None  # closed widgets drop their comm


def test_explorer_over_a_live_writer_in_the_same_process(tmp_path):
    consortium = Consortium.generate(list(INSTITUTIONS), seed=1)
    ledger = Ledger.create(tmp_path / "live.sqlite", consortium)
    widget = ExplorerWidget(LedgerBackend(ledger), refresh_seconds=None)
    try:
        assert len(widget.rows) == 1
        ledger.commit_block()
        assert widget.refresh() and len(widget.rows) == 2
        widget.verify_button.click()
        assert "verified: 2 blocks, height 1" in text_of(widget.verify_status.value)
    finally:
        widget.close()
        ledger.close()


@pytest.mark.parametrize("kind", sorted(TAMPER_KINDS))
def test_tamper_button_names_the_broken_check_and_leaves_the_original_alone(explorer, ledger,
                                                                           kind):
    before = fingerprint(ledger[0])
    explorer.tabs.selected_index = 3
    explorer.tamper_kind.value = kind
    explorer.tamper_height.value = 3
    assert TAMPER_KINDS[kind] in text_of(explorer.tamper_help.value)
    explorer.tamper_button.click()
    outcome = explorer.last_tamper
    assert outcome is not None and not outcome.report.ok
    first = outcome.report.first_failure
    assert (first.height, first.check) == (3, EXPECTED_BROKEN_CHECK[kind])
    status = text_of(explorer.tamper_status.value)
    assert f"broken check: {EXPECTED_BROKEN_CHECK[kind]} at height 3" in status
    assert f"\u2718 {EXPECTED_BROKEN_CHECK[kind]}: " in status  # the block's failing badge
    assert f"Original ledger: \u2714 verified: {N_BLOCKS} blocks" in status
    scratch = Path(outcome.scratch_path)
    assert scratch.exists() and scratch.parent != ledger[0].parent
    assert fingerprint(ledger[0]) == before
    assert open_ledger(ledger[0]).report.ok
    assert not open_ledger(scratch).report.ok


def test_tamper_that_cannot_apply_shows_why_and_the_widget_keeps_working(explorer):
    explorer.tamper_kind.value = "corrupt_artifact"
    explorer.tamper_height.value = 0  # genesis commits no model artifact
    explorer.tamper_button.click()
    assert "block 0 commits no model artifact" in text_of(explorer.tamper_status.value)
    assert explorer.last_tamper is None
    explorer.verify_button.click()
    assert explorer.last_report.ok


def test_close_deletes_the_scratch_copies_of_a_backend_it_opened(ledger):
    widget = ExplorerWidget(ledger[0], refresh_seconds=None)
    outcome = widget.tamper("edit_header", 2)
    assert Path(outcome.scratch_path).exists()
    widget.close()
    assert not Path(outcome.scratch_path).parent.exists()


def test_close_leaves_a_backend_it_was_given_open(ledger):
    backend = LedgerBackend(ledger[0])
    ExplorerWidget(backend, refresh_seconds=None).close()
    assert backend.height() == N_BLOCKS - 1
    backend.close()


def test_explorer_on_a_tampered_ledger_shows_the_failure(ledger, tmp_path):
    scratch = copy_for_tamper(ledger[0], tmp_path / "copy" / "ledger.sqlite")
    tamper(scratch, "edit_payload", 2)
    widget = ExplorerWidget(scratch, refresh_seconds=None)
    try:
        widget.verify_button.click()
        assert not widget.last_report.ok
        status = text_of(widget.verify_status.value)
        assert status.startswith("\u2718 FAILED at height 2: merkle root (")
        widget.block_list.value = 2
        assert "\u2718 merkle root: " in text_of(widget.block_detail.value)
        assert "efl-badge-fail" in widget.block_detail.value
    finally:
        widget.close()


def test_search_by_hash_prefix(explorer, ledger):
    version = ledger[1]["b1"]
    explorer.search_box.value = version[:6].upper()
    assert [(hit.kind, hit.height, hit.hash) for hit in explorer.last_hits] == [
        ("version", 2, version)]
    assert explorer.block_list.value == 2 and explorer.tabs.selected_index == 0
    assert "hospital-b mlp" in text_of(explorer.search_results.value)

    block_hash = explorer.rows[5].hash
    explorer.search_box.value = block_hash[:10]
    assert ("block", 5, block_hash) in [(h.kind, h.height, h.hash) for h in explorer.last_hits]
    assert explorer.block_list.value == 5

    tx = explorer.backend.block(4).transactions[0]
    explorer.search_box.value = tx.tx_hash[:8]
    assert ("tx", 4) in [(h.kind, h.height) for h in explorer.last_hits]

    explorer.search_box.value = "xyz!"
    assert explorer.last_hits == []
    assert "not a hash prefix" in text_of(explorer.search_results.value)

    hashes = [r.hash for r in explorer.rows] + list(ledger[1].values())
    absent = next("".join(p) for p in itertools.product("0123456789abcdef", repeat=3)
                  if not any(h.startswith("".join(p)) for h in hashes))
    explorer.search_box.value = absent
    assert "nothing on the ledger starts with" in text_of(explorer.search_results.value)
    explorer.search_box.value = ""
    assert explorer.search_results.value == ""


class ProtocolOnly:
    """Another backend: forwards only the read-only protocol (no tamper) and logs each call."""

    def __init__(self, inner: LedgerBackend) -> None:
        self.inner, self.calls = inner, []
        for name in ("height", "head", "blocks", "block", "check_block", "verify",
                     "institutions", "model_versions", "find"):
            setattr(self, name, self._forward(name))

    def _forward(self, name):
        def call(*args):
            self.calls.append(name)
            return getattr(self.inner, name)(*args)
        return call


def test_any_protocol_backend_can_feed_the_widget(ledger):
    inner = LedgerBackend(ledger[0])
    backend = ProtocolOnly(inner)
    assert isinstance(backend, ExplorerBackend) and not isinstance(backend, TamperableBackend)
    assert isinstance(inner, TamperableBackend)
    widget = ExplorerWidget(backend, refresh_seconds=None)
    try:
        widget.verify_button.click()
        widget.search_box.value = ledger[1]["a1"][:8]
        assert widget.last_report.ok and widget.block_list.value == 1
        assert widget.tamper_button.disabled and widget.tamper_kind.options == ()
        with pytest.raises(TypeError, match="offers no tamper experiments"):
            widget.tamper("edit_payload", 1)
        assert {"height", "blocks", "block", "check_block", "verify", "institutions",
                "model_versions", "find"} <= set(backend.calls)
    finally:
        widget.close()
        inner.close()


def test_bad_sources_are_refused_with_a_clear_error(tmp_path):
    missing = tmp_path / "nope.sqlite"
    with pytest.raises(LedgerError, match="nope.sqlite: no such ledger file"):
        ExplorerWidget(missing, refresh_seconds=None)
    with pytest.raises(TypeError, match="got int"):
        open_backend(42)


def test_block_labels_line_up_with_the_header():
    label = block_label(BlockRow(12, "cd" * 32, "hospital-b", 7, 86400.0))
    words, titles = list(re.finditer(r"\S+", label)), list(re.finditer(r"\S+", BLOCK_HEADER))
    assert [w.end() for w in words][0:4:3] == [t.end() for t in titles][0:4:3]  # numbers right
    assert [w.start() for w in words][1:3] == [t.start() for t in titles][1:3]  # text left
    assert label.endswith("1970-01-02 00:00:00")


def test_dag_layout_and_svg_are_pure_and_escape_labels():
    versions = [ModelVersion("a1", "model", "h-a", "cnn v1", 1),
                ModelVersion("b1", "model", "h-b", "<mlp>", 2),
                ModelVersion("a2", "model", "h-a", "cnn v2", 3, parents=("a1", "gone")),
                ModelVersion("r", "round", "rounds", "round", 4, parents=("a2", "b1"))]
    placed = layout(versions)
    assert placed.lanes == ("h-a", "h-b", "rounds")
    xs = {v: placed.positions[v][0] for v in ("a1", "b1", "a2", "r")}
    assert xs["a1"] < xs["b1"] < xs["a2"] < xs["r"]
    assert placed.positions["a1"][1] == placed.positions["a2"][1]
    svg = dag_svg(versions)
    assert svg == dag_svg(versions)
    assert svg.count("marker-end=") == 3  # the missing parent "gone" is skipped
    assert "&lt;mlp&gt;" in svg and "<mlp>" not in svg
    assert "no model versions" in dag_svg([])
