"""Alerting: rules' findings stored in an outbox and delivered through Apprise."""
