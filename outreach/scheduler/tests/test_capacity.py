"""Capacity today: one rule, read alike by `outreach status` and the dashboard, and what
holds a domain back shown by both."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from outreach.dashboard import pool_rows
from outreach.lib import clock
from outreach.pool.models import DnsCheck, Domain, Mailbox, PoolSettings
from outreach.scheduler.capacity import domain_capacity, pool_capacity
from outreach.testing import make_pool

pytestmark = pytest.mark.django_db


def test_it_bounds_mailboxes_by_their_domain_and_domains_by_the_global_cap() -> None:
    assert domain_capacity(250, [40] * 7) == 250
    assert domain_capacity(250, [40, 40, 5]) == 85
    assert domain_capacity(250, [40, 40], held="DNS: critical failure") == 0
    assert pool_capacity([250, 250, 85], global_cap=500) == 500
    assert pool_capacity([85, 0], global_cap=1500) == 85


def status_text() -> str:
    out = StringIO()
    call_command("status", stdout=out)
    return out.getvalue()


def dashboard_capacity() -> int:
    pool = PoolSettings.load()
    mailboxes = pool_rows.mailbox_rows(pool, last_event=False)
    domains = pool_rows.domain_rows(pool, mailboxes)
    return pool_rows.global_today(pool, mailboxes, domains)["capacity"]


def test_the_cli_and_the_dashboard_agree_on_capacity_today() -> None:
    # Four domains of 7 mailboxes at 40 (280 > the domain cap of 250), one warming mailbox,
    # one domain in cooldown, one whose DNS check fails critically, one paused mailbox.
    boxes = make_pool(4, 7)
    _, send2, send3, _ = Domain.objects.order_by("name")
    Mailbox.objects.filter(pk=boxes[0].pk).update(
        state=Mailbox.State.WARMING, warmup_started_on=clock.today("UTC")
    )
    Mailbox.objects.filter(pk=boxes[1].pk).update(state=Mailbox.State.PAUSED)
    until = clock.now() + timedelta(days=14)
    Domain.objects.filter(pk=send2.pk).update(state=Domain.State.COOLDOWN, cooldown_until=until)
    DnsCheck.objects.create(domain=send3, outcome="critical", blocks_sending=True)

    text = status_text()

    # send1: 5 (warming) + 0 (paused) + 5 x 40 = 205; send4: 280 bounded to 250.
    assert "28 mailboxes, 0/455 sent today" in text
    assert dashboard_capacity() == 455
    assert f"domain in cooldown until {until:%Y-%m-%d %H:%M}" in text
    assert "DNS: critical failure" in text


def test_the_mailbox_rows_say_what_holds_their_domain() -> None:
    make_pool(1, 1)
    domain = Domain.objects.get()
    DnsCheck.objects.create(domain=domain, outcome="critical", blocks_sending=True)
    pool = PoolSettings.load()

    (row,) = pool_rows.mailbox_rows(pool)
    (domain_row,) = pool_rows.domain_rows(pool, [row])

    assert row.held == domain_row.held == "DNS: critical failure"
    assert domain_row.capacity_today == 0
