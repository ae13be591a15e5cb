"""Signals of the sending engine: health rules, metrics and alerts listen here."""

from django.dispatch import Signal

# Sent once per finished batch of provider calls, inside the transaction that recorded them;
# kwargs: attempts (list[SendAttempt], in call order). Listeners also accept a single
# ``attempt`` (SendAttempt) from senders that record one call at a time.
send_attempted = Signal()

# Sent when a provider account's circuit breaker opens or closes (already in the audit log);
# kwargs: account (ProviderAccount), from_state, to_state ("open"/"half_open"/"closed"), reason.
circuit_changed = Signal()

# Sent when a provider refuses a message for good at send time (a hard bounce or a block),
# after the batch was recorded; the events collector records it as an event of source "smtp".
# kwargs: message (Message), error (SendError), attempt (SendAttempt or None), at (datetime).
send_refused = Signal()
