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
#   not protect against (the threat model).
#
# > **One kernel is one party.** This notebook's kernel is a single process. Run on its own,
# > MPyC treats it as ONE party holding every input in the clear (`m=1`, `t=0`): no secrecy at
# > all. Real secrecy comes from the `M` separate party processes the toolkit launches, which
# > talk to each other over TCP on `127.0.0.1` (or across machines with `efl party`). Section 4
# > shows both.

# %%
# %matplotlib inline
import dataclasses

import numpy as np

from efl_toolkit.config import get_config
from efl_toolkit.course.viz import format_table
from efl_toolkit.data import institutions_from_config, load_dataset
from efl_toolkit.ensemble import hierarchical_ensemble
from efl_toolkit.federation import train_each_alone
from efl_toolkit.rng import experiment_keys, numpy_rng
from efl_toolkit.secure import (
    FixedPoint,
    secure_ensemble,
    secure_ensemble_in_process,
    secure_hierarchical_ensemble,
)
from efl_toolkit.secure.measure import (
    agreement,
    fixed_point_errors,
    measure_round_costs,
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
local = train_each_alone(quick, dataset, config, keys.params, progress=True)
model_probs = {name: [predict_proba(t.model, dataset.test.images) for t in result.trained]
               for name, result in local.items()}
weights = {inst.id: inst.n_train for inst in institutions}  # level 2: weight by data size
print(format_table([{"institution": name, "n_train": weights[name], "models": r.architectures,
                     "accuracy": r.test.accuracy, "auc": r.test.auc}
                    for name, r in local.items()]))

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
# `secure_ensemble` writes each institution's input to its own file, starts one `efl party`
# process per institution, lets them connect to each other over TCP on the loopback address,
# supervises them with timeouts, and collects what was opened. Each party secret-shares its
# weighted probabilities; the parties add the shares; the weighted mean (and its argmax) is
# opened. We record a transcript of the first 50 query rows.

# %%
result = secure_ensemble(level1, weights, reveal="mean", transcript=True, transcript_rows=50,
                         on_spawn=lambda pids: print("party processes started, PIDs:", pids))
print(f"{result.n_parties} parties, t = {result.threshold}, secret: {result.secret}, "
      f"{result.seconds:.2f} s wall time")
print(format_table([{"party": p.index, "institution": p.name, "address": p.address,
                     "status": p.status, "connect_s": p.connect_seconds,
                     "compute_s": p.compute_seconds, "bytes_sent": p.bytes_sent}
                    for p in result.parties]))

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
check = agreement(result, level1, weights)
print(f"labels equal the reference: {check['labels_equal_reference']}; "
      f"max |secure mean - reference| = {check['max_abs_diff_vs_reference']:.1e}; "
      f"max |secure mean - float mean| = {check['max_abs_diff_vs_float']:.1e} "
      f"(bound {check['error_bound']:.1e})")
plain = hierarchical_ensemble(model_probs, level2_weights=weights)
print("labels equal the plaintext hierarchical ensemble's:",
      bool(np.array_equal(result.labels, plain.labels)))
print(format_table([
    {"ensemble": "plaintext (notebook 03)", **evaluate(plain.probabilities, dataset.test.labels,
                                                       dataset.n_classes).to_dict()},
    {"ensemble": f"secure, {result.n_parties} parties", **evaluate(result.mean, dataset.test.labels,
                                                 dataset.n_classes).to_dict()},
], columns=["ensemble", "accuracy", "auc"]))

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
labels_only = secure_ensemble(level1, weights, reveal="labels")
print(f"mean opened: {labels_only.mean is not None}; labels equal the mean round's: "
      f"{bool(np.array_equal(labels_only.labels, result.labels))}; equal the reference: "
      f"{agreement(labels_only, level1, weights)['labels_equal_reference']}")
print(format_table([round_costs(result), round_costs(labels_only)]))

# %% [markdown]
# ### The whole hierarchy in one call
#
# `secure_hierarchical_ensemble` takes every institution's per-model probabilities, averages
# them locally (level 1, inside each institution, in the clear — they are its own models) and
# runs level 2 as a secure round.

# %%
hierarchy = secure_hierarchical_ensemble(model_probs, level2_weights=weights, reveal="labels")
print("same labels as the plaintext hierarchy:",
      bool(np.array_equal(hierarchy.labels, plain.labels)))

# %% [markdown]
# ## 7. What does it cost?
#
# Real rounds on random predictions of growing size. The wall time (dotted) is dominated by
# starting `M` Python processes and connecting them; the computation itself is small for the
# mean (additions are free, only the opening is sent) and grows with the rows for the labels
# (every comparison needs rounds of messages). On 2 CPU cores the argmax of 1000 rows × 10
# classes takes a few seconds: open labels only where the mean itself must stay secret.

# %%
settings = [{"reveal": reveal, "parties": 3, "rows": rows}
            for reveal in ("mean", "labels") for rows in (16, 128, 512)]
settings += [{"reveal": "labels", "parties": 5, "rows": rows} for rows in (16, 128, 512)]
costs = measure_round_costs(settings, n_classes=dataset.n_classes, seed=config.seed)
print(format_table(costs, columns=["reveal", "parties", "rows", "wall_seconds",
                                   "compute_seconds", "bytes_sent", "labels_equal_reference"]))
plot_round_costs(costs)

# %% [markdown]
# ## 8. The threat model, plainly
#
# - **Protected:** each institution's probabilities (and, with `reveal="labels"`, its weight
#   and the ensemble mean) against any `t < M/2` parties that pool everything they saw — as long
#   as they follow the protocol (*passive*, or semi-honest, adversaries) and a majority is
#   honest. With `M = 3`, `t = 1`.
# - **Not protected:** a party that lies about its inputs or deviates from the protocol
#   (*malicious* adversaries); a party that drops out (the round fails, loudly, naming it); and
#   whatever the **opened output** itself reveals — the labels or the mean are public by design.
# - **In this notebook** one machine plays every institution, and the calling process wrote
#   every input file: the secrecy shown is among the party processes. Across machines each
#   institution runs `efl party` with only its own file, optionally over TLS.
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
# - MPyC protects against `t < M/2` passive colluders, not against malicious inputs, drop-outs,
#   or what the output itself reveals.
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
# 4. Run `secure_ensemble(level1, weights, reveal="mean", receivers=[0])`: which parties learn
#    the result now? Check `result.parties[k].received`.
# 5. Extend the cost measurement to 7 parties and to 10 classes (`n_classes=10`). Which grows
#    faster with `M`: the mean or the labels round? Why?
# 6. With `M = 4` parties, what is the largest `t` allowed? Try `colluders=2` and read the error.
