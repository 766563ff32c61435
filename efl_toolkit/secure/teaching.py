"""Shamir secret sharing by hand, on numbers small enough to check on paper.

MPyC shares every secret value with Shamir's scheme over a prime field of about 52 bits. The
same scheme over a small prime (101 by default) fits on a page:

* **Share.** To share a secret ``s`` among ``n`` parties so that any ``t`` of them learn
  nothing, pick a random polynomial ``f(x) = s + a_1 x + ... + a_t x^t`` (mod ``p``) and give
  party ``i`` the point ``(i, f(i))``, ``i = 1..n`` (MPyC's party ``k`` holds ``f(k + 1)``).
* **Reconstruct.** Any ``t + 1`` points determine ``f``; Lagrange interpolation at ``x = 0``
  gives ``s = sum_i lambda_i f(i)`` with public coefficients ``lambda_i``.
* **Secrecy.** Through ``t`` points and ``(0, s')`` passes exactly one polynomial of degree
  ``t``, for EVERY candidate ``s'``: ``t`` shares are equally consistent with every secret
  (:func:`secrets_consistent_with`), and one party's share is uniformly distributed whatever the
  secret (:func:`share_samples`).
* **Adding is free.** Shares of ``s1`` and ``s2`` added point by point are shares of
  ``s1 + s2`` (the polynomials add): the secure ensemble sums the institutions' shared
  probabilities without any message between the parties. Multiplying by a public constant is
  free too (:func:`scale_shares`).

Example:
    >>> sharing = share_secret(42, n_parties=3, threshold=1, rng=7)
    >>> reconstruct({x: sharing.shares[x] for x in (1, 3)})
    42
    >>> other = share_secret(10, n_parties=3, threshold=1, rng=8)
    >>> reconstruct(add_shares(sharing.shares, other.shares))
    52
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: The default field: integers modulo this prime.
SMALL_PRIME = 101


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def is_prime(n: int) -> bool:
    """Trial division (enough for teaching-size moduli).

    Example:
        >>> [p for p in range(20) if is_prime(p)]
        [2, 3, 5, 7, 11, 13, 17, 19]
    """
    if n < 2:
        return False
    return all(n % d for d in range(2, int(n ** 0.5) + 1))


def _check_modulus(modulus: int) -> None:
    if not is_prime(int(modulus)):
        raise ValueError(f"modulus {modulus} is not a prime: Shamir sharing needs a field")


def _check_points(shares: Mapping[int, int], modulus: int) -> None:
    _check_modulus(modulus)
    if not shares:
        raise ValueError("no shares given")
    for x in shares:
        if x % modulus == 0:
            raise ValueError(f"share at x={x}: x must be nonzero mod {modulus} (f(0) is the "
                             "secret itself)")
    if len({x % modulus for x in shares}) != len(shares):
        raise ValueError(f"two shares have the same x mod {modulus}: {sorted(shares)}")


@dataclass(frozen=True)
class ShamirSharing:
    """One secret shared with a random polynomial.

    Attributes:
        secret: The secret ``s = f(0)``.
        coefficients: ``(s, a_1, ..., a_t)``: ``f(x) = s + a_1 x + ... + a_t x^t`` mod ``p``.
        modulus: The prime ``p``.
        shares: ``{x: f(x)}`` for the parties ``x = 1..n``.
    """

    secret: int
    coefficients: tuple[int, ...]
    modulus: int
    shares: dict[int, int]

    @property
    def threshold(self) -> int:
        """``t``: the polynomial's degree; any ``t`` shares reveal nothing."""
        return len(self.coefficients) - 1

    @property
    def n_parties(self) -> int:
        return len(self.shares)


def evaluate_polynomial(coefficients: Sequence[int], x: int, modulus: int = SMALL_PRIME) -> int:
    """``c_0 + c_1 x + ... + c_t x^t`` mod ``modulus`` (Horner's rule).

    Example:
        >>> evaluate_polynomial([7, 5], 2)     # 7 + 5 * 2
        17
    """
    value = 0
    for c in reversed(list(coefficients)):
        value = (value * x + int(c)) % modulus
    return value


def share_secret(secret: int, n_parties: int, threshold: int, *, modulus: int = SMALL_PRIME,
                 rng: np.random.Generator | int | None = None) -> ShamirSharing:
    """Shares ``secret`` among ``n_parties``; any ``threshold`` of them learn nothing.

    Args:
        secret: An integer in ``[0, modulus)``.
        n_parties: ``n``; party ``i`` (``1..n``) gets ``f(i)``.
        threshold: ``t``, the degree of the random polynomial, ``0 <= t < n``.
        modulus: A prime larger than ``n_parties``.
        rng: A NumPy generator or a seed (the random coefficients ``a_1..a_t``).

    Raises:
        ValueError: secret out of range, modulus not prime or too small, bad threshold.

    Example:
        >>> s = share_secret(7, 3, 1, rng=0)
        >>> s.threshold, s.n_parties, s.coefficients[0]
        (1, 3, 7)
    """
    _check_modulus(modulus)
    if not 0 <= int(secret) < modulus:
        raise ValueError(f"secret {secret} must be in [0, {modulus})")
    if not 1 <= n_parties < modulus:
        raise ValueError(f"n_parties={n_parties} must be in [1, {modulus - 1}] (one distinct "
                         f"nonzero x per party mod {modulus})")
    if not 0 <= threshold < n_parties:
        raise ValueError(f"threshold t={threshold} must satisfy 0 <= t < n_parties="
                         f"{n_parties}, or the parties could never reconstruct")
    randoms = _rng(rng).integers(0, modulus, size=threshold)
    coefficients = (int(secret), *(int(a) for a in randoms))
    shares = {x: evaluate_polynomial(coefficients, x, modulus) for x in range(1, n_parties + 1)}
    return ShamirSharing(int(secret), coefficients, modulus, shares)


def lagrange_coefficients(xs: Sequence[int], modulus: int = SMALL_PRIME) -> dict[int, int]:
    """The public ``lambda_i`` with ``f(0) = sum_i lambda_i f(x_i)`` for any polynomial of
    degree below ``len(xs)``.

    Example:
        >>> lagrange_coefficients([1, 2], 101)    # f(0) = 2 f(1) - f(2)
        {1: 2, 2: 100}
    """
    _check_points({x: 0 for x in xs}, modulus)
    out = {}
    for xi in xs:
        num, den = 1, 1
        for xj in xs:
            if xj != xi:
                num = num * (-xj) % modulus
                den = den * (xi - xj) % modulus
        out[xi] = num * pow(den, -1, modulus) % modulus
    return out


def reconstruct(shares: Mapping[int, int], modulus: int = SMALL_PRIME) -> int:
    """``f(0)`` of the polynomial of degree ``< len(shares)`` through the points ``{x: y}``.

    With ``t + 1`` or more shares of a sharing of degree ``t`` this is the secret. With fewer,
    it is just *some* value: see :func:`secrets_consistent_with`.

    Example:
        >>> reconstruct({1: 12, 2: 17})       # f(x) = 7 + 5x
        7
    """
    lambdas = lagrange_coefficients(list(shares), modulus)
    return sum(lambdas[x] * int(y) for x, y in shares.items()) % modulus


def interpolate(points: Mapping[int, int], modulus: int = SMALL_PRIME) -> tuple[int, ...]:
    """Coefficients ``(c_0, ..., c_k)`` of the unique polynomial of degree ``<= k`` through
    ``k + 1`` points (``x`` may be 0 here).

    Example:
        >>> interpolate({0: 7, 1: 12})
        (7, 5)
    """
    _check_modulus(modulus)
    xs = list(points)
    if len({x % modulus for x in xs}) != len(xs):
        raise ValueError(f"two points have the same x mod {modulus}: {sorted(xs)}")
    coefficients = [0] * len(xs)
    for xi in xs:
        basis, den = [1], 1                       # prod_{j != i} (x - x_j), as coefficients
        for xj in xs:
            if xj == xi:
                continue
            basis = [((basis[k - 1] if k else 0) - xj * (basis[k] if k < len(basis) else 0))
                     % modulus for k in range(len(basis) + 1)]
            den = den * (xi - xj) % modulus
        scale = int(points[xi]) * pow(den, -1, modulus) % modulus
        for k, b in enumerate(basis):
            coefficients[k] = (coefficients[k] + scale * b) % modulus
    return tuple(coefficients)


def secrets_consistent_with(shares: Mapping[int, int], threshold: int,
                            modulus: int = SMALL_PRIME) -> dict[int, tuple[int, ...]]:
    """For exactly ``threshold`` shares: every candidate secret with the one polynomial that
    explains it.

    This is why ``t`` colluding parties learn nothing: for each of the ``p`` possible secrets
    there is exactly one polynomial of degree ``t`` through their shares, and all polynomials
    were equally likely to be drawn.

    Raises:
        ValueError: Not exactly ``threshold`` shares (more pin the secret down; with fewer the
            polynomial is not unique).

    Example:
        >>> options = secrets_consistent_with({1: 40}, threshold=1)
        >>> len(options), options[7]            # secret 7 would need f(x) = 7 + 33x
        (101, (7, 33))
    """
    _check_points(shares, modulus)
    if len(shares) > threshold:
        raise ValueError(f"{len(shares)} shares of a degree-{threshold} sharing determine the "
                         f"secret; give exactly t={threshold}")
    if len(shares) < threshold:
        raise ValueError(f"give exactly t={threshold} shares (got {len(shares)}): with fewer, "
                         "many polynomials explain each secret")
    return {s: interpolate({0: s, **shares}, modulus) for s in range(modulus)}


def add_shares(a: Mapping[int, int], b: Mapping[int, int],
               modulus: int = SMALL_PRIME) -> dict[int, int]:
    """Each party adds its two shares locally: shares of ``a + b`` (no communication).

    Example:
        >>> add_shares({1: 12, 2: 17}, {1: 100, 2: 5})
        {1: 11, 2: 22}
    """
    if set(a) != set(b):
        raise ValueError(f"shares held by different parties: {sorted(a)} vs {sorted(b)}")
    return {x: (int(a[x]) + int(b[x])) % modulus for x in a}


def scale_shares(shares: Mapping[int, int], constant: int,
                 modulus: int = SMALL_PRIME) -> dict[int, int]:
    """Each party multiplies its share by a public constant: shares of ``constant * secret``.

    Example:
        >>> reconstruct(scale_shares({1: 12, 2: 17}, 3))    # 3 * 7
        21
    """
    return {x: int(constant) * int(y) % modulus for x, y in shares.items()}


def share_samples(secret: int, party: int, n_samples: int, *, n_parties: int = 3,
                  threshold: int = 1, modulus: int = SMALL_PRIME,
                  rng: np.random.Generator | int | None = None) -> np.ndarray:
    """The share party ``party`` receives in ``n_samples`` fresh sharings of ``secret``.

    Its histogram is flat whatever the secret: one share says nothing about it.

    Example:
        >>> samples = share_samples(7, party=1, n_samples=1000, rng=0)
        >>> bool(samples.min() >= 0 and samples.max() < 101)
        True
    """
    if not 1 <= party <= n_parties:
        raise ValueError(f"party must be in 1..{n_parties}, got {party}")
    gen = _rng(rng)
    return np.array([share_secret(secret, n_parties, threshold, modulus=modulus,
                                  rng=gen).shares[party] for _ in range(n_samples)])
