"""The faster secure argmax (efl_toolkit.secure.fast_argmax): exact labels, tight bit length,
MPyC pinned. Functional only: nothing here is timed."""

from __future__ import annotations

import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from efl_toolkit.secure import plaintext_reference, secure_ensemble
from efl_toolkit.secure.fast_argmax import (
    PINNED_MPYC,
    compare_bits,
    fast_prf_call,
    fast_pseudorandom_share,
    fast_pseudorandom_share_0,
    fast_random_split,
    fast_randomness,
    fast_sqrt,
    mpyc_version,
    secure_argmax,
    uniform_below,
)
from efl_toolkit.secure.fixed_point import FixedPoint, reference_round
from efl_toolkit.secure.protocol import RoundSpec, load_runtime, run_in_process

ROOT = Path(__file__).resolve().parents[1]
#: MPyC 0.11's thresha.PRF(bytes(range(16)), p) on input 5 (little-endian, 8 bytes), p the
#: modulus of SecInt(20): the pseudorandom numbers every party derives from its PRSS keys.
PRF_KNOWN = [2336338302969781, 3653230235624171, 1202900432310712, 1195461595894582,
             3670821635972930]
P20 = 4503599627370323


def tie_inputs(n_inst: int, rows: int, classes: int, seed: int):
    """Random rows, plus rows with exact ties, near-ties (one unit of 2^-16) and one-hot rows."""
    rng = np.random.default_rng(seed)
    probs = [rng.dirichlet(np.ones(classes), size=rows) for _ in range(n_inst)]
    for p in probs:
        p[: rows // 4] = 1.0 / classes                         # every class tied
        p[rows // 4: rows // 2, :2] = 0.25                     # the first two tied
        p[rows // 4: rows // 2, 2:] = 0.5 / (classes - 2)
        near = slice(rows // 2, rows // 2 + rows // 8)         # class 1 ahead by 2^-16
        p[near, 0], p[near, 1] = 0.3, 0.3 + 2.0 ** -16
        p[near, 2:] = (0.4 - 2.0 ** -16) / (classes - 2)
        onehot = slice(rows - 4, rows)                         # the largest differences
        p[onehot] = np.eye(classes)[rng.integers(0, classes, 4)]
    return {f"h{i}": p for i, p in enumerate(probs)}, [1.0] * (n_inst - 1) + [0.75]


def in_process(coro_fn):
    """Runs ``coro_fn(mpc)`` on a single in-process MPyC party (worker thread)."""
    def work():
        mpc = load_runtime(["--no-log"], keep_event_loop_policy=True)
        return mpc.run(coro_fn(mpc))

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(work).result()


def test_mpyc_is_the_pinned_version():
    assert mpyc_version() == PINNED_MPYC, (
        f"MPyC {mpyc_version()} is installed but efl_toolkit.secure.fast_argmax replaces "
        f"internals of MPyC {PINNED_MPYC}: re-check fast_prf_call/fast_random_split against the "
        "new mpyc/thresha.py, then update PINNED_MPYC, pyproject.toml and PRF_KNOWN")
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"mpyc=={PINNED_MPYC}" in deps, "pyproject.toml must pin the same MPyC version"


def test_prf_known_answer_and_fast_path_identical():
    from mpyc import thresha

    key, s = bytes(range(16)), (5).to_bytes(8, "little", signed=True)
    assert thresha.PRF(key, P20)(s, (5,)).tolist() == PRF_KNOWN
    assert fast_prf_call(thresha.PRF(key, P20), s, (5,)).tolist() == PRF_KNOWN
    for bound in (P20, 2251799813685119, 1 << 28, 3, 2, (1 << 61) - 1):  # last: MPyC's code
        prf = thresha.PRF(key, bound)
        for shape in ((1000,), (300, 2)):
            assert np.array_equal(fast_prf_call(prf, s, shape), prf(s, shape)), (bound, shape)


@pytest.mark.parametrize(("m", "t"), [(3, 1), (4, 1), (5, 2), (7, 3)])
def test_prss_shares_identical_to_mpyc(m, t):
    """Every party's pseudorandom shares (of randoms and of zeros) equal MPyC's own."""
    import itertools
    import secrets

    from mpyc import thresha

    mpc = load_runtime(["--no-log"], keep_event_loop_policy=True)
    keys = {s: secrets.token_bytes(16) for s in itertools.combinations(range(m), m - t)}
    uci = (7).to_bytes(8, "little", signed=True)
    for bits in (19, 22, 30):                                # 30: MPyC's own code (p > 2^55)
        field = mpc.SecInt(bits).field
        for i in range(m):
            prfs = {s: thresha.PRF(k, field.order) for s, k in keys.items() if i in s}
            assert np.array_equal(fast_pseudorandom_share(field, m, i, prfs, uci, 300).value,
                                  thresha.np_pseudorandom_share(field, m, i, prfs, uci, 300).value)
            assert np.array_equal(
                fast_pseudorandom_share_0(field, m, i, prfs, uci, 300).value,
                thresha.np_pseudorandom_share_0(field, m, i, prfs, uci, 300).value)


def test_sqrt_identical_to_mpyc():
    field = load_runtime(["--no-log"], keep_event_loop_policy=True).SecInt(19).field
    x = np.array([int(v) for v in uniform_below(field.modulus, 600)], dtype=object)
    squares = (x * x % field.modulus).reshape(20, 30)
    for inv in (True, False):
        mine = fast_sqrt(field.array, squares, INV=inv)
        assert mine.shape == (20, 30) and np.array_equal(mine, field.array._sqrt(squares, INV=inv))
    with pytest.raises(ZeroDivisionError):
        fast_sqrt(field.array, np.array([4, 0], dtype=object), INV=True)


def test_random_split_shares_recombine_and_are_uniform_below_p():
    from mpyc import thresha

    field = load_runtime(["--no-log"], keep_event_loop_policy=True).SecInt(20).field
    secret = field.array(np.arange(-50, 50))
    big = load_runtime(["--no-log"], keep_event_loop_policy=True).SecInt(30).field
    points = [(i + 1, s) for i, s in enumerate(fast_random_split(big, big.array([5, -7]), 1, 3))]
    assert thresha.np_recombine(big, points[:2]).value.tolist() == [5, big.modulus - 7]
    for t, m in ((1, 3), (2, 5), (3, 7)):
        shares = fast_random_split(field, secret, t, m)
        assert shares.shape == (m, 100) and shares.dtype == object
        assert all(0 <= int(v) < P20 for v in shares.ravel())
        points = [(i + 1, shares[i]) for i in range(m - 1, m - 2 - t, -1)]     # any t+1
        assert np.array_equal(thresha.np_recombine(field, points).value, secret.value)
        assert len({int(v) for v in shares[1]}) > 90                            # masked
    big = (1 << 63) + 1                                        # rejects about half the words
    draws = uniform_below(big, 5000)
    assert draws.max() < big and len(np.unique(draws)) == 5000
    assert 0.4 < float(np.mean(draws / big)) < 0.6


def test_fast_randomness_is_scoped_and_guarded(monkeypatch):
    import mpyc
    from mpyc import finfields, thresha

    before = (thresha.PRF.__call__, thresha.np_random_split,
              vars(finfields.PrimeFieldArray)["_sqrt"])
    with fast_randomness() as active:
        assert active and thresha.np_random_split is fast_random_split
        assert finfields.PrimeFieldArray._sqrt.__func__ is fast_sqrt
    assert (thresha.PRF.__call__, thresha.np_random_split,
            vars(finfields.PrimeFieldArray)["_sqrt"]) == before
    with fast_randomness(enabled=False) as active:
        assert not active and thresha.np_random_split is before[1]
    monkeypatch.setattr(mpyc, "__version__", "0.12")
    with fast_randomness() as active:
        assert not active and thresha.np_random_split is before[1]


@pytest.mark.parametrize(("n", "f"), [(1, 16), (2, 16), (3, 16), (4, 16), (7, 12), (100, 16)])
def test_compare_bits_is_the_tight_documented_range(n, f):
    bits = compare_bits(n, f)
    assert n * 2 ** f < 2 ** (bits - 1)                       # largest |difference| fits
    assert n * 2 ** f >= 2 ** (bits - 2)                      # one bit fewer would not
    assert bits <= FixedPoint.for_inputs(n, f).bit_length


def test_extreme_differences_exact_at_the_bound_and_wrong_below():
    """d = +-N 2^f (all N one-hot, weight 1) at L = compare_bits; two bits fewer breaks."""
    n, f = 3, 16
    bits = compare_bits(n, f)
    top = n * 2 ** f
    x = np.array([[top, 0], [0, top], [top, top], [top - 1, top], [5, 4], [0, 0]])

    async def labels_at(mpc, length):
        sec = mpc.SecInt(FixedPoint.for_inputs(n, f).bit_length)
        return await mpc.output(secure_argmax(mpc, sec.array(x), length))

    got = np.asarray(in_process(lambda mpc: labels_at(mpc, bits)), dtype=object).astype(int)
    assert got.tolist() == [0, 1, 0, 1, 0, 0]
    bad = np.asarray(in_process(lambda mpc: labels_at(mpc, bits - 2)), dtype=object)
    assert bad.astype(int).tolist() != [0, 1, 0, 1, 0, 0]


@pytest.mark.parametrize("classes", [1, 2, 3, 7, 10])
def test_one_party_labels_equal_plaintext_with_ties(classes):
    preds, w = tie_inputs(3, 64, max(classes, 3), seed=classes)
    probs = [p[:, :classes] for p in preds.values()]
    out = run_in_process(RoundSpec(reveal="labels"), probs, w)
    ref = reference_round(probs, w, "labels", FixedPoint.for_inputs(3))
    assert np.array_equal(out.labels, ref.labels)


def test_known_answer_labels_three_parties():
    """Fixed inputs, labels written down by hand (ties go to the lowest class)."""
    a = [[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [0.1, 0.1, 0.8], [0.0, 0.0, 1.0]]
    b = [[0.5, 0.5, 0.0], [0.3, 0.2, 0.5], [0.9, 0.05, 0.05], [1.0, 0.0, 0.0]]
    c = [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.1, 0.1, 0.8], [0.0, 1.0, 0.0]]
    res = secure_ensemble({"a": a, "b": b, "c": c}, [1.0, 1.0, 1.0], reveal="labels",
                          committee=None, timeout=300)
    assert res.labels.tolist() == [0, 0, 2, 0]


@pytest.mark.parametrize("committee", [None, 3])
def test_three_parties_labels_equal_plaintext_with_ties(committee):
    preds, w = tie_inputs(3, 120, 10, seed=7)
    res = secure_ensemble(preds, w, reveal="labels", committee=committee, timeout=300)
    ref = plaintext_reference(preds, w, reveal="labels", committee=committee)
    assert np.array_equal(res.labels, ref.labels)
    assert res.labels[:30].tolist() == [0] * 30                # all tied: lowest class
    assert set(res.labels[60:75].tolist()) == {1}             # ahead by one unit
