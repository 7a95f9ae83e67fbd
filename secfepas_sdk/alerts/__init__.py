"""Alerts: the alert model, the policy, a durable outbox and sink plugins.

The camera pipeline uses :class:`AlertService` (``submit(assessment)``, ``close()``)
built with :meth:`AlertService.from_uris`, or sinks from :func:`load_sinks`.
Plugin authors need :class:`Alert`, :class:`SinkContext`, :func:`redact_uri`
(for URIs in messages) and the sink errors in :mod:`secfepas_sdk.errors`.
"""

from secfepas_sdk.alerts.alert import SCHEMA_VERSION, Alert, AlertKind
from secfepas_sdk.alerts.assessment import PAIN_LEVELS, PainAssessment
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
    redact_uri,
)
from secfepas_sdk.errors import SinkPluginError
from secfepas_sdk.retry import RetryPolicy

__all__ = [
    "ENTRY_POINT_GROUP",
    "PAIN_LEVELS",
    "SCHEMA_VERSION",
    "Alert",
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
    "SinkPluginError",
    "available_schemes",
    "decide",
    "load_sink",
    "load_sinks",
    "redact_uri",
]
