"""One notebook session: its run folder, its preset, and the course's ``check`` cells.

* :func:`workdir`: the session's one run folder. Every file a notebook writes (ledgers,
  keystores, reports, the explorer's tamper copies) goes under it. By default it is a fresh
  ``efl-run-<pid>-*`` folder in the system temporary folder, deleted when the kernel shuts down
  (``weakref.finalize``, which also runs at interpreter exit); folders left by a kernel that
  was killed outright are removed by the next session that starts. With ``EFL_WORKDIR=DIR``
  the run folder is made under ``DIR`` instead and **kept** (you chose where your outputs go).
* :func:`use_preset`: switch ``EFL_PRESET`` from inside a notebook.
* :func:`check`: a student-facing assertion that says which claim of the notebook failed.

Example:
    >>> check(1 + 1 == 2, "addition works")
    check passed: addition works
    >>> try:
    ...     check(False, "the ledger verifies", "block 3")
    ... except CheckFailed as failure:
    ...     print(failure)
    check failed: the ledger verifies (block 3)
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from pathlib import Path

from efl_toolkit.atomic import _alive  # the one 'is this process alive' check

#: Environment variable naming a folder to keep run folders in (not deleted).
WORKDIR_ENV_VAR = "EFL_WORKDIR"
#: Prefix of run folders (followed by the process id and a random part).
RUN_PREFIX = "efl-run-"


class _RunFolder:
    """Owns one run folder; deletes it when collected or at exit unless ``keep``."""

    def __init__(self, path: Path, keep: bool) -> None:
        self.path = path
        self._finalizer = None if keep else weakref.finalize(self, shutil.rmtree, str(path),
                                                             True)

    def cleanup(self) -> None:
        if self._finalizer is not None:
            self._finalizer()


_current: _RunFolder | None = None


def sweep_stale_runs(folder: str | os.PathLike | None = None) -> list[Path]:
    """Deletes ``efl-run-<pid>-*`` folders in ``folder`` (default: the system temporary
    folder) whose process no longer exists (a kernel killed before it could clean up).

    Returns:
        The folders deleted.
    """
    removed = []
    for path in Path(folder or tempfile.gettempdir()).glob(f"{RUN_PREFIX}*-*"):
        pid = path.name[len(RUN_PREFIX):].split("-", 1)[0]
        if path.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def workdir(name: str | None = None) -> Path:
    """The notebook session's run folder (created on first use), or a subfolder ``name`` of it.

    Args:
        name: A subfolder to create (e.g. ``"ledger"``); ``None`` for the run folder itself.

    Returns:
        An existing folder. Without ``EFL_WORKDIR`` it is deleted with everything in it when
        the kernel shuts down; with ``EFL_WORKDIR=DIR`` it lives under ``DIR`` and is kept.

    Raises:
        ValueError: ``name`` is not a plain folder name (``/``, ``..``).
    """
    global _current
    if name is not None and (not name or Path(name).name != name or name in (".", "..")):
        raise ValueError(f"workdir name must be a plain folder name, got {name!r}")
    if _current is None or not _current.path.is_dir():
        chosen = os.environ.get(WORKDIR_ENV_VAR)
        base = Path(chosen).expanduser() if chosen else Path(tempfile.gettempdir())
        base.mkdir(parents=True, exist_ok=True)
        if not chosen:
            sweep_stale_runs(base)
        path = Path(tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{os.getpid()}-", dir=base))
        _current = _RunFolder(path, keep=bool(chosen))
    if name is None:
        return _current.path
    sub = _current.path / name
    sub.mkdir(exist_ok=True)
    return sub


def cleanup() -> None:
    """Deletes the session's run folder now (unless kept under ``EFL_WORKDIR``)."""
    global _current
    if _current is not None:
        _current.cleanup()
        _current = None


def use_preset(name: str):
    """Switches this kernel to preset ``name`` (sets ``EFL_PRESET``) and returns its config.

    Every later ``get_config()`` in this kernel follows it; re-run the notebook from the top so
    that every cell uses it. (Equivalent: ``%env EFL_PRESET=paper``, or start Jupyter with
    ``EFL_PRESET=paper jupyter lab``.)

    Raises:
        ValueError: ``name`` is not a preset (the known ones are listed).
    """
    from efl_toolkit.config import PRESET_ENV_VAR, get_config

    config = get_config(name)
    os.environ[PRESET_ENV_VAR] = name
    return config


class CheckFailed(AssertionError):
    """A ``check`` cell of a course notebook found that what the notebook teaches is false."""


def check(condition, claim: str, detail: str = "") -> None:
    """Asserts one claim a notebook teaches; prints ``check passed: <claim>`` when it holds.

    Args:
        condition: Anything truthy when the claim holds.
        claim: The claim, in words (e.g. "the tampered copy fails at height 3").
        detail: The numbers behind it, shown when the check fails.

    Raises:
        CheckFailed: (an ``AssertionError``) ``check failed: <claim> (<detail>)``.
    """
    if not condition:
        raise CheckFailed(f"check failed: {claim}" + (f" ({detail})" if detail else ""))
    print(f"check passed: {claim}")
