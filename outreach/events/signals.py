"""Signals of the events collector: health rules and metrics listen here."""

from django.dispatch import Signal

# Sent after an Event is stored (inside the transaction that stored it); kwargs: event.
event_recorded = Signal()
