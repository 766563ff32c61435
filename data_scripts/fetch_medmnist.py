#!/usr/bin/env python3
"""Download 2D MedMNIST datasets (MedMNIST v2/v3 files on Zenodo) and verify their official MD5.

The toolkit ships BreastMNIST and PneumoniaMNIST (28x28) inside the package and never downloads
anything at run time. This script is for users with internet who want another 2D dataset or a
larger size; the files it writes load with ``efl_toolkit.data.load_dataset(PATH)``.

Files: ``{flag}.npz`` (28x28) and ``{flag}_{64|128|224}.npz`` from
``https://zenodo.org/records/10519652/files/{file}?download=1``. Every file is checked against the
MD5 published in MedMNIST 3.0.2's ``medmnist/info.py``. The download goes to a temporary file in
the output folder and is renamed into place only when its MD5 matches; a file with the wrong MD5
is deleted and the script exits non-zero. Standard library only.

Usage:
    python data_scripts/fetch_medmnist.py dermamnist --size 28 64 --out data/medmnist
    python data_scripts/fetch_medmnist.py --list
    python data_scripts/fetch_medmnist.py --check data/medmnist/dermamnist_64.npz

Note: ``chestmnist`` is multi-label; it downloads, but the toolkit's loader (single-label
classification) rejects it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

#: Download URL template; ``{file}`` is the file name, e.g. ``dermamnist_64.npz``.
BASE_URL = "https://zenodo.org/records/10519652/files/{file}?download=1"

SIZES = (28, 64, 128, 224)

#: Official MD5 of every 2D MedMNIST file, by flag and image size (MedMNIST 3.0.2 info.py).
OFFICIAL_MD5: dict[str, dict[int, str]] = {
    "pathmnist": {28: "a8b06965200029087d5bd730944a56c1", 64: "55aa9c1e0525abe5a6b9d8343a507616",
                  128: "ac42d08fb904d92c244187169d1fd1d9",
                  224: "2c51a510bcdc9cf8ddb2af93af1eadec"},
    "chestmnist": {28: "02c8a6516a18b556561a56cbdd36c4a8", 64: "9de6cd0b934ebb5b7426cfba5efbae16",
                   128: "db107e5590b27930b62dbaf558aebee3",
                   224: "45bd33e6f06c3e8cdb481c74a89152aa"},
    "dermamnist": {28: "0744692d530f8e62ec473284d019b0c7", 64: "b70a2f5635c6199aeaa28c31d7202e1f",
                   128: "2defd784463fa5243564e855ed717de1",
                   224: "8974907d8e169bef5f5b96bc506ae45d"},
    "octmnist": {28: "c68d92d5b585d8d81f7112f81e2d0842", 64: "e229e9440236b774d9f0dfef9d07bdaf",
                 128: "0a97e76651ace45c5d943ee3f65b63ae",
                 224: "abc493b6d529d5de7569faaef2773ba3"},
    "pneumoniamnist": {28: "28209eda62fecd6e6a2d98b1501bb15f",
                       64: "8f4eceb4ccffa70c672198ea285246c6",
                       128: "05b46931834c231683c68f40c47b2971",
                       224: "d6a3c71de1b945ea11211b03746c1fe1"},
    "retinamnist": {28: "bd4c0672f1bba3e3a89f0e4e876791e4",
                    64: "afda852cc34dcda56f86ad2b2457dbcc",
                    128: "e48e916a24454daf90583d4e6efb1a18",
                    224: "eae7e3b6f3fcbda4ae613ebdcbe35348"},
    "breastmnist": {28: "750601b1f35ba3300ea97c75c52ff8f6",
                    64: "742edef2a1fd1524b2efff4bd7ba9364",
                    128: "363e4b3f8d712e9b5de15470a2aaadf1",
                    224: "b56378a6eefa9fed602bb16d192d4c8b"},
    "bloodmnist": {28: "7053d0359d879ad8a5505303e11de1dc", 64: "2b94928a2ae4916078ca51e05b6b800b",
                   128: "adace1e0ed228fccda1f39692059dd4c",
                   224: "b718ff6835fcbdb22ba9eacccd7b2601"},
    "tissuemnist": {28: "ebe78ee8b05294063de985d821c1c34b",
                    64: "123ece2eba09d0aa5d698fda57103344",
                    128: "61b955355d7425a89687b06cca3ce0c2",
                    224: "b077128c4a949f0a4eb01517f9037b9c"},
    "organamnist": {28: "68e3f8846a6bd62f0c9bf841c0d9eacc",
                    64: "2dcccc29b88e6da5a01161ef20cda288",
                    128: "eeae80d0a227a8d099027e1b3cfd3b60",
                    224: "50747347e05c87dd3aaf92c49f9f3170"},
    "organcmnist": {28: "b9ceb9546e10131b32923c5bbeaea2b1",
                    64: "3ce34a8724ea6f548e6db4744d03b6a9",
                    128: "773c1f009daa3fe5d9a2a201b2a7ed94",
                    224: "050f5e875dc056f6768abf94ec9995d1"},
    "organsmnist": {28: "9ab87b696fb54e2a387ebe992d6ed5f1",
                    64: "53a6d115339d874c25e309a994ff46d3",
                    128: "ded0c5fa01a95dc4978b956f613e9b8e",
                    224: "b354719e553fbbb2513d5533f52a4cb1"},
}

Opener = Callable[[str], BinaryIO]


class FetchError(RuntimeError):
    """A download that failed or did not verify; the message names the file and the problem."""


def file_name(flag: str, size: int = 28) -> str:
    """The Zenodo file name of a dataset at a size.

    Example:
        >>> file_name("dermamnist"), file_name("dermamnist", 64)
        ('dermamnist.npz', 'dermamnist_64.npz')
    """
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def expected_md5(flag: str, size: int = 28) -> str | None:
    """The official MD5 of a file, ``None`` when the table has no entry for that size.

    Raises:
        FetchError: ``flag`` is not a 2D MedMNIST dataset or ``size`` is not offered.

    Example:
        >>> expected_md5("breastmnist")
        '750601b1f35ba3300ea97c75c52ff8f6'
    """
    if flag not in OFFICIAL_MD5:
        raise FetchError(f"unknown 2D MedMNIST dataset {flag!r}; choose one of "
                         f"{sorted(OFFICIAL_MD5)}")
    if size not in SIZES:
        raise FetchError(f"unknown size {size} for {flag}; MedMNIST offers {list(SIZES)}")
    return OFFICIAL_MD5[flag].get(size)


def md5_of(path: str | os.PathLike) -> str:
    """MD5 hex digest of a file, read in 1 MiB chunks.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile() as f:
        ...     md5_of(f.name)
        'd41d8cd98f00b204e9800998ecf8427e'
    """
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def default_opener(url: str) -> BinaryIO:
    """Opens a URL for reading (``https://`` or ``file://``) with a 60 s socket timeout."""
    return urllib.request.urlopen(url, timeout=60)


def fetch(flag: str, size: int = 28, out_dir: str | os.PathLike = "data/medmnist", *,
          base_url: str = BASE_URL, opener: Opener = default_opener, verify: bool = True,
          force: bool = False, log: Callable[[str], None] = print) -> Path:
    """Downloads one MedMNIST file into ``out_dir`` and verifies its official MD5.

    An existing file with the right MD5 is kept (unless ``force``). The download is written to
    a temporary file beside the target and renamed into place only once verified.

    Args:
        flag: Dataset flag, e.g. ``"dermamnist"``.
        size: Image size: 28, 64, 128 or 224.
        out_dir: Folder to write into (created if missing).
        base_url: URL template with ``{file}``; e.g. ``file:///mirror/{file}`` for a mirror.
        opener: Function opening a URL as a binary stream (injectable for tests).
        verify: Check the MD5; ``False`` accepts files whose MD5 is unknown or different.
        force: Download again even if a verified file is present.
        log: Where progress messages go.

    Returns:
        Path of the verified file.

    Raises:
        FetchError: Unknown flag or size, an MD5 that is unknown (with ``verify``) or wrong (the
            file is deleted), or a failed download.

    Example:
        >>> fetch("dermamnist", 64, "data/medmnist")  # doctest: +SKIP
        PosixPath('data/medmnist/dermamnist_64.npz')
    """
    name = file_name(flag, size)
    md5 = expected_md5(flag, size)
    if md5 is None and verify:
        raise FetchError(f"{name}: no official MD5 is known for this file, so it cannot be "
                         "verified; pass --no-verify to accept it unverified")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / name
    if target.exists() and not force and md5 is not None and md5_of(target) == md5:
        log(f"{target}: already present, MD5 {md5} verified")
        return target

    url = base_url.format(file=name)
    log(f"downloading {url}")
    handle, temp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=out_dir)
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as sink:
            digest, n_bytes = _copy_with_md5(opener, url, sink)
            sink.flush()
            os.fsync(sink.fileno())
        got = digest.hexdigest()
        if md5 is not None and got != md5:
            message = (f"{name}: MD5 mismatch: expected {md5}, got {got} ({n_bytes} bytes from "
                       f"{url})")
            if verify:
                raise FetchError(message + "; the downloaded file was deleted")
            log("warning: " + message + " (kept because of --no-verify)")
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    status = "MD5 verified" if md5 == got else "NOT verified"
    log(f"{target}: {n_bytes} bytes, {status}")
    return target


def check(path: str | os.PathLike) -> tuple[bool, str]:
    """Checks a local file against the official MD5 of its file name.

    Returns:
        ``(ok, message)``.

    Example:
        >>> check("no/such/file.npz")[0]
        False
    """
    path = Path(path)
    if not path.is_file():
        return False, f"{path}: file not found"
    stem = path.name.removesuffix(".npz")
    flag, _, size_text = stem.partition("_")
    size = int(size_text) if size_text.isdigit() else 28
    try:
        md5 = expected_md5(flag, size)
    except FetchError as error:
        return False, f"{path}: {error}"
    if md5 is None:
        return False, f"{path}: no official MD5 known for {file_name(flag, size)}"
    got = md5_of(path)
    if got != md5:
        return False, f"{path}: MD5 mismatch: expected {md5}, got {got}"
    return True, f"{path}: MD5 {md5} verified"


def main(argv: list[str] | None = None, *, opener: Opener = default_opener) -> int:
    """Command-line entry point; returns the exit code (0 ok, 1 failed, 2 bad usage)."""
    parser = argparse.ArgumentParser(
        description="Download 2D MedMNIST datasets and verify their official MD5.")
    parser.add_argument("flags", nargs="*", help="dataset flags, e.g. dermamnist bloodmnist")
    parser.add_argument("--size", type=int, nargs="+", default=[28], choices=SIZES,
                        help="image sizes to fetch (default 28)")
    parser.add_argument("--out", default="data/medmnist", help="output folder")
    parser.add_argument("--base-url", default=BASE_URL,
                        help="URL template with {file} (e.g. file:///mirror/{file})")
    parser.add_argument("--no-verify", action="store_true",
                        help="accept files whose MD5 is unknown or does not match")
    parser.add_argument("--force", action="store_true", help="download even if present")
    parser.add_argument("--list", action="store_true", help="list the datasets and exit")
    parser.add_argument("--check", nargs="+", metavar="PATH",
                        help="verify local files against the official MD5 and exit")
    args = parser.parse_args(argv)

    if args.list:
        for flag in sorted(OFFICIAL_MD5):
            print(f"{flag:16s} sizes {', '.join(str(s) for s in sorted(OFFICIAL_MD5[flag]))}")
        return 0
    if args.check:
        results = [check(p) for p in args.check]
        for ok, message in results:
            print(message, file=sys.stdout if ok else sys.stderr)
        return 0 if all(ok for ok, _ in results) else 1
    if not args.flags:
        parser.error("name at least one dataset flag (see --list)")

    failures = 0
    for flag in args.flags:
        for size in args.size:
            try:
                fetch(flag.lower(), size, args.out, base_url=args.base_url, opener=opener,
                      verify=not args.no_verify, force=args.force)
            except FetchError as error:
                print(f"error: {error}", file=sys.stderr)
                failures += 1
            except (urllib.error.URLError, OSError) as error:
                print(f"error: {file_name(flag.lower(), size)}: download failed: {error}",
                      file=sys.stderr)
                failures += 1
    return 1 if failures else 0


def _copy_with_md5(opener: Opener, url: str, sink: BinaryIO):
    digest = hashlib.md5()
    n_bytes = 0
    with opener(url) as source:
        for chunk in iter(lambda: source.read(1 << 20), b""):
            digest.update(chunk)
            sink.write(chunk)
            n_bytes += len(chunk)
    return digest, n_bytes


if __name__ == "__main__":
    sys.exit(main())
