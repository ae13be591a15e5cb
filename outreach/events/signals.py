"""Signals of the events collector: health rules and metrics listen here."""

from django.dispatch import Signal

# Sent once per batch of newly stored events (inside the transaction that stored them);
# kwargs: events, the list of them in the order they were stored (one for a single event).
events_recorded = Signal()
