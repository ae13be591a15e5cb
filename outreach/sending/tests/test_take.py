"""The take re-checks, in its UPDATE, what may have changed since it read its candidates."""

from __future__ import annotations

from typing import Any

import pytest

from outreach.campaigns.models import Campaign, Enrollment, Message, Suppression
from outreach.campaigns.suppression import suppress
from outreach.lib import clock
from outreach.pool.models import Domain, Mailbox, ProviderAccount
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


@pytest.mark.parametrize(
    "change",
    [
        "the mailbox is paused",
        "the domain is cooling down",
        "the address is suppressed",
        "the recipient's domain is suppressed",
    ],
)
def test_it_does_not_take_a_message_that_may_no_longer_go_after_the_read(
    monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    account = ProviderAccount.objects.create(name="relay", kind="sandbox")
    first, second = claimed_campaign_messages(
        2, provider=account, domains=2, lead_domain="prospect.example.org"
    )
    Message.objects.filter(pk=second.pk).update(
        to_email="lead@elsewhere.example.net", to_domain="elsewhere.example.net"
    )
    assert first.mailbox_id != second.mailbox_id
    read = take._candidates

    def read_then_change(*args: Any) -> list[tuple[Any, ...]]:
        rows = read(*args)
        assert len(rows) == 2
        # What another process commits between the read and the UPDATE.
        mailbox = Mailbox.objects.get(pk=first.mailbox_id or 0)
        if change == "the mailbox is paused":
            Mailbox.objects.filter(pk=mailbox.pk).update(state=Mailbox.State.PAUSED)
        elif change == "the domain is cooling down":
            Domain.objects.filter(pk=mailbox.domain_id).update(state=Domain.State.COOLDOWN)
        elif change == "the address is suppressed":
            suppress(first.to_email, "unsubscribe")
        else:
            suppress("prospect.example.org", "manual", kind=Suppression.Kind.DOMAIN)
        return rows

    monkeypatch.setattr(take, "_candidates", read_then_change)

    taken = take_batch("w", clock.now(), 10)

    assert [t.message_id for t in taken] == [second.pk]
    states = dict(Message.objects.values_list("pk", "state"))
    assert states[second.pk] == Message.State.SENDING
    if "suppressed" in change:
        assert states[first.pk] == Message.State.CANCELLED
    else:
        assert states[first.pk] == Message.State.CLAIMED  # it waits for its mailbox
