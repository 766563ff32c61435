"""The ledger explorer: an ipywidgets view over any :class:`ExplorerBackend`.

Layout: a toolbar (summary, search, Refresh, Verify chain and its status badge) above tabs for
the block list with block detail, the institutions, the model-version graph and the instructor's
tamper experiment. Every interactive part carries a stable CSS class (``efl-...``) so a browser
test, or a course page, can find it.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from efl_toolkit.explorer import render
from efl_toolkit.explorer.backend import (
    BlockRow,
    ExplorerBackend,
    SearchHit,
    TamperableBackend,
    TamperOutcome,
    VerifyReport,
)
from efl_toolkit.explorer.dag import dag_svg

TAB_TITLES = ("Blocks", "Institutions", "Model graph", "Tamper (instructor)")
HEX_DIGITS = frozenset("0123456789abcdef")


def _styled(widget: widgets.DOMWidget, *classes: str) -> Any:
    for name in classes:
        widget.add_class(name)
    return widget


def open_backend(source: ExplorerBackend | str | os.PathLike) -> ExplorerBackend:
    """A backend from a backend (returned as is), an embedded ledger path (opened read-only),
    or an EVM ledger: its descriptor (``ledger.evm.json``, written by ``efl demo --ledger
    evm:RPC_URL``) or ``evm:RPC_URL#CONTRACT_ADDRESS``.

    Raises:
        LedgerError: not a usable ledger, or an unreachable node (one line).

    Example:
        >>> backend = open_backend("efl_out/ledger.sqlite")  # doctest: +SKIP
        >>> backend = open_backend("efl_out/ledger.evm.json")  # doctest: +SKIP
    """
    if isinstance(source, str | os.PathLike) and (
            str(source).endswith(".json") or str(source).startswith("evm:")):
        from efl_toolkit.ledger.evm.backend import open_chain

        return open_chain(str(source))
    if isinstance(source, str | os.PathLike):
        from efl_toolkit.explorer.ledger_backend import LedgerBackend

        return LedgerBackend(Path(source))
    if not isinstance(source, ExplorerBackend):
        raise TypeError("expected a ledger path or an ExplorerBackend, got "
                        f"{type(source).__name__}")
    return source


class ExplorerWidget(widgets.VBox):
    """An interactive explorer of one ledger; display it as the last expression of a cell.

    Args:
        source: an :class:`ExplorerBackend` (either engine's backend), the path of an embedded
            ledger file, or an EVM ledger's descriptor / ``evm:RPC_URL#ADDRESS`` (then the widget
            opens the backend itself, :func:`open_backend`, and :meth:`close` closes it).
        refresh_seconds: poll for new blocks this often in a background thread; ``None`` (or 0)
            polls never (call :meth:`refresh` yourself). :meth:`close` stops the poll.

    Example:
        >>> explorer = ExplorerWidget("efl_out/ledger.sqlite")  # doctest: +SKIP
        >>> explorer.verify_button.click()                      # doctest: +SKIP
        >>> explorer.last_report.ok                             # doctest: +SKIP
        True
    """

    def __init__(self, source: ExplorerBackend | str | os.PathLike, *,
                 refresh_seconds: float | None = 2.0, **kwargs: Any) -> None:
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._lock = threading.RLock()
        self.backend = open_backend(source)
        self._owns_backend = self.backend is not source
        self.rows: list[BlockRow] = []
        self.last_report: VerifyReport | None = None
        self.last_tamper: TamperOutcome | None = None
        self.last_hits: list[SearchHit] = []
        self.error: str | None = None
        self.checkpoint_ok: bool | None = None
        self.checkpoint_message = ""
        self._generation = getattr(self.backend, "generation", 0)
        self._rebuilding_list = False
        self._shown_height: int | None = None
        self._build()
        super().__init__(children=self._children, **kwargs)
        _styled(self, "efl-explorer")
        self.refresh()
        if refresh_seconds:
            self.start_polling(refresh_seconds)

    # ---- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        style = widgets.HTML(render.STYLE)
        self.summary = _styled(widgets.HTML(), "efl-summary")
        self.refresh_button = _styled(
            widgets.Button(description="Refresh", icon="refresh", tooltip="Read new blocks"),
            "efl-refresh-button")
        self.verify_button = _styled(
            widgets.Button(description="Verify chain", icon="check", button_style="primary",
                           tooltip="Re-check every hash link, Merkle root, signature and quorum"),
            "efl-verify-button")
        self.verify_status = _styled(widgets.HTML(render.badge("not verified yet", None)),
                                     "efl-verify-status")
        self.search_box = _styled(
            widgets.Text(placeholder="hash prefix (block, tx, model version or public key)",
                         continuous_update=False, layout=widgets.Layout(width="26em")),
            "efl-search")
        self.search_results = _styled(widgets.HTML(), "efl-search-results")
        toolbar = widgets.HBox([self.refresh_button, self.verify_button, self.verify_status])
        search = widgets.HBox([self.search_box, self.search_results])

        self.block_list = _styled(
            widgets.Select(options=[], rows=16, layout=widgets.Layout(width="100%")),
            "efl-block-list")
        # Responsive: the list (one full label wide, at most 530 px) and the detail share a wide
        # panel; where both do not fit (a laptop with the file browser open) the detail wraps
        # below the list and takes the whole width.
        self.block_detail = _styled(
            widgets.HTML(layout=widgets.Layout(flex="1000 1 480px", min_width="0",
                                               overflow="auto", margin="0 0 0 12px")),
            "efl-block-detail")
        block_column = widgets.VBox(
            [_styled(widgets.HTML(f"<pre>{render.BLOCK_HEADER}</pre>"), "efl-block-header"),
             self.block_list],
            layout=widgets.Layout(flex="1 1 480px", min_width="0", max_width="530px",
                                  overflow="hidden"))
        blocks_tab = _styled(widgets.HBox([block_column, self.block_detail],
                                          layout=widgets.Layout(flex_flow="row wrap")),
                             "efl-blocks-tab")
        self.institutions_view = _styled(widgets.HTML(), "efl-institutions")
        self.dag_view = _styled(widgets.HTML(layout=widgets.Layout(overflow="auto")), "efl-dag")

        self.tamper_kind = _styled(widgets.Dropdown(description="change", options=[]),
                                   "efl-tamper-kind")
        self.tamper_height = _styled(widgets.BoundedIntText(description="at height", min=0),
                                     "efl-tamper-height")
        self.tamper_button = _styled(
            widgets.Button(description="Tamper", icon="bolt", button_style="danger",
                           tooltip="Tamper with a scratch copy; the original is never touched"),
            "efl-tamper-button")
        self.tamper_status = _styled(widgets.HTML(), "efl-tamper-status")
        self.tamper_help = _styled(widgets.HTML(), "efl-tamper-help")
        self._tamper_kinds = {}
        if isinstance(self.backend, TamperableBackend):
            self._tamper_kinds = dict(self.backend.tamper_kinds())
            note = ("Instructor demo: changes one thing in a <b>scratch copy</b> of the ledger "
                    "and shows which check breaks. The original ledger is never written.")
        else:
            self.tamper_button.disabled = True
            note = "This backend offers no tamper experiments."
        tamper_tab = widgets.VBox([
            widgets.HTML(note),
            widgets.HBox([self.tamper_kind, self.tamper_height, self.tamper_button]),
            self.tamper_help, self.tamper_status])

        self.tabs = _styled(widgets.Tab(children=[blocks_tab, self.institutions_view,
                                                  self.dag_view, tamper_tab],
                                        titles=TAB_TITLES), "efl-tabs")
        self._children = [style, self.summary, toolbar, search, self.tabs]
        self.tamper_kind.observe(lambda change: self._explain_tamper(change["new"]),
                                 names="value")
        self.tamper_kind.options = list(self._tamper_kinds)

        self.refresh_button.on_click(self._guard(lambda _: self.refresh()))
        self.verify_button.on_click(self._guard(lambda _: self.verify()))
        self.tamper_button.on_click(self._guard(lambda _: self.tamper(), self.tamper_status))
        self.block_list.observe(self._guard(self._on_select, self.block_detail), names="value")
        self.search_box.observe(self._guard(lambda change: self.search(change["new"]),
                                            self.search_results), names="value")

    def _guard(self, handler: Callable[[Any], None],
               status: widgets.HTML | None = None) -> Callable[[Any], None]:
        """Wraps a callback so an error is shown in ``status`` (default: the summary line)
        instead of vanishing into the kernel log; the widget stays usable."""

        def guarded(argument: Any) -> None:
            try:
                handler(argument)
            except Exception as error:
                self.error = traceback.format_exc()
                (status or self.summary).value = render.badge(
                    f"error: {type(error).__name__}: {error}", False)

        return guarded

    # ---- reading -----------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Reads blocks added since the last refresh; True when something new arrived.

        A ledger whose known blocks changed (replaced file, rewritten history) is reloaded whole.
        """
        with self._lock:
            height = self.backend.height()
            generation = getattr(self.backend, "generation", 0)
            if generation != self._generation:  # the path now holds another ledger
                self._generation = generation
                self.rows = []
                self.last_report = None
                self.verify_status.value = render.badge("not verified yet", None)
            known = self.rows[-1] if self.rows else None
            if known is not None and height == known.height and \
                    self.backend.head() == known.hash:
                self._show_summary()
                return False
            appended = known is not None and height >= known.height and \
                self.backend.blocks(known.height, known.height + 1)[0].hash == known.hash
            if appended:
                self.rows.extend(self.backend.blocks(known.height + 1, height + 1))
            else:
                self.rows = list(self.backend.blocks(0, height + 1))
            self.tamper_height.max = max(height, 0)
            self._show_rows(reshow=not appended)
            self.institutions_view.value = render.institutions_table(self.backend.institutions())
            self.dag_view.value = dag_svg(self.backend.model_versions())
            self._check_checkpoint()
            self._show_summary()
            return True

    def _check_checkpoint(self) -> None:
        status = getattr(self.backend, "checkpoint_status", None)
        if status is not None:
            self.checkpoint_ok, self.checkpoint_message = status()

    def _show_rows(self, reshow: bool) -> None:
        """Rebuilds the block list, keeping the user's selection (newest block by default)."""
        selected = self.block_list.value
        if selected is None or all(r.height != selected for r in self.rows):
            selected = self.rows[-1].height if self.rows else None
        self._rebuilding_list = True
        try:
            self.block_list.options = [(render.block_label(r), r.height)
                                       for r in reversed(self.rows)]
            self.block_list.value = selected
        finally:
            self._rebuilding_list = False
        if reshow or selected != self._shown_height:
            self.show_block(selected)

    def _on_select(self, change: dict) -> None:
        if not self._rebuilding_list:
            self.show_block(change["new"])

    def _show_summary(self) -> None:
        head = self.rows[-1].short_hash if self.rows else "-"
        line = (
            f"<b>Ledger explorer</b> &middot; {len(self.rows)} blocks &middot; height "
            f"{len(self.rows) - 1} &middot; head <code>{head}</code> &middot; refreshed "
            f"{time.strftime('%H:%M:%S')}")
        if self.checkpoint_message:
            line += " &middot; checkpoint: " + render.badge(self.checkpoint_message,
                                                             self.checkpoint_ok)
        notice = getattr(self.backend, "notice", None)
        if notice:
            gone = getattr(self.backend, "gone", False)
            line += "<br>" + render.badge(notice, False if gone else None)
        self.summary.value = line

    def show_block(self, height: int | None) -> None:
        """Shows one block's fields, a verification badge per check and decoded transactions."""
        self._shown_height = height
        if height is None:
            self.block_detail.value = "<p>no blocks yet</p>"
            return
        self.tamper_height.value = min(height, self.tamper_height.max)
        with self._lock:
            view = self.backend.block(height)
            checks = self.backend.check_block(height)
        self.block_detail.value = render.block_detail(view, checks)

    def _explain_tamper(self, kind: str | None) -> None:
        text = self._tamper_kinds.get(kind, "") if kind else ""
        self.tamper_help.value = f"<i>{escape(text)}</i>" if text else ""

    def select_block(self, height: int) -> None:
        """Selects a block in the list (and shows it), switching to the Blocks tab."""
        self.tabs.selected_index = 0
        self.block_list.value = height

    # ---- actions -----------------------------------------------------------------------------
    def verify(self) -> VerifyReport:
        """Verifies the whole chain and shows the result in the status badge."""
        self.verify_status.value = render.badge("verifying...", None)
        with self._lock:
            try:
                report = self.backend.verify()
            except Exception as error:  # e.g. the ledger file is gone: say so, no tamper alarm
                self.last_report = None
                self.verify_status.value = render.badge(str(error), None)
                self._show_summary()
                raise
            if getattr(self.backend, "generation", 0) != self._generation:
                self.refresh()  # verified another ledger than the one shown: show that one
            self._check_checkpoint()
        self._show_summary()
        self.last_report = report
        self.verify_status.value = render.verify_status(report)
        return report

    def search(self, prefix: str) -> list[SearchHit]:
        """Finds blocks, transactions and model versions by hash prefix, and institutions by
        public-key prefix; selects the first hit's block."""
        prefix = prefix.strip().lower()
        if not prefix:
            self.search_results.value = ""
            self.last_hits = []
            return []
        if not set(prefix) <= HEX_DIGITS:
            self.search_results.value = render.badge(
                f"'{prefix}' is not a hash prefix: use hex digits 0-9 a-f", False)
            self.last_hits = []
            return []
        with self._lock:
            hits = list(self.backend.find(prefix))
            found = {hit.hash for hit in hits}
            hits += [SearchHit("institution", inst.registered_height, inst.public_key,
                               f"institution {inst.id} (public key), registered in block "
                               f"{inst.registered_height}")
                     for inst in self.backend.institutions()
                     if inst.public_key.lower().startswith(prefix)
                     and inst.public_key not in found]
        self.last_hits = hits
        self.search_results.value = render.search_results(prefix, hits)
        if hits and any(r.height == hits[0].height for r in self.rows):
            self.select_block(hits[0].height)
        return hits

    def tamper(self, kind: str | None = None, height: int | None = None) -> TamperOutcome:
        """Runs a tamper experiment on a scratch copy and shows which check broke where.

        Args:
            kind: one of the backend's ``tamper_kinds()`` (default: the dropdown's choice).
            height: the block to tamper with (default: the height box).
        """
        if not isinstance(self.backend, TamperableBackend):
            raise TypeError(f"{type(self.backend).__name__} offers no tamper experiments")
        kind = kind if kind is not None else self.tamper_kind.value
        height = height if height is not None else self.tamper_height.value
        self.tamper_status.value = render.badge(f"tampering with a copy: {kind} at {height}...",
                                                None)
        if kind not in self._tamper_kinds:
            raise ValueError(f"unknown tamper experiment {kind!r}; choose from "
                             f"{sorted(self._tamper_kinds)}")
        with self._lock:
            outcome = self.backend.tamper_copy(kind, height)
            original = self.backend.verify()
        self.last_tamper = outcome
        self.tamper_status.value = render.tamper_report(outcome, original)
        return outcome

    # ---- background refresh ------------------------------------------------------------------
    def start_polling(self, seconds: float) -> None:
        """Refreshes every ``seconds`` in a daemon thread until :meth:`stop_polling`/`close`."""
        self.stop_polling()
        self._stop = threading.Event()
        stop, refresh = self._stop, self._guard(lambda _: self.refresh())

        def poll() -> None:
            while not stop.wait(seconds):
                refresh(None)

        self._poller = threading.Thread(target=poll, name="efl-explorer-poll", daemon=True)
        self._poller.start()

    def stop_polling(self) -> None:
        """Stops the background refresh (waits for a refresh in progress to finish)."""
        self._stop.set()
        if self._poller is not None and self._poller is not threading.current_thread():
            self._poller.join(timeout=10)
        self._poller = None

    @property
    def polling(self) -> bool:
        """Whether the background refresh thread is running."""
        return self._poller is not None and self._poller.is_alive()

    def close(self) -> None:
        """Stops polling, closes every child widget, and closes the backend if the widget opened
        it from a path (a backend you passed in stays yours to close)."""
        self.stop_polling()
        if getattr(self, "_owns_backend", False):
            self.backend.close()
        for child in self._all_children():
            child.close()
        super().close()

    def _all_children(self) -> list[widgets.Widget]:
        found, stack = [], list(self.children)
        while stack:
            widget = stack.pop()
            found.append(widget)
            stack.extend(getattr(widget, "children", ()))
        return found
