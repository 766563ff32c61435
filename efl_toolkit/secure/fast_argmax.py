"""A faster secure argmax: the shortest safe comparisons and MPyC's randomness drawn in batches.

Three changes against MPyC's ``np_argmax`` on ``SecFxp(32,16)`` (``docs/secure.md``, "Speed"):

1. **Shortest comparison** (:func:`compare_bits`): every entry of the encoded sum lies in
   ``[0, N * 2^f]`` (``N`` institutions, weights and probabilities in ``[0, 1]``, see
   :mod:`efl_toolkit.secure.fixed_point`), so a difference of two entries lies in
   ``[-N * 2^f, N * 2^f]``. MPyC's comparison ``np_sgn(d, l=L)`` is exact for
   ``-2^(L-1) <= d < 2^(L-1)``, so ``L = f + 1 + bit_length(N)`` suffices and ``L - 1`` does
   not (``d = N * 2^f`` is reachable): 19 bits at ``N = 3``, ``f = 16`` instead of 32. (The
   less-than test alone is exact on twice that range, but MPyC masks ``d`` with ``l + k`` random
   bits, ``k = 30``: staying inside the documented range keeps that statistical margin intact.)
2. **Tournament with secure indices** (:func:`secure_argmax`): ``C - 1`` comparisons per row
   in ``ceil(log2 C)`` rounds like MPyC's, but the winner's index is carried as one secure number
   (one multiplication per comparison) instead of a unit vector of length ``C``.
3. **Batched randomness** (:func:`fast_randomness`): five functions of MPyC 0.11 are swapped,
   only while a round's argmax runs in a party process:

   * ``thresha.PRF.__call__``, ``thresha.np_pseudorandom_share`` and ``_share_0``
     (pseudorandom secret sharing, keys as MPyC makes them with ``secrets``): the same SHAKE-128
     output bytes become the same numbers and shares with uint64 numpy arithmetic instead of
     Python integers one by one. The outputs are **identical** (checked by
     ``tests/test_secure_argmax_fast.py``), so patched and unpatched parties agree.
   * ``finfields.PrimeFieldArray._sqrt`` (a random bit is ``r / sqrt(r^2)``): the same square
     roots, one ``gmpy2.powmod_base_list`` call per array instead of one call per entry.
   * ``thresha.np_random_split`` (Shamir re-sharing after each multiplication, and inputs): the
     polynomial coefficients come from one ``os.urandom`` call per batch, made uniform mod ``p``
     by rejection sampling, instead of one ``secrets.randbelow`` (an ``os.urandom`` call) each.
     Same source, same uniform distribution, same threat model.

   Each falls back to MPyC's own code outside its fast range (moduli of 55 bits or more).

The swap is guarded: it applies only with the MPyC version it was written for
(:data:`PINNED_MPYC`, also pinned in ``pyproject.toml``); another version runs MPyC unchanged.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

#: The MPyC release whose ``thresha`` internals :func:`fast_randomness` replaces.
PINNED_MPYC = "0.11"
#: Moduli below this fit the uint64 arithmetic used here (``p * 256 < 2^64``).
_FAST_MODULUS = 1 << 56
#: Moduli below this allow ``acc * 256 + x * 255 < 2^64`` in :func:`_mulmod`.
_SMALL_MODULUS = 1 << 55


def compare_bits(n_inputs: int, frac_bits: int) -> int:
    """Bits ``L`` for exact comparisons of two entries of a sum of ``n_inputs`` encoded inputs.

    Entries lie in ``[0, n_inputs * 2^frac_bits]``; MPyC's ``np_sgn(d, l=L)`` needs
    ``-2^(L-1) <= d < 2^(L-1)``. ``L - 1`` bits would fail at ``d = n_inputs * 2^frac_bits``.

    Example:
        >>> compare_bits(3, 16), compare_bits(4, 16), compare_bits(100, 16)
        (19, 20, 24)
    """
    if n_inputs < 1 or frac_bits < 0:
        raise ValueError(f"need n_inputs >= 1 and frac_bits >= 0, got {n_inputs}, {frac_bits}")
    return frac_bits + 1 + int(n_inputs).bit_length()


def _bytes_to_numbers(digest: bytes, count: int, width: int, bound: int) -> np.ndarray:
    """``int.from_bytes(chunk, 'little') % bound`` for ``count`` chunks of ``width`` bytes.

    Byte ``j`` weighs ``256^j mod bound``; up to ``group`` weighted bytes are summed before each
    reduction without leaving uint64 (``group * 255 * (bound - 1) < 2^64``).
    """
    chunks = np.frombuffer(digest, dtype=np.uint8, count=count * width).reshape(count, width)
    b = np.uint64(bound)
    if bound & (bound - 1) == 0:                   # power of two: width <= 7 (bound <= 2^56)
        acc = np.zeros(count, dtype=np.uint64)
        for j in range(width - 1, -1, -1):
            acc = (acc << np.uint64(8)) | chunks[:, j]
        return acc & (b - np.uint64(1))
    weights = np.array([pow(256, j, bound) for j in range(width)], dtype=np.uint64)
    group = max(1, min(8, ((1 << 64) - 1) // (255 * (bound - 1))))
    acc = np.zeros(count, dtype=np.uint64)
    for g in range(0, width, group):
        part = chunks[:, g:g + group].astype(np.uint64) @ weights[g:g + group]
        acc = (acc + part % b) % b
    return acc


def _prf_words(prf, s: bytes, count: int) -> np.ndarray:
    """``prf(s, (count,))`` as uint64 (``prf.max < 2^56``)."""
    from hashlib import shake_128

    width = prf.byte_length
    digest = shake_128(prf.key + s).digest(count * width)
    return _bytes_to_numbers(digest, count, width, prf.max)


def _fast_prf(prf) -> bool:
    return 0 < prf.max < _FAST_MODULUS and prf.byte_length > 0


def fast_prf_call(self, s: bytes, n=None):
    """Drop-in for MPyC 0.11's ``thresha.PRF.__call__``: identical numbers, computed with numpy.

    Only array requests (``n`` a shape) below ``2^56`` take the numpy path; everything else goes
    to MPyC's original method.
    """
    if not isinstance(n, tuple) or not _fast_prf(self):
        return _original("prf")(self, s, n)
    return _prf_words(self, s, int(np.prod(n))).astype(object).reshape(n)


def _mulmod(x: np.ndarray, c: int, p: int) -> np.ndarray:
    """``x * c mod p`` for uint64 ``x < p < 2^55``: Horner over the bytes of ``c``."""
    c %= p
    pu, acc = np.uint64(p), np.zeros(x.shape, dtype=np.uint64)
    for k in range((c.bit_length() + 7) // 8 - 1, -1, -1):
        acc = (acc * np.uint64(256) + x * np.uint64((c >> (8 * k)) & 255)) % pu
    return acc


def _fast_prss(field, prfs) -> bool:
    p = field.modulus
    return (isinstance(p, int) and p < _SMALL_MODULUS
            and all(_fast_prf(f) for f in prfs.values()))


def fast_pseudorandom_share(field, m: int, i: int, prfs, uci: bytes, n: int):
    """Drop-in for MPyC 0.11's ``thresha.np_pseudorandom_share`` (identical shares, uint64)."""
    if not _fast_prss(field, prfs):
        return _original("share")(field, m, i, prfs, uci, n)
    from mpyc.thresha import _f_S_i

    pu, acc = np.uint64(field.modulus), np.zeros(n, dtype=np.uint64)
    for subset, prf in prfs.items():
        acc = (acc + _mulmod(_prf_words(prf, uci, n), int(_f_S_i(field, m, i, subset)),
                             field.modulus)) % pu
    return field.array(acc.astype(object), check=False)


def fast_pseudorandom_share_0(field, m: int, i: int, prfs, uci: bytes, n: int):
    """Drop-in for MPyC 0.11's ``thresha.np_pseudorandom_share_0`` (identical shares, uint64)."""
    if not _fast_prss(field, prfs):
        return _original("share0")(field, m, i, prfs, uci, n)
    from mpyc.thresha import _f_S_i

    p = field.modulus
    pu, acc = np.uint64(p), np.zeros(n, dtype=np.uint64)
    d = m - len(next(iter(prfs.keys())))
    for subset, prf in prfs.items():
        words = _prf_words(prf, uci, n * d).reshape(n, d)
        y = np.zeros(n, dtype=np.uint64)
        for j in range(1, d + 1):                  # sum_j prl[:, j] * (i+1)^j
            y = (y + _mulmod(words[:, j - 1], pow(i + 1, j, p), p)) % pu
        acc = (acc + _mulmod(y, int(_f_S_i(field, m, i, subset)), p)) % pu
    return field.array(acc.astype(object), check=False)


def uniform_below(bound: int, count: int) -> np.ndarray:
    """``count`` independent uniform integers in ``[0, bound)`` (uint64) from ``os.urandom``.

    Rejection sampling on 64-bit words: exactly uniform, like ``secrets.randbelow``.
    """
    limit = np.uint64(((1 << 64) // bound) * bound - 1)
    out = np.empty(0, dtype=np.uint64)
    while out.size < count:
        need = count - out.size
        words = np.frombuffer(os.urandom(8 * (need + need // 64 + 1)), dtype=np.uint64)
        out = np.concatenate([out, words[words <= limit][:need]])
    return out % np.uint64(bound)


def fast_random_split(field, s, t: int, m: int):
    """Drop-in for MPyC 0.11's ``thresha.np_random_split``: Shamir shares, batched randomness.

    Party ``i`` (1-based) gets ``s + c_1 i + ... + c_t i^t mod p``; the ``t * n`` coefficients
    are uniform mod ``p`` from one ``os.urandom`` call. Returns an ``[m, n]`` object array.
    """
    p = field.modulus
    if not isinstance(p, int) or p >= _FAST_MODULUS or m >= 256:
        return _original("split")(field, s, t, m)
    values = s.value if isinstance(s, field.array) else s
    secret = np.asarray(values, dtype=object).astype(np.uint64)
    n = len(secret)
    coeffs = uniform_below(p, t * n).reshape(t, n)
    pu = np.uint64(p)
    shares = np.empty((m, n), dtype=np.uint64)
    for i in range(1, m + 1):
        acc = np.zeros(n, dtype=np.uint64)
        for c in coeffs[::-1]:                   # Horner: ((c_t i + c_(t-1)) i + ...) i
            acc = (acc + c) * np.uint64(i) % pu
        shares[i - 1] = (acc + secret) % pu
    return shares.astype(object)


def fast_sqrt(cls, a, INV: bool = False):  # noqa: N803 (MPyC's signature)
    """Drop-in for MPyC 0.11's ``PrimeFieldArray._sqrt``: the same (inverse) square roots mod
    ``p = 3 mod 4``, one ``gmpy2.powmod_base_list`` call for the array instead of one
    ``powmod`` call per entry through ``np.vectorize``."""
    p = cls.field.modulus
    fast = isinstance(p, int) and p & 3 == 3 and isinstance(a, np.ndarray) and a.size
    if not fast:
        return _original("sqrt").__func__(cls, a, INV=INV)
    import gmpy2

    if INV and (a == 0).any():
        raise ZeroDivisionError("no inverse sqrt of 0")
    exponent = gmpy2.mpz((p * 3 - 5) >> 2 if INV else (p + 1) >> 2)
    roots = gmpy2.powmod_base_list([int(v) for v in a.flat], exponent, gmpy2.mpz(p))
    return np.fromiter(map(int, roots), dtype=object, count=a.size).reshape(a.shape)


#: MPyC's own functions while :func:`fast_randomness` has swapped them out.
_ORIGINAL: dict = {}


def _swaps() -> dict:
    """key -> (owner in ``mpyc``, attribute, replacement)."""
    from mpyc import finfields, thresha

    return {"prf": (thresha.PRF, "__call__", fast_prf_call),
            "sqrt": (finfields.PrimeFieldArray, "_sqrt", classmethod(fast_sqrt)),
            "split": (thresha, "np_random_split", fast_random_split),
            "share": (thresha, "np_pseudorandom_share", fast_pseudorandom_share),
            "share0": (thresha, "np_pseudorandom_share_0", fast_pseudorandom_share_0)}


def _original(key: str):
    """MPyC's own function for ``key`` (read from ``mpyc.thresha`` when nothing is swapped)."""
    if key in _ORIGINAL:
        return _ORIGINAL[key]
    owner, name, _ = _swaps()[key]
    return vars(owner)[name]


def mpyc_version() -> str:
    import mpyc

    return str(mpyc.__version__)


@contextlib.contextmanager
def fast_randomness(enabled: bool = True):
    """Swaps in the fast ``thresha`` functions of this module for this block; yields whether.

    Does nothing unless ``enabled`` and the installed MPyC is :data:`PINNED_MPYC` (and not
    nested); restores MPyC's own functions on exit. Meant for party processes (one MPyC
    runtime per process): the swap is process-wide while the block runs.
    """
    if not enabled or mpyc_version() != PINNED_MPYC or _ORIGINAL:
        yield False
        return
    swaps = _swaps()
    for key, (owner, name, fast) in swaps.items():
        _ORIGINAL[key] = vars(owner)[name]          # the raw attribute (a classmethod stays one)
        setattr(owner, name, fast)
    try:
        yield True
    finally:
        for key, (owner, name, _) in swaps.items():
            setattr(owner, name, _ORIGINAL.pop(key))


def secure_argmax(mpc, x, bits: int):
    """Secure argmax per row of a secure integer array ``x`` ``[n, C]``; ties to the lowest index.

    A tournament over the columns: at each level neighbouring columns ``(a, b)`` (``a`` from
    lower indices) are compared, ``c = [a < b]`` with ``mpc.np_sgn(a - b, l=bits, LT=True)``,
    and ``a + c (b - a)`` and ``i_a + c (i_b - i_a)`` move on (strict ``<`` keeps the first
    maximum); an odd last column moves on unchanged. ``C - 1`` comparisons per row, in
    ``ceil(log2 C)`` rounds; MPyC schedules the work, nothing is awaited here.

    Args:
        mpc: A running MPyC runtime.
        x: Secure integer array ``[n, C]`` whose pairwise differences lie in
            ``[-2^(bits-1), 2^(bits-1))`` (see :func:`compare_bits`).
        bits: Comparison length ``L``.

    Returns:
        A secure array ``[n]`` of indices (not opened).
    """
    n, k = x.shape
    values = x
    index = type(x)(np.tile(np.arange(k), (n, 1)))      # public to start with
    while k > 1:
        pairs = k // 2
        left, right = values[:, 0:2 * pairs:2], values[:, 1:2 * pairs:2]
        i_left, i_right = index[:, 0:2 * pairs:2], index[:, 1:2 * pairs:2]
        c = mpc.np_sgn(left - right, l=bits, LT=True)
        moved = mpc.np_hstack((c, c)) * mpc.np_hstack((right - left, i_right - i_left))
        next_values, next_index = left + moved[:, :pairs], i_left + moved[:, pairs:]
        if k % 2:                                      # the last column moves on unchanged
            next_values = mpc.np_hstack((next_values, values[:, k - 1:]))
            next_index = mpc.np_hstack((next_index, index[:, k - 1:]))
        values, index, k = next_values, next_index, pairs + k % 2
    return mpc.np_reshape(index, (n,))
