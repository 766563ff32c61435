"""Accuracy of the method against its comparisons over a grid of data sets, seeds, skews and sizes.

For every cell of the grid (data set x Dirichlet alpha x number of institutions) and every seed,
:func:`efl_toolkit.pipeline.run_experiment` runs ONCE with ``method="hierarchical"``; that one
run already holds every method compared here, all scored on the official test split:

* ``alone_mean`` / ``alone_best``: each institution's local ensemble trained alone on its own
  share; the mean over institutions, and the best institution *per metric* (chosen on the test
  split: an oracle, so a demanding bar);
* ``fedavg_cnn``: FedAvg on a homogeneous small CNN (McMahan et al. 2017);
* ``ensemble_only``: the first design (models trained alone, level-2 weights from each
  institution's own validation AUC), plaintext;
* ``hierarchical_plaintext`` / ``hierarchical_secure``: the method (federated groups under secure
  aggregation, then the level-2 ensemble), in plaintext and as opened by the MPyC committee;
* ``centralized``: one small CNN trained on the pooled data (upper bound).

The mean and spread (sample std, min, max) over seeds of accuracy, balanced accuracy and AUC are
reported for each method, per cell and aggregated (per data set, per data set and alpha).
Published figures are included as references from OTHER set-ups (not comparable runs). With
``--preset paper`` the grid defaults to the issue's goal (alpha 0.5, seeds 0-2, the preset's
institutions) and the goal checks are computed: AUC within 0.02 of the centralized model of the
same run, accuracy at or above the published ResNet-18 (28).

Usage:
    python benchmarks/accuracy.py [--quick | --tiny] [--preset classroom_fast|paper]
        [--dataset NAME|PATH.npz ...] [--seeds 0,1,2] [--alphas 0.1,0.5,1.0]
        [--institutions 3,5] [--config-overrides JSON] [--out FILE.json]
        [--markdown docs/results.md] [--plot docs/results_quick.png]
    python benchmarks/accuracy.py --from-json A.json [B.json ...] --markdown docs/results.md

Prints ONE JSON document on stdout (also with ``--out``, rewritten after every run so a long
grid's progress survives). A run that fails stops the grid (with ``--keep-going`` the other runs
go on): the document then has ``"status": "failed"`` and ``errors`` naming each failed cell, the
error goes to stderr and the exit status is 1. ``--from-json`` renders the results page (tables,
goal checks, one plot per document) from documents written earlier, without running anything.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

SCHEMA = "efl_toolkit.benchmarks.accuracy/1"
METRICS = ("accuracy", "balanced_accuracy", "auc")
METRIC_LABELS = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy",
                 "auc": "AUC"}
METHODS = {
    "alone_mean": "each institution alone (mean over institutions)",
    "alone_best": "each institution alone (best institution per metric, chosen on test: oracle)",
    "fedavg_cnn": "FedAvg, homogeneous small CNN (McMahan et al. 2017)",
    "ensemble_only": "ensemble-only (first design: models alone, own-validation weights)",
    "hierarchical_plaintext": "hierarchical (federated groups + level-2 ensemble), plaintext",
    "hierarchical_secure": "hierarchical, secure (opened by the MPyC committee): the method",
    "centralized": "centralized small CNN on pooled data (upper bound)",
}
SHORT = {"alone_mean": "alone (mean)", "alone_best": "alone (best, oracle)",
         "fedavg_cnn": "FedAvg CNN", "ensemble_only": "ensemble-only",
         "hierarchical_plaintext": "hierarchical plaintext",
         "hierarchical_secure": "**hierarchical secure**", "centralized": "centralized"}
METHOD = "hierarchical_secure"
#: The comparisons the method should beat (the issue's first goal) and the upper bound.
COMPARED = ("alone_mean", "alone_best", "fedavg_cnn", "ensemble_only", "centralized")

MEDMNIST_V2 = ("MedMNIST v2 (Yang et al., Scientific Data 2023), ResNet-18 (28): one network "
               "trained centrally on the whole 28 px training split, official test split")
CHAINLEARN = ("ChainLearn, plaintext ensemble on PneumoniaMNIST at 224 px with pretrained "
              "networks, Dirichlet label skew")
#: Published figures: OTHER set-ups, not comparable runs.
REFERENCES = {
    "breastmnist": [{"source": MEDMNIST_V2, "model": "ResNet-18 (28)", "dirichlet_alpha": None,
                     "accuracy": 0.863, "auc": 0.901}],
    "pneumoniamnist": [
        {"source": MEDMNIST_V2, "model": "ResNet-18 (28)", "dirichlet_alpha": None,
         "accuracy": 0.854, "auc": 0.944},
        *({"source": CHAINLEARN, "model": f"ChainLearn ensemble (alpha {alpha})",
           "dirichlet_alpha": alpha, "accuracy": acc, "auc": None}
          for alpha, acc in ((1.0, 0.843), (0.5, 0.860), (0.1, 0.785))),
    ],
}
PAPER_GOAL = {"preset": "paper", "dirichlet_alpha": 0.5, "seeds": [0, 1, 2],
              "auc_tolerance": 0.02, "reference_model": "ResNet-18 (28)"}
DEFAULT_DEMO = {"preset": "classroom_fast", "dataset": "breastmnist", "dirichlet_alpha": 1.0,
                "n_institutions": 3, "seeds": [0, 1, 2]}
GRID_KEYS = ("dataset", "seed", "dirichlet_alpha", "n_institutions", "method")
TINY_OVERRIDES = {"train": {"epochs": 2}, "rounds": 2, "finetune_epochs": 1}


class BenchmarkError(RuntimeError):
    """A run of the grid failed; the message names the cell; ``document`` holds the runs
    finished before it and the error."""

    def __init__(self, message: str, document: dict) -> None:
        super().__init__(message)
        self.document = document


# ----------------------------------------------------------------------------------- arguments

def _list(kind):
    def parse(text: str) -> list:
        try:
            values = [kind(part) for part in text.split(",") if part.strip()]
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"not a comma-separated list of {kind.__name__}: "
                                             f"{text!r}") from error
        if not values:
            raise argparse.ArgumentTypeError("empty list")
        return values
    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/accuracy.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="small grid, < 10 min on 2 cores: breastmnist, seeds 0,1, alpha 1.0, "
                           "3 institutions, classroom_fast")
    mode.add_argument("--tiny", action="store_true",
                      help="smoke-test grid: seeds 0,1, alpha 1.0, 3 institutions, "
                           f"overrides {json.dumps(TINY_OVERRIDES)} (pass --dataset PATH.npz)")
    mode.add_argument("--from-json", nargs="+", metavar="FILE",
                      help="render --markdown from earlier documents; runs nothing")
    parser.add_argument("--preset", choices=("classroom_fast", "paper"), default=None,
                        help="configuration preset (default classroom_fast; 'paper' defaults "
                             "the grid to the issue's goal: alpha 0.5, seeds 0-2, the preset's "
                             "institutions)")
    parser.add_argument("--dataset", action="append", metavar="NAME|PATH.npz",
                        help="embedded name or MedMNIST-format npz; repeat for several "
                             "(default breastmnist and pneumoniamnist)")
    parser.add_argument("--seeds", type=_list(int), help="comma list (default 0,1,2)")
    parser.add_argument("--alphas", type=_list(float),
                        help="Dirichlet alphas, comma list (default 0.1,0.5,1.0)")
    parser.add_argument("--institutions", type=_list(int),
                        help="numbers of institutions, comma list (default 3,5)")
    parser.add_argument("--config-overrides", metavar="JSON", default=None,
                        help='extra config fields, e.g. \'{"train": {"epochs": 2}, "rounds": 2}\'')
    parser.add_argument("--label", default=None,
                        help="name of this grid in the page and the plot file (default: the mode)")
    parser.add_argument("--note", default=None,
                        help="one sentence kept in the document and shown on the page (e.g. "
                             "why the grid was reduced)")
    parser.add_argument("--keep-going", action="store_true",
                        help="after a failed run, go on with the others (each failure is "
                             "recorded with its cell; the exit status is still 1)")
    parser.add_argument("--out", type=Path, help="also write the JSON document here")
    parser.add_argument("--markdown", type=Path, help="write the results page here")
    parser.add_argument("--plot", type=Path,
                        help="PNG of this grid (default with --markdown: results_<label>.png "
                             "beside the page)")
    args = parser.parse_args(argv)
    if args.from_json and not args.markdown:
        parser.error("--from-json needs --markdown")
    overrides = {}
    if args.config_overrides:
        try:
            overrides = json.loads(args.config_overrides)
        except json.JSONDecodeError as error:
            parser.error(f"--config-overrides is not JSON: {error}")
        if not isinstance(overrides, dict):
            parser.error("--config-overrides must be a JSON object")
        clash = sorted(set(overrides) & set(GRID_KEYS))
        if clash:
            parser.error(f"--config-overrides may not set grid fields {clash}; use the options")
    if args.tiny:
        overrides = {**TINY_OVERRIDES, **overrides}
    args.overrides = overrides
    return args


def resolve_grid(args: argparse.Namespace) -> dict:
    """The grid this invocation runs (explicit options win over the mode's defaults)."""
    from efl_toolkit.config import get_config

    if args.quick:
        mode = "quick"
        defaults = {"datasets": ["breastmnist"], "seeds": [0, 1], "alphas": [1.0],
                    "institutions": [3], "preset": "classroom_fast"}
    elif args.tiny:
        mode = "tiny"
        defaults = {"datasets": ["breastmnist"], "seeds": [0, 1], "alphas": [1.0],
                    "institutions": [3], "preset": "classroom_fast"}
    elif args.preset == "paper":
        mode = "paper"
        defaults = {"datasets": ["breastmnist", "pneumoniamnist"],
                    "seeds": list(PAPER_GOAL["seeds"]),
                    "alphas": [PAPER_GOAL["dirichlet_alpha"]],
                    "institutions": [get_config("paper").n_institutions], "preset": "paper"}
    else:
        mode = "grid"
        defaults = {"datasets": ["breastmnist", "pneumoniamnist"], "seeds": [0, 1, 2],
                    "alphas": [0.1, 0.5, 1.0], "institutions": [3, 5],
                    "preset": "classroom_fast"}
    grid = {"mode": mode,
            "preset": args.preset or defaults["preset"],
            "datasets": args.dataset or defaults["datasets"],
            "seeds": args.seeds or defaults["seeds"],
            "alphas": args.alphas or defaults["alphas"],
            "institutions": args.institutions or defaults["institutions"],
            "method": "hierarchical",
            "config_overrides": args.overrides}
    grid["label"] = args.label or {"grid": "full"}.get(mode, mode)
    grid["note"] = args.note
    grid["mode_default"] = {"datasets": defaults["datasets"], "seeds": defaults["seeds"],
                            "alphas": defaults["alphas"],
                            "institutions": defaults["institutions"]}
    grid["n_runs"] = (len(grid["datasets"]) * len(grid["seeds"]) * len(grid["alphas"])
                      * len(grid["institutions"]))
    return grid


# ------------------------------------------------------------------------------------ machine

def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine() -> dict:
    import jax

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {"cpus": os.cpu_count(), "cpus_usable": affinity,
            "platform": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor() or None,
            "python": platform.python_version(), "implementation": platform.python_implementation(),
            "jax": jax.__version__, "jax_backend": jax.default_backend()}


def git_state() -> dict:
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                                  timeout=20, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"),
            "dirty": None if status is None else bool(status)}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------- runs

def _num(value: float) -> float | None:
    value = float(value)
    return round(value, 6) if math.isfinite(value) else None


def _scores(evaluation) -> dict:
    return {m: _num(getattr(evaluation, m)) for m in METRICS}


def _best(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None]
    return max(finite) if finite else None


def _mean(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None]
    return round(float(np.mean(finite)), 6) if finite else None


def run_one(dataset: str, preset: str, seed: int, alpha: float, n_institutions: int,
            overrides: dict) -> dict:
    """One ``run_experiment`` (method hierarchical); every method's test scores."""
    from efl_toolkit.config import get_config
    from efl_toolkit.pipeline import run_experiment

    config = get_config(preset, **overrides).replace(
        dataset=dataset, seed=seed, dirichlet_alpha=alpha, n_institutions=n_institutions,
        method="hierarchical")
    load_before = _load()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="efl_accuracy_") as out:
        result = run_experiment(config, out, progress=False, log=lambda *_: None, write=False)
    wall = time.perf_counter() - started
    alone = {inst_id: {**_scores(res.test), "architectures": list(res.architectures),
                       "n_train": res.n_train}
             for inst_id, res in result.alone.items()}
    methods = {
        "alone_mean": {m: _mean([a[m] for a in alone.values()]) for m in METRICS},
        "alone_best": {m: _best([a[m] for a in alone.values()]) for m in METRICS},
        "fedavg_cnn": _scores(result.fedavg.final),
        "ensemble_only": _scores(result.ensemble_only),
        "hierarchical_plaintext": _scores(result.plaintext),
        "hierarchical_secure": _scores(result.secure_eval),
        "centralized": _scores(result.centralized.test),
    }
    secure = result.secure
    return {
        "dataset": dataset, "dataset_name": result.dataset.name, "preset": preset, "seed": seed,
        "dirichlet_alpha": alpha, "n_institutions": n_institutions, "method": config.method,
        "decision": config.decision,
        "config": {"epochs": config.train.epochs, "rounds": config.rounds,
                   "local_epochs": config.local_epochs, "finetune_epochs": config.finetune_epochs,
                   "n_parties": config.n_parties},
        "n_test": len(result.dataset.test),
        "test_class_counts": np.bincount(result.dataset.test.labels,
                                         minlength=result.dataset.n_classes).tolist(),
        "wall_seconds": round(wall, 3), "stage_seconds": dict(result.seconds),
        "load_average_before": load_before, "load_average_after": _load(),
        "methods": methods,
        "institutions": alone,
        "level2_weights": {k: _num(v) for k, v in result.weights.items()},
        "groups": [{"architecture": g.group.architecture, "members": list(g.group.members),
                    "alone": g.group.alone, "rounds": len(g.rounds), "best_round": g.best_round}
                   for g in result.groups.values()],
        "secure": {"parties": secure.n_parties,
                   "max_abs_diff_vs_plaintext":
                       float(np.max(np.abs(secure.mean - result.plaintext_probs))),
                   "seconds": round(secure.seconds, 3)},
    }


# -------------------------------------------------------------------------------- statistics

def stats(values: list[float | None]) -> dict:
    """Mean, sample std (0 for one value), min and max of the finite values; ``n`` of them and
    ``n_missing`` (undefined, e.g. an AUC with one class)."""
    finite = np.array([v for v in values if v is not None], dtype=float)
    out = {"n": int(finite.size), "n_missing": len(values) - int(finite.size)}
    if finite.size == 0:
        return {**out, "mean": None, "std": None, "min": None, "max": None}
    std = float(finite.std(ddof=1)) if finite.size > 1 else 0.0
    return {**out, "mean": round(float(finite.mean()), 6), "std": round(std, 6),
            "min": round(float(finite.min()), 6), "max": round(float(finite.max()), 6)}


def summarize(runs: list[dict]) -> dict:
    """``{method: {metric: stats}}`` over ``runs``."""
    return {method: {m: stats([r["methods"][method][m] for r in runs]) for m in METRICS}
            for method in METHODS}


def comparisons(runs: list[dict]) -> dict:
    """The method minus each comparison: mean difference and wins/ties/losses per metric."""
    out = {}
    for other in COMPARED:
        entry = {}
        for m in METRICS:
            pairs = [(r["methods"][METHOD][m], r["methods"][other][m]) for r in runs]
            pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
            diffs = [a - b for a, b in pairs]
            entry[m] = {"mean_difference": round(float(np.mean(diffs)), 6) if diffs else None,
                        "wins": sum(d > 0 for d in diffs), "ties": sum(d == 0 for d in diffs),
                        "losses": sum(d < 0 for d in diffs), "runs": len(diffs)}
        out[other] = entry
    return out


def _cell_key(run: dict) -> tuple:
    return (run["dataset"], run["dirichlet_alpha"], run["n_institutions"])


def aggregate(runs: list[dict]) -> dict:
    cells, by_dataset, by_alpha = {}, {}, {}
    for run in runs:
        cells.setdefault(_cell_key(run), []).append(run)
        by_dataset.setdefault(run["dataset"], []).append(run)
        by_alpha.setdefault((run["dataset"], run["dirichlet_alpha"]), []).append(run)

    def entry(group: list[dict], **keys) -> dict:
        return {**keys, "seeds": sorted(r["seed"] for r in group), "runs": len(group),
                "dataset_name": group[0]["dataset_name"],
                "wall_seconds": stats([r["wall_seconds"] for r in group]),
                "methods": summarize(group), "method_vs": comparisons(group)}

    return {
        "cells": [entry(g, dataset=d, dirichlet_alpha=a, n_institutions=n)
                  for (d, a, n), g in cells.items()],
        "by_dataset_alpha": [entry(g, dataset=d, dirichlet_alpha=a)
                             for (d, a), g in by_alpha.items()],
        "by_dataset": [entry(g, dataset=d) for d, g in by_dataset.items()],
    }


def references_for(dataset_name: str) -> list[dict]:
    return [dict(ref, setup="OTHER set-up (published; not a comparable run)")
            for ref in REFERENCES.get(dataset_name.lower(), [])]


# ------------------------------------------------------------------------------------- goals

def _verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("met" if ok else "not met")


def goal_checks(document: dict) -> dict:
    """The issue's goals that this document's runs can measure."""
    grid, runs = document["grid"], document["runs"]
    overrides = grid.get("config_overrides") or {}
    caveat = (f"config overrides {json.dumps(overrides)}: not the preset itself"
              if overrides else None)
    goals: dict = {}

    demo = [r for r in runs if grid["preset"] == DEFAULT_DEMO["preset"]
            and r["dataset"] == DEFAULT_DEMO["dataset"]
            and r["dirichlet_alpha"] == DEFAULT_DEMO["dirichlet_alpha"]
            and r["n_institutions"] == DEFAULT_DEMO["n_institutions"]]
    if demo:
        per_seed, ok_all = [], True
        for run in sorted(demo, key=lambda r: r["seed"]):
            checks = {}
            for m in ("auc", "balanced_accuracy"):
                mine = run["methods"][METHOD][m]
                bars = {"every institution alone": _best(
                            [a[m] for a in run["institutions"].values()]),
                        "FedAvg": run["methods"]["fedavg_cnn"][m],
                        "ensemble-only": run["methods"]["ensemble_only"][m]}
                checks[m] = {name: {"method": mine, "bar": bar,
                                    "above": None if mine is None or bar is None
                                    else bool(mine > bar)}
                             for name, bar in bars.items()}
                ok_all &= all(c["above"] is True for c in checks[m].values())
            per_seed.append({"seed": run["seed"], "checks": checks})
        seeds = [r["seed"] for r in demo]
        missing = sorted(set(DEFAULT_DEMO["seeds"]) - set(seeds))
        goals["default_demo"] = {
            "goal": "default demo (classroom_fast, breastmnist, alpha 1.0, 3 institutions), "
                    "seeds 0-2: the secure hierarchical ensemble's AUC and balanced accuracy "
                    "above every institution alone, above FedAvg and above ensemble-only",
            "seeds": seeds, "missing_seeds": missing, "caveat": caveat,
            "status": _verdict(ok_all) + (f" (on seeds {seeds} only)" if missing else ""),
            "per_seed": per_seed}

    paper = []
    if grid["preset"] == PAPER_GOAL["preset"]:
        cells = {}
        for run in runs:
            if run["dirichlet_alpha"] == PAPER_GOAL["dirichlet_alpha"]:
                cells.setdefault((run["dataset"], run["n_institutions"]), []).append(run)
        for (dataset, n), group in cells.items():
            name = group[0]["dataset_name"]
            seeds = sorted(r["seed"] for r in group)
            secure_auc = _mean([r["methods"][METHOD]["auc"] for r in group])
            central_auc = _mean([r["methods"]["centralized"]["auc"] for r in group])
            secure_acc = _mean([r["methods"][METHOD]["accuracy"] for r in group])
            auc_gap = (None if secure_auc is None or central_auc is None
                       else round(secure_auc - central_auc, 6))
            auc_ok = None if auc_gap is None else auc_gap >= -PAPER_GOAL["auc_tolerance"]
            ref = next((r for r in REFERENCES.get(name.lower(), [])
                        if r["model"] == PAPER_GOAL["reference_model"]), None)
            acc_ok = None if ref is None or secure_acc is None else secure_acc >= ref["accuracy"]
            missing = sorted(set(PAPER_GOAL["seeds"]) - set(seeds))
            note = f" (on seeds {seeds} only)" if missing else ""
            paper.append({
                "dataset": dataset, "dataset_name": name, "n_institutions": n, "seeds": seeds,
                "missing_seeds": missing, "caveat": caveat,
                "auc_within_0.02_of_centralized": {
                    "secure_auc_mean": secure_auc, "centralized_auc_mean": central_auc,
                    "difference": auc_gap, "tolerance": PAPER_GOAL["auc_tolerance"],
                    "status": _verdict(auc_ok) + note},
                "accuracy_vs_published_resnet18_28": {
                    "secure_accuracy_mean": secure_acc,
                    "published_accuracy": None if ref is None else ref["accuracy"],
                    "difference": None if ref is None or secure_acc is None
                    else round(secure_acc - ref["accuracy"], 6),
                    "status": ("no published figure for this data set" if ref is None
                               else _verdict(acc_ok) + note)},
                "plaintext_auc_mean": _mean([r["methods"]["hierarchical_plaintext"]["auc"]
                                             for r in group]),
                "centralized_accuracy_mean": _mean([r["methods"]["centralized"]["accuracy"]
                                                    for r in group]),
                "institution_train_mean": _mean([float(np.mean(
                    [i["n_train"] for i in r["institutions"].values()])) for r in group]),
                "institution_train_min": min(i["n_train"] for r in group
                                             for i in r["institutions"].values()),
                "institutions_train_total_mean": _mean([float(sum(
                    i["n_train"] for i in r["institutions"].values())) for r in group]),
            })
    if paper or grid["preset"] == PAPER_GOAL["preset"]:
        goals["paper"] = {
            "goal": "paper preset, alpha 0.5, mean over seeds 0-2: AUC within 0.02 of the "
                    "centralized model of the same run; accuracy at or above the published "
                    "ResNet-18 (28) (BreastMNIST 0.863, PneumoniaMNIST 0.854)",
            "cells": paper,
            "status": "not measured (no alpha 0.5 cell)" if not paper else None}
    return goals


def goal_lines(goals: dict) -> list[str]:
    """Plain-text verdicts, one per goal check."""
    lines = []
    if "default_demo" in goals:
        g = goals["default_demo"]
        misses = [f"seed {seed['seed']} {METRIC_LABELS[m]} {_fmt(c['method'])} vs {name} "
                  f"{_fmt(c['bar'])}" for seed in g["per_seed"]
                  for m, checks in seed["checks"].items() for name, c in checks.items()
                  if not c["above"]]
        lines.append(f"default demo goal: {g['status']}"
                     + (f" (not above: {'; '.join(misses)})" if misses else ""))
        for seed in g["per_seed"]:
            for m, checks in seed["checks"].items():
                for name, c in checks.items():
                    lines.append(f"  seed {seed['seed']} {METRIC_LABELS[m]}: method "
                                 f"{_fmt(c['method'])} vs {name} {_fmt(c['bar'])}: "
                                 f"{'above' if c['above'] else 'NOT above'}")
    if "paper" in goals:
        g = goals["paper"]
        if g["status"]:
            lines.append(f"paper goal: {g['status']}")
        for cell in g["cells"]:
            auc = cell["auc_within_0.02_of_centralized"]
            acc = cell["accuracy_vs_published_resnet18_28"]
            where = f"{cell['dataset_name']} ({cell['n_institutions']} institutions)"
            lines.append(f"paper goal, {where}, AUC within 0.02 of centralized: {auc['status']}"
                         f" (secure {_fmt(auc['secure_auc_mean'])} vs centralized "
                         f"{_fmt(auc['centralized_auc_mean'])}, difference "
                         f"{_fmt(auc['difference'], sign=True)})")
            lines.append(f"paper goal, {where}, accuracy vs published ResNet-18 (28): "
                         f"{acc['status']} (secure {_fmt(acc['secure_accuracy_mean'])} vs "
                         f"{_fmt(acc['published_accuracy'])}, difference "
                         f"{_fmt(acc['difference'], sign=True)})")
            lines.append("  context: an institution trains on "
                         f"{cell['institution_train_mean']:.0f} images on average (smallest "
                         f"share {cell['institution_train_min']}); all institutions together hold "
                         f"{cell['institutions_train_total_mean']:.0f} (their validation "
                         "shares held out) seen through their imaging-device profiles; the "
                         "centralized model trains on the whole official training split as is "
                         "(the test split's own conditions) and early-stops on the official "
                         "validation split")
            if cell["caveat"]:
                lines.append(f"  caveat: {cell['caveat']}")
    return lines


# ---------------------------------------------------------------------------------- the grid

def run_grid(grid: dict, command: str, out: Path | None, keep_going: bool = False) -> dict:
    """Runs every cell of ``grid``; the document is rewritten to ``out`` after every run.

    Raises:
        BenchmarkError: A run failed (at once; with ``keep_going`` after the remaining runs, the
            document then listing every failed cell in ``errors``).
    """
    document = {"schema": SCHEMA, "status": "running", "command": command,
                "started": _now(), "finished": None, "machine": machine(), "git": git_state(),
                "load_average_start": _load(), "load_average_end": None,
                "grid": grid, "runs": [], "error": None, "errors": [],
                "methods": METHODS, "references": {}, "aggregates": None, "goals": None}
    names = {}

    def flush() -> None:
        document["aggregates"] = aggregate(document["runs"])
        document["references"] = {d: references_for(n) for d, n in names.items()}
        document["goals"] = goal_checks(document)
        if out is not None:
            write_json(document, out)

    def finish(status: str) -> None:
        document.update(status=status, finished=_now(), load_average_end=_load(),
                        wall_seconds=round(time.perf_counter() - started, 3))
        flush()

    started = time.perf_counter()
    total = grid["n_runs"]
    index = 0
    for dataset in grid["datasets"]:
        for alpha in grid["alphas"]:
            for n in grid["institutions"]:
                for seed in grid["seeds"]:
                    index += 1
                    cell = (f"dataset={dataset} dirichlet_alpha={alpha} n_institutions={n} "
                            f"seed={seed} preset={grid['preset']}")
                    print(f"[{index}/{total}] {cell}", file=sys.stderr, flush=True)
                    try:
                        run = run_one(dataset, grid["preset"], seed, alpha, n,
                                      grid["config_overrides"])
                    except Exception as error:
                        failure = {"cell": cell, "run": index, "dataset": dataset,
                                   "dirichlet_alpha": alpha, "n_institutions": n, "seed": seed,
                                   "type": type(error).__name__, "message": str(error),
                                   "traceback": traceback.format_exc()}
                        document["errors"].append(failure)
                        document["error"] = document["errors"][0]
                        message = (f"run {index}/{total} failed in cell {cell}: "
                                   f"{type(error).__name__}: {error}")
                        if not keep_going:
                            finish("failed")
                            raise BenchmarkError(message, document) from error
                        print(f"      error: {message}", file=sys.stderr, flush=True)
                        flush()
                        continue
                    names[dataset] = run["dataset_name"]
                    document["runs"].append(run)
                    secure = run["methods"][METHOD]
                    print(f"      {run['wall_seconds']:.1f} s; secure acc "
                          f"{_fmt(secure['accuracy'])} bal {_fmt(secure['balanced_accuracy'])}"
                          f" auc {_fmt(secure['auc'])}",
                          file=sys.stderr, flush=True)
                    flush()
    if document["errors"]:
        finish("failed")
        raise BenchmarkError(f"{len(document['errors'])} of {total} runs failed: "
                             + "; ".join(e["cell"] for e in document["errors"]), document)
    finish("ok")
    return document


def write_json(document: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(document, indent=1) + "\n")
    tmp.replace(path)


# ---------------------------------------------------------------------------------- rendering

def _fmt(value: float | None, digits: int = 3, sign: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _runs(n: int) -> str:
    return f"{n} run" + ("" if n == 1 else "s")


def _cell_text(s: dict) -> str:
    """``mean ± std [min, max]`` of one stats entry."""
    if s["mean"] is None:
        return "n/a"
    text = f"{s['mean']:.3f} ± {s['std']:.3f} [{s['min']:.3f}, {s['max']:.3f}]"
    return text + (f" ({s['n_missing']} undefined)" if s["n_missing"] else "")


def method_table(entry: dict, references: list[dict], alpha: float | None = None) -> list[str]:
    lines = ["| method | accuracy | balanced accuracy | AUC |", "|---|---|---|---|"]
    for method in METHODS:
        row = entry["methods"][method]
        lines.append(f"| {SHORT[method]} | " + " | ".join(_cell_text(row[m]) for m in METRICS)
                     + " |")
    for ref in references:
        if ref["dirichlet_alpha"] is not None and alpha is not None \
                and ref["dirichlet_alpha"] != alpha:
            continue
        lines.append(f"| *published, OTHER set-up: {ref['model']}* | *{_fmt(ref['accuracy'])}* "
                     f"| *n/a* | *{_fmt(ref['auc'])}* |")
    return lines


def comparison_table(entry: dict) -> list[str]:
    lines = ["| method minus | accuracy | balanced accuracy | AUC |", "|---|---|---|---|"]
    for other in COMPARED:
        cols = []
        for m in METRICS:
            c = entry["method_vs"][other][m]
            cols.append(f"{_fmt(c['mean_difference'], sign=True)} "
                        f"(above in {c['wins']}/{c['runs']})")
        lines.append(f"| {SHORT[other]} | " + " | ".join(cols) + " |")
    return lines


def findings(entry: dict, references: list[dict], decision: str,
             shift: float | None = None) -> list[str]:
    """Generated sentences: where the method does not beat a comparison, with the numbers and
    the plausible reasons that apply (no figure is typed by hand)."""
    out = []
    methods = entry["methods"]
    for other in COMPARED:
        diffs = {m: entry["method_vs"][other][m]["mean_difference"] for m in METRICS}
        below = [m for m in METRICS if diffs[m] is not None and diffs[m] < 0]
        tied = [m for m in METRICS if diffs[m] is not None and diffs[m] == 0]
        if not below and not tied:
            continue

        def part(m: str, other: str = other, diffs: dict = diffs) -> str:
            c = entry["method_vs"][other][m]
            return (f"{METRIC_LABELS[m]} {_fmt(methods[METHOD][m]['mean'])} vs "
                    f"{_fmt(methods[other][m]['mean'])} ({_fmt(diffs[m], sign=True)}; above in "
                    f"{c['wins']}, tied in {c['ties']}, below in {c['losses']} of {c['runs']} "
                    "runs)")

        text = []
        if below:
            text.append(f"**below {SHORT[other].replace('**', '')}** on "
                        + "; ".join(part(m) for m in below))
        if tied:
            text.append(f"**tied with {SHORT[other].replace('**', '')}** on "
                        + "; ".join(part(m) for m in tied))
        reason = ""
        if not below:
            pass
        elif other == "centralized":
            reason = (" Expected: the centralized CNN trains on the whole official training "
                      "split pooled, without the institutions' label skew and without their "
                      "imaging-device profiles (so under the test split's own conditions), and "
                      "early-stops on the official validation split; it is the upper bound.")
        elif below == ["accuracy"] and decision == "balanced":
            reason = (" Accuracy only: the method decides at the pooled-validation operating "
                      "point (Youden's J, `decision=\"balanced\"`), which gives up "
                      "majority-class hits for minority-class recall on an imbalanced test "
                      "split, while this comparison decides by argmax.")
        elif other == "alone_best":
            reason = (" The best institution is picked per metric on the test split itself (an "
                      "oracle no consortium has); the level-2 mean also averages in the weaker "
                      "local ensembles.")
        elif other == "fedavg_cnn":
            reason = (" FedAvg trains one CNN on every institution's data for its whole budget "
                      "of rounds; in the method only institutions whose capacity affords an "
                      "architecture learn it together, and the weaker architectures (logistic, "
                      "MLP) still enter the ensemble.")
        elif other in ("ensemble_only", "alone_mean"):
            reason = (" The federated groups did not lift the local ensembles enough, with "
                      "this budget of rounds, to change the level-2 result.")
        if below and other != "centralized" and decision == "balanced" \
                and below != ["accuracy"] and set(below) & {"accuracy", "balanced_accuracy"}:
            reason += (" Labels: the method decides at an operating point chosen on the small "
                       "pooled validation shares (Youden's J), while this comparison decides by "
                       "argmax")
            if shift is not None and shift > 0.05:
                reason += (f"; the test split's class mix differs from the training mix (by up "
                           f"to {shift:.1%} of a class), so that point need not be the test "
                           "optimum")
            reason += "."
        out.append("- The method is " + "; it is ".join(text) + "." + reason)
    for other in COMPARED:
        vs = entry["method_vs"][other]
        mixed = [m for m in METRICS if vs[m]["mean_difference"] is not None
                 and vs[m]["mean_difference"] > 0 and vs[m]["wins"] < vs[m]["runs"]]
        if mixed:
            out.append(f"- Above {SHORT[other].replace('**', '')} on average but not in every "
                       "run: " + "; ".join(
                           f"{METRIC_LABELS[m]} {_fmt(vs[m]['mean_difference'], sign=True)} "
                           f"(above in {vs[m]['wins']} of {vs[m]['runs']} runs)"
                           for m in mixed) + ".")
    return out


def _alpha_refs(references: list[dict], alpha: float) -> list[dict]:
    return [r for r in references if r["dirichlet_alpha"] in (None, alpha)]


def render_plot(document: dict, path: Path) -> None:
    """Bars: methods x metrics per data set, mean over all runs of the document, error bars
    from min to max over them (seeds, and cells when the grid has several)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = document["aggregates"]["by_dataset"]
    fig, axes = plt.subplots(1, len(entries), figsize=(7.5 * len(entries), 4.4), squeeze=False)
    colours = {"accuracy": "#4c72b0", "balanced_accuracy": "#55a868", "auc": "#c44e52"}
    width = 0.26
    lowest = min((e["min"] for entry in entries for meth in METHODS for m in METRICS
                  if (e := entry["methods"][meth][m])["min"] is not None), default=0.0)
    bottom = max(0.0, math.floor((lowest - 0.05) * 10) / 10)   # one scale for every panel
    for ax, entry in zip(axes[0], entries, strict=True):
        x = np.arange(len(METHODS))
        for k, m in enumerate(METRICS):
            s = [entry["methods"][meth][m] for meth in METHODS]
            mean = np.array([np.nan if e["mean"] is None else e["mean"] for e in s])
            low = np.array([np.nan if e["min"] is None else e["min"] for e in s])
            high = np.array([np.nan if e["max"] is None else e["max"] for e in s])
            ax.bar(x + (k - 1) * width, mean, width, color=colours[m], label=METRIC_LABELS[m],
                   yerr=np.vstack([mean - low, high - mean]), capsize=2,
                   error_kw={"elinewidth": 0.8})
        ax.set_xticks(x, [SHORT[meth].replace("**", "") for meth in METHODS], rotation=30,
                      ha="right", fontsize=8)
        ax.set_ylim(bottom, 1.0)
        ax.axhline(0.5, color="grey", linewidth=0.6, linestyle=":")
        ax.grid(axis="y", alpha=0.3)
        cells = len([c for c in document["aggregates"]["cells"]
                     if c["dataset"] == entry["dataset"]])
        ax.set_title(f"{entry['dataset_name']}: {_runs(entry['runs'])} "
                     f"({cells} cell{'s' if cells > 1 else ''}, seeds {entry['seeds'][0]}-"
                     f"{entry['seeds'][-1]})", fontsize=9)
    axes[0][0].set_ylabel("test split (mean; bars min-max over runs)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    grid = document["grid"]
    fig.suptitle(f"{grid['label']} grid, preset {grid['preset']}, "
                 f"{document['started'][:10]}", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def split_shares(dataset: str) -> tuple[dict[str, np.ndarray], tuple[str, ...]] | str:
    """The share of each class in the train, val and test splits (with the class names), or
    why the file cannot be read now."""
    from efl_toolkit.data import load_dataset

    try:
        ds = load_dataset(dataset)
    except Exception as error:  # shown on the page, not hidden
        return f"cannot load {dataset} now ({type(error).__name__}: {error})"
    shares = {}
    for split in ("train", "val", "test"):
        labels = getattr(ds, split).labels
        shares[split] = np.bincount(labels, minlength=ds.n_classes) / max(1, len(labels))
    return shares, tuple(ds.class_names)


def class_mix(dataset: str) -> str:
    """One line: the share of each class in the train, val and test splits of ``dataset``."""
    found = split_shares(dataset)
    if isinstance(found, str):
        return f"Class mix: {found}."
    shares, names = found
    parts = [f"{split} " + " / ".join(f"{x:.1%}" for x in share)
             for split, share in shares.items()]
    return (f"Class mix ({' / '.join(names) if names else 'classes 0..C-1'}): "
            + "; ".join(parts) + ".")


def mix_shift(dataset: str) -> float | None:
    """Largest difference of a class's share between the test and the training split."""
    found = split_shares(dataset)
    if isinstance(found, str):
        return None
    shares, _ = found
    return float(np.max(np.abs(shares["test"] - shares["train"])))


def _reduction(grid: dict) -> list[str]:
    """Where the grid differs from its mode's default grid, and the note given for it."""
    lines = []
    default = grid.get("mode_default") or {}
    changed = [f"{key} {', '.join(map(str, grid[key]))} instead of "
               f"{', '.join(map(str, default[key]))}"
               for key in ("datasets", "seeds", "alphas", "institutions")
               if key in default and grid[key] != default[key]]
    if changed:
        lines.append(f"- **differs from the default {grid['mode']} grid**: " + "; ".join(changed))
    if grid.get("note"):
        lines.append(f"- note: {grid['note']}")
    return lines


def render_section(document: dict, plot: Path | None, page: Path) -> list[str]:
    grid, mach = document["grid"], document["machine"]
    runs = document["runs"]
    walls = [r["wall_seconds"] for r in runs]
    lines = [f"## {grid['label']} grid ({grid['preset']} preset)", ""]
    if document["status"] != "ok":
        errors = document.get("errors") or ([document["error"]] if document.get("error")
                                            else [])
        lines += [f"**Status: {document['status']}.** {len(runs)} of {grid['n_runs']} runs "
                  "finished; the tables below cover only those."
                  + (" Failed runs:" if errors else ""), ""]
        lines += [f"- run {e['run']}, `{e['cell']}`: `{e['type']}: {e['message'][:300]}`"
                  for e in errors]
        lines += [""]
    overrides = grid.get("config_overrides") or {}
    lines += [
        f"- date: {document['started']} to {document['finished'] or 'unfinished'} (UTC)",
        f"- machine: {mach['cpus']} CPUs ({mach['cpus_usable']} usable), {mach['platform']}, "
        f"Python {mach['python']}, JAX {mach['jax']} ({mach['jax_backend']})",
        f"- load average (1, 5, 15 min) at start {document['load_average_start']}, at end "
        f"{document['load_average_end']} (other jobs shared the machine)",
        f"- git: `{(document['git'] or {}).get('commit')}`"
        + (" (working tree had uncommitted changes)" if (document["git"] or {}).get("dirty")
           else ""),
        f"- command: `{document['command']}`",
        f"- grid: data sets {', '.join(grid['datasets'])}; seeds "
        f"{', '.join(map(str, grid['seeds']))}; Dirichlet alpha "
        f"{', '.join(map(str, grid['alphas']))}; institutions "
        f"{', '.join(map(str, grid['institutions']))}; method {grid['method']}"
        + (f"; config overrides `{json.dumps(overrides)}`" if overrides else ""),
        *_reduction(grid),
        "- secure vs plaintext: largest |difference| of the opened probabilities over all runs "
        + (f"{max(r['secure']['max_abs_diff_vs_plaintext'] for r in runs):.1e}" if runs
           else "n/a") + " (fixed-point encoding of the secure round)",
        f"- {_runs(len(runs))}, wall time {document.get('wall_seconds', 0) / 60:.1f} min; per run "
        + (f"{np.mean(walls):.0f} s mean, {min(walls):.0f}-{max(walls):.0f} s" if walls
           else "n/a") + " (the first run of a process includes JAX compilation)",
        "",
    ]
    if plot is not None and plot.exists():
        rel = os.path.relpath(plot, page.parent)
        lines += [f"![{grid['label']} grid: methods x metrics]({rel})", "",
                  "*Mean over the runs of each data set; error bars span min to max.*", ""]
    decision = runs[0]["decision"] if runs else "balanced"
    for entry in document["aggregates"]["by_dataset"]:
        refs = document["references"].get(entry["dataset"], [])
        alphas = sorted({c["dirichlet_alpha"] for c in document["aggregates"]["cells"]
                         if c["dataset"] == entry["dataset"]})
        single_alpha = alphas[0] if len(alphas) == 1 else None
        lines += [f"### {entry['dataset_name']}: {_runs(entry['runs'])}", "",
                  class_mix(entry["dataset"]), "",
                  "Mean ± sample std [min, max] over "
                  + ("seeds" if len([c for c in document["aggregates"]["cells"]
                                     if c["dataset"] == entry["dataset"]]) == 1 else
                     "every run (seeds x cells) of this data set") + ".", ""]
        lines += method_table(entry, refs if single_alpha is not None else
                              [r for r in refs if r["dirichlet_alpha"] is None],
                              alpha=single_alpha)
        lines += ["", "The method (hierarchical secure) minus each comparison, mean over runs:",
                  ""]
        lines += comparison_table(entry)
        shift = mix_shift(entry["dataset"])
        found = findings(entry, refs, decision, shift)
        lines += [""] + (found or ["- The method is above every comparison on every metric "
                                   "(mean over these runs)."]) + [""]
    by_alpha = document["aggregates"]["by_dataset_alpha"]
    if len(by_alpha) > len(document["aggregates"]["by_dataset"]):
        lines += ["### Per data set and alpha (all institutions counts, all seeds)", ""]
        for entry in by_alpha:
            refs = _alpha_refs(document["references"].get(entry["dataset"], []),
                               entry["dirichlet_alpha"])
            lines += [f"**{entry['dataset_name']}, alpha {entry['dirichlet_alpha']}** "
                      f"({_runs(entry['runs'])})", ""]
            lines += method_table(entry, refs, alpha=entry["dirichlet_alpha"]) + [""]
            lines += (findings(entry, refs, decision, mix_shift(entry["dataset"]))
                      or ["- The method is above every comparison on every metric (mean)."])
            lines += [""]
    cells = document["aggregates"]["cells"]
    if len(cells) > 1:
        lines += ["<details><summary>Every cell (mean ± std [min, max] over seeds)</summary>",
                  ""]
        for entry in cells:
            lines += [f"**{entry['dataset_name']}, alpha {entry['dirichlet_alpha']}, "
                      f"{entry['n_institutions']} institutions** (seeds "
                      f"{', '.join(map(str, entry['seeds']))})", ""]
            lines += method_table(entry, []) + [""]
        lines += ["</details>", ""]
    goals = goal_lines(document["goals"] or {})
    if goals:
        lines += ["### Goal checks (computed by the script)", "", "```", *goals, "```", ""]
    return lines


HEADER = """# Results: accuracy of the method against its comparisons

Generated by `benchmarks/accuracy.py` (every figure on this page comes from its JSON output; none
is typed by hand). Each run is one `run_experiment(config, method="hierarchical")`, which trains
and scores, on the official test split of the data set, every method below:

{methods}

*Published* rows are figures from OTHER set-ups, printed for orientation only: MedMNIST v2's
ResNet-18 (28) is one deeper network trained centrally on the whole training split for 100
epochs; ChainLearn's ensemble uses 224 px images and pretrained networks. They are not
comparable runs. The centralized row is this toolkit's upper bound: the small CNN on the whole
official training split, without the institutions' label skew or imaging-device profiles (the
test split has none either). Balanced accuracy is the mean recall over classes. The method's
labels come from its level-2 decision rule (`decision="balanced"`: the operating point with the best
TPR - FPR on the pooled validation shares, computed by the committee); every other method
decides by argmax, so accuracy and balanced accuracy partly measure that choice; AUC does not.

Regenerate: `python benchmarks/accuracy.py --quick --out /tmp/acc_quick.json`, the full grid
without `--quick`, the goal check with `--preset paper`, then
`python benchmarks/accuracy.py --from-json <files> --markdown docs/results.md`.
"""


def render_page(documents: list[tuple[dict, Path | None]], page: Path,
                notes: list[str] | None = None) -> str:
    methods = "\n".join(f"- **{SHORT[k].replace('**', '')}** (`{k}`): {v}"
                        for k, v in METHODS.items())
    lines = [HEADER.format(methods=methods)]
    for note in notes or []:
        lines += [note, ""]
    summary = []
    for document, _ in documents:
        label = document["grid"]["label"]
        for line in goal_lines(document["goals"] or {}):
            if not line.startswith(" "):
                summary.append(f"- {label} grid: {line}")
        if document["status"] != "ok":
            summary.append(f"- {label} grid: **{document['status']}** "
                           f"({len(document['runs'])} of {document['grid']['n_runs']} runs)")
    if summary:
        lines += ["## Goal checks at a glance", "",
                  "Computed by the script from the runs below (details in each section).", "",
                  *summary, ""]
    for document, plot in documents:
        lines += render_section(document, plot, page)
    return "\n".join(lines).rstrip() + "\n"


def plot_path(args: argparse.Namespace, document: dict) -> Path | None:
    if args.plot and not args.from_json:
        return args.plot
    if args.markdown:
        return args.markdown.parent / f"results_{document['grid']['label']}.png"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([sys.executable, *(sys.argv if argv is None else
                                            [sys.argv[0], *argv])])
    if args.from_json:
        documents = []
        for name in args.from_json:
            try:
                document = json.loads(Path(name).read_text())
            except (OSError, json.JSONDecodeError) as error:
                print(f"benchmarks/accuracy.py: error: cannot read {name}: {error}",
                      file=sys.stderr)
                return 2
            if document.get("schema") != SCHEMA:
                print(f"benchmarks/accuracy.py: error: {name} is not a {SCHEMA} document",
                      file=sys.stderr)
                return 2
            # the figures are recomputed from the runs, so the page follows this script
            document["aggregates"] = aggregate(document["runs"])
            document["references"] = {r["dataset"]: references_for(r["dataset_name"])
                                      for r in document["runs"]}
            document["goals"] = goal_checks(document)
            documents.append(document)
    else:
        grid = resolve_grid(args)
        try:
            documents = [run_grid(grid, command, args.out, keep_going=args.keep_going)]
        except BenchmarkError as error:
            print(json.dumps(error.document, indent=1))
            print(f"benchmarks/accuracy.py: error: {error}", file=sys.stderr)
            return 1
    rendered = []
    for document in documents:
        plot = plot_path(args, document)
        if plot is not None and document["runs"]:
            render_plot(document, plot)
        rendered.append((document, plot))
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(render_page(rendered, args.markdown))
    for document in documents:
        for line in goal_lines(document["goals"] or {}):
            print(line, file=sys.stderr)
    if not args.from_json:
        print(json.dumps(documents[0], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
