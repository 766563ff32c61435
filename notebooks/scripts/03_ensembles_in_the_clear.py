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
# # 03 · Ensembles in the clear, and why FedAvg cannot mix architectures
#
# Notebook 02 left every institution with its own models — different architectures, trained on
# different, skewed data. How can they learn *together*? The classic federated answer, FedAvg,
# averages model parameters; that only works when everybody trains the same network. The answer
# of this toolkit is to combine **predictions** instead: every model answers the same queries
# with class probabilities, and those are averaged or voted — first inside each institution
# (level 1), then across institutions (level 2).
#
# Here everything is computed *in the clear* (every party would see every institution's
# probabilities); notebook 04 computes level 2 under secret sharing.
#
# **In this notebook you will learn**
#
# - how a local ensemble (level 1) and a federation-wide ensemble (level 2) are formed;
# - the plaintext combination rules: mean, weighted mean (by data size or by own validation
#   score) and majority vote, flat or hierarchical;
# - how the method weighs institutions at level 2 — a **consortium-wide validation AUC** from
#   summed score histograms — against the first design's AUC on each institution's *own*
#   validation share;
# - how the ensembles compare with every institution alone, and how to read that comparison
#   honestly on a small, imbalanced test set;
# - why averaging parameters is impossible across architectures (and what error you get);
# - FedAvg as a homogeneous baseline, and what it costs the institutions that cannot afford
#   its architecture (the method instead runs FedAvg *inside* groups that afford the same
#   architecture: notebook 08).

# %%
# %matplotlib inline
print("loading JAX, Flax and the toolkit: 2-5 s the first time ...", flush=True)
import numpy as np

from efl_toolkit.baselines import fedavg_train, train_centralized
from efl_toolkit.config import get_config
from efl_toolkit.course import check, show
from efl_toolkit.course.cache import train_each_alone_cached
from efl_toolkit.course.comparison import (
    best_row,
    ensemble_rows,
    evaluation_row,
    level1_rows,
    level2_weights,
    primary_models,
    verdict,
)
from efl_toolkit.course.summaries import majority_class_accuracy
from efl_toolkit.course.viz import plot_metric_comparison, plot_rounds
from efl_toolkit.data import institutions_from_config, load_dataset
from efl_toolkit.ensemble import weighted_mean
from efl_toolkit.federation import level2
from efl_toolkit.federation.aggregation import HISTOGRAM_BINS, plaintext_aggregation
from efl_toolkit.federation.fedavg import (
    ArchitectureMismatchError,
    affordability,
    average_parameters,
    common_architecture,
    parameter_summary,
)
from efl_toolkit.federation.groups import LocalEnsemble
from efl_toolkit.rng import experiment_keys
from efl_toolkit.training import evaluate

config = get_config()
keys = experiment_keys(config.seed)
dataset = load_dataset(config.dataset)
institutions = institutions_from_config(dataset, config)

# %% [markdown]
# ## 1. The federation from notebook 02
#
# Same preset, same seed, same keys: the same institutions train the same models as in
# notebook 02. If notebook 02 ran on this machine with the same preset, the models are
# loaded from its cache (a few seconds); otherwise they are trained here and the progress bars
# show each model.
#
# *This cell takes about 6 s on a quiet 2-core machine when it trains (classroom preset, JAX
# compilation cache warm; 25-40 s on a busy machine), under 2 s when it loads (8 s busy).*

# %%
results = train_each_alone_cached(institutions, dataset, config, keys.params, progress=True)

# %% [markdown]
# ## 2. Level 1: each institution's local ensemble
#
# Inside an institution, models never leave the building, so combining them needs no
# protection: the local ensemble is the mean of its models' class probabilities.

# %%
show(level1_rows(results))

# %% [markdown]
# ## 3. Level 2: combining institutions
#
# Across institutions, each one contributes its level-1 probabilities for the shared queries.
# Weighted rules need one weight per institution; two natural choices:
#
# - **by size**: proportional to the number of training examples;
# - **by validation**: proportional to the institution's accuracy on its *own* validation share
#   — all it can know about itself, and misleading when that share is skewed.

# %%
show(level2_weights(results, institutions))

# %% [markdown]
# Every ensemble next to every institution alone, on the shared test split. *Flat* rules treat
# all models alike (an institution with two models gets two votes); *hierarchical* rules first
# form each institution's local ensemble, then combine institutions.

# %%
rows = ensemble_rows(results, institutions, dataset)
show(rows)

# %%
plot_metric_comparison(rows, metric=["balanced_accuracy", "auc"],
                       reference={"chance": 0.5})

# %% [markdown]
# How to read this. The test split has only a few hundred images, most of one class: answering
# the majority class alone reaches the accuracy printed below, and differences of one or two
# hundredths are a handful of images. AUC (ranking quality, independent of the decision
# threshold) and balanced accuracy (mean recall over classes) are the fairer yardsticks here.
# Votes produce coarse scores (the share of votes per class), so a vote's AUC says little: votes
# are for labels. The comparison below is computed from this run's numbers, whatever they turn
# out to be.

# %%
print(f"majority-class accuracy: "
      f"{majority_class_accuracy(dataset.test.labels, dataset.n_classes):.3f}")
print(verdict(rows, metric="auc"))

# %% [markdown]
# ## 4. How the method weighs institutions at level 2
#
# Both designs of this toolkit weigh an institution by an AUC "above chance" — `AUC - 0.5`,
# normalized so the weights sum to 1 (chance or worse gets almost no say) — but they measure
# that AUC on different data:
#
# - **the first design** (`method="ensemble_only"`, `level2.level2_weights`): the AUC of the
#   institution's local ensemble on its **own** validation share — a few dozen images, as
#   label-skewed as its training share, and a number the consortium must take on trust;
# - **the method** (`method="hierarchical"`, `level2.consortium_validation_auc` then
#   `level2.consortium_weights`): the AUC of every local ensemble on the validation shares of
#   **all** institutions pooled. No image moves: each institution scores every local ensemble
#   on its own share and turns the scores into a histogram per class (`HISTOGRAM_BINS` bins);
#   the committee of compute parties *adds* the histograms under secret sharing (notebooks 04
#   and 08), and the AUC follows from the pooled histograms, exact up to the bin width.
#
# Here the sum is computed in the clear with `plaintext_aggregation` — the very sum the
# committee computes securely. (In the method the local ensembles hold the federated groups'
# models, notebook 08; here they are the models trained alone, so only the weighting differs.)

# %%
local = {name: LocalEnsemble(name, r.architectures, tuple(t.model for t in r.trained),
                             ("alone",) * len(r.trained))
         for name, r in results.items()}
own_auc = {inst.id: level2.own_validation_auc(inst, results[inst.id], dataset.n_classes)
           for inst in institutions}
own_weights = level2.level2_weights(institutions, results, dataset.n_classes)
pooled_auc = level2.consortium_validation_auc({name: ens.predict for name, ens in local.items()},
                                              institutions, dataset.n_classes,
                                              plaintext_aggregation)
pooled_weights = level2.consortium_weights(pooled_auc)
show([{"institution": inst.id, "n_val": inst.n_val,
       "val_class_counts": inst.val.class_counts(dataset.n_classes).tolist(),
       "own_val_auc": own_auc[inst.id], "weight_first_design": own_weights[inst.id],
       "consortium_val_auc": pooled_auc[inst.id], "weight_method": pooled_weights[inst.id],
       "test_auc_alone": results[inst.id].test.auc}
      for inst in institutions])
print("first design:", level2.describe_weights(own_weights, "own_auc", own_auc))
print("the method:  ", level2.describe_weights(pooled_weights, "consortium_auc", pooled_auc))

# %% [markdown]
# The histogram AUC is the AUC of the pooled validation images, up to the bin width: computed
# directly on all institutions' validation shares put together (possible here, in the clear,
# and nowhere else), it agrees to a few thousandths.

# %%
pooled_images = np.concatenate([inst.val.images for inst in institutions])
pooled_labels = np.concatenate([inst.val.labels for inst in institutions])
direct_auc = {name: evaluate(ens.predict(pooled_images), pooled_labels, dataset.n_classes,
                             warn=False).auc for name, ens in local.items()}
show([{"institution": name, "pooled-histogram AUC": pooled_auc[name],
       "direct AUC, all validation images": direct_auc[name],
       "difference": pooled_auc[name] - direct_auc[name]} for name in local],
     digits=4, caption=f"{HISTOGRAM_BINS} histogram bins")

# %%
# check: the AUC from summed histograms equals the direct pooled AUC up to the bin width
gap = max(abs(pooled_auc[name] - direct_auc[name]) for name in local)
check(gap <= 0.01, "pooled-histogram AUC within 0.01 of the direct AUC for every institution",
      f"largest gap {gap:.4f}")
check(abs(sum(pooled_weights.values()) - 1) < 1e-9 and all(
      pooled_weights[n] < 0.01 for n in pooled_weights if not pooled_auc[n] > 0.5),
      "the method's weights sum to 1, and an AUC at or below chance gets (almost) no say",
      f"weights {pooled_weights}")

# %% [markdown]
# The two weightings in the same hierarchical ensemble (level 1: each institution's mean;
# level 2: weighted mean), on the test split. Look at the AUC: the labels here are plain
# argmax, and on this imbalanced split balanced accuracy depends mostly on the threshold — the
# method picks its operating point on the pooled validation shares too (notebook 06).

# %%
level1_probs = [results[inst.id].test_probs for inst in institutions]
weightings = {
    "weighted by own validation AUC (first design)": own_weights,
    "weighted by consortium validation AUC (method)": pooled_weights,
}
weighting_rows = [evaluation_row(name, "ensemble", evaluate(
    weighted_mean(level1_probs, [w[inst.id] for inst in institutions]), dataset.test.labels,
    dataset.n_classes, warn=False)) for name, w in weightings.items()]
show(weighting_rows)

# %% [markdown]
# ## 5. Why not just average the models? (FedAvg)
#
# FedAvg averages parameters: `w = sum_k (n_k / n) w_k`. That needs every `w_k` to be the same
# tree of arrays with the same shapes. Look at what our institutions actually hold:

# %%
models = primary_models(results)
show(parameter_summary(models))

# %% [markdown]
# Averaging them anyway fails, and the error says exactly why:

# %%
try:
    average_parameters(models)
    mismatch = None
except ArchitectureMismatchError as error:
    mismatch = error
    print(f"ArchitectureMismatchError: {error}")

# %%
# check: parameters of different architectures cannot be averaged
architectures = {r.trained[0].arch for r in results.values()}
check(mismatch is not None or len(architectures) == 1,
      "average_parameters refuses models of different architectures",
      f"architectures {sorted(architectures)}")

# %% [markdown]
# ## 6. The homogeneous FedAvg baseline
#
# To run FedAvg at all, every institution must train the *same* architecture. Two ways out,
# both with a cost:
#
# 1. pick a strong model (the small CNN) and ask every institution to train it — beyond the
#    budget of the weaker ones;
# 2. pick the most capable model *every* institution can afford — the weakest institution
#    caps everybody.
#
# Who can afford the CNN?

# %%
show(affordability(institutions, dataset.image_shape, dataset.n_classes, "cnn"))
common = common_architecture(institutions, dataset.image_shape, dataset.n_classes)
print(f"the most capable architecture everyone can afford: {common}")

# %% [markdown]
# Both FedAvg variants, one local epoch per round and as many rounds as local training had
# epochs (the same number of passes over the data). Each round: every institution trains the
# global model on its own share, then the parameters are averaged weighted by `n_train`.
#
# *This cell takes about 2 s on a quiet 2-core machine (10 s on a busy one).*

# %%
fedavg_cnn = fedavg_train(institutions, dataset.test, keys.params, config.train, arch="cnn")
fedavg_common = fedavg_train(institutions, dataset.test, keys.params, config.train,
                             arch=common)
print(f"FedAvg cnn: {fedavg_cnn.seconds:.1f} s, FedAvg {common}: {fedavg_common.seconds:.1f} s")

# %% [markdown]
# The global CNN's test AUC after each round, against the best plaintext ensemble and the best
# institution alone:

# %%
best_ensemble = best_row(rows, "ensemble", metric="auc")
best_alone = best_row(rows, "institution alone", metric="auc")
plot_rounds(fedavg_cnn.history, metric="auc", title="FedAvg (cnn) global model",
            reference={f"best ensemble ({best_ensemble['name']})": best_ensemble["auc"],
                       f"best alone ({best_alone['name']})": best_alone["auc"]})

# %% [markdown]
# Finally, everything side by side, with the centralized upper bound: one CNN trained on the
# pooled training split — what a single hospital holding everybody's data would get, exactly
# what privacy rules forbid.

# %%
centralized = train_centralized(dataset, "cnn", config, keys.params)
everything = rows + [
    evaluation_row("FedAvg cnn (over budget)", "baseline", fedavg_cnn.final),
    evaluation_row(f"FedAvg {common} (affordable)", "baseline", fedavg_common.final),
    evaluation_row("centralized cnn (pooled data)", "baseline", centralized.test),
]
show(everything)
plot_metric_comparison(everything, metric=["balanced_accuracy", "auc"],
                       reference={"chance": 0.5})

# %% [markdown]
# ## Summary
#
# - Level 1 combines an institution's own models; level 2 combines institutions' probabilities
#   with a mean, a weighted mean (by size or by own validation score) or a majority vote.
# - The method weighs institutions by their local ensembles' AUC on *all* institutions'
#   validation shares, pooled from per-class score histograms that the committee sums
#   securely; the first design used each institution's AUC on its own small, skewed share.
# - Ensembles need only predictions on shared queries, so institutions keep *any* architecture
#   their capacity allows.
# - Parameter averaging needs identical parameter trees: `average_parameters` raises
#   `ArchitectureMismatchError`, naming the institutions and the first difference.
# - FedAvg therefore forces one architecture on everyone: either beyond some budgets, or capped
#   by the weakest institution. Centralized training on pooled data is the (forbidden) upper
#   bound.
# - On a 156-image, imbalanced test set, read the numbers with care: small gaps are a few
#   images, and a single run is one sample.
#
# ## Exercises
#
# 1. Change the preset's seed (`get_config(seed=1)`) and re-run. Does the ranking of the
#    ensembles and the institutions stay the same? What does that tell you about one run?
# 2. Make the split more skewed (`get_config(dirichlet_alpha=0.1)`). Which suffers more: the
#    institutions alone, the ensembles or FedAvg?
# 3. Give FedAvg more local work: `fedavg_train(..., local_epochs=3, rounds=4)`. Same number of
#    passes over the data — is the result better or worse, and why might non-IID data matter?
# 4. Build a weighting of your own for level 2 (for example, each institution's number of
#    examples of the rarer class) and pass it to `efl_toolkit.ensemble.hierarchical_ensemble`.
# 5. Re-run section 4 with `get_config(dirichlet_alpha=0.1)`: how often does an institution's
#    own validation share hold only one class (an undefined AUC counts as chance: weight
#    0.00), and does the consortium AUC still rank the institutions like their test AUC?
