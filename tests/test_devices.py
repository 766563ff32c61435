"""Imaging-device feature skew: each profile changes images the way it claims, within [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest

from efl_toolkit.data import (
    DEVICE_PROFILES,
    DeviceProfile,
    apply_device,
    device_profiles,
    gaussian_blur,
    load_dataset,
)


@pytest.fixture(scope="module")
def xrays():
    return load_dataset("pneumoniamnist").test.images[:64]


def sharpness(images):
    """Mean absolute difference between horizontal neighbours (high-frequency energy)."""
    return float(np.abs(np.diff(images, axis=2)).mean())


def test_reference_device_is_the_identity(xrays):
    out = apply_device(xrays, DEVICE_PROFILES["reference"], 0)
    assert DEVICE_PROFILES["reference"].is_identity
    np.testing.assert_array_equal(out, xrays)
    assert out is not xrays


@pytest.mark.parametrize("name", list(DEVICE_PROFILES))
def test_every_device_keeps_shape_dtype_and_unit_range(xrays, name):
    out = apply_device(xrays, DEVICE_PROFILES[name], 0)
    assert out.shape == xrays.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    if name != "reference":
        assert np.abs(out - xrays).mean() > 0.01


def test_each_device_shifts_the_statistic_it_names(xrays):
    def run(name):
        return apply_device(xrays, DEVICE_PROFILES[name], 0)

    base_mean, base_std, base_sharp = xrays.mean(), xrays.std(), sharpness(xrays)
    assert run("bright-washed-out").mean() > base_mean + 0.05
    assert run("bright-washed-out").std() < 0.85 * base_std
    assert run("dim-noisy").mean() < base_mean - 0.05
    assert sharpness(run("dim-noisy")) > 1.2 * base_sharp  # sensor noise adds pixel jitter
    assert sharpness(run("soft-focus")) < 0.8 * base_sharp
    assert run("high-contrast").std() > 1.15 * base_std
    assert run("portable-iot").mean() < base_mean


def test_devices_give_institutions_distinct_image_statistics(xrays):
    stats = {name: (round(float(out.mean()), 3), round(float(out.std()), 3),
                    round(sharpness(out), 3))
             for name, profile in DEVICE_PROFILES.items()
             for out in [apply_device(xrays, profile, 1)]}
    assert len(set(stats.values())) == len(DEVICE_PROFILES)


def test_colour_images_and_clipping():
    rng = np.random.default_rng(0)
    images = rng.random((5, 28, 28, 3)).astype(np.float32)
    harsh = DeviceProfile("harsh", brightness=0.5, contrast=3.0, noise_std=0.3, blur_sigma=0.5)
    out = apply_device(images, harsh, 0)
    assert out.shape == images.shape and out.min() == 0.0 and out.max() == 1.0


def test_noise_is_seeded():
    images = np.full((3, 28, 28, 1), 0.5, np.float32)
    noisy = DEVICE_PROFILES["dim-noisy"]
    a, b = apply_device(images, noisy, 5), apply_device(images, noisy, 5)
    c = apply_device(images, noisy, 6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    gen = np.random.default_rng(5)
    np.testing.assert_array_equal(apply_device(images, noisy, gen), a)


def test_gaussian_blur_conserves_mass_and_constants():
    impulse = np.zeros((1, 15, 15, 1), np.float32)
    impulse[0, 7, 7, 0] = 1.0
    out = gaussian_blur(impulse, 1.0)
    assert out.sum() == pytest.approx(1.0, abs=1e-5)
    assert out[0, 7, 7, 0] < 0.2 and out[0, 7, 8, 0] == pytest.approx(out[0, 8, 7, 0])
    assert out[0, 7, 8, 0] == pytest.approx(out[0, 7, 6, 0])  # symmetric
    flat = np.full((2, 28, 28, 3), 0.3, np.float32)
    np.testing.assert_allclose(gaussian_blur(flat, 1.5), flat, atol=1e-6)
    np.testing.assert_array_equal(gaussian_blur(impulse, 0.0), impulse)


def test_apply_device_rejects_unbatched_images():
    with pytest.raises(ValueError, match=r"images must be \[N, H, W, C\]"):
        apply_device(np.zeros((28, 28)), DEVICE_PROFILES["soft-focus"], 0)


def test_device_profile_rejects_negative_parameters():
    with pytest.raises(ValueError, match=r"device 'broken': contrast, noise_std and blur_sigma"):
        DeviceProfile("broken", noise_std=-0.1)


def test_device_profiles_are_distinct_seeded_and_extend_past_the_named_set():
    six = device_profiles(6, seed=0)
    assert {d.name for d in six} == set(DEVICE_PROFILES)
    assert [d.name for d in device_profiles(3, seed=0)] == [d.name for d in six[:3]]
    assert [d.name for d in device_profiles(6, seed=1)] != [d.name for d in six]
    many = device_profiles(9, seed=0)
    assert len({d.name for d in many}) == 9
    assert [d.name for d in many[6:]] == ["device-7", "device-8", "device-9"]
    assert many == device_profiles(9, seed=0)
    for extra in many[6:]:
        assert 0.7 <= extra.contrast <= 1.4 and 0 <= extra.noise_std <= 0.05
    with pytest.raises(ValueError, match=r"integer >= 1"):
        device_profiles(0, seed=0)
