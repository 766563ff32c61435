"""Every benchmark of the project in one run, printed as one JSON document.

Top-level keys:

* ``training``: ``benchmarks/train_throughput.py`` (samples/s of every zoo architecture, JAX and
  its PyTorch twin interleaved, compile time apart; ``ratio_vs_torch`` per architecture);
* ``secure``: ``benchmarks/secure_ensemble.py`` (``argmax_speedup_vs_plain``: the toolkit's
  secure argmax against the plain MPyC script, side by side);
* ``ledger``: ``benchmarks/ledger_throughput.py`` merged with ``benchmarks/ledger_scale.py``;
* ``end_to_end``: wall time of ``efl demo --preset classroom_fast`` in a subprocess with an
  empty JAX compilation cache (``demo_seconds``), then again with the cache it left
  (``demo_seconds_warm_cache``);
* ``accuracy`` (with ``--accuracy``): ``benchmarks/accuracy.py --quick``;
* ``meta``: date, machine (CPU count and model), load average before and after, Python, JAX,
  MPyC and PyTorch versions, the command.

A part whose module lacks ``run(quick)`` or fails is reported as ``{"error": "..."}``; the other
parts still run. ``--quick`` targets under 10 minutes on 2 cores; ``--tiny`` is the cheapest
setting of the machinery (for its smoke test, not for figures).

Usage:
    python benchmarks/run_all.py [--quick | --tiny] [--parts training,secure,ledger,end_to_end]
        [--accuracy] [--out FILE] [--markdown docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

PARTS = ("training", "secure", "ledger", "end_to_end")
DEMO_COMMAND = (sys.executable, "-m", "efl_toolkit.cli", "demo", "--preset", "classroom_fast")
#: train_throughput settings of ``--tiny``: two small architectures, a few steps, one repeat.
TINY_TRAINING = {"archs": ("logistic", "mlp"), "steps": 3, "repeats": 1, "image_shape": (8, 8, 1)}


def call_run(module_name: str, **kwargs) -> dict:
    """``module.run(**kwargs)`` of a benchmark module, or ``{"error": reason}`` (never raises).

    Args:
        module_name: A module in ``benchmarks/`` (e.g. ``"secure_ensemble"``).
        kwargs: Passed to its ``run``.

    Returns:
        Its report (a dict), or ``{"error": "<module>: <reason>"}`` when the module cannot be
        imported, has no ``run``, raises, or returns something other than a dict.
    """
    argv, sys.argv = sys.argv, sys.argv[:1]  # MPyC parses sys.argv when it is imported
    try:
        module = importlib.import_module(module_name)
        run = getattr(module, "run", None)
        if not callable(run):
            return {"error": f"{module_name}: has no run(quick) function yet"}
        report = run(**kwargs)
    except Exception as error:  # noqa: BLE001 - a missing or broken part is reported
        last = traceback.extract_tb(error.__traceback__)[-1]
        return {"error": f"{module_name}: {type(error).__name__}: {error} "
                         f"({Path(last.filename).name}:{last.lineno})"}
    finally:
        sys.argv = argv
    if not isinstance(report, dict):
        return {"error": f"{module_name}.run returned {type(report).__name__}, not a dict"}
    return report


def timed_command(command: list[str] | tuple[str, ...], env: dict, timeout: float) -> dict:
    """Wall seconds of one subprocess, run in a temporary folder removed afterwards (the demo's
    outputs, keystore included, go with it); ``error`` (exit code, stderr's last line) if it
    failed."""
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="efl-bench-run-") as workdir:
            done = subprocess.run(list(command), env=env, capture_output=True, text=True,
                                  timeout=timeout, check=False, cwd=workdir)
    except subprocess.TimeoutExpired:
        return {"seconds": round(time.perf_counter() - started, 2),
                "error": f"timed out after {timeout:.0f} s"}
    result = {"seconds": round(time.perf_counter() - started, 2)}
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        result["error"] = f"exit {done.returncode}: {tail}"
    return result


def end_to_end(command: list[str] | tuple[str, ...] = DEMO_COMMAND,
               timeout: float = 600.0) -> dict:
    """The demo's wall time, cold (empty JAX compilation cache) and again with a warm cache.

    Both runs use one fresh temporary cache folder (``$EFL_JAX_CACHE``), so the first compiles
    everything and the second loads what the first stored.

    Returns:
        ``{"command", "demo_seconds", "demo_seconds_warm_cache", "cache_entries"}`` (seconds
        of wall time), plus ``error`` when a run failed.
    """
    with tempfile.TemporaryDirectory(prefix="efl-jax-cache-") as folder:
        env = {key: value for key, value in os.environ.items()
               if key not in ("JAX_COMPILATION_CACHE_DIR", "EFL_JAX_CACHE")}
        env["EFL_JAX_CACHE"] = folder
        cold = timed_command(command, env, timeout)
        entries = len(os.listdir(folder))
        warm = timed_command(command, env, timeout) if "error" not in cold else {}
    report = {"command": shlex.join(["python", *command[1:]]),
              "demo_seconds": cold["seconds"],
              "demo_seconds_warm_cache": warm.get("seconds"), "cache_entries": entries}
    errors = [run["error"] for run in (cold, warm) if "error" in run]
    if errors:
        report["error"] = "; ".join(errors)
    return report


def _ledger(quick: bool) -> dict:
    merged: dict = {}
    for name in ("ledger_throughput", "ledger_scale"):
        report = call_run(name, quick=quick)
        if "error" in report:
            merged.setdefault("errors", []).append(report["error"])
        merged[name] = report
    return merged


def _versions() -> dict:
    # installed distributions, not imports: importing mpyc would parse this script's argv
    versions = {"python": platform.python_version()}
    for name in ("jax", "jaxlib", "flax", "mpyc", "numpy", "torch"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect(parts: tuple[str, ...] = PARTS, *, quick: bool = False, tiny: bool = False,
            accuracy: bool = False, demo_command: tuple[str, ...] = DEMO_COMMAND,
            command: str = "") -> dict:
    """Runs the selected parts in order and returns the whole document (see module docstring).

    Args:
        parts: Any of :data:`PARTS`; the others are absent from the document.
        quick: Each part's quick setting.
        tiny: Training at :data:`TINY_TRAINING` (implies ``quick`` for the other parts).
        accuracy: Also run ``benchmarks/accuracy.py --quick`` (key ``accuracy``).
        demo_command: The end-to-end command (default: ``efl demo --preset classroom_fast``).
        command: The command line recorded in ``meta``.

    Raises:
        ValueError: An unknown part name.
    """
    unknown = [part for part in parts if part not in PARTS]
    if unknown:
        raise ValueError(f"unknown part {unknown[0]!r}; choose from {list(PARTS)}")
    quick = quick or tiny
    load_before = os.getloadavg()
    started = time.perf_counter()
    runners: dict[str, Callable[[], dict]] = {
        "training": lambda: call_run("train_throughput", quick=quick,
                                     **(TINY_TRAINING if tiny else {})),
        "secure": lambda: call_run("secure_ensemble", quick=quick),
        "ledger": lambda: _ledger(quick),
        "end_to_end": lambda: end_to_end(demo_command),
    }
    document: dict = {part: runners[part]() for part in parts}
    if accuracy:
        document["accuracy"] = _accuracy_cli()
    document["meta"] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command or shlex.join(["python", "benchmarks/run_all.py", *sys.argv[1:]]),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": {"cpu_count": os.cpu_count(), "cpu_model": _cpu_model(),
                    "platform": platform.platform()},
        "load_average": {"before_1_5_15m": [round(v, 2) for v in load_before],
                         "after_1_5_15m": [round(v, 2) for v in os.getloadavg()]},
        "versions": _versions(),
    }
    return document


def _accuracy_cli() -> dict:
    """``benchmarks/accuracy.py --quick --out FILE`` in a subprocess; its JSON document."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "accuracy.json"
        result = timed_command([sys.executable, str(HERE / "accuracy.py"), "--quick", "--out",
                                str(out)], dict(os.environ), 3600)
        if "error" in result:
            return {"error": f"accuracy.py: {result['error']}"}
        return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> dict:
    """Command line: prints the document, optionally writes it (``--out``) and its page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--quick", action="store_true", help="under 10 minutes on 2 cores")
    speed.add_argument("--tiny", action="store_true",
                       help="cheapest settings (a smoke test of the machinery, not figures)")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma list of parts to run")
    parser.add_argument("--accuracy", action="store_true", help="also the quick accuracy grid")
    parser.add_argument("--out", type=Path, help="also write the JSON document here")
    parser.add_argument("--markdown", type=Path,
                        help="write the tables and plots page here (PNGs beside it)")
    args = parser.parse_args(argv)
    try:
        document = collect(tuple(p for p in args.parts.split(",") if p), quick=args.quick,
                           tiny=args.tiny, accuracy=args.accuracy)
    except ValueError as error:
        parser.error(str(error))
    text = json.dumps(document, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    if args.markdown:
        import benchmarks_page

        benchmarks_page.write(document, args.markdown)
    return document


if __name__ == "__main__":
    main()
