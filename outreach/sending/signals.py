"""Signals of the sending engine: health rules, metrics and alerts listen here."""

from django.dispatch import Signal

# Sent after every provider call is recorded; kwargs: attempt (SendAttempt).
send_attempted = Signal()

# Sent when a provider account's circuit breaker opens or closes (already in the audit log);
# kwargs: account (ProviderAccount), from_state, to_state ("open"/"half_open"/"closed"), reason.
circuit_changed = Signal()
