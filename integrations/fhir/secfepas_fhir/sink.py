"""POST alerts as FHIR R4B Observations with httpx: bearer token or mutual TLS.

HTTP 4xx is permanent (the outbox dead-letters it), except 408 and 429, which say
"later"; 5xx, timeouts and connection errors are transient (retried). A conditional
create header (``If-None-Exist: identifier=...``) lets servers that support it
drop a re-delivered alert by its id.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx
from pydantic import ValidationError

from secfepas_fhir.observation import PSPI_CODE_SYSTEM, build_observation
from secfepas_sdk.alerts import Alert, SinkContext, redact_uri
from secfepas_sdk.errors import ConfigError, PermanentSinkError, TransientSinkError

__all__ = ["FhirSink", "FhirSinkConfig", "fhir_sink_factory", "parse_fhir_uri"]

_QUERY = frozenset({"token_env", "ca", "cert", "key", "timeout", "code_system", "status"})
_STATUSES = frozenset({"registered", "preliminary", "final", "amended"})
_RETRY_4XX = frozenset({408, 425, 429})
_MAX_DETAIL = 300
# The server is a peer: read at most this much of a response body (FHIR answers to a
# create are one resource or one OperationOutcome, far smaller).
_MAX_BODY = 256 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class FhirSinkConfig:
    """Where and how to POST; validated so that a bad URI fails at load time."""

    base_url: str
    token_env: str | None = None
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    timeout: float = 10.0
    code_system: str = PSPI_CODE_SYSTEM
    status: str = "preliminary"

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"bad FHIR base URL {self.base_url!r}")
        if not (math.isfinite(self.timeout) and 0 < self.timeout <= 300):
            raise ConfigError(f"timeout must be within (0, 300] s, got {self.timeout}")
        if self.status not in _STATUSES:
            raise ConfigError(f"status must be one of {sorted(_STATUSES)}")
        if (self.cert is None) != (self.key is None):
            raise ConfigError("mutual TLS needs both cert= and key=")
        if parts.scheme == "http" and (self.ca or self.cert):
            raise ConfigError("ca=/cert=/key= need fhir+https://")
        if parts.scheme == "http" and self.token_env and not _loopback(parts.hostname):
            raise ConfigError("refusing to send a bearer token over plain HTTP off this host")
        for path in (self.ca, self.cert, self.key):
            if path is not None and not os.path.isfile(path):
                raise ConfigError(f"FHIR TLS file not found: {path}")
        if self.token_env is not None and not os.environ.get(self.token_env):
            raise ConfigError(f"environment variable {self.token_env} (token_env=) is not set")
        if not self.code_system or any(c.isspace() for c in self.code_system):
            raise ConfigError("code_system must be a URI")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_fhir_uri(uri: str) -> FhirSinkConfig:
    """``fhir+https://host/fhir?token_env=FHIR_TOKEN`` -> config (base ``https://host/fhir``)."""
    try:
        parts = urlsplit(uri)
        _ = parts.port
    except ValueError as exc:
        raise ConfigError(f"bad FHIR sink URI {redact_uri(uri)!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("fhir+https", "fhir+http"):
        raise ConfigError(f"not a FHIR sink URI: {redact_uri(uri)!r}")
    if parts.username or parts.password or parts.fragment:
        raise ConfigError("put no credentials or fragment in the URI; use token_env=")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - _QUERY
    if unknown:
        raise ConfigError(f"unknown FHIR sink parameters: {sorted(unknown)}")
    if any(len(v) != 1 for v in query.values()):
        raise ConfigError("FHIR sink URI repeats a parameter")
    q = {k: v[0] for k, v in query.items()}
    try:
        timeout = float(q.get("timeout", "10"))
    except ValueError as exc:
        raise ConfigError("timeout= is not a number") from exc
    base = urlunsplit((scheme.removeprefix("fhir+"), parts.netloc, parts.path.rstrip("/"), "", ""))
    return FhirSinkConfig(
        base_url=base,
        token_env=q.get("token_env"),
        ca=q.get("ca"),
        cert=q.get("cert"),
        key=q.get("key"),
        timeout=timeout,
        code_system=q.get("code_system", PSPI_CODE_SYSTEM),
        status=q.get("status", "preliminary"),
    )


def _read_body(response: httpx.Response) -> bytes:
    """At most ``_MAX_BODY`` bytes of the body; a longer one is cut there."""
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) >= _MAX_BODY:
            break
    return bytes(body[:_MAX_BODY])


def _detail(body: bytes) -> str:
    """A short reason from an OperationOutcome, or the start of the body."""
    try:
        parsed = json.loads(body)
        issues = parsed.get("issue", []) if isinstance(parsed, dict) else []
        text = "; ".join(
            str(i.get("diagnostics") or i.get("details", {}).get("text") or i.get("code"))
            for i in issues
            if isinstance(i, dict)
        )
    except (ValueError, AttributeError):
        text = body.decode("utf-8", "replace")
    return text[:_MAX_DETAIL]


class FhirSink:
    """One pooled HTTP client per sink; ``deliver`` is called from one thread."""

    def __init__(self, config: FhirSinkConfig, context: SinkContext) -> None:
        del context
        self.config = config
        self._name = f"fhir+{config.base_url}"
        verify: ssl.SSLContext | bool = True
        if config.ca or config.cert:
            ctx = ssl.create_default_context(cafile=config.ca)
            if config.cert and config.key:
                ctx.load_cert_chain(config.cert, config.key)
            verify = ctx
        self._client = httpx.Client(
            timeout=config.timeout, verify=verify, follow_redirects=False, trust_env=False
        )

    @property
    def name(self) -> str:
        return self._name

    def deliver(self, alert: Alert) -> None:
        try:
            observation = build_observation(
                alert, code_system=self.config.code_system, status=self.config.status
            )
        except ValidationError as exc:
            raise PermanentSinkError(f"alert does not make a valid Observation: {exc}") from exc
        self.post_json(observation.model_dump_json(), identifier=f"urn:uuid:{alert.alert_id}")

    def post_json(self, body: str, *, identifier: str | None = None) -> None:
        """POST one Observation body and classify the outcome."""
        headers = {
            "Content-Type": "application/fhir+json",
            "Accept": "application/fhir+json",
        }
        if identifier is not None:
            headers["If-None-Exist"] = f"identifier=urn:ietf:rfc:3986|{identifier}"
        if self.config.token_env is not None:
            token = os.environ.get(self.config.token_env)
            if not token:
                raise TransientSinkError(f"environment variable {self.config.token_env} is empty")
            headers["Authorization"] = f"Bearer {token}"
        url = f"{self.config.base_url}/Observation"
        try:
            with self._client.stream("POST", url, content=body.encode(), headers=headers) as resp:
                code = resp.status_code
                answer = _read_body(resp)
        except httpx.TimeoutException as exc:
            raise TransientSinkError(f"FHIR server timed out: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise TransientSinkError(f"FHIR server unreachable: {exc!r}") from exc
        if 200 <= code < 300:
            return
        reason = f"HTTP {code} from {url}: {_detail(answer)}"
        if code >= 500 or code in _RETRY_4XX:
            raise TransientSinkError(reason)
        raise PermanentSinkError(reason)

    def close(self) -> None:
        self._client.close()


def fhir_sink_factory(uri: str, context: SinkContext) -> FhirSink:
    """Entry point for the ``fhir+https`` and ``fhir+http`` schemes."""
    return FhirSink(parse_fhir_uri(uri), context)
