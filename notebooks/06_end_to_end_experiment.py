# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     formats: ipynb,py:percent
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
# ensembles in the clear, the secure ensemble with MPyC, and the ledger. Here everything runs
# together, in one call — exactly what `efl demo` does from a terminal:
#
# ```
# MedMNIST ─▶ institutions ─▶ level 1: each trains its own models ─▶ ledger: MODEL_COMMIT
#                                   │ test-split probabilities
#                                   ▼
#              level 2: secure weighted mean, one MPyC process per institution
#                                   │ ledger: ROUND_START, ROUND_RESULT
#                                   ▼
#     baselines (centralized, FedAvg, each alone) ─▶ report.json, report.md, plots
# ```
#
# **In this notebook you will learn**
#
# - how to run the whole experiment with `run_experiment` (or `efl demo`), and what it writes;
# - how to read its report: every institution alone, the plaintext and secure ensembles, the
#   FedAvg and centralized baselines — in tables and plots;
# - how to check that the secure round opened exactly what the plaintext computation predicts;
# - how to audit the run on its ledger: verify it, read the model log, and trace the round's
#   result back to the model versions that produced it (lineage), also in the explorer;
# - what this run protects, and what it does not (the threat model).

# %%
# %matplotlib inline
import tempfile
from pathlib import Path

from efl_toolkit.config import get_config
from efl_toolkit.course.viz import format_table, plot_metric_comparison
from efl_toolkit.data import plot_class_distribution
from efl_toolkit.explorer import ExplorerWidget
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
out_dir = Path(tempfile.mkdtemp(prefix="efl-06-"))
print(f"preset {config.name}: {config.n_institutions} institutions, {config.dataset}, "
      f"{config.train.epochs} epochs at most, seed {config.seed}")
print(f"outputs go to {out_dir}")

# %% [markdown]
# ## 1. Run it
#
# One call, six stages; the progress bars show each model training. The same run from a
# terminal: `efl demo --preset classroom_fast --out efl_out`.

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
    print(f"{path.name:<24} {'folder' if path.is_dir() else f'{path.stat().st_size:>8} bytes'}")
print(headline(result.report, out_dir))

# %% [markdown]
# ## 3. The institutions
#
# Each institution trained what its capacity allows (level 1) on its own, label-skewed share,
# seen through its own imaging device. Its **level-2 weight** comes from the AUC of its local
# ensemble on its *own* validation share — the only score it can compute without sharing data.

# %%
print(format_table(result.report["institutions"],
                   ["id", "capacity", "device", "architectures", "n_train", "class_counts",
                    "level2_weight", "test_accuracy", "test_auc"]))
plot_class_distribution(result.institutions, result.dataset.class_names)

# %% [markdown]
# ## 4. The scores
#
# Every score is on the official test split, the shared query set. Remember notebook 03's
# warning: the split is small and imbalanced, so accuracy flatters a model that answers the
# majority class; balanced accuracy and AUC are the fairer yardsticks, and a few hundredths are a
# handful of images.

# %%
rows = metric_rows(result)
print(format_table(rows))
plot_metric_comparison(rows, metric=["balanced_accuracy", "auc"], reference={"chance": 0.5})

# %% [markdown]
# The ROC curves show the whole trade-off between missed and false alarms, not just one
# threshold; the confusion matrix shows which mistakes the secure ensemble makes.

# %%
plot_roc_curves(result)

# %%
plot_confusion(result.secure_eval, result.dataset.class_names, "Secure ensemble, test split")

# %% [markdown]
# ## 5. Secure versus plaintext
#
# The secure round never saw the institutions' probabilities in the clear: each party process
# held only Shamir shares. Did it open the right thing? Two checks:
#
# - against the **plaintext reference**, computed with the parties' own fixed-point encoding:
#   the labels and the mean must be *identical* (the same integers were added);
# - against the **float** weighted mean: the difference must stay under the fixed-point bound
#   `M · 2^-(f+1)`.

# %%
secure_facts = result.report["ensembles"]["secure_mean"]
print(format_table([secure_facts], ["parties", "threshold", "frac_bits",
                                    "max_abs_diff_vs_plaintext", "error_bound",
                                    "label_agreement", "seconds"], digits=8))
level1 = {inst_id: alone.test_probs for inst_id, alone in result.alone.items()}
print(agreement(result.secure, level1, result.weights))
print(f"bytes sent by each party: {secure_facts['bytes_sent_per_party']}")

# %% [markdown]
# ## 6. The ledger: verify, log, lineage
#
# The run left a signed, hash-linked record. Anyone holding the file can verify it without any
# secret, from Python or from a shell:

# %%
done = run_efl("ledger", "verify", result.ledger_path)
print(f"$ efl ledger verify ledger.sqlite   -> exit code {done.returncode}")
print(done.stdout)
print("$ efl ledger log ledger.sqlite")
print(run_efl("ledger", "log", result.ledger_path).stdout)

# %% [markdown]
# The round's **lineage** answers "which models produced this result?": the exact versions
# (SHA-256 of their parameters) listed in `ROUND_START`, and the hash of the opened mean in
# `ROUND_RESULT`. The mean we hold in memory must hash to the recorded value, and an auditor can
# list every transaction the result depends on.

# %%
with open_ledger(result.ledger_path) as view:
    lineage = ModelRegistry(view).lineage(ROUND_ID)
    deps = Audit(view).dependencies(lineage.round.result_hash)
print(f"{ROUND_ID}: {lineage.round.status}, coordinator {lineage.round.coordinator}, "
      f"protocol {lineage.round.protocol['protocol']} over {lineage.round.protocol['parties']} "
      f"parties")
print(format_table([{"institution": v.institution, "model": v.model_id,
                     "version": v.version[:16], "block": v.where.height,
                     "best_val_loss": v.metrics.get("best_val_loss")}
                    for v in lineage.versions]))
print("the opened mean matches the recorded hash:",
      hash_array(result.secure.mean) == lineage.round.result_hash)
print(f"the result depends on {len(deps.versions)} model versions of {deps.institutions}, "
      f"recorded in blocks {sorted({w.height for w in deps.transactions})}")

# %%
plot_model_versions(result.ledger_path)

# %% [markdown]
# ## 7. The explorer
#
# The same ledger, interactively: blocks and their transactions, the institutions, the model
# version graph, search by hash prefix, and **Verify chain**. (The widget needs a live kernel:
# re-run the cell if you see only text.)

# %%
explorer = ExplorerWidget(result.ledger_path, refresh_seconds=None)
explorer

# %% [markdown]
# ## 8. What this run protects, and what it does not
#
# - **Protected:** each institution's data never leaves it, and its probabilities enter the
#   secure round only as Shamir shares: up to `t < M/2` colluding parties (`t` and `M` are in
#   the table of section 5) learn nothing beyond the opened weighted mean — provided they
#   follow the protocol (MPyC's *passive*, semi-honest model, with an honest majority).
# - **Not protected:** an institution that lies — trains on poisoned data, reports a false
#   validation score, or feeds made-up probabilities — is not stopped by MPC; notebook 07 shows
#   what the weights and the ledger can and cannot do about it. A party that drops out makes the
#   round fail (recorded as `ROUND_FAILED`). The opened mean itself is public by design.
# - **Simulated here:** one machine plays every institution and holds every signing key, so the
#   ledger shows tamper *evidence* and attribution, not a distributed consensus; across machines
#   each institution runs `efl party` and keeps its own key.

# %% [markdown]
# ## Summary
#
# - `run_experiment(config, out_dir)` (or `efl demo`) runs the whole flow: partition, level-1
#   training, ledger commits, a secure level-2 round in real MPyC processes, baselines, and
#   `report.json` / `report.md` / plots.
# - The report puts every institution alone next to the plaintext and secure ensembles, FedAvg
#   and the centralized bound; read small differences on a small test split with care.
# - The secure mean equals the plaintext fixed-point reference exactly, and the float mean
#   within `M · 2^-(f+1)`.
# - The ledger verifies from Python or `efl ledger verify`; the round's lineage names the exact
#   model versions behind its result, and the result's hash ties the numbers in memory to the
#   record.
# - MPC hides inputs from honest-but-curious parties; it does not make a dishonest institution
#   honest.
#
# ## Exercises
#
# 1. Run the same experiment from a terminal: `efl demo --out efl_out`, then open
#    `efl_out/report.md`. Are the numbers the same as here? Why (think of the seed)?
# 2. Run with `get_config(dirichlet_alpha=0.1)` (stronger label skew). Which institutions lose
#    most alone, and does the secure ensemble still beat the best of them?
# 3. Run with `get_config(n_parties=5)`: two helper parties without data join the round. What
#    changes in the threshold `t`, in the bytes each party sends and in the time — and what does
#    not change in the result?
# 4. Open `report.json` and find the institution with the smallest level-2 weight. Look at its
#    class counts. Why might its own validation AUC be low even if its model is not bad?
# 5. In the explorer, search for the first characters of the round's result hash, and follow
#    it to the model versions it depends on.
