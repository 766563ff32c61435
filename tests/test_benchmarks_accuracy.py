"""Smoke test of ``benchmarks/accuracy.py``: its tiny grid on a synthetic MedMNIST-format file.

The script runs as a subprocess, exactly as a user runs it; the test checks the one JSON document
it prints (and writes with ``--out``), the figures' range, the results page (a row per method) and
the plot, that a failed run is an error naming its cell, and that ``--from-json`` re-renders the
page from a document without running anything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_medmnist_npz

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "accuracy.py"
METHODS = ("alone_mean", "alone_best", "fedavg_cnn", "ensemble_only", "hierarchical_plaintext",
           "hierarchical_secure", "centralized")
METRICS = ("accuracy", "balanced_accuracy", "auc")
ROW_LABELS = ("alone (mean)", "alone (best, oracle)", "FedAvg CNN", "ensemble-only",
              "hierarchical plaintext", "**hierarchical secure**", "centralized")


def run_script(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def in_unit_interval(value) -> bool:
    return value is None or 0.0 <= value <= 1.0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One tiny grid (2 seeds, 3 institutions, 2 epochs and 2 rounds) and its outputs."""
    folder = tmp_path_factory.mktemp("accuracy_benchmark")
    npz = write_medmnist_npz(folder / "synthmnist.npz", sizes=(120, 40, 40), side=16)
    out, page = folder / "acc.json", folder / "docs" / "results.md"
    proc = run_script("--tiny", "--dataset", str(npz), "--out", str(out), "--markdown",
                      str(page), cwd=folder)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, out, page, npz


@pytest.mark.slow
def test_tiny_grid_prints_one_json_document_with_every_method(tiny):
    proc, out, _, npz = tiny
    document = json.loads(proc.stdout)           # exactly one JSON document on stdout
    assert document == json.loads(out.read_text())
    assert document["status"] == "ok" and document["error"] is None
    for key in ("started", "finished", "command", "machine", "load_average_start",
                "load_average_end", "wall_seconds", "grid", "references", "goals"):
        assert document[key] is not None, key
    assert document["machine"]["cpus"] >= 1 and document["machine"]["python"]
    assert "--tiny" in document["command"]
    grid = document["grid"]
    assert grid["datasets"] == [str(npz)] and grid["method"] == "hierarchical"
    assert grid["config_overrides"]["train"] == {"epochs": 2} and grid["config_overrides"][
        "rounds"] == 2
    runs = document["runs"]
    assert len(runs) == grid["n_runs"] == 2
    assert sorted(r["seed"] for r in runs) == [0, 1]
    for run in runs:
        assert run["wall_seconds"] > 0 and run["config"]["epochs"] == 2
        assert set(run["methods"]) == set(METHODS)
        for method in METHODS:
            for metric in METRICS:
                assert in_unit_interval(run["methods"][method][metric]), (method, metric)
        assert len(run["institutions"]) == 3
    cells = document["aggregates"]["cells"]
    assert len(cells) == 1 and cells[0]["runs"] == 2
    for entry in (*cells, *document["aggregates"]["by_dataset"]):
        for method in METHODS:
            for metric in METRICS:
                s = entry["methods"][method][metric]
                assert set(s) >= {"mean", "std", "min", "max", "n"}
                if s["mean"] is not None:
                    assert 0.0 <= s["min"] <= s["mean"] <= s["max"] <= 1.0
                    assert s["std"] >= 0.0
        assert set(entry["method_vs"]) >= {"alone_best", "fedavg_cnn", "ensemble_only",
                                           "centralized"}
    # a synthetic file has no published reference; the default demo goal is not this cell
    assert document["references"] == {str(npz): []}


@pytest.mark.slow
def test_tiny_grid_writes_a_results_page_with_a_row_per_method(tiny):
    _, _, page, _ = tiny
    text = page.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    for label in ROW_LABELS:
        assert any(row.startswith(f"| {label} |") for row in rows), label
    assert "command:" in text and "machine:" in text and "load average" in text
    plot = page.parent / "results_tiny.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "(results_tiny.png)" in text


@pytest.mark.slow
def test_from_json_renders_the_page_without_running(tiny, tmp_path):
    _, out, _, _ = tiny
    page = tmp_path / "page.md"
    proc = run_script("--from-json", str(out), "--markdown", str(page), cwd=tmp_path,
                      timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == ""
    assert "| **hierarchical secure** |" in page.read_text()
    assert (tmp_path / "results_tiny.png").exists()


@pytest.mark.slow
def test_a_failed_run_is_an_error_naming_its_cell(tmp_path):
    missing = tmp_path / "nothere.npz"
    out = tmp_path / "failed.json"
    proc = run_script("--tiny", "--dataset", str(missing), "--seeds", "3,4", "--out", str(out),
                      cwd=tmp_path, timeout=120)
    assert proc.returncode == 1
    assert f"dataset={missing}" in proc.stderr and "seed=3" in proc.stderr
    document = json.loads(proc.stdout)
    assert document["status"] == "failed" and document["runs"] == []
    assert len(document["errors"]) == 1                 # stops at the first failure
    assert "seed=3" in document["error"]["cell"] and "nothere.npz" in document["error"]["message"]
    assert json.loads(out.read_text())["status"] == "failed"

    proc = run_script("--tiny", "--dataset", str(missing), "--seeds", "3,4", "--keep-going",
                      cwd=tmp_path, timeout=120)
    assert proc.returncode == 1
    document = json.loads(proc.stdout)
    assert [e["seed"] for e in document["errors"]] == [3, 4]
    assert "2 of 2 runs failed" in proc.stderr
