"""Helpers for learning the ledger: forge edits, tamper, draw the chain.

(Real models are committed with :func:`efl_toolkit.federation.record.commit_model`: the ledger
package knows nothing about training.)

* :func:`edited` is what an attacker without keys can do: change a signed transaction's payload
  and keep the old signature (which then no longer verifies);
* :func:`tamper_demo` applies named attacks to scratch copies and reports, per block, which check
  broke; the original ledger is only read;
* :func:`run_efl` runs the ``efl`` command (e.g. ``efl ledger verify``) in a subprocess;
* :func:`plot_chain` and :func:`plot_tamper_grid` draw the chain and the tamper outcomes.

Example:
    >>> import tempfile
    >>> from efl_toolkit.ledger import Consortium, Ledger, ModelRegistry
    >>> d = tempfile.mkdtemp()
    >>> ledger = Ledger.create(f"{d}/ledger.sqlite", Consortium.generate(["a", "b", "c"], seed=0))
    >>> _ = ModelRegistry(ledger).model_commit("a", "m", b"w", None, "mlp", {"acc": 0.7}, {})
    >>> ledger.close()
    >>> [(r.kind, r.first_failure) for r in tamper_demo(f"{d}/ledger.sqlite",
    ...                                                 [("drop_votes", 1)], f"{d}/scratch")]
    [('drop_votes', (1, 'quorum'))]
"""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle

from efl_toolkit.ledger.reader import LedgerView, open_ledger
from efl_toolkit.ledger.tamper import TAMPER_KINDS, copy_for_tamper, tamper
from efl_toolkit.ledger.transactions import Transaction
from efl_toolkit.ledger.verify import VerificationReport


def edited(tx: Transaction, **changes) -> Transaction:
    """``tx`` with payload fields replaced but the ORIGINAL signature kept.

    Example:
        >>> from efl_toolkit.ledger.crypto import private_key_from_seed, public_key_hex
        >>> from efl_toolkit.ledger.transactions import sign_transaction
        >>> key = private_key_from_seed(bytes(32))
        >>> tx = sign_transaction(key, "ROUND_FAILED", "h1", 1, {"round_id": "r", "reason": "x"},
        ...                       chain="ab" * 32)
        >>> edited(tx, reason="y").signature_ok(public_key_hex(key))
        False
    """
    unknown = sorted(set(changes) - set(tx.payload))
    if unknown:
        raise ValueError(f"{tx.type} payload has no field(s) {unknown}; it has "
                         f"{sorted(tx.payload)}")
    return dataclasses.replace(tx, payload={**tx.payload, **changes})


def efl_command() -> list[str]:
    """The ``efl`` console script of this interpreter's environment (or ``python -m``).

    Example:
        >>> Path(efl_command()[-1]).name in ("efl", "efl_toolkit.cli")
        True
    """
    script = Path(sys.executable).parent / "efl"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "efl_toolkit.cli"]


def run_efl(*args: str | os.PathLike, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """Runs ``efl ARGS...`` in a subprocess; returns it with text ``stdout``/``stderr``.

    Example:
        >>> run_efl("ledger", "verify", "/no/such/ledger.sqlite").returncode  # bad input
        2
    """
    return subprocess.run([*efl_command(), *(str(a) for a in args)], capture_output=True,
                          text=True, timeout=timeout, check=False)


@dataclass(frozen=True)
class TamperDemo:
    """One attack on a scratch copy and what verification said.

    Attributes:
        kind: Attack name (a key of ``TAMPER_KINDS``).
        height: Block attacked.
        description: What was changed.
        scratch_path: The tampered copy.
        report: Verification report of the copy.
        blocks: ``(height, problem or None)`` for every block still stored in the copy.
        original_ok: Whether the ORIGINAL ledger still verified after the attack.
    """

    kind: str
    height: int
    description: str
    scratch_path: Path
    report: VerificationReport
    blocks: tuple[tuple[int, str | None], ...]
    original_ok: bool

    @property
    def first_failure(self) -> tuple[int, str] | None:
        """``(height, check)`` of the first failure, or ``None`` if the copy verified."""
        return None if self.report.ok else (self.report.height, self.report.check)


def tamper_demo(ledger: str | os.PathLike, attacks: Sequence[tuple[str, int]],
                workdir: str | os.PathLike) -> list[TamperDemo]:
    """Applies each ``(kind, height)`` attack to a fresh scratch copy and verifies it.

    Args:
        ledger: The original ledger file (only read).
        attacks: Attack names (see ``TAMPER_KINDS``) and block heights.
        workdir: A folder for the scratch copies (one subfolder per attack; must differ from
            the ledger's folder).

    Raises:
        ValueError: an unknown attack name.
        LedgerError: a missing block, or a block with nothing to attack.

    Example:
        >>> demos = tamper_demo("ledger.sqlite", [("edit_header", 1)], "scratch")  # doctest: +SKIP
        >>> demos[0].first_failure, demos[0].original_ok                           # doctest: +SKIP
        ((1, 'hash link'), True)
    """
    out = []
    for position, (kind, height) in enumerate(attacks):
        if kind not in TAMPER_KINDS:
            raise ValueError(f"unknown attack {kind!r}; choose from {sorted(TAMPER_KINDS)}")
        scratch = copy_for_tamper(ledger, Path(workdir) / f"{position}-{kind}" /
                                  Path(ledger).name)
        description = tamper(scratch, kind, height)
        with open_ledger(scratch) as view:
            blocks = tuple((h.height, h.problem) for h in view.headers())
            report = view.report
        with open_ledger(ledger) as original:
            original_ok = original.report.ok
        out.append(TamperDemo(kind, height, description, scratch, report, blocks, original_ok))
    return out


def tamper_rows(demos: Sequence[TamperDemo]) -> list[dict]:
    """One table row per attack: what changed, where and how it was caught.

    Example:
        >>> tamper_rows([])
        []
    """
    return [{"attack": d.kind, "block": d.height,
             "detected at": "-" if d.report.ok else d.report.height,
             "check": d.report.check or "-", "original ok": d.original_ok}
            for d in demos]


def plot_tamper_grid(demos: Sequence[TamperDemo]) -> Figure:
    """Blocks (columns) under each attack (rows): green verified, red failed (with the check
    that caught it), grey missing.

    Example:
        >>> plot_tamper_grid([])
        Traceback (most recent call last):
        ...
        ValueError: no tamper results to plot
    """
    if not demos:
        raise ValueError("no tamper results to plot")
    top = max(max((h for h, _ in d.blocks), default=0) for d in demos)
    top = max([top] + [d.height for d in demos])
    fig = Figure(figsize=(1.1 * (top + 1) + 2.5, 0.55 * len(demos) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    colors = {"ok": "#4caf50", "bad": "#e53935", "missing": "#bdbdbd"}
    for row, demo in enumerate(demos):
        present = dict(demo.blocks)
        for h in range(top + 1):
            if h not in present:
                state, text = "missing", "gone"
            elif present[h] is None:
                state, text = "ok", ""
            else:
                state, text = "bad", present[h].split(":", 1)[0]
            ax.add_patch(Rectangle((h, row), 0.94, 0.88, color=colors[state]))
            ax.text(h + 0.47, row + 0.44, text, ha="center", va="center", fontsize="x-small",
                    color="white" if state == "bad" else "black")
        ax.plot(demo.height + 0.47, row + 0.05, marker="^", color="black", markersize=5)
    ax.set(xlim=(0, top + 1), ylim=(len(demos), 0), xlabel="block height (^ attacked)",
           ylabel="attack on a scratch copy",
           title="Which check catches which attack, on a scratch copy")
    ax.set_xticks([h + 0.47 for h in range(top + 1)], [str(h) for h in range(top + 1)])
    ax.set_yticks([r + 0.44 for r in range(len(demos))], [d.kind for d in demos])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    return fig


def plot_chain(view: LedgerView, *, per_row: int = 4) -> Figure:
    """The chain as linked boxes: height, hash, previous hash, Merkle root, proposer, number of
    transactions and signers; red when the block fails verification.

    Example:
        >>> import tempfile
        >>> from efl_toolkit.ledger import Consortium, Ledger
        >>> ledger = Ledger.create(tempfile.mkdtemp() + "/l.sqlite",
        ...                        Consortium.generate(["a", "b"], seed=0))
        >>> len(plot_chain(ledger).axes)
        1
    """
    headers = view.headers()
    if not headers:
        raise ValueError(f"{view.path}: no blocks to draw")
    n_rows = math.ceil(len(headers) / per_row)
    fig = Figure(figsize=(3.2 * min(per_row, len(headers)), 1.9 * n_rows), layout="constrained")
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["tab10"]
    width, height = 2.4, 1.35
    positions = {}
    for k, h in enumerate(headers):
        x, y = 3.2 * (k % per_row), -1.9 * (k // per_row)
        positions[h.height] = (x, y)
        face = "#e8f5e9" if h.ok else "#ffebee"
        ax.add_patch(Rectangle((x, y), width, height, facecolor=face,
                               edgecolor=cmap(0) if h.ok else "#e53935", linewidth=1.5))
        lines = [f"block {h.height}  #{h.hash[:10]}",
                 f"prev   {(h.prev_hash or '?')[:10]}",
                 f"merkle {(h.merkle_root or '?')[:10]}",
                 f"{h.n_txs} tx, by {h.proposer or '?'}",
                 f"signed {len(h.signers)}" + ("" if h.ok else "  FAILED")]
        ax.text(x + 0.1, y + height - 0.1, "\n".join(lines), va="top", ha="left",
                family="monospace", fontsize="small")
        if k and (headers[k - 1].height in positions):
            px, py = positions[headers[k - 1].height]
            ax.add_patch(FancyArrowPatch((x, y + height / 2), (px + width, py + height / 2),
                                         arrowstyle="-|>", mutation_scale=10,
                                         color="black" if h.ok else "#e53935",
                                         connectionstyle="arc3,rad=0.0"))
    ax.set(xlim=(-0.2, 3.2 * min(per_row, len(headers))), ylim=(-1.9 * (n_rows - 1) - 0.2,
                                                                  height + 0.2))
    ax.set_title("each block points to the hash of the previous one (prev)", fontsize="small")
    ax.axis("off")
    return fig

