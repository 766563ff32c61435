"""Shamir sharing by hand (efl_toolkit.secure.teaching) checked against the definitions and
against MPyC's own implementation (mpyc.thresha) over the same small field."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mpyc import thresha
from mpyc.finfields import GF

from efl_toolkit.secure.teaching import (
    SMALL_PRIME,
    add_shares,
    evaluate_polynomial,
    interpolate,
    is_prime,
    lagrange_coefficients,
    reconstruct,
    scale_shares,
    secrets_consistent_with,
    share_samples,
    share_secret,
)
from efl_toolkit.secure.transcript import lagrange_at_zero

P = SMALL_PRIME


def test_is_prime_matches_a_sieve():
    sieve = [True] * 200
    sieve[0] = sieve[1] = False
    for i in range(2, 200):
        if sieve[i]:
            for j in range(i * i, 200, i):
                sieve[j] = False
    assert [n for n in range(200) if is_prime(n)] == [n for n in range(200) if sieve[n]]


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=6), st.integers(0, 500))
def test_polynomial_evaluation_is_the_sum_of_terms(coefficients, x):
    assert evaluate_polynomial(coefficients, x, P) == sum(
        c * x**k for k, c in enumerate(coefficients)) % P


@given(secret=st.integers(0, P - 1), n=st.integers(1, 7), data=st.data())
@settings(max_examples=60)
def test_shares_are_the_polynomial_at_1_to_n(secret, n, data):
    t = data.draw(st.integers(0, n - 1))
    sharing = share_secret(secret, n, t, rng=data.draw(st.integers(0, 2**32)))
    assert sharing.coefficients[0] == secret == sharing.secret
    assert sharing.threshold == t and sharing.n_parties == n
    assert len(sharing.coefficients) == t + 1
    assert all(0 <= c < P for c in sharing.coefficients)
    assert sharing.shares == {x: evaluate_polynomial(sharing.coefficients, x, P)
                              for x in range(1, n + 1)}


def test_any_t_plus_1_shares_reconstruct_the_secret():
    rng = np.random.default_rng(0)
    for n in range(1, 7):
        for t in range(n):
            for secret in (0, 1, 42, P - 1):
                sharing = share_secret(secret, n, t, rng=rng)
                for size in range(t + 1, n + 1):
                    for subset in itertools.combinations(range(1, n + 1), size):
                        points = {x: sharing.shares[x] for x in subset}
                        assert reconstruct(points) == secret, (n, t, subset)


def test_same_seed_same_sharing_and_different_seeds_differ():
    a, b = share_secret(5, 3, 2, rng=11), share_secret(5, 3, 2, rng=11)
    assert a == b
    others = {share_secret(5, 3, 2, rng=seed).coefficients for seed in range(20)}
    assert len(others) > 10


@given(st.lists(st.integers(1, P - 1), min_size=1, max_size=6, unique=True))
def test_lagrange_coefficients_reproduce_f0_of_every_monomial(xs):
    """sum_i lambda_i x_i^k is 1 for k = 0 and 0 for 0 < k < len(xs): f(0) for f = x^k."""
    lambdas = lagrange_coefficients(xs, P)
    for k in range(len(xs)):
        assert sum(lambdas[x] * pow(x, k, P) for x in xs) % P == (1 if k == 0 else 0)


@given(st.lists(st.tuples(st.integers(1, P - 1), st.integers(0, P - 1)), min_size=1,
                max_size=6, unique_by=lambda pt: pt[0]))
def test_reconstruct_agrees_with_mpyc_and_with_the_transcript_code(points):
    shares = dict(points)
    field = GF(P)
    mpyc_value = thresha.recombine(field, [(x, [y]) for x, y in shares.items()])[0] % P
    assert reconstruct(shares) == mpyc_value == lagrange_at_zero(shares, P)


def test_reconstruct_recovers_secrets_split_by_mpyc():
    field = GF(P)
    for t, m in ((1, 3), (2, 5), (0, 2)):
        for secret in (0, 17, 100):
            rows = thresha.random_split(field, [field(secret)], t, m)
            shares = {i + 1: int(rows[i][0]) for i in range(m)}
            for subset in itertools.combinations(shares, t + 1):
                assert reconstruct({x: shares[x] for x in subset}) == secret


@given(st.dictionaries(st.integers(-50, 150), st.integers(0, P - 1), min_size=1, max_size=5))
def test_interpolate_passes_through_every_point_with_low_degree(points):
    if len({x % P for x in points}) != len(points):
        with pytest.raises(ValueError, match="same x"):
            interpolate(points)
        return
    coefficients = interpolate(points)
    assert len(coefficients) == len(points)
    for x, y in points.items():
        assert evaluate_polynomial(coefficients, x, P) == y


def test_interpolate_is_the_unique_polynomial_brute_force():
    p = 7
    points = {0: 3, 2: 5, 4: 1}
    matches = [c for c in itertools.product(range(p), repeat=3)
               if all(evaluate_polynomial(c, x, p) == y for x, y in points.items())]
    assert matches == [interpolate(points, p)]


def test_t_shares_are_consistent_with_every_secret_exactly_once():
    sharing = share_secret(42, 5, 2, rng=3)
    known = {2: sharing.shares[2], 5: sharing.shares[5]}
    options = secrets_consistent_with(known, threshold=2)
    assert sorted(options) == list(range(P))
    for secret, coefficients in options.items():
        assert len(coefficients) == 3 and coefficients[0] == secret
        for x, y in known.items():
            assert evaluate_polynomial(coefficients, x, P) == y
    assert options[42] == sharing.coefficients
    assert len(set(options.values())) == P  # a different polynomial for each secret


def test_consistent_secrets_need_exactly_t_shares():
    with pytest.raises(ValueError, match="determine the secret"):
        secrets_consistent_with({1: 3, 2: 4}, threshold=1)
    with pytest.raises(ValueError, match="exactly t=2"):
        secrets_consistent_with({1: 3}, threshold=2)


@given(st.integers(0, P - 1), st.integers(0, P - 1), st.integers(0, P - 1),
       st.integers(0, 2**32))
def test_adding_and_scaling_shares_is_homomorphic(s1, s2, c, seed):
    rng = np.random.default_rng(seed)
    a, b = share_secret(s1, 4, 1, rng=rng), share_secret(s2, 4, 1, rng=rng)
    total = add_shares(a.shares, b.shares)
    # the summed shares lie on the summed polynomial
    summed = [(x + y) % P for x, y in zip(a.coefficients, b.coefficients, strict=True)]
    assert total == {x: evaluate_polynomial(summed, x, P) for x in total}
    assert reconstruct({x: total[x] for x in (1, 4)}) == (s1 + s2) % P
    assert reconstruct(scale_shares({x: a.shares[x] for x in (2, 3)}, c)) == c * s1 % P


def test_one_share_is_uniform_whatever_the_secret():
    """Chi-square goodness of fit against uniform over Z_p for two very different secrets."""
    n = 20_000
    for secret in (0, 77):
        samples = share_samples(secret, party=2, n_samples=n, rng=secret)
        counts = np.bincount(samples, minlength=P)
        chi2 = float(np.sum((counts - n / P) ** 2 / (n / P)))
        assert chi2 < 170, (secret, chi2)   # df = 100: the 99.99% quantile is about 153
        assert counts.min() > 0


def test_a_degenerate_sharing_with_t_zero_leaks_the_secret():
    """t = 0 is a constant polynomial: every share IS the secret (why t >= 1 matters)."""
    assert set(share_samples(9, party=1, n_samples=50, threshold=0, rng=0)) == {9}


@pytest.mark.parametrize(("call", "message"), [
    (lambda: share_secret(5, 3, 1, modulus=100), "not a prime"),
    (lambda: share_secret(101, 3, 1), r"secret 101 must be in \[0, 101\)"),
    (lambda: share_secret(-1, 3, 1), "must be in"),
    (lambda: share_secret(5, 3, 3), "threshold t=3"),
    (lambda: share_secret(5, 0, 0), "n_parties=0"),
    (lambda: share_secret(5, 7, 1, modulus=7), "n_parties=7"),
    (lambda: reconstruct({}), "no shares"),
    (lambda: reconstruct({0: 5, 1: 6}), "x=0"),
    (lambda: reconstruct({1: 5, 102: 6}), "same x"),
    (lambda: add_shares({1: 2, 2: 3}, {1: 2, 3: 3}), "different parties"),
    (lambda: share_samples(5, party=4, n_samples=3), "party must be in 1..3"),
])
def test_bad_input_gets_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
