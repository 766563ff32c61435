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
# # 00 · Welcome: secure ensemble federated learning for healthcare
#
# Hospitals hold medical images they may not share. Their computers differ: a university
# hospital can train a residual network, a rural clinic a logistic regression. This course shows
# how such institutions can still learn *together* — without pooling data, without a trusted
# server, and without forcing everyone onto one model architecture — following *Trustworthy
# Privacy-preserving Hierarchical Ensemble and Federated Learning in Healthcare 4.0 with
# Blockchain* (Stephanie et al., 2023).
#
# **In this notebook you will learn**
#
# - what `efl_toolkit` does, and the path the course takes through it;
# - how to check that your environment is ready (package versions, JAX on CPU, the embedded
#   MedMNIST data and its checksums, MPyC);
# - why a notebook kernel on its own is a *single* MPyC party, with no secrecy;
# - how to choose between the fast classroom preset and the larger paper preset.
#
# ## The story in one picture
#
# ```
#  hospital A ─ trains the models its capacity allows ─┐  level 1: local ensemble
#  hospital B ─ trains the models its capacity allows ─┤  (models never leave the hospital)
#  hospital C ─ trains the models its capacity allows ─┘
#                          │ class probabilities only
#                          ▼
#          secure ensemble with MPyC (secret sharing)     level 2: across hospitals
#                          │
#                          ▼
#      signed, hash-linked ledger: who took part, which model versions, which result
# ```
#
# ## The course
#
# | notebook | topic |
# |---|---|
# | 00 | welcome and set-up check (this one) |
# | 01 | data and institutions: non-IID splits, imaging devices |
# | 02 | heterogeneous local training: capacity-aware architectures |
# | 03 | ensembles in the clear, and why FedAvg cannot mix architectures |
# | 04 | the secure ensemble with MPyC |
# | 05 | the blockchain: integrity, audit, model version control |
# | 06 | end to end |
# | 07 | research playground |
# | 08 | federated groups: FedAvg inside a capacity group under secure aggregation |
# | 09 | the ledger on a chain: the same round on the embedded ledger and an EVM chain |

# %% [markdown]
# ## 1. Is this machine ready?
#
# `run_setup_checks` runs every check and never crashes: a broken piece becomes a `FAIL` line
# that says what is wrong. The MPyC check runs a tiny secure sum in a separate Python process.

# %%
print("checking this machine (a tiny secure sum in a separate MPyC process): about 5 s ...",
      flush=True)
from efl_toolkit.course import check, show
from efl_toolkit.course.setup_check import (
      describe_presets,
      format_checks,
      package_versions,
      require_ready,
      run_setup_checks,
)

results = run_setup_checks()
print(format_checks(results))

# %% [markdown]
# `require_ready` stops here with a clear message if any check failed (warnings pass). If it
# raises, fix the named problem first: the later notebooks assume everything above is `ok`.

# %%
require_ready(results)
print("Ready.")
show([{"package": name, "version": version or "not installed"}
      for name, version in package_versions().items()])

# %% [markdown]
# ### About the MPyC warning
#
# MPyC computes on *secret shares*: each party holds a random-looking piece of every input and
# the parties jointly compute the result. With `M` parties, up to `t < M/2` of them may collude
# and still learn nothing beyond the opened output (passive adversaries, honest majority).
#
# A notebook kernel is **one** process, so on its own it is one party (`m=1`, `t=0`): nothing is
# secret, because one party holds everything. That is why the check above warns. Notebook 04
# launches `M` separate party processes that talk over the network (loopback here) — only then
# is anything actually kept secret.
#
# **Check cells.** Cells that start with `# check:` assert what the notebook has just taught,
# with `efl_toolkit.course.check`: each prints `check passed: ...`, or stops with
# `check failed: ...` naming the claim that no longer holds. The course's tests run them too.

# %%
# check: MPyC works, and this kernel on its own is ONE party (no secrecy)
by_name = {r.name: r for r in results}
check(by_name["mpyc"].status == "ok", "MPyC computed a secure sum", by_name["mpyc"].detail)
check(by_name["mpyc parties"].status == "warn" and "m=1" in by_name["mpyc parties"].detail,
      "a single process is a single MPyC party (m=1, t=0)", by_name["mpyc parties"].detail)

# %% [markdown]
# ## 2. Presets: fast for the classroom, larger for the paper
#
# Every notebook reads its settings from one preset. `classroom_fast` (the default) keeps each
# notebook to about a minute or less on a 2-core laptop (the notebook map in
# `notebooks/README.md` gives measured times); `paper` trains longer with more institutions.
# Choose with an environment variable *before* starting Jupyter:
#
# ```bash
# EFL_PRESET=paper jupyter lab notebooks/
# ```
#
# or from inside a running notebook, before its other cells run: either `%env EFL_PRESET=paper`
# followed by **Kernel > Restart Kernel and Run All Cells**, or
# `from efl_toolkit.course import use_preset; use_preset("paper")` and then run the notebook
# from the top.

# %%
show(describe_presets())

# %% [markdown]
# ## Summary
#
# - `efl_toolkit` lets institutions with different data and different compute learn together:
#   local (heterogeneous) models, a secure ensemble of their predictions, and a ledger that makes
#   every step auditable.
# - `run_setup_checks()` verified versions, JAX, the embedded datasets (MD5 against the official
#   MedMNIST checksums) and MPyC.
# - One process is one MPyC party: secrecy needs several party processes (notebook 04).
# - `EFL_PRESET` selects `classroom_fast` or `paper` for every notebook.
#
# ## Exercises
#
# 1. Run `run_setup_checks()` in a terminal:
#    `python -c "from efl_toolkit.course.setup_check import *;
#    print(format_checks(run_setup_checks(progress=False)))"`. Do you get the same result as here?
# 2. Switch to the paper preset and run the preset check again: what changed? In a new cell
#    at the top run `%env EFL_PRESET=paper`, then **Kernel > Restart Kernel and Run All
#    Cells** (or run `efl_toolkit.course.use_preset("paper")` and re-run the notebook from the
#    top). Switch back with `%env EFL_PRESET=classroom_fast` and a restart.
# 3. Corrupt a *copy* of an embedded `.npz` file (flip one byte) and compute its MD5 with
#    `efl_toolkit.data.medmnist.md5sum`. Why does the toolkit compare checksums at all?
# 4. With `M = 5` parties, how many may collude without learning anyone's input? With `M = 4`?
