"""Helpers for the course notebooks: set-up check, heterogeneity, summaries, comparisons, plots.

==============  ===================================================================================
setup_check     is this machine ready (notebook 00): versions, JAX, embedded data, MPyC, preset
heterogeneity   how different the institutions are: label, quantity and device skew (notebook 01)
summaries       plain-dict rows about institutions, architectures and trained models (02)
comparison      plaintext ensembles of the institutions' models versus each one alone (03)
viz             text tables and matplotlib figures (every notebook, and the report's plots)
==============  ===================================================================================

Nothing is imported here: ``setup_check`` must load even where JAX does not, so import from the
modules, e.g. ``from efl_toolkit.course.viz import format_table``.

Example:
    >>> from efl_toolkit.course.viz import format_table
    >>> print(format_table([{"a": 1, "bb": 2.5}]))
    a  bb
    1  2.500
"""
