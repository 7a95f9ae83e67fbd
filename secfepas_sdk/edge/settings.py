"""Edge server settings: code, environment (``SECFEPAS_EDGE_*``) or a TOML file.

Precedence, highest first: explicit keyword arguments (CLI flags), the
environment, the TOML file, the defaults. Unknown keys are errors.
"""

from __future__ import annotations

import difflib
import logging
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from secfepas_sdk.errors import ConfigError
from secfepas_sdk.protocol.events import OT_EXTENSIONS

__all__ = ["EdgeSettings", "he_workers_for", "load_settings"]

log = logging.getLogger(__name__)

ENV_PREFIX = "SECFEPAS_EDGE_"


class EdgeSettings(BaseSettings):
    """Everything an edge operator can set (see docs/edge.md)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="address to listen on for cameras")
    port: int = Field(7443, ge=0, le=65535, description="TLS port (0 = any free port)")
    model_dir: Path = Field(description="directory of private model packages")
    ca: Path = Field(description="PEM of the site CA that signs camera certificates")
    cert: Path = Field(description="the edge's certificate (PEM)")
    key: Path = Field(description="the edge's private key (PEM)")
    crl: Path | None = Field(
        None,
        description="PEM CRL of the site CA (`secfepas certs revoke`): cameras it lists "
        "are refused in the handshake; re-read on SIGHUP",
    )
    metrics_enabled: bool = Field(
        True, description="serve Prometheus metrics and /healthz on metrics_host:metrics_port"
    )
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(
        9464, ge=0, le=65535, description="Prometheus/health HTTP port (0 = any free port)"
    )
    max_sessions: int = Field(
        2, ge=1, le=256, description="concurrent sessions (= worker processes)"
    )
    max_sessions_per_camera: int = Field(
        2, ge=1, le=256, description="sessions one camera identity (certificate CN) may hold"
    )
    max_queue: int = Field(8, ge=0, le=10_000, description="cameras that may wait for a slot")
    queue_timeout_s: float = Field(60.0, gt=0, description="longest wait for a session slot")
    handshake_timeout_s: float = Field(10.0, gt=0, description="TLS handshake + ClientHello")
    idle_timeout_s: float = Field(300.0, gt=0, description="silence allowed between inferences")
    message_timeout_s: float = Field(
        120.0, gt=0, description="longest wait for the camera's next frame within an inference"
    )
    inference_timeout_s: float = Field(900.0, gt=0, description="longest single inference")
    max_data_frame: int = Field(1 << 22, ge=1 << 10, le=1 << 30, description="bytes per DATA frame")
    max_message: int = Field(1 << 30, ge=1 << 10, le=1 << 31, description="bytes per SNNI message")
    he_cache_bytes: int = Field(
        512 << 20,
        ge=0,
        le=1 << 40,
        description="NTT-form weight plaintexts each worker keeps in RAM; beyond this, "
        "kernels are NTT'd per inference",
    )
    he_workers: int = Field(
        0,
        ge=0,
        le=256,
        description="processes that share one inference's HE work (0 = all cores of one "
        "session's budget: the usable cores / max_sessions; 1 = the session's own process)",
    )
    worker_start_method: str = Field("spawn", pattern=r"^(spawn|forkserver)$")
    circuit_privacy_enforce: bool = Field(
        False,
        description="refuse a model whose circuit-privacy budget is spent (default: log an "
        "error and serve on)",
    )
    ot_extensions: Annotated[tuple[Literal["ferret", "softspoken"], ...], NoDecode] = Field(
        OT_EXTENSIONS,  # type: ignore[arg-type]  # the same names, preferred first
        min_length=1,
        max_length=len(OT_EXTENSIONS),
        description="OT extensions cameras may choose (each camera proposes, in its order "
        "of preference; the edge takes the first it allows): ferret, softspoken",
    )

    @field_validator("ot_extensions", mode="before")
    @classmethod
    def _split_extensions(cls, value: Any) -> Any:
        """``"softspoken,ferret"`` (a flag or variable) as well as a TOML list; no repeats."""
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            for item in value:
                if item not in OT_EXTENSIONS:
                    raise ValueError(
                        f"unknown OT extension {str(item)[:40]!r}; "
                        f"expected some of {', '.join(OT_EXTENSIONS)}"
                    )
            if len(set(value)) != len(value):
                raise ValueError("an OT extension is listed twice")
        return value


def he_workers_for(settings: EdgeSettings) -> int:
    """``he_workers`` as a process count: 0 means all cores of one session's budget,
    the cores this process may run on shared by ``max_sessions`` sessions (at least 1)."""
    if settings.he_workers > 0:
        return settings.he_workers
    return max(1, len(os.sched_getaffinity(0)) // settings.max_sessions)


def load_settings(toml_file: Path | None = None, **overrides: Any) -> EdgeSettings:
    """Settings from ``toml_file`` (if any), the environment and ``overrides``.

    ``None`` values in ``overrides`` are ignored, so CLI flags left unset fall
    through to the environment and the file.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    file_values: dict[str, Any] = {}
    if toml_file is not None:
        try:
            file_values = tomllib.loads(Path(toml_file).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read edge settings {toml_file}: {exc}") from exc
        for name in file_values:
            if name not in EdgeSettings.model_fields:
                raise ConfigError(f"{toml_file}: unknown setting {name!r}{_did_you_mean(name)}")
        base = Path(toml_file).resolve().parent
        for name in ("model_dir", "ca", "cert", "key", "crl"):  # relative to the file
            if isinstance(file_values.get(name), str):
                file_values[name] = str(base / file_values[name])

    class _FromFile(EdgeSettings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, _Dict(settings_cls, file_values))

    _warn_unknown_environment()
    try:
        loaded = _FromFile(**given)
        return EdgeSettings.model_validate(loaded.model_dump())
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, toml_file)) from None


def _did_you_mean(name: str) -> str:
    close = difflib.get_close_matches(name.lower(), list(EdgeSettings.model_fields), n=1)
    return f"; did you mean {close[0]!r}?" if close else "; the settings are listed in docs/edge.md"


def _warn_unknown_environment() -> None:
    """pydantic-settings ignores SECFEPAS_EDGE_* names it does not know: say so."""
    for var in sorted(os.environ):
        if var.upper().startswith(ENV_PREFIX):
            name = var[len(ENV_PREFIX) :].lower()
            if name not in EdgeSettings.model_fields:
                close = difflib.get_close_matches(name, list(EdgeSettings.model_fields), n=1)
                hint = f"; did you mean {ENV_PREFIX}{close[0].upper()}?" if close else ""
                log.warning("ignoring unknown environment variable %s%s", var, hint)


def _one_line(exc: ValidationError, toml_file: Path | None) -> str:
    """pydantic's multi-line report as one line: missing settings, then bad values."""
    missing = [str(e["loc"][0]) for e in exc.errors() if e["type"] == "missing" and e["loc"]]
    if missing:
        flags = ", ".join("--" + name.replace("_", "-") for name in missing)
        return (
            f"missing edge setting(s) {', '.join(missing)}: give {flags} "
            f"(or set them in edge.toml or {ENV_PREFIX}* variables)"
        )
    where = f" in {toml_file} or the environment" if toml_file else ""
    problems = "; ".join(
        f"{'.'.join(str(part) for part in e['loc'])}={e.get('input')!r}: {e['msg']}"
        for e in exc.errors()
    )
    return f"invalid edge setting{where}: {problems}"


class _Dict(PydanticBaseSettingsSource):
    """A settings source that returns a fixed mapping (the parsed TOML file)."""

    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._values = values

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)
