"""What each party saw in a secure round: a transcript for teaching.

With ``transcript=True`` every party records, for the first few query rows, its Shamir share of
every institution's encoded matrix, its share of the weighted sum, and what was opened to it.
The shares are field elements that look random: one party (or any ``t`` colluding parties)
learns nothing from them, while any ``t + 1`` parties together can reconstruct the value, which
:meth:`Transcript.reconstruct` demonstrates. MPyC gives party ``i`` the value of the sharing
polynomial at ``x = i + 1``; reconstruction is Lagrange interpolation at ``x = 0``.

Example:
    >>> from efl_toolkit.secure.transcript import lagrange_at_zero
    >>> p = 101                      # secret 7, polynomial f(x) = 7 + 5x: shares f(1), f(2), f(3)
    >>> lagrange_at_zero({1: 12, 2: 17}, p), lagrange_at_zero({2: 17, 3: 22}, p)
    (7, 7)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def lagrange_at_zero(points: Mapping[int, object], modulus: int):
    """Interpolates the polynomial through ``{x: y}`` (mod ``modulus``) and evaluates it at 0.

    ``y`` may be an int or an array of ints (object dtype); the result has the same shape.
    """
    xs = list(points)
    total = 0
    for xi in xs:
        num, den = 1, 1
        for xj in xs:
            if xj != xi:
                num = num * (-xj) % modulus
                den = den * (xi - xj) % modulus
        coeff = num * pow(den, -1, modulus) % modulus
        total = total + np.asarray(points[xi], dtype=object) * coeff
    result = np.asarray(np.asarray(total, dtype=object) % modulus, dtype=object)
    return int(result) if result.ndim == 0 else result


def to_signed(values, modulus: int) -> np.ndarray:
    """Field elements above ``modulus // 2`` stand for negative numbers."""
    arr = np.asarray(values, dtype=object) % modulus
    return np.where(arr > modulus // 2, arr - modulus, arr).astype(np.int64)


@dataclass(frozen=True)
class PartyView:
    """The shares one party held and what was opened to it (first ``rows`` rows).

    Attributes:
        party: Party index.
        name: Institution name.
        own_contributions: Its own encoded ``w_i * P_i`` rows (its private input).
        input_shares: Its share of each institution's encoded matrix, ``[rows, C]`` each.
        sum_share: Its share of the weighted sum.
        opened_sum: Weighted sum opened to it (mean mode, receivers), else ``None``.
        opened_labels: Labels opened to it, else ``None``.
    """

    party: int
    name: str
    own_contributions: np.ndarray
    input_shares: tuple[np.ndarray, ...]
    sum_share: np.ndarray
    opened_sum: np.ndarray | None
    opened_labels: np.ndarray | None

    @staticmethod
    def from_record(record: dict, name: str) -> PartyView:
        """Builds a view from the ``view`` dict a party writes."""
        opened = record.get("opened") or {}

        def arr(x):
            return None if x is None else np.asarray(x, dtype=object)

        return PartyView(
            party=int(record["party"]), name=name,
            own_contributions=np.asarray(record["own_contributions"], dtype=object),
            input_shares=tuple(np.asarray(s, dtype=object) for s in record["input_shares"]),
            sum_share=np.asarray(record["sum_share"], dtype=object),
            opened_sum=arr(opened.get("sum")), opened_labels=arr(opened.get("labels")))


@dataclass(frozen=True)
class Transcript:
    """Every party's view of one round.

    Attributes:
        views: One :class:`PartyView` per party.
        institutions: Institution names in party order.
        modulus: The prime of the secret-sharing field.
        threshold: ``t``: at most ``t`` parties together learn nothing.
        frac_bits: Fixed-point fractional bits of the encoded values.
        reveal: What the round opened (``mean`` or ``labels``).
        in_process: True for the single in-process party (no secrecy at all).
    """

    views: tuple[PartyView, ...]
    institutions: tuple[str, ...]
    modulus: int
    threshold: int
    frac_bits: int
    reveal: str
    in_process: bool = False

    @staticmethod
    def from_records(records: Sequence[dict], institutions: Sequence[str], frac_bits: int,
                     reveal: str, in_process: bool = False) -> Transcript:
        """Builds a transcript from the parties' ``view`` records."""
        first = records[0]
        names = [institutions[r["party"]] if not in_process else "in-process party"
                 for r in records]
        return Transcript(
            views=tuple(PartyView.from_record(r, n) for r, n in zip(records, names, strict=True)),
            institutions=tuple(institutions), modulus=int(first["modulus"]),
            threshold=int(first["threshold"]), frac_bits=frac_bits, reveal=reveal,
            in_process=in_process)

    def shares_of(self, institution: int | str = "sum") -> dict[int, np.ndarray]:
        """``{party: its share}`` of one institution's encoded input, or of the sum."""
        if institution == "sum":
            return {v.party: v.sum_share for v in self.views}
        return {v.party: v.input_shares[int(institution)] for v in self.views}

    def reconstruct(self, institution: int | str, parties: Sequence[int]) -> np.ndarray:
        """Recombines the shares of ``parties`` (needs at least ``t + 1`` of them).

        Returns the encoded integers (divide by ``2**frac_bits`` for probabilities).

        Raises:
            ValueError: With ``t`` or fewer parties: their shares reveal nothing.
        """
        if self.in_process:
            return to_signed(self.shares_of(institution)[0], self.modulus)
        parties = sorted(set(parties))
        if len(parties) <= self.threshold:
            raise ValueError(f"{len(parties)} share(s) cannot reveal anything with threshold "
                             f"t={self.threshold}: any value is equally likely; pass at least "
                             f"{self.threshold + 1} parties")
        shares = self.shares_of(institution)
        value = lagrange_at_zero({p + 1: shares[p] for p in parties}, self.modulus)
        return to_signed(value, self.modulus)

    def explain(self, institution: int = 0, row: int = 0) -> str:
        """A readable account of who held what for one institution's query row."""
        name = self.institutions[institution]
        lines = []
        if self.in_process:
            lines.append("In-process round: ONE MPyC party held every input in the clear "
                         "(m=1, t=0). There is no secrecy here; the 'shares' are the values.")
        lines.append(f"Field: integers modulo a {self.modulus.bit_length()}-bit prime; "
                     f"threshold t={self.threshold}: any {self.threshold + 1} parties can "
                     f"reconstruct, {self.threshold} or fewer learn nothing.")
        lines.append(f"Row {row} of {name}'s encoded input w*p*2^{self.frac_bits}:")
        for v in self.views:
            share = [int(x) for x in v.input_shares[institution][row]]
            lines.append(f"  party {v.party} ({v.name}) holds share {share}")
        if len(self.views) > self.threshold:
            parties = [v.party for v in self.views][: self.threshold + 1]
            secret = self.reconstruct(institution, parties)[row].tolist()
            lines.append(f"  parties {parties} together reconstruct {secret}")
        for v in self.views:
            opened = ("nothing" if v.opened_sum is None and v.opened_labels is None else
                      f"sum {v.opened_sum[row].tolist()}" if v.opened_sum is not None else
                      f"label {int(v.opened_labels[row])}")
            lines.append(f"  opened to party {v.party}: {opened}")
        return "\n".join(lines)


@dataclass(frozen=True)
class CommitteeTranscript:
    """What institutions sent and compute parties saw in a committee round (first rows).

    Attributes:
        institutions: The round's roster.
        modulus: The prime ``p`` of the round's field (``SecInt(l)``).
        frac_bits: Fixed-point fractional bits.
        reveal: ``mean``, ``labels`` or ``sum``.
        sent: ``{institution: [share for party 0, party 1, ...]}`` (``[rows, C]`` each): the
            additive shares each institution delivered, as field elements.
        local_sums: Each compute party's sum of the shares it received (its additive share of
            the total), ``[rows, C]``.
        opened: What was opened to the first receiver (``sum`` and/or ``labels`` rows).
        included: Institutions whose shares reached every compute party.
    """

    institutions: tuple[str, ...]
    modulus: int
    frac_bits: int
    reveal: str
    sent: dict[str, tuple[np.ndarray, ...]]
    local_sums: tuple[np.ndarray, ...]
    opened: dict
    included: tuple[str, ...]

    def reconstruct(self, parties: Sequence[int]) -> np.ndarray:
        """Adds the local sums of ``parties`` mod ``p`` (signed integers).

        All ``M`` parties together give the encoded total; any fewer give a uniformly random
        field element that says nothing about the total (additive ``M``-out-of-``M`` sharing).
        """
        total = sum(np.asarray(self.local_sums[j], dtype=object) for j in sorted(set(parties)))
        return to_signed(total, self.modulus)

    def explain(self, institution: int = 0, row: int = 0) -> str:
        """A readable account of one query row: shares sent, local sums, what was opened."""
        name = self.institutions[institution]
        m = len(self.local_sums)
        lines = [f"Field: integers modulo a {self.modulus.bit_length()}-bit prime p; "
                 f"{name} splits its encoded weighted probabilities w*P*2^{self.frac_bits} "
                 f"into {m} additive shares (mod p), one per compute party; any {m - 1} of "
                 "them are uniformly random."]
        for j, share in enumerate(self.sent.get(name, ())):
            lines.append(f"  {name} -> compute party {j}: {[int(x) for x in share[row]]}")
        if name not in self.included:
            lines.append(f"  {name} did not reach every compute party: it was left out")
        for j, local in enumerate(self.local_sums):
            lines.append(f"  compute party {j} adds what it received: "
                         f"{[int(x) for x in local[row]]}")
        lines.append(f"  all {m} local sums together: {self.reconstruct(range(m))[row].tolist()}"
                     f" = the encoded weighted sum; {m - 1} of them: "
                     f"{self.reconstruct(range(m - 1))[row].tolist()} (random)")
        opened = self.opened
        if "sum" in opened:
            lines.append(f"  opened: sum {opened['sum'][row]}")
        if "labels" in opened:
            lines.append(f"  opened: label {opened['labels'][row]}")
        if not opened:
            lines.append("  opened to this caller: nothing")
        return "\n".join(lines)
