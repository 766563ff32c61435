"""Bad input fails before any process starts; a party that cannot connect, dies or hangs makes
the round fail within its timeout, naming the party, with no process left behind."""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import numpy as np
import psutil
import pytest

from efl_toolkit.secure import RoundSpec, SecureRoundError, secure_ensemble
from efl_toolkit.secure import parties as parties_module
from efl_toolkit.secure.parties import GRACE_SECONDS, PartyInput, free_ports, launch_parties
from efl_toolkit.secure.party import write_input

# This file tests the first design, every institution its own MPyC party (committee=None);
# the committee of compute parties is tested in test_secure_committee.py.
secure_ensemble = functools.partial(secure_ensemble, committee=None)


@pytest.fixture(autouse=True)
def no_leftover_processes():
    yield
    children = psutil.Process().children(recursive=True)
    assert not children, f"party processes left behind: {children}"


def inputs(n=20, c=2, m=3, seed=0):
    rng = np.random.default_rng(seed)
    return {f"hospital-{'abcdefg'[i]}": rng.dirichlet(np.ones(c), size=n) for i in range(m)}


GOOD = np.array([[0.5, 0.5], [0.2, 0.8], [0.9, 0.1], [0.3, 0.7]])


@pytest.mark.parametrize(("preds", "kwargs", "message"), [
    ({"hospital-a": GOOD, "hospital-b": np.where(np.arange(8).reshape(4, 2) == 6, np.nan, GOOD)},
     {}, "hospital-b: row 3 is not finite"),
    ({"hospital-a": GOOD, "hospital-b": GOOD * [[1, 1], [1, 1], [-1, 3], [1, 1]]},
     {}, "hospital-b: row 2 has a negative probability"),
    ({"hospital-a": GOOD * 1.1, "hospital-b": GOOD}, {}, "hospital-a: row 0 sums to 1.1"),
    ({"hospital-a": GOOD, "hospital-b": np.full((4, 3), 1 / 3)}, {},
     "hospital-b has 3 classes but hospital-a has 2"),
    ({"hospital-a": GOOD, "hospital-b": GOOD[:3]}, {},
     "hospital-b has 3 queries but hospital-a has 4"),
    ({"hospital-a": GOOD}, {}, "needs at least 2 institutions"),
    ({"a": GOOD, "b": GOOD, "c": GOOD}, {"colluders": 2},
     r"colluders=2 is more than M=3 parties allow.*at most 1.*at least 5 parties"),
    ({"a": GOOD, "b": GOOD}, {"colluders": 1}, r"colluders=1 is more than M=2"),
    ({"a": GOOD, "b": GOOD, "c": GOOD}, {"colluders": -1}, "colluders must be >= 0"),
    ({"a": GOOD, "b": GOOD, "c": GOOD}, {"receivers": [3]}, "receiver 3 is not a party index"),
    ({"a": GOOD, "b": GOOD, "c": GOOD}, {"reveal": "median"}, "reveal must be one of"),
    ({"a": GOOD, "b": GOOD}, {"weights": [1, -1]}, "weight of b is -1.0"),
    ({"a": GOOD, "b": GOOD}, {"weights": [1, 2, 3]}, "got 3 weights for 2 members"),
])
def test_bad_input_fails_before_any_party_starts(preds, kwargs, message):
    spawned = []
    with pytest.raises(ValueError, match=message):
        secure_ensemble(preds, on_spawn=spawned.extend, **kwargs)
    assert not spawned


def established(pid: int, m: int) -> bool:
    try:
        conns = psutil.Process(pid).net_connections("tcp")
    except psutil.Error:
        return False
    return sum(c.status == psutil.CONN_ESTABLISHED for c in conns) >= m - 1


def signal_when_connected(sig, target: int, m: int = 3):
    """on_spawn hook: sends ``sig`` to party ``target`` once every party has connected."""
    def hook(pids):
        def run():
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not all(established(p, m) for p in pids):
                time.sleep(0.01)
            os.kill(pids[target], sig)
        threading.Thread(target=run, daemon=True).start()
    return hook


def test_party_that_cannot_connect_is_named():
    start = time.monotonic()
    with pytest.raises(SecureRoundError) as info:
        secure_ensemble(inputs(), startup_timeout=3,
                        on_spawn=lambda pids: os.kill(pids[1], signal.SIGSTOP))
    err = info.value
    assert err.parties == (1,) and err.kind == "unconnected"
    assert "party 1 (hospital-b, 127.0.0.1:" in str(err)
    assert "parties 0, 2 could not connect to it within 3 s" in str(err)
    assert time.monotonic() - start < 3 + GRACE_SECONDS + 5
    assert [r.returncode for r in err.reports][1] == -signal.SIGKILL


def test_party_that_hangs_is_named():
    start = time.monotonic()
    with pytest.raises(SecureRoundError) as info:
        secure_ensemble(inputs(n=3000, c=10), reveal="labels", timeout=3,
                        on_spawn=signal_when_connected(signal.SIGSTOP, target=2))
    err = info.value
    assert err.parties == (2,) and err.kind == "hung"
    assert "party 2 (hospital-c" in str(err) and "stopped responding" in str(err)
    assert time.monotonic() - start < 30 + 3 + GRACE_SECONDS
    others = [r for r in err.reports if r.index != 2]
    assert all(r.status in ("timeout", "peer-lost") for r in others)


def test_party_that_dies_is_named():
    start = time.monotonic()
    with pytest.raises(SecureRoundError) as info:
        secure_ensemble(inputs(n=3000, c=10), reveal="labels", timeout=600,
                        on_spawn=signal_when_connected(signal.SIGKILL, target=1))
    err = info.value
    assert time.monotonic() - start < 60     # noticed from the lost peer, not the 600 s timeout
    assert err.parties == (1,) and err.kind == "died"
    assert "party 1 (hospital-b" in str(err) and "SIGKILL" in str(err)
    assert "parties 0, 2 lost their connection to it" in str(err)
    dead = err.reports[1]
    assert dead.returncode == -signal.SIGKILL and dead.status == "died"
    for other in (err.reports[0], err.reports[2]):  # the survivors ended on their own, saying why
        assert other.status == "peer-lost" and other.returncode == 6, other
        assert other.error.startswith("lost the connection to ") and "party 1 (" in other.error
        assert dead.address in other.error


def test_party_at_a_refused_port_is_named(monkeypatch):
    """Party 2's port refuses connections (nothing listens there): the launcher fails within
    the start-up timeout and names party 2 and its address."""
    def command(index, *args, **kwargs):
        cmd = party_command(index, *args, **kwargs)
        return cmd if index != 2 else [cmd[0], "-c", "import time; time.sleep(120)"]

    party_command = parties_module.party_command
    monkeypatch.setattr(parties_module, "party_command", command)
    start = time.monotonic()
    with pytest.raises(SecureRoundError) as info:
        secure_ensemble(inputs(), startup_timeout=3)
    err = info.value
    assert time.monotonic() - start < 3 + GRACE_SECONDS + 10
    assert err.parties == (2,) and err.kind == "unconnected"
    address = err.reports[2].address
    assert f"party 2 (hospital-c, {address})" in str(err)
    assert "parties 0, 1 could not connect to it within 3 s" in str(err)
    for other in err.reports[:2]:
        assert other.status == "unconnected" and address in other.error, other


def test_party_with_bad_input_file_is_named():
    """launch_parties does not re-check inputs: the party itself rejects its file."""
    good = PartyInput(GOOD, 1.0, "a")
    bad = PartyInput(GOOD * 2, 1.0, "c")
    with pytest.raises(SecureRoundError) as info:
        launch_parties([good, good, bad], RoundSpec(), startup_timeout=20)
    err = info.value
    assert err.parties == (2,) and err.kind == "failed"
    assert "party 2 (c, 127.0.0.1:" in str(err) and "row 0 sums to 2" in str(err)


def test_port_clash_is_retried_on_new_ports(monkeypatch):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    calls = []

    def ports_with_clash(n, host="127.0.0.1"):
        calls.append(n)
        ports = free_ports(n, host)
        return [ports[0], taken, *ports[2:]] if len(calls) == 1 else ports

    monkeypatch.setattr(parties_module, "free_ports", ports_with_clash)
    try:
        run = launch_parties([PartyInput(GOOD, 1.0, n) for n in "abc"], RoundSpec())
    finally:
        blocker.close()
    assert len(calls) == 2
    assert [r.status for r in run.reports] == ["ok"] * 3


# --- the `efl party` command, as run on separate machines ---------------------------------

def efl_party(*args, cwd):
    return subprocess.Popen([sys.executable, "-m", "efl_toolkit.cli", "party", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_cli_party_missing_is_named(tmp_path):
    ports = free_ports(3)
    addrs = ",".join(f"127.0.0.1:{p}" for p in ports)
    files = [write_input(tmp_path / f"in{i}.npz", GOOD, 1.0) for i in range(3)]
    procs = [efl_party("--index", str(i), "--parties", addrs, "--input", str(files[i]),
                       "--out", "out", "--startup-timeout", "2", cwd=tmp_path) for i in (0, 1)]
    start = time.monotonic()
    outs = [p.communicate(timeout=30)[0] for p in procs]
    assert time.monotonic() - start < 2 + 10     # the 2 s start-up timeout, then one line
    assert [p.returncode for p in procs] == [3, 3]
    for out in outs:
        result = last_json(out)
        assert result["error_kind"] == "connect"
        assert f"party 2 (127.0.0.1:{ports[2]})" in result["error"] and 2 in result["peers"]


def test_cli_parties_disagreeing_on_parameters(tmp_path):
    addrs = ",".join(f"127.0.0.1:{p}" for p in free_ports(2))
    files = [write_input(tmp_path / f"in{i}.npz", GOOD, 0.5) for i in range(2)]
    procs = [efl_party("--index", str(i), "--parties", addrs, "--input", str(files[i]),
                       "--reveal", reveal, "--out", "out", cwd=tmp_path)
             for i, reveal in enumerate(["mean", "labels"])]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [5, 5]
    assert "party 1 disagrees with party 0 on reveal" in last_json(outs[0])["error"]


def test_cli_rejects_bad_input_and_threshold(tmp_path):
    np.savez(tmp_path / "bad.npz", probs=GOOD, weight=3.0)
    proc = efl_party("--index", "0", "--parties", "127.0.0.1:5000,127.0.0.1:5001", "--input",
                     "bad.npz", "--out", "out", cwd=tmp_path)
    out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 2 and "weight 3.0 must be in [0, 1]" in last_json(out)["error"]
    proc = efl_party("--index", "0", "--parties", "h:1,h:2,h:3", "--threshold", "2", "--input",
                     "bad.npz", "--out", "out", cwd=tmp_path)
    out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 2 and "needs t < M/2" in last_json(out)["error"]


def test_cli_make_certs(tmp_path):
    proc = efl_party("make-certs", "--parties", "3", "--out", "certs", cwd=tmp_path)
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    for i in range(3):
        assert (tmp_path / "certs" / f"party_{i}.crt").is_file()
        mode = (tmp_path / "certs" / f"party_{i}.key").stat().st_mode
        assert stat.S_IMODE(mode) == 0o600
