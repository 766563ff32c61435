"""Secure ensemble with MPyC: real party processes, secure weighted mean and argmax.

Two roles (``docs/secure.md``): with a *committee* (the default, ``committee=3``) institutions
only split their encoded contributions into additive shares
(:mod:`~efl_toolkit.secure.shares`, ``efl share``) and ``M >= 3`` compute-party processes
(:mod:`~efl_toolkit.secure.committee`, :mod:`~efl_toolkit.secure.compute_party`, driven by
:class:`~efl_toolkit.secure.committee_client.Committee`) add them and open the mean, the labels,
or a sum of model updates (:func:`secure_sum`); with ``committee=None`` every institution is its
own MPyC party.

Modules: :mod:`~efl_toolkit.secure.fixed_point` (encoding, plaintext reference),
:mod:`~efl_toolkit.secure.protocol` (the MPyC coroutines), :mod:`~efl_toolkit.secure.party`
(``efl party``: one party process), :mod:`~efl_toolkit.secure.parties` (launch and supervise M
processes), :mod:`~efl_toolkit.secure.transcript` (what each party saw),
:mod:`~efl_toolkit.secure.tls` (certificates for ``--ssl``), :mod:`~efl_toolkit.secure.ensemble`
(the entry points below). MPyC itself is imported only inside party processes and by the
in-process path.

Threat model: passive (semi-honest) parties, honest majority (at most ``t < M/2`` colluders),
Shamir secret sharing. A notebook kernel alone is ONE party: no secrecy.

Example:
    >>> from efl_toolkit.secure import secure_ensemble
    >>> secure_ensemble([[[0.9, 0.1]], [[0.2, 0.8]], [[0.3, 0.7]]], reveal="labels").labels
    array([1])
"""

from efl_toolkit.secure.committee import CommitteeRound, QuorumError
from efl_toolkit.secure.committee_client import Committee, CommitteeRun, SecureSum, secure_sum
from efl_toolkit.secure.ensemble import (
    SecureEnsembleResult,
    SecureHierarchicalEnsemble,
    committee_ensemble,
    plaintext_reference,
    secure_ensemble,
    secure_ensemble_async,
    secure_ensemble_in_process,
    secure_hierarchical_ensemble,
)
from efl_toolkit.secure.fixed_point import DEFAULT_FRAC_BITS, FixedPoint, Reference
from efl_toolkit.secure.parties import (
    PartyInput,
    PartyReport,
    PartyRun,
    SecureRoundError,
    launch_parties,
)
from efl_toolkit.secure.protocol import RoundSpec
from efl_toolkit.secure.shares import ShareError
from efl_toolkit.secure.transcript import CommitteeTranscript, PartyView, Transcript

__all__ = [
    "Committee",
    "CommitteeRound",
    "CommitteeRun",
    "CommitteeTranscript",
    "QuorumError",
    "SecureSum",
    "ShareError",
    "committee_ensemble",
    "secure_sum",
    "DEFAULT_FRAC_BITS",
    "FixedPoint",
    "PartyInput",
    "PartyReport",
    "PartyRun",
    "PartyView",
    "Reference",
    "RoundSpec",
    "SecureEnsembleResult",
    "SecureHierarchicalEnsemble",
    "SecureRoundError",
    "Transcript",
    "launch_parties",
    "plaintext_reference",
    "secure_ensemble",
    "secure_ensemble_async",
    "secure_ensemble_in_process",
    "secure_hierarchical_ensemble",
]
