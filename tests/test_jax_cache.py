"""JAX's persistent compilation cache: a second process loads what the first one compiled.

Two real Python processes train the same small CNN step with ``$EFL_JAX_CACHE`` pointing at one
temporary folder; JAX's own monitoring events count cache hits and misses in each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import json
import efl_toolkit  # turns the cache on before JAX is imported
import jax
import numpy as np
from jax import monitoring
from efl_toolkit.config import TrainConfig
from efl_toolkit.data.medmnist import Split
from efl_toolkit.training.local import train_local

events = {"hits": 0, "misses": 0}
def listen(name, **kwargs):
    if name == "/jax/compilation_cache/cache_hits":
        events["hits"] += 1
    elif name == "/jax/compilation_cache/cache_misses":
        events["misses"] += 1
monitoring.register_event_listener(listen)
rng = np.random.default_rng(0)
split = Split(rng.random((16, 12, 12, 1), dtype=np.float32), rng.integers(0, 2, 16))
train_local("cnn", split, split, jax.random.key(0), TrainConfig(epochs=1, batch_size=8),
            n_classes=2, progress=False)
print(json.dumps({**events, "dir": jax.config.jax_compilation_cache_dir}))
"""


def _run(env: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _entries(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()} if folder.exists() else set()


@pytest.mark.timeout(600)
def test_second_process_loads_compiled_steps_from_the_cache(tmp_path):
    folder = tmp_path / "jax-cache"
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("JAX_PERSISTENT") and key != "JAX_COMPILATION_CACHE_DIR"}
    env["EFL_JAX_CACHE"] = str(folder)

    first = _run(env)
    assert first["dir"] == str(folder)
    written = _entries(folder)
    assert first["misses"] >= 1 and written, "the first process wrote nothing to the cache"

    second = _run(env)
    assert second["hits"] >= 1, f"the second process compiled again: {second}"
    assert _entries(folder) == written, "the second process wrote new entries"


def test_cache_can_be_switched_off(tmp_path):
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("JAX_PERSISTENT") and key != "JAX_COMPILATION_CACHE_DIR"}
    env["EFL_JAX_CACHE"] = "off"
    done = subprocess.run(
        [sys.executable, "-c", "import efl_toolkit, jax; "
         "print(jax.config.jax_compilation_cache_dir)"],
        env=env, capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "None"
