"""Tables for the course: rich HTML in a notebook, plain text in a terminal.

Every course notebook shows its tables with :func:`show` (or returns a :class:`Table` as a
cell's last expression). In a Jupyter kernel the table renders as HTML from a pandas
:class:`~pandas.io.formats.style.Styler`: numbers rounded, headers and cells that never wrap,
lists joined with commas, and long hexadecimal hashes (model versions, block hashes) shortened
to their first 12 characters with the full value on hover (the ``title`` attribute). Anywhere
else (a terminal, ``python script.py > run.log``) the same call prints the fixed-width text of
:func:`efl_toolkit.course.viz.format_table`, with the same shortened hashes.

Example:
    >>> t = table([{"model": "mlp", "version": "ab" * 32, "auc": 0.81234}])
    >>> print(t)
    model  version        auc
    mlp    abababababab…  0.812
    >>> 'title="' + "ab" * 32 + '"' in t._repr_html_()
    True
"""

from __future__ import annotations

import html
import re
import sys
from collections.abc import Mapping, Sequence

import numpy as np

from efl_toolkit.course.viz import _cell, format_table

#: A cell is a hash when it is this many or more lowercase hexadecimal characters.
HASH_PATTERN = re.compile(r"^[0-9a-f]{16,}$")
#: Characters of a hash shown in the table (the full value is in the hover title).
HASH_SHOWN = 12
_STYLES = [
    {"selector": "th", "props": "white-space: nowrap; text-align: left; padding: 2px 10px;"},
    {"selector": "td", "props": "white-space: nowrap; padding: 2px 10px;"},
    {"selector": "caption", "props": "caption-side: top; text-align: left; font-weight: bold;"},
]


def is_hash(value) -> bool:
    """True when ``value`` is a string of 16 or more lowercase hex digits (SHA-256 etc.)."""
    return isinstance(value, str) and bool(HASH_PATTERN.match(value))


def short_hash(value: str) -> str:
    """``value`` cut to :data:`HASH_SHOWN` characters and an ellipsis (unchanged if short)."""
    return value if len(value) <= HASH_SHOWN else value[:HASH_SHOWN] + "…"


def _separator(values) -> str:
    """``"; "`` between items that contain commas (``"normal, benign"``), else ``", "``."""
    return "; " if any(isinstance(v, str) and "," in v for v in values) else ", "


def _plain(value):
    """A cell as the text table shows it: hashes shortened, sequences flattened."""
    if isinstance(value, list | tuple):
        if _separator(value) == "; ":
            return "; ".join(str(_plain(v)) for v in value)
        return [_plain(v) for v in value]
    return short_hash(value) if is_hash(value) else value


def _html_cell(value, digits: int) -> str:
    """A cell as HTML: the text table's rendering, escaped; hashes get a hover title."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return _separator(value).join(_html_cell(v, digits) for v in value)
    if is_hash(value):
        return (f'<span title="{value}" style="font-family: monospace">'
                f"{short_hash(value)}</span>")
    return html.escape(_cell(value, digits))


class Table:
    """Dict rows shown as an HTML table in a notebook and as text elsewhere.

    Args:
        rows: One mapping per row (at least one row; an empty list shows ``(no rows)``).
        columns: Columns to show, in order; default every key of any row, in order of first
            appearance (a row without a key shows ``-`` there).
        digits: Decimal places of floats.
        caption: Optional title shown above the HTML table and the text table.

    Raises:
        ValueError: A column named in ``columns`` is missing from a row (the row is named).
    """

    def __init__(self, rows: Sequence[Mapping], columns: Sequence[str] | None = None, *,
                 digits: int = 3, caption: str | None = None) -> None:
        self.rows = [dict(row) for row in rows]
        if columns is None:
            columns = list(dict.fromkeys(key for row in self.rows for key in row))
            self.rows = [{c: row.get(c) for c in columns} for row in self.rows]
        self.columns = list(columns)
        for index, row in enumerate(self.rows):
            missing = [c for c in self.columns if c not in row]
            if missing:
                raise ValueError(f"row {index} has no column(s) {missing}")
        self.digits = digits
        self.caption = caption

    def frame(self):
        """The rows as a :class:`pandas.DataFrame` (full values, numbers unrounded)."""
        import pandas as pd

        return pd.DataFrame([{c: row[c] for c in self.columns} for row in self.rows],
                            columns=self.columns)

    def styler(self):
        """A pandas ``Styler``: rounded numbers, hover titles on hashes, no wrapping."""
        frame = self.frame()
        styler = frame.style.format(lambda v: _html_cell(v, self.digits)).hide(axis="index")
        numeric = [c for c in self.columns if frame[c].dtype.kind in "fiu"]
        text = [c for c in self.columns if c not in numeric]
        for columns, align in ((numeric, "right"), (text, "left")):
            if columns:  # numbers right, text left (notebook CSS centres cells otherwise)
                styler = styler.set_properties(subset=columns, **{"text-align": align})
        styler = styler.set_table_styles(_STYLES)
        return styler.set_caption(html.escape(self.caption)) if self.caption else styler

    def _repr_html_(self) -> str:
        if not self.rows:
            return "<p>(no rows)</p>"
        return self.styler().to_html()

    def __str__(self) -> str:
        text = format_table([{c: _plain(row[c]) for c in self.columns} for row in self.rows],
                            self.columns, digits=self.digits)
        return f"{self.caption}\n{text}" if self.caption else text

    __repr__ = __str__


def table(rows: Sequence[Mapping], columns: Sequence[str] | None = None, *, digits: int = 3,
          caption: str | None = None) -> Table:
    """A :class:`Table` of ``rows`` (see there); return it as a cell's last expression."""
    return Table(rows, columns, digits=digits, caption=caption)


def mapping_table(mapping: Mapping, *, key: str = "quantity", value: str = "value",
                  digits: int = 3, caption: str | None = None) -> Table:
    """A two-column :class:`Table` of a flat mapping, one row per key (for dict results).

    Example:
        >>> print(mapping_table({"label_skew": 0.25512400827565945, "size_ratio": 2.0}))
        quantity    value
        label_skew  0.255
        size_ratio  2.000
    """
    return Table([{key: k, value: v} for k, v in mapping.items()], [key, value],
                 digits=digits, caption=caption)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (rich display), False in a terminal or script."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def show(rows: Sequence[Mapping] | Mapping | Table, columns: Sequence[str] | None = None, *,
         digits: int = 3, caption: str | None = None) -> None:
    """Shows a table: rich HTML in a Jupyter kernel, printed text anywhere else.

    Args:
        rows: Dict rows, a flat mapping (shown with :func:`mapping_table`) or a :class:`Table`.
        columns, digits, caption: As for :class:`Table` (ignored when ``rows`` is a Table).

    Returns nothing, so that ``show(...)`` as a cell's last line shows the table once; use
    :func:`table` for a :class:`Table` to keep (its ``frame()`` is a DataFrame to sort or
    export).
    """
    if isinstance(rows, Table):
        shown = rows
    elif isinstance(rows, Mapping):
        shown = mapping_table(rows, digits=digits, caption=caption)
    else:
        shown = Table(rows, columns, digits=digits, caption=caption)
    if in_notebook():
        from IPython.display import display

        display(shown)
    else:
        print(shown)


def class_counts_text(counts: Sequence[int], class_names: Sequence[str]) -> str:
    """Per-class counts as one unambiguous phrase, e.g. ``malignant: 42; normal/benign: 114``.

    A comma inside a class name (MedMNIST's ``"normal, benign"``) becomes ``/`` so that the
    phrase can never read as more classes than there are.

    Raises:
        ValueError: ``counts`` and ``class_names`` differ in length.
    """
    if len(counts) != len(class_names):
        raise ValueError(f"{len(counts)} counts for {len(class_names)} class names")
    return "; ".join(f"{name.replace(', ', '/').replace(',', '/')}: {int(count)}"
                     for name, count in zip(class_names, counts, strict=True))
