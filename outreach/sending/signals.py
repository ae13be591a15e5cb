"""Signals of the sending engine: health rules, metrics and alerts listen here."""

from django.dispatch import Signal

# Sent after every provider call is recorded; kwargs: attempt (SendAttempt).
send_attempted = Signal()
