"""A zoo of Flax NNX image classifiers of very different capacities.

Every architecture is built from the dataset's image shape ``(H, W, C)`` and class count, so the
same names work for grayscale and colour images of any size (28x28, 64x64...). All models share
one calling convention::

    logits = model(images)                          # evaluation mode (the default)
    logits = model(images, train=True, key=key)     # training: dropout on, batch statistics

``images`` is ``float32 [B, H, W, C]`` in ``[0, 1]``; ``logits`` is ``[B, n_classes]``. Every model
first standardizes each image (zero mean, unit variance over its pixels), which cancels the
brightness and contrast differences between imaging devices and speeds up training. Dropout
takes its randomness from the explicit ``key`` (models hold no RNG state), and BatchNorm uses
batch statistics (and updates its running averages) only when ``train=True``.

Architectures, from the smallest to the largest:

* ``logistic``: multinomial logistic regression on the pixels.
* ``mlp``: two hidden layers with dropout.
* ``vit``: a tiny Vision Transformer (patch embedding, two attention blocks).
* ``cnn``: two conv-pool blocks and a dense head (the "small CNN").
* ``resnet``: a deeper residual CNN with BatchNorm (three stages of basic blocks).

Example:
    >>> from flax import nnx
    >>> import numpy as np
    >>> from efl_toolkit.models.zoo import build_model
    >>> model = build_model("cnn", (28, 28, 1), 2, nnx.Rngs(0))
    >>> model(np.zeros((4, 28, 28, 1), np.float32)).shape
    (4, 2)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

ImageShape = tuple[int, int, int]


def _check_shape(image_shape: ImageShape, n_classes: int) -> ImageShape:
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"image_shape must be (H, W, C) with positive sizes, got {image_shape!r}")
    if int(n_classes) < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes!r}")
    return shape  # type: ignore[return-value]


def _dropout(layer: nnx.Dropout, x: jax.Array, train: bool, key: jax.Array | None,
             salt: int) -> jax.Array:
    if not train or layer.rate == 0.0:
        return x
    if key is None:
        raise ValueError("train=True needs a PRNG `key` for dropout")
    return layer(x, deterministic=False, rngs=jax.random.fold_in(key, salt))


def _pool_windows(x: jax.Array) -> jax.Array:
    batch, height, width, channels = x.shape
    x = x[:, : height // 2 * 2, : width // 2 * 2]
    return x.reshape(batch, height // 2, 2, width // 2, 2, channels)


@jax.custom_jvp
def _max_pool_windows(x: jax.Array) -> jax.Array:
    return _pool_windows(x).max(axis=(2, 4))


@_max_pool_windows.defjvp
def _max_pool_windows_jvp(primals, tangents):
    (x,), (tangent,) = primals, tangents
    windows = _pool_windows(x)
    pooled = windows.max(axis=(2, 4))
    is_max = windows == pooled[:, :, None, :, None, :]
    return pooled, jnp.where(is_max, _pool_windows(tangent), 0.0).sum(axis=(2, 4))


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 max pooling, stride 2 (odd edges dropped), as a reshape and a max.

    Same values as ``nnx.max_pool(x, (2, 2), strides=(2, 2))``, but a cheaper gradient: each
    window's gradient goes to its maximum through one compare-and-select (a tie passes it to
    every tied element). XLA's ``select_and_scatter`` gradient of ``max_pool`` was ~10x slower
    on CPU, and the gradient of a plain ``max`` (which splits ties: count, divide) made the small
    CNN's training step ~25% slower.

    Example:
        >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
        >>> max_pool_2x2(x)[0, :, :, 0].tolist()
        [[5.0, 7.0], [13.0, 15.0]]
        >>> jax.grad(lambda x: max_pool_2x2(x).sum())(x)[0, :, :, 0].tolist()[1]
        [0.0, 1.0, 0.0, 1.0]
    """
    if x.shape[1] < 2 or x.shape[2] < 2:
        return x
    return _max_pool_windows(x)


def standardize_images(x: jax.Array, eps: float = 1e-3) -> jax.Array:
    """Per-image standardization: zero mean and unit variance over each image's pixels."""
    mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
    std = jnp.std(x, axis=(1, 2, 3), keepdims=True)
    return (x - mean) / (std + eps)


class LogisticRegression(nnx.Module):
    """Multinomial logistic regression on the flattened pixels."""

    def __init__(self, image_shape: ImageShape, n_classes: int, *, rngs: nnx.Rngs):
        height, width, channels = image_shape
        self.linear = nnx.Linear(height * width * channels, n_classes, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool = False, key: jax.Array | None = None):
        return self.linear(standardize_images(x).reshape(x.shape[0], -1))


class MLP(nnx.Module):
    """Two hidden ReLU layers with dropout."""

    def __init__(self, image_shape: ImageShape, n_classes: int, *, rngs: nnx.Rngs,
                 hidden: tuple[int, int] = (128, 64), dropout: float = 0.2):
        height, width, channels = image_shape
        self.hidden1 = nnx.Linear(height * width * channels, hidden[0], rngs=rngs)
        self.hidden2 = nnx.Linear(hidden[0], hidden[1], rngs=rngs)
        self.out = nnx.Linear(hidden[1], n_classes, rngs=rngs)
        self.dropout = nnx.Dropout(dropout)

    def __call__(self, x: jax.Array, *, train: bool = False, key: jax.Array | None = None):
        x = nnx.relu(self.hidden1(standardize_images(x).reshape(x.shape[0], -1)))
        x = _dropout(self.dropout, x, train, key, 0)
        x = nnx.relu(self.hidden2(x))
        return self.out(x)


class SmallCNN(nnx.Module):
    """Two 3x3 conv + 2x2 max-pool blocks (32, 64 channels), dense 128 with dropout."""

    def __init__(self, image_shape: ImageShape, n_classes: int, *, rngs: nnx.Rngs,
                 channels: tuple[int, int] = (32, 64), dense: int = 128, dropout: float = 0.3):
        height, width, in_channels = image_shape
        self.conv1 = nnx.Conv(in_channels, channels[0], (3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(channels[0], channels[1], (3, 3), rngs=rngs)
        flat = max(height // 4, 1) * max(width // 4, 1) * channels[1]
        self.dense = nnx.Linear(flat, dense, rngs=rngs)
        self.out = nnx.Linear(dense, n_classes, rngs=rngs)
        self.dropout = nnx.Dropout(dropout)

    @staticmethod
    def _pool(x: jax.Array) -> jax.Array:
        return max_pool_2x2(x)

    def __call__(self, x: jax.Array, *, train: bool = False, key: jax.Array | None = None):
        x = self._pool(nnx.relu(self.conv1(standardize_images(x))))
        x = self._pool(nnx.relu(self.conv2(x)))
        x = nnx.relu(self.dense(x.reshape(x.shape[0], -1)))
        x = _dropout(self.dropout, x, train, key, 0)
        return self.out(x)


class BasicBlock(nnx.Module):
    """Residual block: conv-BN-ReLU-conv-BN plus a (projected) shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(in_channels, out_channels, (3, 3), strides=stride,
                              use_bias=False, rngs=rngs)
        self.bn1 = nnx.BatchNorm(out_channels, momentum=0.9, rngs=rngs)
        self.conv2 = nnx.Conv(out_channels, out_channels, (3, 3), use_bias=False, rngs=rngs)
        self.bn2 = nnx.BatchNorm(out_channels, momentum=0.9, rngs=rngs)
        self.project = stride != 1 or in_channels != out_channels
        if self.project:
            self.shortcut = nnx.Conv(in_channels, out_channels, (1, 1), strides=stride,
                                     use_bias=False, rngs=rngs)
            self.bn_shortcut = nnx.BatchNorm(out_channels, momentum=0.9, rngs=rngs)

    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        frozen = not train
        y = nnx.relu(self.bn1(self.conv1(x), use_running_average=frozen))
        y = self.bn2(self.conv2(y), use_running_average=frozen)
        if self.project:
            x = self.bn_shortcut(self.shortcut(x), use_running_average=frozen)
        return nnx.relu(x + y)


class ResNet(nnx.Module):
    """A small ResNet: 3x3 stem, three stages of basic blocks, global average pooling."""

    def __init__(self, image_shape: ImageShape, n_classes: int, *, rngs: nnx.Rngs,
                 widths: tuple[int, ...] = (16, 32, 64), blocks_per_stage: int = 2):
        in_channels = image_shape[2]
        self.stem = nnx.Conv(in_channels, widths[0], (3, 3), use_bias=False, rngs=rngs)
        self.bn_stem = nnx.BatchNorm(widths[0], momentum=0.9, rngs=rngs)
        blocks = []
        previous = widths[0]
        for stage, width in enumerate(widths):
            for index in range(blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(BasicBlock(previous, width, stride, rngs=rngs))
                previous = width
        self.blocks = nnx.List(blocks)
        self.out = nnx.Linear(previous, n_classes, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool = False, key: jax.Array | None = None):
        x = self.stem(standardize_images(x))
        x = nnx.relu(self.bn_stem(x, use_running_average=not train))
        for block in self.blocks:
            x = block(x, train)
        return self.out(jnp.mean(x, axis=(1, 2)))


class TransformerBlock(nnx.Module):
    """Pre-norm transformer encoder block: self-attention and an MLP, both residual."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, *, rngs: nnx.Rngs):
        self.norm1 = nnx.LayerNorm(dim, rngs=rngs)
        self.attention = nnx.MultiHeadAttention(heads, dim, decode=False, deterministic=True,
                                                rngs=rngs)
        self.norm2 = nnx.LayerNorm(dim, rngs=rngs)
        self.mlp1 = nnx.Linear(dim, mlp_dim, rngs=rngs)
        self.mlp2 = nnx.Linear(mlp_dim, dim, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp2(nnx.gelu(self.mlp1(self.norm2(x))))


class TinyViT(nnx.Module):
    """A tiny Vision Transformer: patches of about 1/7 of the side, mean-pooled tokens."""

    def __init__(self, image_shape: ImageShape, n_classes: int, *, rngs: nnx.Rngs,
                 dim: int = 64, depth: int = 2, heads: int = 4, mlp_dim: int = 128,
                 dropout: float = 0.1):
        height, width, channels = image_shape
        self.patch = max(1, min(height, width) // 7)
        n_tokens = (height // self.patch) * (width // self.patch)
        self.embed = nnx.Conv(channels, dim, (self.patch, self.patch), strides=self.patch,
                              padding="VALID", rngs=rngs)
        self.position = nnx.Param(0.02 * jax.random.normal(rngs.params(), (1, n_tokens, dim)))
        self.blocks = nnx.List(
            [TransformerBlock(dim, heads, mlp_dim, rngs=rngs) for _ in range(depth)]
        )
        self.norm = nnx.LayerNorm(dim, rngs=rngs)
        self.out = nnx.Linear(dim, n_classes, rngs=rngs)
        self.dropout = nnx.Dropout(dropout)

    def __call__(self, x: jax.Array, *, train: bool = False, key: jax.Array | None = None):
        x = self.embed(standardize_images(x))
        x = x.reshape(x.shape[0], -1, x.shape[-1]) + self.position[...]
        x = _dropout(self.dropout, x, train, key, 0)
        for block in self.blocks:
            x = block(x)
        return self.out(self.norm(jnp.mean(x, axis=1)))


@dataclass(frozen=True)
class Architecture:
    """A registered architecture.

    Attributes:
        name: Registry name (``"cnn"``...).
        builder: ``builder(image_shape, n_classes, rngs=...) -> nnx.Module``.
        rank: Capability order used by capacity assignment (higher: more capable, preferred
            when the budget allows).
        description: One line for people.
    """

    name: str
    builder: Callable[..., nnx.Module]
    rank: int
    description: str


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture("logistic", LogisticRegression, 0, "logistic regression on pixels"),
        Architecture("mlp", MLP, 1, "MLP, two hidden layers (128, 64), dropout"),
        Architecture("vit", TinyViT, 2, "tiny Vision Transformer, 2 blocks, dim 64"),
        Architecture("cnn", SmallCNN, 3, "small CNN: 2 conv-pool blocks (32, 64), dense 128"),
        Architecture("resnet", ResNet, 4, "residual CNN: 3 stages x 2 basic blocks, BatchNorm"),
    )
}


def architecture_names() -> tuple[str, ...]:
    """Registered architecture names, from the least to the most capable.

    Example:
        >>> architecture_names()
        ('logistic', 'mlp', 'vit', 'cnn', 'resnet')
    """
    return tuple(sorted(ARCHITECTURES, key=lambda name: ARCHITECTURES[name].rank))


def build_model(arch: str, image_shape: ImageShape, n_classes: int, rngs: nnx.Rngs
                ) -> nnx.Module:
    """Builds a freshly initialised model of a registered architecture.

    Args:
        arch: Architecture name, one of :func:`architecture_names`.
        image_shape: ``(H, W, C)`` of the input images.
        n_classes: Number of classes (at least 2).
        rngs: Parameter initialisation randomness, e.g. ``nnx.Rngs(key)``.

    Returns:
        An ``nnx.Module`` mapping ``float32 [B, H, W, C]`` to logits ``[B, n_classes]``.

    Raises:
        ValueError: Unknown architecture name, bad image shape or class count.

    Example:
        >>> from flax import nnx
        >>> m = build_model("resnet", (64, 64, 3), 7, nnx.Rngs(0))
        >>> m(jnp.zeros((2, 64, 64, 3))).shape
        (2, 7)
    """
    if arch not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {arch!r}; choose one of {list(architecture_names())}"
        )
    shape = _check_shape(image_shape, n_classes)
    return ARCHITECTURES[arch].builder(shape, int(n_classes), rngs=rngs)


#: The zoo's own architectures (capacity assignment by measured cost chooses among these).
BUILTIN_ARCHITECTURES: tuple[str, ...] = tuple(ARCHITECTURES)
#: ``{capacity tier: architectures registered for it}`` (:func:`register_architecture`).
REGISTERED_FOR_TIER: dict[str, tuple[str, ...]] = {}


def register_architecture(name: str, builder: Callable[..., nnx.Module], *,
                          capacity: str | tuple[str, ...] | list[str] = (),
                          rank: int | None = None, description: str = "",
                          replace: bool = False) -> Architecture:
    """Registers one's own Flax NNX architecture, so the pipeline, the ledger (its
    MODEL_COMMIT ``architecture``), groups, FedAvg and the report can use it by name.

    The model must follow the zoo's calling convention (module docstring):
    ``builder(image_shape, n_classes, rngs=nnx.Rngs) -> nnx.Module`` and
    ``model(images, train=False, key=None) -> logits [B, n_classes]`` for ``float32 images
    [B, H, W, C]`` in ``[0, 1]`` (``key``: dropout randomness when ``train=True``).

    Args:
        name: A new architecture name (letters, digits, ``_``, ``-``).
        builder: The factory, e.g. the module class itself.
        capacity: Capacity tier(s) whose institutions train it by default instead of the
            measured assignment (``ExperimentConfig.architectures`` still wins); ``()``: only
            where a config names it.
        rank: Capability order among architectures (default: after all registered ones).
        description: One line for people.
        replace: Allow replacing a registered (not built-in) architecture of that name.

    Raises:
        ValueError: A bad, taken or built-in name, a builder that is not callable, or an
            unknown capacity tier.

    Example:
        >>> arch = register_architecture("tiny-linear", LogisticRegression, capacity="tiny")
        >>> arch.name in architecture_names(), REGISTERED_FOR_TIER["tiny"]
        (True, ('tiny-linear',))
        >>> unregister_architecture("tiny-linear")
    """
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"architecture name must be letters, digits, '_' or '-', got {name!r}")
    if name in BUILTIN_ARCHITECTURES or (name in ARCHITECTURES and not replace):
        raise ValueError(f"architecture {name!r} is already registered"
                         + ("" if name in BUILTIN_ARCHITECTURES else " (replace=True)"))
    if not callable(builder):
        raise ValueError(f"architecture {name!r}: builder must be callable, got "
                         f"{type(builder).__name__}")
    from efl_toolkit.data.institution import CAPACITY_TIERS

    tiers = (capacity,) if isinstance(capacity, str) else tuple(capacity)
    unknown = [t for t in tiers if t not in CAPACITY_TIERS]
    if unknown:
        raise ValueError(f"architecture {name!r}: unknown capacity tier {unknown[0]!r}; "
                         f"choose from {list(CAPACITY_TIERS)}")
    unregister_architecture(name)
    rank = max(a.rank for a in ARCHITECTURES.values()) + 1 if rank is None else int(rank)
    ARCHITECTURES[name] = Architecture(name, builder, rank, description or name)
    for tier in tiers:
        REGISTERED_FOR_TIER[tier] = (*REGISTERED_FOR_TIER.get(tier, ()), name)
    return ARCHITECTURES[name]


def unregister_architecture(name: str) -> None:
    """Removes an architecture added by :func:`register_architecture` (built-ins stay)."""
    if name in BUILTIN_ARCHITECTURES:
        raise ValueError(f"{name!r} is a built-in architecture")
    ARCHITECTURES.pop(name, None)
    for tier, names in list(REGISTERED_FOR_TIER.items()):
        kept = tuple(n for n in names if n != name)
        if kept:
            REGISTERED_FOR_TIER[tier] = kept
        else:
            del REGISTERED_FOR_TIER[tier]
