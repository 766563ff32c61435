"""The notebook the browser test opens: it shows the explorer on a ledger beside it."""

from __future__ import annotations

from pathlib import Path

import nbformat

from .lab import KERNEL_NAME

EXPLORER_CELL = """\
from efl_toolkit.explorer import ExplorerWidget

explorer = ExplorerWidget({ledger!r}, refresh_seconds={refresh_seconds})
explorer"""


def write_explorer_notebook(path: Path, ledger: str, refresh_seconds: float = 1.0) -> Path:
    """Writes a one-cell notebook displaying ``ExplorerWidget(ledger)``; returns ``path``.

    Example:
        >>> write_explorer_notebook(Path(tmp) / "e.ipynb", "ledger.sqlite")  # doctest: +SKIP
    """
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# Ledger explorer (browser test)"),
        nbformat.v4.new_code_cell(EXPLORER_CELL.format(ledger=ledger,
                                                       refresh_seconds=refresh_seconds)),
    ]
    notebook.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "efl (venv)",
                                       "language": "python"}
    nbformat.write(notebook, path)
    return path
