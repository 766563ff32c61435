"""TLS certificates for MPyC parties (``--ssl``): a small CA and one certificate per party.

MPyC's ``--ssl`` makes every connection mutually authenticated TLS. Each party needs, in a
``.config`` folder of its working directory, ``party_{i}.crt``, ``party_{i}.key`` (its own) and
``mpyc_ca.crt`` (the consortium CA); certificate ``i`` must carry the common name
``MPyC party {i}``, which the peers check. ``efl party --tls DIR`` points a party at a folder
holding these three files.

:func:`make_certificates` creates a CA and all party certificates in one folder. That is handy on
one machine and in class; across institutions, whoever holds ``mpyc_ca.key`` can impersonate any
party, so the CA key belongs to a trusted operator (or use your PKI) and each institution should
receive only its own key. See ``docs/secure.md``.

Example:
    >>> import tempfile
    >>> from efl_toolkit.secure.tls import make_certificates
    >>> folder = make_certificates(tempfile.mkdtemp(), n_parties=3)
    >>> sorted(p.name for p in folder.iterdir())[:3]
    ['mpyc_ca.crt', 'mpyc_ca.key', 'party_0.crt']
"""

from __future__ import annotations

import argparse
import datetime
import os
from pathlib import Path

CA_NAME = "MPyC efl_toolkit CA"
#: Longest validity ``make-certs`` issues (ten years; X.509 dates end in 9999 anyway).
MAX_DAYS = 3650


def party_common_name(index: int) -> str:
    """The common name MPyC expects in party ``index``'s certificate."""
    return f"MPyC party {index}"


def party_files(index: int) -> tuple[str, str, str]:
    """File names a party needs: its certificate, its key and the CA certificate."""
    return f"party_{index}.crt", f"party_{index}.key", "mpyc_ca.crt"


def _write_key(path: Path, key) -> None:
    from cryptography.hazmat.primitives import serialization

    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    path.write_bytes(data)
    os.chmod(path, 0o600)


def _write_cert(path: Path, cert) -> None:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _certificate(subject_cn: str, public_key, issuer_cn: str, signing_key, *, ca: bool,
                 issuer_public_key, days: int):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key),
                       critical=False)
    )
    if ca:
        usage = dict(key_cert_sign=True, crl_sign=True, digital_signature=False)
    else:
        usage = dict(key_cert_sign=False, crl_sign=False, digital_signature=True)
        builder = builder.add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    builder = builder.add_extension(x509.KeyUsage(
        content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, encipher_only=False, decipher_only=False, **usage), critical=True)
    return builder.sign(signing_key, hashes.SHA256())


def target_files(n_parties: int) -> list[str]:
    """The files :func:`make_certificates` writes for ``n_parties`` parties."""
    return ["mpyc_ca.crt", "mpyc_ca.key"] + [
        name for i in range(n_parties) for name in party_files(i)[:2]]


def make_certificates(directory, n_parties: int, *, days: int = 30,
                      force: bool = False) -> Path:
    """Creates ``mpyc_ca.crt/.key`` and ``party_{i}.crt/.key`` for ``n_parties`` parties.

    Keys are ECDSA P-256; private keys are written with mode 0600. Everything is checked before
    anything is written.

    Args:
        directory: Target folder (created if missing).
        n_parties: Number of parties ``m`` (at least 2).
        days: Validity of the certificates, ``1..MAX_DAYS``.
        force: Replace existing files; without it a folder that already holds any of them (a
            CA and keys in use) is refused.

    Returns:
        The folder, as a ``Path``.

    Raises:
        ValueError: A bad ``n_parties`` or ``days``, or existing files without ``force``.
    """
    from cryptography.hazmat.primitives.asymmetric import ec

    if isinstance(n_parties, bool) or not isinstance(n_parties, int) or n_parties < 2:
        raise ValueError(f"--parties must be an integer >= 2 (a secure round needs at least 2 "
                         f"parties), got {n_parties}")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise ValueError(f"--days must be an integer in 1..{MAX_DAYS}, got {days}")
    folder = Path(directory)
    existing = [name for name in target_files(n_parties) if (folder / name).exists()]
    if existing and not force:
        raise ValueError(f"--out {directory} already holds {', '.join(existing[:4])}"
                         f"{', ...' if len(existing) > 4 else ''}: refusing to replace a CA "
                         "and keys that may be in use (choose another --out, or pass --force)")
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate(CA_NAME, ca_key.public_key(), CA_NAME, ca_key, ca=True,
                           issuer_public_key=ca_key.public_key(), days=days)
    _write_key(folder / "mpyc_ca.key", ca_key)
    _write_cert(folder / "mpyc_ca.crt", ca_cert)
    for i in range(n_parties):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(party_common_name(i), key.public_key(), CA_NAME, ca_key, ca=False,
                            issuer_public_key=ca_key.public_key(), days=days)
        crt_name, key_name, _ = party_files(i)
        _write_key(folder / key_name, key)
        _write_cert(folder / crt_name, cert)
    return folder


def missing_files(directory, index: int) -> list[str]:
    """The TLS files party ``index`` lacks in ``directory`` (empty when ready)."""
    folder = Path(directory)
    return [name for name in party_files(index) if not (folder / name).is_file()]


def main(argv: list[str]) -> int:
    """``efl party make-certs --parties M --out DIR``: writes a CA and M party certificates."""
    parser = argparse.ArgumentParser(prog="efl party make-certs",
                                     description="Create a CA and TLS certificates for MPyC "
                                                 "parties (for efl party --tls DIR).")
    parser.add_argument("--parties", type=int, required=True, help="number of parties M")
    parser.add_argument("--out", required=True, help="folder to write the files to")
    parser.add_argument("--days", type=int, default=30, help=f"validity in days (1..{MAX_DAYS})")
    parser.add_argument("--force", action="store_true",
                        help="replace certificates and keys already in --out (by default an "
                             "--out holding any of them is refused: they may be in use)")
    args = parser.parse_args(argv)
    from efl_toolkit.cli import check_out_dir

    check_out_dir(args.out)  # ValueError naming --out: read-only, or a file in the way
    folder = make_certificates(args.out, args.parties, days=args.days, force=args.force)
    print(f"wrote mpyc_ca.crt, mpyc_ca.key and party_0..{args.parties - 1} .crt/.key to {folder}")
    print("give party i only party_i.crt, party_i.key and mpyc_ca.crt; keep mpyc_ca.key offline")
    return 0
