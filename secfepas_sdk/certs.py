"""A small private PKI for one edge site: a CA, the edge's server certificate
and one client certificate per camera (EC P-256, made with ``cryptography``).

The camera's identity is its certificate's common name (also its DNS SAN).
The CA key signs new cameras; keep the directory on the operator's machine
(or move ``ca.key`` offline) and copy only a camera's own files to it.
Key files are created with mode 0600 and never overwritten.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from secfepas_sdk.errors import ConfigError

__all__ = ["CameraFiles", "Pki", "init_pki", "issue_camera", "load_pki", "revoke_camera"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")
CA_DAYS = 3650
LEAF_DAYS = 825
CRL_DAYS = 365  # the CRL's next update: re-sign (any `certs revoke`) before it passes


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraFiles:
    name: str
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class Pki:
    """Paths of one site's PKI directory."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def crl(self) -> Path:
        """The site's certificate revocation list (PEM), for the edge's ``crl`` setting."""
        return self.root / "crl.pem"

    @property
    def edge_cert(self) -> Path:
        return self.root / "edge.pem"

    @property
    def edge_key(self) -> Path:
        return self.root / "edge.key"

    def camera(self, name: str) -> CameraFiles:
        _check_name(name)
        return CameraFiles(
            name=name,
            cert=self.root / "cameras" / f"{name}.pem",
            key=self.root / "cameras" / f"{name}.key",
        )


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ConfigError(
            f"camera name {name!r} must be 1-63 letters, digits or '-', starting alphanumeric"
        )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: never clobber an existing key; 0600 from the first byte on disk.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "secfepas"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    *, subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, days: int, ca: bool
) -> x509.CertificateBuilder:
    """What the CA and the leaves share: validity, serial, basic constraints, key usage.
    A CA only signs certificates; a leaf only signs TLS handshakes."""
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )


def _leaf(
    *,
    subject: str,
    sans: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(subject=_name(subject), issuer=ca_cert.subject, key=key, days=LEAF_DAYS, ca=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _host_sans(hosts: list[str]) -> list[x509.GeneralName]:
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    return sans


def init_pki(
    root: Path,
    *,
    edge_hosts: list[str] | None = None,
    camera: str = "camera-1",
    site: str = "secfepas site CA",
) -> Pki:
    """Create CA, edge certificate (SANs ``edge_hosts``) and one camera certificate."""
    _check_name(camera)  # before anything is written: no half-made site on a bad name
    pki = Pki(root=Path(root))
    if pki.ca_key.exists() or pki.ca_cert.exists():
        raise ConfigError(f"{pki.root} already holds a CA; refusing to overwrite it")
    hosts = edge_hosts or ["localhost", "127.0.0.1", "::1"]
    pki.root.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        _builder(subject=_name(site), issuer=_name(site), key=ca_key, days=CA_DAYS, ca=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(pki.ca_key, ca_key)
    _write_cert(pki.ca_cert, ca_cert)
    edge_cert, edge_key = _leaf(
        subject=hosts[0],
        sans=_host_sans(hosts),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        ca_cert=ca_cert,
        ca_key=ca_key,
    )
    _write_key(pki.edge_key, edge_key)
    _write_cert(pki.edge_cert, edge_cert)
    issue_camera(pki.root, camera)
    return pki


def load_pki(root: Path) -> tuple[Pki, x509.Certificate, ec.EllipticCurvePrivateKey]:
    pki = Pki(root=Path(root))
    try:
        ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
        ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the CA in {pki.root}: {exc}") from exc
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{pki.ca_key} is not an EC private key")
    return pki, ca_cert, ca_key


def issue_camera(root: Path, name: str) -> CameraFiles:
    """Sign a client certificate whose CN (and DNS SAN) is the camera identity ``name``."""
    _check_name(name)
    pki, ca_cert, ca_key = load_pki(root)
    files = pki.camera(name)
    if files.cert.exists() or files.key.exists():
        raise ConfigError(f"camera {name!r} already has a certificate in {files.cert.parent}")
    cert, key = _leaf(
        subject=name,
        sans=[x509.DNSName(name)],
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        ca_cert=ca_cert,
        ca_key=ca_key,
    )
    _write_key(files.key, key)
    _write_cert(files.cert, cert)
    return files


def revoke_camera(root: Path, name: str) -> Path:
    """Add camera ``name``'s certificate to the site CRL (re-signed by the CA, valid
    for CRL_DAYS) and return the CRL's path. Revoking twice changes nothing."""
    pki, ca_cert, ca_key = load_pki(root)
    files = pki.camera(name)
    try:
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"no certificate for camera {name!r} in {files.cert.parent}") from exc
    entries: list[x509.RevokedCertificate] = []
    if pki.crl.exists():
        try:
            old = x509.load_pem_x509_crl(pki.crl.read_bytes())
        except ValueError as exc:
            raise ConfigError(f"{pki.crl} is not a PEM CRL: {exc}") from exc
        if not old.is_signature_valid(ca_key.public_key()):
            raise ConfigError(f"{pki.crl} is not signed by this site's CA")
        entries = list(old)
    now = _now()
    if all(e.serial_number != cert.serial_number for e in entries):
        entries.append(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(now)
            .build()
        )
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=CRL_DAYS))
    )
    for entry in entries:
        builder = builder.add_revoked_certificate(entry)
    crl = builder.sign(ca_key, hashes.SHA256())
    tmp = pki.crl.with_suffix(".pem.tmp")
    tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp, pki.crl)  # the edge never reads a half-written list
    return pki.crl
