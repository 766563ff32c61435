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
# # 09 · The ledger on a chain: the same round on two engines
#
# Notebook 05's ledger is one SQLite file on one machine: fine for a classroom, but hospitals on
# different machines need a history that **none of them owns alone**. Permissioned consortia run
# Ethereum-compatible chains for that (Besu or Geth in proof-of-authority: each institution runs
# a validator node). The toolkit can keep the same model registry and audit trail in a small
# **smart contract** (written in Vyper) on any such chain, behind one backend interface that the
# pipeline, `efl ledger` and the explorer all use.
#
# **In this notebook you will learn**
#
# - how one interface hides two engines: the embedded ledger and an EVM chain;
# - that the same round gives the same version hashes, the same lineage and the same refusals
#   on both (the contract enforces the rules itself);
# - how each engine is verified, and how both name the height of a swapped model file;
# - how to run it against a real node (Anvil here; any JSON-RPC URL in a consortium);
# - what each engine guarantees, and what it does not.
#
# > **A simulation.** This kernel holds every institution's key (Ed25519 for the embedded
# > ledger, secp256k1 for the chain) so that one notebook can play all of them. On a real
# > consortium chain each key stays at its institution and each institution signs its own
# > transactions. The in-process chain (py-evm) lives only as long as this kernel.

# %%
print("loading JAX, Flax, web3 and the toolkit: 5-10 s the first time ...", flush=True)
import subprocess
import sys

from efl_toolkit.course import check, show, workdir
from efl_toolkit.explorer import ExplorerWidget
from efl_toolkit.ledger import TransactionRejected
from efl_toolkit.ledger.backend import create_backend
from efl_toolkit.ledger.evm import DESCRIPTOR, Anvil, EvmBackend, find_anvil
from efl_toolkit.ledger.evm.compare import GUARANTEES, engine_row, record_round

#: Three institutions and the architecture each commits (untrained zoo models: the point here
#: is the record, not the accuracy).
INSTITUTIONS = {"hospital-a": "cnn", "hospital-b": "mlp", "clinic-c": "logistic"}
IMAGE_SHAPE, N_CLASSES = (28, 28, 1), 2

# %% [markdown]
# ## 1. Two engines behind one interface
#
# `create_backend("embedded", ...)` makes a signed SQLite ledger (notebook 05);
# `create_backend("evm", ...)` compiles the registry contract with the `vyper` package (once,
# then cached), starts an in-process EVM chain, deploys the contract, gives every institution
# its own key and registers it. `"evm:http://host:8545"` would do the same on any node.
# *This cell takes about 5 s on 2 cores.*

# %%
folder = workdir("ledgers")
(folder / "embedded").mkdir(exist_ok=True)
embedded, embedded_path = create_backend("embedded", folder / "embedded" / "ledger.sqlite",
                                         list(INSTITUTIONS))
chain, chain_path = create_backend("evm", folder / "evm" / "ledger.sqlite", list(INSTITUTIONS))
show([{"engine": "embedded", "where": embedded_path.name, "height": embedded.height()},
      {"engine": "evm (in-process)", "where": f"contract {chain.contract.address}",
       "height": chain.height()}])
show([{"institution": m.institution, "signs with address": m.public_key,
       "registered in block": m.height} for m in chain.members()])

# %% [markdown]
# ## 2. The same round on both
#
# Each institution commits a first model version and a second one whose **parent** is the first;
# then hospital-a starts a round over the newest versions and records its result. The version is
# the SHA-256 of the serialized parameters, so it cannot depend on the engine.

# %%
written = {name: record_round(backend, INSTITUTIONS, IMAGE_SHAPE, N_CLASSES, seed=0)
           for name, backend in (("embedded", embedded), ("evm", chain))}
show([{"institution": inst, "v1": written["evm"][inst][0], "v2": written["evm"][inst][1],
       "same on both": written["embedded"][inst] == written["evm"][inst]}
      for inst in INSTITUTIONS])
lineages = {name: b.lineage("round-1") for name, b in (("embedded", embedded), ("evm", chain))}
show([{"engine": name, "round": lin.round.round_id, "status": lin.round.status,
       "institutions": ", ".join(lin.institutions), "versions": len(lin.versions),
       "started in block": lin.round.started.height} for name, lin in lineages.items()])

# %%
# check: both engines record the same versions and the same round lineage
check(written["embedded"] == written["evm"]
      and lineages["embedded"].round.versions == lineages["evm"].round.versions,
      "both engines record the same versions and the same round lineage")

# %% [markdown]
# ## 3. The same refusals, enforced by the contract
#
# On the chain, the rules are code in the contract: a call that breaks one **reverts** (nothing
# is recorded). The backend turns every revert into the embedded ledger's own error, word for
# word, whichever exception the node raised. Here clinic-c claims hospital-a's version as its
# parent, hospital-a reports a result for a round that never started, and closes round-1 twice.

# %%
a_v2 = written["evm"]["hospital-a"][1]


def refusal(backend, attempt):
    try:
        attempt(backend)
    except TransactionRejected as err:
        return str(err)
    return "accepted"


attempts = {
    "a parent of another institution": lambda b: b.model_commit(
        "clinic-c", "logistic", b"other weights", a_v2, "logistic", {}, {}),
    "a result for an unknown round": lambda b: b.finish_round(
        "hospital-a", "round-9", "ab" * 32, {"accuracy": 0.9}),
    "a round closed twice": lambda b: b.fail_round("hospital-a", "round-1", "late"),
}
refusals = [{"attempt": what, "embedded": refusal(embedded, attempt),
             "evm": refusal(chain, attempt)} for what, attempt in attempts.items()]
show(refusals)

# %%
# check: every refusal is the same error on both engines
check(all(r["embedded"] == r["evm"] != "accepted" for r in refusals),
      "every refusal is the same error on both engines", str(refusals))

# %% [markdown]
# ## 4. Verification, and a swapped model file
#
# Verifying the chain does not trust the backend's own index: it re-reads the receipt of every
# recorded transaction from the node, compares the contract's event counter, checks that every
# block is still the chain's, and hashes every model file in the content-addressed artifact
# store. Then we swap hospital-b's first model file on both engines.

# %%
show([engine_row("embedded", embedded), engine_row("evm (in-process)", chain)])
b_v1 = written["evm"]["hospital-b"][0]
originals = {}
for name, backend in (("embedded", embedded), ("evm", chain)):
    path = backend.artifacts.path(b_v1)
    originals[name] = path.read_bytes()
    path.write_bytes(b"someone else's weights")
swapped = [engine_row("embedded", embedded), engine_row("evm (in-process)", chain)]
show(swapped)

# %%
# check: both engines name the height of the swapped model file
heights = {name: b.get(b_v1).where.height for name, b in (("embedded", embedded), ("evm", chain))}
check(f"height {heights['embedded']}" in swapped[0]["first failure"]
      and f"height {heights['evm']}" in swapped[1]["first failure"],
      "both engines name the height of the swapped model file", str(swapped))
for name, backend in (("embedded", embedded), ("evm", chain)):   # put the files back
    backend.artifacts.path(b_v1).write_bytes(originals[name])

# %% [markdown]
# ## 5. A real node
#
# The in-process chain is a test double. A real node is a separate process with its own state,
# reached over JSON-RPC: here **Anvil** (from the npm package `@foundry-rs/anvil`; `make anvil`
# installs it into `.tools/anvil`). In a consortium you would pass the URL of your institution's
# Besu or Geth node instead: `efl demo --ledger evm:http://node:8545`. The descriptor
# `ledger.evm.json` (node URL, contract address, artifact folder) is what `efl ledger verify`
# reads. *This cell takes about 5 s when Anvil is installed.*

# %%
anvil_binary = find_anvil()
if anvil_binary is None:
    print("Anvil is not installed here: `make anvil` (or npm install --prefix .tools/anvil "
          "@foundry-rs/anvil) and run this cell again")
else:
    with Anvil(anvil_binary) as node:
        real = EvmBackend.create(node.url, list(INSTITUTIONS), folder / "anvil")
        on_node = record_round(real, INSTITUTIONS, IMAGE_SHAPE, N_CLASSES, seed=0)
        verify = subprocess.run([sys.executable, "-m", "efl_toolkit.cli", "ledger", "verify",
                                 str(folder / "anvil" / DESCRIPTOR)],
                                capture_output=True, text=True, timeout=120)
        show([engine_row(f"evm on Anvil ({node.url})", real)])
        print(verify.stdout)
    # check: the same versions on a real node, verified by efl ledger verify
    check(on_node == written["evm"] and verify.returncode == 0,
          "the same versions on a real node, verified by efl ledger verify", verify.stderr)

# %% [markdown]
# ## 6. The explorer on the chain
#
# The explorer reads any backend through the same interface: blocks (here: every block of the
# chain, with this registry's events decoded), verification, institutions with their addresses,
# the model-version graph and search by hash prefix. Tampering experiments stay an embedded-ledger
# feature (notebook 05): a chain is not a file one can copy and flip bytes in.

# %%
explorer = ExplorerWidget(chain, refresh_seconds=None)
explorer

# %% [markdown]
# ## 7. What each engine guarantees

# %%
show(list(GUARANTEES))

# %% [markdown]
# ## Summary
#
# - One interface (`efl_toolkit.ledger.backend`) hides the engine: the pipeline
#   (`efl demo --ledger embedded|evm|evm:RPC_URL`), `efl ledger verify|log|show` and the explorer
#   work the same on both.
# - The same round gives the same version hashes and lineage; a broken rule is refused by the
#   contract itself and reported with the embedded ledger's words.
# - Both engines detect a swapped model file and name the height of its commit.
# - What changes is **who must agree**: one file (or one node) can be truncated or rewritten by
#   whoever owns it; on a proof-of-authority chain a rewrite needs a majority of the
#   institutions' validators, and each signing key stays at its institution. Everything recorded
#   (metrics, data summaries) is visible to every member, and model files stay off chain.
#
# ## Exercises
#
# 1. Register a fourth institution by quorum: `chain.register_institution("clinic-d",
#    approver="hospital-a")`, then hospital-b, then clinic-c. After which approval is clinic-d a
#    member (`chain.members()`)? Why does the embedded ledger refuse the same call?
# 2. Add an attempt to the refusals cell that commits a version twice. Which check names it?
# 3. Start Anvil yourself (`.tools/anvil/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil`),
#    run `efl demo --ledger evm:http://127.0.0.1:8545 --out run` in a terminal and then
#    `efl ledger log run/ledger.evm.json`. Stop Anvil half-way through a second run: what does
#    the error say?
# 4. Compare `benchmarks/ledger_throughput.py --quick` for both engines. Which costs more: a
#    signature, a block, or a round trip to a node?
