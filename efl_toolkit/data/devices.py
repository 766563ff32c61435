"""Imaging-device feature skew: each institution's images pass through its own device profile.

Different hospitals and IoT imaging devices produce systematically different images of the same
anatomy: brighter or dimmer, flatter or harsher contrast, sensor noise, soft focus. A
:class:`DeviceProfile` captures this with four numbers, and :func:`apply_device` applies it to a
batch of ``[N, H, W, C]`` images in ``[0, 1]`` (the result stays in ``[0, 1]``).

Order of operations (optics first, sensor last): Gaussian blur, contrast around each image's
mean, brightness shift, additive Gaussian noise, clip to ``[0, 1]``.

Example:
    >>> import numpy as np
    >>> images = np.full((2, 28, 28, 1), 0.5, np.float32)
    >>> out = apply_device(images, DEVICE_PROFILES["dim-noisy"], np.random.default_rng(0))
    >>> out.shape, bool(out.min() >= 0 and out.max() <= 1), bool(out.mean() < 0.5)
    ((2, 28, 28, 1), True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DeviceProfile:
    """How an institution's imaging device distorts images (feature skew).

    Attributes:
        name: Device label, e.g. ``"scanner-b (dim, noisy)"``.
        brightness: Added to every pixel (images are in ``[0, 1]``).
        contrast: Multiplies the deviation from the image mean.
        noise_std: Standard deviation of additive Gaussian noise.
        blur_sigma: Standard deviation (pixels) of a Gaussian blur; 0 for none.
    """

    name: str = "reference"
    brightness: float = 0.0
    contrast: float = 1.0
    noise_std: float = 0.0
    blur_sigma: float = 0.0

    def __post_init__(self):
        if self.contrast < 0 or self.noise_std < 0 or self.blur_sigma < 0:
            raise ValueError(
                f"device {self.name!r}: contrast, noise_std and blur_sigma must be >= 0 "
                f"(got {self.contrast}, {self.noise_std}, {self.blur_sigma})"
            )

    @property
    def is_identity(self) -> bool:
        """True when the profile leaves images unchanged."""
        return (self.brightness == 0 and self.contrast == 1 and self.noise_std == 0
                and self.blur_sigma == 0)


#: Named device profiles, from a clean reference scanner to a cheap portable IoT device.
DEVICE_PROFILES: dict[str, DeviceProfile] = {
    p.name: p
    for p in (
        DeviceProfile("reference"),
        DeviceProfile("bright-washed-out", brightness=0.12, contrast=0.7),
        DeviceProfile("dim-noisy", brightness=-0.12, contrast=0.9, noise_std=0.04),
        DeviceProfile("soft-focus", contrast=1.05, noise_std=0.01, blur_sigma=1.0),
        DeviceProfile("high-contrast", brightness=-0.03, contrast=1.4),
        DeviceProfile("portable-iot", brightness=-0.05, contrast=0.8, noise_std=0.05,
                      blur_sigma=0.8),
    )
}


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of ``[N, H, W, C]`` images over H and W (reflect borders).

    Example:
        >>> img = np.zeros((1, 9, 9, 1), np.float32); img[0, 4, 4, 0] = 1
        >>> out = gaussian_blur(img, 1.0)
        >>> round(float(out.sum()), 4), bool(out[0, 4, 4, 0] < 1)
        (1.0, True)
    """
    images = np.asarray(images, dtype=np.float32)
    if sigma <= 0:
        return images.copy()
    height, width = images.shape[1:3]
    radius = int(min(np.ceil(3 * sigma), height - 1, width - 1))
    if radius < 1:
        return images.copy()
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).astype(np.float32)
    out = images
    for axis, size in ((1, height), (2, width)):
        pad = [(0, 0)] * 4
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="reflect")
        acc = np.zeros_like(out)
        for k, weight in enumerate(kernel):
            acc += weight * np.take(padded, np.arange(k, k + size), axis=axis)
        out = acc
    return out


def apply_device(images: np.ndarray, profile: DeviceProfile,
                 rng: int | np.random.Generator) -> np.ndarray:
    """Passes ``[N, H, W, C]`` images in ``[0, 1]`` through an imaging device profile.

    Args:
        images: Images, ``float`` in ``[0, 1]``.
        profile: The device's distortions.
        rng: Seed or NumPy generator for the sensor noise.

    Returns:
        New ``float32`` images of the same shape, clipped to ``[0, 1]``.

    Example:
        >>> x = np.random.default_rng(0).random((3, 28, 28, 3)).astype(np.float32)
        >>> y = apply_device(x, DEVICE_PROFILES["bright-washed-out"], 0)
        >>> bool(y.mean() > x.mean()), bool(y.std() < x.std())
        (True, True)
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"images must be [N, H, W, C], got shape {images.shape}")
    out = gaussian_blur(images, profile.blur_sigma)
    if profile.contrast != 1:
        mean = out.mean(axis=(1, 2, 3), keepdims=True)
        out = mean + np.float32(profile.contrast) * (out - mean)
    if profile.brightness != 0:
        out = out + np.float32(profile.brightness)
    if profile.noise_std > 0:
        generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        out = out + generator.normal(0.0, profile.noise_std, size=out.shape).astype(np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def random_device_profile(rng: int | np.random.Generator, name: str) -> DeviceProfile:
    """A device with randomly drawn (moderate) distortions.

    Example:
        >>> random_device_profile(0, "device-7").name
        'device-7'
    """
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return DeviceProfile(
        name=name,
        brightness=round(float(generator.uniform(-0.12, 0.12)), 3),
        contrast=round(float(generator.uniform(0.7, 1.4)), 3),
        noise_std=round(float(generator.uniform(0.0, 0.05)), 3),
        blur_sigma=round(float(generator.choice([0.0, generator.uniform(0.5, 1.2)])), 3),
    )


def device_profiles(n: int, seed: int | np.random.Generator) -> list[DeviceProfile]:
    """``n`` distinct device profiles: the named ones in a seeded order, then random ones.

    Args:
        n: Number of institutions (>= 1).
        seed: Seed or NumPy generator.

    Example:
        >>> names = [d.name for d in device_profiles(3, seed=0)]
        >>> len(set(names)), names == [d.name for d in device_profiles(3, seed=0)]
        (3, True)
    """
    if int(n) != n or n < 1:
        raise ValueError(f"number of device profiles must be an integer >= 1, got {n!r}")
    generator = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    named = list(DEVICE_PROFILES.values())
    order = generator.permutation(len(named))
    profiles = [named[i] for i in order[:n]]
    for i in range(len(profiles), n):
        profiles.append(random_device_profile(generator, f"device-{i + 1}"))
    return profiles
