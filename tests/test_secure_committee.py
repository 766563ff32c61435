"""The committee of compute parties: real processes on 127.0.0.1, shares through inbox folders.

Institutions (played by the test process, or by `efl share` subprocesses) split encoded values
into additive shares; three `efl party --committee` processes add them and open the mean, the
labels or a sum. Every opened result is checked against numpy: labels exactly against the argmax
of the same encoded values, and against the float argmax wherever the margin exceeds the
fixed-point error; means and sums within the fixed-point bound.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from efl_toolkit.ensemble import weighted_mean
from efl_toolkit.secure import (
    Committee,
    CommitteeRound,
    SecureRoundError,
    ShareError,
    committee_ensemble,
    plaintext_reference,
    secure_ensemble,
    secure_sum,
)
from efl_toolkit.secure.shares import (
    field_modulus,
    file_stem,
    make_shares,
    read_share,
    split_additive,
    to_signed_sum,
    write_share,
)


def random_probs(seed: int, n_inst: int, rows: int, classes: int):
    rng = np.random.default_rng(seed)
    preds = {f"h{i:02d}": rng.dirichlet(np.ones(classes), size=rows) for i in range(n_inst)}
    for p in preds.values():                      # an exact tie in row 0 of every matrix
        p[0] = 1.0 / classes
    return preds, rng.uniform(0.1, 2.0, size=n_inst)


@pytest.fixture(scope="module")
def committee():
    with Committee(3, round_timeout=120) as running:
        yield running
    assert all(p.process.poll() is not None for p in running.launched)


@pytest.fixture(autouse=True)
def no_leftover_processes():
    before = set(psutil.Process().children(recursive=True))
    yield
    left = set(psutil.Process().children(recursive=True)) - before
    assert not left, f"processes left behind: {left}"


def test_additive_shares_are_uniform_and_add_up():
    p = field_modulus(20)
    x = np.array([0, 1, -1, 2**18, -(2**18)], dtype=np.int64)
    shares = split_additive(x, p, 3)
    assert all(s.dtype == np.uint64 and int(s.max()) < p for s in shares)
    np.testing.assert_array_equal(to_signed_sum(shares, p), x)
    # any M-1 shares are uniform: over many draws of the same secret, their mean is ~p/2
    draws = np.stack([split_additive(np.zeros(2000, dtype=np.int64), p, 3)[0]
                      for _ in range(5)]).astype(np.float64) / p
    assert abs(draws.mean() - 0.5) < 0.01 and draws.min() < 0.001 and draws.max() > 0.999


@pytest.mark.parametrize("n_inst", [1, 2, 5, 12])
@pytest.mark.parametrize("reveal", ["mean", "labels"])
def test_committee_ensemble_equals_numpy(committee, n_inst, reveal):
    preds, weights = random_probs(n_inst * 7 + len(reveal), n_inst, 60, 3 if n_inst % 2 else 2)
    res = committee_ensemble(committee, preds, weights, reveal=reveal)
    ref = plaintext_reference(preds, weights, reveal=reveal)
    assert res.committee == 3 and res.n_parties == 3 and res.dropped == ()
    assert res.included == tuple(preds)
    np.testing.assert_array_equal(res.labels, ref.labels)      # exact: same encoded integers
    exact = weighted_mean(list(preds.values()), weights)
    margin = np.sort(exact, axis=1)[:, -1] - np.sort(exact, axis=1)[:, -2]
    clear = margin > 2 * res.fixed_point.error_bound           # independent float reference
    assert clear.sum() > 50
    np.testing.assert_array_equal(res.labels[clear], np.argmax(exact, axis=1)[clear])
    assert res.labels[0] == 0                                  # exact tie: lowest class
    if reveal == "mean":
        np.testing.assert_array_equal(res.mean, ref.mean)
        assert np.max(np.abs(res.mean - exact)) <= res.fixed_point.error_bound
    else:
        assert res.mean is None


@pytest.mark.parametrize("n_inst", [1, 2, 5, 12])
def test_committee_sum_equals_numpy(committee, n_inst):
    rng = np.random.default_rng(n_inst)
    vectors = {f"h{i}": rng.normal(scale=3.0, size=(40, 5)) for i in range(n_inst)}
    weights = rng.uniform(0.5, 30.0, size=n_inst)
    out = committee.sum(vectors, weights)
    exact = sum(w * v for w, v in zip(weights, vectors.values(), strict=True))
    bound = n_inst * weights.max() * 2.0 ** -17
    assert out.total.shape == (40, 5)
    assert np.max(np.abs(out.total - exact)) <= bound
    np.testing.assert_allclose(out.mean, exact / weights.sum(), atol=bound / weights.sum())


def test_secure_sum_one_shot_of_large_updates():
    rng = np.random.default_rng(0)
    updates = [rng.normal(scale=0.05, size=100_000).astype(np.float32) for _ in range(10)]
    total = secure_sum(updates)
    assert total.shape == (100_000,)
    assert np.max(np.abs(total - np.sum(updates, axis=0, dtype=np.float64))) <= 10 * 2.0 ** -17


def test_secure_ensemble_defaults_to_a_committee_and_keeps_the_old_mode():
    preds, weights = random_probs(3, 4, 20, 2)
    res = secure_ensemble(preds, weights, reveal="labels")
    assert res.committee == 3 and res.n_parties == 3 and res.secret
    old = secure_ensemble(preds, weights, reveal="labels", committee=None)
    assert old.committee is None and old.n_parties == 4
    np.testing.assert_array_equal(res.labels, old.labels)
    assert secure_ensemble({"only": preds["h00"]}).included == ("only",)  # N = 1 works


def test_dropout_leaves_the_round_correct_over_the_others(committee):
    preds, weights = random_probs(11, 4, 30, 2)
    res = committee_ensemble(committee, preds, weights, reveal="mean", absent=["h02"])
    assert res.included == ("h00", "h01", "h03") and res.dropped == ("h02",)
    rest = [k for k in preds if k != "h02"]
    w = weights[[0, 1, 3]]
    exact = weighted_mean([preds[k] for k in rest], w)
    assert np.max(np.abs(res.mean - exact)) <= res.fixed_point.error_bound / (w / w.max()).sum()
    assert res.weights[2] == 0 and res.weights.sum() == pytest.approx(1.0)


def share_input(tmp_path: Path, name: str, probs: np.ndarray, weight: float) -> Path:
    path = tmp_path / f"{name}.npz"
    np.savez(path, probs=probs, weight=np.float64(weight))
    return path


def test_killed_submitter_is_dropped_and_named(committee, tmp_path):
    """`efl share` processes deliver; one is SIGKILLed after its first of three deliveries."""
    preds, _ = random_probs(5, 3, 25, 2)
    rnd = CommitteeRound(committee.next_round_id("kill"), "mean", tuple(preds), (25, 2))
    round_file = tmp_path / "round.json"
    round_file.write_text(rnd.to_json())
    to = ",".join(str(p) for p in committee.inboxes)
    procs = {}
    for name, probs in preds.items():
        cmd = [sys.executable, "-m", "efl_toolkit.cli", "share", "--input",
               str(share_input(tmp_path, name, probs, 1.0)), "--institution", name,
               "--round", str(round_file), "--to", to]
        if name == "h01":
            cmd += ["--pause-after", "1"]
        procs[name] = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert procs["h01"].stdout.readline().startswith("share 0 ->")
    assert procs["h01"].stdout.readline().startswith("paused after 1 of 3")
    procs["h01"].send_signal(signal.SIGKILL)
    for name, proc in procs.items():
        assert proc.wait(timeout=30) == (-signal.SIGKILL if name == "h01" else 0)
        proc.stdout.close()
    run = committee.run(rnd)
    assert run.included == ("h00", "h02") and run.dropped == ("h01",)
    total = np.asarray(run.arrays[0]["sum"]) / 2**16 / run.weight_sum
    exact = (preds["h00"] + preds["h02"]) / 2
    assert np.max(np.abs(total - exact)) <= 2 * 2.0 ** -17


def test_too_few_institutions_fail_naming_the_missing(committee):
    preds, _ = random_probs(6, 3, 10, 2)
    with pytest.raises(SecureRoundError, match="missing: h01, h02") as err:
        committee_ensemble(committee, preds, min_institutions=2, absent=["h01", "h02"])
    assert err.value.kind == "quorum"
    assert committee_ensemble(committee, preds).included == tuple(preds)  # committee still up


def deliver_one(committee, rnd, name, values=None, **overrides):
    fp = rnd.fixed_point()
    values = np.zeros(rnd.shape, dtype=np.int64) if values is None else values
    fields = dict(round_id=rnd.round_id, institution=name, n_parties=committee.size,
                  kind=rnd.kind, bit_length=fp.bit_length, frac_bits=fp.frac_bits)
    fields.update(overrides)
    return make_shares(values, **fields)


BAD_SHARES = {
    "replayed": (dict(round_id="an-old-round"), "is for round 'an-old-round'"),
    "wrong field": (dict(bit_length=24), "uses the field of SecInt(24)"),
    "wrong fraction": (dict(frac_bits=12), "uses 12 fractional bits"),
    "wrong committee": (dict(n_parties=4), "split for 4 compute parties"),
    "stranger": (dict(institution="intruder"), "not in round"),
    "wrong shape": (dict(values=np.zeros((3, 2), dtype=np.int64)), "has shape [3, 2], the round "
                    "expects [4, 2]"),
}


@pytest.mark.parametrize("case", sorted(BAD_SHARES))
def test_bad_share_fails_the_round_naming_the_institution(committee, tmp_path, case):
    overrides, message = dict(BAD_SHARES[case][0]), re.escape(BAD_SHARES[case][1])
    rnd = CommitteeRound(committee.next_round_id(case.replace(" ", "-")), "labels",
                         ("a", "b"), (4, 2)).check(3)
    deliver_one_good(committee, rnd, "b")
    name = overrides.pop("institution", "a")
    shares = deliver_one(committee, rnd, name, overrides.pop("values", None), **overrides)
    for j, share in enumerate(shares[:3]):          # placed in THIS round's inbox folders
        path = write_share(tmp_path / str(j), share)
        target = committee.inbox(j) / rnd.round_id / path.name
        os.replace(path, target)
    with pytest.raises(SecureRoundError, match=message) as err:
        committee.run(rnd)
    assert err.value.kind == "input" and name in str(err.value)
    assert committee_ensemble(committee, {"a": [[0.2, 0.8]]}).labels.tolist() == [1]


def deliver_one_good(committee, rnd, name):
    fp = rnd.fixed_point()
    shares = make_shares(fp.encode(np.full(rnd.shape, 0.5)), round_id=rnd.round_id,
                         institution=name, n_parties=3, kind=rnd.kind,
                         bit_length=fp.bit_length, frac_bits=fp.frac_bits)
    for j, share in enumerate(shares):
        write_share(committee.inbox(j), share)


def test_truncated_and_duplicate_shares_are_refused(committee):
    for problem in ("truncated", "twice"):
        rnd = CommitteeRound(committee.next_round_id(problem), "mean", ("a", "b"), (4, 2))
        deliver_one_good(committee, rnd, "a")
        deliver_one_good(committee, rnd, "b")
        path = next((committee.inbox(1) / rnd.round_id).glob(f"{file_stem('b')}.*"))
        if problem == "truncated":
            path.write_bytes(path.read_bytes()[:100])
            match = "b: share file .* is unreadable"
        else:
            (path.parent / f"{file_stem('b')}.0000.share.npz").write_bytes(path.read_bytes())
            match = "b: submitted twice to compute party 1"
        with pytest.raises(SecureRoundError, match=match):
            committee.run(rnd)
    with pytest.raises(ShareError, match="already submitted"):
        deliver_one_good(committee, rnd, "a")


def test_wrong_shape_and_bad_arguments_are_refused_before_any_process():
    with pytest.raises(ValueError, match="at least 3 compute parties"):
        Committee(2)
    with pytest.raises(ValueError, match="h1: shape"):
        secure_sum({"h0": np.zeros(3), "h1": np.zeros(4)})
    with pytest.raises(ValueError, match="h1: contains NaN"):
        secure_sum({"h0": np.zeros(3), "h1": np.array([0.0, np.nan, 1.0])})
    with pytest.raises(ValueError, match="h0: values up to 1e\\+06 exceed"):
        secure_sum({"h0": np.full(3, 1e6), "h1": np.zeros(3)})
    with pytest.raises(ValueError, match="committee needs at least 3"):
        secure_ensemble([[[0.5, 0.5]]], committee=2)


def test_share_file_round_trip_and_field_check(tmp_path):
    rnd = CommitteeRound("r", "sum", ("a",), (3,))
    (share,) = make_shares(np.array([1, -2, 3]), round_id="r", institution="a", n_parties=1,
                           kind="vector", bit_length=30, frac_bits=16)
    back = read_share(write_share(tmp_path, share))
    assert back.meta() == share.meta() and back.modulus == share.modulus
    np.testing.assert_array_equal(back.values, share.values)
    assert rnd.fixed_point().bit_length == 30


def test_a_compute_party_that_dies_fails_the_round_named():
    preds, _ = random_probs(9, 3, 2000, 10)
    with Committee(3, round_timeout=60) as c:
        victim = c.launched[1].process
        for name, probs in preds.items():
            c.submit(CommitteeRound("x", "labels", tuple(preds), probs.shape), name,
                     np.zeros(probs.shape, dtype=np.int64))
        os.kill(victim.pid, signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(SecureRoundError, match="compute party 1") as err:
            c.run(CommitteeRound("x", "labels", tuple(preds), probs.shape))
        assert time.monotonic() - started < 30
        assert 1 in err.value.parties
    assert all(p.process.poll() is not None for p in c.launched)


def test_a_port_taken_before_a_compute_party_listens_is_retried_on_fresh_ports(monkeypatch):
    """Between choosing a free port and listening on it, another socket may take it (even a
    peer's outgoing connection): that party fails to bind, and the committee starts again on
    fresh ports instead of failing the run."""
    import socket

    from efl_toolkit.secure import committee_client

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    real, calls = committee_client.free_ports, []

    def first_clashes(n, *args, **kwargs):
        ports = real(n, *args, **kwargs)
        calls.append(ports)
        return [ports[0], taken.getsockname()[1], *ports[2:]] if len(calls) == 1 else ports

    monkeypatch.setattr(committee_client, "free_ports", first_clashes)
    preds, weights = random_probs(5, 3, 50, 4)
    try:
        with Committee(3, round_timeout=60) as c:
            assert len(calls) == 2 and str(taken.getsockname()[1]) not in ",".join(c.addresses)
            result = committee_ensemble(c, preds, weights, reveal="labels")
            ref = plaintext_reference(preds, weights, reveal="labels")
            np.testing.assert_array_equal(result.labels, ref.labels)
    finally:
        taken.close()


def test_tls_committee(tmp_path):
    preds, weights = random_probs(4, 3, 10, 2)
    with Committee(3, tls=True) as c:
        res = committee_ensemble(c, preds, weights, reveal="labels")
        assert "--tls" in c.launched[0].command
    np.testing.assert_array_equal(res.labels,
                                  plaintext_reference(preds, weights, reveal="labels").labels)


def test_committee_transcript_shows_what_each_party_saw(committee):
    preds, weights = random_probs(8, 3, 10, 2)
    res = committee_ensemble(committee, preds, weights, reveal="mean", transcript=True,
                             transcript_rows=3)
    tr = res.transcript
    ref = plaintext_reference(preds, weights, reveal="mean")
    assert set(tr.sent) == set(preds) and all(len(s) == 3 for s in tr.sent.values())
    np.testing.assert_array_equal(tr.reconstruct(range(3)), ref.sum[:3])
    assert not np.array_equal(tr.reconstruct(range(2)), ref.sum[:3])
    text = tr.explain(0, 0)
    assert "h00 -> compute party 2" in text and "compute party 1 adds" in text
    json.dumps(res.summary())


def test_caller_options_are_not_taken_for_mpyc_options():
    """`efl demo --out DIR` once made MPyC (imported in the caller) reject `--out` as ambiguous."""
    code = ("from efl_toolkit.secure import secure_sum; import numpy as np, sys; "
            "print(secure_sum([np.ones(2), np.ones(2)]).tolist(), 'mpyc.runtime' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, "--out", "x", "--output"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[2.0, 2.0] False"


def test_a_compute_party_that_hangs_fails_the_round_within_its_timeout():
    preds, weights = random_probs(10, 3, 300, 10)
    with Committee(3, round_timeout=4) as c:
        frozen = c.launched[2].process
        os.kill(frozen.pid, signal.SIGSTOP)
        started = time.monotonic()
        try:
            with pytest.raises(SecureRoundError, match=r"compute party 2 \(127\.0\.0\.1") as err:
                committee_ensemble(c, preds, weights, reveal="labels")
        finally:
            with contextlib.suppress(ProcessLookupError):   # the committee killed it already
                os.kill(frozen.pid, signal.SIGCONT)
        assert time.monotonic() - started < 4 + 10
        assert err.value.parties == (2,) and err.value.kind == "hung"
    assert all(p.process.poll() is not None for p in c.launched)


def test_a_compute_party_that_never_connects_is_named_within_the_startup_timeout():
    started = time.monotonic()
    with pytest.raises(SecureRoundError, match=r"compute party 2 \(127\.0\.0\.1:\d+\) never "
                                               r"connected") as err:
        secure_ensemble([[[0.5, 0.5]]], startup_timeout=2,
                        on_spawn=lambda pids: os.kill(pids[2], signal.SIGSTOP))
    assert err.value.parties == (2,) and err.value.kind == "unconnected"
    assert time.monotonic() - started < 2 + 10


@pytest.mark.parametrize("round_id", ["../../etc", "/tmp/abs", "", ".hidden", "a/b"])
def test_round_ids_that_would_escape_the_inbox_are_refused(round_id, tmp_path):
    with pytest.raises(ValueError, match="round id"):
        CommitteeRound(round_id, "mean", ("a",), (2, 2)).check()
    with pytest.raises(ShareError, match="round id"):
        make_shares(np.zeros((2, 2), dtype=np.int64), round_id=round_id, institution="a",
                    n_parties=3, kind="probs", bit_length=20, frac_bits=16)


def test_any_institution_name_stays_inside_the_inbox(tmp_path):
    (share,) = make_shares(np.zeros(2, dtype=np.int64), round_id="r", institution="../../evil",
                           n_parties=1, kind="vector", bit_length=30, frac_bits=16)
    path = write_share(tmp_path / "inbox", share)
    assert path.parent == tmp_path / "inbox" / "r" and read_share(path).institution == "../../evil"
    res = secure_ensemble({"Hospital A/1": [[0.9, 0.1]], "Hospital B": [[0.2, 0.8]]})
    assert res.included == ("Hospital A/1", "Hospital B")


@pytest.mark.parametrize("case", ["same folder twice", "a file", "read-only", "pause 0"])
def test_efl_share_refuses_bad_folders_before_delivering_anything(case, tmp_path, request):
    rnd = CommitteeRound("r1", "mean", ("hospital-a",), (2, 2))
    (tmp_path / "round.json").write_text(rnd.to_json())
    inp = share_input(tmp_path, "hospital-a", np.full((2, 2), 0.5), 1.0)
    folders = [tmp_path / f"p{j}" for j in range(3)]
    extra = []
    if case == "same folder twice":
        folders[2] = folders[0]
    elif case == "a file":
        folders[1].write_text("not a folder")
    elif case == "read-only":                     # a real read-only mount (root ignores modes)
        folders[1].mkdir()
        if os.geteuid() == 0:
            mounted = subprocess.run(["mount", "--bind", str(folders[1]), str(folders[1])],
                                     capture_output=True).returncode == 0 and subprocess.run(
                ["mount", "-o", "remount,ro,bind", str(folders[1])],
                capture_output=True).returncode == 0
            if not mounted:
                subprocess.run(["umount", str(folders[1])], capture_output=True)
                pytest.skip("root without mount: cannot make a read-only folder")
            request.addfinalizer(lambda: subprocess.run(["umount", str(folders[1])]))
        else:
            folders[1].chmod(0o500)
            request.addfinalizer(lambda: folders[1].chmod(0o700))
    else:
        extra = ["--pause-after", "0"]
    run = subprocess.run([sys.executable, "-m", "efl_toolkit.cli", "share", "--input", str(inp),
                          "--institution", "hospital-a", "--round", str(tmp_path / "round.json"),
                          "--to", ",".join(map(str, folders)), *extra],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.startswith("efl share: error: ")
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    assert not list(tmp_path.rglob("*.share.npz"))           # nothing half-delivered


def test_a_refused_one_shot_round_exits_2_and_says_why(tmp_path):
    """`efl party --committee --round` on a replayed share: exit 2, the reason on stderr."""
    from efl_toolkit.secure.parties import free_ports

    rnd = CommitteeRound("round-7", "labels", ("hospital-a",), (2, 2))
    (tmp_path / "round.json").write_text(rnd.to_json())
    old = CommitteeRound("round-6", "labels", ("hospital-a",), (2, 2))
    for j, share in enumerate(deliver_one(Committee(3), old, "hospital-a")):
        path = write_share(tmp_path / "tmp", share)
        (tmp_path / f"inbox{j}" / "round-7").mkdir(parents=True)
        os.replace(path, tmp_path / f"inbox{j}" / "round-7" / path.name)
    parties = ",".join(f"127.0.0.1:{p}" for p in free_ports(3))
    procs = [subprocess.Popen([sys.executable, "-m", "efl_toolkit.cli", "party", "--committee",
                               "--index", str(j), "--parties", parties, "--inbox",
                               str(tmp_path / f"inbox{j}"), "--round",
                               str(tmp_path / "round.json"), "--out", str(tmp_path / "out"),
                               "--startup-timeout", "30"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for j in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [2, 2, 2]
    assert "replayed" in outs[0][1] and outs[0][1].startswith("efl party: error: ")


def test_secure_sum_refuses_out_of_range_values_before_any_process_starts(monkeypatch):
    import efl_toolkit.secure.committee_client as client

    monkeypatch.setattr(client.Committee, "start", lambda self: pytest.fail("started"))
    with pytest.raises(ValueError, match="h0: values up to 1e\\+06 exceed"):
        secure_sum({"h0": np.full(3, 1e6), "h1": np.zeros(3)})
    for bad in (float("nan"), float("inf"), 0, -1):
        with pytest.raises(ValueError, match="round_timeout must be a finite number"):
            Committee(3, round_timeout=bad)
