"""Why the edge may have refused this camera's certificate, judged on the camera.

In TLS 1.3 the edge checks the camera's certificate after the camera has
finished its side of the handshake, and asyncio drops the connection without
an alert: the camera only sees the connection close. It then checks its own
certificate against the CA it pins (the site CA signs cameras too) to say why.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

__all__ = ["own_certificate_problem"]


def own_certificate_problem(cert_file: Path, ca_file: Path) -> str | None:
    """``"...expired..."``, ``"...not yet valid..."``, ``"unknown CA..."``, or None if fine."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        authorities = x509.load_pem_x509_certificates(ca_file.read_bytes())
    except (OSError, ValueError):
        return None
    now = datetime.now(UTC)
    if cert.not_valid_after_utc < now:
        return f"certificate expired (not valid after {cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z)"
    if cert.not_valid_before_utc > now:
        return f"certificate not yet valid (from {cert.not_valid_before_utc:%Y-%m-%d %H:%M}Z)"
    for ca in authorities:
        try:
            cert.verify_directly_issued_by(ca)
            return None
        except (ValueError, TypeError, InvalidSignature):
            continue
    return f"unknown CA (our certificate is not issued by the site CA in {ca_file})"
