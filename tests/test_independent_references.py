"""Expected values computed by another route than the code under test (issue 14, item 5).

* Secure labels against numpy's FLOAT weighted argmax (not the parties' fixed-point encoding),
  on near-tie rows built on purpose: wherever the float margin between the top two classes
  exceeds twice the fixed-point error bound, the labels must agree; below it, either of the two
  near-tied classes is acceptable, never a third.
* ``report.json``'s figures recomputed with scikit-learn from the probabilities the run saved
  (``probs.npz``), not read back from the report.
* Model version hashes recomputed from the raw parameter arrays (walked with ``nnx.iter_graph``,
  packed here from the format's written description, hashed with ``hashlib``), against the
  versions the ledger recorded and the artifact files on disk.
"""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pytest
from flax import nnx
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

from efl_toolkit.ledger import open_ledger
from efl_toolkit.ledger.reader import artifacts_dir
from efl_toolkit.models import architecture_names
from efl_toolkit.models.zoo import build_model
from efl_toolkit.secure import secure_ensemble
from efl_toolkit.training.serialize import version_hash

WEIGHTS = np.array([0.5, 0.3, 0.2])
MARGINS = [0.0, 0.5, 1.0, 1.9, 2.5, 4.0, 10.0, 100.0, 1e4]   # in units of the error bound


def near_ties(bound: float, repeats: int = 6, seed: int = 0):
    """Three institutions' ``[n, 3]`` probabilities whose WEIGHTED mean has, per row, a chosen
    margin ``d`` (``MARGINS`` x ``bound``, both signs) between two random classes; each
    institution's own rows differ widely (noise that cancels only in the weighted mean).

    Returns ``(preds, pair)``: the matrices and each row's two near-tied classes.
    """
    rng = np.random.default_rng(seed)
    margins = np.array([s * min(m * bound, 0.3) for m in MARGINS for s in (1, -1)] * repeats)
    n = margins.size
    base = rng.uniform(0.36, 0.45, size=n)      # the two leading classes (the third <= 0.28)
    noise = rng.normal(scale=0.02, size=(3, n))
    noise -= WEIGHTS @ noise                                    # sum_i w_i noise_i = 0
    e = margins / 2 + noise                                     # per-institution half-gap
    preds = np.stack([base + e, base - e, np.broadcast_to(1 - 2 * base, e.shape)],
                     axis=-1)                                   # [3, n, 3]
    order = np.array([rng.permutation(3) for _ in range(n)])    # random class positions
    preds = np.take_along_axis(preds, np.broadcast_to(np.argsort(order)[None], preds.shape),
                               axis=-1)
    assert (preds >= 0).all() and np.allclose(preds.sum(-1), 1)
    return list(preds), order[:, :2]


@pytest.mark.parametrize(("committee", "reveal", "frac_bits"), [
    (3, "labels", 16), (3, "mean", 8), (None, "labels", 8), (None, "mean", 16)])
def test_secure_labels_equal_the_float_argmax_beyond_the_error_bound(committee, reveal,
                                                                      frac_bits):
    bound = 3 * 2.0 ** -(frac_bits + 1)   # N inputs, each rounded to within 2^-(f+1)
    preds, pair = near_ties(bound)
    result = secure_ensemble(preds, list(WEIGHTS), reveal=reveal, committee=committee,
                             frac_bits=frac_bits)
    assert result.fixed_point.error_bound == bound
    mean = np.average(np.stack(preds), axis=0, weights=WEIGHTS)    # numpy float reference
    top2 = np.sort(mean, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    clear = margin > 2 * bound + 1e-9
    assert clear.sum() > len(margin) / 2 and (~clear).sum() >= 3 * len(MARGINS)
    np.testing.assert_array_equal(result.labels[clear], mean.argmax(axis=1)[clear])
    chosen = result.labels[~clear]
    assert ((chosen == pair[~clear, 0]) | (chosen == pair[~clear, 1])).all()
    if reveal == "mean":
        assert np.abs(result.mean - mean).max() <= bound + 1e-9


# --- report.json recomputed from probs.npz ---------------------------------------------------

def scores(labels: np.ndarray, probs: np.ndarray) -> dict:
    """Accuracy, balanced accuracy and AUC by scikit-learn (one-vs-rest macro beyond 2)."""
    predicted = probs.argmax(axis=1)
    auc = (roc_auc_score(labels, probs[:, 1]) if probs.shape[1] == 2
           else roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    return {"accuracy": accuracy_score(labels, predicted),
            "balanced_accuracy": balanced_accuracy_score(labels, predicted), "auc": auc}


def assert_scores(reported: dict, probs: np.ndarray, labels: np.ndarray, prefix: str = ""):
    for metric, value in scores(labels, probs).items():
        assert reported[prefix + metric] == pytest.approx(value, abs=1e-6), (prefix, metric)


def test_report_figures_recomputed_by_scikit_learn(breastmnist_experiment):
    _, out = breastmnist_experiment
    report = json.loads((out / "report.json").read_text())
    saved = np.load(out / "probs.npz")
    labels = saved["labels"]
    assert len(labels) == report["dataset"]["n_test"]
    secure = report["ensembles"]["secure_mean"]
    assert_scores(secure, saved["secure_scored"], labels)
    assert_scores(report["ensembles"]["ensemble_only"], saved["ensemble_only"], labels)
    assert_scores(report["baselines"]["centralized"], saved["centralized"], labels)
    for inst in report["institutions"]:
        assert_scores(inst, saved[f"alone/{inst['id']}"], labels, prefix="test_")
    # the secure round against the plaintext mean it must reproduce
    plain, opened = saved["plaintext_mean"], saved["secure_opened"]
    diff = np.abs(opened - plain).max()
    assert secure["max_abs_diff_vs_plaintext"] == pytest.approx(diff, abs=1e-12)
    assert diff <= secure["error_bound"]
    assert secure["label_agreement"] == pytest.approx(
        np.mean(saved["secure_labels"] == plain.argmax(axis=1)), abs=1e-12)
    top2 = np.sort(plain, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * secure["error_bound"]
    np.testing.assert_array_equal(saved["secure_labels"][clear], plain.argmax(axis=1)[clear])
    best = report["baselines"]["best_single_institution"]
    assert_scores(best, saved[f"alone/{best['institution']}"], labels)


# --- version hashes by another route ----------------------------------------------------------

def independent_version_hash(model: nnx.Module) -> str:
    """SHA-256 of the parameter format as documented in ``training/serialize.py`` (magic,
    uint32 count, then per array sorted by '/'-joined path: uint32 path length, path, uint8
    dtype length, dtype, uint8 ndim, uint64 dims, raw little-endian C-order bytes), written
    here from the arrays found by walking the module graph, without the library's encoder."""
    arrays = {}
    for path, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Variable) and not isinstance(node, nnx.RngState):
            arrays["/".join(map(str, path))] = np.asarray(node.get_value())
    digest = hashlib.sha256(b"EFL-PARAMS\x00v1\n")
    digest.update(len(arrays).to_bytes(4, "little"))
    for path in sorted(arrays):
        array = arrays[path].astype(arrays[path].dtype.newbyteorder("<"))
        name, dtype = path.encode(), array.dtype.str.encode()
        digest.update(len(name).to_bytes(4, "little") + name + bytes([len(dtype)]) + dtype
                      + bytes([array.ndim]) + b"".join(struct.pack("<Q", d) for d in array.shape))
        digest.update(array.tobytes(order="C"))
    return digest.hexdigest()


def test_ledger_versions_are_the_hashes_of_the_raw_parameters(breastmnist_experiment):
    result, out = breastmnist_experiment
    view = open_ledger(out / "ledger.sqlite")
    try:
        recorded = {(v.institution, v.version) for v in view.model_versions()}
    finally:
        view.close()
    store = artifacts_dir(out / "ledger.sqlite")
    checked = 0
    for inst_id, local in result.alone.items():
        for arch, trained in zip(local.architectures, local.trained, strict=True):
            version = independent_version_hash(trained.model)
            assert (inst_id, version) in recorded, (inst_id, arch)
            assert hashlib.sha256((store / version).read_bytes()).hexdigest() == version
            checked += 1
    assert checked == sum(len(r.architectures) for r in result.alone.values()) >= 3


@pytest.mark.parametrize("arch", architecture_names())
def test_version_hash_of_every_architecture_by_another_route(arch):
    """Including BatchNorm statistics (resnet) and excluding the RNG state."""
    model = build_model(arch, (12, 12, 1), 3, nnx.Rngs(0))
    assert version_hash(model) == independent_version_hash(model)
