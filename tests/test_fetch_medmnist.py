"""data_scripts/fetch_medmnist.py, tested on local files only (file:// mirrors): never the network.

The embedded BreastMNIST and PneumoniaMNIST files are the official MedMNIST files, so a mirror
holding them exercises the real MD5 verification end to end.
"""

from __future__ import annotations

import importlib.util
import io
import re
import socket
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from efl_toolkit.data import load_dataset
from efl_toolkit.data.medmnist import EMBEDDED_MD5, embedded_path, md5sum

SCRIPT = Path(__file__).resolve().parents[1] / "data_scripts" / "fetch_medmnist.py"
FLAGS_2D = ("pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist", "retinamnist",
            "breastmnist", "bloodmnist", "tissuemnist", "organamnist", "organcmnist",
            "organsmnist")


def load_script():
    spec = importlib.util.spec_from_file_location("fetch_medmnist", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fm = load_script()


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def mirror():
    """A file:// URL template over the folder holding the embedded (official) files."""
    folder = embedded_path("breastmnist").parent
    return folder.as_uri() + "/{file}"


@pytest.fixture
def bad_mirror(tmp_path, make_npz):
    """A mirror whose breastmnist.npz is a valid MedMNIST-format file with the wrong content."""
    folder = tmp_path / "bad_mirror"
    folder.mkdir()
    make_npz().rename(folder / "breastmnist.npz")
    return folder.as_uri() + "/{file}"


def leftovers(folder: Path):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_md5_table_covers_every_2d_flag_and_size():
    assert set(fm.OFFICIAL_MD5) == set(FLAGS_2D)
    digests = []
    for flag in FLAGS_2D:
        assert sorted(fm.OFFICIAL_MD5[flag]) == [28, 64, 128, 224]
        for size in fm.SIZES:
            md5 = fm.expected_md5(flag, size)
            assert re.fullmatch(r"[0-9a-f]{32}", md5)
            digests.append(md5)
    assert len(set(digests)) == len(digests) == 48


def test_md5_table_agrees_with_the_embedded_files():
    for flag, md5 in EMBEDDED_MD5.items():
        assert fm.OFFICIAL_MD5[flag][28] == md5 == md5sum(embedded_path(flag))


def test_file_names_and_urls():
    assert fm.file_name("octmnist") == "octmnist.npz"
    assert fm.file_name("octmnist", 224) == "octmnist_224.npz"
    assert fm.BASE_URL.format(file="octmnist_64.npz") == (
        "https://zenodo.org/records/10519652/files/octmnist_64.npz?download=1")


def test_fetch_from_mirror_verifies_and_loads(tmp_path, mirror):
    out = tmp_path / "data"
    messages = []
    path = fm.fetch("breastmnist", 28, out, base_url=mirror, log=messages.append)
    assert path == out / "breastmnist.npz"
    assert md5sum(path) == EMBEDDED_MD5["breastmnist"]
    assert leftovers(out) == []
    assert any("MD5 verified" in m for m in messages)
    assert len(load_dataset(path).train) == 546


def test_present_verified_file_is_not_downloaded_again(tmp_path, mirror):
    out = tmp_path / "data"
    fm.fetch("breastmnist", 28, out, base_url=mirror, log=lambda m: None)

    def opener_that_must_not_run(url):
        raise AssertionError(f"unexpected download of {url}")

    messages = []
    fm.fetch("breastmnist", 28, out, opener=opener_that_must_not_run, log=messages.append)
    assert "already present" in messages[0]
    opened = []

    def recording_opener(url):
        opened.append(url)
        return open(embedded_path("breastmnist"), "rb")

    fm.fetch("breastmnist", 28, out, opener=recording_opener, force=True, log=lambda m: None)
    assert opened == [fm.BASE_URL.format(file="breastmnist.npz")]


def test_wrong_md5_deletes_the_file_and_raises(tmp_path, bad_mirror):
    out = tmp_path / "data"
    with pytest.raises(fm.FetchError, match=r"breastmnist\.npz: MD5 mismatch: expected "
                                            r"750601b1f35ba3300ea97c75c52ff8f6, got [0-9a-f]{32}"
                                            r".*the downloaded file was deleted"):
        fm.fetch("breastmnist", 28, out, base_url=bad_mirror, log=lambda m: None)
    assert list(out.iterdir()) == []


def test_wrong_md5_never_replaces_a_good_file(tmp_path, mirror, bad_mirror):
    out = tmp_path / "data"
    good = fm.fetch("breastmnist", 28, out, base_url=mirror, log=lambda m: None)
    with pytest.raises(fm.FetchError, match="MD5 mismatch"):
        fm.fetch("breastmnist", 28, out, base_url=bad_mirror, force=True, log=lambda m: None)
    assert md5sum(good) == EMBEDDED_MD5["breastmnist"] and leftovers(out) == []


def test_no_verify_keeps_a_mismatched_file_with_a_warning(tmp_path, bad_mirror):
    out = tmp_path / "data"
    messages = []
    path = fm.fetch("breastmnist", 28, out, base_url=bad_mirror, verify=False,
                    log=messages.append)
    assert path.exists() and any(m.startswith("warning: breastmnist.npz: MD5 mismatch")
                                 for m in messages)


def test_unknown_md5_is_refused_unless_no_verify(tmp_path, monkeypatch):
    monkeypatch.setitem(fm.OFFICIAL_MD5, "breastmnist", {28: EMBEDDED_MD5["breastmnist"]})
    payload = b"unverifiable bytes"
    with pytest.raises(fm.FetchError, match=r"breastmnist_64\.npz: no official MD5 is known.*"
                                            r"--no-verify"):
        fm.fetch("breastmnist", 64, tmp_path, opener=lambda url: io.BytesIO(payload))
    assert list(tmp_path.iterdir()) == []
    path = fm.fetch("breastmnist", 64, tmp_path, opener=lambda url: io.BytesIO(payload),
                    verify=False, log=lambda m: None)
    assert path.read_bytes() == payload


def test_failed_download_leaves_nothing(tmp_path):
    def broken(url):
        raise urllib.error.URLError("connection refused")

    with pytest.raises(urllib.error.URLError):
        fm.fetch("dermamnist", 28, tmp_path, opener=broken, log=lambda m: None)
    assert list(tmp_path.iterdir()) == []

    class Truncated(io.BytesIO):
        def read(self, size=-1):
            if self.tell() > 0:
                raise OSError("connection reset mid-download")
            return super().read(4)

    with pytest.raises(OSError, match="connection reset"):
        fm.fetch("dermamnist", 28, tmp_path, opener=lambda url: Truncated(b"12345678"),
                 log=lambda m: None)
    assert list(tmp_path.iterdir()) == []


def test_unknown_flag_and_size():
    with pytest.raises(fm.FetchError, match=r"unknown 2D MedMNIST dataset 'organmnist3d'"):
        fm.expected_md5("organmnist3d")
    with pytest.raises(fm.FetchError, match=r"unknown size 32 for dermamnist"):
        fm.expected_md5("dermamnist", 32)


def test_main_exit_codes_and_messages(tmp_path, mirror, bad_mirror, capsys):
    out = tmp_path / "out"
    assert fm.main(["breastmnist", "pneumoniamnist", "--out", str(out),
                    "--base-url", mirror]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["breastmnist.npz", "pneumoniamnist.npz"]

    assert fm.main(["breastmnist", "--out", str(tmp_path / "bad"), "--base-url", bad_mirror]) == 1
    err = capsys.readouterr().err
    assert "error: breastmnist.npz: MD5 mismatch" in err
    assert list((tmp_path / "bad").iterdir()) == []

    assert fm.main(["nosuchmnist", "--out", str(out), "--base-url", mirror]) == 1
    assert "unknown 2D MedMNIST dataset 'nosuchmnist'" in capsys.readouterr().err

    missing_mirror = (tmp_path / "empty").as_uri() + "/{file}"
    assert fm.main(["dermamnist", "--out", str(out), "--base-url", missing_mirror]) == 1
    assert "error: dermamnist.npz: download failed" in capsys.readouterr().err

    with pytest.raises(SystemExit) as usage:
        fm.main(["dermamnist", "--size", "32"])
    assert usage.value.code == 2


def test_check_and_list(tmp_path, capsys, make_npz):
    assert fm.main(["--check", str(embedded_path("breastmnist"))]) == 0
    assert "MD5 750601b1f35ba3300ea97c75c52ff8f6 verified" in capsys.readouterr().out
    fake = make_npz().rename(tmp_path / "dermamnist_64.npz")
    assert fm.main(["--check", str(fake)]) == 1
    assert "dermamnist_64.npz: MD5 mismatch: expected b70a2f5635c6199aeaa28c31d7202e1f" in (
        capsys.readouterr().err)
    assert fm.check(tmp_path / "absent.npz") == (False, f"{tmp_path / 'absent.npz'}: file not "
                                                        "found")
    assert fm.main(["--list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == 12 and listing[0].startswith("bloodmnist")


def test_script_runs_as_a_command(tmp_path, bad_mirror):
    """The real command line: a wrong MD5 exits non-zero with a clear message."""
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "breastmnist", "--out", str(tmp_path / "o"),
         "--base-url", bad_mirror], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "MD5 mismatch: expected 750601b1f35ba3300ea97c75c52ff8f6" in result.stderr
    assert not (tmp_path / "o" / "breastmnist.npz").exists()
    assert np.load(embedded_path("breastmnist")).files  # the official file is untouched
