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
# # 07 · Research playground
#
# Notebook 06 ran the experiment once, with one choice for every knob. Research starts with
# "what if?": another combination rule, less precision in the secure round, more skewed data,
# more institutions — or an institution that cheats. This notebook is a workbench for such
# questions. Two habits keep it fast enough to play with:
#
# - **train once, re-combine many times**: the level-2 rule, the weights and the fixed-point
#   precision only change how the institutions' level-1 probabilities are combined, so they
#   reuse one trained federation;
# - **light models for what must retrain**: the non-IID strength and the number of institutions
#   change the data, so those sweeps retrain — with logistic regressions and MLPs only, a whole
#   federation in a second or two, repeated over a few seeds and averaged.
#
# **In this notebook you will learn**
#
# - how the level-2 rule (mean, weighted, vote) and the fixed-point precision change the result
#   of the same trained models, including one real MPyC round at very low precision;
# - how non-IID strength (Dirichlet `alpha`) and the number of institutions change what each
#   institution reaches alone and what the ensemble adds;
# - what a **broken** and a **poisoned** institution do to the ensemble, why weights built on
#   self-reported validation scores cannot stop a member that lies, and what an honest
#   consortium *can* check: agreement with the others, leave-one-out, and the signed claims on
#   the ledger;
# - why MPyC's passive security model does not protect against malicious inputs.

# %%
# %matplotlib inline
print("loading JAX, Flax and the toolkit: 2-5 s the first time ...", flush=True)
from efl_toolkit.config import get_config
from efl_toolkit.course import check, show, workdir
from efl_toolkit.course.viz import plot_metric_comparison
from efl_toolkit.data import load_dataset
from efl_toolkit.ledger import Audit, ModelRegistry, open_ledger
from efl_toolkit.pipeline import ROUND_ID
from efl_toolkit.playground import (
    POISON_KINDS,
    agreement_matrix,
    claims_rows,
    consensus_rows,
    evidence_rows,
    leave_one_out_rows,
    ledger_claims,
    plot_agreement,
    plot_sweep,
    poison,
    precision_round,
    precision_rows,
    record_federation,
    rule_rows,
    scenario_rows,
    sweep,
    train_federation,
)
from efl_toolkit.secure.measure import agreement
from efl_toolkit.secure.plots import plot_fixed_point_errors

config = get_config()
dataset = load_dataset(config.dataset)
seeds = range(config.seed, config.seed + 3)
folder = workdir()   # this session's run folder, deleted when the kernel shuts down
print(f"preset {config.name}: {config.n_institutions} institutions, partition "
      f"{config.partition} (alpha {config.dirichlet_alpha}), sweeps averaged over seeds "
      f"{list(seeds)}; scratch folder {folder}")

# %% [markdown]
# ## 1. One federation, trained once
#
# The preset's partition and seed, with light models: institutions alternate between the
# `small` tier (MLP + logistic regression) and the `tiny` tier (logistic regression). Each
# institution reports the AUC of its local ensemble on its **own** validation share; the
# level-2 weight follows from that claim, as in the pipeline. (`test_auc (truth)` is known here
# only because the course holds every label.)

# %%
fed = train_federation(config, dataset, progress=True)
show(claims_rows(fed))

# %% [markdown]
# ## 2. The level-2 rule
#
# Same level-1 probabilities, five ways to combine them. Weighting by size trusts the biggest
# share; weighting by own validation AUC trusts the institutions' claims; a vote keeps only each
# institution's label (so its AUC, computed on vote shares, is coarse).

# %%
rules = rule_rows(fed)
show(rules)
plot_metric_comparison(rules, metric=["balanced_accuracy", "auc"], name_key="rule",
                       reference={"chance": 0.5})

# %% [markdown]
# ## 3. Fixed-point precision
#
# The secure round adds integers `rint(w · p · 2^f)`: with `f` fractional bits the opened mean
# is within `M · 2^-(f+1)` of the float mean. The plaintext reference uses the parties' exact
# encoding, so each row below is what a secure round at that precision would open — computed
# here without starting a single party.

# %%
precision = precision_rows(fed, [4, 5, 6, 8, 10, 12, 16, 20, 24])
show(precision, digits=6)
plot_fixed_point_errors(precision)

# %% [markdown]
# The error stays under the bound at every precision and halves with each extra bit. A label can
# change only where the two classes' weighted means are within the error of each other. One
# **real** round at the lowest precision the toolkit allows (`f = 4`: sixteenths), one MPyC
# process per institution: its labels must equal the plaintext reference exactly, and the
# labels it changes against the float argmax (if any) are the price of so few bits.

# %%
low_result, low_facts = precision_round(fed, 4)
show([low_facts], digits=4)

# %% [markdown]
# ## 4. How non-IID is the data? (Dirichlet `alpha`)
#
# Small `alpha`: each institution sees mostly one class; large `alpha`: every share looks like
# the whole training split. Each setting retrains a light federation for each of three seeds
# (partition, devices and training all change with the seed) and averages. `label_skew` is the
# mean total-variation distance between an institution's class mix and the pooled one.
#
# *This cell takes about 3 s on a quiet 2-core machine (6-8 s on a busy one); the progress bar
# counts the federations.*

# %%
alpha_rows = sweep(config, [{"dirichlet_alpha": a} for a in (0.1, 0.3, 1.0, 10.0, 100.0)],
                   dataset=dataset, seeds=seeds)
show(alpha_rows)
plot_sweep(alpha_rows, "dirichlet_alpha", ["best_alone_auc", "mean_alone_auc",
                                           "ensemble_mean_auc", "ensemble_weighted_auc"],
           log_x=True, title="AUC against non-IID strength (mean over seeds)")

# %% [markdown]
# Read the gap between `mean_alone_auc` (a typical institution on its own) and the ensembles:
# that is what joining the federation is worth to a typical member. `best_alone_auc` is an
# oracle — nobody knows in advance which institution will be best on the shared queries.

# %% [markdown]
# ## 5. How many institutions?
#
# The same training split divided among more institutions: each holds less data (see
# `min_train`), so each alone is weaker, while the ensemble pools more, differently trained
# opinions.
#
# *This cell takes about 3 s on a quiet 2-core machine (7-9 s on a busy one).*

# %%
count_rows = sweep(config, [{"n_institutions": n} for n in (2, 3, 5, 8)], dataset=dataset,
                   seeds=seeds)
show(count_rows)
plot_sweep(count_rows, "n_institutions", ["best_alone_auc", "mean_alone_auc",
                                          "ensemble_mean_auc", "ensemble_weighted_auc"],
           title="AUC against the number of institutions (mean over seeds)")

# %% [markdown]
# ## 6. A broken or a poisoned institution
#
# Two ways one member can go wrong:

# %%
for kind, what in POISON_KINDS.items():
    print(f"- {kind}: {what}")

# %% [markdown]
# To see the effect clearly, this section uses an **IID** federation of four institutions:
# honest members then largely agree with each other, so a dissenter stands out (exercise 5
# repeats it under label skew). The last institution goes wrong in three ways: broken (one
# class), poisoned (flipped labels, reporting what it measures on its own flipped validation
# share), and poisoned **and lying** about its validation AUC. Only that institution retrains.

# %%
honest = train_federation(config.replace(partition="iid",
                                         n_institutions=max(4, config.n_institutions)), dataset)
suspect = honest.ids[-1]
broken = poison(honest, suspect, "one_class")
flipped = poison(honest, suspect, "flip_labels")
liar = poison(honest, suspect, "flip_labels", claim=0.95)
scenarios = {"honest": honest, "broken": broken, "flipped": flipped, "flipped + lie": liar}
for name, scenario in scenarios.items():
    print(f"\n{name}")
    show(claims_rows(scenario))

# %% [markdown]
# ### What the weights do
#
# - The **broken** member reports honestly: its validation share holds one class, its AUC is
#   undefined, it counts as chance — and its weight drops to zero. Self-reported weights *do*
#   expose an honest failure.
# - The **flipped** member measures its model on its own flipped labels, where it looks as good
#   as anyone: an honest-looking claim and a normal weight, for a model that is wrong on the
#   shared queries.
# - The **liar** simply reports 0.95 and earns a weight to match, among the largest. Nobody can
#   check the claim directly: the validation share is private.

# %%
damage = scenario_rows(scenarios)
show(damage)
plot_metric_comparison(damage, metric="auc", group_key="rule", reference={"chance": 0.5})

# %% [markdown]
# Compare each scenario with the honest rows. A flipped member drags the ensemble down; with the
# lie, the weighted rule hands it more say, so weighting by claims amplifies whatever the
# members claim. A broken member with weight zero changes (almost) nothing under the weighted
# rule; under the plain mean its one-class answers shift the decisions towards that class, which
# on this imbalanced split can move balanced accuracy or AUC either way — without making it a
# good model.

# %% [markdown]
# ### What an honest consortium can check
#
# The claims cannot be verified, but the *behaviour* can. Two checks look at each member's
# predictions on shared queries. In this course they are computed in the clear; a deployment
# would run them on a separate, non-sensitive **audit set** whose answers the members agree to
# reveal (or compute them inside MPC and open only the scores), because the secure round hides
# exactly these predictions.
#
# **Agreement** needs no labels: how often do two members predict the same label?

# %%
plot_agreement(agreement_matrix(liar.test_probs), liar.ids,
               title="Label agreement, federation with a lying poisoner")

# %%
consensus = consensus_rows(liar.test_probs)
show(consensus)

# %% [markdown]
# **Leave-one-out** needs labelled audit queries: the weighted ensemble without each member in
# turn. A member whose absence *raises* the AUC is hurting the federation.

# %%
loo = leave_one_out_rows(liar.test_probs, liar.val_weights, dataset.test.labels,
                         dataset.n_classes)
show(loo)

# %%
# check: both behaviour checks flag the poisoned, lying institution
least_agreeing = min(consensus, key=lambda row: row["median_agreement"])["institution"]
most_harmful = max(loo[1:], key=lambda row: row["delta_auc"])["left_out"]
check(least_agreeing == suspect, f"{suspect} agrees least with the others",
      f"least agreeing: {least_agreeing}")
check(most_harmful == suspect, f"leaving {suspect} out raises the AUC the most",
      f"largest gain without: {most_harmful}")

# %% [markdown]
# ### On the ledger: signed, attributable claims
#
# Now the lying federation runs for real: every model is committed to a fresh ledger with the
# metrics its owner reports and a summary of its data, each commit **signed** by its owner; the
# public weights go into `ROUND_START`; a real secure round (one MPyC process per institution)
# combines the probabilities; `ROUND_RESULT` records the hash of the opened mean.

# %%
recorded = record_federation(liar, folder / "liar")
print(f"secure round: {recorded.secure.n_parties} parties, {recorded.secure.seconds:.2f} s")
show(agreement(recorded.secure, liar.test_probs, recorded.weights), digits=8,
     caption="secure round against the plaintext reference and the float mean")
claims = ledger_claims(recorded.ledger_path)
show(claims)

# %% [markdown]
# The secure round ran without a hitch and opened exactly the poisoned weighted mean: MPC
# computed faithfully on what each party put in. What the ledger adds is **accountability**:
# the inflated claim is on the chain, signed with the liar's key, in a block every member voted
# for; it cannot be denied or quietly edited later, and the round's lineage names its model
# version among those behind the result. (Its signed class counts are the mirror image of the
# others' — a hint, though a careful liar would falsify the summary too.)

# %%
with open_ledger(recorded.ledger_path) as view:
    activity = Audit(view).activity()
    lineage = ModelRegistry(view).lineage(ROUND_ID)
show([{"block": a.where.height, "signed by": a.sender, "type": a.type, "subject": a.subject}
      for a in activity])
print(f"\n{ROUND_ID} ({lineage.round.status}) used versions of {lineage.institutions}")

# %% [markdown]
# Claims from the ledger next to the consortium's own measurements:

# %%
show(evidence_rows(claims, consensus, loo))

# %% [markdown]
# ### The threat model, plainly
#
# MPyC's protocols "are based on Shamir's threshold secret sharing scheme and withstand
# passive adversaries controlling less than half of the parties" (MPyC's own description,
# `help(mpyc)`; the toolkit's threat model in `README.md` and notebook 04, section 8): up to
# `t < M/2` colluding parties that *follow the protocol* learn nothing beyond the opened
# output. A malicious *input* is outside that model by construction: a party
# that trains on flipped labels or lies about its score follows the protocol perfectly, and MPC
# computes its contribution faithfully — and in secret. Defences live outside MPC: weights the
# consortium measures itself (on audit sets) rather than weights members claim, robust
# combination rules, leave-one-out and agreement checks, and the ledger's signed record that
# turns a lie into evidence against its author. With a dishonest *majority* even these checks
# fail: the consensus is then the poison.

# %% [markdown]
# ## Summary
#
# - One trained federation answers many questions: level-2 rules, weights and fixed-point
#   precision only change how level-1 probabilities are combined.
# - The fixed-point error stays under `M · 2^-(f+1)`; a real round at `f = 4` still equals its
#   plaintext reference exactly, and differs from the float argmax only where the classes are
#   nearly tied.
# - Non-IID strength and the number of institutions change what members reach alone; the
#   ensemble's value is its gap to a *typical* member. Average over seeds before you believe a
#   trend on a small test split.
# - Self-reported validation weights expose an honest failure, but not a member that lies; the
#   consortium can measure agreement and leave-one-out effects on audit queries, and the ledger
#   makes every claim signed and attributable.
# - MPC (passive security, honest majority) hides inputs; it does not validate them.
#
# ## Exercises
#
# 1. Repeat section 2 with the preset's own models: `train_federation(config, dataset,
#    tiers=None)` (slower). Do the rules rank the same way?
# 2. Predict from the bound `M · 2^-(f+1)` how many fractional bits an 8-institution federation
#    needs for an error below `1e-4`, then check it with `precision_rows`.
# 3. Run the `alpha` sweep with `seeds=range(10)`. How much do the curves move? Which
#    differences of section 4 survive?
# 4. Poison two institutions instead of one (`poison(poison(honest, a, ...), b, ...)`). When
#    does the agreement check stop singling them out?
# 5. Repeat section 6 on the preset's label-skewed partition (`train_federation(config.replace(
#    n_institutions=4), dataset)`). Do honest members still agree with each other? What does
#    that mean for the agreement check?
# 6. Build a weighting the consortium measures itself, e.g. each member's `median_agreement`
#    from `consensus_rows`, combine with `efl_toolkit.ensemble.weighted_mean` and score it with
#    `efl_toolkit.playground.score_on_test`. Does it resist the liar?
