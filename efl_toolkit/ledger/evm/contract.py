"""The registry contract: its Vyper source (package data) compiled with the ``vyper`` package.

No compiler is downloaded: :func:`compiled` runs the installed ``vyper`` package on
``Registry.vy`` the first time and caches the ABI and bytecode under the cache folder, keyed by
the SHA-256 of the source and the compiler version (so an edited contract or another compiler is
recompiled, never mixed up).

Example:
    >>> contract = compiled()
    >>> sorted(e["name"] for e in contract.abi if e["type"] == "event")[:2]
    ['InstitutionRegistered', 'ModelCommitted']
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from efl_toolkit.atomic import write_json_atomic
from efl_toolkit.ledger.errors import LedgerError

SOURCE = "Registry.vy"


@dataclass(frozen=True)
class Compiled:
    """A compiled contract: ``abi`` (JSON list), ``bytecode`` (hex), ``source_sha256``."""

    abi: list
    bytecode: str
    source_sha256: str


def source_text() -> str:
    """The Vyper source of the registry contract (package data)."""
    return resources.files("efl_toolkit.ledger.evm").joinpath(SOURCE).read_text("utf-8")


def cache_dir() -> Path:
    """``$EFL_CACHE_DIR/vyper`` or ``~/.cache/efl_toolkit/vyper``."""
    root = os.environ.get("EFL_CACHE_DIR") or Path.home() / ".cache" / "efl_toolkit"
    return Path(root) / "vyper"


def compiled() -> Compiled:
    """The contract's ABI and bytecode, compiled once per (source, compiler) and cached.

    Raises:
        LedgerError: the ``vyper`` package is missing (install ``efl_toolkit[evm]``).
    """
    try:
        import vyper
        from vyper.compiler import compile_code
    except ImportError:
        raise LedgerError("the EVM backend needs the vyper package: pip install "
                          "'efl_toolkit[evm]'") from None
    source = source_text()
    digest = hashlib.sha256(f"{vyper.__version__}\n{source}".encode()).hexdigest()
    cached = cache_dir() / f"registry-{digest[:24]}.json"
    if cached.is_file():
        data = json.loads(cached.read_text("utf-8"))
        return Compiled(data["abi"], data["bytecode"], digest)
    out = compile_code(source, output_formats=["abi", "bytecode"])
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cached, {"abi": out["abi"], "bytecode": out["bytecode"]})
    except OSError:
        pass  # a read-only home: compile again next time
    return Compiled(out["abi"], out["bytecode"], digest)
