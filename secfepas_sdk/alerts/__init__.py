"""Alerts: the alert model, the policy, a durable outbox and sink plugins."""
