"""Course tables: rich HTML (pandas Styler) in a notebook, plain text in a terminal."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from efl_toolkit.course.tables import (
    Table,
    class_counts_text,
    in_notebook,
    mapping_table,
    show,
    table,
)

VERSION = "3f2a" + "0123456789abcdef" * 3 + "cafe"   # 56 hex characters, like a SHA-256 prefix


def test_html_rounds_numbers_shortens_hashes_with_hover_and_never_wraps():
    html = table([{"model": "mlp <b>", "version": VERSION, "auc": 0.812345, "ok": True,
                   "counts": [42, 114]}], digits=3)._repr_html_()
    assert "<table" in html
    assert "0.812" in html and "0.812345" not in html
    assert f'title="{VERSION}"' in html and f">{VERSION[:12]}…</span>" in html
    assert f">{VERSION}<" not in html           # the full hash only in the hover title
    for part in ("th", "td"):                   # neither headers nor cells wrap
        assert re.search(part + r"\s*\{[^}]*white-space: nowrap", html), part
    assert "mlp &lt;b&gt;" in html              # cell text is escaped
    assert "yes" in html and "42, 114" in html


def test_text_is_the_plain_fixed_width_table_with_short_hashes():
    text = str(table([{"model": "mlp", "version": VERSION, "auc": 0.81234}], caption="models"))
    assert text.splitlines() == ["models", "model  version        auc",
                                 f"mlp    {VERSION[:12]}…  0.812"]


def test_frame_keeps_full_values():
    frame = table([{"version": VERSION, "auc": 0.812345}]).frame()
    assert frame.loc[0, "version"] == VERSION and frame.loc[0, "auc"] == 0.812345


def test_a_missing_named_column_is_named_and_default_columns_are_the_union():
    with pytest.raises(ValueError, match=r"row 1 has no column\(s\) \['auc'\]"):
        Table([{"auc": 1.0}, {"name": "b"}], ["auc"])
    assert str(Table([{"auc": 1.0}, {"name": "b"}])).splitlines() == [
        "auc    name", "1.000  -", "-      b"]


def test_mapping_becomes_a_two_column_table():
    shown = mapping_table({"label_skew": 0.25512400827565945}, key="statistic")
    assert str(shown).splitlines() == ["statistic   value", "label_skew  0.255"]


def test_show_prints_text_outside_a_notebook(capsys):
    assert not in_notebook()
    assert show({"size_ratio": 2.0}) is None      # nothing for a cell to display twice
    assert capsys.readouterr().out == "quantity    value\nsize_ratio  2.000\n"


def test_show_displays_html_inside_a_jupyter_kernel():
    """In a real kernel the display message carries text/html with the table."""
    # a kernel on this interpreter (ipykernel), as the notebooks use, driven from a subprocess
    code = ("from efl_toolkit.course.tables import show\n"
            f"show([{{'version': {VERSION!r}, 'auc': 0.5}}])")
    script = (
        "import sys, queue\n"
        "from jupyter_client.manager import KernelManager\n"
        "km = KernelManager(kernel_cmd=[sys.executable, '-m', 'ipykernel_launcher', '-f',"
        " '{connection_file}'])\n"
        "km.start_kernel(); kc = km.client(); kc.start_channels(); kc.wait_for_ready(60)\n"
        f"kc.execute({code!r})\n"
        "html = None\n"
        "while True:\n"
        "    msg = kc.get_iopub_msg(timeout=60)\n"
        "    if msg['msg_type'] == 'display_data': html = msg['content']['data'].get('text/html')\n"
        "    if msg['msg_type'] == 'status' and msg['content']['execution_state'] == 'idle'"
        " and msg['parent_header'].get('msg_type') == 'execute_request': break\n"
        "kc.stop_channels(); km.shutdown_kernel(now=True)\n"
        "print(html)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "<table" in done.stdout and f'title="{VERSION}"' in done.stdout


def test_class_counts_read_as_exactly_the_classes():
    assert class_counts_text([42, 114], ["malignant", "normal, benign"]) == (
        "malignant: 42; normal/benign: 114")
    with pytest.raises(ValueError, match="2 counts for 3 class names"):
        class_counts_text([1, 2], ["a", "b", "c"])


def test_lists_of_names_with_commas_stay_unambiguous():
    row = {"class_names": ["malignant", "normal, benign"], "counts": [42, 114]}
    assert str(table([row])).splitlines()[1] == "malignant; normal, benign  42, 114"
    assert ">malignant; normal, benign<" in table([row])._repr_html_()
