"""Crash safety: a writer killed with SIGKILL at random moments leaves a ledger that reopens,
verifies, and holds every block the writer reported as committed. Random kills rarely land
inside a write: ``test_ledger_faults.py`` stops a writer at every step of one (fault points)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from efl_toolkit.ledger import Consortium, Ledger, open_ledger

MEMBERS = ["hospital-a", "hospital-b", "clinic-c"]

CHILD = r"""
import os, sys
from efl_toolkit.ledger import Ledger, ModelRegistry, TxType

ledger = Ledger.open(sys.argv[1])  # keys from the keystore beside the ledger
registry = ModelRegistry(ledger)
members = list(ledger.state.members)
print("ready", ledger.height, flush=True)
step = 0
while True:
    for k in range(1 + step % 3):  # blocks of 1 to 3 transactions
        inst = members[(step + k) % len(members)]
        history = registry.history(inst, "net")
        parent = history[0].version if history else None
        version = registry.model_commit(inst, "net", os.urandom(4096), parent, "mlp",
                                        {"accuracy": (step % 100) / 100}, {"step": step},
                                        commit=False)
    ledger.transact(members[step % 3], TxType.ROUND_START,
                    {"round_id": f"r-{os.getpid()}-{step}", "versions": [version],
                     "protocol": {}})
    ledger.commit_block()
    print(ledger.height, flush=True)
    step += 1
"""


def test_sigkill_during_appends_leaves_a_verifiable_ledger(tmp_path):
    path = tmp_path / "ledger.sqlite"
    consortium = Consortium.generate(MEMBERS, seed=11)
    Ledger.create(path, consortium, save_keys=True).close()
    rng = random.Random(1234)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    for attempt in range(5):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env)
        try:
            first = child.stdout.readline().split()
            assert first and first[0] == "ready", child.stderr.read()
            start_height = int(first[1])
            time.sleep(rng.uniform(0.05, 0.6))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        lines = child.stdout.read().split()
        child.stdout.close()
        child.stderr.close()
        assert child.returncode == -signal.SIGKILL
        committed = int(lines[-1]) if lines else start_height
        view = open_ledger(path)
        assert view.report.ok, (attempt, view.report.summary())
        # every block the child saw committed is there; at most one more (killed after COMMIT)
        assert committed <= view.height <= committed + 1, (attempt, committed, view.height)
        assert [h.height for h in view.headers()] == list(range(view.height + 1))
        view.close()
        reopened = Ledger.open(path, consortium)  # a writer can carry on
        reopened.close()
    assert open_ledger(path).height > 3
