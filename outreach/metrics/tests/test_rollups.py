"""Rollups: kept current from the engine's signals, equal to a rebuild from the raw tables."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.core.management import call_command

from outreach.alerts.tests.conftest import Pool, record, send
from outreach.lib import clock
from outreach.metrics import rollups
from outreach.metrics.figures import COUNTERS
from outreach.metrics.models import DailyRollup
from outreach.sending.models import SendAttempt


def _snapshot(day: date) -> list[tuple[object, ...]]:
    rows = DailyRollup.objects.filter(day=day).order_by(
        "mailbox_id", "campaign_id", "step_id", "variant_id", "provider_id"
    )
    return [
        (
            r.mailbox_id,
            r.domain_id,
            r.campaign_id,
            r.step_id,
            r.variant_id,
            r.provider_id,
            *(getattr(r, c) for c in COUNTERS),
        )
        for r in rows
    ]


def _activity(pool: Pool) -> None:
    a, b = pool.mailboxes[0], pool.mailboxes[2]
    sent_a = send(a, 5, campaign=pool.campaign)
    sent_b = send(b, 3)  # warm-up traffic: no campaign
    send(a, 2, campaign=pool.campaign, outcome=SendAttempt.Outcome.TRANSIENT)
    send(b, 1, outcome=SendAttempt.Outcome.PERMANENT)
    record(sent_a[0], "delivered")
    record(sent_a[1], "bounced", bounce_type="hard")
    record(sent_a[2], "bounced", bounce_type="soft")
    record(sent_a[3], "complained")
    record(sent_a[4], "opened")
    record(sent_b[0], "replied")
    record(sent_b[1], "blocked", source="smtp")


def test_it_counts_sends_and_events_per_mailbox_campaign_and_day(pool: Pool) -> None:
    _activity(pool)
    a, b = pool.mailboxes[0], pool.mailboxes[2]

    fa = rollups.window_figures(days=1, mailbox_id=a.pk)
    assert (fa.sent, fa.transient, fa.delivered, fa.bounced_hard, fa.bounced_soft) == (
        5,
        2,
        1,
        1,
        1,
    )
    assert (fa.complained, fa.opened) == (1, 1)
    assert fa.bounce_rate == 0.2
    fb = rollups.window_figures(days=1, mailbox_id=b.pk)
    assert (fb.sent, fb.failed, fb.replied, fb.blocked) == (3, 1, 1, 1)
    by_domain = rollups.window_figures(days=1, domain_id=a.domain_id)
    assert by_domain.sent == 5
    assert rollups.window_figures(days=1, campaign_id=pool.campaign.pk).sent == 5
    assert rollups.window_figures(days=1).sent == 8


def test_it_rebuilds_a_day_to_exactly_what_the_signals_produced(pool: Pool) -> None:
    _activity(pool)
    day = clock.today()
    incremental = _snapshot(day)

    DailyRollup.objects.all().delete()
    call_command("rollups", "--rebuild", day.isoformat())

    assert _snapshot(day) == incremental
    assert len(incremental) == 2  # (a, campaign, step 1, variant A) and (b, warm-up)


def test_it_sums_a_window_of_days_and_leaves_older_days_out(pool: Pool) -> None:
    mailbox = pool.mailboxes[0]
    send(mailbox, 4)
    clock.advance(timedelta(days=3))
    send(mailbox, 2)
    assert rollups.window_figures(days=7, mailbox_id=mailbox.pk).sent == 6
    assert rollups.window_figures(days=3, mailbox_id=mailbox.pk).sent == 2
    clock.advance(timedelta(days=7))
    assert rollups.window_figures(days=7, mailbox_id=mailbox.pk).sent == 0


@pytest.mark.django_db
def test_routing_reads_the_rates_the_rules_judge(noon: object) -> None:
    # Refusals at send time are attempts that bounced; a complaint today is a spike.
    from outreach.metrics.rates import mailbox_rates
    from outreach.pool.models import PoolSettings

    today = clock.today()
    earlier = today - timedelta(days=2)
    rollups.bump(earlier, rollups.Dims(mailbox_id=1), {"sent": 60, "bounced_hard": 2})
    rollups.bump(today, rollups.Dims(mailbox_id=1), {"refused": 20, "bounced_hard": 20})
    rollups.bump(today, rollups.Dims(mailbox_id=2), {"sent": 100, "complained": 1})
    thresholds = PoolSettings.load().thresholds
    rates = mailbox_rates(clock.now(), thresholds)
    whole = rollups.window_figures(days=thresholds.window_days, mailbox_id=1)
    assert rates[1].bounce_rate == whole.bounce_rate == 22 / 80
    assert rates[1].recent_spike  # 20 hard bounces of 20 attempts today
    assert (rates[2].complaint_rate, rates[2].recent_spike) == (0.01, True)


def test_it_buckets_by_the_pool_day_in_its_time_zone(pool: Pool) -> None:
    from outreach.pool.models import PoolSettings

    settings_row = PoolSettings.load()
    settings_row.timezone = "Pacific/Auckland"  # UTC+13 in November: noon UTC is tomorrow
    settings_row.save()
    send(pool.mailboxes[0], 1)
    row = DailyRollup.objects.get()
    assert row.day == (clock.now() + timedelta(hours=13)).date()


@pytest.mark.django_db(transaction=True)
def test_it_loses_no_count_when_writers_race_on_a_new_row(noon: object) -> None:
    import threading

    from django.db import connection, transaction

    day = clock.today()
    dims = rollups.Dims(mailbox_id=7, domain_id=3, provider_id=1)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            start.wait(timeout=10)
            for _ in range(20):
                with transaction.atomic():
                    rollups.bump(day, dims, {"sent": 1, "delivered": 1})
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    row = DailyRollup.objects.get(day=day)
    assert (row.sent, row.delivered) == (80, 80)
