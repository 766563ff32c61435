"""Local training at one institution: a functional ``jax.jit`` step, early stopping, progress.

The model is split once into a static graph definition and two pytrees (trainable parameters and
the rest, e.g. BatchNorm statistics). The training step is a pure function of those pytrees,
compiled once per (graph definition, optimiser settings, batch shape) and cached, with its
state buffers donated; a Python loop feeds it shuffled mini-batches. (A per-step ``nnx.jit``
pays a graph traversal on every call, and an epoch inside ``lax.scan`` runs convolutions slowly
on CPU: both are avoided on purpose.)

On CPU the step is compiled with :func:`training_compiler_options`: XLA's default hands every
convolution to YNNPACK, whose kernel-gradient convolution (a window as large as the feature map,
the batch as input features) ran 3-4x slower than XLA's own; without it the small CNN trains
about twice as fast (see ``benchmarks/train_throughput.py``).

After every epoch the model is scored on the institution's own validation share; the best state
is kept and restored, and training stops after ``patience`` epochs without improvement.

Example:
    >>> import jax, numpy as np
    >>> from efl_toolkit.config import TrainConfig
    >>> from efl_toolkit.data.medmnist import Split
    >>> from efl_toolkit.training.local import train_local, predict_proba
    >>> rng = np.random.default_rng(0)
    >>> split = Split(rng.random((32, 8, 8, 1), dtype=np.float32), rng.integers(0, 2, 32))
    >>> result = train_local("logistic", split, split, jax.random.key(0),
    ...                      TrainConfig(epochs=2, batch_size=16), n_classes=2, progress=False)
    >>> predict_proba(result.model, split.images).shape
    (32, 2)
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from efl_toolkit.config import TrainConfig
from efl_toolkit.data.medmnist import Split
from efl_toolkit.models.zoo import build_model
from efl_toolkit.progress import Progress
from efl_toolkit.rng import numpy_rng
from efl_toolkit.training.evaluate import evaluate

#: Early-stopping criteria: name -> True when larger is better.
MONITORS = {"val_loss": False, "val_accuracy": True, "val_auc": True}
#: The learning rate decays along a cosine from its peak down to this fraction of it.
FINAL_LR_FRACTION = 0.05

#: Op kinds that XLA CPU may still hand to YNNPACK in the training step: dots (alone or fused)
#: and reductions, faster there; convolutions and elementwise fusions stay with XLA.
YNN_FUSION_TYPES = ("LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT", "LIBRARY_FUSION_TYPE_DOT",
                    "LIBRARY_FUSION_TYPE_REDUCE")

_TRAIN_STEPS: dict = {}
_FORWARDS: dict = {}


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train_local`.

    Attributes:
        model: The trained model with the best validation state restored.
        arch: Architecture name when the model was built from a name, else the class name.
        history: One dict per epoch (``epoch``, ``train_loss``, ``val_loss``,
            ``val_accuracy``, ``val_auc``, ``lr``, ``seconds``).
        best_epoch: 1-based epoch whose state was kept.
        best_val_metric: Value of the monitored metric at ``best_epoch`` (NaN without
            validation data).
        monitor: The early-stopping criterion (a key of :data:`MONITORS`).
        stopped_early: Whether patience ran out before ``config.epochs``.
        seconds: Wall time of the whole call (compilation included).
        samples_per_second: Training samples per second of the steps after the first
            (compilation excluded).
    """

    model: nnx.Module
    arch: str
    history: tuple[dict, ...]
    best_epoch: int
    best_val_metric: float
    monitor: str
    stopped_early: bool
    seconds: float
    samples_per_second: float
    n_train: int = field(default=0)


def _augment(images: jax.Array, key: jax.Array) -> jax.Array:
    """Random horizontal flips and shifts of up to ~1/14 of the side (edge padding)."""
    batch, height, width, channels = images.shape
    flip_key, shift_key = jax.random.split(key)
    flip = jax.random.bernoulli(flip_key, 0.5, (batch, 1, 1, 1))
    images = jnp.where(flip, images[:, :, ::-1, :], images)
    pad = max(1, min(height, width) // 14)
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    offsets = jax.random.randint(shift_key, (batch, 2), 0, 2 * pad + 1)

    def crop(image, offset):
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (height, width, channels))

    return jax.vmap(crop)(padded, offsets)


def training_compiler_options() -> dict[str, str]:
    """XLA compiler options of the training step: keeps convolutions away from YNNPACK on CPU.

    XLA CPU (jaxlib 0.10) runs convolutions through YNNPACK by default. For the weight gradient
    of a 3x3 convolution, XLA builds a convolution whose window is the whole feature map and
    whose input features are the batch; YNNPACK ran it 3-4x slower than XLA's own kernels
    (12 ms instead of 3.6 ms for 32->64 channels at 14x14, batch 64), half of the small CNN's
    step. Only dots and reductions keep going to YNNPACK (:data:`YNN_FUSION_TYPES`). Other
    backends, and an XLA that does not know the option, get no options (its defaults).

    Returns:
        ``compiler_options`` for ``jax.jit`` (empty off CPU or when XLA rejects them).

    Example:
        >>> options = training_compiler_options()
        >>> jax.jit(lambda x: x * 2, compiler_options=options)(np.float32(3)).item()
        6.0
    """
    return dict(_checked_compiler_options())


@functools.cache
def _checked_compiler_options() -> tuple[tuple[str, str], ...]:
    if jax.default_backend() != "cpu":
        return ()
    options = {"xla_cpu_experimental_ynn_fusion_type": ",".join(YNN_FUSION_TYPES)}
    try:
        jax.jit(lambda x: x + 1, compiler_options=options).lower(np.float32(0)).compile()
    except jax.errors.JaxRuntimeError:  # another XLA version: keep its defaults
        return ()
    return tuple(options.items())


def _optimizer(weight_decay: float) -> optax.GradientTransformation:
    # AdamW without the learning rate: the step multiplies by a traced ``lr`` so that a new
    # schedule (another institution, another epoch count) reuses the same compiled step.
    return optax.chain(optax.scale_by_adam(), optax.add_decayed_weights(weight_decay))


def _train_step(graphdef, weight_decay: float, augment: bool, xla_defaults: bool = False):
    """The compiled training step for one graph definition (cached).

    ``xla_defaults=True`` compiles without :func:`training_compiler_options` (for benchmarks).
    """
    cache_key = (graphdef, float(weight_decay), bool(augment), bool(xla_defaults))
    if cache_key in _TRAIN_STEPS:
        return _TRAIN_STEPS[cache_key]
    optimizer = _optimizer(weight_decay)

    def step(params, rest, opt_state, images, labels, key, step_index, lr):
        key = jax.random.fold_in(key, step_index)
        augment_key, dropout_key = jax.random.split(key)
        if augment:
            images = _augment(images, augment_key)

        def loss_fn(params):
            # copy=True: fresh Variables at this trace level, so BatchNorm may update them
            model = nnx.merge(graphdef, params, rest, copy=True)
            logits = model(images, train=True, key=dropout_key)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
            return loss, nnx.split(model, nnx.Param, ...)[2]

        (loss, rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, jax.tree.map(lambda u: -lr * u, updates))
        return params, rest, opt_state, loss

    options = {} if xla_defaults else training_compiler_options()
    compiled = jax.jit(step, donate_argnums=(0, 1, 2), compiler_options=options)
    _TRAIN_STEPS[cache_key] = compiled
    return compiled


def _forward(graphdef):
    """Compiled evaluation-mode softmax for one graph definition (cached)."""
    if graphdef not in _FORWARDS:
        _FORWARDS[graphdef] = jax.jit(
            lambda state, images: jax.nn.softmax(nnx.merge(graphdef, state)(images), axis=-1)
        )
    return _FORWARDS[graphdef]


def predict_proba(model: nnx.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class probabilities of a model in evaluation mode.

    Batches are padded to ``batch_size`` so one compiled function serves any number of images.

    Args:
        model: A zoo model (or any module mapping ``[B, H, W, C]`` to logits).
        images: ``float32 [N, H, W, C]``.
        batch_size: Rows per compiled call.

    Returns:
        ``float64 [N, n_classes]``, every row summing to 1.

    Example:
        >>> from efl_toolkit.models.zoo import build_model
        >>> m = build_model("mlp", (8, 8, 1), 3, nnx.Rngs(0))
        >>> p = predict_proba(m, np.zeros((5, 8, 8, 1), np.float32))
        >>> p.shape, bool(np.allclose(p.sum(axis=1), 1.0))
        ((5, 3), True)
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"images must be [N, H, W, C], got shape {images.shape}")
    graphdef, state = nnx.split(model)
    forward = _forward(graphdef)
    n = images.shape[0]
    size = max(1, min(batch_size, 1 << max(0, n - 1).bit_length()))
    chunks = []
    for start in range(0, n, size):
        batch = images[start:start + size]
        if len(batch) < size:
            batch = np.concatenate([batch, np.zeros((size - len(batch), *batch.shape[1:]),
                                                    np.float32)])
        chunks.append(np.asarray(forward(state, batch))[: min(size, n - start)])
    if not chunks:
        return np.zeros((0, 0), np.float64)
    probs = np.concatenate(chunks).astype(np.float64)
    return probs / probs.sum(axis=1, keepdims=True)


def _learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    progress = min(step / max(total_steps - 1, 1), 1.0)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.learning_rate * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * cosine)


def _validation_scores(model: nnx.Module, val: Split, n_classes: int) -> dict:
    if len(val) == 0:
        return {"val_loss": math.nan, "val_accuracy": math.nan, "val_auc": math.nan}
    probs = predict_proba(model, val.images)
    picked = probs[np.arange(len(val)), val.labels]
    result = evaluate(probs, val.labels, n_classes, warn=False)
    return {
        "val_loss": float(-np.mean(np.log(np.clip(picked, 1e-12, None)))),
        "val_accuracy": result.accuracy,
        "val_auc": result.auc,
    }


def _improved(value: float, best: float, larger_is_better: bool) -> bool:
    if math.isnan(value):
        return False
    if math.isnan(best):
        return True
    return value > best + 1e-6 if larger_is_better else value < best - 1e-6


def _copy_tree(tree):
    return jax.tree.map(lambda leaf: jnp.array(leaf, copy=True), tree)


def _check_inputs(train: Split, val: Split, n_classes: int, image_shape: tuple) -> None:
    if len(train) == 0:
        raise ValueError("train_local: the training split is empty")
    for name, split in (("train", train), ("val", val)):
        if len(split) and tuple(split.images.shape[1:]) != tuple(image_shape):
            raise ValueError(f"train_local: {name} images have shape {split.images.shape[1:]}, "
                             f"the model expects {tuple(image_shape)}")
        if len(split) and (split.labels.min() < 0 or split.labels.max() >= n_classes):
            raise ValueError(f"train_local: {name} labels must lie in [0, {n_classes}), "
                             f"found [{split.labels.min()}, {split.labels.max()}]")


def train_local(model_or_arch: nnx.Module | str, train: Split, val: Split, key: jax.Array,
                config: TrainConfig | None = None, *, n_classes: int | None = None,
                progress: bool = True, monitor: str = "val_loss",
                description: str | None = None) -> TrainResult:
    """Trains one model on an institution's training share with early stopping.

    Args:
        model_or_arch: A zoo architecture name (built here from ``key``) or an existing model
            (not modified: its state is copied).
        train: The institution's training share.
        val: Its own validation share (may be empty: then no early stopping).
        key: PRNG key; initialisation, shuffling, augmentation and dropout derive from it.
        config: Hyper-parameters (default ``TrainConfig()``).
        n_classes: Number of classes; required with an architecture name, and checked
            against the model's output otherwise.
        progress: Show a per-epoch progress bar (:class:`~efl_toolkit.progress.Progress`: a
            bar in a terminal or notebook, one plain line per model in a log file).
        monitor: Early-stopping criterion: ``val_loss`` (default), ``val_accuracy`` or
            ``val_auc`` (``val_loss`` is used instead when the validation share holds a
            single class).
        description: Progress bar label (default: the architecture name).

    Returns:
        A :class:`TrainResult` whose model holds the best validation state.

    Raises:
        ValueError: Empty training split, unknown monitor, missing ``n_classes``, or images and
            labels that do not match the model.

    Example:
        >>> rng = np.random.default_rng(1)
        >>> s = Split(rng.random((20, 8, 8, 3), dtype=np.float32), rng.integers(0, 3, 20))
        >>> r = train_local("mlp", s, s, jax.random.key(0), TrainConfig(epochs=1),
        ...                 n_classes=3, progress=False)
        >>> r.best_epoch, len(r.history)
        (1, 1)
    """
    started = time.perf_counter()
    config = config or TrainConfig()
    if monitor not in MONITORS:
        raise ValueError(f"unknown monitor {monitor!r}; choose one of {sorted(MONITORS)}")
    init_key, shuffle_key, step_key = jax.random.split(key, 3)
    image_shape = tuple(train.images.shape[1:])
    if isinstance(model_or_arch, str):
        if n_classes is None:
            raise ValueError("train_local: n_classes is required when building from a name")
        arch = model_or_arch
        model = build_model(arch, image_shape, n_classes, nnx.Rngs(init_key))
    else:
        arch = type(model_or_arch).__name__
        model = model_or_arch
        out = nnx.eval_shape(lambda m: m(jnp.zeros((1, *image_shape), jnp.float32)), model)
        if n_classes is not None and out.shape[-1] != n_classes:
            raise ValueError(f"train_local: the model has {out.shape[-1]} outputs but "
                             f"n_classes={n_classes}")
        n_classes = int(out.shape[-1])
    _check_inputs(train, val, n_classes, image_shape)
    if monitor == "val_auc" and len(np.unique(val.labels)) < 2:
        monitor = "val_loss"  # AUC is undefined on a single-class validation share

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    params, rest = _copy_tree(params), _copy_tree(rest)
    opt_state = _optimizer(config.weight_decay).init(params)
    step = _train_step(graphdef, config.weight_decay, config.augment)

    n_train = len(train)
    batch_size = int(config.batch_size)
    steps_per_epoch = math.ceil(n_train / batch_size)
    total_steps = steps_per_epoch * config.epochs
    shuffler = numpy_rng(shuffle_key)
    larger_is_better = MONITORS[monitor]
    best_state = None
    best_value, best_epoch, stale, stopped_early = math.nan, 0, 0, False
    history: list[dict] = []
    step_seconds, timed_samples, global_step = 0.0, 0, 0
    bar = Progress(config.epochs, description or arch, unit="epoch", enabled=progress)
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        order = shuffler.permutation(n_train)
        if n_train % batch_size:  # wrap around so every batch is full and real
            extra = steps_per_epoch * batch_size - n_train
            order = np.concatenate([order, np.resize(shuffler.permutation(n_train), extra)])
        losses = []
        timer = time.perf_counter()
        for index in range(steps_per_epoch):
            batch = order[index * batch_size:(index + 1) * batch_size]
            lr = _learning_rate(config, global_step, total_steps)
            params, rest, opt_state, loss = step(
                params, rest, opt_state, train.images[batch], train.labels[batch], step_key,
                np.int32(global_step), np.float32(lr))
            losses.append(loss)
            if global_step == 0:  # exclude compilation from the throughput
                loss.block_until_ready()
                timer = time.perf_counter()
            else:
                timed_samples += batch_size
            global_step += 1
        train_loss = float(np.mean(jax.device_get(losses)))
        step_seconds += time.perf_counter() - timer
        current = nnx.merge(graphdef, params, rest)
        scores = _validation_scores(current, val, n_classes)
        history.append({"epoch": epoch, "train_loss": train_loss, **scores, "lr": lr,
                        "seconds": time.perf_counter() - epoch_start})
        # without validation data the latest epoch is the best one
        value = scores[monitor] if len(val) else float(epoch)
        if _improved(value, best_value, larger_is_better or not len(val)):
            best_value, best_epoch, stale = value, epoch, 0
            best_state = (_copy_tree(params), _copy_tree(rest))
        else:
            stale += 1
        bar.update(loss=f"{train_loss:.3f}", **{monitor: f"{scores[monitor]:.3f}"})
        if len(val) and stale >= config.patience and epoch < config.epochs:
            stopped_early = True
            break
    bar.finish(stopped_at=len(history) if stopped_early else None, best=best_epoch or None)
    if best_epoch == 0:  # the metric was never defined (NaN): keep the final state
        best_state, best_epoch = (params, rest), len(history)
    best_model = nnx.merge(graphdef, *best_state)
    return TrainResult(
        model=best_model,
        arch=arch,
        history=tuple(history),
        best_epoch=best_epoch,
        best_val_metric=float(best_value) if len(val) else math.nan,
        monitor=monitor,
        stopped_early=stopped_early,
        seconds=time.perf_counter() - started,
        samples_per_second=timed_samples / step_seconds if step_seconds > 0 else math.nan,
        n_train=n_train,
    )
