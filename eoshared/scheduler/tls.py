"""Per-session TLS material for a Dask scheduler, its workers and its clients.

A session gets its own certificate authority (CA) and one certificate/key pair signed by it,
used by the scheduler, its workers and its clients alike. The CA's private key is never
written to disk: once the session certificate is signed nobody can mint another, so holding
``cert.pem`` + ``key.pem`` of this session is what lets a process join it.

Files (all mode 0600, in a directory of mode 0700):

``ca.pem``
    The session CA certificate (the only certificate a peer must present a chain to).
``cert.pem`` / ``key.pem``
    The session certificate and its private key.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from eoshared.scheduler.files import check_private, make_private_dir, write_private

# cryptography is imported by the functions that make certificates: reading a scheduler
# file (the laptop's run and attach paths) needs only TLSFiles.
if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from distributed.security import Security

CA_FILE = "ca.pem"
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
TLS_KEYS = ("ca_file", "cert", "key")
DEFAULT_VALIDITY = datetime.timedelta(days=14)


@dataclass(frozen=True)
class TLSFiles:
    """Paths of a session's CA certificate, certificate and private key."""

    ca_file: Path
    cert: Path
    key: Path

    def security(self) -> Security:
        """Dask's Security using these files for every role (the key must be private)."""
        check_private(self.key)
        return session_security(self)


def _name(common_name: str) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "eo-hpc"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _alt_names(hosts: list[str]) -> list[x509.GeneralName]:
    from cryptography import x509

    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def default_hosts() -> list[str]:
    """Names the session certificate lists: this host, ``localhost`` and loopback addresses."""
    return ["eo-hpc-session", socket.gethostname(), "localhost", "127.0.0.1", "::1"]


def create_session_tls(
    directory: Path,
    *,
    hosts: list[str] | None = None,
    validity: datetime.timedelta = DEFAULT_VALIDITY,
) -> TLSFiles:
    """Create a session CA and a certificate/key signed by it in ``directory`` (made 0700).

    ``hosts`` become the certificate's subject alternative names (default
    :func:`default_hosts`). Dask does not check host names (it verifies the chain only), so a
    client reaching the scheduler through a forwarded port on ``127.0.0.1`` is accepted
    whatever the names are.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    make_private_dir(directory)
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(minutes=5), now + validity
    session = secrets.token_hex(4)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"eo-hpc session CA {session}")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"eo-hpc session {session}"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName(_alt_names(hosts or default_hosts())), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    files = TLSFiles(directory / CA_FILE, directory / CERT_FILE, directory / KEY_FILE)
    write_private(files.key, _key_pem(key))
    write_private(files.cert, cert.public_bytes(serialization.Encoding.PEM))
    write_private(files.ca_file, ca_cert.public_bytes(serialization.Encoding.PEM))
    return files


def session_security(files: TLSFiles) -> Security:
    """A Security that requires TLS and uses the session certificate for every role."""
    from distributed.security import Security

    ca, cert, key = str(files.ca_file), str(files.cert), str(files.key)
    return Security(
        tls_ca_file=ca,
        tls_client_cert=cert,
        tls_client_key=key,
        tls_scheduler_cert=cert,
        tls_scheduler_key=key,
        tls_worker_cert=cert,
        tls_worker_key=key,
        require_encryption=True,
    )
