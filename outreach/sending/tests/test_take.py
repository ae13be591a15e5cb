"""The take re-checks, in its UPDATE, what may have changed since it read its candidates."""

from __future__ import annotations

from typing import Any

import pytest

from outreach.campaigns.models import Campaign, Enrollment, Message
from outreach.lib import clock
from outreach.pool.models import ProviderAccount
from outreach.sending import take
from outreach.sending.take import take_batch
from outreach.sending.tests.helpers import claimed_campaign_messages

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("stop", ["a reply stops the enrollment", "the campaign is paused"])
def test_it_does_not_take_a_message_whose_sequence_stopped_after_the_read(
    monkeypatch: pytest.MonkeyPatch, stop: str
) -> None:
    account = ProviderAccount.objects.create(name="relay", kind="sandbox")
    first, second = claimed_campaign_messages(2, provider=account)
    read = take._candidates

    def read_then_stop(*args: Any) -> list[tuple[Any, ...]]:
        rows = read(*args)
        # What another process commits between the read and the UPDATE.
        if stop == "the campaign is paused":
            Campaign.objects.update(state=Campaign.State.PAUSED)
        else:
            Enrollment.objects.filter(pk=first.enrollment_id or 0).update(
                state=Enrollment.State.STOPPED
            )
        return rows

    monkeypatch.setattr(take, "_candidates", read_then_stop)

    taken = take_batch("w", clock.now(), 10)

    states = dict(Message.objects.values_list("pk", "state"))
    assert states[first.pk] == Message.State.CLAIMED  # left for the scheduler's recovery
    if stop == "the campaign is paused":
        assert taken == [] and states[second.pk] == Message.State.CLAIMED
    else:
        assert [t.message_id for t in taken] == [second.pk]
        assert states[second.pk] == Message.State.SENDING
