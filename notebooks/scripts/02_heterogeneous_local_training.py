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
# # 02 · Heterogeneous local training: every institution trains what it can afford
#
# A university hospital with a GPU cluster and a rural clinic with an old desktop cannot be asked
# to train the same neural network. In this toolkit they do not have to: each institution trains
# the architectures its **capacity** allows, on its **own** data, and nothing but predictions
# will ever leave it (notebooks 03 and 04).
#
# **In this notebook you will learn**
#
# - the model zoo (logistic regression, MLP, tiny ViT, small CNN, ResNet) and what each costs,
#   measured from the model itself (parameters, bytes, FLOPs);
# - how a capacity profile (compute per epoch, storage) maps to an institution's architectures:
#   its *local ensemble*, level 1 of the hierarchy;
# - how each institution trains its models locally with JAX/Flax NNX, early-stopped on its own
#   validation share (with progress bars);
# - how the trained models score on the shared test split, and why isolation hurts;
# - what a model's *version hash* is (the fingerprint the ledger records in notebook 05).

# %%
# %matplotlib inline
print("loading JAX, Flax and the toolkit: 2-5 s the first time ...", flush=True)
from efl_toolkit.config import get_config
from efl_toolkit.course import check, show
from efl_toolkit.course.cache import train_each_alone_cached
from efl_toolkit.course.summaries import (
    architecture_rows,
    capacity_rows,
    institution_rows,
    majority_class_accuracy,
    model_rows,
    training_histories,
)
from efl_toolkit.course.viz import plot_metric_comparison, plot_training_curves
from efl_toolkit.data import institutions_from_config, load_dataset
from efl_toolkit.rng import experiment_keys
from efl_toolkit.training.serialize import (
    arrays_to_bytes,
    model_arrays,
    params_from_bytes,
    params_to_bytes,
    sha256_hex,
    version_hash,
)

config = get_config()
keys = experiment_keys(config.seed)
dataset = load_dataset(config.dataset)
institutions = institutions_from_config(dataset, config)
print(f"preset {config.name}: {len(institutions)} institutions, up to {config.train.epochs} "
      f"epochs each (patience {config.train.patience}), batch {config.train.batch_size}")

# %% [markdown]
# ## 1. The model zoo, and what each model costs
#
# Costs are *measured*: the parameter count from an abstract build of the model, and the FLOPs
# by tracing one forward pass and adding up its matrix products and convolutions. Training
# costs about three forward passes per image. Note how differently the architectures spend
# their budget: the MLP has many parameters but few FLOPs; the ResNet has few parameters but
# the most FLOPs.

# %%
show(architecture_rows(dataset.image_shape, dataset.n_classes))

# %% [markdown]
# ## 2. From capacity to architectures
#
# Each institution has a compute budget (GFLOP per training epoch) and a storage budget (MB).
# The most capable architecture that fits comes first; further ones are added while the *sum*
# still fits (at most two here). An institution's models form its **local ensemble**.

# %%
show(capacity_rows(institutions, dataset))

# %% [markdown]
# ## 3. Local training
#
# Every model trains on its institution's training share only, with Adam(W), a cosine learning
# rate schedule, random flips and shifts, and early stopping on the institution's own
# validation share (the best epoch is kept). Keys are explicit: institution `i` trains with a
# key folded from the experiment's parameter key, so the whole run is reproducible from the
# seed. The progress bars show each model's epochs. The trained models are also stored in a
# cache on disk (`efl_toolkit.course.cache`, keyed by the preset, data, seed and code), so
# notebook 03 can load them instead of training the same models again.
#
# *This cell takes about 6 s on a quiet 2-core machine (classroom preset, JAX compilation cache
# warm; 25-40 s on a busy machine or with a cold cache).*

# %%
results = train_each_alone_cached(institutions, dataset, config, keys.params, progress=True,
                                  refresh=True)
show(model_rows(results))

# %% [markdown]
# The training curves: loss on the institution's training share, and accuracy on its own
# validation share. Small, skewed validation shares make these curves jumpy — one reason an
# institution alone struggles to know how good its model really is.

# %%
plot_training_curves(training_histories(results), metric="val_accuracy")

# %% [markdown]
# ## 4. How good is each institution on its own?
#
# Each institution's local ensemble (the mean of its models' class probabilities) answers the
# shared test split. The dashed line is the accuracy of always answering the most frequent
# class: with imbalanced data, accuracy alone flatters. *Balanced accuracy* (the mean recall
# over the classes; 0.5 means "knows nothing" for two classes) and AUC tell more.

# %%
alone = institution_rows(results)
show(alone)
chance = majority_class_accuracy(dataset.test.labels, dataset.n_classes)
plot_metric_comparison(alone, metric=["accuracy", "balanced_accuracy", "auc"],
                       reference={"majority-class accuracy": chance})

# %% [markdown]
# ## 5. Version hashes
#
# A trained model is identified by the SHA-256 of its serialized parameters — its *version
# hash*. Equal parameters give equal hashes in any process, on any machine; change one weight
# and the hash changes completely. The ledger (notebook 05) records these hashes, so anyone can
# later check that the model used in an ensemble round is exactly the committed one.

# %%
first = results[institutions[0].id].trained[0]
print(f"{institutions[0].id} / {first.arch}: {version_hash(first.model)}")

# %% [markdown]
# **Check:** a version hash is a fingerprint of the parameters: serializing the model and
# loading the bytes into a fresh model gives the same hash, and changing a single weight gives
# a different one.

# %%
# check: equal parameters give equal version hashes; one changed weight changes the hash
copy = params_from_bytes(first.model, params_to_bytes(first.model))
check(version_hash(copy) == version_hash(first.model), "a reloaded model has the same hash")
arrays = model_arrays(first.model)
name = next(key for key, value in arrays.items() if value.dtype.kind == "f")
changed = arrays_to_bytes({**arrays, name: (arrays[name] + 1e-3).astype(arrays[name].dtype)})
check(sha256_hex(changed) != version_hash(first.model),
      f"changing the weights '{name}' by 0.001 changes the hash")

# %% [markdown]
# ## Summary
#
# - The zoo spans two orders of magnitude in cost; costs are measured from the models.
# - `assign_architectures` turns a capacity profile into a local ensemble of one or two models;
#   institutions of different capacity end up with *different* architectures.
# - `train_each_alone` trains every institution's models on its own share, early-stopped on its
#   own validation share, reproducibly from explicit keys.
# - On their own, institutions with skewed, small shares are weak: some barely beat answering
#   the majority class. Learning together should help — but their models cannot simply be
#   averaged (notebook 03).
# - Every trained model has a version hash, its fingerprint on the ledger.
#
# ## Exercises
#
# 1. Give every institution the `"large"` capacity tier (`make_institutions(..., capacities=
#    ["large"] * 3)`). Which architectures do they get, and do the test scores improve?
# 2. Train with `monitor="val_auc"` instead of `val_loss` (an argument of `train_each_alone`).
#    Which models stop at a different epoch?
# 3. Re-run section 3 twice with the same seed and compare the version hashes. Then change
#    `config.seed`. What do you observe, and why does the ledger care?
# 4. With `EFL_PRESET=paper`, how much longer does training take, and how much better are the
#    institutions alone?
