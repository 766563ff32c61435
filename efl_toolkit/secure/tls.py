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


def make_certificates(directory, n_parties: int, *, days: int = 30) -> Path:
    """Creates ``mpyc_ca.crt/.key`` and ``party_{i}.crt/.key`` for ``n_parties`` parties.

    Keys are ECDSA P-256; private keys are written with mode 0600.

    Args:
        directory: Target folder (created if missing).
        n_parties: Number of parties ``m``.
        days: Validity of the certificates.

    Returns:
        The folder, as a ``Path``.
    """
    from cryptography.hazmat.primitives.asymmetric import ec

    if n_parties < 1:
        raise ValueError(f"n_parties must be >= 1, got {n_parties}")
    folder = Path(directory)
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
    parser.add_argument("--days", type=int, default=30, help="validity in days")
    args = parser.parse_args(argv)
    folder = make_certificates(args.out, args.parties, days=args.days)
    print(f"wrote mpyc_ca.crt, mpyc_ca.key and party_0..{args.parties - 1} .crt/.key to {folder}")
    print("give party i only party_i.crt, party_i.key and mpyc_ca.crt; keep mpyc_ca.key offline")
    return 0
