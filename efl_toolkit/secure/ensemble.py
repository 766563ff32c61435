"""Public entry points of the secure ensemble: :func:`secure_ensemble` and friends.

``secure_ensemble(predictions, weights)`` runs one MPyC round with one real party process per
institution on this machine and returns the ensemble labels (always) and the weighted mean
probabilities (only with ``reveal="mean"``).

What stays private (passive adversaries, honest majority: up to ``colluders < M/2`` parties
may pool what they see and still learn nothing beyond the opened output):

* ``reveal="mean"``: each institution's probabilities. The weights are public (they are
  normalized in the open) and the weighted mean is opened.
* ``reveal="labels"``: each institution's probabilities, its weight, and the weighted mean; only
  the argmax label per query is opened.
* ``receivers=[k]``: the output is opened to party ``k`` only.

In this single-machine simulation the calling process holds every input (it writes each party's
input file), so the secrecy is among the party processes, which is what the transcript shows.
Across machines each institution runs ``efl party`` with only its own file (``docs/secure.md``).
A notebook kernel on its own is a single MPyC party with no secrecy:
:func:`secure_ensemble_in_process` is exactly that, for tests and teaching.

Example:
    >>> import numpy as np
    >>> from efl_toolkit.secure import secure_ensemble
    >>> preds = [np.array([[0.9, 0.1], [0.4, 0.6]]), np.array([[0.6, 0.4], [0.3, 0.7]]),
    ...          np.array([[0.2, 0.8], [0.5, 0.5]])]
    >>> res = secure_ensemble(preds, [2, 1, 1], reveal="mean")     # 3 party processes
    >>> res.labels.tolist(), np.round(res.mean, 3).tolist()
    ([0, 1], [[0.65, 0.35], [0.4, 0.6]])
    >>> secure_ensemble(preds, reveal="labels").mean is None       # mean stays secret
    True
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from efl_toolkit.ensemble.combine import check_predictions, normalize_weights
from efl_toolkit.ensemble.hierarchical import level1_ensembles
from efl_toolkit.secure.committee import CommitteeRound
from efl_toolkit.secure.committee_client import Committee
from efl_toolkit.secure.fixed_point import (
    DEFAULT_FRAC_BITS,
    FixedPoint,
    Reference,
    reference_round,
)
from efl_toolkit.secure.parties import (
    PartyInput,
    PartyReport,
    SecureRoundError,
    launch_parties,
)
from efl_toolkit.secure.protocol import RoundSpec, run_in_process
from efl_toolkit.secure.transcript import CommitteeTranscript, Transcript


@dataclass(frozen=True)
class SecureEnsembleResult:
    """Outcome of a secure ensemble round.

    Attributes:
        labels: Ensemble label per query ``[n]`` (argmax, ties to the lowest class).
        mean: Weighted mean probabilities ``[n, C]``; ``None`` when only labels were opened.
        reveal: ``"mean"`` or ``"labels"``.
        institutions: Institution names, in party order.
        weights: Normalized institution weights (sum 1) defining the ensemble.
        n_parties: MPyC parties that ran the round (1 for the in-process path).
        threshold: Colluders tolerated ``t`` (0 in process: no secrecy).
        receivers: Parties the output was opened to (``None``: all).
        fixed_point: Fixed-point format (``error_bound`` bounds ``|mean - float mean|``).
        seconds: Wall time of the round, process start to result.
        parties: One :class:`PartyReport` per party (commands, timings, bytes sent).
        transcript: What each party saw, when requested (a :class:`CommitteeTranscript` in
            committee mode).
        in_process: True when computed by this process alone (m=1): NOT secret.
        committee: Compute parties of the committee, or ``None`` when every institution was
            its own party.
        included: Institutions whose contribution is in the result.
        dropped: Institutions left out (their shares did not reach every compute party).
    """

    labels: np.ndarray
    mean: np.ndarray | None
    reveal: str
    institutions: tuple[str, ...]
    weights: np.ndarray
    n_parties: int
    threshold: int
    receivers: tuple[int, ...] | None
    fixed_point: FixedPoint
    seconds: float
    parties: tuple[PartyReport, ...] = ()
    transcript: Transcript | CommitteeTranscript | None = None
    in_process: bool = False
    committee: int | None = None
    included: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()

    @property
    def secret(self) -> bool:
        """Whether inputs were split among separate party processes."""
        return not self.in_process and self.n_parties >= 2

    def summary(self) -> dict:
        """JSON-ready facts about the round (for reports and the ledger)."""
        return {
            "reveal": self.reveal, "parties": self.n_parties, "threshold": self.threshold,
            "secret": self.secret, "receivers": None if self.receivers is None
            else list(self.receivers),
            "institutions": list(self.institutions), "seconds": self.seconds,
            "committee": self.committee, "included": list(self.included),
            "dropped": list(self.dropped),
            "frac_bits": self.fixed_point.frac_bits, "bit_length": self.fixed_point.bit_length,
            "error_bound": self.fixed_point.error_bound,
            "party_seconds": [p.compute_seconds for p in self.parties],
            "connect_seconds": [p.connect_seconds for p in self.parties],
            "bytes_sent": [p.bytes_sent for p in self.parties],
            "commands": [p.shell_command for p in self.parties],
        }


@dataclass(frozen=True)
class _Prepared:
    names: tuple[str, ...]
    probs: tuple[np.ndarray, ...]
    weights: np.ndarray        # normalized, sum 1
    party_weights: np.ndarray  # scaled to max 1: what the parties multiply by
    fixed_point: FixedPoint


def _prepare(predictions, weights, reveal: str, frac_bits: int, n_inputs_min: int) -> _Prepared:
    names, stacked = check_predictions(predictions)
    if len(names) < n_inputs_min:
        raise ValueError(
            f"a secure ensemble needs at least {n_inputs_min} institutions (one party process "
            f"each), got {len(names)}: with a single party nothing is secret. Use "
            "efl_toolkit.ensemble for a plaintext ensemble.")
    RoundSpec(reveal=reveal, frac_bits=frac_bits).check()
    norm = normalize_weights(weights, len(names), names=names)
    return _Prepared(names, tuple(stacked), norm, norm / norm.max(),
                     FixedPoint.for_inputs(len(names), frac_bits))


def _check_colluders(colluders: int | None, m: int) -> int:
    t = (m - 1) // 2 if colluders is None else int(colluders)
    if t < 0:
        raise ValueError(f"colluders must be >= 0, got {t}")
    if 2 * t >= m:
        raise ValueError(f"colluders={t} is more than M={m} parties allow: an honest majority "
                         f"needs colluders < M/2, i.e. at most {(m - 1) // 2} "
                         f"(tolerating {t} needs at least {2 * t + 1} parties)")
    return t


def plaintext_reference(predictions, weights=None, *, reveal: str = "mean",
                        frac_bits: int = DEFAULT_FRAC_BITS,
                        committee: int | None = 3) -> Reference:
    """What a secure round opens, computed in plaintext with the parties' exact encoding.

    Its ``labels`` equal the secure labels exactly, and its ``mean`` equals the secure mean
    (both computed on the same integers). ``committee`` selects the mode as in
    :func:`secure_ensemble`: a committee encodes ``(w_i / max w) * P_i`` and divides the opened
    sum by the weights' sum; one party per institution encodes with weights normalized first.

    Example:
        >>> ref = plaintext_reference([[[0.9, 0.1]], [[0.2, 0.8]]], [1, 1])
        >>> ref.labels.tolist(), ref.mean.round(3).tolist()
        ([0], [[0.55, 0.45]])
    """
    prep = _prepare(predictions, weights, reveal, frac_bits, 1)
    if committee is None:
        return reference_round(prep.probs, prep.party_weights, reveal, prep.fixed_point)
    exact = reference_round(prep.probs, prep.party_weights, "labels", prep.fixed_point)
    divisor = float(prep.party_weights.sum()) if reveal == "mean" else 1.0
    return Reference(exact.sum, exact.labels, exact.mean / divisor)


def _transcript(records, names, prep, reveal, in_process) -> Transcript | None:
    records = [r for r in records if r]
    if not records:
        return None
    return Transcript.from_records(records, names, prep.fixed_point.frac_bits, reveal, in_process)


def secure_ensemble(predictions, weights=None, *, reveal: str = "mean",
                    committee: int | None = 3, min_institutions: int = 1,
                    timeout: float = 120.0, startup_timeout: float = 30.0,
                    receivers: Sequence[int] | None = None, colluders: int | None = None,
                    frac_bits: int = DEFAULT_FRAC_BITS, transcript: bool = False,
                    transcript_rows: int = 3, batch_rows: int = 1000,
                    tls: bool | str = False,
                    on_spawn: Callable[[list[int]], None] | None = None
                    ) -> SecureEnsembleResult:
    """Secure weighted ensemble of institutions' probabilities over real MPyC processes.

    Two ways to run it (``docs/secure.md``, "Two roles"):

    * ``committee=M`` (default 3): the institutions split their encoded, locally weighted
      probabilities into ``M`` additive shares, one per *compute party*; the ``M`` compute-party
      processes add what they received and open the mean or only the labels over MPyC. Cost is
      flat in the number of institutions ``N >= 1``; an institution whose shares did not reach
      every compute party is left out (``dropped``) and public weights are renormalized.
    * ``committee=None``: every institution is its own MPyC party (``N >= 2`` processes); cost
      grows steeply with ``N`` and a party that drops out stops the round.

    Args:
        predictions: Probability matrices ``[n, C]`` (list, or dict name -> matrix).
        weights: Institution weights (e.g. validation scores or data sizes), list or dict by
            name; ``None`` means equal. Public with ``reveal="mean"``, private with ``"labels"``.
        reveal: ``"mean"`` opens the weighted mean (and labels); ``"labels"`` opens only labels.
        committee: Compute parties ``M >= 3``, or ``None`` for one party per institution.
        min_institutions: Committee mode: fewest included institutions to open anything.
        timeout: Seconds for the round once all parties are connected.
        startup_timeout: Seconds for the party processes to start and connect.
        receivers: Party indices that learn the output (default: all). The result holds what
            the first receiver learned.
        colluders: ``t``, the number of colluding parties tolerated; ``t < M/2`` (default the
            largest allowed, ``(M-1)//2``).
        frac_bits: Fixed-point fractional bits (16: mean within ``N * 2**-17``).
        transcript: Record what every party saw (first ``transcript_rows`` rows).
        transcript_rows: Rows recorded per party when ``transcript`` is set.
        batch_rows: Rows per secure-argmax batch.
        tls: ``True`` makes throw-away certificates and runs MPyC over TLS; a path uses the
            certificates in that folder.
        on_spawn: Called with the party PIDs right after they start.

    Returns:
        A :class:`SecureEnsembleResult`.

    Raises:
        ValueError: Bad predictions, weights, reveal, receivers, colluders or committee size;
            raised before any process starts and naming the institution or parameter.
        SecureRoundError: A party could not connect, failed, died or hung (named), or too few
            institutions were included; every process has been stopped when this is raised.

    Example:
        >>> preds = {"a": [[0.7, 0.3]], "b": [[0.3, 0.7]], "c": [[0.45, 0.55]]}
        >>> secure_ensemble(preds, reveal="labels").labels.tolist()
        [1]
        >>> secure_ensemble(preds, reveal="labels", committee=None).n_parties  # one per inst.
        3
    """
    if committee is not None:
        _prepare(predictions, weights, reveal, frac_bits, 1)
        with Committee(committee, colluders=colluders, startup_timeout=startup_timeout,
                       round_timeout=timeout, tls=tls, on_spawn=on_spawn) as running:
            return committee_ensemble(running, predictions, weights, reveal=reveal,
                                      receivers=receivers, frac_bits=frac_bits,
                                      transcript=transcript, transcript_rows=transcript_rows,
                                      batch_rows=batch_rows, min_institutions=min_institutions)
    prep = _prepare(predictions, weights, reveal, frac_bits, 2)
    m = len(prep.names)
    t = _check_colluders(colluders, m)
    spec = RoundSpec(reveal=reveal, receivers=None if receivers is None else tuple(receivers),
                     frac_bits=frac_bits, batch_rows=batch_rows,
                     transcript_rows=transcript_rows if transcript else 0).check(m)
    inputs = [PartyInput(p, float(w), n)
              for p, w, n in zip(prep.probs, prep.party_weights, prep.names, strict=True)]
    cert_dir = None
    if tls is True:
        from efl_toolkit.secure.tls import make_certificates

        cert_dir = make_certificates(tempfile.mkdtemp(prefix="efl-tls-"), m, days=1)
    try:
        run = launch_parties(inputs, spec, threshold=t, startup_timeout=startup_timeout,
                             round_timeout=timeout,
                             tls_dir=cert_dir if tls is True else (tls or None),
                             on_spawn=on_spawn)
    finally:
        if cert_dir is not None:
            shutil.rmtree(cert_dir, ignore_errors=True)
    first = spec.receivers[0] if spec.receivers else 0
    got = run.arrays[first]
    for r in spec.receivers or range(m):
        if not np.array_equal(run.arrays[r].get("labels"), got.get("labels")):
            raise SecureRoundError(f"receivers {first} and {r} opened different labels",
                                   [first, r], run.reports, kind="inconsistent")
    mean = prep.fixed_point.decode(got["sum"]) if reveal == "mean" else None
    return SecureEnsembleResult(
        labels=np.asarray(got["labels"], dtype=np.int64), mean=mean, reveal=reveal,
        institutions=prep.names, weights=prep.weights, n_parties=m, threshold=t,
        receivers=spec.receivers, fixed_point=prep.fixed_point, seconds=run.seconds,
        parties=run.reports,
        transcript=_transcript([r.get("view") for r in run.results], prep.names, prep, reveal,
                               False),
        included=prep.names)


def committee_ensemble(committee: Committee, predictions, weights=None, *,
                       reveal: str = "mean", receivers: Sequence[int] | None = None,
                       frac_bits: int = DEFAULT_FRAC_BITS, transcript: bool = False,
                       transcript_rows: int = 3, batch_rows: int = 1000,
                       min_institutions: int = 1, round_id: str | None = None,
                       absent: Sequence[str] = ()) -> SecureEnsembleResult:
    """One secure-ensemble round on a running :class:`Committee` (see :func:`secure_ensemble`).

    Every institution (played by this process) encodes ``(w_i / max w) * P_i``, splits it into
    additive shares and delivers them; institutions in ``absent`` submit nothing (a dropout,
    for teaching and tests). With ``reveal="mean"`` the opened sum is divided by the included
    institutions' public weights, so the mean is renormalized over who took part.

    Example:
        >>> with Committee(3) as c:
        ...     res = committee_ensemble(c, {"a": [[0.9, 0.1]], "b": [[0.2, 0.8]],
        ...                                  "c": [[0.4, 0.6]]}, absent=["c"])
        >>> res.included, res.dropped, res.mean.round(3).tolist()
        (('a', 'b'), ('c',), [[0.55, 0.45]])
    """
    prep = _prepare(predictions, weights, reveal, frac_bits, 1)
    unknown = sorted(set(absent) - set(prep.names))
    if unknown:
        raise ValueError(f"absent names unknown institutions: {', '.join(unknown)}")
    rnd = CommitteeRound(round_id or committee.next_round_id("ensemble"), reveal, prep.names,
                         tuple(prep.probs[0].shape), frac_bits=frac_bits,
                         receivers=None if receivers is None else tuple(receivers),
                         min_institutions=min_institutions, batch_rows=batch_rows,
                         transcript_rows=transcript_rows if transcript else 0
                         ).check(committee.size)
    fp = rnd.fixed_point()
    rows = rnd.transcript_rows
    sent = {}
    for name, probs, w in zip(prep.names, prep.probs, prep.party_weights, strict=True):
        if name in absent:
            continue
        shares = committee.submit(rnd, name, fp.encode(float(w) * probs),
                                  float(w) if reveal == "mean" else 0.0)
        sent[name] = tuple(sh.values[:rows].astype(object) for sh in shares)
    run = committee.run(rnd)
    first = rnd.receivers[0] if rnd.receivers else 0
    got = run.arrays[first]
    for r in rnd.receivers or range(committee.size):
        if not np.array_equal(run.arrays[r].get("labels"), got.get("labels")):
            raise SecureRoundError(f"receivers {first} and {r} opened different labels",
                                   [first, r], committee.reports(), kind="inconsistent")
    keep = np.array([n in run.included for n in prep.names])
    mean = None
    if reveal == "mean":
        mean = fp.decode(got["sum"]) / float(prep.party_weights[keep].sum())
    norm = np.where(keep, prep.weights, 0.0)
    record = None
    if rows:
        views = [r.get("view") or {} for r in run.results]
        record = CommitteeTranscript(
            prep.names, int(run.results[0]["modulus"]), frac_bits, reveal, sent,
            tuple(np.asarray(v.get("local_sum", []), dtype=object) for v in views),
            views[first].get("opened", {}), run.included)
    return SecureEnsembleResult(
        labels=np.asarray(got["labels"], dtype=np.int64), mean=mean, reveal=reveal,
        institutions=prep.names, weights=norm / norm.sum(), n_parties=committee.size,
        threshold=committee.threshold, receivers=rnd.receivers,
        fixed_point=FixedPoint(fp.frac_bits, fp.bit_length, len(run.included)),
        seconds=run.seconds, parties=committee.reports(results=run.results), transcript=record,
        committee=committee.size, included=run.included, dropped=run.dropped)


async def secure_ensemble_async(predictions, weights=None, **kwargs) -> SecureEnsembleResult:
    """``await``-able :func:`secure_ensemble` (runs in a worker thread; the kernel stays free).

    Example:
        >>> import asyncio
        >>> res = asyncio.run(secure_ensemble_async([[[0.6, 0.4]], [[0.3, 0.7]]]))
        >>> res.labels.tolist()
        [1]
    """
    return await asyncio.to_thread(secure_ensemble, predictions, weights, **kwargs)


def secure_ensemble_in_process(predictions, weights=None, *, reveal: str = "mean",
                               frac_bits: int = DEFAULT_FRAC_BITS, transcript: bool = False,
                               transcript_rows: int = 3, batch_rows: int = 1000
                               ) -> SecureEnsembleResult:
    """The same MPyC computation run by THIS process as a single party (m=1): NO secrecy.

    For tests and teaching: a notebook kernel is one MPyC party that sees every input in the
    clear. The arithmetic (encoding, secure sum, secure comparisons) is the one the real
    parties run, so the labels equal :func:`secure_ensemble`'s exactly.

    Example:
        >>> res = secure_ensemble_in_process([[[0.9, 0.1]], [[0.2, 0.8]]], reveal="labels")
        >>> res.labels.tolist(), res.secret
        ([0], False)
    """
    prep = _prepare(predictions, weights, reveal, frac_bits, 1)
    spec = RoundSpec(reveal=reveal, frac_bits=frac_bits, batch_rows=batch_rows,
                     transcript_rows=transcript_rows if transcript else 0).check()
    start = time.monotonic()
    out = run_in_process(spec, prep.probs, prep.party_weights)
    seconds = time.monotonic() - start
    mean = prep.fixed_point.decode(out.sum) if reveal == "mean" else None
    return SecureEnsembleResult(
        labels=out.labels, mean=mean, reveal=reveal, institutions=prep.names,
        weights=prep.weights, n_parties=1, threshold=0, receivers=None,
        fixed_point=prep.fixed_point, seconds=seconds, in_process=True,
        transcript=_transcript([out.view], prep.names, prep, reveal, True),
        included=prep.names)


@dataclass(frozen=True)
class SecureHierarchicalEnsemble:
    """Level 1 in plaintext inside each institution, level 2 by a secure round.

    Attributes:
        level1: Each institution's own combined probabilities (never leave it in clear).
        secure: The level-2 :class:`SecureEnsembleResult`.
    """

    level1: dict[str, np.ndarray]
    secure: SecureEnsembleResult

    @property
    def labels(self) -> np.ndarray:
        return self.secure.labels

    @property
    def mean(self) -> np.ndarray | None:
        return self.secure.mean


def secure_hierarchical_ensemble(models_by_institution: Mapping[str, Sequence], *,
                                 level1: str = "mean",
                                 level1_weights: Mapping[str, Sequence[float]] | None = None,
                                 level2_weights=None, **kwargs) -> SecureHierarchicalEnsemble:
    """Hierarchical ensemble with a secure level 2.

    Each institution combines its own models locally (level 1, plaintext: the models are its
    own), then the institutions combine their level-1 probabilities with :func:`secure_ensemble`
    (``kwargs`` are passed on, e.g. ``reveal="labels"``).

    Example:
        >>> models = {"a": [[[0.9, 0.1]], [[0.7, 0.3]]], "b": [[[0.2, 0.8]]], "c": [[[0.4, 0.6]]]}
        >>> secure_hierarchical_ensemble(models, reveal="labels").labels.tolist()
        [1]
    """
    per_inst = level1_ensembles(models_by_institution, level1, level1_weights)
    return SecureHierarchicalEnsemble(per_inst, secure_ensemble(per_inst, level2_weights,
                                                                **kwargs))
