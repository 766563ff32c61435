"""JAX's persistent compilation cache for every process that imports ``efl_toolkit``.

A second ``efl demo``, notebook or benchmark run then loads the compiled training steps and
forward passes from disk instead of compiling them again (compilation is several seconds of a
classroom demo). This module is the one place that turns the cache on; ``efl_toolkit/__init__``
calls :func:`enable_compilation_cache` at import, before JAX is imported when it can.

Where: ``$EFL_JAX_CACHE`` when set (an empty value or ``off`` disables the cache), else
``~/.cache/efl_toolkit/jax``. Programs compiling in under
:data:`MIN_COMPILE_SECONDS` are not stored (they cost more to read than to compile). A user's own
``JAX_COMPILATION_CACHE_DIR`` or ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` wins.

Method: JAX's documented persistent cache ("Persistent compilation cache", JAX docs), keyed by
the program, the compiler options and the jaxlib version, so a changed model or XLA version
compiles again instead of loading a stale entry.

Example:
    >>> import efl_toolkit._jax_setup as setup
    >>> folder = setup.cache_directory()  # None when $EFL_JAX_CACHE is "off"
    >>> folder is None or folder.name != ""
    True
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: Programs that compile faster than this (seconds) are not written to the cache.
MIN_COMPILE_SECONDS = 0.2
#: Environment variable naming the cache folder (empty or ``off``: no cache).
ENV_VAR = "EFL_JAX_CACHE"

_JAX_ENV = {"dir": "JAX_COMPILATION_CACHE_DIR",
            "min_seconds": "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"}


def cache_directory() -> Path | None:
    """The cache folder this process uses: ``$EFL_JAX_CACHE`` or ``~/.cache/efl_toolkit/jax``.

    Returns:
        The folder (not created here), or ``None`` when ``$EFL_JAX_CACHE`` is empty or ``off``.
    """
    value = os.environ.get(ENV_VAR)
    if value is None:
        return Path.home() / ".cache" / "efl_toolkit" / "jax"
    if value.strip().lower() in ("", "off", "0", "false"):
        return None
    return Path(value).expanduser()


def enable_compilation_cache() -> Path | None:
    """Turns on JAX's persistent compilation cache (idempotent, never raises).

    Before JAX is imported the settings go into JAX's environment variables (read when JAX
    loads, so importing ``efl_toolkit`` stays free of JAX); afterwards into ``jax.config``.
    Settings the user already made through JAX's own variables are kept.

    Returns:
        The cache folder in use, or ``None`` when disabled or the folder cannot be created.
    """
    folder = cache_directory()
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # read-only home (some CI sandboxes): run without a cache
        return None
    folder = Path(os.environ.get(_JAX_ENV["dir"], folder))
    min_seconds = os.environ.get(_JAX_ENV["min_seconds"], str(MIN_COMPILE_SECONDS))
    if "jax" not in sys.modules:
        os.environ.setdefault(_JAX_ENV["dir"], str(folder))
        os.environ.setdefault(_JAX_ENV["min_seconds"], min_seconds)
        return folder
    import jax

    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(folder))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_seconds))
    return Path(jax.config.jax_compilation_cache_dir)
