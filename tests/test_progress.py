"""The progress display: early stopping ends complete (green), finished bars stay visible, and a
log file gets exactly one plain line per model (issue 13, item 1)."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap

import pytest

from efl_toolkit.progress import Progress, progress_mode


def _widget(bar: Progress):
    """(label, IProgress, right text) of a notebook bar."""
    return bar.bar.container.children


def test_notebook_bar_after_early_stopping_is_complete_and_green():
    bar = Progress(12, "hospital-a mlp", mode="notebook")
    for _ in range(7):
        bar.update(loss="0.310")
    bar.finish(stopped_at=7, best=4)
    _, meter, right = _widget(bar)
    assert meter.bar_style == "success"
    assert meter.value == meter.max == 7
    assert "stopped early at epoch 7 (best 4)" in right.value.replace("\u2007", " ")
    assert bar.bar.container.layout.visibility != "hidden"  # the finished model keeps its line


def test_notebook_bar_that_ran_every_epoch_stays_visible_and_green():
    bar = Progress(3, "hospital-b cnn", mode="notebook")
    for _ in range(3):
        bar.update()
    bar.finish()
    _, meter, _ = _widget(bar)
    assert meter.bar_style == "success" and meter.value == meter.max == 3
    assert bar.bar.container.layout.visibility != "hidden"


def test_notebook_bar_left_by_an_error_stays_red():
    with pytest.raises(RuntimeError), Progress(5, "broken", mode="notebook") as bar:
        bar.update()
        raise RuntimeError("boom")
    assert _widget(bar)[1].bar_style == "danger"


def test_terminal_bar_final_text_after_early_stopping():
    out = io.StringIO()
    with Progress(12, "hospital-a mlp", mode="terminal", file=out) as bar:
        for _ in range(5):
            bar.update(loss="0.3")
        bar.finish(stopped_at=5, best=2)
    final = out.getvalue().rstrip("\n").split("\r")[-1]
    assert final.startswith("hospital-a mlp: 100%")
    assert "5/5" in final and "stopped early at epoch 5 (best 2)" in final
    assert out.getvalue().endswith("\n")  # left on screen (leave=True)


def test_plain_mode_prints_one_line_at_the_end_and_nothing_before():
    out = io.StringIO()
    bar = Progress(4, "FedAvg (cnn)", unit="round", mode="plain", file=out)
    for _ in range(4):
        bar.update(accuracy="0.700")
        assert out.getvalue() == ""
    bar.finish()
    bar.finish()  # idempotent
    assert out.getvalue().count("\n") == 1 and "\r" not in out.getvalue()
    assert out.getvalue().startswith("FedAvg (cnn): 4/4 rounds, accuracy=0.700 in ")


def test_mode_detection_and_override(monkeypatch):
    monkeypatch.delenv("EFL_PROGRESS", raising=False)
    assert progress_mode(io.StringIO()) == "plain"  # a log file is not a terminal
    monkeypatch.setenv("EFL_PROGRESS", "off")
    assert progress_mode() == "off"
    monkeypatch.setenv("EFL_PROGRESS", "fancy")
    with pytest.raises(ValueError, match="EFL_PROGRESS='fancy'"):
        progress_mode()


_TRAIN = textwrap.dedent("""
    import json, jax, numpy as np
    from efl_toolkit.config import TrainConfig
    from efl_toolkit.data.medmnist import Split
    from efl_toolkit.training.local import train_local
    rng = np.random.default_rng(0)
    split = lambda n: Split(rng.random((n, 8, 8, 3), dtype=np.float32), rng.integers(0, 2, n))
    config = TrainConfig(epochs=12, patience=1, batch_size=16)
    out = []
    for i, name in enumerate(["hospital-a", "hospital-b", "clinic-c"]):
        r = train_local("mlp", split(48), split(24), jax.random.key(i), config, n_classes=2,
                        progress=True, description=f"{name} mlp")
        out.append([r.stopped_early, len(r.history), r.best_epoch])
    print(json.dumps(out))
""")


def _train_with_stderr_to_file(tmp_path, mode: str | None):
    env = {k: v for k, v in os.environ.items() if k != "EFL_PROGRESS"}
    if mode:
        env["EFL_PROGRESS"] = mode
    log = tmp_path / "run.log"
    with open(log, "w") as stderr:
        done = subprocess.run([sys.executable, "-c", _TRAIN], stdout=subprocess.PIPE,
                              stderr=stderr, text=True, env=env, timeout=600, check=True)
    return json.loads(done.stdout), log.read_bytes().decode()  # keep carriage returns


def test_training_into_a_log_file_prints_one_line_per_model(tmp_path):
    results, log = _train_with_stderr_to_file(tmp_path, None)
    lines = [line for line in log.splitlines() if line.endswith(" s")]
    assert "\r" not in log and len(lines) == 3, log
    names = ["hospital-a", "hospital-b", "clinic-c"]
    for (stopped, epochs, best), line, name in zip(results, lines, names, strict=True):
        assert line.startswith(f"{name} mlp: ")
        if stopped:
            assert f"stopped early at epoch {epochs} (best {best}) of 12" in line
        else:
            assert f"{epochs}/12 epochs" in line
    assert any(stopped for stopped, _, _ in results)  # the case the issue is about happened


def test_training_on_a_terminal_leaves_every_model_complete(tmp_path):
    results, log = _train_with_stderr_to_file(tmp_path, "terminal")
    finals = [line.split("\r")[-1] for line in log.split("\n") if "mlp:" in line]
    assert len(finals) == 3, log
    for (stopped, epochs, best), final in zip(results, finals, strict=True):
        assert "100%" in final and f"{epochs}/{epochs}" in final
        assert stopped == (f"stopped early at epoch {epochs} (best {best})" in final)
