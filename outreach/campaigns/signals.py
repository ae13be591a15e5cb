"""Signals of campaigns: the control plane listens here."""

from django.dispatch import Signal

# Sent when a claimed message is cancelled before any provider call, inside the transaction
# that cancelled it; kwargs: message (Message). The control plane owns the daily counters and
# gives back exactly the units the claim reserved (wired in ``OutreachConfig.ready``).
claim_cancelled = Signal()
