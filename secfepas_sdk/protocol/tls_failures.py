"""What a failed TLS handshake means, in words an operator can act on.

Every reason here comes from our own OpenSSL: the result of our check of the
peer's certificate, or the name OpenSSL gives to an alert the peer sent. No
text chosen by the peer ever reaches a message or a log.
"""

from __future__ import annotations

import asyncio
import ssl

__all__ = ["handshake_failure", "peer_alert", "verify_failure"]

# OpenSSL's X509_V_ERR_* codes -> what they mean for a site PKI.
_VERIFY_MEANING: dict[int, str] = {
    2: "unknown CA",  # unable to get issuer certificate
    9: "not yet valid",
    10: "expired",
    18: "unknown CA",  # self-signed leaf
    19: "unknown CA",  # self-signed certificate in chain
    20: "unknown CA",  # unable to get local issuer certificate
    21: "unknown CA",  # unable to verify the first certificate
    23: "revoked",
    26: "not meant for this use (extended key usage)",
    62: "wrong name",  # hostname mismatch
    64: "wrong name",  # IP address mismatch
}

# Alerts a peer sends when it refuses our certificate, as OpenSSL names them.
_ALERT_MEANING: dict[str, str] = {
    "TLSV1_ALERT_UNKNOWN_CA": "unknown CA",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "certificate expired",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "certificate revoked",
    "SSLV3_ALERT_BAD_CERTIFICATE": "bad certificate",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "certificate not accepted",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "unsupported certificate",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "no certificate presented",
    "TLSV1_ALERT_ACCESS_DENIED": "access denied",
}

# Our own refusals that are not a verify result.
_LOCAL_REASON: dict[str, str] = {
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "presented no certificate",
    "UNSUPPORTED_PROTOCOL": "does not speak TLS 1.3",
    "TLSV1_ALERT_PROTOCOL_VERSION": "does not speak TLS 1.3",
    "WRONG_VERSION_NUMBER": "does not speak TLS (plain TCP?)",
    "HTTP_REQUEST": "sent HTTP, not TLS",
}


# How a peer that drops the connection mid-handshake shows up.
_CLOSED = (ConnectionError, ssl.SSLEOFError, ssl.SSLZeroReturnError, asyncio.IncompleteReadError)


def _reason(exc: ssl.SSLError) -> str:
    """OpenSSL's reason name (an SSLError built in Python may have none)."""
    return str(getattr(exc, "reason", None) or "")


def verify_failure(exc: BaseException | None) -> str | None:
    """Our check of the peer's certificate failed: ``"<meaning> (<OpenSSL's message>)"``."""
    if not isinstance(exc, ssl.SSLCertVerificationError):
        return None
    meaning = _VERIFY_MEANING.get(int(exc.verify_code or 0), "invalid")
    return f"{meaning} ({exc.verify_message})"


def peer_alert(exc: BaseException | None) -> str | None:
    """The peer refused our certificate with a TLS alert: what the alert means."""
    if not isinstance(exc, ssl.SSLError) or isinstance(exc, ssl.SSLCertVerificationError):
        return None
    return _ALERT_MEANING.get(_reason(exc))


def handshake_failure(exc: BaseException, peer: str) -> str:
    """Why a handshake with ``peer`` ("camera", "edge") failed, for a log line.

    A peer that rejects our certificate often just drops the connection (asyncio
    sends no alert), so a reset during the handshake is named as such.
    """
    verified = verify_failure(exc)
    if verified is not None:
        return f"the {peer}'s certificate failed verification: {verified}"
    alert = peer_alert(exc)
    if alert is not None:
        return f"the {peer} refused our certificate: {alert}"
    if isinstance(exc, TimeoutError):
        return f"the {peer} did not complete the handshake in time"
    if isinstance(exc, ssl.SSLError) and _reason(exc) in _LOCAL_REASON:
        return f"the {peer} {_LOCAL_REASON[_reason(exc)]}"
    if isinstance(exc, _CLOSED):
        return (
            f"the {peer} closed the connection during the handshake: it probably refused "
            f"our certificate (check the CA it trusts and the name it expects)"
        )
    if isinstance(exc, ssl.SSLError):
        return f"TLS error {_reason(exc) or type(exc).__name__}"
    return type(exc).__name__
