"""Alerts: the alert model, the policy, a durable outbox and sink plugins.

The camera pipeline uses :class:`AlertService` (``submit(assessment)``, ``close()``)
built with :meth:`AlertService.from_uris`, or sinks from :func:`load_sinks`.
"""

from secfepas_sdk.alerts.assessment import PAIN_LEVELS, PainAssessment
from secfepas_sdk.alerts.dispatcher import RetryPolicy
from secfepas_sdk.alerts.models import SCHEMA_VERSION, Alert, AlertKind
from secfepas_sdk.alerts.outbox import DeadLetter, Outbox
from secfepas_sdk.alerts.policy import AlertPolicy, EpisodeState, PolicyConfig, decide
from secfepas_sdk.alerts.service import AlertService
from secfepas_sdk.alerts.sinks import (
    ENTRY_POINT_GROUP,
    AlertSink,
    SinkContext,
    available_schemes,
    load_sink,
    load_sinks,
)

AlertDispatcher = AlertService
"""Alias: the brief names the facade either way."""

__all__ = [
    "ENTRY_POINT_GROUP",
    "PAIN_LEVELS",
    "SCHEMA_VERSION",
    "Alert",
    "AlertDispatcher",
    "AlertKind",
    "AlertPolicy",
    "AlertService",
    "AlertSink",
    "DeadLetter",
    "EpisodeState",
    "Outbox",
    "PainAssessment",
    "PolicyConfig",
    "RetryPolicy",
    "SinkContext",
    "available_schemes",
    "decide",
    "load_sink",
    "load_sinks",
]
