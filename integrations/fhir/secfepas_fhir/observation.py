"""An alert as a FHIR R4B ``Observation``, built and validated with fhir.resources.

Coding choice (docs/alerts.md): the result is a PSPI *class* (0 none, 1 little,
2 moderate, 3 extreme = PSPI >= 3) estimated from facial expression. It is not a
patient-reported 0-10 numeric rating scale, so the LOINC NRS code would mislabel
it. The code and the value use this project's own CodeSystem, which a deployment
may replace with a canonical URL it registers (``code_system=``).
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.observation import Observation

from secfepas_sdk.alerts import PAIN_LEVELS, Alert

__all__ = ["CAMERA_ID_SYSTEM", "FHIR_RELEASE", "PSPI_CODE_SYSTEM", "build_observation"]

FHIR_RELEASE = "R4B"
PSPI_CODE_SYSTEM = "urn:secfepas:fhir:CodeSystem:pspi-class"
CAMERA_ID_SYSTEM = "urn:secfepas:fhir:NamingSystem:camera-id"
_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
_UCUM = "http://unitsofmeasure.org"

_CLASS_DISPLAY = (
    "No pain (PSPI 0)",
    "Little pain (PSPI 1)",
    "Moderate pain (PSPI 2)",
    "Extreme pain (PSPI 3 or more)",
)
assert len(_CLASS_DISPLAY) == len(PAIN_LEVELS)


def _class_coding(system: str, level: int) -> dict[str, str]:
    return {"system": system, "code": f"class-{level}", "display": _CLASS_DISPLAY[level]}


def build_observation(
    alert: Alert, *, code_system: str = PSPI_CODE_SYSTEM, status: str = "preliminary"
) -> Observation:
    """The Observation for ``alert``; raises pydantic.ValidationError if it is invalid."""
    camera = {"system": CAMERA_ID_SYSTEM, "value": alert.camera_id}
    if alert.patient_ref is not None:
        subject: dict[str, Any] = {"reference": alert.patient_ref}
    else:  # patient unknown to the camera: the bed (location) it watches
        subject = {
            "type": "Location",
            "identifier": camera,
            "display": f"bed watched by camera {alert.camera_id}",
        }
    model = " ".join(p for p in (alert.model_id, alert.model_version) if p) or "unknown model"
    data: dict[str, Any] = {
        "resourceType": "Observation",
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{alert.alert_id}"}],
        "status": status,
        "category": [
            {"coding": [{"system": _CATEGORY_SYSTEM, "code": "survey", "display": "Survey"}]}
        ],
        "code": {
            "coding": [
                {
                    "system": code_system,
                    "code": "pspi-class",
                    "display": "Pain intensity class estimated from facial expression (PSPI)",
                }
            ],
            "text": "Pain intensity class (PSPI-based, automated)",
        },
        "subject": subject,
        "effectiveDateTime": alert.frame_time.isoformat(),
        "issued": alert.created_at.isoformat(),
        "device": {"identifier": camera, "display": f"secfepas camera, {model}"},
        "valueCodeableConcept": {
            "coding": [_class_coding(code_system, alert.level)],
            "text": alert.level_label,
        },
        "component": [
            {
                "code": {
                    "coding": [
                        {
                            "system": code_system,
                            "code": f"p-class-{level}",
                            "display": f"Probability: {_CLASS_DISPLAY[level]}",
                        }
                    ]
                },
                "valueQuantity": {"value": p, "unit": "1", "system": _UCUM, "code": "1"},
            }
            for level, p in enumerate(alert.probabilities)
        ],
        "note": [
            {
                "text": f"secfepas {alert.kind.value} alert; episode since "
                f"{alert.episode_start.isoformat()}"
            }
        ],
    }
    return Observation.model_validate(data)
