"""The words for a failed TLS handshake: from OpenSSL's own results, never peer text.

The real handshakes are in tests/camera/test_client_tls.py; here each mapping
is pinned on the exception objects OpenSSL gives, including the alerts that an
asyncio peer does not send today but another TLS stack (a proxy) would.
"""

from __future__ import annotations

import ssl

import pytest

from secfepas_sdk.protocol.tls_failures import handshake_failure, peer_alert, verify_failure


def _ssl_error(reason: str) -> ssl.SSLError:
    exc = ssl.SSLError(1, f"[SSL: {reason}] peer said: <script>")
    exc.reason = reason
    return exc


def _verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_code = code
    exc.verify_message = message
    return exc


@pytest.mark.parametrize(
    ("reason", "meaning"),
    [
        ("TLSV1_ALERT_UNKNOWN_CA", "unknown CA"),
        ("SSLV3_ALERT_CERTIFICATE_EXPIRED", "certificate expired"),
        ("SSLV3_ALERT_CERTIFICATE_REVOKED", "certificate revoked"),
        ("TLSV13_ALERT_CERTIFICATE_REQUIRED", "no certificate presented"),
    ],
)
def test_peer_alerts_name_the_refusal(reason: str, meaning: str) -> None:
    exc = _ssl_error(reason)
    assert peer_alert(exc) == meaning
    assert handshake_failure(exc, "camera") == f"the camera refused our certificate: {meaning}"


def test_our_verify_result_says_what_it_means() -> None:
    exc = _verify_error(20, "unable to get local issuer certificate")
    assert verify_failure(exc) == "unknown CA (unable to get local issuer certificate)"
    assert peer_alert(exc) is None  # our refusal, not the peer's
    assert handshake_failure(exc, "camera") == (
        "the camera's certificate failed verification: "
        "unknown CA (unable to get local issuer certificate)"
    )
    assert verify_failure(_verify_error(10, "certificate has expired")) == (
        "expired (certificate has expired)"
    )
    assert verify_failure(_verify_error(99, "odd")) == "invalid (odd)"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ConnectionResetError(104, "Connection reset by peer"), "closed the connection"),
        (ssl.SSLEOFError(8, "EOF"), "closed the connection"),
        (_ssl_error("PEER_DID_NOT_RETURN_A_CERTIFICATE"), "presented no certificate"),
        (_ssl_error("UNSUPPORTED_PROTOCOL"), "does not speak TLS 1.3"),
        (TimeoutError(), "did not complete the handshake in time"),
        (_ssl_error("SOMETHING_NEW"), "TLS error SOMETHING_NEW"),
    ],
)
def test_other_failures_are_named_without_peer_text(exc: BaseException, expected: str) -> None:
    text = handshake_failure(exc, "camera")
    assert expected in text
    assert "<script>" not in text and "peer said" not in text
    assert "ConnectionResetError" not in text
