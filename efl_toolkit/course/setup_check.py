"""Environment check for the course (notebook 00): is this machine ready to run the toolkit?

Every check is a small function returning :class:`CheckResult` values with a status (``ok``,
``warn`` or ``fail``) and a one-line explanation. :func:`run_setup_checks` runs them all (with a
progress bar) and :func:`format_checks` renders a readable table.

What is checked:

* Python and package versions against the toolkit's own declared requirements;
* JAX devices (CPU expected) and a ``jax.jit`` smoke test compared with NumPy;
* the embedded datasets: file MD5 against the official MedMNIST checksum, and that they load;
* MPyC in a separate process: one process is one MPyC party, so a notebook kernel on its own has
  no secrecy (a warning explains this; notebook 04 launches several party processes);
* the active experiment preset (``EFL_PRESET``).

Example:
    >>> from efl_toolkit.course.setup_check import check_embedded_data
    >>> [r.status for r in check_embedded_data()]
    ['ok', 'ok']
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

STATUSES = ("ok", "warn", "fail")

#: Packages whose versions the check reports (distribution names).
REPORTED_PACKAGES = ("jax", "jaxlib", "flax", "optax", "mpyc", "gmpy2", "numpy",
                     "scikit-learn", "matplotlib", "ipywidgets", "tqdm", "cryptography")

#: Seconds allowed for the MPyC subprocess check.
MPYC_TIMEOUT = 60.0

# Runs in a fresh interpreter: one process with no party arguments is one MPyC party.
_MPYC_PROBE = """
import json
from mpyc.runtime import mpc
secint = mpc.SecInt(32)
total = mpc.run(mpc.output(mpc.sum([secint(x) for x in (1, 2, 3)])))
print(json.dumps({"parties": len(mpc.parties), "threshold": mpc.threshold, "sum": int(total)}))
"""


class SetupError(RuntimeError):
    """Raised by :func:`require_ready` when a check failed; the message lists the failures."""


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one environment check.

    Attributes:
        name: What was checked (e.g. ``"jax devices"``).
        status: ``"ok"``, ``"warn"`` (works, but read the detail) or ``"fail"``.
        detail: One line for people.
    """

    name: str
    status: str
    detail: str

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"check {self.name!r}: status must be one of {STATUSES}, "
                             f"got {self.status!r}")

    @property
    def ok(self) -> bool:
        """True unless the check failed (warnings count as usable)."""
        return self.status != "fail"


def installed_version(distribution: str) -> str | None:
    """Installed version of a distribution, or ``None`` when it is not installed.

    Example:
        >>> installed_version("numpy") is not None, installed_version("no-such-package-xyz")
        (True, None)
    """
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def check_python(minimum: tuple[int, int] = (3, 11)) -> CheckResult:
    """The interpreter is recent enough.

    Example:
        >>> check_python((3, 0)).status
        'ok'
    """
    version = platform.python_version()
    if sys.version_info[:2] < minimum:
        return CheckResult("python", "fail", f"Python {version}; the toolkit needs "
                           f"{minimum[0]}.{minimum[1]}+")
    return CheckResult("python", "ok", f"Python {version} at {sys.executable}")


def check_requirements(requirements: Sequence[str] | None = None) -> list[CheckResult]:
    """Every declared (non-optional) requirement is installed in a matching version.

    Args:
        requirements: Requirement strings such as ``"jax>=0.10,<0.11"``; default: the
            toolkit's own declared dependencies.

    Example:
        >>> [r.status for r in check_requirements(["numpy>=1.0", "no-such-package-xyz>=1"])]
        ['ok', 'fail']
    """
    from packaging.requirements import Requirement

    if requirements is None:
        requirements = metadata.requires("efl_toolkit") or []
    results = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # optional extra (dev, torch)
        version = installed_version(requirement.name)
        if version is None:
            results.append(CheckResult(requirement.name, "fail",
                                       f"not installed (needs {requirement.specifier})"))
        elif requirement.specifier and not requirement.specifier.contains(version,
                                                                           prereleases=True):
            results.append(CheckResult(requirement.name, "fail",
                                       f"{version} installed, needs {requirement.specifier}"))
        else:
            results.append(CheckResult(requirement.name, "ok", version))
    return results


def package_versions(names: Sequence[str] = REPORTED_PACKAGES) -> dict[str, str | None]:
    """Installed versions of the packages the course relies on (``None``: missing).

    Example:
        >>> "jax" in package_versions()
        True
    """
    return {name: installed_version(name) for name in names}


def check_jax_devices() -> CheckResult:
    """JAX sees at least one device; the course is written for CPU.

    Example:
        >>> check_jax_devices().status in ("ok", "warn")
        True
    """
    import jax

    devices = jax.devices()
    kinds = sorted({d.platform for d in devices})
    detail = (f"{len(devices)} device(s) on {', '.join(kinds)} (backend {jax.default_backend()}); "
              f"{os.cpu_count()} CPU core(s)")
    if not devices:
        return CheckResult("jax devices", "fail", "JAX found no device")
    return CheckResult("jax devices", "ok" if kinds == ["cpu"] else "warn",
                       detail if kinds == ["cpu"] else detail + " (course timings assume CPU)")


def check_jit(size: int = 64) -> CheckResult:
    """Compiles a small matmul + softmax with ``jax.jit`` and compares it with NumPy.

    Example:
        >>> check_jit(8).status
        'ok'
    """
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    x = rng.standard_normal((size, size)).astype(np.float32)
    w = rng.standard_normal((size, 4)).astype(np.float32)
    f = jax.jit(lambda x, w: jax.nn.softmax(jnp.tanh(x @ w), axis=-1))
    started = time.perf_counter()
    got = np.asarray(f(x, w))
    compile_ms = 1e3 * (time.perf_counter() - started)
    started = time.perf_counter()
    np.asarray(f(x, w))
    run_ms = 1e3 * (time.perf_counter() - started)
    logits = np.tanh(x @ w)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    error = float(np.abs(got - expected).max())
    if not np.isfinite(error) or error > 1e-4:
        return CheckResult("jax.jit", "fail", f"jit result differs from NumPy by {error:.2g}")
    return CheckResult("jax.jit", "ok", f"compiled in {compile_ms:.0f} ms, runs in "
                       f"{run_ms:.2f} ms, max |jit - numpy| = {error:.1e}")


def check_embedded_data() -> list[CheckResult]:
    """Each embedded dataset file matches its official MD5 and loads.

    Example:
        >>> [r.name for r in check_embedded_data()]
        ['breastmnist data', 'pneumoniamnist data']
    """
    from efl_toolkit.data.medmnist import (
        EMBEDDED_MD5,
        DatasetError,
        embedded_path,
        load_dataset,
        md5sum,
    )

    results = []
    for name in sorted(EMBEDDED_MD5):
        label = f"{name} data"
        path = embedded_path(name)
        if not path.is_file():
            results.append(CheckResult(label, "fail", f"missing file {path}"))
            continue
        digest = md5sum(path)
        if digest != EMBEDDED_MD5[name]:
            results.append(CheckResult(label, "fail", f"{path.name}: MD5 {digest} differs from "
                                       f"the official {EMBEDDED_MD5[name]}"))
            continue
        try:
            dataset = load_dataset(name)
        except DatasetError as error:
            results.append(CheckResult(label, "fail", str(error)))
            continue
        sizes = "/".join(str(len(s)) for s in (dataset.train, dataset.val, dataset.test))
        results.append(CheckResult(label, "ok", f"MD5 ok; {dataset.n_classes} classes, images "
                                   f"{dataset.image_shape}, train/val/test {sizes}"))
    return results


def mpyc_probe(timeout: float = MPYC_TIMEOUT) -> dict:
    """Runs a tiny secure sum in a fresh Python process and returns what MPyC reported.

    The probe starts without party arguments, exactly like a notebook kernel that imports
    MPyC: it is a single party.

    Returns:
        ``{"parties": m, "threshold": t, "sum": 6}``.

    Raises:
        RuntimeError: The process failed or timed out (the message holds its stderr).

    Example:
        >>> mpyc_probe()["parties"]
        1
    """
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    try:
        done = subprocess.run([sys.executable, "-c", _MPYC_PROBE, "--no-log"],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"the MPyC probe did not finish within {timeout:g} s") from error
    if done.returncode != 0:
        raise RuntimeError(f"the MPyC probe exited with code {done.returncode}: "
                           f"{done.stderr.strip()[-500:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"the MPyC probe printed no result: {done.stdout.strip()[-500:]}")
    return json.loads(lines[-1])


def check_mpyc(timeout: float = MPYC_TIMEOUT) -> list[CheckResult]:
    """MPyC runs, and a warning that one process is one party (no secrecy on its own).

    Example:
        >>> [r.status for r in check_mpyc()]
        ['ok', 'warn']
    """
    version = installed_version("mpyc")
    if version is None:
        return [CheckResult("mpyc", "fail", "MPyC is not installed")]
    try:
        probe = mpyc_probe(timeout)
    except RuntimeError as error:
        return [CheckResult("mpyc", "fail", str(error))]
    if probe.get("sum") != 6:
        return [CheckResult("mpyc", "fail", f"a secure sum of 1+2+3 gave {probe.get('sum')}")]
    speed = "gmpy2 present" if installed_version("gmpy2") else "gmpy2 missing (slower)"
    results = [CheckResult("mpyc", "ok", f"MPyC {version} computed 1+2+3 = 6; {speed}")]
    if probe["parties"] == 1:
        results.append(CheckResult(
            "mpyc parties", "warn",
            "one process is a single MPyC party (m=1, t=0): nothing is secret inside this "
            "kernel alone; the secure ensemble (notebook 04) launches M party processes"))
    else:
        results.append(CheckResult("mpyc parties", "ok", f"m={probe['parties']}, "
                                   f"t={probe['threshold']}"))
    return results


def check_preset() -> CheckResult:
    """Which experiment preset notebooks will use (``EFL_PRESET``).

    Example:
        >>> check_preset().name
        'preset'
    """
    from efl_toolkit.config import DEFAULT_PRESET, PRESET_ENV_VAR, get_config

    chosen = os.environ.get(PRESET_ENV_VAR)
    try:
        config = get_config()
    except ValueError as error:
        return CheckResult("preset", "fail", f"{PRESET_ENV_VAR}={chosen!r}: {error}")
    origin = f"{PRESET_ENV_VAR}={chosen}" if chosen else f"default ({DEFAULT_PRESET})"
    return CheckResult("preset", "ok", f"{config.name} from {origin}: {config.n_institutions} "
                       f"institutions, {config.train.epochs} epochs, dataset {config.dataset}")


def describe_presets() -> list[dict]:
    """One row per experiment preset with the fields that change run time and realism.

    Example:
        >>> [row["preset"] for row in describe_presets()]
        ['classroom_fast', 'paper']
    """
    from efl_toolkit.config import PRESETS

    return [{"preset": name, "dataset": c.dataset, "institutions": c.n_institutions,
             "partition": c.partition, "alpha": c.dirichlet_alpha, "epochs": c.train.epochs,
             "batch_size": c.train.batch_size, "learning_rate": c.train.learning_rate,
             "patience": c.train.patience} for name, c in PRESETS.items()]


def default_checks() -> list[tuple[str, Callable[[], CheckResult | list[CheckResult]]]]:
    """The checks :func:`run_setup_checks` runs, as ``(label, function)`` pairs.

    Example:
        >>> [label for label, _ in default_checks()][:2]
        ['python', 'requirements']
    """
    return [("python", check_python), ("requirements", check_requirements),
            ("jax devices", check_jax_devices), ("jax.jit", check_jit),
            ("embedded data", check_embedded_data), ("mpyc", check_mpyc),
            ("preset", check_preset)]


def run_setup_checks(checks=None, *, progress: bool = True) -> list[CheckResult]:
    """Runs the environment checks; a check that crashes becomes a ``fail`` result.

    Args:
        checks: ``(label, function)`` pairs; default :func:`default_checks`.
        progress: Show a progress bar (:class:`~efl_toolkit.progress.Progress`).

    Example:
        >>> results = run_setup_checks([("python", check_python)], progress=False)
        >>> results[0].name, results[0].status
        ('python', 'ok')
    """
    from efl_toolkit.progress import Progress

    checks = default_checks() if checks is None else list(checks)
    results: list[CheckResult] = []
    with Progress(len(checks), "set-up check", unit="check", enabled=progress) as bar:
        for label, check in checks:
            try:
                outcome = check()
            except Exception as error:  # a broken environment must still produce a report
                outcome = CheckResult(label, "fail", f"{type(error).__name__}: {error}")
            results.extend(outcome if isinstance(outcome, list) else [outcome])
            bar.update(check=label)
    return results


def format_checks(results: Sequence[CheckResult]) -> str:
    """A readable table of check results, worst news visible at a glance.

    Example:
        >>> print(format_checks([CheckResult("python", "ok", "Python 3.11")]))
        [ ok ] python  Python 3.11
    """
    marks = {"ok": "[ ok ]", "warn": "[warn]", "fail": "[FAIL]"}
    width = max((len(r.name) for r in results), default=0)
    return "\n".join(f"{marks[r.status]} {r.name.ljust(width)}  {r.detail}" for r in results)


def require_ready(results: Sequence[CheckResult]) -> None:
    """Raises :class:`SetupError` naming every failed check; warnings pass.

    Example:
        >>> require_ready([CheckResult("python", "warn", "old")])
    """
    failed = [r for r in results if r.status == "fail"]
    if failed:
        lines = "; ".join(f"{r.name}: {r.detail}" for r in failed)
        raise SetupError(f"{len(failed)} set-up check(s) failed: {lines}")
