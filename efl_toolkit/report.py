"""The experiment report: ``report.json`` (the contract of docs/design.md), ``report.md`` and plots.

Example:
    >>> from efl_toolkit.report import REQUIRED_KEYS
    >>> sorted(REQUIRED_KEYS)
    ['baselines', 'dataset', 'ensembles', 'institutions', 'ledger', 'timings']
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve
from sklearn.preprocessing import label_binarize

from efl_toolkit.atomic import write_bytes_atomic, write_text_atomic
from efl_toolkit.ensemble import argmax_labels, combine
from efl_toolkit.federation.level2 import describe_weights, resolve_rule
from efl_toolkit.ledger import open_ledger
from efl_toolkit.ledger.version_graph import plot_model_versions
from efl_toolkit.models.capacity import architectures_by_capacity
from efl_toolkit.plotting import legend_outside, majority_share, save_figure
from efl_toolkit.training import EvaluationResult, evaluate

if TYPE_CHECKING:
    from efl_toolkit.pipeline import ExperimentResult

REQUIRED_KEYS = ("dataset", "institutions", "ensembles", "baselines", "ledger", "timings")
PLOTS = ("class_distribution.png", "metrics.png", "roc_curves.png", "confusion_matrix.png",
         "model_versions.png")


def _num(value) -> float | None:
    """JSON-safe float (NaN becomes ``None``)."""
    value = float(value)
    return None if math.isnan(value) else round(value, 6)


def _scores(evaluation: EvaluationResult) -> dict:
    return {"accuracy": _num(evaluation.accuracy), "auc": _num(evaluation.auc),
            "balanced_accuracy": _num(evaluation.balanced_accuracy)}


def best_single_institution(result: ExperimentResult) -> tuple[str, EvaluationResult]:
    """The institution whose level-1 ensemble scores best on the test split (accuracy, then AUC).

    This is an oracle choice (it peeks at the test split), so it is a demanding bar.
    """
    def key(inst_id: str) -> tuple[float, float]:
        test = result.alone[inst_id].test
        return (test.accuracy, -1.0 if math.isnan(test.auc) else test.auc)

    best = max(result.alone, key=key)
    return best, result.alone[best].test


def build_report(result: ExperimentResult, out_dir: str | Path, total_seconds: float) -> dict:
    """The ``report.json`` content (keys of docs/design.md, plus details)."""
    ds, secure = result.dataset, result.secure
    labels = ds.test.labels
    level1 = list(result.level1_probs.values()) or [r.test_probs for r in result.alone.values()]
    unweighted = combine(level1, "mean").probabilities
    vote = combine(level1, "vote").probabilities
    best_id, best = best_single_institution(result)
    if result.ledger_backend is not None:
        ledger = chain_ledger_block(result.ledger_backend, result.ledger_path, out_dir)
    else:
        view = open_ledger(result.ledger_path)
        try:
            ledger = {"backend": "embedded", "path": os.path.relpath(result.ledger_path, out_dir),
                      "height": view.height, "verified": bool(view.report.ok),
                      "head": view.head_hash, "n_transactions": view.report.n_txs,
                      "first_failure": None if view.report.ok else view.report.summary(),
                      "round": _round_summary(view)}
        finally:
            view.close()
    institutions = []
    for inst in result.institutions:
        alone = result.alone[inst.id]
        institutions.append({
            "id": inst.id, "architectures": list(alone.architectures), "n_train": inst.n_train,
            "n_val": inst.n_val, "capacity": inst.capacity.tier, "device": inst.device.name,
            "class_counts": inst.train.class_counts(ds.n_classes).tolist(),
            "test_accuracy": _num(alone.test.accuracy), "test_auc": _num(alone.test.auc),
            "test_balanced_accuracy": _num(alone.test.balanced_accuracy),
            "level2_weight": _num(result.weights[inst.id]),
            "versions": result.versions[inst.id],
            "models": {arch: _scores(ev)
                       for arch, ev in alone.per_model.items()},
            **_method_entry(result, inst.id),
        })
    rule = resolve_rule(result.config.rule, result.config.method)
    return {
        "dataset": ds.summary(),
        "config": {"preset": result.config.name, "seed": result.config.seed,
                   "n_institutions": result.config.n_institutions,
                   "partition": result.config.partition,
                   "dirichlet_alpha": result.config.dirichlet_alpha,
                   "device_skew": result.config.device_skew,
                   "epochs": result.config.train.epochs, "method": result.config.method,
                   "rule": result.config.rule, "level2_rule": rule,
                   "reveal": result.config.reveal, "decision": result.config.decision,
                   "architectures_by_capacity": architectures_by_capacity(
                       ds.image_shape, ds.n_classes, result.config.architectures),
                   "effective": dataclasses.asdict(result.config)},
        "institutions": institutions,
        "groups": [g.summary() for g in result.groups.values()],
        "ensembles": {
            "plaintext_mean": {**_scores(result.plaintext), "method": result.config.method,
                               "rule": "weighted mean of the local ensembles' probabilities",
                               "level2_rule": rule,
                               "weights": {k: _num(v) for k, v in result.weights.items()},
                               "weights_explained": describe_weights(
                                   result.weights, rule, result.validation_auc or None)},
            "secure_mean": {
                **_scores(result.secure_eval), "method": result.config.method,
                "parties": secure.n_parties, "committee": secure.committee,
                "included": list(secure.included), "dropped": list(secure.dropped),
                "threshold": secure.threshold, "reveal": secure.reveal, "level2_rule": rule,
                "frac_bits": secure.fixed_point.frac_bits,
                "error_bound": _num(secure.fixed_point.error_bound),
                "max_abs_diff_vs_plaintext": None if secure.mean is None else
                    float(np.max(np.abs(secure.mean - result.plaintext_probs))),
                "label_agreement": float(np.mean(secure.labels
                                                 == argmax_labels(result.plaintext_probs))),
                "seconds": round(secure.seconds, 3),
                "bytes_sent_per_party": [p.bytes_sent for p in secure.parties]},
            "ensemble_only": {**_scores(result.ensemble_only),
                              "rule": "each institution alone, weighted by its own validation "
                                      "AUC (the first design)"},
            "plaintext_unweighted_mean": _scores(evaluate(unweighted, labels, ds.n_classes,
                                                          warn=False)),
            "plaintext_majority_vote": _scores(evaluate(vote, labels, ds.n_classes, warn=False)),
        },
        "baselines": {
            "centralized": {**_scores(result.centralized.test), "architecture": "cnn",
                            "n_train": result.centralized.n_train},
            "best_single_institution": {**_scores(best), "institution": best_id},
            "fedavg_cnn": {**_scores(result.fedavg.final), "architecture": "cnn",
                           "rounds": len(result.fedavg.history)},
        },
        "ledger": ledger,
        "timings": {"total_seconds": round(total_seconds, 3),
                    **{f"{k}_seconds": v for k, v in result.seconds.items()}},
        "plots": list(PLOTS),
    }


def _method_entry(result: ExperimentResult, inst_id: str) -> dict:
    """An institution's local ensemble in the hierarchical method (after the groups)."""
    local = result.local.get(inst_id)
    if local is None or not hasattr(local, "sources"):
        return {}
    scores = evaluate(result.level1_probs[inst_id], result.dataset.test.labels,
                      result.dataset.n_classes, warn=False)
    return {"hierarchical": {"architectures": list(local.architectures),
                             "sources": list(local.sources), **_scores(scores),
                             "validation_auc": _num(result.validation_auc.get(inst_id,
                                                                              math.nan))}}


def chain_ledger_block(backend, path: str | Path, out_dir: str | Path) -> dict:
    """``report.json``'s ``ledger`` block for a chain backend (EVM): the same keys as the
    embedded ledger's (verified by re-reading its receipts and hashing every artifact), plus
    the engine's description (``rpc_url``, ``contract``, ``chain_id``...)."""
    verdict = backend.verify()
    n_events = sum(len(b.transactions) for b in (backend.block(h) for h in
                                                 range(backend.height() + 1)))
    return {**backend.describe(), "path": os.path.relpath(path, out_dir),
            "height": backend.height(), "verified": verdict.ok, "head": verdict.head,
            "n_transactions": n_events,
            "first_failure": None if verdict.ok else verdict.summary,
            "round": _round_summary(backend)}


def _round_summary(view) -> dict | None:
    rounds = view.rounds()
    if not rounds:
        return None
    last = rounds[-1]
    return {"round_id": last.round_id, "status": last.status, "result_hash": last.result_hash,
            "versions": list(last.versions)}


def metric_rows(result: ExperimentResult) -> list[dict]:
    """One row per model, institution, ensemble and baseline (for the bar chart and report.md)."""
    rows = []
    for inst_id, alone in result.alone.items():
        rows.append({"name": f"{inst_id} ({'+'.join(alone.architectures)})", "kind": "alone",
                     **_scores(alone.test)})
    rows += [
        {"name": "ensemble only (each alone)", "kind": "ensemble",
         **_scores(result.ensemble_only)},
        {"name": f"{result.config.method} (plaintext)", "kind": "ensemble",
         **_scores(result.plaintext)},
        {"name": f"{result.config.method} (secure, committee of {result.secure.n_parties})",
         "kind": "ensemble", **_scores(result.secure_eval)},
        {"name": "FedAvg (homogeneous cnn)", "kind": "baseline",
         **_scores(result.fedavg.final)},
        {"name": "centralized cnn (pooled data)", "kind": "baseline",
         **_scores(result.centralized.test)},
    ]
    return rows


def plot_roc_curves(result: ExperimentResult) -> Figure:
    """ROC curves of every institution, the secure ensemble and the centralized bound.

    Two classes: the curve of the positive class (label 1, named in the title from the
    dataset's class names); more: the micro-averaged one-vs-rest curve. The diagonal is chance.
    """
    labels, n_classes = result.dataset.test.labels, result.dataset.n_classes
    curves = {f"{i} alone": r.test_probs for i, r in result.alone.items()}
    if result.secure.mean is not None:  # reveal="labels" opens no scores to draw a curve of
        curves["secure ensemble"] = result.secure.mean
    curves["centralized"] = result.centralized.test_probs
    fig = Figure(figsize=(5.6, 4.6), layout="constrained")
    ax = fig.add_subplot()
    for name, probs in curves.items():
        if n_classes == 2:
            fpr, tpr, _ = roc_curve(labels, probs[:, 1])
        else:
            onehot = label_binarize(labels, classes=np.arange(n_classes))
            fpr, tpr, _ = roc_curve(onehot.ravel(), probs.ravel())
        style = {"lw": 2.4} if name == "secure ensemble" else {"lw": 1.2, "alpha": 0.8}
        ax.plot(fpr, tpr, label=name, **style)
    ax.plot([0, 1], [0, 1], ls="--", color="#555555", lw=1.2, label="chance (AUC 0.5)")
    names = result.dataset.class_names
    kind = (f"positive class: {names[1]!r} (label 1)" if n_classes == 2
            else "micro-average one-vs-rest")
    ax.set(xlabel="false positive rate (0 to 1)", ylabel="true positive rate (0 to 1)",
           title=f"ROC on the test split\n{kind}", xlim=(0, 1), ylim=(0, 1.01))
    legend_outside(ax)
    return fig


def plot_confusion(evaluation: EvaluationResult, class_names, title: str) -> Figure:
    """Confusion matrix (rows: true class, columns: predicted class) with counts."""
    matrix = evaluation.confusion_matrix
    size = max(3.6, 0.55 * len(class_names) + 2.2)
    fig = Figure(figsize=(size, size), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center",
                color="white" if count > matrix.max() / 2 else "black")
    ticks = np.arange(len(class_names))
    short = [name if len(name) <= 14 else name[:13] + "." for name in class_names]
    ax.set_xticks(ticks, short, rotation=45 if len(class_names) > 2 else 0, ha="right"
                  if len(class_names) > 2 else "center")
    ax.set_yticks(ticks, short)
    ax.set(xlabel="predicted class", ylabel="true class", title=f"{title} (counts)")
    return fig


def save_plots(result: ExperimentResult, out_dir: str | Path) -> list[Path]:
    """Writes every plot of :data:`PLOTS` as PNG into ``out_dir``; returns the paths."""
    from efl_toolkit.course.viz import plot_metric_comparison
    from efl_toolkit.data.plots import plot_class_distribution

    out = Path(out_dir)
    figures = {
        "class_distribution.png": plot_class_distribution(result.institutions,
                                                          result.dataset.class_names),
        "metrics.png": plot_metric_comparison(
            metric_rows(result), metric=["accuracy", "balanced_accuracy", "auc"],
            reference={"chance (AUC, balanced accuracy)": 0.5},
            majority=majority_share(result.dataset.test.labels),
            title=f"Test-split scores on {result.dataset.name}, higher is better"),
        "roc_curves.png": plot_roc_curves(result),
        "confusion_matrix.png": plot_confusion(result.secure_eval, result.dataset.class_names,
                                               "Secure ensemble, test split"),
        "model_versions.png": plot_model_versions(result.ledger_backend or result.ledger_path),
    }
    paths = []
    for name, fig in figures.items():
        paths.append(save_figure(fig, out / name))
    return paths


def _count(n: int, one: str, many: str | None = None) -> str:
    """``1 institution``, ``3 institutions``.

    Example:
        >>> _count(1, "colluding party", "colluding parties"), _count(3, "institution")
        ('1 colluding party', '3 institutions')
    """
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _cell(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _knobs_line(config: dict) -> str:
    """The researcher's knobs of a run, one line of ``report.md``."""
    effective = config.get("effective", {})
    archs = "; ".join(f"{tier} {' + '.join(names)}"
                      for tier, names in config.get("architectures_by_capacity", {}).items())
    return (f"Method `{config.get('method')}`, level-2 rule `{config.get('level2_rule')}`"
            f" (configured `{config.get('rule')}`), the committee opens "
            f"`{config.get('reveal')}`, decision `{config.get('decision')}`, partition "
            f"`{config.get('partition')}` (alpha {config.get('dirichlet_alpha')}), at most "
            f"{config.get('epochs')} epochs, {effective.get('rounds')} rounds; architectures "
            f"by capacity: {archs}.")


def report_markdown(report: dict) -> str:
    """A readable ``report.md`` rendering of ``report.json``."""
    ds, ens, base, led = (report["dataset"], report["ensembles"], report["baselines"],
                          report["ledger"])
    secure = ens["secure_mean"]
    lines = [
        f"# efl_toolkit experiment: {ds['name']}", "",
        f"{ds['n_train']} training images ({ds['channels']} channel(s), {ds['n_classes']} "
        f"classes) split among {_count(len(report['institutions']), 'institution')}; every "
        "score is on "
        f"the official test split ({ds['n_test']} images). Preset `{report['config']['preset']}`,"
        f" seed {report['config']['seed']}; the effective configuration is `config.effective` in "
        "report.json.", "",
        _knobs_line(report["config"]), "",
        "## Institutions (level 1: each trains what its capacity allows)", "",
        "| institution | capacity | device | models | n_train | weight | accuracy | AUC |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for inst in report["institutions"]:
        lines.append(f"| {inst['id']} | {inst['capacity']} | {inst['device']} | "
                     f"{' + '.join(inst['architectures'])} | {inst['n_train']} | "
                     f"{_cell(inst['level2_weight'])} | {_cell(inst['test_accuracy'])} | "
                     f"{_cell(inst['test_auc'])} |")
    if report.get("groups"):
        lines += ["", "## Federated groups (secure aggregation by the committee)", "",
                  "| architecture | members | kept by | rounds (best) | fine-tuned | version |",
                  "|---|---|---|---|---|---|"]
        for g in report["groups"]:
            rounds = "alone" if g["alone"] else f"{g['rounds']} ({g['best_round']})"
            tuned = ", ".join(k for k, v in g["fine_tuned"].items() if v) or "none"
            lines.append(f"| {g['architecture']} | {', '.join(g['members'])} | "
                         f"{', '.join(g['keepers'])} | {rounds} | {tuned} | "
                         f"`{(g['version'] or 'n/a')[:12]}` |")
    method = report["config"].get("method", "hierarchical")
    if ens["plaintext_mean"].get("weights_explained"):
        lines += ["", f"Level 2: {ens['plaintext_mean']['weights_explained']}."]
    lines += ["", "## Ensembles and baselines", "",
              "| method | accuracy | balanced accuracy | AUC |", "|---|---|---|---|"]
    named = [(f"{method}, secure (committee)", secure),
             (f"{method}, plaintext", ens["plaintext_mean"]),
             ("ensemble only (each alone, own-validation AUC weights)", ens["ensemble_only"]),
             ("plaintext unweighted mean", ens["plaintext_unweighted_mean"]),
             ("plaintext majority vote", ens["plaintext_majority_vote"]),
             (f"best single institution ({base['best_single_institution']['institution']})",
              base["best_single_institution"]),
             ("FedAvg, homogeneous cnn", base["fedavg_cnn"]),
             ("centralized cnn (pooled data, upper bound)", base["centralized"])]
    lines += [f"| {name} | {_cell(row['accuracy'])} | {_cell(row.get('balanced_accuracy'))} | "
              f"{_cell(row['auc'])} |" for name, row in named]
    lines += [
        "", "## Secure round", "",
        f"A committee of {secure['parties']} compute-party processes on 127.0.0.1 (additive "
        f"shares from the institutions, then MPyC's Shamir sharing; up to "
        f"{_count(secure['threshold'], 'colluding party', 'colluding parties')} learn nothing "
        f"but the opened {'mean' if secure['reveal'] == 'mean' else 'labels'}), "
        f"{_count(len(secure['included']), 'institution')} included"
        f"{' (dropped: ' + ', '.join(secure['dropped']) + ')' if secure['dropped'] else ''}, "
        f"{secure['frac_bits']} fractional bits: " + (
            "only the labels were opened" if secure['max_abs_diff_vs_plaintext'] is None else
            f"max |secure - plaintext| = {secure['max_abs_diff_vs_plaintext']:.2e} (bound "
            f"{secure['error_bound']:.2e})") + f", label agreement "
        f"{secure['label_agreement']:.3f}, {secure['seconds']:.2f} s.", "",
        "## Ledger", "",
        f"`{led['path']}`: height {led['height']}, {led['n_transactions']} signed transactions, "
        f"verified: **{led['verified']}**, head `{led['head'][:16]}...`. {_check_hint(led)}", "",
        "## Plots", "", *[f"![{p}]({p})" for p in report["plots"]], "",
        f"Total time {report['timings']['total_seconds']:.1f} s.", "",
    ]
    return "\n".join(lines)


def _check_hint(led: dict) -> str:
    """How to re-check the ledger (an in-process chain ended with the run)."""
    engine = "" if led.get("backend", "embedded") == "embedded" else \
        f" (EVM, contract `{led.get('contract')}`)"
    if led.get("backend") == "evm" and led.get("rpc_url") is None:
        return (f"Recorded{engine} on an in-process chain that ended with the run: use "
                "`--ledger evm:RPC_URL` to keep a chain to re-check.")
    return f"Check it{engine} with `efl ledger verify {led['path']}`."


def ledger_anchors(ledger_path: Path) -> dict:
    """What a verifier keeps out of band: the signed checkpoint note, the genesis hash and the
    institutions' verifier keys (``efl ledger verify --checkpoint/--genesis/--trusted-keys``)."""
    from efl_toolkit.ledger import open_ledger
    from efl_toolkit.ledger.checkpoint import verifier_key

    with open_ledger(ledger_path) as view:
        stored = view.stored_checkpoint()
        return {"checkpoint": stored.to_note() if stored is not None else None,
                "genesis": view.headers(0, 1)[0].hash,
                "verifier_keys": [verifier_key(i, k) for i, k in view.member_keys().items()]}


def save_probabilities(result: ExperimentResult, out_dir: str | Path) -> Path:
    """Writes ``probs.npz``: the test-split probabilities behind ``report.json``'s scores.

    Arrays (``n`` test queries, ``C`` classes): ``labels`` ``[n]`` (true classes),
    ``secure_scored`` ``[n, C]`` (the method's opened result as scored, after its decision
    rule), ``secure_opened`` ``[n, C]`` (the opened mean, or one-hot opened labels),
    ``secure_labels`` ``[n]`` (the labels the committee opened), ``plaintext_mean`` ``[n, C]``,
    ``ensemble_only`` ``[n, C]``, ``centralized`` ``[n, C]`` and ``alone/<institution>``
    ``[n, C]`` (each institution's local ensemble trained alone). Lets anyone recompute the
    report's figures independently (e.g. with scikit-learn).
    """
    from efl_toolkit.pipeline import opened_probabilities

    n_classes = result.dataset.n_classes
    opened = opened_probabilities(result.secure, n_classes)
    arrays = {"labels": result.dataset.test.labels, "secure_opened": opened,
              "secure_scored": opened if result.secure.mean is None else result.decide(opened),
              "secure_labels": result.secure.labels, "plaintext_mean": result.plaintext_probs,
              "centralized": result.centralized.test_probs,
              **{f"alone/{name}": res.test_probs for name, res in result.alone.items()}}
    if result.ensemble_only_probs is not None:
        arrays["ensemble_only"] = result.ensemble_only_probs
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    return write_bytes_atomic(Path(out_dir) / "probs.npz", buffer.getvalue())


def write_outputs(result: ExperimentResult, out_dir: str | Path, total_seconds: float) -> dict:
    """Writes the plots, ``probs.npz``, ``report.md`` and, last, ``report.json``; returns the
    report.

    Each report file is written atomically, and ``report.json`` (the run's "complete" mark)
    only after everything else: a run killed on the way never leaves a half report.
    """
    out = Path(out_dir)
    save_plots(result, out)
    save_probabilities(result, out)
    report = build_report(result, out, total_seconds)
    if result.ledger_backend is None:  # a chain's anchors are its node's (contract address)
        report["ledger"].update(ledger_anchors(Path(result.ledger_path)))
    write_text_atomic(out / "report.md", report_markdown(report))
    write_text_atomic(out / "report.json", json.dumps(report, indent=2) + "\n")
    return report


def headline(report: dict, out_dir: str | Path) -> str:
    """The few lines ``efl demo`` prints at the end."""
    ens, base = report["ensembles"], report["baselines"]
    best = base["best_single_institution"]
    return "\n".join([
        "",
        f"{ens['secure_mean'].get('method', 'secure')} ensemble (secure, committee of "
        f"{ens['secure_mean']['parties']}): accuracy {_cell(ens['secure_mean']['accuracy'])}, "
        f"balanced accuracy {_cell(ens['secure_mean']['balanced_accuracy'])}, "
        f"AUC {_cell(ens['secure_mean']['auc'])}",
        f"ensemble only (each alone): accuracy {_cell(ens['ensemble_only']['accuracy'])}, "
        f"balanced accuracy {_cell(ens['ensemble_only']['balanced_accuracy'])}, "
        f"AUC {_cell(ens['ensemble_only']['auc'])}",
        f"best single institution ({best['institution']}): accuracy {_cell(best['accuracy'])},"
        f" balanced accuracy {_cell(best['balanced_accuracy'])}, AUC {_cell(best['auc'])}",
        f"centralized upper bound: accuracy {_cell(base['centralized']['accuracy'])}, AUC "
        f"{_cell(base['centralized']['auc'])}; FedAvg cnn: accuracy "
        f"{_cell(base['fedavg_cnn']['accuracy'])}, balanced accuracy "
        f"{_cell(base['fedavg_cnn']['balanced_accuracy'])}, AUC {_cell(base['fedavg_cnn']['auc'])}",
        f"ledger height {report['ledger']['height']}, verified {report['ledger']['verified']}",
        f"report: {Path(out_dir) / 'report.json'} and report.md, plots in {out_dir}",
    ])
