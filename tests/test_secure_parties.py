"""Secure ensemble with real MPyC party processes over 127.0.0.1.

Each round starts M separate Python processes (``efl party``) that secret-share their inputs and
compute over TCP. Labels must equal the plaintext reference on the same fixed-point values
exactly, and the opened mean must be within the fixed-point bound of numpy's weighted mean.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import threading
import time

import numpy as np
import psutil
import pytest

from efl_toolkit.ensemble import hierarchical_ensemble, weighted_mean
from efl_toolkit.secure import (
    plaintext_reference,
    secure_ensemble,
    secure_ensemble_async,
    secure_ensemble_in_process,
    secure_hierarchical_ensemble,
)

# This file tests the first design, every institution its own MPyC party (committee=None);
# the committee of compute parties is tested in test_secure_committee.py.
secure_ensemble = functools.partial(secure_ensemble, committee=None)
plaintext_reference = functools.partial(plaintext_reference, committee=None)


def random_inputs(seed: int, m: int, n: int, c: int):
    """Random probabilities with exact ties in rows 0 and 1, and random positive weights."""
    rng = np.random.default_rng(seed)
    preds = [rng.dirichlet(np.ones(c) * rng.uniform(0.3, 3), size=n) for _ in range(m)]
    for p in preds:
        p[0] = 1.0 / c
        p[1] = np.r_[0.0, 0.5, 0.5, np.zeros(c - 3)] if c > 2 else [0.5, 0.5]
    return preds, rng.uniform(0.05, 3.0, size=m)


@pytest.fixture(autouse=True)
def no_leftover_processes():
    yield
    children = psutil.Process().children(recursive=True)
    assert not children, f"party processes left behind: {children}"


def check_round(preds, weights, reveal, **kwargs):
    res = secure_ensemble(preds, weights, reveal=reveal, **kwargs)
    ref = plaintext_reference(preds, weights, reveal=reveal)
    np.testing.assert_array_equal(res.labels, ref.labels)
    tie_row1 = 1 if preds[0].shape[1] > 2 else 0              # ties: lowest class index
    assert res.labels[0] == 0 and res.labels[1] == tie_row1
    assert res.n_parties == len(preds) and res.secret
    assert [p.status for p in res.parties] == ["ok"] * len(preds)
    if reveal == "mean":
        np.testing.assert_array_equal(res.mean, ref.mean)
        err = np.abs(res.mean - weighted_mean(preds, weights)).max()
        assert err <= res.fixed_point.error_bound + 1e-9
    else:
        assert res.mean is None
    return res


@pytest.mark.parametrize("n_classes", [2, 6])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_three_parties_random_inputs(seed, n_classes):
    preds, weights = random_inputs(seed, 3, 60, n_classes)
    mean = check_round(preds, weights, "mean")
    labels = check_round(preds, weights, "labels", batch_rows=25)
    np.testing.assert_array_equal(mean.labels, labels.labels)
    in_process = secure_ensemble_in_process(preds, weights, reveal="labels")
    np.testing.assert_array_equal(labels.labels, in_process.labels)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_five_parties(n_classes):
    preds, weights = random_inputs(10 + n_classes, 5, 25, n_classes)
    res = check_round(preds, weights, "labels", colluders=2)
    assert res.threshold == 2
    check_round(preds, weights, "mean", colluders=1)


def test_party_reports_and_public_weights():
    preds, weights = random_inputs(5, 3, 20, 3)
    res = secure_ensemble({"a": preds[0], "b": preds[1], "c": preds[2]},
                          {"a": 1.0, "b": 2.0, "c": 1.0}, reveal="mean")
    assert res.institutions == ("a", "b", "c")
    np.testing.assert_allclose(res.weights, [0.25, 0.5, 0.25])
    for i, party in enumerate(res.parties):
        assert party.address.startswith("127.0.0.1:") and party.returncode == 0
        assert "efl_toolkit.cli party" in party.shell_command and f"--index {i}" in \
            party.shell_command
        assert party.bytes_sent > 0 and party.compute_seconds > 0 and party.received
    summary = res.summary()
    assert summary["parties"] == 3 and summary["secret"] and len(summary["commands"]) == 3


def test_receivers_only_one_institution_learns():
    preds, weights = random_inputs(6, 3, 30, 3)
    for reveal in ("labels", "mean"):
        res = check_round(preds, weights, reveal, receivers=[2])
        assert [p.received for p in res.parties] == [False, False, True]
        assert res.receivers == (2,)


def test_transcript_shares_hide_and_reconstruct():
    preds, weights = random_inputs(7, 3, 12, 3)
    res = secure_ensemble(preds, weights, reveal="labels", transcript=True, transcript_rows=4)
    tr = res.transcript
    assert len(tr.views) == 3 and tr.threshold == 1 and not tr.in_process
    ref = plaintext_reference(preds, weights, reveal="labels")
    for inst in range(3):
        own = np.asarray(tr.views[inst].own_contributions[0], dtype=np.int64)
        for pair in ([0, 1], [1, 2], [0, 2]):           # any t+1 = 2 parties reconstruct
            np.testing.assert_array_equal(tr.reconstruct(inst, pair), own)
        for party in range(3):
            if party != inst:                            # a single share is not the value
                share = np.asarray(tr.views[party].input_shares[inst], dtype=object)
                assert (share != own).any()
                assert max(int(x) for x in share.ravel()) > 2 ** 30   # random field elements
        with pytest.raises(ValueError, match="cannot reveal anything"):
            tr.reconstruct(inst, [0])
    np.testing.assert_array_equal(tr.reconstruct("sum", [0, 2]), ref.sum[:4])
    for view in tr.views:                                # only labels were opened
        assert view.opened_sum is None and view.opened_labels is not None
    assert "party 1" in tr.explain(institution=2)


def test_tls_round():
    preds, weights = random_inputs(8, 3, 15, 2)
    check_round(preds, weights, "mean", tls=True)


def test_secure_hierarchical_matches_plaintext():
    rng = np.random.default_rng(9)
    models = {"a": [rng.dirichlet(np.ones(3), 40) for _ in range(2)],
              "b": [rng.dirichlet(np.ones(3), 40)],
              "c": [rng.dirichlet(np.ones(3), 40) for _ in range(3)]}
    level2 = {"a": 0.5, "b": 0.2, "c": 0.3}
    res = secure_hierarchical_ensemble(models, level2_weights=level2, reveal="mean",
                                       committee=None)
    plain = hierarchical_ensemble(models, level2_weights=level2)
    for k in models:
        np.testing.assert_allclose(res.level1[k], plain.level1[k])
    assert np.abs(res.mean - plain.probabilities).max() <= res.secure.fixed_point.error_bound
    ref = plaintext_reference(plain.level1, level2, reveal="mean")
    np.testing.assert_array_equal(res.labels, ref.labels)


def test_parties_listen_on_loopback_only():
    """Parties 1 and 2 listen (party 0 dials out); both bind 127.0.0.1, not all interfaces."""
    preds, weights = random_inputs(11, 3, 10, 3)
    listening: set = set()

    def watch(pids):
        os.kill(pids[0], signal.SIGSTOP)  # hold party 0 so the others keep listening for it

        def run():
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and len({p for p, _ in listening}) < 2:
                for pid in pids[1:]:
                    with contextlib.suppress(psutil.Error):
                        listening.update((pid, c.laddr) for c in
                                         psutil.Process(pid).net_connections("tcp")
                                         if c.status == psutil.CONN_LISTEN)
                time.sleep(0.02)
            os.kill(pids[0], signal.SIGCONT)
        threading.Thread(target=run, daemon=True).start()

    res = secure_ensemble(preds, weights, reveal="labels", on_spawn=watch)
    assert len({pid for pid, _ in listening}) == 2
    assert all(addr.ip == "127.0.0.1" for _, addr in listening)
    ref = plaintext_reference(preds, weights, reveal="labels")
    np.testing.assert_array_equal(res.labels, ref.labels)


def test_works_inside_a_running_event_loop():
    """As in a notebook: called from a coroutine, sync and async forms both work."""
    preds, weights = random_inputs(12, 3, 10, 2)
    ref = plaintext_reference(preds, weights, reveal="labels")

    async def notebook_cell():
        direct = secure_ensemble(preds, weights, reveal="labels")
        awaited = await secure_ensemble_async(preds, weights, reveal="labels", committee=None)
        local = secure_ensemble_in_process(preds, weights, reveal="labels")
        return direct, awaited, local

    for res in asyncio.run(notebook_cell()):
        np.testing.assert_array_equal(res.labels, ref.labels)
