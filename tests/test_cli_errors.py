"""Every ``efl`` subcommand, as a real subprocess, with bad inputs (issue 10, fault 3).

Rule: any bad input or environment problem is ONE line ``efl <command>: error: ...`` on standard
error naming the file, field or option, exit code 2, never a traceback, nothing half-written, and
it is detected before long work starts (each case here must fail within seconds).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from efl_toolkit.cli import build_parser
from efl_toolkit.ledger import Consortium, Ledger, ModelRegistry
from efl_toolkit.secure.committee import CommitteeRound
from efl_toolkit.secure.party import write_input
from efl_toolkit.secure.tls import make_certificates

#: Fail well before any training could have started (the demo trains for tens of seconds).
FAST_SECONDS = 25.0


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    ledger = d / "ok" / "ledger.sqlite"
    led = Ledger.create(ledger, Consortium.generate(["hospital-a", "hospital-b", "clinic-c"],
                                                    seed=1))
    ModelRegistry(led).model_commit("hospital-a", "cnn", b"w", None, "cnn", {}, {})
    led.close()
    good = write_input(d / "good.npz", [[0.2, 0.8]], 0.5)
    truncated = d / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:60])
    weights = d / "weights.npz"
    np.savez(weights, probs=np.array([[0.2, 0.8]]), weight=np.array([0.5, 0.5]))
    volumes = d / "organmnist3d.npz"
    np.savez(volumes, **{f"{s}_{k}": v for s in ("train", "val", "test") for k, v in (
        ("images", np.zeros((4, 28, 28, 28), np.uint8)), ("labels", np.arange(4) % 2))})
    junk = d / "junk.sqlite"
    junk.write_text("not a database")
    a_file = d / "a_file"
    a_file.write_text("x")
    bad_note = d / "bad.checkpoint"
    bad_note.write_text("hello\n")
    bad_keys = d / "bad.keys"
    bad_keys.write_text("hospital-a+00+AAAA\n")
    round_file = d / "round.json"
    round_file.write_text("{not json")
    good_round = d / "good_round.json"
    good_round.write_text(CommitteeRound("r1", "mean", ("a", "b", "c"), (1, 2)).to_json())
    no_roster = d / "no_roster.json"
    no_roster.write_text('{"round_id": "r1", "opening": "mean", "shape": [1, 2]}')
    list_round = d / "list_round.json"
    list_round.write_text('["r1", "mean"]')
    text_npz = d / "notes.npz"  # a text file where an .npz is expected
    text_npz.write_text("probs,weight\n0.2,0.8\n")
    certs = make_certificates(d / "certs", 3)  # a CA and keys in use: never overwritten
    return {"ledger": ledger, "good": good, "truncated": truncated, "weights": weights,
            "volumes": volumes, "junk": junk, "a_file": a_file, "bad_note": bad_note,
            "bad_keys": bad_keys, "round": round_file, "good_round": good_round,
            "no_roster": no_roster, "list_round": list_round, "text_npz": text_npz,
            "certs": certs, "dir": d}


P3 = "127.0.0.1:47001,127.0.0.1:47002,127.0.0.1:47003"
#: A folder no one can create, root included (``/proc`` takes no new entries).
NO_OUT = "/proc/efl-cannot-create-this"
#: ``efl party`` / ``efl party --committee`` prefixes; ``{untouched}`` is an --out that a rejected
#: command must not create (nothing is written for bad options, a wrong index or a bad --out).
PARTY = ["party", "--index", "0", "--parties", P3, "--input", "{good}", "--out", "{untouched}"]
COMMITTEE = ["party", "--committee", "--index", "0", "--parties", P3, "--inbox", "{dir}",
             "--serve", "{dir}", "--out", "{untouched}"]

#: (command shown in the message, argv with {placeholders}, a word the message must contain)
CASES = [
    ("efl", [], "required"),
    ("efl", ["bogus"], "invalid choice"),
    ("efl demo", ["demo", "--institutions", "0", "--out", "{new}"], "n_institutions"),
    ("efl demo", ["demo", "--institutions", "two", "--out", "{new}"], "--institutions"),
    ("efl demo", ["demo", "--parties", "2", "--out", "{new}"], "3"),
    ("efl demo", ["demo", "--preset", "huge", "--out", "{new}"], "huge"),
    ("efl demo", ["demo", "--seed", "-4", "--out", "{new}"], "seed"),
    ("efl demo", ["demo", "--seed", "99999999999999999999", "--out", "{new}"], "seed"),
    ("efl demo", ["demo", "--seed", "4294967296", "--out", "{new}"], "seed"),
    ("efl demo", ["demo", "--dataset", "{dir}/missing.npz", "--out", "{new}"], "missing.npz"),
    ("efl demo", ["demo", "--dataset", "{truncated}", "--out", "{new}"], "truncated.npz"),
    ("efl demo", ["demo", "--dataset", "{volumes}", "--out", "{new}"], "3D volumes"),
    ("efl demo", ["demo", "--dataset", "nosuchmnist", "--out", "{new}"], "nosuchmnist"),
    ("efl demo", ["demo", "--out", "{a_file}"], "existing file"),
    ("efl demo", ["demo", "--out", "{a_file}/sub"], "a_file"),
    ("efl ledger verify", ["ledger", "verify", "{dir}/missing.sqlite"], "no such ledger"),
    ("efl ledger verify", ["ledger", "verify", "{junk}"], "junk.sqlite"),
    ("efl ledger verify", ["ledger", "verify", "{ledger}", "--checkpoint", "{bad_note}"],
     "bad.checkpoint"),
    ("efl ledger verify", ["ledger", "verify", "{ledger}", "--checkpoint", "{dir}/none"],
     "none"),
    ("efl ledger verify", ["ledger", "verify", "{ledger}", "--trusted-keys", "{bad_keys}"],
     "bad.keys"),
    ("efl ledger verify", ["ledger", "verify", "{ledger}", "--genesis", "xyz"], "--genesis"),
    ("efl ledger verify", ["ledger", "verify"], "path"),
    ("efl ledger log", ["ledger", "log", "{ledger}", "--institution", "nobody"], "nobody"),
    ("efl ledger log", ["ledger", "log", "{junk}"], "junk.sqlite"),
    ("efl ledger show", ["ledger", "show", "{ledger}", "99"], "height 99"),
    ("efl ledger show", ["ledger", "show", "{ledger}", "one"], "height"),
    ("efl ledger checkpoint", ["ledger", "checkpoint", "{dir}/missing.sqlite"], "no such"),
    ("efl ledger checkpoint", ["ledger", "checkpoint", "{ledger}", "--out",
                               "{dir}/no/such/dir/cp"], "--out"),
    ("efl ledger", ["ledger", "frobnicate", "x"], "invalid choice"),
    ("efl party", ["party", "--index", "0", "--parties", P3, "--input", "{truncated}",
                   "--out", "{new}"], "truncated.npz"),
    ("efl party", ["party", "--index", "0", "--parties", P3, "--input", "{weights}",
                   "--out", "{new}"], "'weight'"),
    ("efl party", ["party", "--index", "0", "--parties", P3, "--input", "{dir}/none.npz",
                   "--out", "{new}"], "none.npz"),
    ("efl party", ["party", "--index", "7", "--parties", P3, "--input", "{good}",
                   "--out", "{new}"], "--index 7"),
    ("efl party", ["party", "--index", "0", "--parties", "nohost", "--input", "{good}",
                   "--out", "{new}"], "nohost"),
    ("efl party", ["party", "--index", "0", "--parties", P3, "--input", "{good}",
                   "--out", "{a_file}"], "--out"),
    ("efl party", ["party", "--index", "zero", "--parties", P3, "--input", "{good}"],
     "--index"),
    ("efl party", ["party", "--committee", "--index", "0", "--parties", P3, "--inbox",
                   "{dir}", "--round", "{round}", "--out", "{new}"], "round"),
    # timeouts: finite and > 0 (nan crashed, -1 failed "within -1 s", inf and 0 hung)
    ("efl party", [*PARTY, "--startup-timeout", "nan"], "--startup-timeout"),
    ("efl party", [*PARTY, "--startup-timeout", "-1"], "--startup-timeout"),
    ("efl party", [*PARTY, "--startup-timeout", "inf"], "--startup-timeout"),
    ("efl party", [*PARTY, "--round-timeout", "0"], "--round-timeout"),
    ("efl party", [*COMMITTEE, "--startup-timeout", "nan"], "--startup-timeout"),
    ("efl party", [*COMMITTEE, "--round-timeout", "-1"], "--round-timeout"),
    ("efl party", [*COMMITTEE, "--idle-timeout", "-1"], "--idle-timeout"),
    ("efl party", [*COMMITTEE, "--idle-timeout", "inf"], "--idle-timeout"),
    # other numeric options: in range, named
    ("efl party", [*PARTY, "--frac-bits", "99"], "--frac-bits"),
    ("efl party", [*PARTY, "--batch-rows", "0"], "--batch-rows"),
    ("efl party", [*PARTY, "--transcript-rows", "-1"], "--transcript-rows"),
    ("efl party", [*PARTY, "--threshold", "-1"], "--threshold"),
    ("efl party", [*COMMITTEE, "--threshold", "-1"], "--threshold"),
    ("efl party", [*PARTY, "--receivers", "0,x"], "--receivers"),
    # a wrong --index or an unwritable --out: refused before anything is written
    ("efl party", ["party", "--index", "3", "--parties", P3, "--input", "{good}", "--out",
                   "{untouched}"], "--index 3"),
    ("efl party", ["party", "--index", "-1", "--parties", P3, "--input", "{good}", "--out",
                   "{untouched}"], "--index -1"),
    ("efl party", ["party", "--committee", "--index", "3", "--parties", P3, "--inbox", "{dir}",
                   "--serve", "{dir}", "--out", "{untouched}"], "--index 3"),
    ("efl party", [*COMMITTEE[:-1], NO_OUT], "--out"),
    ("efl party", [*PARTY[:-1], NO_OUT], "--out"),
    # committee folders and round files: checked before connecting
    ("efl party", ["party", "--committee", "--index", "0", "--parties", P3, "--inbox",
                   "{dir}/no_inbox", "--serve", "{dir}", "--out", "{new}"], "--inbox"),
    ("efl party", ["party", "--committee", "--index", "0", "--parties", P3, "--inbox",
                   "{a_file}", "--round", "{good_round}", "--out", "{new}"], "--inbox"),
    ("efl party", ["party", "--committee", "--index", "0", "--parties", P3, "--inbox",
                   "{dir}", "--serve", "{dir}/no_rounds", "--out", "{new}"], "--serve"),
    ("efl party", ["party", "--committee", "--index", "0", "--parties", P3, "--inbox",
                   "{dir}", "--round", "{no_roster}", "--out", "{new}"],
     "round file lacks field 'roster'"),
    ("efl party", ["party", "--committee", "--index", "0", "--parties", P3, "--inbox",
                   "{dir}", "--round", "{list_round}", "--out", "{new}"],
     "a round file must be a JSON object"),
    # a text file where an .npz is expected: not numpy's allow_pickle advice
    ("efl party", [*PARTY[:-1], "{new}", "--input", "{text_npz}"],
     "notes.npz is not a NumPy .npz archive"),
    ("efl demo", ["demo", "--dataset", "{text_npz}", "--out", "{new}"],
     "notes.npz is not a NumPy .npz archive"),
    ("efl share", ["share", "--input", "{text_npz}", "--institution", "a", "--round",
                   "{good_round}", "--to", "{new}/a,{new}/b,{new}/c"],
     "notes.npz is not a NumPy .npz archive"),
    ("efl share", ["share", "--input", "{good}", "--institution", "a", "--round",
                   "{no_roster}", "--to", "{new}/a,{new}/b,{new}/c"], "lacks field 'roster'"),
    ("efl party make-certs", ["party", "make-certs", "--parties", "0", "--out", "{new}"],
     "0"),
    ("efl party make-certs", ["party", "make-certs", "--parties", "x", "--out", "{new}"],
     "--parties"),
    ("efl party make-certs", ["party", "make-certs", "--parties", "1", "--out", "{new}"],
     "--parties"),
    ("efl party make-certs", ["party", "make-certs", "--parties", "3", "--days", "99999999",
                              "--out", "{new}"], "--days"),
    ("efl party make-certs", ["party", "make-certs", "--parties", "3", "--days", "0",
                              "--out", "{new}"], "--days"),
    ("efl party make-certs", ["party", "make-certs", "--parties", "3", "--days", "-5",
                              "--out", "{new}"], "--days"),
    ("efl party make-certs", ["party", "make-certs", "--parties", "3", "--out", NO_OUT],
     "--out"),
    ("efl party make-certs", ["party", "make-certs", "--parties", "3", "--out", "{certs}"],
     "--force"),
    ("efl party make-certs", ["party", "make-certs", "--parties", "5", "--out", "{certs}"],
     "mpyc_ca.key"),
    ("efl share", ["share", "--input", "{good}", "--institution", "a", "--round", "{round}",
                   "--to", "{new}/a,{new}/b,{new}/c"], "round"),
    ("efl share", ["share", "--input", "{truncated}"], "required"),
]


def run_efl(argv: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "efl_toolkit.cli", *argv], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "EFL_DEBUG": ""})
    return run, time.monotonic() - start


@pytest.mark.parametrize(("command", "argv", "word"), CASES,
                         ids=[" ".join(c[1])[:60] for c in CASES])
def test_bad_input_is_one_clean_line_and_exit_2(files, tmp_path, command, argv, word):
    new, untouched = tmp_path / "new_out", tmp_path / "untouched_out"
    values = {k: str(v) for k, v in files.items()} | {"new": str(new),
                                                      "untouched": str(untouched)}
    before = {p: p.read_bytes() if p.is_file() else None for p in files["dir"].rglob("*")}
    run, seconds = run_efl([a.format(**values) for a in argv])
    assert "Traceback" not in run.stderr + run.stdout
    assert run.returncode == 2, (run.returncode, run.stderr)
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"{command}: error: "), lines[0]
    assert word in lines[0], lines[0]
    assert seconds < FAST_SECONDS  # checked before any long work
    if command in ("efl demo", "efl ledger verify", "efl ledger log", "efl ledger show",
                   "efl ledger checkpoint", "efl", "efl ledger", "efl party make-certs"):
        assert not new.exists(), "a rejected command left a half-written output folder"
    assert not untouched.exists(), "rejected before writing, yet --out was created"
    after = {p: p.read_bytes() if p.is_file() else None for p in files["dir"].rglob("*")}
    assert after == before  # inputs untouched (certificates and keys not replaced)


def test_every_subcommand_is_in_the_table():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    covered = {argv[0] for _, argv, _ in CASES if argv}
    assert set(sub.choices) <= covered, set(sub.choices) - covered
    ledger = sub.choices["ledger"]
    lsub = next(a for a in ledger._actions if a.dest == "ledger_command")
    covered_ledger = {argv[1] for _, argv, _ in CASES if argv[:1] == ["ledger"]}
    assert set(lsub.choices) <= covered_ledger, set(lsub.choices) - covered_ledger


def test_a_read_only_out_fails_up_front(tmp_path):  # demo, make-certs, party
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = False
    if os.geteuid() == 0:
        if subprocess.run(["mount", "--bind", str(folder), str(folder)],
                          capture_output=True).returncode != 0:
            pytest.skip("root without mount: cannot make a read-only folder")
        mounted = subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)],
                                 capture_output=True).returncode == 0
        if not mounted:
            subprocess.run(["umount", str(folder)])
            pytest.skip("cannot remount read-only")
    else:
        folder.chmod(0o555)
    try:
        for out in (folder, folder / "sub"):
            for command, argv in (
                    ("efl demo", ["demo"]),
                    ("efl party make-certs", ["party", "make-certs", "--parties", "3"]),
                    ("efl party", ["party", "--committee", "--index", "0", "--parties", P3,
                                   "--inbox", str(tmp_path), "--serve", str(tmp_path)]),
                    ("efl party", ["party", "--index", "0", "--parties", P3, "--input",
                                   str(write_input(tmp_path / "in.npz", [[0.5, 0.5]]))])):
                run, seconds = run_efl([*argv, "--out", str(out)])
                assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
                assert run.stderr.count("\n") == 1, run.stderr
                assert run.stderr.startswith(f"{command}: error: --out {out}"), run.stderr
                assert seconds < FAST_SECONDS
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)
        else:
            folder.chmod(0o755)


def test_a_second_demo_into_the_same_out_is_refused(tmp_path):
    from efl_toolkit.cli import out_dir_lock

    with out_dir_lock(str(tmp_path)):
        run, _ = run_efl(["demo", "--out", str(tmp_path)])
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert "another efl demo (pid " in run.stderr and str(os.getpid()) in run.stderr


def test_make_certs_force_replaces_existing_files(tmp_path):
    from efl_toolkit.secure.tls import target_files

    folder = make_certificates(tmp_path / "certs", 3)
    old_ca = (folder / "mpyc_ca.key").read_bytes()
    run, _ = run_efl(["party", "make-certs", "--parties", "3", "--out", str(folder), "--force"])
    assert run.returncode == 0, run.stderr
    assert (folder / "mpyc_ca.key").read_bytes() != old_ca
    assert sorted(p.name for p in folder.iterdir()) == sorted(target_files(3))
