"""Helpers for the course notebooks: set-up check, heterogeneity, summaries, comparisons, plots.

==============  ===================================================================================
session         the session's run folder (``workdir``), ``use_preset``, student ``check`` cells
tables          tables as rich HTML in a notebook and plain text in a terminal (``show``)
cache           every institution's trained models cached on disk between notebooks (02-04, 08)
setup_check     is this machine ready (notebook 00): versions, JAX, embedded data, MPyC, preset
heterogeneity   how different the institutions are: label, quantity and device skew (notebook 01)
summaries       plain-dict rows about institutions, architectures and trained models (02)
comparison      plaintext ensembles of the institutions' models versus each one alone (03)
viz             text tables and matplotlib figures (every notebook, and the report's plots)
==============  ===================================================================================

``check``, ``workdir``, ``use_preset`` and ``show`` are available from here directly; only
``session`` (standard library only) is imported eagerly: ``setup_check`` must load even where
JAX does not, so import everything else from the modules, e.g.
``from efl_toolkit.course.viz import format_table``.

Example:
    >>> from efl_toolkit.course import check, workdir
    >>> workdir().is_dir()
    True
    >>> from efl_toolkit.course.viz import format_table
    >>> print(format_table([{"a": 1, "bb": 2.5}]))
    a  bb
    1  2.500
"""

from efl_toolkit.course.session import CheckFailed, check, use_preset, workdir

__all__ = ["CheckFailed", "check", "show", "use_preset", "workdir"]


def __getattr__(name: str):
    if name == "show":  # pandas and matplotlib load only when a table is shown
        from efl_toolkit.course.tables import show

        return show
    raise AttributeError(f"module 'efl_toolkit.course' has no attribute {name!r}")
