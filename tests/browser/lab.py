"""A throwaway JupyterLab server on 127.0.0.1 for driving notebooks from headless Chromium.

The server runs from the project's virtual environment with its own config, runtime, settings and
workspace folders (so nothing of the user's Jupyter set-up leaks in), a fixed token and the
JupyterLab news pop-up switched off. ``stop()`` deletes kernel sessions and kills the whole
process group, so no kernel outlives the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

KERNEL_NAME = "efl-browser-venv"
CHROMIUM = os.environ.get("EFL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
)


def browser_unavailable_reason() -> str | None:
    """Why the browser test cannot run here, or None when Chromium, Playwright and Lab exist."""
    if not Path(CHROMIUM).exists():
        return f"chromium not found at {CHROMIUM} (install it with `make browser-deps`)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package `playwright` is not installed (pip install -e '.[dev]')"
    if not _jupyter_executable().exists():
        return f"jupyter not found at {_jupyter_executable()}"
    return None


def _jupyter_executable() -> Path:
    return Path(sys.executable).parent / "jupyter"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_kernelspec(data_dir: Path) -> None:
    """A kernel spec named ``KERNEL_NAME`` running THIS interpreter (the project's virtualenv),
    so a ``python3`` kernel installed elsewhere on the machine is never picked by accident."""
    folder = data_dir / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "efl (venv)", "language": "python"}
    (folder / "kernel.json").write_text(json.dumps(spec))


def _isolated_env(home: Path) -> dict[str, str]:
    folders = {
        "JUPYTER_CONFIG_DIR": home / "config",
        "JUPYTER_RUNTIME_DIR": home / "runtime",
        "JUPYTERLAB_SETTINGS_DIR": home / "settings",
        "JUPYTERLAB_WORKSPACES_DIR": home / "workspaces",
        "IPYTHONDIR": home / "ipython",
    }
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    no_news = folders["JUPYTERLAB_SETTINGS_DIR"] / "@jupyterlab" / "apputils-extension"
    no_news.mkdir(parents=True, exist_ok=True)
    (no_news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    _write_kernelspec(home / "data")
    env = dict(os.environ)
    env.update({name: str(folder) for name, folder in folders.items()})
    env["JUPYTER_PATH"] = os.pathsep.join(
        [str(home / "data"), *filter(None, [os.environ.get("JUPYTER_PATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class JupyterLab:
    """One JupyterLab server serving ``root`` (start with ``start()``, end with ``stop()``)."""

    root: Path
    home: Path
    token: str = "efl-browser-test-token"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """The browser address of ``path`` (e.g. ``lab/tree/x.ipynb``) with the token."""
        return f"{self.base_url}/{path}?token={self.token}"

    def start(self, timeout: float = 60.0) -> JupyterLab:
        """Starts the server and waits for ``/api/status`` (raises with the server log if not)."""
        command = [
            str(_jupyter_executable()), "lab", "--no-browser", "--ip=127.0.0.1",
            f"--port={self.port}", f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}", "--ServerApp.port_retries=0",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_path = self.home / "jupyterlab.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=self.root, env=_isolated_env(self.home), stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.process.returncode}:\n"
                                   + self.log())
            try:
                if self._request("GET", "api/status")[0] == 200:
                    return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"jupyter lab did not answer within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        """The server's combined output so far (for failure messages)."""
        path = getattr(self, "log_path", None)
        return path.read_text(errors="replace")[-6000:] if path and path.exists() else ""

    def _request(self, method: str, path: str) -> tuple[int, bytes]:
        request = urllib.request.Request(
            f"{self.base_url}/{path}", method=method,
            headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()

    def wait_for_kernel(self, notebook: str, timeout: float = 60.0) -> dict:
        """Waits until the notebook's kernel is idle with a browser connected; returns the
        session. (Lab's execution indicator can read 'idle' before the kernel is attached, and a
        command run then opens the 'Select Kernel' dialog instead.)"""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, body = self._request("GET", "api/sessions")
            for session in json.loads(body):
                kernel = session.get("kernel") or {}
                if session.get("path") == notebook and kernel.get("connections", 0) > 0 \
                        and kernel.get("execution_state") == "idle":
                    return session
            time.sleep(0.2)
        raise TimeoutError(f"no idle, connected kernel for {notebook} within {timeout} s:\n"
                           + self.log())

    def delete_sessions(self) -> None:
        """Shuts every kernel session down through the REST API (best effort)."""
        try:
            _, body = self._request("GET", "api/sessions")
            for session in json.loads(body):
                self._request("DELETE", f"api/sessions/{session['id']}")
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            pass

    def stop(self) -> None:
        """Deletes sessions, then terminates (and if needed kills) the server's process group."""
        if self.process is None or self.process.poll() is not None:
            return
        self.delete_sessions()
        group = os.getpgid(self.process.pid)
        os.killpg(group, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            self.process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # kernels live in the same group
            os.killpg(group, signal.SIGKILL)

    def __enter__(self) -> JupyterLab:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

