# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     formats: ipynb,scripts//py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · The end-to-end experiment
#
# Notebooks 01 to 05 took the system apart: data and institutions, heterogeneous local training,
# ensembles in the clear, the secure ensemble with MPyC, and the ledger; notebook 08 looks
# inside one federated group. Here the whole **hierarchical method** runs together, in one call
# — exactly what `efl demo` does from a terminal:
#
# ```
# MedMNIST ─▶ institutions ─▶ each trains its own models alone ─▶ ledger: MODEL_COMMIT
#                │  (the lower bound, and the first design's level 1)
#                ▼
#   federated groups: every architecture trained by FedAvg among the institutions that
#   afford it; each round's weighted sum by a committee of compute parties (secure
#   aggregation); every round a MODEL_COMMIT whose parent is the previous round's version
#                │  keepers may fine-tune on their own share
#                ▼
#   level 1: each institution's local ensemble (group models, fine-tuned or alone)
#   level-2 weights: consortium validation AUC (histograms summed by the committee)
#                ▼
#   level 2: secure weighted mean by the committee ─▶ ledger: ROUND_START, ROUND_RESULT
#                ▼
#   baselines (centralized, FedAvg, each alone, ensemble only) ─▶ report.json, report.md, plots
# ```
#
# **In this notebook you will learn**
#
# - how to run the whole experiment with `run_experiment` (or `efl demo`), and what it writes;
# - which federated groups formed, how many rounds each ran and which round it kept;
# - how to read the report: the hierarchical method against the first design
#   (`ensemble_only`: every institution alone, weighted by its own validation AUC), every
#   institution alone, FedAvg and the centralized bound — with balanced accuracy and AUC;
# - how to check that the secure round opened exactly what the plaintext computation predicts;
# - how to audit the run on its ledger: verify it, trace the level-2 result back to its model
#   versions, and follow a group's model line round by round (lineage), also in the explorer;
# - what this run protects, and what it does not (the threat model).

# %%
# %matplotlib inline
print("loading JAX, Flax and the toolkit: 2-5 s the first time ...", flush=True)
from efl_toolkit.config import get_config
from efl_toolkit.course import check, show, workdir
from efl_toolkit.course.viz import plot_metric_comparison, plot_rounds
from efl_toolkit.data import plot_class_distribution
from efl_toolkit.explorer import ExplorerWidget
from efl_toolkit.explorer.ledger_backend import LedgerBackend
from efl_toolkit.federation.level2 import describe_weights, resolve_rule
from efl_toolkit.federation.record import group_model_id
from efl_toolkit.ledger import Audit, ModelRegistry, hash_array, open_ledger
from efl_toolkit.ledger.teaching import run_efl
from efl_toolkit.pipeline import ROUND_ID, run_experiment
from efl_toolkit.report import (
    headline,
    metric_rows,
    plot_confusion,
    plot_model_versions,
    plot_roc_curves,
)
from efl_toolkit.secure.measure import agreement

config = get_config()
out_dir = workdir("demo")   # in this session's run folder, deleted when the kernel shuts down
print(f"preset {config.name}: {config.n_institutions} institutions, {config.dataset}, "
      f"method {config.method}, {config.train.epochs} epochs alone at most, {config.rounds} "
      f"federated rounds at most, committee of {config.n_parties}, seed {config.seed}")
print(f"outputs go to {out_dir}")

# %% [markdown]
# ## 1. Run it
#
# One call, seven stages; the progress bars show each model training alone, then each group's
# federated rounds. The same run from a terminal:
# `efl demo --preset classroom_fast --out efl_out` (add `--method ensemble_only` for the first
# design).
#
# *This cell takes about 20 s on a quiet 2-core machine (classroom preset, JAX compilation
# cache warm), and 80-140 s on a busy one; the progress bars show each stage.*

# %%
result = run_experiment(config, out_dir)

# %% [markdown]
# ## 2. What it wrote
#
# `report.json` holds every number (its keys are a contract other tools rely on),
# `report.md` the same as a readable page, five PNG plots, and the ledger with the model
# parameters as content-addressed artifacts beside it.

# %%
for path in sorted(out_dir.iterdir()):
    print(f"{path.name:<26} {'folder' if path.is_dir() else f'{path.stat().st_size:>8} bytes'}")
print(headline(result.report, out_dir))
show(result.report["timings"], digits=1, caption="seconds per stage")

# %% [markdown]
# ## 3. The institutions
#
# Each institution's capacity decides which architectures it keeps in its local ensemble; its
# share is label-skewed and seen through its own imaging device. Alone, it trains those models
# on its own share (`alone_auc`). In the method, each of its models comes from the federated
# group of that architecture — the group model, or the copy it fine-tuned on its own share if
# that improved its own validation loss — or from training alone when nobody else affords the
# architecture (`sources`).

# %%
show([
    {"id": inst["id"], "capacity": inst["capacity"], "device": inst["device"],
     "n_train": inst["n_train"], "class_counts": inst["class_counts"],
     "architectures": inst["hierarchical"]["architectures"],
     "sources": inst["hierarchical"]["sources"], "alone_auc": inst["test_auc"],
     "method_auc": inst["hierarchical"]["auc"]}
    for inst in result.report["institutions"]])
plot_class_distribution(result.institutions, result.dataset.class_names)

# %% [markdown]
# ## 4. The federated groups
#
# One group per architecture somebody keeps; its members are all institutions that afford
# training it (notebook 08 follows one group in detail). Each group ran up to
# `config.rounds` rounds under secure aggregation and kept the round with the best
# **consortium validation AUC** (the members' validation shares pooled by the committee); a
# group of one trained alone.

# %%
show([
    {"architecture": g["architecture"], "members": ", ".join(g["members"]),
     "keepers": ", ".join(g["keepers"]),
     "rounds": "alone" if g["alone"] else g["rounds"], "kept_round": g["best_round"],
     "best_val_auc": max(g["consortium_val_auc"], key=lambda v: v or 0, default=None),
     "fine_tuned": ", ".join(k for k, v in g["fine_tuned"].items() if v) or "-",
     "version": g["version"] or "-"}
    for g in result.report["groups"]])

# %% [markdown]
# The group with the most members, round by round:

# %%
widest = max((g for g in result.groups.values() if g.rounds),
             key=lambda g: len(g.group.members))
plot_rounds([{"round": r.round, "consortium validation AUC": r.val_auc} for r in widest.rounds],
            metric="consortium validation AUC",
            title=f"group '{widest.group.architecture}' ({', '.join(widest.group.members)})")

# %% [markdown]
# ## 5. The level-2 weights
#
# In the method each institution's weight is its local ensemble's AUC on the validation shares
# of **all** institutions, pooled by the committee from score histograms (no institution
# reveals its own score), minus 0.5 (chance), normalized to sum 1: `w_i = (AUC_i - 0.5) /
# sum_j (AUC_j - 0.5)`. An AUC at or below chance keeps only a token `1e-6`, so its weight
# prints as **0.00**: that institution's local ensemble ranks the pooled validation images no
# better than a coin, and it gets (almost) no say. The first design used the AUC on the
# institution's **own** small, skewed share, which can give a good institution almost no say.

# %%
show([
    {"institution": name, "consortium_val_auc": result.validation_auc[name],
     "method_weight": result.weights[name]}
    for name in result.weights])
print(describe_weights(result.weights, resolve_rule(result.config.rule, result.config.method),
                       result.validation_auc))

# %% [markdown]
# ## 6. The scores
#
# Every score is on the official test split, the shared query set. Remember notebook 03's
# warning: the split is small and imbalanced, so accuracy flatters a model that answers the
# majority class; **balanced accuracy** (mean recall over classes) and **AUC** are the fairer
# yardsticks, and a few hundredths are a handful of images. The method decides labels at an
# operating point chosen on the pooled validation shares (the best `TPR - FPR`, computed by the
# committee), not at the 0.5 argmax that leaves most baselines at balanced accuracy 0.5.

# %%
rows = metric_rows(result)
show(rows, ["name", "kind", "accuracy", "balanced_accuracy", "auc"])
plot_metric_comparison(rows, metric=["balanced_accuracy", "auc"], reference={"chance": 0.5})

# %% [markdown]
# The comparison that matters, from `report.json`: the hierarchical method (secure) against the
# first design, the best institution alone (chosen by peeking at the test split: a demanding
# bar), FedAvg on a homogeneous CNN and the centralized upper bound.

# %%
ens, base = result.report["ensembles"], result.report["baselines"]
headline_rows = [
    {**ens["secure_mean"], "name": f"{config.method} (secure, committee)"},
    {**ens["ensemble_only"], "name": "ensemble_only (first design)"},
    {**base["best_single_institution"],
     "name": f"best alone ({base['best_single_institution']['institution']})"},
    {**base["fedavg_cnn"], "name": "FedAvg (homogeneous cnn)"},
    {**base["centralized"], "name": "centralized cnn (pooled data)"},
]
show(headline_rows, ["name", "accuracy", "balanced_accuracy", "auc"])
for other in headline_rows[1:4]:
    print(f"{config.method} minus {other['name']}: balanced accuracy "
          f"{ens['secure_mean']['balanced_accuracy'] - other['balanced_accuracy']:+.3f}, "
          f"AUC {ens['secure_mean']['auc'] - other['auc']:+.3f}")

# %% [markdown]
# The ROC curves show the whole trade-off between missed and false alarms, not just one
# threshold; the confusion matrix shows which mistakes the secure ensemble makes at the
# method's operating point.

# %%
plot_roc_curves(result)

# %%
plot_confusion(result.secure_eval, result.dataset.class_names, "Secure ensemble, test split")

# %% [markdown]
# ## 7. Secure versus plaintext
#
# The level-2 round never saw the institutions' probabilities in the clear: each institution
# split its weighted, fixed-point probabilities into additive shares, one for each of the
# committee's compute parties, and the committee opened only the weighted mean. Did it open the
# right thing? Two checks:
#
# - against the **plaintext reference**, computed with the committee's own fixed-point
#   encoding: the labels and the mean must be *identical* (the same integers were added);
# - against the **float** weighted mean: the difference must stay under the fixed-point bound
#   `N · 2^-(f+1)`.

# %%
secure_facts = result.report["ensembles"]["secure_mean"]
show([secure_facts], ["committee", "threshold", "included", "dropped",
     "frac_bits", "max_abs_diff_vs_plaintext", "error_bound",
     "label_agreement", "seconds"], digits=8)
agreed = agreement(result.secure, result.level1_probs, result.weights)
show(agreed, digits=8, caption="secure round against the plaintext reference and the float mean")

# %%
# check: the secure mean is the plaintext fixed-point reference exactly, and the float mean
# within the bound
check(agreed["labels_equal_reference"] and agreed["max_abs_diff_vs_reference"] == 0.0,
      "secure labels and mean equal the plaintext fixed-point reference",
      f"max diff {agreed['max_abs_diff_vs_reference']:.2e}")
check(agreed["max_abs_diff_vs_float"] <= agreed["error_bound"],
      "secure mean within N·2^-(f+1) of the float weighted mean",
      f"{agreed['max_abs_diff_vs_float']:.2e} > {agreed['error_bound']:.2e}")

# %% [markdown]
# ## 8. The ledger: verify, log, lineage
#
# The run left a signed, hash-linked record. Anyone holding the file can verify it without any
# secret, from Python or from a shell:

# %%
done = run_efl("ledger", "verify", result.ledger_path)
print(f"$ efl ledger verify ledger.sqlite   -> exit code {done.returncode}")
print(done.stdout)
print("$ efl ledger log ledger.sqlite   (first lines)")
print("\n".join(run_efl("ledger", "log", result.ledger_path).stdout.splitlines()[:12]))

# %% [markdown]
# The level-2 round's **lineage** answers "which models produced this result?": the exact
# versions (SHA-256 of their parameters) listed in `ROUND_START` — the models in each
# institution's local ensemble, whether a group's global model, a fine-tuned copy or a model
# trained alone — and the hash of the opened mean in `ROUND_RESULT`. The mean we hold in
# memory must hash to the recorded value, and an auditor can list every transaction the result
# depends on: those versions and their ancestors, i.e. every earlier round of a group model
# used as is. (A fine-tuned copy is a new model line; its data summary names the group version
# it started from, `base_version`.)

# %%
with open_ledger(result.ledger_path) as view:
    lineage = ModelRegistry(view).lineage(ROUND_ID)
    deps = Audit(view).dependencies(lineage.round.result_hash)
protocol = lineage.round.protocol
print(f"{ROUND_ID}: {lineage.round.status}, coordinator {lineage.round.coordinator}, "
      f"protocol {protocol['protocol']} with {protocol['compute_parties']} compute parties "
      f"over {len(protocol['institutions'])} institutions")
show([{"used by": name, "model": v.model_id, "architecture": v.architecture,
       "version": v.version, "committed by": v.institution, "block": v.where.height}
      for name, per_inst in result.versions.items()
      for v in lineage.versions if v.version in per_inst.values()])
print("the opened mean matches the recorded hash:",
      hash_array(result.secure.mean) == lineage.round.result_hash)
print(f"the result depends on {len(deps.ancestors)} model versions (with their ancestors) of "
      f"{deps.institutions}, recorded in {len({w.height for w in deps.transactions})} blocks")

# %%
# check: the ledger verifies, and the round's lineage reaches every model version the
# institutions' local ensembles used
used = {version for per_inst in result.versions.values() for version in per_inst.values()}
recorded = {v.version for v in lineage.versions}
check(done.returncode == 0, "efl ledger verify accepts the run's ledger", done.stdout.strip())
check(used <= recorded, "the round's lineage names every model version used at level 1",
      f"missing {sorted(v[:12] for v in used - recorded)}")
check(hash_array(result.secure.mean) == lineage.round.result_hash,
      "the opened mean hashes to the ROUND_RESULT on the ledger")

# %% [markdown]
# Each group's global model is its own model line on the ledger (`group-<architecture>`): one
# version per round, each the child of the previous round's version, committed by the group's
# coordinator with the round's participants and the hash of the aggregated update. The widest
# group's line, oldest first:

# %%
with open_ledger(result.ledger_path) as view:
    registry = ModelRegistry(view)
    line = registry.history(model_id=group_model_id(widest.group.architecture))[::-1]
show([{"round": v.metrics["round"], "version": v.version, "parent": v.parent or "-",
       "participants": ", ".join(v.data_summary["participants"]),
       "consortium_val_auc": v.metrics.get("consortium_val_auc"),
       "kept": v.version == widest.version, "block": v.where.height}
      for v in line])

# %%
# check: one version per round, each the child of the previous round's version
check([v.metrics["round"] for v in line] == [r.round for r in widest.rounds],
      f"group '{widest.group.architecture}' has one ledger version per round")
check(all(child.parent == parent.version for parent, child in zip(line, line[1:],
                                                                  strict=False)),
      "each round's version is the child of the previous round's")

# %%
plot_model_versions(result.ledger_path)

# %% [markdown]
# ## 9. The explorer
#
# The same ledger, interactively: blocks and their transactions, the institutions, the model
# version graph, search by hash prefix, and **Verify chain**. (The widget needs a live kernel:
# re-run the cell if you see only text.)

# %%
explorer = ExplorerWidget(LedgerBackend(result.ledger_path,
                                        scratch_dir=workdir("explorer-scratch")),
                          refresh_seconds=None)
explorer

# %% [markdown]
# ## 10. What this run protects, and what it does not
#
# - **Protected:** each institution's data never leaves it. Its model parameters (in every
#   federated round), its validation statistics and its level-2 probabilities reach the
#   committee only as additive shares: up to `t < M/2` colluding compute parties (`t` is in the
#   table of section 7) see uniformly random numbers and learn nothing beyond what is opened —
#   each round's averaged group model, the pooled validation histograms, the weighted mean —
#   provided they follow the protocol (*passive*, semi-honest adversaries, honest majority).
# - **Not protected:** an institution that lies — trains on poisoned data, sends a made-up
#   update or made-up probabilities — is not stopped by MPC; notebook 07 shows what the
#   weights and the ledger can and cannot do about it. What is opened is public by design (the
#   group models are shared with the consortium for scoring). A member whose update is NaN or
#   wrongly shaped is excluded, and one that drops out of a round is left out; both are
#   recorded (notebook 08). A compute party that dies fails the round, recorded as
#   `ROUND_FAILED` for level 2.
# - **Simulated here:** one machine plays every institution, every compute party and holds
#   every signing key, so the ledger shows tamper *evidence* and attribution, not a distributed
#   consensus; across machines each institution runs `efl share`, each compute host
#   `efl party --committee`, and each institution keeps its own key (`docs/secure.md`).

# %% [markdown]
# ## Summary
#
# - `run_experiment(config, out_dir)` (or `efl demo`) runs the whole method: partition, every
#   institution alone, ledger commits, federated groups under secure aggregation, level-2
#   weights from a consortium validation AUC, a secure level-2 round by a committee of
#   compute parties, baselines, and `report.json` / `report.md` / plots.
# - `report["groups"]` lists every group: members, keepers, rounds run, the round kept, who
#   fine-tuned, and the kept version on the ledger.
# - The report puts the hierarchical method next to the first design (`ensemble_only`), every
#   institution alone, FedAvg and the centralized bound, with balanced accuracy and AUC; read
#   small differences on a small test split with care.
# - The secure mean equals the plaintext fixed-point reference exactly, and the float mean
#   within `N · 2^-(f+1)`.
# - The ledger verifies from Python or `efl ledger verify`; the level-2 round's lineage names
#   the exact model versions behind its result, and each group's model line is a chain of
#   rounds, each the parent of the next.
# - MPC hides inputs from honest-but-curious compute parties; it does not make a dishonest
#   institution honest.
#
# ## Exercises
#
# 1. Run the same experiment from a terminal: `efl demo --out efl_out`, then open
#    `efl_out/report.md`. Are the numbers the same as here? Why (think of the seed)?
# 2. Run the first design: `run_experiment(get_config(method="ensemble_only"), out)`. Which
#    keys of `report.json` change, how many blocks does the ledger have, and how do its
#    scores compare with the hierarchical run's `ensemble_only` entry?
# 3. Run with `get_config(dirichlet_alpha=0.1)` (stronger label skew). Which institutions lose
#    most alone, and does the hierarchical method still beat the best of them, FedAvg and the
#    first design? Try seeds 1 and 2 as well before drawing a conclusion.
# 4. Run with `get_config(n_parties=5)`: a committee of five compute parties. What changes in
#    the threshold `t` and in the time — and what does not change in the result?
# 5. Compare each institution's weight in the first design (its own validation AUC, see
#    `efl_toolkit.federation.level2.level2_weights`) with `result.weights`. Which institution
#    gains most say, and why can one small, skewed validation share mislead?
# 6. In the explorer, search for the first characters of the round's result hash, and follow
#    it to the model versions it depends on; then follow one group's line back to round 1.
