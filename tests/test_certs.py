"""The site PKI: P-256 keys with mode 0600, correct usages, the camera identity in
the CN/SAN, no silent overwrite, and the CLI that drives it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from secfepas_sdk.certs import init_pki, issue_camera
from secfepas_sdk.cli.main import main
from secfepas_sdk.errors import ConfigError


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_init_creates_ca_edge_and_camera(tmp_path: Path) -> None:
    pki = init_pki(tmp_path / "site", edge_hosts=["edge.local", "10.0.0.5"], camera="cam-a")
    ca, edge = _cert(pki.ca_cert), _cert(pki.edge_cert)
    cam = _cert(pki.camera("cam-a").cert)
    for key_path in (pki.ca_key, pki.edge_key, pki.camera("cam-a").key):
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for leaf in (edge, cam):
        leaf.verify_directly_issued_by(ca)
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    edge_san = edge.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert edge_san.get_values_for_type(x509.DNSName) == ["edge.local"]
    assert [str(ip) for ip in edge_san.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    eku = edge.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    cam_eku = cam.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in cam_eku
    assert cam.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "cam-a"


def test_issue_camera_and_refusals(tmp_path: Path) -> None:
    root = tmp_path / "site"
    init_pki(root)
    files = issue_camera(root, "ward-3-bed-12")
    cert = _cert(files.cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["ward-3-bed-12"]
    with pytest.raises(ConfigError):
        issue_camera(root, "ward-3-bed-12")  # never overwrite a key
    with pytest.raises(ConfigError):
        issue_camera(root, "../evil")
    with pytest.raises(ConfigError):
        init_pki(root)
    with pytest.raises(ConfigError):
        issue_camera(tmp_path / "no-such-site", "cam")


def test_a_bad_first_camera_name_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "site"
    with pytest.raises(ConfigError, match="camera name"):
        init_pki(root, camera="bad name")
    assert not root.exists()
    init_pki(root, camera="good-name")  # the directory is still free for a correct init


def test_cli_init_and_issue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "pki"
    assert main(["certs", "init", str(root), "--camera", "cam-1"]) == 0
    assert main(["certs", "issue-camera", str(root), "cam-2"]) == 0
    out = capsys.readouterr().out
    assert "cam-2" in out
    assert (root / "cameras" / "cam-2.key").exists()
    assert main(["certs", "issue-camera", str(root), "cam-2"]) == 1


def test_cli_revoke_writes_a_crl_signed_by_the_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryptography import x509

    root = tmp_path / "pki"
    assert main(["certs", "init", str(root), "--camera", "cam-1"]) == 0
    assert main(["certs", "issue-camera", str(root), "cam-2"]) == 0
    assert main(["certs", "revoke", str(root), "cam-2"]) == 0
    assert "cam-2 revoked" in capsys.readouterr().out
    crl = x509.load_pem_x509_crl((root / "crl.pem").read_bytes())
    ca = x509.load_pem_x509_certificate((root / "ca.pem").read_bytes())
    cam2 = x509.load_pem_x509_certificate((root / "cameras" / "cam-2.pem").read_bytes())
    cam1 = x509.load_pem_x509_certificate((root / "cameras" / "cam-1.pem").read_bytes())
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(cam2.serial_number) is not None
    assert crl.get_revoked_certificate_by_serial_number(cam1.serial_number) is None
    assert main(["certs", "revoke", str(root), "no-such-cam"]) == 1
