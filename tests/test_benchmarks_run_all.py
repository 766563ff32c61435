"""Smoke test of ``benchmarks/run_all.py``'s machinery at its cheapest settings (``--tiny``).

Functional, never timed: the document's structure, and figures consistent with each other
(every ratio is the JAX median over the PyTorch median the same document reports; the demo's
warm-cache run found the entries its cold run stored). The end-to-end part runs a small real
JAX program in place of ``efl demo`` so the test stays well under a minute.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import benchmarks_page  # noqa: E402
import run_all  # noqa: E402

#: A small program that compiles something worth caching (stands in for ``efl demo``).
SMALL_PROGRAM = (sys.executable, "-c",
                 "import efl_toolkit, jax, jax.numpy as jnp\n"
                 "f = jax.jit(lambda x: jnp.linalg.svd(x @ x.T + jnp.sin(x) @ jnp.cos(x).T))\n"
                 "f(jnp.ones((64, 64))).S.block_until_ready()")


@pytest.fixture(scope="module")
def document():
    with pytest.MonkeyPatch.context() as patch:  # cache even a fast compile (a quiet machine)
        patch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
        return run_all.collect(("training", "end_to_end"), tiny=True,
                               demo_command=SMALL_PROGRAM, command="pytest")


def test_document_structure(document):
    assert set(document) == {"training", "end_to_end", "meta"}
    meta = document["meta"]
    assert meta["command"] == "pytest" and meta["machine"]["cpu_count"] >= 1
    assert len(meta["load_average"]["before_1_5_15m"]) == 3
    assert {"python", "jax", "mpyc", "torch"} <= set(meta["versions"])
    json.dumps(document)  # JSON all the way down


def test_training_ratios_match_the_reported_figures(document):
    training = document["training"]
    archs = run_all.TINY_TRAINING["archs"]
    assert set(training["jax"]) == set(archs)
    for arch in archs:
        stats = training["jax"][arch]
        assert stats["min"] <= stats["median"] and len(stats["runs"]) == 1
        assert training["jax_compile_seconds"][arch] > 0
    if isinstance(training["torch"], str):  # PyTorch not installed
        assert "not installed" in training["torch"] and "ratio_vs_torch" not in training
        return
    for arch in archs:
        faster = max(training["torch_configurations"][arch].values(), key=lambda s: s["median"])
        assert training["torch"][arch] == faster
        expected = training["jax"][arch]["median"] / training["torch"][arch]["median"]
        assert training["ratio_vs_torch"][arch] == pytest.approx(expected, rel=2e-3, abs=1e-3)


def test_end_to_end_reports_a_cold_and_a_warm_run(document):
    e2e = document["end_to_end"]
    assert "error" not in e2e, e2e
    assert e2e["demo_seconds"] > 0 and e2e["demo_seconds_warm_cache"] > 0
    assert e2e["cache_entries"] >= 1, "the cold run stored nothing in the JAX cache"


def test_a_part_without_run_is_an_error_not_a_crash(tmp_path, monkeypatch):
    (tmp_path / "half_done_benchmark.py").write_text("X = 1\n")
    (tmp_path / "broken_benchmark.py").write_text("def run(quick=False):\n    return 1 / 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "no run(quick)" in run_all.call_run("half_done_benchmark", quick=True)["error"]
    assert "ZeroDivisionError" in run_all.call_run("broken_benchmark", quick=True)["error"]
    assert "cannot import" in run_all.call_run("no_such_benchmark_module")["error"] or \
        "ModuleNotFoundError" in run_all.call_run("no_such_benchmark_module")["error"]
    with pytest.raises(ValueError, match="unknown part 'speed'"):
        run_all.collect(("speed",))


def test_markdown_page_from_the_document(document, tmp_path):
    page = benchmarks_page.write(document, tmp_path / "benchmarks.md").read_text()
    assert document["meta"]["date"] in page and "load average" in page
    for arch in run_all.TINY_TRAINING["archs"]:
        assert f"| {arch} | {document['training']['jax'][arch]['median']} |" in page
    if "ratio_vs_torch" in document["training"]:
        assert (tmp_path / "benchmarks_training.png").stat().st_size > 0
    notes = f"{benchmarks_page.NOTES_MARKER}\nwhat the profile shows\n"
    (tmp_path / "benchmarks.md").write_text(page + notes)
    again = benchmarks_page.write(document, tmp_path / "benchmarks.md").read_text()
    assert again == page + notes  # regenerated, hand-written notes kept once
