"""Named fault points: a TESTING HOOK that stops a writer at an exact step of a write.

A crash test that kills a writer after a random sleep rarely lands inside a write. Instead, every
step of a block write (:func:`~efl_toolkit.ledger.store.write_block`), of an atomic file write
(:func:`~efl_toolkit.atomic.write_bytes_atomic`: artifacts, checkpoints) calls
:func:`fault_point` with a name from ``POINTS``. When the environment variable ``EFL_FAULT``
names that point, the process ends on the spot with ``os._exit(FAULT_EXIT)`` (no cleanup, no
``finally``, no buffered data flushed: what SIGKILL or a power cut would leave).
``EFL_FAULT=name@k`` stops at the k-th time the point is reached (k >= 1), e.g. the second
atomic write of a process (the checkpoint after the first block, the first being the artifact).

``EFL_FAULT`` is read once, at import; when it is unset a fault point costs one comparison.
Never set it outside tests: ``tests/test_ledger_faults.py`` runs one real writer subprocess per
point (and per hit) and checks that the ledger reopens, verifies at the old height or the old
height + 1, leaves no temporary file behind, and that every artifact the chain references is
intact. A new point must be added to ``POINTS``; :func:`fault_point` refuses unknown names when
armed, and the test checks that every ``fault_point("...")`` in the sources is registered.

Example:
    >>> sorted(POINTS)[:2]
    ['atomic.after_rename', 'atomic.after_temp_write']
    >>> fault_point("store.after_block_row")  # EFL_FAULT unset: nothing happens
"""

from __future__ import annotations

import os

ENV = "EFL_FAULT"
#: Exit status of a process stopped at a fault point (distinct from crashes and signals).
FAULT_EXIT = 86

#: Every fault point: name -> the step it interrupts.
POINTS: dict[str, str] = {
    "store.after_begin": "block write: BEGIN IMMEDIATE done, nothing inserted",
    "store.after_block_row": "block write: the block row inserted, no transaction row yet",
    "store.after_tx_row": "block write: one transaction row inserted (more may follow)",
    "store.before_commit": "block write: every row inserted, COMMIT not issued",
    "store.after_commit": "block write: COMMIT returned (durable), nothing after it ran",
    "atomic.after_temp_write": "atomic file write: data written to the temporary file, "
                               "neither flushed nor fsynced",
    "atomic.before_rename": "atomic file write: temporary file complete and fsynced, not renamed",
    "atomic.after_rename": "atomic file write: renamed over the target, folder not fsynced",
}


def _parse(value: str) -> tuple[str | None, int]:
    if not value:
        return None, 0
    name, _, count = value.partition("@")
    if name not in POINTS:
        raise ValueError(f"{ENV}={value!r}: unknown fault point {name!r}; "
                         f"choose from {sorted(POINTS)}")
    if count and (not count.isdigit() or int(count) < 1):
        raise ValueError(f"{ENV}={value!r}: the hit number after '@' must be an integer >= 1")
    return name, int(count or 1)


_ARMED, _AT_HIT = _parse(os.environ.get(ENV, ""))
_hits = 0


def fault_point(name: str) -> None:
    """Ends the process (``os._exit(FAULT_EXIT)``) if ``EFL_FAULT`` names point ``name``.

    Args:
        name: A key of ``POINTS``.

    Testing hook only: with ``EFL_FAULT`` unset (always, outside tests) it does nothing.
    """
    global _hits
    if _ARMED is None or name != _ARMED:
        return
    _hits += 1
    if _hits >= _AT_HIT:
        os.write(2, f"efl fault point {name} (hit {_hits}): exiting\n".encode())
        os._exit(FAULT_EXIT)
