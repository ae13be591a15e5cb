"""The dashboard says what holds a domain back: its mailbox rows, its mailbox page and the
overview's domains, with the capacity `outreach status` prints."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from outreach.lib import clock
from outreach.pool.models import DnsCheck, Domain
from outreach.testing import make_pool

pytestmark = pytest.mark.django_db


def test_it_shows_dns_blocks_and_cooldowns_where_the_operator_looks(staff_client: Client) -> None:
    boxes = make_pool(2, 1)
    blocked, cooling = Domain.objects.order_by("name")
    DnsCheck.objects.create(domain=blocked, outcome="critical", blocks_sending=True)
    until = clock.now() + timedelta(days=14)
    Domain.objects.filter(pk=cooling.pk).update(state=Domain.State.COOLDOWN, cooldown_until=until)
    cooldown = f"held: domain in cooldown until {until:%Y-%m-%d %H:%M}"

    mailboxes = staff_client.get(reverse("dashboard:mailboxes")).content.decode()
    page = staff_client.get(reverse("dashboard:mailbox", args=[boxes[0].pk])).content.decode()
    overview = staff_client.get(reverse("dashboard:overview"))
    status = StringIO()
    call_command("status", stdout=status)

    assert "held: DNS: critical failure" in mailboxes and cooldown in mailboxes
    assert "held: DNS: critical failure" in page
    body = overview.content.decode()
    assert "held: DNS: critical failure" in body and cooldown in body
    assert overview.context["global"]["capacity"] == 0
    assert "2 mailboxes, 0/0 sent today" in status.getvalue()
