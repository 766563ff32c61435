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
# # 04 · The secure ensemble with MPyC
#
# In notebook 03 the institutions combined their class probabilities *in the clear*: whoever
# computed the ensemble saw every hospital's predictions. Those predictions are sensitive: they
# are what a hospital's models think about each patient, and a model's outputs can leak facts
# about the data it was trained on. Here the institutions compute the same ensemble with
# **secure multiparty computation** (MPC): each one splits its probabilities into random-looking
# *shares*, the parties compute on shares only, and only the result is opened.
#
# **In this notebook you will learn**
#
# - how Shamir secret sharing works, by hand, on numbers small enough to check on paper;
# - why adding shared values costs nothing — and why that makes an ensemble cheap to secure;
# - how probabilities become integers (fixed-point encoding) and how large the error can be;
# - how to run a real secure round with **separate party processes** (one per institution,
#   three under the classroom preset) and check it against the plaintext reference;
# - what each party actually saw (the transcript), what it costs, and what MPC does and does
#   not protect against (the threat model);
# - the **two roles** a secure round can use: every institution its own MPC party (the first
#   design), or institutions that only hand additive shares to a **committee** of compute
#   parties (the default): what each party sees, how a dropout is survived, and when each fits.
#
# > **One kernel is one party.** This notebook's kernel is a single process. Run on its own,
# > MPyC treats it as ONE party holding every input in the clear (`m=1`, `t=0`): no secrecy at
# > all. Real secrecy comes from the `M` separate party processes the toolkit launches, which
# > talk to each other over TCP on `127.0.0.1` (or across machines with `efl party`). Section 4
# > shows both.

# %%
# %matplotlib inline
print("loading JAX, Flax, MPyC and the toolkit: 2-5 s the first time ...", flush=True)
import dataclasses
import time

import numpy as np

from efl_toolkit.config import get_config
from efl_toolkit.course import check, show
from efl_toolkit.course.cache import train_each_alone_cached
from efl_toolkit.data import institutions_from_config, load_dataset
from efl_toolkit.ensemble import hierarchical_ensemble, weighted_mean
from efl_toolkit.rng import experiment_keys, numpy_rng
from efl_toolkit.secure import (
    Committee,
    FixedPoint,
    committee_ensemble,
    plaintext_reference,
    secure_ensemble,
    secure_ensemble_in_process,
    secure_hierarchical_ensemble,
)
from efl_toolkit.secure.measure import (
    agreement,
    fixed_point_errors,
    measure_round_costs,
    random_predictions,
    round_costs,
    share_fractions,
)
from efl_toolkit.secure.plots import (
    plot_fixed_point_errors,
    plot_round_costs,
    plot_share_fractions,
    plot_share_histograms,
    plot_sharing,
)
from efl_toolkit.secure.teaching import (
    SMALL_PRIME,
    add_shares,
    lagrange_coefficients,
    reconstruct,
    scale_shares,
    secrets_consistent_with,
    share_samples,
    share_secret,
)
from efl_toolkit.training import evaluate, predict_proba

config = get_config()
keys = experiment_keys(config.seed)
rng = numpy_rng(keys.sampling)   # the random coefficients of the sharings below
print(f"preset {config.name}: {config.n_institutions} institutions, "
      f"{config.fixed_point_bits} fractional bits")

# %% [markdown]
# ## 1. Secret sharing by hand
#
# We work in the field of integers modulo the prime `p = 101`: add, subtract and multiply as
# usual, then take the remainder mod 101. MPyC does exactly the same with a prime of about 52
# bits.
#
# To share a secret `s` among `n = 3` parties so that any **one** of them learns nothing
# (threshold `t = 1`), pick a random line `f(x) = s + a·x (mod p)` and give party `i` the point
# `f(i)`. The secret is the line's value at `x = 0`.

# %%
sharing = share_secret(42, n_parties=3, threshold=1, modulus=SMALL_PRIME, rng=rng)
s, a = sharing.coefficients
print(f"polynomial f(x) = {s} + {a}·x  (mod {SMALL_PRIME})")
for x, y in sharing.shares.items():
    print(f"  party {x} receives f({x}) = {s} + {a}·{x} mod {SMALL_PRIME} = {y}")

# %% [markdown]
# **Reconstruction.** Two points fix a line, so any two parties can recover `f(0)`. Lagrange
# interpolation does it with public coefficients: `s = λ₁·f(x₁) + λ₂·f(x₂) (mod p)`.

# %%
for pair in [(1, 2), (1, 3), (2, 3)]:
    lambdas = lagrange_coefficients(pair)
    points = {x: sharing.shares[x] for x in pair}
    terms = " + ".join(f"{lambdas[x]}·{points[x]}" for x in pair)
    print(f"parties {pair}: {terms} mod {SMALL_PRIME} = {reconstruct(points)}")

# %% [markdown]
# **Why one share reveals nothing.** Party 1 holds one point. Through that point and `(0, s')`
# passes exactly one line for *every* candidate secret `s'`: all 101 secrets are equally
# consistent with what party 1 knows, and since the slope was drawn uniformly at random, all are
# equally likely. The dashed lines below are two other worlds party 1 cannot tell apart from the
# real one.

# %%
options = secrets_consistent_with({1: sharing.shares[1]}, threshold=1)
print(f"secrets consistent with party 1's share {sharing.shares[1]}: {len(options)} of "
      f"{SMALL_PRIME}; e.g. secret 0 needs f(x) = {options[0][0]} + {options[0][1]}·x, "
      f"secret 99 needs f(x) = {options[99][0]} + {options[99][1]}·x")
plot_sharing(sharing, known=[1], alternatives=[0, 99])

# %% [markdown]
# The same fact, measured: share the secret 7 ten thousand times, and separately the secret 90,
# and look at what party 1 receives. Both histograms are flat — party 1's share has the same
# distribution whatever the secret.

# %%
plot_share_histograms({secret: share_samples(secret, party=1, n_samples=10_000, rng=rng)
                       for secret in (7, 90)}, SMALL_PRIME)

# %% [markdown]
# **Adding is free.** Suppose two hospitals share the numbers of positive cases they saw, 30
# and 45. Each party adds the two shares it holds, *locally*, with no message to anyone: the
# results are shares of `30 + 45`, because adding two lines gives a line through the sum of
# their values at 0. Multiplying by a public constant is free too.

# %%
cases_a = share_secret(30, 3, 1, rng=rng)
cases_b = share_secret(45, 3, 1, rng=rng)
total = add_shares(cases_a.shares, cases_b.shares)
print("shares of hospital A's 30:", cases_a.shares)
print("shares of hospital B's 45:", cases_b.shares)
print("added party by party:    ", total)
print("any two parties reconstruct", reconstruct({x: total[x] for x in (1, 3)}),
      "| doubled:", reconstruct(scale_shares({x: total[x] for x in (2, 3)}, 2)))

# %% [markdown]
# An ensemble is exactly this: a weighted **sum** of probability matrices. Each institution
# multiplies its own probabilities by its own weight *before* sharing them, so the secure part
# is only additions — no communication until the result is opened. (Only the argmax, in section
# 6, needs the parties to talk: comparisons are not free.)
#
# ## 2. From probabilities to field elements: fixed-point encoding
#
# Shares live in a field of integers, probabilities are reals. The toolkit scales every value
# by `2^f` and rounds: with `f = 16` fractional bits, `0.1234` becomes `round(0.1234 · 65536)`.
# Each rounding moves a value by at most `2^-(f+1)`, so the weighted mean of `M` institutions is
# off by at most `M · 2^-(f+1)`. The secure integers need `f + bits(M) + 2` bits to hold every
# sum and every difference the argmax compares.

# %%
fp = FixedPoint.for_inputs(config.n_institutions, config.fixed_point_bits)
values = np.array([0.1234, 0.5, 0.8766])
encoded = fp.encode(values)
print(f"{fp.n_inputs} inputs, f = {fp.frac_bits} fractional bits, secure integers of "
      f"{fp.bit_length} bits, error bound {fp.error_bound:.2e}")
for value, q, back in zip(values, encoded, fp.decode(encoded), strict=True):
    print(f"  {value} -> {q} -> {back:.8f}  (error {abs(back - value):.1e})")

# %% [markdown]
# ## 3. The hospitals and their local models
#
# Each institution trains a small local ensemble on its own data (level 1 of the hierarchy):
# an MLP and a logistic regression, kept quick for this notebook (the weights of level 2 are
# the institutions' training-set sizes) — notebook 02 trains the
# architectures each institution's capacity allows. Every model predicts class probabilities
# for the shared test queries; those predictions are what must stay private.

# %%
dataset = load_dataset(config.dataset)
institutions = institutions_from_config(dataset, config)
quick = [dataclasses.replace(inst, architectures=("mlp", "logistic")) for inst in institutions]
local = train_each_alone_cached(quick, dataset, config, keys.params, progress=True)
model_probs = {name: [predict_proba(t.model, dataset.test.images) for t in result.trained]
               for name, result in local.items()}
weights = {inst.id: inst.n_train for inst in institutions}  # level 2: weight by data size
show([{"institution": name, "n_train": weights[name], "models": r.architectures,
     "accuracy": r.test.accuracy, "auc": r.test.auc}
    for name, r in local.items()])

# %% [markdown]
# With these predictions we can measure the fixed-point error on real data: the measured error
# stays below the bound for every number of fractional bits, and drops by about 2× per bit.

# %%
level1 = {name: result.test_probs for name, result in local.items()}
precision = fixed_point_errors(level1, weights, [4, 8, 12, 16, 20, 24])
for row in precision:
    print(f"f = {row['frac_bits']:>2} ({row['bit_length']:>2}-bit integers): bound "
          f"{row['error_bound']:.1e}, measured {row['max_abs_error']:.1e}, "
          f"test labels changed: {row['labels_changed']}")
plot_fixed_point_errors(precision)

# %% [markdown]
# ## 4. One kernel is ONE party: no secrecy
#
# `secure_ensemble_in_process` runs the very same MPyC computation inside this kernel. MPyC sees
# one process, so it runs with one party (`m=1`) and threshold `t=0`: the "shares" *are* the
# values. It is useful for tests and for checking arithmetic, never for privacy.

# %%
alone = secure_ensemble_in_process(level1, weights, reveal="mean", transcript=True)
print(f"parties: {alone.n_parties}, threshold t: {alone.threshold}, secret: {alone.secret}")
print(alone.transcript.explain(institution=0, row=0))

# %% [markdown]
# ## 5. A real secure round: one party process per institution, over 127.0.0.1
#
# The first design makes every institution an MPC party. With `committee=None`,
# `secure_ensemble` writes each institution's input to its own file, starts one `efl party`
# process per institution, lets them connect to each other over TCP on the loopback address,
# supervises them with timeouts, and collects what was opened. Each party secret-shares its
# weighted probabilities; the parties add the shares; the weighted mean (and its argmax) is
# opened. We record a transcript of the first 50 query rows. (Without `committee=None`,
# `secure_ensemble` uses a committee of compute parties instead: section 7.)

# %%
result = secure_ensemble(level1, weights, reveal="mean", committee=None, transcript=True,
                         transcript_rows=50,
                         on_spawn=lambda pids: print("party processes started, PIDs:", pids))
print(f"{result.n_parties} parties, t = {result.threshold}, secret: {result.secret}, "
      f"{result.seconds:.2f} s wall time")
show([{"party": p.index, "institution": p.name, "address": p.address,
     "status": p.status, "connect_s": p.connect_seconds,
     "compute_s": p.compute_seconds, "bytes_sent": p.bytes_sent}
    for p in result.parties])

# %% [markdown]
# The exact command each party ran — across machines, each institution would run its own line
# with its own input file (see `docs/secure.md`):

# %%
print(result.parties[0].shell_command)

# %% [markdown]
# **Agreement with plaintext.** `agreement` compares the round with `plaintext_reference`,
# which computes in the clear what the round opens, with the parties' exact encoding: they must
# match to the last bit. Against the ordinary floating-point weighted mean, the difference must
# stay within the fixed-point bound.

# %%
agreed = agreement(result, level1, weights)
print(f"labels equal the reference: {agreed['labels_equal_reference']}; "
      f"max |secure mean - reference| = {agreed['max_abs_diff_vs_reference']:.1e}; "
      f"max |secure mean - float mean| = {agreed['max_abs_diff_vs_float']:.1e} "
      f"(bound {agreed['error_bound']:.1e})")
plain = hierarchical_ensemble(model_probs, level2_weights=weights)
print("labels equal the plaintext hierarchical ensemble's:",
      bool(np.array_equal(result.labels, plain.labels)))
show([
    {"ensemble": "plaintext (notebook 03)", **evaluate(plain.probabilities, dataset.test.labels,
                                                       dataset.n_classes).to_dict()},
    {"ensemble": f"secure, {result.n_parties} parties", **evaluate(result.mean, dataset.test.labels,
                                                 dataset.n_classes).to_dict()},
], columns=["ensemble", "accuracy", "auc"])

# %%
# check: secure == plaintext within the fixed-point error bound
check(agreed["labels_equal_reference"] and agreed["max_abs_diff_vs_reference"] == 0.0,
      "the secure round opened exactly the plaintext fixed-point reference")
check(agreed["max_abs_diff_vs_float"] <= agreed["error_bound"],
      "the secure mean is within M·2^-(f+1) of the float weighted mean",
      f"{agreed['max_abs_diff_vs_float']:.2e} > bound {agreed['error_bound']:.2e}")
check(bool(np.array_equal(result.labels, plain.labels)),
      "the secure labels equal the plaintext hierarchical ensemble's")

# %% [markdown]
# ## 6. What did each party see? The transcript
#
# For the first rows, every party recorded its share of each institution's encoded input, its
# share of the sum, and what was opened to it. The shares are field elements modulo a 52-bit
# prime: they look like random numbers. Any `t + 1` parties together could rebuild an input
# (two, with three parties and `t = 1`), but `t` or fewer learn nothing.

# %%
transcript = result.transcript
print(transcript.explain(institution=0, row=0))

# %% [markdown]
# Reconstruction needs `t + 1` parties; the toolkit refuses to "reconstruct" from `t` shares,
# because they are consistent with every value.

# %%
enough = list(range(1, transcript.threshold + 2))      # t + 1 parties
too_few = list(range(1, transcript.threshold + 1))     # t parties
row = transcript.reconstruct(0, parties=enough)[0]
print(f"parties {enough} rebuild {transcript.institutions[0]}'s first row: {row.tolist()} "
      f"(its own encoded input: {transcript.views[0].own_contributions[0][0].tolist()})")
try:
    transcript.reconstruct(0, parties=too_few)
except ValueError as error:
    print(f"parties {too_few} alone:", error)

# %% [markdown]
# Every share each party held, divided by the prime: flat histograms, whatever the
# probabilities behind them (the encoded inputs themselves are all below `2^16`, a vanishing
# fraction of the field).

# %%
plot_share_fractions(share_fractions(transcript),
                     names=[f"party {v.party} ({v.name})" for v in transcript.views])

# %% [markdown]
# ### Opening only the labels
#
# With `reveal="labels"` the weighted mean stays secret too: the parties compare shared values
# (a secure argmax) and open only the winning class of each query. The weights are then
# private as well. Comparisons need communication, so this costs more; we run it on the whole
# test split, which is cheap here (two classes, 156 rows).

# %%
labels_only = secure_ensemble(level1, weights, reveal="labels", committee=None)
print(f"mean opened: {labels_only.mean is not None}; labels equal the mean round's: "
      f"{bool(np.array_equal(labels_only.labels, result.labels))}; equal the reference: "
      f"{agreement(labels_only, level1, weights)['labels_equal_reference']}")
show([round_costs(result), round_costs(labels_only)])

# %% [markdown]
# ## 7. Two roles: institutions and a committee
#
# So far every institution was an MPC party. That has a price: MPyC's cost grows steeply with
# the number of parties `M` (a secure argmax of 1000 × 10 takes about 2 s with 3 parties, 7 s
# with 5 and 25 s with 7 on 2 cores), and MPyC cannot recover a lost party, so one hospital
# whose connection drops stops the round. Systems such as Prio, CaPC and Flower's SecAgg+
# therefore separate two roles, and so does `secure_ensemble` by default (`committee=3`):
#
# - **institutions** (data owners, any number `N >= 1`) never run MPC. Each encodes its
#   weighted probabilities in fixed point, `q = rint(w · P · 2^f)` (weight applied locally),
#   and splits `q` into `M` **additive shares** modulo the prime `p` of the round's field:
#   `M - 1` of them uniformly random, the last one `q - (sum of the others) mod p`. It
#   delivers share `j` to compute party `j` and may go offline;
# - a **committee** of `M >= 3` compute parties (honest majority, `t < M/2`) agrees on which
#   institutions *every* party received, adds what it received **locally** (no messages: each
#   party now holds an additive share of the total, its *local sum*), and opens the weighted
#   mean — or, with `reveal="labels"`, feeds the local sums into MPyC and opens only the argmax.
#
# **When each fits.** Use the committee when more than a handful of institutions take part,
# when institutions may drop out, or for federated averaging (many rounds of long vectors,
# notebook 08): its cost is flat in `N` and a missing institution is simply left out. Use one
# party per institution (`committee=None`) when the institutions themselves must be the only
# computing parties — a few hospitals that all stay online and want no outside compute servers.
#
# A committee round on the same level-1 predictions, with a transcript of the first 50 rows:

# %%
started = time.perf_counter()
by_committee = secure_ensemble(level1, weights, reveal="mean", transcript=True,
                               transcript_rows=50)
committee_wall = time.perf_counter() - started
committee_view = by_committee.transcript
print(f"{len(by_committee.institutions)} institutions, a committee of {by_committee.committee} "
      f"compute parties (t = {by_committee.threshold}); included {by_committee.included}, "
      f"dropped {by_committee.dropped}")
print(f"round {by_committee.seconds:.2f} s; {committee_wall:.2f} s including process start-up")
print(committee_view.explain(institution=0, row=0))

# %% [markdown]
# **What each institution sent.** For the first three query rows, the three shares of each
# institution's encoded `[class 0, class 1]` row — one for each compute party. Every share is
# a uniformly random field element (about `2^52`), whatever the probability behind it; only the
# three together (mod `p`) give the encoded row.

# %%
shown_rows = range(3)
show([
    {"institution": name, "row": row,
     **{f"to compute party {j}": [int(x) for x in share[row]]
        for j, share in enumerate(committee_view.sent[name])}}
    for name in committee_view.institutions for row in shown_rows])

# %% [markdown]
# **What each compute party saw**: only the shares addressed to it, and its local sum of them.
# Any two local sums add up to another random number; all three add up to the encoded weighted
# sum, which is what the committee opens.

# %%
n_compute = len(committee_view.local_sums)
table = [{"what": f"compute party {j}: local sum", **{
    f"row {row}": [int(x) for x in local[row]] for row in shown_rows}}
    for j, local in enumerate(committee_view.local_sums)]
table += [{"what": f"parties {list(pair)} together", **{
    f"row {row}": committee_view.reconstruct(pair)[row].tolist() for row in shown_rows}}
    for pair in [(0, 1), (1, 2)]]
table.append({"what": f"all {n_compute} together: encoded sum", **{
    f"row {row}": committee_view.reconstruct(range(n_compute))[row].tolist()
    for row in shown_rows}})
table.append({"what": "opened mean", **{
    f"row {row}": by_committee.mean[row].round(5).tolist() for row in shown_rows}})
show(table)

# %% [markdown]
# **Check.** All three local sums reconstruct exactly the encoded sum that the plaintext
# reference computes with the same encoding (for every recorded row), and the opened mean is
# within the fixed-point bound of the float weighted mean. The local sums of every recorded
# row, divided by `p`, are spread evenly over `[0, 1)`, like the Shamir shares of section 6.

# %%
# check: the local sums reconstruct the encoded sum exactly; the mean is within the bound
reference = plaintext_reference(level1, weights, reveal="mean")
recorded = committee_view.reconstruct(range(n_compute))
check(np.array_equal(recorded, reference.sum[:len(recorded)]),
      "all local sums together give exactly the reference's encoded sum")
committee_check = agreement(by_committee, level1, weights)
check(committee_check["max_abs_diff_vs_float"] <= committee_check["error_bound"],
      "the committee's mean is within the fixed-point bound of the float mean")
print(f"{len(recorded)} rows reconstructed exactly; max |committee mean - float mean| = "
      f"{committee_check['max_abs_diff_vs_float']:.1e} (bound "
      f"{committee_check['error_bound']:.1e})")
plot_share_fractions({j: np.array([int(x) / committee_view.modulus for x in local.ravel()])
                      for j, local in enumerate(committee_view.local_sums)},
                     names=[f"compute party {j}" for j in range(n_compute)])

# %% [markdown]
# ### A dropout
#
# A `Committee` keeps its processes up for many rounds. In the second round below one
# institution never delivers its shares (`absent=[...]` simulates it, as if its machine went
# down after training). The compute parties agree that it is missing from every inbox, leave it
# out, and renormalize the public weights over the institutions that took part; the round is
# not lost.

# %%
missing = by_committee.institutions[1]
with Committee(config.n_parties) as committee:
    everyone = committee_ensemble(committee, level1, weights, reveal="mean")
    without = committee_ensemble(committee, level1, weights, reveal="mean", absent=[missing])
show([{"round": label, "included": ", ".join(r.included),
     "dropped": ", ".join(r.dropped) or "-",
     "weights": [round(float(w), 3) for w in r.weights],
     "round_seconds": r.seconds}
    for label, r in [("everyone", everyone), (f"{missing} absent", without)]])

# %% [markdown]
# **Check.** The round without it equals the float weighted mean of the others alone (within
# the fixed-point bound), and its weight is zero.

# %%
# check: the dropped institution is left out and the others' weighted mean is opened
others = [name for name in by_committee.institutions if name != missing]
expected = weighted_mean([level1[name] for name in others], [weights[name] for name in others])
gap = float(np.max(np.abs(without.mean - expected)))
check(without.dropped == (missing,) and without.included == tuple(others),
      f"{missing} is dropped and every other institution included")
check(gap <= without.fixed_point.error_bound,
      "the round without it equals the others' float weighted mean within the bound")
print(f"max |mean without {missing} - weighted mean of {others}| = {gap:.1e} "
      f"(bound {without.fixed_point.error_bound:.1e})")

# %% [markdown]
# ### One party per institution, for comparison
#
# The same labels-only round both ways, for 3 and for 7 institutions (random predictions of
# 512 rows). The committee always runs 3 processes; the first design runs one per institution,
# and its secure comparisons get costlier with every party added. The wall time includes
# starting the processes.
#
# *This cell takes about 3 s on a quiet 2-core machine (10 s on a busy one): sixteen party
# processes start for the four rounds.*

# %%
timings = []
for n_institutions in (3, 7):
    predictions = random_predictions(n_institutions, 512, dataset.n_classes, seed=config.seed)
    for mode, size in [("committee", config.n_parties), ("one party per institution", None)]:
        started = time.perf_counter()
        run = secure_ensemble(predictions, reveal="labels", committee=size)
        timings.append({"institutions": n_institutions, "mode": mode,
                        "MPyC processes": run.n_parties,
                        "wall_seconds": time.perf_counter() - started,
                        "labels_equal_reference":
                            agreement(run, predictions)["labels_equal_reference"]})
show(timings)

# %% [markdown]
# ### The whole hierarchy in one call
#
# `secure_hierarchical_ensemble` takes every institution's per-model probabilities, averages
# them locally (level 1, inside each institution, in the clear — they are its own models) and
# runs level 2 as a secure round — by default with a committee of 3 compute parties.

# %%
hierarchy = secure_hierarchical_ensemble(model_probs, level2_weights=weights, reveal="labels")
print(f"committee of {hierarchy.secure.committee}; same labels as the plaintext hierarchy:",
      bool(np.array_equal(hierarchy.labels, plain.labels)))

# %% [markdown]
# ## 8. What does it cost?
#
# Real rounds of the first design (one party per institution, `M` = the number of
# institutions) on random predictions of growing size. The wall time (dotted) is dominated by
# starting `M` Python processes and connecting them; the computation itself is small for the
# mean (additions are free, only the opening is sent) and grows with the rows for the labels
# (every comparison needs rounds of messages). On 2 CPU cores the argmax of 1000 rows × 10
# classes takes a few seconds: open labels only where the mean itself must stay secret. (A
# committee's cost does not grow with the number of institutions: section 7, and
# `benchmarks/secure_ensemble.py` for the sweep up to 100 institutions.)
#
# *This cell takes about 6 s on a quiet 2-core machine (20 s on a busy one): nine real rounds,
# each starting its own party processes.*

# %%
settings = [{"reveal": reveal, "parties": 3, "rows": rows}
            for reveal in ("mean", "labels") for rows in (16, 128, 512)]
settings += [{"reveal": "labels", "parties": 5, "rows": rows} for rows in (16, 128, 512)]
costs = measure_round_costs(settings, n_classes=dataset.n_classes, seed=config.seed)
show(costs, columns=["reveal", "parties", "rows", "wall_seconds",
     "compute_seconds", "bytes_sent", "labels_equal_reference"])
plot_round_costs(costs)

# %% [markdown]
# ## 9. The threat model, plainly
#
# - **Protected:** each institution's probabilities (and, with `reveal="labels"`, its weight
#   and the ensemble mean) against any `t < M/2` parties that pool everything they saw — as long
#   as they follow the protocol (*passive*, or semi-honest, adversaries) and a majority is
#   honest. With `M = 3`, `t = 1`. With a committee, the `M` parties are the compute parties:
#   up to `t` of them see only uniformly random shares and local sums, plus the opened output
#   and which institutions were included (with their public weights).
# - **Dropouts:** with one party per institution, a party that drops out fails the round,
#   loudly, naming it. With a committee, an institution that does not deliver to every compute
#   party is left out (`dropped`) and the round goes on; a *compute party* that dies or hangs
#   fails the round within its timeout, named.
# - **Not protected:** a party or institution that lies about its inputs or deviates from the
#   protocol (*malicious* adversaries), and whatever the **opened output** itself reveals — the
#   labels or the mean are public by design.
# - **In this notebook** one machine plays every institution, and the calling process wrote
#   every input and share file: the secrecy shown is among the party processes. Across
#   machines each institution runs `efl party` with only its own file (first design), or
#   `efl share` to send one share to each compute host (committee), optionally over TLS
#   (`docs/secure.md`).
# - **A notebook kernel alone is one party** with no secrecy (section 4).
# - The ledger (notebook 05) records who took part and which model versions were used, so the
#   result stays auditable without revealing the inputs.

# %% [markdown]
# ## Summary
#
# - Shamir sharing splits a secret into points of a random polynomial; `t + 1` points rebuild
#   it, `t` points are consistent with every secret (section 1).
# - Additions and public scalings of shared values are free, so a weighted-mean ensemble costs
#   almost nothing beyond the opening; an argmax needs secure comparisons and costs more.
# - Fixed-point encoding with `f` fractional bits keeps the mean within `M · 2^-(f+1)` of the
#   float mean; the secure result equals the plaintext reference exactly.
# - A notebook kernel is one MPyC party; `secure_ensemble` launches `M` real party processes on
#   127.0.0.1 whose transcripts show random-looking shares and only the opened output.
# - Two roles: every institution its own MPC party (`committee=None`: no outside servers, but
#   cost grows with `N` and one dropout stops the round), or institutions that split their
#   contribution into additive shares for a committee of `M >= 3` compute parties (the
#   default): each party sees random shares and a random local sum, all `M` local sums add up
#   to the encoded total, the cost is flat in `N`, and a missing institution is left out.
# - MPC protects against `t < M/2` passive colluders, not against malicious inputs or what the
#   output itself reveals.
#
# ## Exercises
#
# 1. Share a secret with `n = 5`, `t = 2` over `p = 101`. Check that every set of three
#    parties reconstructs it, and use `secrets_consistent_with` to show that two parties
#    cannot.
# 2. Share the same secret twice with `t = 0`. What do the shares look like, and why is `t = 0`
#    never used for privacy?
# 3. The precision table counts, in `labels_changed`, test rows whose label differs from the
#    float ensemble. Run a real round with `frac_bits=4`: does it still equal
#    `plaintext_reference(level1, weights, frac_bits=4)`? And the float ensemble?
# 4. Run `secure_ensemble(level1, weights, reveal="mean", receivers=[0], committee=None)`:
#    which parties learn the result now? Check `result.parties[k].received`.
# 5. Extend the cost measurement to 7 parties and to 10 classes (`n_classes=10`). Which grows
#    faster with `M`: the mean or the labels round? Why?
# 6. With `M = 4` parties, what is the largest `t` allowed? Try `colluders=2` and read the error.
# 7. Run a committee round with `absent=` *every* institution but one, then with
#    `min_institutions=2`. What does the second round say, and why is a minimum useful?
# 8. Time `secure_ensemble(..., reveal="labels")` for 3, 10 and 30 institutions (use
#    `random_predictions`) with the committee. Why is the committee's time almost flat in `N`,
#    and why can the first design not even run 30 parties on a laptop?
