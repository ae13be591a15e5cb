"""The sending step of ``outreach simulate``: the engine's own take and finish, without the
cost of building each message and handing it over.

:func:`send_due` stands in for :func:`outreach.sending.engine.send_due` while a simulation
runs (the command lends it to the simulator, which sits below the sending engine). A batch
goes through the engine's real steps where anything is decided:

- :func:`~outreach.sending.take.take_batch`: which claimed messages may go now (mailbox and
  domain still sending, sequence live, address not suppressed, provider account and circuit);
- :func:`~outreach.sending.finish.finish_batch`: ``sent`` in one UPDATE per batch, the
  enrollments moved on, the mailboxes' last send, a ``SendAttempt`` per call and one
  ``send_attempted`` signal for the batch (rollups, health rules).

What it leaves out is the cost of a send, which decides nothing in a simulation: rendering
the template, building and signing the MIME message, the per-call start marker (a crash
guard; nothing crashes here) and the provider call itself. Each message is handed to the
simulated provider with its envelope only; the provider queues its outcomes (delivery,
bounce, complaint) exactly as for a built message. A message whose account is not on the
simulated provider goes through the engine's full call.

Not exercised on this path: a template that fails to render (the full path fails the
message's build and holds it; here it is "sent"). ``outreach simulate --full-send`` runs the
engine's complete send for such checks.
"""

from __future__ import annotations

from datetime import datetime

from outreach.providers.base import Envelope
from outreach.providers.simulated.sender import SimulatedProvider
from outreach.sending.deliver import Called, ProviderCache, call_provider, load_taken
from outreach.sending.finish import finish_batch
from outreach.sending.take import take_batch

WORKER = "simulation"
# Messages per take and finish: both cost a few statements whatever the batch, so a large
# batch spreads them (the engine's own send_due takes 100).
BATCH = 500


def send_due(now: datetime, *, limit: int = BATCH) -> int:
    """Take up to ``limit`` due messages and record them as the simulated provider accepted
    them; returns how many were taken (0: nothing due)."""
    taken = take_batch(WORKER, now, limit)
    if not taken:
        return 0
    providers = ProviderCache()
    batch: list[Called] = []
    try:
        # Nothing is rendered here: the leads are not read (a message that goes through the
        # full call below reads its own).
        for message, t in load_taken(taken, for_rendering=False):
            account, mailbox = message.provider_account, message.mailbox
            assert account is not None and mailbox is not None
            provider = providers.get(account)
            if not isinstance(provider, SimulatedProvider):
                batch.append(call_provider(message, t, providers=providers))
                continue
            envelope = Envelope(
                sender=mailbox.address, recipient=message.to_email, message_id=message.pk
            )
            result = provider.send(b"", envelope)
            batch.append(Called(message, account, result=result, clean=t.circuit_clean))
        finish_batch(batch)
    finally:
        providers.close()
    return len(taken)
