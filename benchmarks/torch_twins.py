"""PyTorch twins of every architecture of the zoo (``efl_toolkit/models/zoo.py``), for benchmarks.

Each twin has the same layers, widths, activations, dropout rates and per-image standardization
as its Flax NNX original, takes the same ``float32 [B, H, W, C]`` images (transposed to NCHW for
the convolutional ones, as PyTorch eager expects) and trains with the same loss (softmax
cross-entropy) and optimizer (AdamW: Adam moments plus decoupled weight decay, no augmentation).
Only the speed is compared, so initialisations differ.

Importing this module needs PyTorch (``pip install torch==2.13.0``): callers catch
``ImportError`` and report the comparison as skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from efl_toolkit.data.medmnist import Split


def _standardize(x: torch.Tensor) -> torch.Tensor:
    """Per-image standardization, as ``efl_toolkit.models.zoo.standardize_images``."""
    dims = tuple(range(1, x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    return (x - mean) / (x.std(dim=dims, keepdim=True, correction=0) + 1e-3)


class Logistic(nn.Module):
    def __init__(self, shape: tuple[int, int, int], n_classes: int):
        super().__init__()
        self.linear = nn.Linear(int(np.prod(shape)), n_classes)

    def forward(self, x):
        return self.linear(_standardize(x).flatten(1))


class MLP(nn.Module):
    def __init__(self, shape: tuple[int, int, int], n_classes: int):
        super().__init__()
        self.hidden1 = nn.Linear(int(np.prod(shape)), 128)
        self.hidden2 = nn.Linear(128, 64)
        self.out = nn.Linear(64, n_classes)
        self.dropout = nn.Dropout(0.2)

    def forward(self, x):
        x = self.dropout(torch.relu(self.hidden1(_standardize(x).flatten(1))))
        return self.out(torch.relu(self.hidden2(x)))


class SmallCNN(nn.Module):
    channels_first = True

    def __init__(self, shape: tuple[int, int, int], n_classes: int):
        super().__init__()
        height, width, channels = shape
        self.conv1 = nn.Conv2d(channels, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.dense = nn.Linear(max(height // 4, 1) * max(width // 4, 1) * 64, 128)
        self.out = nn.Linear(128, n_classes)
        self.dropout = nn.Dropout(0.3)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv1(_standardize(x))), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.out(self.dropout(torch.relu(self.dense(x.flatten(1)))))


class BasicBlock(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs, momentum=0.1)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs, momentum=0.1)
        self.shortcut = nn.Identity()
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False),
                                          nn.BatchNorm2d(outputs, momentum=0.1))

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(self.shortcut(x) + y)


class ResNet(nn.Module):
    channels_first = True

    def __init__(self, shape: tuple[int, int, int], n_classes: int,
                 widths: tuple[int, ...] = (16, 32, 64), blocks_per_stage: int = 2):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(shape[2], widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0], momentum=0.1), nn.ReLU())
        blocks, previous = [], widths[0]
        for stage, width in enumerate(widths):
            for index in range(blocks_per_stage):
                blocks.append(BasicBlock(previous, width, 2 if stage and not index else 1))
                previous = width
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Linear(previous, n_classes)

    def forward(self, x):
        return self.out(self.blocks(self.stem(_standardize(x))).mean(dim=(2, 3)))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(mlp_dim, dim))

    def forward(self, x):
        y = self.norm1(x)
        x = x + self.attention(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    channels_first = True

    def __init__(self, shape: tuple[int, int, int], n_classes: int, dim: int = 64,
                 depth: int = 2, heads: int = 4, mlp_dim: int = 128):
        super().__init__()
        height, width, channels = shape
        patch = max(1, min(height, width) // 7)
        self.embed = nn.Conv2d(channels, dim, patch, stride=patch)
        self.position = nn.Parameter(
            0.02 * torch.randn(1, (height // patch) * (width // patch), dim))
        self.dropout = nn.Dropout(0.1)
        self.blocks = nn.Sequential(*[TransformerBlock(dim, heads, mlp_dim)
                                      for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.out = nn.Linear(dim, n_classes)

    def forward(self, x):
        x = self.embed(_standardize(x)).flatten(2).transpose(1, 2) + self.position
        x = self.blocks(self.dropout(x))
        return self.out(self.norm(x.mean(dim=1)))


TWINS: dict[str, type[nn.Module]] = {"logistic": Logistic, "mlp": MLP, "vit": TinyViT,
                                     "cnn": SmallCNN, "resnet": ResNet}


def trainer(arch: str, image_shape: tuple[int, int, int], n_classes: int, batch_size: int,
            seed: int = 0) -> Callable[..., tuple[float, float]]:
    """A function ``run(train, steps, threads=None) -> (first_step_seconds, samples_per_second)``.

    ``run`` builds a fresh twin, takes ``steps`` AdamW steps (lr 2e-3, weight decay 1e-4) over
    one shuffled pass of ``train`` (at least ``steps * batch_size`` images), and times the steps
    after the first (PyTorch's warm-up, the counterpart of JAX's compilation). ``threads`` sets
    PyTorch's intra-op threads for that run (default: PyTorch's own, one per core).

    Raises:
        KeyError: ``arch`` has no twin.
    """
    twin = TWINS[arch]

    def run(train: Split, steps: int, threads: int | None = None) -> tuple[float, float]:
        default_threads = torch.get_num_threads()
        torch.set_num_threads(threads or default_threads)
        try:
            return _timed(train, steps)
        finally:
            torch.set_num_threads(default_threads)

    def _timed(train: Split, steps: int) -> tuple[float, float]:
        torch.manual_seed(seed)
        model = twin(image_shape, n_classes)
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
        images = train.images
        if getattr(twin, "channels_first", False):
            images = images.transpose(0, 3, 1, 2)
        images = torch.from_numpy(np.ascontiguousarray(images))
        labels = torch.from_numpy(train.labels.astype(np.int64))
        order = np.random.default_rng(seed).permutation(len(train))

        def step(index: int) -> None:
            batch = torch.from_numpy(order[index * batch_size:(index + 1) * batch_size])
            loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        model.train()
        started = time.perf_counter()
        step(0)
        first = time.perf_counter() - started
        started = time.perf_counter()
        for index in range(1, steps):
            step(index)
        return first, (steps - 1) * batch_size / (time.perf_counter() - started)

    return run
