"""The committee's protocol: what every compute party runs in one round (MPyC coroutines).

Roles (``docs/secure.md``): institutions (data owners, ``N >= 1``) split their encoded
contributions into ``M`` additive shares and deliver share ``j`` to compute party ``j``
(:mod:`efl_toolkit.secure.shares`); the committee (``M >= 3`` compute parties, honest majority
``t < M/2``) runs, at compute party ``j``:

1. **Collect** the round's shares from its inbox and check each one against the round (round id,
   party index, field modulus, format, shape, roster, one per institution): a bad share fails
   the round, naming the institution and the file; nothing is opened.
2. **Agree** (:func:`agree_on_included`): every party opens which institutions it received and
   their public weights; the round goes on over the institutions that *every* party received
   (a party with an incomplete set never uses it silently). Fewer than ``min_institutions``
   fails the round naming the missing ones.
3. **Add** the included shares locally (no communication): party ``j`` now holds an additive
   share of the total; any ``M - 1`` of these local sums are uniformly random.
4. **Open**: ``"sum"`` (model updates): each party hands over its local sum; the receiver adds
   them mod ``p``, which reveals the total and nothing else (the local sums are additive shares
   of it). ``"mean"``/``"labels"`` (probabilities): every party inputs its local sum into MPyC
   (Shamir, threshold ``t``); the secure total is opened (``"mean"``), or only its argmax per
   row (``"labels"``, :func:`efl_toolkit.secure.protocol.open_labels`).

Public weights (mean and sum) are renormalized over the included institutions by the receiver:
it divides by their sum. In labels mode weights stay private and need no normalization.

Example:
    >>> rnd = CommitteeRound("r1", "labels", ("a", "b"), (4, 2))
    >>> rnd.fixed_point().bit_length, rnd.kind
    (20, 'probs')
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from efl_toolkit.secure.fixed_point import DEFAULT_FRAC_BITS, FixedPoint
from efl_toolkit.secure.protocol import RoundSpec, check_headers, exchange_headers, open_labels
from efl_toolkit.secure.shares import (
    MAX_BIT_LENGTH,
    SHARE_SUFFIX,
    Share,
    ShareError,
    add_mod,
    check_institution,
    check_name,
    read_share,
)

COMMITTEE_PROTOCOL_VERSION = 1
OPENINGS = ("mean", "labels", "sum")
#: Default fractional bits for model-update sums (parameters and updates are small numbers).
SUM_FRAC_BITS = 16
COMMITTEE_HEADER = ("protocol_version", "opening", "receivers", "frac_bits", "bit_length",
                    "n_roster", "size", "last_dim", "batch_rows", "round_id_hash", "roster_hash")


class QuorumError(RuntimeError):
    """Too few institutions reached every compute party; the message names the missing ones."""


@dataclass(frozen=True)
class CommitteeRound:
    """Public parameters of one committee round (identical at every compute party).

    Attributes:
        round_id: Unique id; shares of another round are refused.
        opening: ``"mean"`` (weighted mean of probabilities, weights public), ``"labels"``
            (argmax labels only, weights private) or ``"sum"`` (weighted sum of vectors).
        roster: Institutions expected in the round, in a fixed order.
        shape: Shape of every contribution (``[n, C]`` for probabilities).
        frac_bits: Fractional bits of the fixed-point encoding.
        bit_length: ``l`` of ``SecInt(l)`` (0: derived, see :meth:`fixed_point`).
        receivers: Compute parties that learn the output (``None``: all).
        min_institutions: Fewest included institutions for the round to open anything.
        batch_rows: Rows per secure-argmax batch.
        transcript_rows: Rows of what each party saw to record for teaching (0: none).
        wait_seconds: How long a party waits for a complete roster before it goes on.
    """

    round_id: str
    opening: str
    roster: tuple[str, ...]
    shape: tuple[int, ...]
    frac_bits: int = DEFAULT_FRAC_BITS
    bit_length: int = 0
    receivers: tuple[int, ...] | None = None
    min_institutions: int = 1
    batch_rows: int = 1000
    transcript_rows: int = 0
    wait_seconds: float = 0.0

    @property
    def kind(self) -> str:
        """The kind of contribution: ``"probs"`` for mean/labels, ``"vector"`` for sum."""
        return "vector" if self.opening == "sum" else "probs"

    def fixed_point(self) -> FixedPoint:
        """The encoding: probabilities get the smallest safe ``l``; sums ``l = 30``."""
        if self.bit_length:
            return FixedPoint(self.frac_bits, self.bit_length, len(self.roster))
        if self.opening == "sum":
            return FixedPoint(self.frac_bits, MAX_BIT_LENGTH, len(self.roster))
        return FixedPoint.for_inputs(len(self.roster), self.frac_bits)

    def check(self, n_parties: int | None = None) -> CommitteeRound:
        """Raises ``ValueError`` naming the bad field; returns ``self``."""
        if self.opening not in OPENINGS:
            raise ValueError(f"opening must be one of {OPENINGS}, got {self.opening!r}")
        check_name("round id", self.round_id)
        if not self.roster or len(set(self.roster)) != len(self.roster):
            raise ValueError(f"roster must name distinct institutions, got {list(self.roster)}")
        for name in self.roster:
            check_institution(name)
        if not (isinstance(self.wait_seconds, (int, float)) and math.isfinite(self.wait_seconds)
                and self.wait_seconds >= 0):
            raise ValueError(f"wait_seconds must be a finite number >= 0, got "
                             f"{self.wait_seconds!r}")
        if any(int(d) != d or d < 1 for d in self.shape):
            raise ValueError(f"shape must be positive integers, got {list(self.shape)}")
        if not 1 <= self.min_institutions <= len(self.roster):
            raise ValueError(f"min_institutions must be in 1..{len(self.roster)}, "
                             f"got {self.min_institutions}")
        if self.kind == "probs" and len(self.shape) != 2:
            raise ValueError(f"probabilities need a shape [n, C], got {list(self.shape)}")
        fp = self.fixed_point()
        if fp.bit_length > MAX_BIT_LENGTH:
            raise ValueError(f"SecInt({fp.bit_length}) is too wide for committee shares "
                             f"(at most {MAX_BIT_LENGTH} bits): lower frac_bits")
        RoundSpec(reveal="labels", receivers=self.receivers, frac_bits=self.frac_bits,
                  batch_rows=self.batch_rows).check(n_parties)
        return self

    def to_json(self) -> str:
        data = asdict(self)
        data["roster"], data["shape"] = list(self.roster), list(self.shape)
        return json.dumps(data, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> CommitteeRound:
        """Parses :meth:`to_json`'s text; ``ValueError`` naming what is wrong with its form
        (not JSON, not an object, a missing or unknown field, a list that is not a list).

        Example:
            >>> CommitteeRound.from_json('{"round_id": "r", "opening": "sum"}')
            Traceback (most recent call last):
            ...
            ValueError: round file lacks field 'roster'
        """
        data = json.loads(text)  # json.JSONDecodeError is a ValueError
        if not isinstance(data, dict):
            raise ValueError(f"a round file must be a JSON object, got a JSON "
                             f"{type(data).__name__}")
        known = {f.name: f for f in dataclasses.fields(CommitteeRound)}
        for name, f in known.items():
            if name not in data and f.default is dataclasses.MISSING:
                raise ValueError(f"round file lacks field {name!r}")
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"round file has unknown field {unknown[0]!r}")
        for name in ("roster", "shape", "receivers"):
            if data.get(name) is not None and not isinstance(data[name], list):
                raise ValueError(f"round file field {name!r} must be a list, got "
                                 f"{data[name]!r}")
        data["roster"], data["shape"] = tuple(data["roster"]), tuple(data["shape"])
        if data.get("receivers") is not None:
            data["receivers"] = tuple(data["receivers"])
        return CommitteeRound(**data)

    def header(self) -> list[int]:
        """Integers every party opens to check that all run the same round."""
        def h(text: str) -> int:
            return int.from_bytes(hashlib.sha256(text.encode()).digest()[:7], "big")

        fp = self.fixed_point()
        mask = 0 if self.receivers is None else sum(1 << r for r in self.receivers)
        return [COMMITTEE_PROTOCOL_VERSION, OPENINGS.index(self.opening), mask, fp.frac_bits,
                fp.bit_length, len(self.roster), int(np.prod(self.shape)), self.shape[-1],
                self.batch_rows, h(self.round_id), h("\n".join(self.roster))]


def check_share(share: Share, path: Path, rnd: CommitteeRound, party: int, n_parties: int,
                modulus: int) -> None:
    """Raises :class:`ShareError` (naming institution and file) unless ``share`` fits the round."""
    who = f"{share.institution}: share file {path}"
    fp = rnd.fixed_point()
    problems = [
        (share.round_id != rnd.round_id,
         f"is for round {share.round_id!r}, not {rnd.round_id!r} (replayed?)"),
        (share.institution not in rnd.roster,
         f"comes from an institution that is not in round {rnd.round_id!r} "
         f"(roster: {', '.join(rnd.roster)})"),
        (share.party != party, f"is addressed to compute party {share.party}, not {party}"),
        (share.n_parties != n_parties,
         f"was split for {share.n_parties} compute parties, the committee has {n_parties}"),
        (share.kind != rnd.kind, f"holds a {share.kind!r} contribution, not {rnd.kind!r}"),
        (share.modulus != modulus or share.bit_length != fp.bit_length,
         f"uses the field of SecInt({share.bit_length}) (p={share.modulus}), the round uses "
         f"SecInt({fp.bit_length}) (p={modulus})"),
        (share.frac_bits != fp.frac_bits,
         f"uses {share.frac_bits} fractional bits, the round {fp.frac_bits}"),
        (tuple(share.values.shape) != tuple(rnd.shape),
         f"has shape {list(share.values.shape)}, the round expects {list(rnd.shape)}"),
    ]
    for bad, why in problems:
        if bad:
            raise ShareError(f"{who} {why}")
    if share.values.size and int(share.values.max()) >= modulus:
        raise ShareError(f"{who} holds values outside the field [0, p)")


def collect_shares(inbox: Path, rnd: CommitteeRound, party: int, n_parties: int,
                   modulus: int) -> dict[str, Share]:
    """Reads and checks every share of ``rnd`` in ``inbox``; waits up to ``rnd.wait_seconds``
    for the whole roster. Returns ``{institution: share}`` (missing institutions are absent).

    Raises:
        ShareError: A bad share file, or an institution that submitted twice.
    """
    folder = Path(inbox) / rnd.round_id
    deadline = time.monotonic() + rnd.wait_seconds
    while True:
        files = sorted(folder.glob(f"*{SHARE_SUFFIX}")) if folder.is_dir() else []
        if len(files) >= len(rnd.roster) or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    found: dict[str, tuple[Share, Path]] = {}
    for path in files:
        share = read_share(path)
        check_share(share, path, rnd, party, n_parties, modulus)
        if share.institution in found:
            raise ShareError(f"{share.institution}: submitted twice to compute party {party} "
                             f"in round {rnd.round_id!r} ({found[share.institution][1].name}, "
                             f"{path.name}); nothing is opened")
        found[share.institution] = (share, path)
    return {name: found[name][0] for name in rnd.roster if name in found}


async def agree_on_included(mpc, rnd: CommitteeRound, received: dict[str, Share]
                            ) -> tuple[list[str], list[int]]:
    """Opens every party's received set and public weights; returns the institutions every
    party received (roster order) and their weight units.

    Raises:
        ShareError: Parties saw different public weights for an included institution.
        QuorumError: Fewer than ``rnd.min_institutions`` institutions are included.
    """
    flags = [1 if name in received else 0 for name in rnd.roster]
    units = [received[name].weight_units if name in received else 0 for name in rnd.roster]
    opened = await exchange_headers(mpc, flags + units)
    n = len(rnd.roster)
    everywhere = opened[:, :n].min(axis=0)
    included = [name for name, ok in zip(rnd.roster, everywhere, strict=True) if ok]
    weights = []
    for k, name in enumerate(rnd.roster):
        if not everywhere[k]:
            continue
        seen = set(int(u) for u in opened[:, n + k])
        if len(seen) > 1:
            raise ShareError(f"{name}: sent different public weights to the compute parties "
                             f"({sorted(seen)} units); nothing is opened")
        weights.append(seen.pop())
    if len(included) < rnd.min_institutions:
        missing = [name for name in rnd.roster if name not in included]
        raise QuorumError(f"round {rnd.round_id!r}: only {len(included)} of {n} institutions "
                          f"reached every compute party, at least {rnd.min_institutions} needed;"
                          f" missing: {', '.join(missing)}")
    return included, weights


def local_sum(shares: Sequence[Share], modulus: int, shape: tuple[int, ...]) -> np.ndarray:
    """This party's additive share of the total: its shares added mod ``p`` (``uint64``)."""
    total = np.zeros(shape, dtype=np.uint64)
    for share in shares:
        total = add_mod(total, share.values, modulus)
    return total


def signed(values: np.ndarray, modulus: int) -> np.ndarray:
    """Field elements as ``int64`` representatives in ``(-p/2, p/2]``."""
    v = np.asarray(values, dtype=np.uint64)
    return np.where(v > np.uint64(modulus // 2), v.astype(np.int64) - np.int64(modulus),
                    v.astype(np.int64))


async def run_committee_round(mpc, rnd: CommitteeRound, received: dict[str, Share]) -> dict:
    """One committee round at this compute party (every party runs it with its own shares).

    Returns a dict with ``included``, ``weight_units``, and the opened output: ``local_sum``
    (``"sum"``: this party's additive share of the total), ``sum`` (``"mean"``, receivers
    only, ``int64``), ``labels`` (receivers only), and ``view`` for the teaching transcript.
    """
    header = rnd.header()
    check_headers(await exchange_headers(mpc, header), header, mpc.pid,
                  fields=COMMITTEE_HEADER)
    included, units = await agree_on_included(mpc, rnd, received)
    fp = rnd.fixed_point()
    sectype = mpc.SecInt(fp.bit_length)
    modulus = int(sectype.field.modulus)
    mine = local_sum([received[name] for name in included], modulus, tuple(rnd.shape))
    out: dict = {"included": included, "weight_units": units, "modulus": modulus}
    rows = min(rnd.transcript_rows, rnd.shape[0])
    if rows:
        out["view"] = {"party": mpc.pid, "rows": rows, "modulus": modulus,
                       "received": {n: received[n].values[:rows].tolist() for n in received},
                       "local_sum": mine[:rows].tolist()}
    if rnd.opening == "sum":
        out["local_sum"] = mine
        return out
    receivers = None if rnd.receivers is None else list(rnd.receivers)
    shared = mpc.input(sectype.array(signed(mine, modulus)))
    total = shared[0]
    for x in shared[1:]:
        total = total + x
    if rnd.opening == "mean":
        opened = await mpc.output(total, receivers=receivers)
        if opened is not None:
            out["sum"] = np.asarray(opened, dtype=object).astype(np.int64)
            out["labels"] = np.argmax(out["sum"], axis=1).astype(np.int64)
    else:
        spec = RoundSpec(reveal="labels", receivers=rnd.receivers, batch_rows=rnd.batch_rows,
                         frac_bits=rnd.frac_bits)
        labels = await open_labels(mpc, total, fp, spec)
        if labels is not None:
            out["labels"] = labels
    if rows:
        out["view"]["opened"] = {k: out[k][:rows].tolist() for k in ("sum", "labels") if k in out}
    return out
