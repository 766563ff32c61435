"""The course's cache of locally trained models: a hit equals training, any change misses."""

from __future__ import annotations

import dataclasses

import jax
import pytest

from efl_toolkit.config import TrainConfig
from efl_toolkit.course import cache
from efl_toolkit.data import load_dataset, make_institutions
from efl_toolkit.training.serialize import version_hash

CONFIG = TrainConfig(epochs=1)


@pytest.fixture(scope="module")
def federation():
    dataset = load_dataset("breastmnist")
    return dataset, make_institutions(dataset, 2, capacities=["tiny", "small"], seed=0)


def _versions(results):
    return {name: [version_hash(t.model) for t in r.trained] for name, r in results.items()}


def test_a_hit_loads_exactly_what_training_gave(federation, tmp_path, monkeypatch, capsys):
    dataset, institutions = federation
    monkeypatch.setenv("EFL_CACHE", str(tmp_path))
    first = cache.train_each_alone_cached(institutions, dataset, CONFIG, jax.random.key(0))
    assert "trained; cached in" in capsys.readouterr().out
    second = cache.train_each_alone_cached(institutions, dataset, CONFIG, jax.random.key(0))
    assert "loaded every institution's trained models" in capsys.readouterr().out
    assert _versions(second) == _versions(first)
    for name in first:
        assert second[name].test.auc == first[name].test.auc
        assert second[name].trained[0].history == first[name].trained[0].history
        assert second[name].trained[0].best_epoch == first[name].trained[0].best_epoch


def test_any_input_change_is_a_new_key(federation):
    dataset, institutions = federation
    key = jax.random.key(0)
    base = cache.federation_key(institutions, dataset, CONFIG, key)
    flipped = institutions[0].train.labels.copy()
    flipped[0] = 1 - flipped[0]
    changed = [dataclasses.replace(institutions[0], train=dataclasses.replace(
        institutions[0].train, labels=flipped)), institutions[1]]
    others = [cache.federation_key(institutions, dataset, TrainConfig(epochs=2), key),
              cache.federation_key(institutions, dataset, CONFIG, jax.random.key(1)),
              cache.federation_key(changed, dataset, CONFIG, key),
              cache.federation_key(institutions[:1], dataset, CONFIG, key),
              cache.federation_key(institutions, dataset, CONFIG, key, monitor="val_auc")]
    assert base == cache.federation_key(institutions, dataset, CONFIG, key)
    assert len({base, *others}) == 6


def test_a_damaged_entry_is_retrained(federation, tmp_path, monkeypatch, capsys):
    dataset, institutions = federation
    monkeypatch.setenv("EFL_CACHE", str(tmp_path))
    first = cache.train_each_alone_cached(institutions, dataset, CONFIG, jax.random.key(0))
    (entry,) = (tmp_path / "federations").iterdir()
    params = entry / "0-0.params"
    data = bytearray(params.read_bytes())
    data[-1] ^= 1
    params.write_bytes(bytes(data))
    capsys.readouterr()
    again = cache.train_each_alone_cached(institutions, dataset, CONFIG, jax.random.key(0))
    assert "trained; cached in" in capsys.readouterr().out
    assert _versions(again) == _versions(first)


def test_off_means_no_cache(federation, tmp_path, monkeypatch):
    monkeypatch.setenv("EFL_CACHE", "off")
    assert cache.cache_directory() is None
    dataset, institutions = federation
    cache.train_each_alone_cached(institutions[:1], dataset, CONFIG, jax.random.key(0))
    assert list(tmp_path.iterdir()) == []


def test_refresh_trains_even_on_a_hit(federation, tmp_path, monkeypatch, capsys):
    dataset, institutions = federation
    monkeypatch.setenv("EFL_CACHE", str(tmp_path))
    cache.train_each_alone_cached(institutions[:1], dataset, CONFIG, jax.random.key(0))
    capsys.readouterr()
    cache.train_each_alone_cached(institutions[:1], dataset, CONFIG, jax.random.key(0),
                                  refresh=True)
    assert "trained; cached in" in capsys.readouterr().out


def test_an_unwritable_cache_costs_the_cache_not_the_results(federation, tmp_path, monkeypatch,
                                                             capsys):
    dataset, institutions = federation
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("EFL_CACHE", str(blocker))
    results = cache.train_each_alone_cached(institutions[:1], dataset, CONFIG, jax.random.key(0))
    assert list(results) == [institutions[0].id]
    assert "trained; not cached" in capsys.readouterr().out
