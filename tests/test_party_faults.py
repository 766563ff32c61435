"""``efl party`` with bad input files and a peer that is not MPyC (issue 10, faults 3 and 5).

* A truncated input npz, or one whose ``weight`` is an array, ended in a traceback (exit 1) with
  the status file left at "starting": now one line ``efl party: error: ...`` naming the file and
  field, exit code 2, status "failed".
* A peer port answered by another service that never speaks MPyC made the party report
  "connected" and wait for the whole round timeout: start-up now includes an MPyC handshake, so
  the start-up timeout applies and the silent peer is named (exit code 3).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from efl_toolkit.secure.party import write_input


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def party(tmp_path, input_path, *extra, peers=None, timeout=120):
    peers = peers or f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    return subprocess.run([sys.executable, "-m", "efl_toolkit.cli", "party", "--index", "0",
                           "--parties", peers, "--input", str(input_path),
                           "--out", str(tmp_path / "out"), *extra],
                          capture_output=True, text=True, timeout=timeout)


def good_input(tmp_path):
    return write_input(tmp_path / "good.npz", [[0.2, 0.8], [0.6, 0.4]], 0.5)


def truncated(tmp_path):
    data = good_input(tmp_path).read_bytes()
    path = tmp_path / "truncated.npz"
    path.write_bytes(data[: len(data) // 2])
    return path


def weight_array(tmp_path):
    path = tmp_path / "weights.npz"
    np.savez(path, probs=np.array([[0.2, 0.8]]), weight=np.array([0.5, 0.5]))
    return path


def weight_text(tmp_path):
    path = tmp_path / "weight_text.npz"
    np.savez(path, probs=np.array([[0.2, 0.8]]), weight=np.array("heavy"))
    return path


def not_a_zip(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("hello, not an npz")
    return path


def pickled(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, probs=np.array([{"a": 1}], dtype=object))
    return path


def empty(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    return path


BAD_INPUTS = {
    truncated: "truncated or not an .npz",
    weight_array: "field 'weight' must be a single real number, got an array of shape [2]",
    weight_text: "field 'weight' must be a single real number",
    not_a_zip: "cannot read input file",
    pickled: "cannot read input file",
    empty: "cannot read input file",
}


@pytest.mark.parametrize("make", list(BAD_INPUTS), ids=lambda f: f.__name__)
def test_bad_input_files_are_one_line_errors(tmp_path, make):
    path = make(tmp_path)
    run = party(tmp_path, path)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("efl party: error: party 0: ")
    assert BAD_INPUTS[make] in lines[0] and path.name in lines[0]
    status = json.loads((tmp_path / "out" / "party_0.status").read_text())
    assert status["stage"] == "failed"
    result = json.loads((tmp_path / "out" / "party_0.json").read_text())
    assert result["ok"] is False and result["error_kind"] == "input"


def test_out_naming_an_existing_file_is_a_one_line_error(tmp_path):
    (tmp_path / "out").write_text("a file")
    run = party(tmp_path, good_input(tmp_path))
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("efl party: error: --out ")


def test_bad_arguments_are_one_line_errors(tmp_path):
    run = party(tmp_path, good_input(tmp_path), "--reveal", "everything")
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert run.stderr.startswith("efl party: error: argument --reveal")


def foreign_service(port: int, banner: bytes | None, stop: threading.Event) -> threading.Thread:
    """A TCP service on ``port`` that accepts connections and never speaks MPyC."""
    server = socket.create_server(("127.0.0.1", port))
    server.settimeout(0.2)

    def serve():
        conns = []
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            if banner:
                conn.sendall(banner)
            conns.append(conn)
        for c in conns:
            c.close()
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("banner", [None, b"SSH-2.0-OpenSSH_9.6\r\n",
                                    b"HTTP/1.1 400 Bad Request\r\n\r\n" * 50])
def test_a_peer_that_is_not_mpyc_fails_start_up_in_time(tmp_path, banner):
    port = free_port()
    stop = threading.Event()
    thread = foreign_service(port, banner, stop)
    try:
        start = time.monotonic()
        run = party(tmp_path, good_input(tmp_path), "--startup-timeout", "4",
                    "--round-timeout", "600",
                    peers=f"127.0.0.1:{free_port()},127.0.0.1:{port}")
        elapsed = time.monotonic() - start
    finally:
        stop.set()
        thread.join(5)
    assert run.returncode == 3, (run.stdout, run.stderr)
    assert elapsed < 30  # the start-up timeout (4 s) applied, not the round timeout (600 s)
    result = json.loads((tmp_path / "out" / "party_0.json").read_text())
    assert result["error_kind"] == "connect" and result["peers"] == [1]
    assert "party 1 (127.0.0.1:" in result["error"]
    assert "did not complete the MPyC handshake within 4 s" in result["error"]
    assert run.stderr.splitlines()[-1].startswith("efl party: error: ")
    status = json.loads((tmp_path / "out" / "party_0.status").read_text())
    assert status["stage"] == "failed"
