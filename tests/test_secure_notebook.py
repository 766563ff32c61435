"""The secure ensemble from inside a real Jupyter kernel (running event loop, top-level await).

The kernel itself is a single MPyC party with no secrecy; the round runs in M separate party
processes that the toolkit launches from the kernel. A failing round must not hang the kernel
and must leave no process behind.
"""

from __future__ import annotations

import json
import sys

import nbformat
import psutil
import pytest
from nbclient import NotebookClient

KERNEL_NAME = "efl-secure-test"

CELLS = [
    """
import json, os, signal
import numpy as np, psutil
from efl_toolkit.secure import (SecureRoundError, plaintext_reference, secure_ensemble,
                                secure_ensemble_async, secure_ensemble_in_process)
rng = np.random.default_rng(0)
preds = [rng.dirichlet(np.ones(3), size=40) for _ in range(3)]
ref = plaintext_reference(preds, [0.5, 1.0, 0.8], reveal="labels")
res = secure_ensemble(preds, [0.5, 1.0, 0.8], reveal="labels")
""",
    "awaited = await secure_ensemble_async(preds, [0.5, 1.0, 0.8], reveal='labels')",
    "local = secure_ensemble_in_process(preds, [0.5, 1.0, 0.8], reveal='labels')",
    """
try:
    secure_ensemble(preds, startup_timeout=2,
                    on_spawn=lambda pids: os.kill(pids[2], signal.SIGSTOP))
    error = None
except SecureRoundError as err:
    error = {"parties": list(err.parties), "kind": err.kind, "message": str(err)}
""",
    """
print(json.dumps({
    "secure": (res.labels == ref.labels).all().item(),
    "awaited": (awaited.labels == ref.labels).all().item(),
    "local": (local.labels == ref.labels).all().item(),
    "local_secret": local.secret, "secure_secret": res.secret,
    "error": error, "children": len(psutil.Process().children(recursive=True)),
}))
""",
]


@pytest.fixture
def kernel_name(tmp_path, monkeypatch):
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "efl secure test", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return KERNEL_NAME


def test_secure_ensemble_from_a_kernel(kernel_name, tmp_path):
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(src.strip()) for src in CELLS])
    client = NotebookClient(notebook, kernel_name=kernel_name, timeout=120,
                            startup_timeout=60, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    text = "".join(o.get("text", "") for o in notebook.cells[-1].outputs)
    facts = json.loads(text.strip().splitlines()[-1])
    assert facts["secure"] and facts["awaited"] and facts["local"]
    assert facts["secure_secret"] and not facts["local_secret"]
    assert facts["error"]["parties"] == [2] and facts["error"]["kind"] == "unconnected"
    assert "party 2" in facts["error"]["message"]
    assert facts["children"] == 0
    assert not psutil.Process().children(recursive=True)
