"""A dying supervisor leaves no party behind (issue 14, item 3).

The process that launched the parties (``launch_parties`` via ``secure_ensemble(committee=None)``,
or a :class:`~efl_toolkit.secure.Committee`) is killed with SIGKILL, or interrupted with SIGINT,
once every party is connected. SIGKILL gives it no chance to clean up, so the parties'
parent-watch (``watch_parent`` in ``efl_toolkit/secure/party.py``) must end them; SIGINT must
stop them through the supervisor's own clean-up. The same for a notebook: a Jupyter kernel is
interrupted while a cell runs a secure round; the parties end and the kernel keeps working.

Real processes throughout: a Python supervisor script, real MPyC parties, a real ipykernel.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

EXIT_SECONDS = 5.0      # parent-watch polls every 0.5 s; party start-up adds no delay here
CONNECT_SECONDS = 60.0

# One party per institution: a round long enough (secure argmax over 20 000 rows x 10 classes)
# to still be running when the supervisor is killed; PIDs printed as soon as spawned.
PER_INSTITUTION = """
import json, sys
import numpy as np
from efl_toolkit.secure import secure_ensemble
rng = np.random.default_rng(0)
preds = [rng.dirichlet(np.ones(10), size=20000) for _ in range(3)]
secure_ensemble(preds, reveal="labels", committee=None, timeout=600, startup_timeout=60,
                on_spawn=lambda pids: print(json.dumps(pids), flush=True))
"""

# A committee: started (every compute party connected), then idle between rounds.
COMMITTEE = """
import json, sys, time
from efl_toolkit.secure import Committee
with Committee(3, startup_timeout=60, round_timeout=600,
               on_spawn=lambda pids: print(json.dumps(pids), flush=True)):
    print("connected", flush=True)
    time.sleep(600)
"""


def gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie awaiting its new parent counts as exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def connected(pid: int, peers: int) -> bool:
    """True when ``pid`` holds at least ``peers`` established TCP connections."""
    try:
        conns = psutil.Process(pid).net_connections("tcp")
    except psutil.Error:
        return False
    return sum(c.status == psutil.CONN_ESTABLISHED for c in conns) >= peers


def wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {seconds:g} s")
        time.sleep(0.05)


def kill_leftovers(pids) -> None:
    """Test hygiene only: SIGKILL parties a broken parent-watch left running."""
    for pid in pids:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
@pytest.mark.parametrize("script", [PER_INSTITUTION, COMMITTEE],
                         ids=["per-institution", "committee"])
def test_parties_end_when_their_supervisor_dies(script, sig):
    supervisor = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        pids = json.loads(supervisor.stdout.readline() or "[]")
        assert len(pids) == 3, supervisor.stderr.read()
        children = {p.pid for p in psutil.Process(supervisor.pid).children(recursive=True)}
        assert set(pids) <= children    # the parties are the supervisor's own processes
        wait_for(lambda: all(connected(p, 2) for p in pids), CONNECT_SECONDS,
                 "the parties did not connect")
        assert not any(gone(p) for p in pids)
        supervisor.send_signal(sig)
        supervisor.wait(30)
        start = time.monotonic()
        wait_for(lambda: all(gone(p) for p in pids), EXIT_SECONDS,
                 f"parties {[p for p in pids if not gone(p)]} still run after the "
                 f"supervisor's {sig.name}")
        assert time.monotonic() - start < EXIT_SECONDS
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(30)
        kill_leftovers(pids)


KERNEL_CELL = """
import json, numpy as np
from efl_toolkit.secure import secure_ensemble
rng = np.random.default_rng(0)
preds = [rng.dirichlet(np.ones(10), size=20000) for _ in range(3)]
secure_ensemble(preds, reveal="labels", committee={committee}, timeout=600, startup_timeout=60,
                on_spawn=lambda pids: open({path!r}, "w").write(json.dumps(pids)))
"""


@pytest.mark.parametrize("committee", [None, 3], ids=["per-institution", "committee"])
def test_interrupted_notebook_round_ends_its_parties(tmp_path, committee):
    from jupyter_client.manager import start_new_kernel

    pid_file = tmp_path / "pids.json"
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    pids: list[int] = []
    try:
        msg_id = kc.execute(textwrap.dedent(KERNEL_CELL.format(committee=committee,
                                                               path=str(pid_file))))
        wait_for(lambda: pid_file.is_file() and pid_file.read_text().endswith("]"),
                 CONNECT_SECONDS, "the kernel did not start the parties")
        pids = json.loads(pid_file.read_text())
        kernel = psutil.Process(km.provisioner.process.pid)
        assert set(pids) <= {p.pid for p in kernel.children(recursive=True)}
        wait_for(lambda: all(connected(p, 2) for p in pids), CONNECT_SECONDS,
                 "the parties did not connect")
        km.interrupt_kernel()
        start = time.monotonic()
        wait_for(lambda: all(gone(p) for p in pids), EXIT_SECONDS,
                 "parties still run after the kernel was interrupted")
        assert time.monotonic() - start < EXIT_SECONDS
        reply = kc.get_shell_msg(timeout=30)
        while reply["parent_header"].get("msg_id") != msg_id:   # e.g. a late kernel_info reply
            reply = kc.get_shell_msg(timeout=30)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert not kernel.children(recursive=True)
        # the kernel still works: a new cell runs (ipykernel aborts requests queued in the
        # instant after an error, as after any failed cell: the next one is sent again)
        for _ in range(5):
            reply = kc.execute_interactive("x = 6 * 7", timeout=30)
            if reply["content"]["status"] != "aborted":
                break
            time.sleep(0.5)
        assert reply["content"]["status"] == "ok"
        assert kc.execute_interactive("assert x == 42", timeout=30)["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        kill_leftovers(pids)
