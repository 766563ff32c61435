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
# # 05 · The blockchain: integrity, audit and model version control
#
# The secure ensemble of notebook 04 hides the institutions' predictions. But a federation also
# needs to answer questions *afterwards*: which hospitals took part in a diagnosis? Which model
# versions produced it, trained on how much data? Did anyone quietly change a recorded metric?
# The toolkit keeps these facts on a small **permissioned blockchain** (a ledger) shared by the
# consortium: every record is signed by the institution that made it, blocks are linked by
# hashes and final only when more than 2/3 of the institutions signed them.
#
# **In this notebook you will learn**
#
# - how a consortium and its ledger are created, and what a block contains (hash link, Merkle
#   root, proposer, votes);
# - how a Merkle **inclusion proof** shows that one transaction is in a block;
# - how Ed25519 **signatures** and the **>2/3 quorum** stop forged records and lone writers;
# - **model version control**: commit real model parameters, history, diff, tags, and a
#   checkout that re-checks the hash;
# - **audit** queries and the **lineage** of an ensemble round;
# - what **tampering** looks like: which check breaks at which height, while the original
#   still verifies — from Python, from the `efl ledger verify` command, and in the explorer.
#
# > **A simulation of a consortium.** This kernel holds every institution's private key so that
# > one notebook can play all of them. In a real deployment each key stays at its institution
# > (a key vault, a smart card) and only signatures travel. The ledger file itself holds public
# > keys only: anyone can verify it without any secret.

# %%
# %matplotlib inline
print("loading JAX, Flax and the toolkit: 2-5 s the first time ...", flush=True)
from flax import nnx

from efl_toolkit.config import get_config
from efl_toolkit.course import check, show, workdir
from efl_toolkit.data import institutions_from_config, load_dataset
from efl_toolkit.explorer import ExplorerWidget
from efl_toolkit.explorer.ledger_backend import LedgerBackend
from efl_toolkit.federation.record import commit_model
from efl_toolkit.ledger import (
    ArtifactError,
    Audit,
    BlockRejected,
    Consortium,
    Ledger,
    ModelRegistry,
    Transaction,
    TransactionRejected,
    hash_array,
    open_ledger,
    quorum_size,
)
from efl_toolkit.ledger.merkle import merkle_root, verify_inclusion
from efl_toolkit.ledger.tamper import TAMPER_KINDS
from efl_toolkit.ledger.teaching import (
    edited,
    plot_chain,
    plot_tamper_grid,
    run_efl,
    tamper_demo,
    tamper_rows,
)
from efl_toolkit.ledger.transactions import sign_transaction
from efl_toolkit.models import build_model
from efl_toolkit.rng import experiment_keys, institution_key
from efl_toolkit.secure import secure_ensemble
from efl_toolkit.training import evaluate, predict_proba, train_local
from efl_toolkit.training.serialize import params_from_bytes, version_hash

config = get_config()
dataset = load_dataset(config.dataset)
institutions = institutions_from_config(dataset, config)
folder = workdir()   # this session's run folder, deleted when the kernel shuts down
ledger_path = folder / "ledger.sqlite"
print(f"preset {config.name}; institutions {[inst.id for inst in institutions]}; "
      f"ledger at {ledger_path}")

# %% [markdown]
# ## 1. A consortium and its genesis block
#
# Each institution has an Ed25519 key pair (here derived from the preset's seed, so the course
# is reproducible). `Ledger.create` writes the **genesis block** (height 0): one
# `REGISTER_INSTITUTION` transaction per member, each signed by the member itself, and signed
# (voted) by all of them. From then on, only these members can write.

# %%
consortium = Consortium.generate([inst.id for inst in institutions], seed=config.seed)
ledger = Ledger.create(ledger_path, consortium,
                       names={inst.id: f"{inst.id} ({inst.capacity.tier})"
                              for inst in institutions})
registry = ModelRegistry(ledger)
show([{"institution": i.institution, "name": i.name, "public key": i.public_key,
       "fingerprint": i.fingerprint} for i in ledger.institutions()])
print(ledger.report.summary())

# %% [markdown]
# ## 2. Committing model versions
#
# A model version is identified by the **SHA-256 of its serialized parameters**: the same
# weights always give the same version, and any change gives another. Every institution first
# commits its freshly initialized logistic regression (version 1), then trains it on its own
# data and commits the result with version 1 as its **parent** (version 2). The metrics are
# measured on the institution's own validation share; the parameters themselves go to a
# content-addressed artifact store beside the ledger.
#
# With `commit=False` the transactions wait in the pool, and one block then holds them all.

# %%
keys = experiment_keys(config.seed)
initial, trained, first, second = {}, {}, {}, {}
for index, inst in enumerate(institutions):
    initial[inst.id] = build_model("logistic", dataset.image_shape, dataset.n_classes,
                                   nnx.Rngs(institution_key(keys.params, index)))
    first[inst.id] = commit_model(registry, inst, initial[inst.id], architecture="logistic",
                                  n_classes=dataset.n_classes, commit=False)
print("block", ledger.commit_block().height, "holds every first version")

for index, inst in enumerate(institutions):
    trained[inst.id] = train_local(initial[inst.id], inst.train, inst.val,
                                   institution_key(keys.sampling, index), config.train,
                                   description=f"{inst.id} logistic").model
    second[inst.id] = commit_model(registry, inst, trained[inst.id], architecture="logistic",
                                   n_classes=dataset.n_classes, parent=first[inst.id],
                                   commit=False)
print("block", ledger.commit_block().height, "holds every trained version")
show([{"institution": v.institution, "version": v.version, "parent": v.parent or "-",
       "height": v.where.height, **v.metrics} for v in ledger.model_versions()])
print("version == SHA-256 of the trained parameters:",
      all(second[i] == version_hash(trained[i]) for i in trained))

# %% [markdown]
# ## 3. Blocks and hash links
#
# Each block header holds the hash of the previous block, the Merkle root of its transactions,
# a timestamp and its proposer (the members take turns: block `h` is proposed by member
# `h mod n`). The block's own hash is the SHA-256 of its header. Change anything in block 1
# and its hash changes — and block 2, which recorded the old hash, no longer links to it.

# %%
show([{"height": h.height, "hash": h.hash, "prev": h.prev_hash, "merkle root": h.merkle_root,
       "proposer": h.proposer, "txs": h.n_txs, "signed by": len(h.signers), "ok": h.ok}
      for h in ledger.headers()])
plot_chain(ledger)

# %% [markdown]
# ### Merkle root and inclusion proof
#
# The Merkle root (RFC 9162) hashes the block's transactions pairwise up to one root, so a
# single 32-byte value commits to all of them. To convince someone that one transaction is in a
# block, you hand over the transaction and the few sibling hashes on its path to the root (the
# **inclusion proof**, `log2(n)` hashes) — not the whole block.

# %%
block1 = ledger.block(1)
leaves = [ledger.inclusion_proof(tx.tx_id).leaf for tx in block1.transactions]
print("root recomputed from the stored transactions equals the header's:",
      merkle_root(leaves).hex() == block1.header.merkle_root)
proof = ledger.inclusion_proof(block1.transactions[-1].tx_id)
print(f"proof for transaction {proof.proof.index} of {proof.size} in block {proof.height}: "
      f"{len(proof.proof.path)} sibling hash(es) {[h.hex()[:12] for h in proof.proof.path]}")
print("proof verifies:", proof.verify())
print("same proof with one changed byte in the transaction:",
      verify_inclusion(proof.leaf.replace(b"logistic", b"logistiC", 1), proof.proof,
                       proof.root, proof.size))

# %% [markdown]
# ## 4. Signatures and the >2/3 quorum
#
# Every transaction is signed by its sender. Editing a signed record breaks its signature, and
# signing in another institution's name with your own key fails too: the ledger rejects both
# before anything is written.

# %%
commit_tx = Transaction.from_bytes(proof.leaf)
owner_key = ledger.state.members[commit_tx.sender].public_key
print(f"{commit_tx.type} by {commit_tx.sender}: signature ok = "
      f"{commit_tx.signature_ok(owner_key)}")
boosted = edited(commit_tx, metrics={**commit_tx.payload["metrics"], "val_accuracy": 0.99})
print("after editing its metrics:          signature ok =", boosted.signature_ok(owner_key))

victim, forger = institutions[0].id, institutions[1].id
forged = sign_transaction(consortium.keys[forger], "MODEL_TAG", victim,
                          ledger.next_nonce(victim), {"version": second[victim], "tag": "recalled"},
                          chain=ledger.state.genesis_hash)
try:
    ledger.submit(forged)
except TransactionRejected as error:
    print(f"{forger} signing as {victim}: {error}")

# %% [markdown]
# A block is final only with the votes (signatures of the block hash) of **more than 2/3** of
# the members. With 3 institutions that means all 3; with 4, three of them. No single
# institution — not even the proposer — can append on its own.

# %%
show([{"members": n, "votes needed": quorum_size(n)} for n in range(1, 8)])
registry.tag(second[victim], "deployed", commit=False)   # waits in the pool
too_few = [inst.id for inst in institutions[:quorum_size(len(institutions)) - 1]]
try:
    ledger.append_block(ledger.propose(signers=too_few))
except BlockRejected as error:
    print(f"signed by {too_few} only: {error}")
print("with every vote:", ledger.commit_block().height, "| chain ok:", ledger.verify().ok)

# %% [markdown]
# ## 5. Model version control
#
# The registry works like `git` for models: a history per institution, diffs of the committed
# metrics, tags, and a **checkout** that returns the parameters only if they still hash to the
# version — then they load into a fresh model that predicts exactly like the trained one.

# %%
show([{"version": v.version, "parent": v.parent or "-", "height": v.where.height,
       "tags": ", ".join(registry.tags_of(v.version)) or "-", **v.metrics}
      for v in registry.history(victim)], caption=f"history of {victim}'s model")
show([{"metric": d.metric, "v1": d.old, "v2": d.new, "change": d.delta}
      for d in registry.diff(first[victim], second[victim])])
print("tagged 'deployed':", registry.tagged("deployed").version[:12])

# %%
params = registry.checkout(second[victim])
restored = params_from_bytes(build_model("logistic", dataset.image_shape, dataset.n_classes,
                                         nnx.Rngs(keys.sampling)), params)
print(f"checked out {len(params)} bytes; hash of the restored model == version: "
      f"{version_hash(restored) == second[victim]}")
print("restored model predicts exactly like the trained one:",
      bool((predict_proba(restored, dataset.test.images)
            == predict_proba(trained[victim], dataset.test.images)).all()))

# %% [markdown]
# ## 6. An ensemble round and its lineage
#
# A coordinator records `ROUND_START` with the exact model versions taking part and the
# protocol; the secure round runs (one party process per institution, labels only); the
# coordinator records `ROUND_RESULT` with the **hash** of the opened labels and their metrics.
# The result itself stays off the chain; anyone holding it can check it against the hash.

# %%
coordinator = institutions[0].id
versions = [second[inst.id] for inst in institutions]
registry.start_round(coordinator, "round-1", versions,
                     {"parties": len(versions), "reveal": "labels",
                      "frac_bits": config.fixed_point_bits})
test_probs = {name: predict_proba(model, dataset.test.images) for name, model in trained.items()}
round_result = secure_ensemble(test_probs, reveal="labels", frac_bits=config.fixed_point_bits)
scores = evaluate(test_probs[coordinator], dataset.test.labels, dataset.n_classes)
accuracy = float((round_result.labels == dataset.test.labels).mean())
registry.finish_round(coordinator, "round-1", hash_array(round_result.labels),
                      {"accuracy": accuracy, "parties": round_result.n_parties})
print(f"secure round: {round_result.n_parties} parties, {round_result.seconds:.2f} s, "
      f"test accuracy {accuracy:.3f} (coordinator's own model alone: {scores.accuracy:.3f})")

lineage = registry.lineage("round-1")
print(f"round-1 ({lineage.round.status}) used institutions {lineage.institutions}:")
for v in lineage.versions:
    print(f"  {v.institution}: {v.model_id} {v.version[:12]} (parent {v.parent[:12]})")
print("the labels we hold match the recorded hash:",
      hash_array(round_result.labels) == lineage.round.result_hash)

# %% [markdown]
# A round can also fail — a party may time out — and the failure is recorded just the same.

# %%
registry.start_round(coordinator, "round-2", versions, {"parties": len(versions)})
registry.fail_round(coordinator, "round-2", f"party {institutions[-1].id} timed out")
show([{"round": r.round_id, "status": r.status, "coordinator": r.coordinator,
       "started at": r.started.height, "ended at": r.ended.height if r.ended else "-",
       "reason": r.reason or "-"} for r in ledger.rounds()])

# %% [markdown]
# ## 7. Audit
#
# An auditor (or a regulator, or a patient's advocate) can ask the verified chain who did what
# and when, which rounds an institution took part in, and everything a result depends on —
# including the parents of the versions used.

# %%
audit = Audit(ledger)
show([{"height": a.where.height, "sender": a.sender, "type": a.type, "subject": a.subject}
      for a in audit.activity()])

# %%
member = institutions[1].id
print(f"rounds {member} took part in:", [r.round_id for r in audit.rounds_of(member)])
deps = audit.dependencies(hash_array(round_result.labels))
print(f"the result of {deps.round.round_id} depends on {len(deps.versions)} versions, "
      f"{len(deps.ancestors)} with their ancestors, from {deps.institutions}, recorded in "
      f"blocks {sorted({w.height for w in deps.transactions})}")

# %% [markdown]
# ## 8. Tampering: what breaks, where
#
# The ledger is *tamper-evident*: anyone with write access to the file can change bytes, but
# verification notices. We attack **scratch copies** only (the tamper helpers refuse to touch a
# file that is not marked as a scratch copy), one attack per copy:

# %%
for kind, what in TAMPER_KINDS.items():
    print(f"- {kind}: {what}")

# %%
attacks = [("edit_payload", 2), ("rewrite_history", 2), ("edit_header", 1),
           ("drop_votes", 3), ("corrupt_artifact", 2), ("delete_block", 4)]
demos = tamper_demo(ledger_path, attacks, workdir("scratch"))
show(tamper_rows(demos))
plot_tamper_grid(demos)

# %% [markdown]
# Read the grid row by row. Editing a payload changes the Merkle root; an attacker who also
# recomputes the root and the block hash cannot re-sign the transaction or the votes without
# the institutions' keys — and the *next* block's `prev` no longer matches (hash link). A
# corrupted model file fails its artifact hash, a deleted block leaves a hole. Meanwhile the
# original ledger still verifies, and checking out the corrupted artifact from the scratch copy
# is refused.

# %%
# check: every tampered copy fails verification at the block that was attacked; the original
# still verifies
for demo in demos:
    check(demo.first_failure is not None and demo.first_failure[0] == demo.height,
          f"{demo.kind} on block {demo.height} is caught at block {demo.height}",
          demo.report.summary())
check(ledger.verify().ok and all(demo.original_ok for demo in demos),
      "the original ledger verifies after every attack", ledger.verify().summary())

# %%
print("original:", ledger.verify().summary())
corrupted = next(d for d in demos if d.kind == "corrupt_artifact")
with open_ledger(corrupted.scratch_path) as copy:
    try:
        ModelRegistry(copy).checkout(second[victim])
    except ArtifactError as error:
        print("checkout from the tampered copy:", error)

# %% [markdown]
# ### The same from a terminal: `efl ledger verify`
#
# Verification needs no Python session: `efl ledger verify PATH` exits with 0 and a summary
# for a good chain, and with 1 naming the first bad height and check otherwise (here run in a
# subprocess, exactly as from a shell).

# %%
for path in (ledger_path, next(d for d in demos if d.kind == "rewrite_history").scratch_path):
    done = run_efl("ledger", "verify", path)
    print(f"$ efl ledger verify {path.relative_to(folder)}   -> exit code {done.returncode}")
    print(done.stdout.strip(), "\n")

# %%
print(run_efl("ledger", "log", ledger_path, "--institution", victim).stdout)

# %% [markdown]
# ## 9. The explorer
#
# `ExplorerWidget` shows the same ledger interactively: the block list with each block's
# transactions, votes and checks; the institutions; the model-version graph with the rounds
# that used each version; search by hash prefix; **Verify chain**; and an instructor's tamper
# tab that runs these attacks on scratch copies (made inside this session's run folder, so
# they go when the kernel shuts down). (The widget needs a live kernel: re-run the cell if you
# see only text.)

# %%
explorer = ExplorerWidget(LedgerBackend(ledger_path, scratch_dir=workdir("explorer-scratch")),
                          refresh_seconds=None)
explorer

# %% [markdown]
# ## Summary
#
# - A consortium's genesis block registers its members' public keys; each later block links to
#   the previous block's hash, commits to its transactions with a Merkle root, and is final only
#   with more than 2/3 of the members' votes.
# - Inclusion proofs show that a transaction is in a block with `log2(n)` hashes; signatures
#   make every record attributable and unforgeable without the sender's key.
# - Model versions are content hashes of real parameters, with parents, tags, diffs and a
#   hash-checked checkout; rounds record exactly which versions produced which result (lineage),
#   and audit queries answer who did what, when, and what a result depends on.
# - Any change to the stored bytes is detected and located (which check, which height), while
#   the original keeps verifying; `efl ledger verify` does the same from a shell.
# - Limits: the embedded ledger is tamper-*evident* on one machine; a consortium across machines
#   needs each key at its institution and a chain replicated among them, which this embedded
#   ledger does not provide (notebook 09 keeps the same registry in a smart contract on an EVM
#   chain). A member set that rewrites everything from a new genesis is caught only by pinning
#   the genesis hash (`open_ledger(path, genesis_hash=...)`).
#
# ## Exercises
#
# 1. Create a ledger for 4 institutions. How many votes does a block need? Propose a block
#    signed by exactly that many, then by one fewer.
# 2. Commit a third version for one institution (e.g. train a few more epochs from version 2)
#    and draw its history. What does `registry.ancestors(v3)` return?
# 3. Run `rewrite_history` on block 1 of a scratch copy. Which blocks fail, and which check
#    catches each of them? Why does block 2 fail although nobody touched it?
# 4. Pin the genesis hash: `open_ledger(ledger_path, genesis_hash=ledger.header(0).hash)`.
#    Then create a second ledger with the same institutions but freshly generated keys and open
#    it with the same pin. What does the report say?
# 5. In the explorer, search for the first characters of a model version and follow it to the
#    round that used it. Then use the tamper tab on a block of your choice.
