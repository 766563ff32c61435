"""The package's public surface: every curated name resolves, and importing stays light."""

from __future__ import annotations

import subprocess
import sys

import efl_toolkit


def test_every_public_name_resolves():
    """Each curated name is the very object its defining module exports under that name."""
    import importlib

    for name in efl_toolkit.__all__:
        value = getattr(efl_toolkit, name)
        home = importlib.import_module(efl_toolkit._EXPORTS[name])
        assert value is getattr(home, name), name
        assert getattr(value, "__name__", name) == name, name


def test_import_does_not_load_jax_or_mpyc():
    code = ("import sys, efl_toolkit; print(sorted(m for m in ('jax', 'mpyc', 'flax') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_attribute_is_an_attribute_error():
    try:
        efl_toolkit.does_not_exist  # noqa: B018
    except AttributeError as error:
        assert "does_not_exist" in str(error)
    else:
        raise AssertionError("expected AttributeError")
