"""Anvil, a real EVM node process, from the npm package ``@foundry-rs/anvil`` (it ships the
binary; no Rust toolchain, no download at run time).

:func:`find_anvil` looks for the binary in ``$EFL_ANVIL``, then under ``.tools/anvil`` (where
``make`` / ``.ci/run`` install it: ``npm install --prefix .tools/anvil @foundry-rs/anvil``), then
on ``PATH``. :class:`Anvil` starts it on 127.0.0.1 on a free port, waits until it answers JSON-RPC
and stops it (also as a context manager).

Example:
    >>> with Anvil() as node:                      # doctest: +SKIP
    ...     backend = EvmBackend.create(node.url, ["a", "b"], "out")
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from efl_toolkit.ledger.errors import LedgerError

#: The npm package version installed and tested by ``make`` / ``.ci/run``.
ANVIL_NPM_VERSION = "1.7.1"
_ROOT = Path(__file__).resolve().parents[3]


def find_anvil() -> Path | None:
    """The Anvil binary: ``$EFL_ANVIL``, ``<repo>/.tools/anvil`` (the npm package's platform
    folder ``node_modules/@foundry-rs/anvil-<os>-<arch>/bin/anvil``), or ``anvil`` on PATH."""
    if os.environ.get("EFL_ANVIL"):
        return Path(os.environ["EFL_ANVIL"])
    for folder in (Path.cwd() / ".tools" / "anvil", _ROOT / ".tools" / "anvil"):
        found = sorted(folder.glob("node_modules/@foundry-rs/anvil-*/bin/anvil"))
        if found:
            return found[0]
    on_path = shutil.which("anvil")
    return Path(on_path) if on_path else None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Anvil:
    """One Anvil process on 127.0.0.1 (``url``), stopped by :meth:`stop`.

    Args:
        binary: The Anvil binary (default :func:`find_anvil`).
        timeout: Seconds to wait for it to answer.

    Raises:
        LedgerError: no binary, or it did not answer in time (its output is quoted).
    """

    def __init__(self, binary: str | os.PathLike | None = None, timeout: float = 30.0) -> None:
        path = Path(binary) if binary else find_anvil()
        if path is None or not path.is_file():
            raise LedgerError("Anvil not found: npm install --prefix .tools/anvil "
                              f"@foundry-rs/anvil@{ANVIL_NPM_VERSION} (or set EFL_ANVIL)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(path), "--host", "127.0.0.1", "--port", str(self.port), "--silent"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                output = self.process.stdout.read().decode(errors="replace")[-300:] \
                    if self.process.stdout else ""
                raise LedgerError(f"Anvil did not start on {self.url}: {output.strip()}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        request = urllib.request.Request(
            self.url, data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId",
                                       "params": []}).encode(),
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=1) as response:
                return b"result" in response.read()
        except OSError:
            return False

    def stop(self) -> None:
        """Terminates the process (kills it after 5 s) and waits for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()

    def kill(self) -> None:
        """Kills the process at once (a node dying mid-run, for fault tests)."""
        self.process.kill()
        self.process.wait()

    def __enter__(self) -> Anvil:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
