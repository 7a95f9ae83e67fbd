"""The `Alert` a camera sends to nurses and records systems.

An alert is a trust-boundary object: it is serialised to an outbox, to brokers and
to FHIR servers, and plugins read it, so it is a strict pydantic model with a
schema version. It never holds image data or a face crop, only the class result.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from secfepas_sdk.alerts.assessment import PAIN_LEVELS, PainAssessment

__all__ = ["SCHEMA_VERSION", "Alert", "AlertKind"]

SCHEMA_VERSION: Literal[1] = 1
"""Bump when a field changes meaning; receivers check it before reading on."""

_Id = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
_Text = Annotated[str, StringConstraints(max_length=128)]
_Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class AlertKind(StrEnum):
    """What happened in a pain episode."""

    PAIN = "pain"
    ESCALATION = "escalation"
    RESOLVED = "resolved"


class Alert(BaseModel):
    """One alert. ``alert_id`` is also the idempotency key receivers de-duplicate on."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)

    schema_version: Literal[1] = SCHEMA_VERSION
    alert_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    kind: AlertKind
    camera_id: _Id
    patient_ref: _Text | None = None
    level: Annotated[int, Field(ge=0, le=len(PAIN_LEVELS) - 1)]
    probabilities: tuple[_Probability, _Probability, _Probability, _Probability]
    frame_time: AwareDatetime
    episode_start: AwareDatetime
    model_id: _Text = ""
    model_version: _Text = ""
    created_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def level_label(self) -> str:
        """The PSPI class name: none, little, moderate or extreme."""
        return PAIN_LEVELS[self.level]

    @classmethod
    def from_assessment(
        cls,
        assessment: PainAssessment,
        *,
        kind: AlertKind,
        episode_start: float,
        patient_ref: str | None = None,
    ) -> Alert:
        """Build an alert from one assessment; times are POSIX seconds."""
        return cls(
            kind=kind,
            camera_id=assessment.camera_id,
            patient_ref=patient_ref,
            level=assessment.level,
            probabilities=assessment.probabilities,  # type: ignore[arg-type]
            frame_time=datetime.fromtimestamp(assessment.frame_time, tz=UTC),
            episode_start=datetime.fromtimestamp(episode_start, tz=UTC),
            model_id=assessment.model_id,
            model_version=assessment.model_version,
        )

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, data: str | bytes) -> Alert:
        """Parse and validate an alert; raises pydantic.ValidationError on bad input."""
        return cls.model_validate_json(data)
