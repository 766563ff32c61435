"""Environment check of notebook 00: real checks on this machine, and failures that explain."""

from __future__ import annotations

import shutil

import pytest

from efl_toolkit.course.setup_check import (
    CheckResult,
    SetupError,
    check_embedded_data,
    check_jax_devices,
    check_jit,
    check_mpyc,
    check_preset,
    check_python,
    check_requirements,
    describe_presets,
    format_checks,
    mpyc_probe,
    require_ready,
    run_setup_checks,
)
from efl_toolkit.data import medmnist


def test_the_real_environment_is_ready():
    results = run_setup_checks(progress=False)
    require_ready(results)
    names = [r.name for r in results]
    for expected in ("python", "jax", "flax", "mpyc", "jax devices", "jax.jit",
                     "breastmnist data", "pneumoniamnist data", "mpyc parties", "preset"):
        assert expected in names
    table = format_checks(results)
    assert table.count("\n") == len(results) - 1
    assert "[ ok ] jax.jit" in table


def test_one_process_is_a_single_mpyc_party_and_is_warned_about():
    probe = mpyc_probe()
    assert probe == {"parties": 1, "threshold": 0, "sum": 6}
    status = {r.name: r for r in check_mpyc()}
    assert status["mpyc"].status == "ok"
    assert status["mpyc parties"].status == "warn"
    assert "nothing is secret" in status["mpyc parties"].detail


def test_requirements_name_missing_and_mismatched_packages():
    results = check_requirements(["numpy>=1.0", "numpy<1.0", "no-such-package-xyz>=1",
                                  "pytest>=1; extra == 'dev'"])
    assert [(r.name, r.status) for r in results] == [
        ("numpy", "ok"), ("numpy", "fail"), ("no-such-package-xyz", "fail")]  # extras skipped
    assert "needs <1.0" in results[1].detail
    assert "not installed" in results[2].detail


def test_embedded_data_checksum_mismatch_is_a_failure_naming_the_file(tmp_path, monkeypatch):
    good = medmnist.embedded_path("breastmnist")
    corrupt = tmp_path / "breastmnist.npz"
    shutil.copy(good, corrupt)
    data = bytearray(corrupt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    monkeypatch.setattr(medmnist, "embedded_path",
                        lambda name: corrupt if name == "breastmnist" else good)
    results = {r.name: r for r in check_embedded_data()}
    bad = results["breastmnist data"]
    assert bad.status == "fail"
    assert "breastmnist.npz" in bad.detail and medmnist.EMBEDDED_MD5["breastmnist"] in bad.detail
    with pytest.raises(SetupError, match="breastmnist data"):
        require_ready(list(results.values()))


def test_individual_checks_pass_here():
    assert check_python().status == "ok"
    assert check_python((99, 0)).status == "fail"
    assert check_jax_devices().status == "ok"  # CPU
    jit = check_jit(16)
    assert jit.status == "ok" and "max |jit - numpy|" in jit.detail


def test_preset_check_reads_the_environment(monkeypatch):
    monkeypatch.setenv("EFL_PRESET", "paper")
    assert check_preset().detail.startswith("paper from EFL_PRESET=paper")
    monkeypatch.setenv("EFL_PRESET", "no-such-preset")
    assert check_preset().status == "fail"
    assert [row["preset"] for row in describe_presets()] == ["classroom_fast", "paper"]


def test_a_crashing_check_becomes_a_failure_not_a_crash():
    def broken():
        raise OSError("disk on fire")

    results = run_setup_checks([("disk", broken), ("python", check_python)], progress=False)
    assert [(r.name, r.status) for r in results] == [("disk", "fail"), ("python", "ok")]
    assert "OSError: disk on fire" in results[0].detail


def test_bad_status_is_rejected():
    with pytest.raises(ValueError, match="status must be one of"):
        CheckResult("x", "maybe", "")
