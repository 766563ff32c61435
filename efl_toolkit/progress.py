"""One progress display for every loop in the package (training epochs, rounds, sweeps).

Three modes, chosen from where the output goes (:func:`progress_mode`):

* ``notebook``: tqdm's ipywidgets bar (``tqdm.notebook``), left visible when done;
* ``terminal``: tqdm's text bar on a terminal, left visible when done;
* ``plain``: output that is not a terminal (``efl demo > run.log``, CI logs): nothing while
  the loop runs, then exactly one plain line when it ends (no carriage-return updates).

A loop that ends early on purpose (early stopping) is a success, not a failure: :meth:`Progress.
finish` shrinks the bar's total to the steps done, so tqdm closes it complete (green in a
notebook; tqdm's notebook bar turns red only when closed with ``n < total``, see
``tqdm/notebook.py``'s ``close``) and says ``stopped early at epoch k (best b)``. A loop left by
an exception is closed as it stands (red in a notebook).

The environment variable ``EFL_PROGRESS`` (``notebook``, ``terminal``, ``plain`` or ``off``)
overrides the detection.
"""
from __future__ import annotations

import os
import sys
import time
from typing import TextIO

MODES = ("notebook", "terminal", "plain", "off")


def in_notebook_kernel() -> bool:
    """True inside a Jupyter (IPython kernel) process, where tqdm draws an ipywidgets bar."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except AttributeError:
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def progress_mode(file: TextIO | None = None) -> str:
    """The display mode for ``file`` (default ``sys.stderr``): one of :data:`MODES`.

    Raises:
        ValueError: ``EFL_PROGRESS`` is set to something other than one of :data:`MODES`.
    """
    forced = os.environ.get("EFL_PROGRESS", "").strip().lower()
    if forced:
        if forced not in MODES:
            raise ValueError(f"EFL_PROGRESS={forced!r}: choose one of {', '.join(MODES)}")
        return forced
    if in_notebook_kernel():
        return "notebook"
    file = file if file is not None else sys.stderr
    try:
        return "terminal" if file.isatty() else "plain"
    except (AttributeError, ValueError):  # closed or unusual streams
        return "plain"


def _format_postfix(postfix: dict[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in postfix.items())


class Progress:
    """A progress bar over ``total`` steps of one loop (a model's epochs, a run's rounds).

    Use as a context manager, call :meth:`update` once per step and :meth:`finish` when the
    loop ends (with ``stopped_at``/``best`` after early stopping).

    Args:
        total: Planned number of steps (>= 0).
        desc: Label, e.g. ``"hospital-a mlp"``.
        unit: Name of one step (``"epoch"``, ``"round"``), used in the final text.
        enabled: False shows nothing (e.g. ``progress=False``).
        mode: One of :data:`MODES`; default :func:`progress_mode`.
        file: Stream for the terminal bar and the plain line (default ``sys.stderr``).

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> with Progress(5, "demo", mode="plain", file=out) as bar:
        ...     for epoch in range(1, 4):
        ...         bar.update(loss="0.5")
        ...     bar.finish(stopped_at=3, best=1)
        >>> out.getvalue().split(" in ")[0]
        'demo: stopped early at epoch 3 (best 1) of 5, loss=0.5'
    """

    def __init__(self, total: int, desc: str, *, unit: str = "epoch", enabled: bool = True,
                 mode: str | None = None, file: TextIO | None = None):
        if total < 0:
            raise ValueError(f"progress total must be >= 0, got {total}")
        self.total, self.desc, self.unit, self.n = int(total), desc, unit, 0
        self.file = file
        self.mode = "off" if not enabled else (mode or progress_mode(file))
        if self.mode not in MODES:
            raise ValueError(f"progress mode {self.mode!r}: choose one of {', '.join(MODES)}")
        self.postfix: dict[str, str] = {}
        self.note = self.stopped = ""
        self.closed = False
        self.started = time.perf_counter()
        self.bar = None
        if self.mode in ("notebook", "terminal"):
            if self.mode == "notebook":
                from tqdm.notebook import tqdm
            else:
                from tqdm.std import tqdm
            self.bar = tqdm(total=self.total, desc=desc, leave=True, unit=unit,
                            file=file if self.mode == "terminal" else None)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.finish()
        else:
            self.close(failed=True)

    def update(self, steps: int = 1, **postfix) -> None:
        """Counts ``steps`` done and shows ``postfix`` (e.g. ``loss="0.412"``) beside the bar."""
        self.n += steps
        self.postfix.update({key: str(value) for key, value in postfix.items()})
        if self.bar is not None:
            self.bar.set_postfix(self.postfix, refresh=False)
            self.bar.update(steps)

    def finish(self, *, stopped_at: int | None = None, best: int | None = None,
               note: str = "") -> None:
        """Ends the loop as a success and closes the bar (idempotent).

        Args:
            stopped_at: The step the loop stopped at early (e.g. the epoch early stopping hit);
                the bar's total becomes the steps done, so it ends complete.
            best: The step whose state was kept (said with ``stopped_at``).
            note: Anything else to say at the end (e.g. ``"best round 4"``).
        """
        if self.closed:
            return
        if stopped_at is not None:
            self.stopped = (f"stopped early at {self.unit} {stopped_at}"
                            + (f" (best {best})" if best is not None else ""))
        self.note = note
        if self.bar is not None:
            if self.n < self.total and stopped_at is not None:
                self.bar.total = self.n
                if self.mode == "notebook":  # the widget keeps its own maximum
                    self.bar.container.children[1].max = max(self.n, 1)
            if self.stopped or self.note:
                self.bar.set_postfix_str(", ".join(filter(None, [
                    self.stopped, self.note, _format_postfix(self.postfix)])), refresh=False)
        self.close()

    def close(self, failed: bool = False) -> None:
        """Closes without declaring success (a loop stopped by an error shows as such)."""
        if self.closed:
            return
        self.closed = True
        if self.bar is not None:
            self.bar.close()
        elif self.mode == "plain":
            print(self.line(failed), file=self.file if self.file is not None else sys.stderr,
                  flush=True)

    def line(self, failed: bool = False) -> str:
        """The one plain line that sums the loop up, e.g. ``"hospital-a mlp: 12/12 epochs,
        loss=0.31 in 4.2 s"``."""
        if failed:
            done = f"failed at {self.unit} {self.n} of {self.total}"
        elif self.stopped:
            done = f"{self.stopped} of {self.total}"
        else:
            done = f"{self.n}/{self.total} {self.unit}s"
        extra = ", ".join(filter(None, [self.note, _format_postfix(self.postfix)]))
        seconds = time.perf_counter() - self.started
        return f"{self.desc}: {done}" + (f", {extra}" if extra else "") + f" in {seconds:.1f} s"
