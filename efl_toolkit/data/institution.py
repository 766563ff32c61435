"""Institutions: an id, a private share of the data, a capacity profile and an imaging device.

Example:
    >>> import numpy as np
    >>> from efl_toolkit.data.medmnist import Split
    >>> from efl_toolkit.data.institution import CapacityProfile, Institution
    >>> split = Split(np.zeros((4, 28, 28, 1), np.float32), np.array([0, 1, 0, 1], np.int32))
    >>> inst = Institution("hospital-a", split, split, CapacityProfile.preset("large"))
    >>> inst.n_train, inst.capacity.tier
    (4, 'large')
"""

from __future__ import annotations

from dataclasses import dataclass, field

from efl_toolkit.data.medmnist import Split


@dataclass(frozen=True)
class CapacityProfile:
    """Compute and storage budget of one institution.

    Attributes:
        tier: A readable label (``"small"``, ``"medium"``, ``"large"``...).
        compute_gflops: Training compute the institution can spend per epoch (GFLOP).
        storage_mb: Storage available for model parameters (MB).
    """

    tier: str
    compute_gflops: float
    storage_mb: float

    @staticmethod
    def preset(tier: str) -> CapacityProfile:
        """A named capacity tier: ``tiny``, ``small``, ``medium`` or ``large``."""
        tiers = {
            "tiny": CapacityProfile("tiny", 0.05, 0.1),
            "small": CapacityProfile("small", 1.0, 1.0),
            "medium": CapacityProfile("medium", 20.0, 10.0),
            "large": CapacityProfile("large", 500.0, 200.0),
        }
        if tier not in tiers:
            raise ValueError(f"unknown capacity tier {tier!r}; choose one of {sorted(tiers)}")
        return tiers[tier]


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


@dataclass(frozen=True)
class Institution:
    """One healthcare institution of the federation.

    Attributes:
        id: Stable identifier, e.g. ``"hospital-a"`` (used on the ledger).
        train: The institution's private training share.
        val: The institution's own validation share (early stopping, ensemble weights).
        capacity: Compute and storage budget (decides its architectures).
        device: The imaging device profile applied to its images.
        architectures: Architectures it trains (its level-1 local ensemble).
    """

    id: str
    train: Split
    val: Split
    capacity: CapacityProfile
    device: DeviceProfile = field(default_factory=DeviceProfile)
    architectures: tuple[str, ...] = ()

    @property
    def n_train(self) -> int:
        return len(self.train)
