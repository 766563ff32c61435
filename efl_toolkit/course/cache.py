"""Every institution's locally trained models, cached on disk between notebooks.

Notebooks 02 and 03 train the same institutions' models with the same preset, seed and keys.
:func:`train_each_alone_cached` trains them once and stores the parameters (the deterministic
bytes of :func:`~efl_toolkit.training.serialize.params_to_bytes`) and the training records;
the next notebook loads them instead of training again. Test scores are recomputed from the
loaded models, so nothing shown is taken on trust from the cache.

Where: ``$EFL_CACHE/federations/<key>/`` when ``EFL_CACHE`` is set (``off`` or empty: no cache),
else ``~/.cache/efl_toolkit/federations/<key>/``. The key is a SHA-256 over everything the
result depends on: the training configuration and monitor, the PRNG key, the dataset's test
split, every institution's id, architectures and training and validation arrays, and the source
of the training, model and level-1 code. Any change gives a new key (a miss, so a retrain). An
entry whose parameters no longer hash to their recorded version is ignored and rewritten.

Example:
    >>> cache_directory() is None or cache_directory().name == "federations"
    True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from efl_toolkit.config import ExperimentConfig, TrainConfig
from efl_toolkit.data import Dataset, Institution
from efl_toolkit.federation import level1
from efl_toolkit.federation.level1 import LocalResult, evaluate_models, institution_architectures
from efl_toolkit.models import zoo
from efl_toolkit.training import local
from efl_toolkit.training.local import TrainResult
from efl_toolkit.training.serialize import params_from_bytes, params_to_bytes, sha256_hex

#: Environment variable naming the cache root (``off`` or empty disables the cache).
CACHE_ENV_VAR = "EFL_CACHE"
#: Code whose change invalidates every entry (training, the zoo, level 1).
_CODE = (local, zoo, level1)
_RECORD = "records.json"


def cache_directory() -> Path | None:
    """The folder holding cached federations, or ``None`` when ``EFL_CACHE`` is off/empty."""
    value = os.environ.get(CACHE_ENV_VAR)
    if value is None:
        return Path.home() / ".cache" / "efl_toolkit" / "federations"
    if value.strip().lower() in ("", "off", "0", "false"):
        return None
    return Path(value).expanduser() / "federations"


def federation_key(institutions: Sequence[Institution], dataset: Dataset,
                   config: TrainConfig | ExperimentConfig | None, key: jax.Array,
                   monitor: str = "val_loss") -> str:
    """SHA-256 hex of everything :func:`~efl_toolkit.federation.train_each_alone` depends on."""
    digest = hashlib.sha256()

    def add(*parts) -> None:
        for part in parts:
            data = part if isinstance(part, bytes) else np.ascontiguousarray(part).tobytes() \
                if isinstance(part, np.ndarray) else str(part).encode()
            digest.update(len(data).to_bytes(8, "little") + data)

    add(json.dumps(dataclasses.asdict(level1.train_config(config)), sort_keys=True), monitor,
        np.asarray(jax.random.key_data(key)), dataset.name, dataset.n_classes,
        dataset.test.images, dataset.test.labels)
    for inst in institutions:
        add(inst.id, ",".join(institution_architectures(inst, dataset)), inst.train.images,
            inst.train.labels, inst.val.images, inst.val.labels)
    for module in _CODE:
        add(Path(module.__file__).read_bytes())
    return digest.hexdigest()


def _save(folder: Path, results: dict[str, LocalResult]) -> None:
    """Writes ``results`` into ``folder`` atomically (a temporary sibling, then a rename)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    records = []
    for name, result in results.items():
        models = []
        for position, trained in enumerate(result.trained):
            data = params_to_bytes(trained.model)
            (staging / f"{len(records)}-{position}.params").write_bytes(data)
            fields = {f.name: getattr(trained, f.name) for f in dataclasses.fields(TrainResult)
                      if f.name != "model"}
            models.append({**fields, "history": list(trained.history),
                           "version": sha256_hex(data)})
        records.append({"name": name, "architectures": list(result.architectures),
                        "n_train": result.n_train, "models": models})
    (staging / _RECORD).write_text(json.dumps(records))
    shutil.rmtree(folder, ignore_errors=True)
    try:
        os.replace(staging, folder)
    except OSError:  # another kernel stored the same entry meanwhile: keep theirs
        shutil.rmtree(staging, ignore_errors=True)


def _load(folder: Path, dataset: Dataset) -> dict[str, LocalResult] | None:
    """The cached results, or ``None`` when missing or damaged (any file, any hash)."""
    try:
        records = json.loads((folder / _RECORD).read_text())
        results = {}
        for index, record in enumerate(records):
            trained = []
            for position, fields in enumerate(record["models"]):
                data = (folder / f"{index}-{position}.params").read_bytes()
                if sha256_hex(data) != fields["version"]:
                    return None
                template = zoo.build_model(fields["arch"], dataset.image_shape,
                                           dataset.n_classes, nnx.Rngs(0))
                kept = {k: v for k, v in fields.items() if k != "version"}
                trained.append(TrainResult(model=params_from_bytes(template, data),
                                           **{**kept, "history": tuple(kept["history"])}))
            results[record["name"]] = evaluate_models(record["name"], trained,
                                                      record["architectures"], dataset,
                                                      record["n_train"])
        return results
    except (OSError, ValueError, KeyError, TypeError):
        return None


def train_each_alone_cached(institutions: Sequence[Institution], dataset: Dataset,
                            config: TrainConfig | ExperimentConfig | None, key: jax.Array, *,
                            progress: bool = False, monitor: str = "val_loss",
                            refresh: bool = False) -> dict[str, LocalResult]:
    """:func:`~efl_toolkit.federation.train_each_alone`, loaded from the cache when an entry
    for exactly these inputs exists (see the module docstring), else trained and stored.

    Prints one line saying which happened and where the entry lives.

    Args:
        institutions, dataset, config, key, progress, monitor: As for ``train_each_alone``.
        refresh: Train even on a hit, and store the result (notebook 02, which teaches
            training, always trains; notebook 03 then loads).

    Returns:
        ``{institution id: LocalResult}``, equal (same version hashes, same test scores) to
        what training would return.
    """
    root = cache_directory()
    if root is None:
        return level1.train_each_alone(institutions, dataset, config, key, progress=progress,
                                       monitor=monitor)
    folder = root / federation_key(institutions, dataset, config, key, monitor)[:32]
    cached = _load(folder, dataset) if folder.is_dir() and not refresh else None
    if cached is not None and list(cached) == [inst.id for inst in institutions]:
        print(f"loaded every institution's trained models from the cache {folder} "
              f"(trained by an earlier notebook with the same preset, data and seed)")
        return cached
    results = level1.train_each_alone(institutions, dataset, config, key, progress=progress,
                                      monitor=monitor)
    try:
        _save(folder, results)
    except OSError as error:  # a read-only or full disk costs the cache, not the results
        print(f"trained; not cached ({error})")
        return results
    print(f"trained; cached in {folder} for the next notebook ({CACHE_ENV_VAR}=off disables)")
    return results
