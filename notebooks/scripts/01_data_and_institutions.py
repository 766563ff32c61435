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
# # 01 · Data and institutions: non-IID splits and imaging devices
#
# Real hospitals do not hold a random sample of the world's patients. A breast-cancer referral
# centre sees more malignant cases than a screening clinic; a portable IoT ultrasound takes
# noisier, dimmer images than a university hospital's scanner; a large hospital simply has more
# data. This notebook builds such a federation from a real MedMNIST dataset.
#
# **In this notebook you will learn**
#
# - what the embedded MedMNIST data looks like (BreastMNIST: ultrasound, benign vs malignant);
# - how the training split is divided among institutions with **label skew** (Dirichlet
#   partition) so that each one sees a different class mix;
# - how each institution's **imaging device** distorts its images (feature skew);
# - how to *measure* heterogeneity, and how IID compares with strong skew (`alpha = 0.1`);
# - why the official test split stays untouched: it is the shared query set of the ensemble.

# %%
# %matplotlib inline
print("loading JAX, Flax and the toolkit: 2-5 s the first time ...", flush=True)
from efl_toolkit.config import get_config
from efl_toolkit.course import check, show
from efl_toolkit.course.heterogeneity import compare_partitions, heterogeneity_stats
from efl_toolkit.course.tables import class_counts_text
from efl_toolkit.course.viz import plot_image_grid, plot_partition_comparison
from efl_toolkit.data import (
    DEVICE_PROFILES,
    institutions_from_config,
    load_dataset,
    make_institutions,
    plot_class_distribution,
    plot_device_examples,
    summary_table,
)

config = get_config()
print(f"preset {config.name}: {config.n_institutions} institutions, partition "
      f"{config.partition} (alpha={config.dirichlet_alpha}), device skew {config.device_skew}")

# %% [markdown]
# ## 1. The dataset
#
# The toolkit ships two small MedMNIST v2 datasets inside the package (no download at run time):
# `breastmnist` and `pneumoniamnist`. Any other MedMNIST-format `.npz` loads by path. Images come
# back as `float32 [N, H, W, C]` in `[0, 1]` with integer labels, split into the official
# train / validation / test parts.

# %%
dataset = load_dataset(config.dataset)
show(dataset.summary(), caption="the dataset")

# %% [markdown]
# A few training images of each class (the number of training examples per class is in
# brackets). Note the imbalance: most BreastMNIST images are benign or normal.

# %%
plot_image_grid(dataset.train, dataset.class_names, per_class=8)

# %% [markdown]
# ## 2. A federation of institutions
#
# `institutions_from_config` splits the **training** split among the institutions with the
# preset's scheme. The Dirichlet scheme draws, for every class, the shares of that class going to
# each institution from `Dirichlet(alpha)`: large `alpha` gives similar class mixes, small
# `alpha` makes each institution see mostly one class. Each institution then carves its own
# (stratified) validation share out of its data, gets a capacity tier (its compute and storage
# budget, used in notebook 02) and an imaging device.

# %%
institutions = institutions_from_config(dataset, config)
show(summary_table(institutions, dataset.n_classes),
     caption=f"class_counts per institution: {', '.join(map(repr, dataset.class_names))}")

# %%
plot_class_distribution(institutions, dataset.class_names)

# %% [markdown]
# ## 3. Imaging devices: the same anatomy, different pictures
#
# A device profile is four numbers: brightness shift, contrast, sensor noise and blur. Here is
# one test image as every named device would capture it...

# %%
plot_device_examples(dataset.test.images[0], list(DEVICE_PROFILES.values()))

# %% [markdown]
# ...and as each of our institutions' devices captures it. Every institution's training and
# validation images went through its own device, so a model trained at one hospital has to cope
# with images from the others' devices when they ask it questions.

# %%
plot_device_examples(dataset.test.images[0], institutions)

# %% [markdown]
# ## 4. Measuring heterogeneity: IID versus strong skew
#
# `heterogeneity_stats` puts numbers on how different the institutions are:
#
# - `label_skew`: mean total-variation distance between an institution's class mix and the
#   pooled one (0 = identical mixes);
# - `size_ratio`: largest over smallest training share (quantity skew);
# - `missing_classes`: institution-class pairs with no training example at all;
# - `brightness_spread`, `contrast_spread`: how far apart the devices pushed the images.

# %%
stats = heterogeneity_stats(institutions, dataset.n_classes)
show(stats, caption=f"heterogeneity of this preset's {len(institutions)} institutions")
print(f"On average an institution's class mix is {stats['label_skew']:.2f} (total variation) "
      f"away from the pooled mix; the largest holds {stats['size_ratio']:.1f} times as many "
      f"training images as the smallest; {stats['missing_classes']} institution-class pairs "
      "have no example at all.")

# %% [markdown]
# Now the same dataset, the same number of institutions and the same seed under four settings:
# an IID split with identical devices, the preset's Dirichlet skew, strong skew with
# `alpha = 0.1`, and quantity skew (equal class mixes, very unequal sizes).

# %%
settings = {
    "IID, same device": {"scheme": "iid", "device_skew": False},
    f"Dirichlet alpha={config.dirichlet_alpha:g}": {"alpha": config.dirichlet_alpha},
    "Dirichlet alpha=0.1": {"alpha": 0.1},
    "quantity skew": {"scheme": "quantity", "beta": 0.5},
}
rows = compare_partitions(dataset, config.n_institutions, settings, seed=config.seed)
show(rows)

# %% [markdown]
# **Check:** the IID split has (almost) no label skew, and `alpha = 0.1` has more of it than
# the preset's milder Dirichlet split.

# %%
# check: label skew grows from IID to the preset's Dirichlet split to alpha = 0.1
skew = {row["setting"]: row["label_skew"] for row in rows}
iid, mild, strong = (skew[name] for name in list(settings)[:3])
check(iid < mild < strong, "label skew: IID < preset Dirichlet < alpha = 0.1",
      f"{iid:.3f}, {mild:.3f}, {strong:.3f}")

# %% [markdown]
# The class mix per institution, side by side (shares of each institution's training data):

# %%
plot_partition_comparison({
    "IID": make_institutions(dataset, config.n_institutions, scheme="iid", seed=config.seed),
    "Dirichlet alpha=0.1": make_institutions(dataset, config.n_institutions, alpha=0.1,
                                             seed=config.seed),
}, dataset.class_names)

# %% [markdown]
# With `alpha = 0.1` one institution may see (almost) only one class: on its own it cannot
# learn to tell the classes apart, however good its model. This is the situation where learning
# together pays off most — and where naive averaging struggles most.
#
# ## 5. The test split stays clean
#
# The official **test** split is never partitioned and never passes through a device: it plays
# the role of the queries that the federation answers together (notebook 03 onward), and every
# accuracy in this course is measured on it.

# %%
print(f"test split: {len(dataset.test)} images in {dataset.n_classes} classes: "
      f"{class_counts_text(dataset.test.class_counts(dataset.n_classes), dataset.class_names)}")

# %% [markdown]
# ## Summary
#
# - `load_dataset` gives the official splits of an embedded (or any MedMNIST-format) dataset.
# - `make_institutions` / `institutions_from_config` split the training data among
#   institutions with IID, Dirichlet label skew or quantity skew, carve each one's own
#   validation share, and give each an imaging device and a capacity tier.
# - Heterogeneity is measurable: label skew, size ratio, missing classes and device spread grow
#   from the IID split to `alpha = 0.1`.
# - The test split is shared and clean: the common yardstick for everything that follows.
#
# ## Exercises
#
# 1. Re-run section 4 with `alpha` in `0.01, 0.1, 1, 10, 100`. How does `label_skew` behave as
#    `alpha` grows? What is its value for IID, and why is it not exactly 0?
# 2. Load `pneumoniamnist` instead. Which dataset is more imbalanced, and how does that show up
#    in the summary table?
# 3. Design a new `DeviceProfile` for a cheap handheld probe and plot it with
#    `plot_device_examples`. Which of its four numbers do you expect to hurt a model most?
# 4. With 10 institutions and `alpha = 0.1`, how many institution-class pairs are missing?
#    What does that mean for an institution that trains alone?
