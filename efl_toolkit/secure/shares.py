"""The institution's side of a committee round: encode, split into additive shares, deliver.

In committee mode (``docs/secure.md``, "Roles in a secure round") an institution never runs MPC.
It encodes its contribution in fixed point with its weight applied locally
(:mod:`efl_toolkit.secure.fixed_point`), splits the integers into ``M`` additive shares modulo
the prime ``p`` of the round's MPyC type ``SecInt(l)``, and delivers share ``j`` to compute
party ``j``; then it may go offline. Additive ``M``-out-of-``M`` sharing (as in Prio, Corrigan-
Gibbs and Boneh, NSDI 2017): shares ``0..M-2`` are uniform in ``[0, p)`` (drawn from the
operating system's CSPRNG by rejection sampling, so exactly uniform), the last is
``x - sum(others) mod p``. Any ``M - 1`` shares are jointly uniform and independent of ``x``.

A share travels as one ``.npz`` file (written atomically: a temporary file, then a rename) into
the compute party's inbox folder for the round; any transport that copies files works across
machines (``efl share``). Every file carries the round id, institution, party index, modulus,
fixed-point format, shape and public weight, and the compute party checks all of them
(:func:`read_share`): a replayed, truncated, misdirected or malformed share is refused, naming
the institution and the file.

Example:
    >>> import numpy as np

    >>> p = field_modulus(20)
    >>> shares = split_additive(np.array([5, -3]), p, 3)
    >>> [int(v) for v in to_signed_sum(shares, p)]
    [5, -3]
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from efl_toolkit.atomic import write_bytes_atomic

#: MPyC's default statistical security parameter ``k``: ``SecInt(l)`` lives in a field of
#: ``l + k + 2`` bits (``mpyc.sectypes._pfield``); compute parties check the modulus at run time.
MPYC_SEC_PARAM = 30
#: Largest secure integer length whose field elements fit in ``uint64`` sums (``p < 2^63``).
MAX_BIT_LENGTH = 30
KINDS = ("probs", "vector")
SHARE_SUFFIX = ".share.npz"


class ShareError(ValueError):
    """A share file or contribution is unusable; the message names the institution and file."""


#: A round id names a folder: letters, digits, ``._-`` only.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_name(what: str, name: str) -> str:
    """Raises ``ValueError`` unless ``name`` is safe as a folder name (no ``/``, no ``..``).

    Example:
        >>> check_name("round id", "2026-11-round-7")
        '2026-11-round-7'
    """
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise ValueError(f"{what} {name!r} must be 1-128 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit (it names files and folders)")
    return name


def check_institution(name: str) -> str:
    """Raises ``ValueError`` unless ``name`` is a usable institution id (1-128 printable
    characters; it never becomes a path: see :func:`file_stem`)."""
    if not isinstance(name, str) or not 1 <= len(name) <= 128 or not name.isprintable():
        raise ValueError(f"institution id {name!r} must be 1-128 printable characters")
    return name


def file_stem(institution: str) -> str:
    """The file-name stem of an institution's shares: its id made path-safe, plus a hash.

    Example:
        >>> file_stem("Hospital A/../x")
        'Hospital_A_.._x-b122b425'
    """
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", institution)[:64].lstrip(".") or "_"
    return f"{safe}-{hashlib.sha256(institution.encode()).hexdigest()[:8]}"


@cache
def field_modulus(bit_length: int) -> int:
    """The prime modulus of MPyC's ``SecInt(bit_length)`` (default security parameter).

    Example:
        >>> field_modulus(20)
        4503599627370323
    """
    if not 2 <= bit_length <= MAX_BIT_LENGTH:
        raise ValueError(f"bit_length must be in [2, {MAX_BIT_LENGTH}], got {bit_length}")
    from efl_toolkit.secure.protocol import mpyc_argv

    with mpyc_argv():
        from mpyc.finfields import find_prime_root
    return int(find_prime_root(bit_length + MPYC_SEC_PARAM + 2, n=2)[0])


def random_field_elements(shape: tuple[int, ...], modulus: int) -> np.ndarray:
    """Uniform elements of ``[0, modulus)`` as ``uint64``, from ``os.urandom`` (CSPRNG).

    Rejection sampling on ``bit_length(modulus)``-bit draws: exactly uniform.
    """
    n = int(np.prod(shape, dtype=np.int64))
    bits = modulus.bit_length()
    mask = np.uint64((1 << bits) - 1)
    out = np.empty(0, dtype=np.uint64)
    while out.size < n:
        need = n - out.size
        draw = np.frombuffer(os.urandom(8 * (need + need // 2 + 16)), dtype=np.uint64) & mask
        out = np.concatenate([out, draw[draw < np.uint64(modulus)][:need]])
    return out.reshape(shape)


def split_additive(values, modulus: int, n_shares: int) -> list[np.ndarray]:
    """Splits integers (``int64``, any sign) into ``n_shares`` additive shares mod ``modulus``.

    Returns ``uint64`` arrays of the same shape whose sum mod ``modulus`` is ``values``.
    """
    x = np.asarray(values, dtype=np.int64)
    if modulus >= 1 << 63:
        raise ValueError("modulus must be below 2^63")
    if n_shares < 1:
        raise ValueError(f"n_shares must be >= 1, got {n_shares}")
    p = np.uint64(modulus)
    last = np.mod(x, np.int64(modulus)).astype(np.uint64)
    shares = [random_field_elements(x.shape, modulus) for _ in range(n_shares - 1)]
    for share in shares:
        last = np.where(last >= share, last - share, last + (p - share))
    return [*shares, last]


def add_mod(a: np.ndarray, b: np.ndarray, modulus: int) -> np.ndarray:
    """``(a + b) mod p`` for ``uint64`` arrays with entries below ``p < 2^63`` (no overflow)."""
    total = a + b
    return np.where(total >= np.uint64(modulus), total - np.uint64(modulus), total)


def to_signed_sum(shares: Sequence[np.ndarray], modulus: int) -> np.ndarray:
    """Adds shares mod ``p`` and maps the result to ``int64`` (above ``p // 2`` is negative)."""
    total = shares[0].astype(np.uint64)
    for share in shares[1:]:
        total = add_mod(total, share.astype(np.uint64), modulus)
    signed = total.astype(np.int64)
    return np.where(total > np.uint64(modulus // 2), signed - np.int64(modulus), signed)


@dataclass(frozen=True)
class Share:
    """One institution's share for one compute party in one round (the file's content).

    Attributes:
        round_id: The round it belongs to (a share replayed from another round is refused).
        institution: The sending institution.
        party: Index of the compute party it is for.
        n_parties: Committee size ``M``.
        kind: ``"probs"`` (a probability matrix) or ``"vector"`` (e.g. a model update).
        modulus: Prime ``p`` of ``SecInt(bit_length)``.
        bit_length: ``l`` of the secure integers.
        frac_bits: Fractional bits ``f`` of the encoding.
        weight_units: Public weight in units of ``2^-30`` (0 when weights stay private).
        values: ``uint64`` field elements, the share itself.
    """

    round_id: str
    institution: str
    party: int
    n_parties: int
    kind: str
    modulus: int
    bit_length: int
    frac_bits: int
    weight_units: int
    values: np.ndarray

    def meta(self) -> dict:
        return {k: getattr(self, k) for k in ("round_id", "institution", "party", "n_parties",
                                              "kind", "bit_length", "frac_bits", "weight_units")}


def make_shares(contribution: np.ndarray, *, round_id: str, institution: str, n_parties: int,
                kind: str, bit_length: int, frac_bits: int, weight_units: int = 0) -> list[Share]:
    """Splits an encoded contribution (``int64``) into one :class:`Share` per compute party.

    Raises:
        ShareError: An encoded entry does not fit in ``bit_length - 1`` bits (names the
            institution), or a bad kind or committee size.
    """
    if kind not in KINDS:
        raise ShareError(f"{institution}: kind must be one of {KINDS}, got {kind!r}")
    try:
        check_name("round id", round_id)
        check_institution(institution)
    except ValueError as err:
        raise ShareError(str(err)) from None
    if n_parties < 1:
        raise ShareError(f"{institution}: the committee needs at least 1 party, got {n_parties}")
    x = np.asarray(contribution, dtype=np.int64)
    limit = 1 << (bit_length - 1)
    if x.size and int(np.abs(x).max()) >= limit:
        raise ShareError(f"{institution}: an encoded value ({int(np.abs(x).max())}) does not fit "
                         f"in SecInt({bit_length}); lower frac_bits or scale the values down")
    modulus = field_modulus(bit_length)
    return [Share(round_id, institution, j, n_parties, kind, modulus, bit_length, frac_bits,
                  int(weight_units), s)
            for j, s in enumerate(split_additive(x, modulus, n_parties))]


def share_path(inbox: str | Path, share: Share) -> Path:
    """Where ``share`` lands in a compute party's inbox: ``inbox/<round>/<institution>.<token>``."""
    token = secrets.token_hex(4)
    return Path(inbox) / share.round_id / f"{file_stem(share.institution)}.{token}{SHARE_SUFFIX}"


def write_share(inbox: str | Path, share: Share) -> Path:
    """Writes ``share`` atomically into ``inbox`` (temporary file, fsync, rename).

    Raises:
        ShareError: The institution already delivered a share for this round to this inbox.
    """
    folder = Path(inbox) / share.round_id
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.glob(f"{file_stem(share.institution)}.*{SHARE_SUFFIX}")):
        raise ShareError(f"{share.institution}: already submitted a share for round "
                         f"{share.round_id} to {folder}; an institution submits once per round")
    buffer = io.BytesIO()
    np.savez(buffer, values=share.values, modulus=np.array(str(share.modulus)),
             **{k: np.array(v) for k, v in share.meta().items()})
    # atomic (a reader never sees half a share) but not fsynced: a share lost to a power cut is
    # a dropout, which the committee handles; 300 fsyncs would dominate a 100-institution round
    return write_bytes_atomic(share_path(inbox, share), buffer.getvalue(), durable=False)


def read_share(path: str | Path) -> Share:
    """Reads one share file; raises :class:`ShareError` naming the file when it is unreadable.

    Only the file itself is checked here (readable, complete, well typed); the compute party
    checks it against the round (:func:`efl_toolkit.secure.committee.check_share`).
    """
    path = Path(path)
    # the sender as the file name gives it (<safe id>-<hash>.<token>.share.npz), for messages
    stem = path.name[:-len(SHARE_SUFFIX)].rsplit(".", 1)[0] if path.name.endswith(
        SHARE_SUFFIX) else path.name
    who = stem.rsplit("-", 1)[0] if re.fullmatch(r".+-[0-9a-f]{8}", stem) else stem
    fields = ("values", "modulus", "round_id", "institution", "party", "n_parties", "kind",
              "bit_length", "frac_bits", "weight_units")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [f for f in fields if f not in data]
            if missing:
                raise ShareError(f"{who}: share file {path} lacks {', '.join(missing)}")
            raw = {f: data[f] for f in fields}
    except ShareError:
        raise
    except Exception as err:  # noqa: BLE001 - zip/npy errors of a truncated or foreign file
        raise ShareError(f"{who}: share file {path} is unreadable (truncated or not a share "
                         f"file): {type(err).__name__}: {err}") from None
    try:
        values = raw["values"]
        if values.dtype != np.uint64:
            raise ShareError(f"{who}: share file {path} holds {values.dtype} values, not uint64")
        return Share(str(raw["round_id"]), str(raw["institution"]), int(raw["party"]),
                     int(raw["n_parties"]), str(raw["kind"]), int(str(raw["modulus"])),
                     int(raw["bit_length"]), int(raw["frac_bits"]), int(raw["weight_units"]),
                     values)
    except (TypeError, ValueError) as err:
        if isinstance(err, ShareError):
            raise
        raise ShareError(f"{who}: share file {path} has a malformed field: {err}") from None


def check_inboxes(inboxes: Sequence[str | Path], round_id: str, institution: str) -> None:
    """Refuses, before anything is written, folders a delivery would fail on part-way.

    Raises:
        ShareError: Two entries name the same folder, one is a file or cannot be created or
            written, or the institution already delivered to one of them (all named).
    """
    seen: dict[Path, str] = {}
    for inbox in inboxes:
        folder = Path(inbox)
        key = folder.resolve()
        if key in seen:
            raise ShareError(f"{institution}: --to names the folder {folder} twice (also as "
                             f"{seen[key]}); give one folder per compute party")
        seen[key] = str(inbox)
        existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise ShareError(f"{institution}: --to folder {folder}: {existing} is a file")
        if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
            raise ShareError(f"{institution}: --to folder {folder} is not writable "
                             f"({existing})")
        if any((folder / round_id).glob(f"{file_stem(institution)}.*{SHARE_SUFFIX}")):
            raise ShareError(f"{institution}: already submitted a share for round {round_id} "
                             f"to {folder}; an institution submits once per round")


def deliver(shares: Sequence[Share], inboxes: Sequence[str | Path]) -> list[Path]:
    """Writes share ``j`` into ``inboxes[j]`` (one compute party's inbox folder each).

    Used by the one-machine simulation and by ``efl share``; across machines any file transport
    carries the files. If the process dies part-way, the parties that got a share and those that
    did not disagree, and the committee's agreement step leaves this institution out.
    """
    if len(shares) != len(inboxes):
        raise ShareError(f"{len(shares)} shares for {len(inboxes)} compute parties")
    if shares:
        check_inboxes(inboxes, shares[0].round_id, shares[0].institution)
    return [write_share(inbox, share) for share, inbox in zip(shares, inboxes, strict=True)]


def build_parser():
    """The ``efl share`` argument parser."""
    import argparse

    p = argparse.ArgumentParser(
        prog="efl share", description="As an institution: split your input into additive "
        "shares for a committee round and write share j into the j-th folder (a compute "
        "party's inbox, or a folder to copy to it with any file transport).")
    p.add_argument("--input", required=True,
                   help=".npz with 'probs' [n, C] (mean/labels rounds) or 'vector' (sum rounds)"
                        " and an optional public 'weight' in [0, 1]")
    p.add_argument("--institution", required=True, help="your institution id (in the roster)")
    p.add_argument("--round", required=True, help="the round's JSON file (CommitteeRound)")
    p.add_argument("--to", required=True,
                   help="comma-separated folders, one per compute party, in index order")
    p.add_argument("--pause-after", type=int, default=None, metavar="K",
                   help="deliver K shares, then wait until killed (to rehearse a dropout)")
    return p


def load_contribution(path: str, rnd, institution: str) -> tuple[np.ndarray, float]:
    """Reads and checks an institution's input for ``rnd``; returns (encoded ints, weight)."""
    from efl_toolkit.ensemble.combine import EnsembleInputError, check_probabilities

    key = "vector" if rnd.kind == "vector" else "probs"
    try:
        with np.load(path, allow_pickle=False) as data:
            if key not in data:
                raise ShareError(f"{institution}: {path} has no array {key!r} (found "
                                 f"{sorted(data)})")
            x = np.asarray(data[key], dtype=np.float64)
            weight = data["weight"] if "weight" in data else np.float64(1.0)
    except ShareError:
        raise
    except Exception as err:  # noqa: BLE001 - unreadable npz of any kind
        if isinstance(err, ValueError) and "pickle" in str(err):  # never allow_pickle
            raise ShareError(f"{institution}: cannot read {path}: {Path(path).name} is not a "
                             "NumPy .npz archive (or holds pickled objects, which are "
                             "refused)") from None
        raise ShareError(f"{institution}: cannot read {path}: {type(err).__name__}: "
                         f"{err}") from None
    if np.ndim(weight) != 0 or not np.isfinite(weight) or not 0.0 <= float(weight) <= 1.0:
        raise ShareError(f"{institution}: 'weight' in {path} must be one number in [0, 1]")
    if tuple(x.shape) != tuple(rnd.shape):
        raise ShareError(f"{institution}: {key} in {path} has shape {list(x.shape)}, round "
                         f"{rnd.round_id!r} expects {list(rnd.shape)}")
    if key == "probs":
        try:
            check_probabilities(x, name=f"{institution} ({path})")
        except EnsembleInputError as err:
            raise ShareError(str(err)) from None
    elif not np.all(np.isfinite(x)):
        raise ShareError(f"{institution}: vector in {path} has NaN or infinite values")
    return rnd.fixed_point().encode(float(weight) * x), float(weight)


def main(argv: Sequence[str]) -> int:
    """Entry point of ``efl share``; exit 2 with one line on bad input."""
    import sys
    import time

    from efl_toolkit.secure.committee import CommitteeRound
    from efl_toolkit.secure.fixed_point import weight_units

    args = build_parser().parse_args(list(argv))
    try:
        try:
            rnd = CommitteeRound.from_json(Path(args.round).read_text()).check()
        except (OSError, ValueError, TypeError, KeyError) as err:
            raise ShareError(f"round file {args.round} is unusable: {err}") from None
        if args.institution not in rnd.roster:
            raise ShareError(f"{args.institution} is not in round {rnd.round_id!r} (roster: "
                             f"{', '.join(rnd.roster)})")
        inboxes = [d for d in args.to.split(",") if d]
        if len(inboxes) < 3:
            raise ShareError(f"--to needs one folder per compute party (at least 3), got "
                             f"{len(inboxes)}")
        if args.pause_after is not None and not 1 <= args.pause_after < len(inboxes):
            raise ShareError(f"--pause-after must be in 1..{len(inboxes) - 1} (deliveries "
                             f"before the pause), got {args.pause_after}")
        check_inboxes(inboxes, rnd.round_id, args.institution)
        encoded, weight = load_contribution(args.input, rnd, args.institution)
        fp = rnd.fixed_point()
        units = 0 if rnd.opening == "labels" else weight_units(weight)
        shares = make_shares(encoded, round_id=rnd.round_id, institution=args.institution,
                             n_parties=len(inboxes), kind=rnd.kind, bit_length=fp.bit_length,
                             frac_bits=fp.frac_bits, weight_units=units)
        for j, (share, inbox) in enumerate(zip(shares, inboxes, strict=True)):
            if args.pause_after is not None and j == args.pause_after:
                print(f"paused after {j} of {len(inboxes)} deliveries", flush=True)
                while True:
                    time.sleep(3600)
            print(f"share {j} -> {write_share(inbox, share)}", flush=True)
    except (ShareError, OSError) as err:
        print(f"efl share: error: {err}", file=sys.stderr)
        return 2
    return 0
