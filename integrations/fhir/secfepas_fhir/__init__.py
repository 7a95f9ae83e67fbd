"""HL7 FHIR alert sink plugin for secfepas_sdk (entry points ``fhir+https``, ``fhir+http``)."""

from secfepas_fhir.observation import (
    CAMERA_ID_SYSTEM,
    PSPI_CODE_SYSTEM,
    build_observation,
)
from secfepas_fhir.sink import FhirSink, FhirSinkConfig, fhir_sink_factory, parse_fhir_uri

__all__ = [
    "CAMERA_ID_SYSTEM",
    "PSPI_CODE_SYSTEM",
    "FhirSink",
    "FhirSinkConfig",
    "build_observation",
    "fhir_sink_factory",
    "parse_fhir_uri",
]
